"""The proposer interface: how a method turns what the loop knows into the next k candidates.

Modelled on Optuna's samplers: TGD, random search, Graph GA and TPE are one small class each
behind ``Proposer``, so a baseline runs through exactly the same loop, budget and run record
as TGD. The loop calls ``bind`` once per run, ``tell`` with every evaluated candidate and
rejected proposal in loop order (also when a run resumes, so a proposer rebuilds its memory
from the record), and ``propose`` once per step.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Optional

from ..engine import Usage
from ..objectives.base import Evaluation, Objective
from ..optim import ProposalFailure


@dataclass
class LoopState:
    """What a proposer may read: the objective, start, current and best candidates, every
    evaluation so far, and the run's RNG (re-seeded per step, so a resumed run draws the same)."""

    objective: Objective
    start: Evaluation
    current: Evaluation
    best: Evaluation
    rng: random.Random
    step: int = 0
    evaluations: list[Evaluation] = field(default_factory=list)
    _by_value: dict[str, Evaluation] = field(default_factory=dict, repr=False)

    def add(self, evaluations: list[Evaluation]) -> None:
        for ev in evaluations:
            self.evaluations.append(ev)
            self._by_value.setdefault(ev.value, ev)

    def tried(self) -> set[str]:
        """Every value evaluated so far."""
        return set(self._by_value)

    def measurement(self, value: str) -> Evaluation:
        """The evaluation of ``value``: the loop's own when it has one, else simulated now."""
        if value not in self._by_value:
            self.add(self.objective.evaluate([value]))
        return self._by_value[value]


@dataclass
class Proposal:
    values: list[str] = field(default_factory=list)
    failures: list[ProposalFailure] = field(default_factory=list)
    loss: str = ""
    feedback: str = ""
    replies: list[str] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    origins: dict[str, str] = field(default_factory=dict)  # value -> origin, for values the method did not propose itself


class Proposer:
    name = "base"
    needs: tuple[type, ...] = ()  # capabilities (objectives.base Protocols) the objective must have

    def check(self, objective: Objective) -> None:
        """ValueError before any evaluation when ``objective`` lacks a capability this method needs."""
        for need in self.needs:
            if not isinstance(objective, need):
                methods = ", ".join(f"{name}()" for name in vars(need) if not name.startswith("_"))
                raise ValueError(f"method {self.name!r} needs an objective with the {need.__name__} capability ({methods}); "
                                 f"{type(objective).__name__} has none: give a plain function neighbor=..., or choose method 'tgd'")

    def bind(self, state: LoopState) -> None:
        """Called once per run, before the first ``tell``."""

    def tell(self, evaluations: list[Evaluation], failures: list[ProposalFailure]) -> None:
        """What the loop evaluated (and rejected) since the last call."""

    def propose(self, state: LoopState, k: int) -> Proposal:
        raise NotImplementedError

    def describe(self) -> dict:
        return {"method": self.name}


def unique_new(objective: Objective, raw: Optional[str], tried: set[str], taken: set[str]) -> Optional[str]:
    """Validated, not-yet-tried form of ``raw``, or None."""
    if raw is None:
        return None
    try:
        value = objective.checked(raw)
    except ValueError:
        return None
    if value in tried or value in taken:
        return None
    return value
