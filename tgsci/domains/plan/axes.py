"""Pareto mode for plans: target coverage against each organ's goal, laid out as a front.

``objectives = "goals"``: one axis per clinical goal of the case (a target's coverage goal is
maximized, an organ's dose or volume goal minimized), in place of the one goal-miss score. The
default reference point is the worst each metric can sensibly be: 0 Gy for a coverage goal, 120 %
of the highest prescription for an organ's dose goal, 100 % for a volume goal; override it per goal
with ``reference_point = {"Rectum.V70Gy" = 50}``.
"""

from __future__ import annotations

from typing import Optional

from ...pareto import Axis

OBJECTIVE_SETS = ("goals",)


def plan_axes(case, objectives: str, reference: Optional[dict] = None) -> tuple[list[Axis], list[float]]:
    """The axes and reference point of a case's goals; ValueError names what is wrong."""
    if objectives not in OBJECTIVE_SETS:
        raise ValueError(f"unknown objectives {objectives!r} for a plan's Pareto mode; choose from {', '.join(OBJECTIVE_SETS)} "
                         "(one axis per clinical goal of the case)")
    goals = list(case.goals)
    if len(goals) < 2:
        raise ValueError(f"Pareto mode needs at least two clinical goals; case {case.name} has {len(goals)}")
    reference = dict(reference or {})
    keys = [g.key for g in goals]
    unknown = sorted(set(reference) - set(keys))
    if unknown:
        raise ValueError(f"reference point: {', '.join(unknown)} is not a goal of case {case.name}; goals: {', '.join(keys)}")
    highest = max(dose for _, dose in case.targets)
    axes, point = [], []
    for g in goals:
        coverage = g.op == ">="
        default = 0.0 if coverage else (100.0 if g.unit == "%" else 1.2 * highest)
        value = reference.get(g.key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
            raise ValueError(f"reference point: {g.key} must be a number, not {value!r}")
        axes.append(Axis(g.key, "max" if coverage else "min", f"{g.structure} {g.metric}", g.unit, ".1f"))
        point.append(float(value))
    return axes, point
