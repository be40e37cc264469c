"""Random search baseline: random neighbors (objective's mutation operator) of the best so far."""

from __future__ import annotations

from ..objectives.base import Mutates
from .base import LoopState, Proposal, Proposer, unique_new


class RandomProposer(Proposer):
    name = "random"
    needs = (Mutates,)

    def __init__(self, max_tries_per_item: int = 50):
        self.max_tries_per_item = max_tries_per_item

    def propose(self, state: LoopState, k: int) -> Proposal:
        parent = state.best if state.best.valid else state.start
        tried, taken = state.tried(), set()
        values = []
        for _ in range(k * self.max_tries_per_item):
            if len(values) >= k:
                break
            value = unique_new(state.objective, state.objective.neighbor(parent.value, state.rng), tried, taken)
            if value is not None:
                taken.add(value)
                values.append(value)
        return Proposal(values=values, loss=state.objective.summarize(parent))
