"""The one canonical form of a weight vector: sorted keys, 4 significant digits, JSON text.

Two vectors with the same canonical form are the same plan: the dose simulator optimizes the
rounded weights, caches by this text, and the plan objective uses it as the candidate value.
"""

from __future__ import annotations

import json

SIGNIFICANT_DIGITS = 4


def round_sig(x: float, digits: int = SIGNIFICANT_DIGITS) -> float | int:
    """``x`` to ``digits`` significant digits; integral results as int (so JSON shows no '.0')."""
    if x == 0:
        return 0
    r = float(f"{x:.{digits}g}")
    return int(r) if r.is_integer() and abs(r) < 2**53 else r


def canonical_weights(weights: dict) -> str:
    """``{"b": 2.0, "a": 1.5}`` -> ``'{"a": 1.5, "b": 2}'``."""
    return json.dumps({k: round_sig(float(weights[k])) for k in sorted(weights)}, sort_keys=True)


def rounded(weights: dict) -> dict[str, float]:
    """The weights the canonical form stands for, as floats."""
    return {k: float(v) for k, v in json.loads(canonical_weights(weights)).items()}
