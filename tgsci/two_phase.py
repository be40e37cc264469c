"""The two-phase stop rule (``stop_when = "two_phase"``), as automated planners work (ECHO, Erasmus-iCycle):
first reach every goal; then keep lowering the tie-break (a plan's mean organ dose) with every goal
held as a constraint, and stop once ``plateau_steps`` steps in a row lowered it by less than
``plateau_margin``, or at the step budget.

Held as a constraint means: once a design meets every goal, one that breaks a goal never becomes
the best, however low its score (``rank``). Counted from the record's per-step bests, so a resumed
run stops exactly where an uninterrupted one would.
"""

from __future__ import annotations

from typing import Callable, Optional

from .objectives.base import Evaluation, HasGoals, Spares


def check(objective) -> None:
    """ValueError unless the objective has goals and a tie-break (``HasGoals`` with goals, ``Spares``)."""
    has_goals = isinstance(objective, HasGoals) and objective.goals_met(Evaluation("", None, error="probe")) is not None
    if not (has_goals and isinstance(objective, Spares)):
        raise ValueError("stop_when='two_phase' needs an objective with goals and a tie-break among designs that meet them "
                         "(a plan case with clinical goals: Spares.sparing)")


def rank(objective) -> Callable[[Evaluation], tuple]:
    """Sort key of valid evaluations: every goal met first, then the score."""
    return lambda ev: (0 if objective.goals_met(ev) else 1, ev.score)


def plateau(steps: list, objective, margin: float) -> tuple[bool, int]:
    """(every goal met yet, steps since the tie-break last fell by at least ``margin``) over the record's
    per-step bests; a step whose proposal failed (LLM error) is not counted."""
    reference: Optional[float] = None
    stale = 0
    for rec in steps:
        best = rec.best
        if not (best.valid and objective.goals_met(best)):
            continue
        value = objective.sparing(best)
        if reference is None or (value is not None and value <= reference - margin):
            reference, stale = value, 0
        elif rec.step > 0 and not rec.error:
            stale += 1
    return reference is not None, stale


def evaluations_to_goals(evaluations: list[Evaluation], objective) -> Optional[int]:
    """Simulations until (and with) the first design that meets every goal; None when none does."""
    count = 0
    for ev in evaluations:
        if ev.simulated:
            count += 1
            if ev.valid and objective.goals_met(ev):
                return count
    return None
