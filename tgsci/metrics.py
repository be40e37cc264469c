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


def top_k_auc(scores_in_order: list[Optional[float]], k: int = 10, budget: Optional[int] = None) -> Optional[float]:
    """PMO-style top-k AUC over evaluation count; invalid evaluations count as calls but not as scores."""
    budget = budget or len(scores_in_order)
    if budget <= 0:
        return None
    curve, seen, last = [], [], None
    for i in range(budget):
        if i < len(scores_in_order) and scores_in_order[i] is not None and math.isfinite(scores_in_order[i]):
            seen.append(scores_in_order[i])
            seen.sort()
            del seen[k:]
            last = sum(seen) / len(seen)
        if last is not None:
            curve.append(last)
    return sum(curve) / len(curve) if curve else None


def run_figures(evaluations, k: int = 10, budget: Optional[int] = None) -> dict:
    """top-1, top-k and top-k AUC of a run's simulated evaluations, in the order they were made."""
    scores = [e.score for e in evaluations if e.simulated]
    return {"top1": top_k(scores, 1), f"top{k}": top_k(scores, k), f"top{k}_auc": top_k_auc(scores, k, budget), "evaluations": len(scores)}
