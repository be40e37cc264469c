"""Proposer interface: how a method turns the loop state into the next k candidates.

TGD, random search and Graph GA are proposers behind this one interface, so a baseline
runs through exactly the same loop, budget and run record as TGD.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Optional

from ..engine import Usage
from ..objectives.base import Evaluation, Objective
from ..optim import History, ProposalFailure


@dataclass
class LoopState:
    objective: Objective
    start: Evaluation
    current: Evaluation
    best: Evaluation
    evaluations: list[Evaluation]
    history: History
    rng: random.Random
    step: int = 0

    def tried(self) -> set[str]:
        return {e.value for e in self.evaluations}


@dataclass
class Proposal:
    values: list[str] = field(default_factory=list)
    failures: list[ProposalFailure] = field(default_factory=list)
    loss: str = ""
    feedback: str = ""
    replies: list[str] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)


class Proposer:
    name = "base"

    def propose(self, state: LoopState, k: int) -> Proposal:
        raise NotImplementedError

    def describe(self) -> dict:
        return {"method": self.name}


def unique_new(objective: Objective, raw: Optional[str], tried: set[str], taken: set[str]) -> Optional[str]:
    """Validated, not-yet-tried form of ``raw``, or None."""
    if raw is None:
        return None
    try:
        value = objective.validate(raw)
    except ValueError:
        return None
    if value in tried or value in taken:
        return None
    return value
