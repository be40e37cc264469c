"""TPE baseline: Optuna's Tree-structured Parzen Estimator over log-weights.

Works with any objective that exposes ``search_space() -> {name: (low, high)}`` (positive
bounds, searched on a log scale unless ``linear_params()`` names them), ``to_params(value) ->
{name: float}`` and either ``from_params(params) -> value`` or validates the JSON object
``{name: number}`` as a candidate (the plan objective has all of them). Every evaluation the
loop tells (the start, each step, a resumed run's history) is added with ``study.add_trial``,
so TPE models exactly what the loop evaluated, under the same budget as every other method.
Parameters outside the search space are clipped into it when told (a weight of 0 becomes the
lower bound).

Determinism: the sampler is re-seeded from the loop's per-step RNG before each step, and the
study holds only told evaluations in loop order (asked trials are closed as FAIL right away;
TPE ignores failed trials), so a resumed run proposes what an uninterrupted one would.

Pareto mode (an objective with ``pareto_axes()``): the study has one direction per axis and is told
each evaluation's metrics on those axes: Optuna's multi-objective TPE, and NSGA-II
(``NSGA2Proposer``: Optuna's NSGAIISampler; told evaluations are numbered into generations of
``population_size`` in loop order, as NSGA-II would have made them).
"""

from __future__ import annotations

import logging
import math
import warnings
from typing import Optional

from ..objectives.base import Pareto, SearchSpace
from .base import LoopState, Proposal, Proposer, unique_new


