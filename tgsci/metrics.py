"""Run quality figures over evaluation count, after the PMO benchmark (Gao et al., NeurIPS 2022).

Scores are tgsci's (lower is better). ``top_k_auc`` is the mean, over evaluation counts
1..budget, of the mean of the k best scores found so far; a run that stops before the budget
keeps its last value (PMO's convention), so stopping early is neither rewarded nor punished.
"""

from __future__ import annotations

import math
from typing import Iterable, Optional


def _valid_scores(scores: Iterable[Optional[float]]) -> list[float]:
    return [s for s in scores if s is not None and math.isfinite(s)]


def top_k(scores: Iterable[Optional[float]], k: int) -> Optional[float]:
    """Mean of the k best (lowest) scores; over fewer if fewer exist; None if none."""
    best = sorted(_valid_scores(scores))[:k]
    return sum(best) / len(best) if best else None


def top_k_auc(scores_in_order: list[Optional[float]], budget: Optional[int] = None, k: int = 10) -> Optional[float]:
    """PMO-style top-k AUC over evaluation count; None scores are failed evaluations (calls, no score)."""
    budget = budget or len(scores_in_order)
    if budget < 1:
        raise ValueError("budget must be >= 1")
    best: list[float] = []
    curve: list[Optional[float]] = []
    for s in scores_in_order[:budget]:
        if s is not None and math.isfinite(s):
            best = sorted(best + [s])[:k]
        curve.append(sum(best) / len(best) if best else None)
    first = next((c for c in curve if c is not None), None)
    if first is None:
        return None
    curve = [first if c is None else c for c in curve]  # before the first valid score (rare)
    curve += [curve[-1]] * (budget - len(curve))  # a run that stopped early keeps its last value
    return sum(curve) / budget


def run_figures(evaluations, k: int = 10, budget: Optional[int] = None) -> dict:
    """top-1, top-k and top-k AUC of a run's simulated evaluations, in the order they were made."""
    scores = [e.score for e in evaluations if e.simulated]
    return {"top1": top_k(scores, 1), f"top{k}": top_k(scores, k), f"top{k}_auc": top_k_auc(scores, budget, k), "evaluations": len(scores)}
