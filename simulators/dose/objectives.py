"""The objective kinds of the fluence optimization, defined as pyRadPlan 0.5 defines them.

A term scores the dose d of one VOI's N dose-grid voxels (after overlap priorities; voxels whose
influence row is empty count, with dose 0). With D the term's dose level and V its volume (%):

==================  =====================================================  ==========================
kind                f(d)                                                   pyRadPlan 0.5 class
==================  =====================================================  ==========================
squared_deviation   1/N sum (d - D)^2                                      SquaredDeviation(d_ref)
squared_overdose    1/N sum max(d - D, 0)^2                                SquaredOverdosing(d_max)
squared_underdose   1/N sum min(d - D, 0)^2                                SquaredUnderdosing(d_min)
mean_dose           (mean d - D)^2, or |mean d - D| with ``linear``         MeanDose(d_ref, f_diff)
eud                 (gEUD_a(d) - D)^2 or |.|; gEUD_a = (mean d^a)^(1/a)     EUD(eud_ref, k = 1/a)
min_dvh             1/N sum (d - D)^2 over Q <= d <= D, Q = quantile 1-V    MinDVH(d, v_min)
max_dvh             1/N sum (d - D)^2 over D <= d <= Q, Q = quantile 1-V    MaxDVH(d, v_max)
==================  =====================================================  ==========================

The quantile is numpy's "linear" one over all N voxels, as pyRadPlan's; the DVH gradients hold Q
fixed, as pyRadPlan's do. pyRadPlan's ``k`` is 1/a: tgsci takes the generalized-EUD exponent a
that physicists quote (a >= 1; a = 1 is the mean dose, a ~ 8-12 a serial organ). At zero dose
(every fluence starts at 0) pyRadPlan's EUD gradient is 0 * inf = NaN; here it is 0, the limit
of the quadratic's gradient for a reference of 0. The weight multiplies f, as in pyRadPlan.

The three squared kinds run in the compiled kernels and can be screened (an overdose row below
its level contributes exactly 0). The other four cannot: a mean and an EUD give every voxel of
their VOI a gradient, and a DVH objective's quantile needs every voxel's dose, so their rows are
computed at every evaluation (``optimizer._row_limits``).
"""

from __future__ import annotations

import math

import numpy as np

SQUARED = ("squared_deviation", "squared_overdose", "squared_underdose")
NONLINEAR = ("mean_dose", "eud", "min_dvh", "max_dvh")
KINDS = SQUARED + NONLINEAR
DVH = ("min_dvh", "max_dvh")

#: words for prompts and reports: "<kind words> <dose> Gy"
WORDS = {
    "squared_deviation": "squared deviation from",
    "squared_overdose": "squared overdose above",
    "squared_underdose": "squared underdose below",
    "mean_dose": "mean dose towards",
    "eud": "generalized EUD towards",
    "min_dvh": "min DVH: at least V% of the volume at or above",
    "max_dvh": "max DVH: at most V% of the volume at or above",
}


def check_parameters(kind: str, dose: float, volume, exponent) -> str | None:
    """Why these parameters do not define an objective of ``kind`` (None when they do)."""
    if kind not in KINDS:
        return f"kind must be one of {', '.join(KINDS)}, not {kind!r}"
    if not (isinstance(dose, (int, float)) and math.isfinite(dose) and dose >= 0):
        return f"dose_gy must be a finite number >= 0, not {dose!r}"
    if kind in DVH:
        if volume is None:
            return f"a {kind} objective needs volume_pct (the volume in % its dose_gy applies to)"
        if not (isinstance(volume, (int, float)) and 0 <= volume <= 100):
            return f"volume_pct must be within [0, 100], not {volume!r}"
    elif volume is not None:
        return f"volume_pct applies to min_dvh and max_dvh objectives only, not to {kind}"
    if kind == "eud":
        if exponent is None:
            return "an eud objective needs exponent (the generalized-EUD a: 1 = mean dose, ~8-12 for a serial organ)"
        if not (isinstance(exponent, (int, float)) and math.isfinite(exponent) and exponent > 0):
            return f"the EUD exponent must be a finite number > 0, not {exponent!r}"
        if exponent < 1:
            return f"the EUD exponent must be >= 1 (got {exponent:g}: below 1 its gradient is infinite at zero dose)"
    elif exponent is not None:
        return f"exponent applies to eud objectives only, not to {kind}"
    return None


def linear_quantile(d: np.ndarray, n_zeros: int, p: float) -> float:
    """numpy's / pyRadPlan's "linear" quantile ``p`` of the values ``d`` plus ``n_zeros`` zeros
    (d >= 0: the zeros sort first)."""
    n = d.size + n_zeros
    pos = p * (n - 1)
    lo = int(math.floor(pos))
    hi = min(lo + 1, n - 1)
    need = sorted({lo, hi})
    picks = [k - n_zeros for k in need if k >= n_zeros]
    part = np.partition(d, picks) if picks else d
    value = {k: (0.0 if k < n_zeros else float(part[k - n_zeros])) for k in need}
    if pos == lo:
        return value[lo]
    w = pos - lo
    return value[hi] * w + (1.0 - w) * value[lo]


def value_and_gradient(kind: str, d32: np.ndarray, n_voxels: int, n_empty: int, dose: float,
                       volume: float = float("nan"), exponent: float = 1.0, linear: bool = False) -> tuple[float, np.ndarray]:
    """f of one non-squared term (unweighted) and df/dd on the term's rows (float64), from the rows'
    doses ``d32`` (the ``n_empty`` other voxels of the VOI have dose 0). Sums run over a contiguous
    copy in row order, so a column's numbers do not depend on the other columns of a block."""
    d = np.ascontiguousarray(d32, dtype=np.float64)
    n = float(n_voxels)
    if kind == "mean_dose":
        diff = float(np.sum(d)) / n - dose
        f = abs(diff) if linear else diff * diff
        coef = (float(np.sign(diff)) if linear else 2.0 * diff) / n
        return f, np.full(d.size, coef)
    if kind == "eud":
        a = float(exponent)
        powered = d**a
        s = float(np.sum(powered))
        diff = (s / n) ** (1.0 / a) - dose
        f = abs(diff) if linear else diff * diff
        outer = float(np.sign(diff)) if linear else 2.0 * diff
        if s <= 0.0:  # every voxel at 0: see the module docstring
            return f, np.zeros(d.size)
        with np.errstate(divide="ignore", invalid="ignore"):
            inner = d ** (a - 1.0) if a != 1.0 else np.ones(d.size)
        return f, outer * s ** (1.0 / a - 1.0) * inner / n ** (1.0 / a)
    if kind in DVH:
        q = linear_quantile(d, n_empty, 1.0 - volume / 100.0)
        dev = d - dose
        if kind == "min_dvh":
            keep = (d <= dose) & (d >= q)
            empty_in = n_empty if (0.0 <= dose and 0.0 >= q) else 0
        else:
            keep = (d >= dose) & (d <= q)
            empty_in = n_empty if (0.0 >= dose and 0.0 <= q) else 0
        dev = np.where(keep, dev, 0.0)
        f = (float(np.sum(dev * dev)) + empty_in * dose * dose) / n
        return f, 2.0 * dev / n
    raise ValueError(f"{kind!r} is not a non-squared objective kind")
