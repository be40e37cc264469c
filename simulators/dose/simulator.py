"""``DoseSimulator``: the dose engine behind a result cache, like ``DockingSimulator`` for Vina.

Each weight vector is reduced to its canonical form (``weights.canonical_weights``) and
optimized at most once: repeats in this process come from memory (with their fluence), repeats
in another process from a SQLite table next to the influence-matrix cache. The cache key holds
everything a result depends on (influence matrix, objectives, iterations, metric levels,
optimizer version), so other settings never get a stale plan.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Optional

import numpy as np

from ..cache import ResultCache
from .cases import CaseSpec
from .engine import DoseEngine, PlanResult
from .matrix import default_cache_dir
from .optimizer import kernel_backend
from .weights import canonical_weights

#: Changes whenever the inner optimizer's results change for the same inputs.
OPTIMIZER_VERSION = "tgsci L-BFGS-B lock-step v1"  # not for rounding: doses summed in float64 since 0.2 differ by < 1e-4 Gy


class DoseSimulator:
    """``evaluate([{"PTV": 100, ...}, ...]) -> list[PlanResult]``, batch-first and cached (plans in
    either form of ``weights``)."""

    def __init__(self, case: CaseSpec, cache_dir: Optional[str | Path] = None, use_result_cache: bool = True, **engine_options):
        self.engine = DoseEngine(case, cache_dir=cache_dir, **engine_options)
        self.case = self.engine.case
        directory = Path(cache_dir) if cache_dir else default_cache_dir()
        self.store = ResultCache(directory, name="plan-results.sqlite") if use_result_cache else None
        self._memo: dict[str, PlanResult] = {}
        self.optimized = 0  # vectors actually optimized (cache misses), for tests and benchmarks

    def cache_fields(self, canonical: str) -> dict:
        levels = {s: [sorted(d), sorted(v)] for s, (d, v) in self.case.metric_levels().items()}
        objectives = [{k: v for k, v in asdict(o).items() if k != "weight"} for o in self.case.objectives]
        return {
            "matrix": self.engine.data.key, "objectives": objectives, "max_iter": self.case.plan.max_iter,
            "levels": levels, "target": self.case.target, "optimizer": OPTIMIZER_VERSION, "weights": canonical,
            "judged": {"grid": self.case.plan.judge_grid, "normalize": self.case.normalize,
                       "prescription_gy": self.case.prescription_gy, "goals": [g.as_data() for g in self.case.goals]},
            "kernel": kernel_backend(),  # numba's float64 sums and scipy's float32 ones differ in the last digits
        }

    def evaluate(self, weight_vectors: list[dict]) -> list[PlanResult]:
        """One result per vector, in order; invalid vectors get ``error``; new ones run in one batch."""
        out: list[Optional[PlanResult]] = [None] * len(weight_vectors)
        todo: dict[str, list[int]] = {}
        for i, w in enumerate(weight_vectors):
            reason = self.engine.check_plan(w)
            if reason:
                out[i] = PlanResult(candidate=str(w), error=reason)
                continue
            key = canonical_weights(w)
            hit = self._lookup(key)
            if hit is not None:
                out[i] = hit
            else:
                todo.setdefault(key, []).append(i)
        if todo:
            keys = list(todo)
            results = self.engine.evaluate([json.loads(k) for k in keys])
            for key, res in zip(keys, results):
                if not res.error:
                    self.optimized += 1
                    self._memo[key] = res
                    if self.store is not None:
                        self.store.put(self.cache_fields(key), {"metrics": res.metrics, "optimizer": _plain(res.optimizer)})
                for n, i in enumerate(todo[key]):
                    out[i] = res if n == 0 else _cached_copy(res)
        return out  # type: ignore[return-value]

    def _lookup(self, key: str) -> Optional[PlanResult]:
        if key in self._memo:
            return _cached_copy(self._memo[key])
        if self.store is None:
            return None
        stored = self.store.get(self.cache_fields(key))
        if stored is None:
            return None
        return PlanResult(candidate=key, metrics=stored["metrics"], weights=json.loads(key),
                          optimizer=stored.get("optimizer", {}), cached=True)

    def fluence(self, weights: dict | str) -> Optional[np.ndarray]:
        """Optimized fluence of a vector (re-optimized when it came from the disk cache)."""
        key = canonical_weights(json.loads(weights) if isinstance(weights, str) else weights)
        res = self._memo.get(key)
        if res is None or res.fluence is None:
            res = self.engine.evaluate([json.loads(key)])[0]
            if res.error:
                return None
            self._memo[key] = res
        return res.fluence

    def close(self) -> None:
        self.engine.optimizer.close()


def _cached_copy(res: PlanResult) -> PlanResult:
    return PlanResult(candidate=res.candidate, metrics=dict(res.metrics), error=res.error, weights=dict(res.weights),
                      fluence=res.fluence, optimizer=dict(res.optimizer), cached=True, seconds=0.0)


def _plain(info: dict) -> dict:
    """The JSON-able part of the optimizer report."""
    return {k: v for k, v in info.items() if isinstance(v, (int, float, str, bool)) or v is None}
