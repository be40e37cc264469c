"""The one canonical form of a plan: sorted keys, 4 significant digits, JSON text.

A plan is a weight vector ``{"PTV": 1000, "Rectum": 300}``, or, when the case tunes dose levels,
``{"weights": {...}, "dose_gy": {"Rectum": 70}, "volume_pct": {"Rectum": 20}}`` (levels not
named keep the case's). Two plans with the same canonical form are the same plan: the dose
simulator optimizes the rounded numbers, caches by this text, and the plan objective uses it as
the candidate value.
"""

from __future__ import annotations

import json

SIGNIFICANT_DIGITS = 4
LEVEL_KEYS = ("dose_gy", "volume_pct")


def round_sig(x: float, digits: int = SIGNIFICANT_DIGITS) -> float | int:
    """``x`` to ``digits`` significant digits; integral results as int (so JSON shows no '.0')."""
    if x == 0:
        return 0
    r = float(f"{x:.{digits}g}")
    return int(r) if r.is_integer() and abs(r) < 2**53 else r


def split_plan(plan: dict) -> tuple[dict, dict, dict]:
    """(weights, dose levels, volumes) of a plan in either form."""
    if isinstance(plan.get("weights"), dict):
        return plan["weights"], dict(plan.get("dose_gy") or {}), dict(plan.get("volume_pct") or {})
    return plan, {}, {}


def join_plan(weights: dict, doses: dict | None = None, volumes: dict | None = None) -> dict:
    """The plan of these parts: the plain weight vector when no level is given."""
    if not doses and not volumes:
        return dict(weights)
    out = {"weights": dict(weights)}
    if doses:
        out["dose_gy"] = dict(doses)
    if volumes:
        out["volume_pct"] = dict(volumes)
    return out


def _rounded(table: dict) -> dict:
    return {k: round_sig(float(table[k])) for k in sorted(table)}


def canonical_weights(plan: dict) -> str:
    """``{"b": 2.0, "a": 1.5}`` -> ``'{"a": 1.5, "b": 2}'``; a plan with levels keeps its three tables."""
    weights, doses, volumes = split_plan(plan)
    if not doses and not volumes:
        return json.dumps(_rounded(weights), sort_keys=True)
    return json.dumps({k: _rounded(v) for k, v in (("weights", weights), ("dose_gy", doses), ("volume_pct", volumes)) if v},
                      sort_keys=True)

