"""Genetic algorithm baseline (Graph GA for molecules): rank-weighted parents, crossover, mutation.

The operators come from the objective (for molecules: mol_ga's Graph GA crossover and mutation,
after Jensen 2019); population = every valid candidate evaluated so far.
"""

from __future__ import annotations

from ..objectives.base import Crosses, Mutates
from .base import LoopState, Proposal, Proposer, unique_new


class GeneticProposer(Proposer):
    name = "graph-ga"
    needs = (Mutates,)  # crossover when the objective Crosses, else mutation only

    def __init__(self, population_size: int = 20, mutation_rate: float = 0.1, max_tries_per_item: int = 50):
        self.population_size = population_size
        self.mutation_rate = mutation_rate
        self.max_tries_per_item = max_tries_per_item

    def describe(self) -> dict:
        return {"method": self.name, "population_size": self.population_size, "mutation_rate": self.mutation_rate}

    def propose(self, state: LoopState, k: int) -> Proposal:
        objective, rng = state.objective, state.rng
        population = sorted((e for e in state.evaluations if e.valid), key=lambda e: e.score)[: self.population_size]
        if not population:
            population = [state.start]
        # Rank weights: the best parent is chosen most often.
        weights = [1.0 / (rank + 1) for rank in range(len(population))]
        tried, taken, values = state.tried(), set(), []
        for _ in range(k * self.max_tries_per_item):
            if len(values) >= k:
                break
            a, b = rng.choices(population, weights=weights, k=2)
            child = None
            if len(population) > 1 and a.value != b.value and isinstance(objective, Crosses):
                child = objective.crossover(a.value, b.value, rng)
            if child is None or rng.random() < self.mutation_rate:
                child = objective.neighbor(child or a.value, rng)
            value = unique_new(objective, child, tried, taken)
            if value is not None:
                taken.add(value)
                values.append(value)
        return Proposal(values=values, loss=f"population of {len(population)}")
