"""Pareto mode for molecules: potency (Vina), drug-likeness (QED) and synthesizability (SA) as a front.

``objectives = ["vina", "qed", "sa"]`` (two or three of them) replaces the one weighted score in
what the run reports and in what TGD reads: where the candidate sits relative to the front and
where the front has its largest gap. The loop's patience counts steps without a larger
hypervolume and its best is the front's knee (``tgsci.pareto``). The default reference point is
the worst value each metric can take for a molecule that docks at all (Vina 0 kcal/mol, QED 0,
SA 10), so every docked molecule adds hypervolume.
"""

from __future__ import annotations

from typing import Optional, Sequence

from ...pareto import Axis

AXES = {
    "vina": Axis("vina", "min", "Vina", "kcal/mol", ".1f"),
    "qed": Axis("qed", "max", "QED", "", ".2f"),
    "sa": Axis("sa", "min", "SA", "", ".1f"),
}
DEFAULT_REFERENCE = {"vina": 0.0, "qed": 0.0, "sa": 10.0}
# A reference point no molecule can beat on that axis leaves the hypervolume 0 whatever the run finds.
UNBEATABLE = {"vina": ("<=", -25.0, "no molecule docks below about -20 kcal/mol"), "qed": (">=", 1.0, "QED is at most 1"),
              "sa": ("<=", 1.0, "SA is at least 1")}


def pareto_axes(names: Sequence[str], reference: Optional[dict] = None, aggregation: str = "dockstring") -> tuple[list[Axis], list[float]]:
    """The axes and the reference point of ``names``; ValueError names what is wrong."""
    names = [str(n).strip().lower() for n in names]
    unknown = [n for n in names if n not in AXES]
    if unknown:
        raise ValueError(f"unknown objective(s) {', '.join(map(repr, unknown))} for Pareto mode; choose from {', '.join(AXES)}")
    if len(set(names)) < 2 or len(set(names)) != len(names):
        raise ValueError(f"Pareto mode needs two or three different objectives (e.g. vina,qed,sa), not {','.join(names) or 'none'}")
    if "vina" in names and aggregation == "qed":
        raise ValueError("objective vina needs docking: aggregation = \"qed\" docks nothing")
    reference = dict(reference or {})
    extra = sorted(set(reference) - set(names))
    if extra:
        raise ValueError(f"reference point: {', '.join(extra)} is not one of the objectives {', '.join(names)}")
    point = []
    for n in names:
        value = reference.get(n, DEFAULT_REFERENCE[n])
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
            raise ValueError(f"reference point: {n} must be a number, not {value!r}")
        op, bound, why = UNBEATABLE[n]
        if (value <= bound) if op == "<=" else (value >= bound):
            raise ValueError(f"reference point {n} = {value:g}: no molecule can be better than that on {n} ({why}), "
                             "so every candidate would add nothing to the hypervolume; use a worse value (default "
                             f"{DEFAULT_REFERENCE[n]:g})")
        point.append(float(value))
    return [AXES[n] for n in names], point