class TPEProposer(Proposer):
    name = "tpe"

    def __init__(self, n_startup_trials: int = 4, n_ei_candidates: int = 24, multivariate: bool = True, max_tries_per_item: int = 20):
        import optuna  # noqa: F401 - fail early with a clear ImportError

        self.n_startup_trials = n_startup_trials
        self.n_ei_candidates = n_ei_candidates
        self.multivariate = multivariate
        self.max_tries_per_item = max_tries_per_item
        self._study = None
        self._told = 0

    def describe(self) -> dict:
        return {
            "method": self.name, "n_startup_trials": self.n_startup_trials,
            "n_ei_candidates": self.n_ei_candidates, "multivariate": self.multivariate,
        }

    # ------------------------------------------------------------------ optuna plumbing
    def _make_distributions(self, objective) -> dict:
        from optuna.distributions import FloatDistribution

        if not isinstance(objective, SearchSpace):
            raise TypeError(f"{type(objective).__name__} has no numeric search space (search_space, linear_params, "
                            f"to_params, from_params); TPE needs named numeric bounds")
        space = objective.search_space()
        linear = objective.linear_params()
        for name, (low, high) in space.items():
            if not (low < high and math.isfinite(low) and math.isfinite(high) and (name in linear or low > 0)):
                raise ValueError(f"search space of {name!r} must satisfy 0 < low < high (or low < high on a linear scale), "
                                 f"got ({low}, {high})")
        return {n: FloatDistribution(low, high, log=n not in linear) for n, (low, high) in space.items()}

    def _sampler(self, seed: int):
        import optuna

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # experimental-feature warnings (multivariate, constant_liar)
            return optuna.samplers.TPESampler(
                n_startup_trials=self.n_startup_trials, n_ei_candidates=self.n_ei_candidates,
                multivariate=self.multivariate, constant_liar=True, seed=seed,
                warn_independent_sampling=False,
            )

    # ------------------------------------------------------------------ Proposer
    def bind(self, state: LoopState) -> None:
        import optuna

        self._objective = state.objective
        self._distributions = self._make_distributions(state.objective)
        self._axes = state.objective.pareto_axes() if isinstance(state.objective, Pareto) else []
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        logging.getLogger("optuna").setLevel(logging.WARNING)
        if self._axes:
            directions = ["minimize" if a.direction == "min" else "maximize" for a in self._axes]
            self._study = optuna.create_study(directions=directions, sampler=self._sampler(0))
        else:
            self._study = optuna.create_study(direction="minimize", sampler=self._sampler(0))
        self._told = 0

    def _told_attrs(self) -> dict:
        """System attributes of the next told trial (NSGA-II: its generation)."""
        return {}

    def _values(self, ev):
        """What the study is told for a valid evaluation: the score, or (Pareto mode) its axes' metrics."""
        if not self._axes:
            return {"value": float(ev.score)}
        values = [ev.metrics.get(a.metric) for a in self._axes]
        if any(v is None or not math.isfinite(v) for v in values):
            return None
        return {"values": [float(v) for v in values]}

    def tell(self, evaluations, failures) -> None:
        """Add each evaluation as a finished trial (complete, or failed when invalid)."""
        import optuna
        from optuna.trial import TrialState, create_trial

        distributions = self._distributions
        for ev in evaluations:
            try:
                params = self._objective.to_params(ev.value)
            except (ValueError, TypeError, AttributeError):
                continue  # an unparseable (invalid) value tells TPE nothing
            if set(params) != set(distributions):
                continue
            clipped = {n: min(max(float(params[n]), d.low), d.high) for n, d in distributions.items()}
            told = self._values(ev) if ev.valid else None
            if told is not None:
                trial = create_trial(state=TrialState.COMPLETE, params=clipped, distributions=distributions,
                                     system_attrs=self._told_attrs(), **told)
            else:
                trial = create_trial(state=TrialState.FAIL, params=clipped, distributions=distributions)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                self._study.add_trial(trial)
            self._told += 1

    def propose(self, state: LoopState, k: int) -> Proposal:
        from optuna.trial import TrialState

        objective = state.objective
        distributions = self._distributions
        self._study.sampler = self._sampler(state.rng.randrange(2**31))
        tried, taken, values = state.tried(), set(), []
        asked = []
        for _ in range(k * self.max_tries_per_item):
            if len(values) >= k:
                break
            trial = self._study.ask(distributions)
            asked.append(trial)
            value = unique_new(objective, self._value(objective, trial.params), tried, taken)
            if value is not None:
                taken.add(value)
                values.append(value)
        for trial in asked:  # their results arrive through tell() (add_trial)
            self._study.tell(trial, state=TrialState.FAIL)
        n_complete = len(self._study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
        return Proposal(values=values, loss=self._phase(n_complete))

    def _phase(self, n_complete: int) -> str:
        phase = "random start-up" if n_complete < self.n_startup_trials else "TPE"
        mode = f", {len(self._axes)} objectives" if self._axes else ""
        return f"TPE ({phase}{mode}) on {n_complete} completed evaluations of {self._told} told"


    @staticmethod
    def _value(objective, params: dict) -> Optional[str]:
        """The candidate of TPE's numbers (None when the objective refuses them: unique_new skips it)."""
        try:
            return objective.from_params(params)
        except Exception:  # noqa: BLE001 - an out-of-bounds draw is skipped like a duplicate
            return None


class NSGA2Proposer(TPEProposer):
    """NSGA-II (Optuna's NSGAIISampler) on the same search space, single- or multi-objective."""

    name = "nsga2"

    def __init__(self, population_size: int = 8, max_tries_per_item: int = 20):
        import optuna  # noqa: F401

        super().__init__(max_tries_per_item=max_tries_per_item)
        self.population_size = population_size

    def describe(self) -> dict:
        return {"method": self.name, "population_size": self.population_size}

    def _sampler(self, seed: int):
        import optuna

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return optuna.samplers.NSGAIISampler(population_size=self.population_size, seed=seed)

    def _told_attrs(self) -> dict:
        import optuna

        key = optuna.samplers.NSGAIISampler._get_generation_key()
        return {key: self._told // self.population_size}

    def _phase(self, n_complete: int) -> str:
        mode = f", {len(self._axes)} objectives" if self._axes else ""
        return f"NSGA-II (generation {self._told // self.population_size}, population {self.population_size}{mode}) on {n_complete} evaluations"

