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

from ..pareto import Axis, largest_gap, placement
from .base import Evaluation

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


def front_text(ev: Evaluation, members: Sequence[Evaluation], axes: Sequence[Axis], reference: Sequence[float], brief: bool) -> str:
    """The trade-off lines of the loss: the candidate's place on the front and the front's largest gap."""
    if not ev.valid or not members:
        return ""
    names = ", ".join(a.label for a in axes)
    where = placement(ev, members, axes)
    gap = largest_gap(members, axes, reference)

    def point(m: Evaluation) -> str:
        return f"{m.value} ({', '.join(a.text(m.metrics[a.metric]) for a in axes)})"

    lines = [f"Trade-off on {names} (Pareto front of {len(members)} molecules): this molecule is {where}."]
    if gap is not None:
        if brief:
            lines.append(f"Largest gap of the front: between {gap[0].value} and {gap[1].value}.")
        else:
            lines.append(f"The front's largest gap lies between {point(gap[0])} and {point(gap[1])}: a molecule between "
                         "them, or one better than both, widens the front the most.")
    return "\n".join(lines)


def write_front(objective, run_dir, result) -> list[str]:
    """front.csv (the front's molecules, the knee flagged), front.png and hypervolume.png. The front and
    its figure use the confirmed numbers where the run has them; the hypervolume curve is the loop's own."""
    from pathlib import Path

    from simulators.files import write_text_atomic

    from ..pareto import ParetoTracker, front, knee
    from ..plots import plot_front, plot_hypervolume
    from ..tables import csv_text

    run_dir = Path(run_dir)
    axes, reference = objective.pareto_axes(), objective.reference_point()
    confirmed = {c.value: c for c in result.confirmed.candidates} if result.confirmed is not None else {}
    evaluations = [confirmed.get(e.value, e) for e in result.evaluations]  # the front's molecules with their confirmed numbers
    members = front(evaluations, axes)
    best = knee(members, axes, reference)
    rows = [{"smiles": m.value, **{a.metric: m.metrics.get(a.metric) for a in axes}, "score": m.score,
             "knee": best is not None and m.value == best.value, "confirmed": m.value in confirmed,
             "vina_single": m.metrics.get("vina_single"), "vina_spread": m.metrics.get("vina_spread")} for m in members]
    write_text_atomic(run_dir / "front.csv", csv_text(rows, ["smiles", *(a.metric for a in axes), "score", "knee", "confirmed",
                                                             "vina_single", "vina_spread"]))
    refs = result.confirmed.references if result.confirmed is not None and result.confirmed.references else result.references
    reference_text = ", ".join(f"{a.label} {r:g}" for a, r in zip(axes, reference))
    plot_front(evaluations, members, axes, run_dir / "front.png", refs, best, title=objective.describe_short())
    plot_hypervolume({"this run": ParetoTracker(objective).curve(result.steps)}, run_dir / "hypervolume.png", reference_text)
    return ["front.csv", "front.png", "hypervolume.png"]
