"""Dose-volume metrics on a vector of voxel doses (pure numpy; no pyRadPlan, no text).

Every voxel of one grid has the same volume, so volumes are voxel fractions. The engine
calls these on the **dose grid** (the grid the influence matrix lives on, e.g. 5 mm); numbers
on the finer CT grid differ (see ``ct_grid`` and ``benchmarks/results/plan_grids.txt``) because
interpolating the dose and rasterizing the structures at another resolution changes which
voxels sit in a structure's edge. Always say which grid a number is on.

Definitions (discrete and self-consistent, so ``V(D_x) >= x %`` always holds):

- ``Dx``: the minimum dose received by the hottest x % of the structure. With the doses
  sorted in decreasing order d(1) >= d(2) >= ... >= d(N), ``Dx = d(ceil(x N / 100))``
  (x = 0 gives the maximum). Near-maximum D2 and near-minimum D98 follow ICRU Report 83.
- ``V<dose>Gy``: percent of the structure's voxels receiving at least ``dose`` Gy.
- ``Dmean``/``Dmax``: mean and maximum voxel dose.
- ``HI`` (ICRU 83 homogeneity index): (D2 - D98) / D50; 0 is perfectly homogeneous.
- ``CI`` (Paddick conformity index, Paddick 2000, J Neurosurg 93 Suppl 3:219):
  TV_PIV^2 / (TV * PIV) with TV the target volume, PIV the volume (anywhere in the grid)
  receiving at least the reference isodose, TV_PIV the part of the target inside it;
  1 is perfect, lower is worse.
"""

from __future__ import annotations

import math
import re
from typing import Iterable

import numpy as np

STANDARD_D = (2.0, 50.0, 95.0, 98.0)
_METRIC_RE = re.compile(r"^(?:(Dmean|Dmax|Dmin|HI|CI)|D(\d+(?:\.\d+)?)|V(\d+(?:\.\d+)?)Gy)$")


def _as_doses(dose) -> np.ndarray:
    d = np.asarray(dose, dtype=np.float64).ravel()
    if d.size == 0:
        raise ValueError("empty structure: no voxels to compute a dose-volume metric on")
    return d


def dose_at_volume(dose, percent: float) -> float:
    """``D<percent>`` in the units of ``dose``: minimum dose to the hottest ``percent`` % of voxels."""
    if not 0.0 <= percent <= 100.0:
        raise ValueError(f"volume percent must be within [0, 100], got {percent}")
    d = np.sort(_as_doses(dose))[::-1]
    k = max(1, math.ceil(round(percent * d.size / 100.0, 9)))
    return float(d[min(k, d.size) - 1])


def volume_at_dose(dose, level: float) -> float:
    """``V<level>``: percent of voxels receiving at least ``level``."""
    d = _as_doses(dose)
    return float(100.0 * np.count_nonzero(d >= level) / d.size)


def homogeneity_index(dose) -> float:
    """ICRU 83: (D2 - D98) / D50 (nan when D50 is 0)."""
    d50 = dose_at_volume(dose, 50.0)
    if d50 <= 0:
        return float("nan")
    return (dose_at_volume(dose, 2.0) - dose_at_volume(dose, 98.0)) / d50


def paddick_ci(dose_all, target_index, reference_dose: float) -> float:
    """Paddick conformity index TV_PIV^2 / (TV * PIV); ``dose_all`` covers the whole grid."""
    dose_all = np.asarray(dose_all).ravel()
    target_index = np.asarray(target_index)
    tv = target_index.size
    if tv == 0:
        raise ValueError("empty target")
    piv = int(np.count_nonzero(dose_all >= reference_dose))
    tv_piv = int(np.count_nonzero(dose_all[target_index] >= reference_dose))
    if piv == 0:
        return 0.0
    return tv_piv * tv_piv / (tv * piv)


def parse_metric(name: str) -> tuple[str, float | None]:
    """'D95' -> ('D', 95.0); 'V70Gy' -> ('V', 70.0); 'Dmean' -> ('Dmean', None)."""
    m = _METRIC_RE.match(name)
    if not m:
        raise ValueError(
            f"unknown metric {name!r}; use Dmean, Dmax, Dmin, HI, CI, D<percent> (e.g. D95) or V<dose>Gy (e.g. V70Gy)"
        )
    if m.group(1):
        return m.group(1), None
    if m.group(2):
        value = float(m.group(2))
        if value > 100:
            raise ValueError(f"D{m.group(2)}: volume percent above 100")
        return "D", value
    return "V", float(m.group(3))


def metric_key(structure: str, metric: str) -> str:
    return f"{structure}.{metric}"


def _fmt(x: float) -> str:
    return f"{x:g}"


def structure_metrics(
    dose,
    name: str,
    *,
    d_levels: Iterable[float] = (),
    v_levels: Iterable[float] = (),
) -> dict[str, float]:
    """Dmean, Dmax, Dmin, D2, D50, D95, D98, extra D<x> and V<dose>Gy for one structure."""
    d = _as_doses(dose)
    out = {metric_key(name, "Dmean"): float(d.mean()), metric_key(name, "Dmax"): float(d.max()),
           metric_key(name, "Dmin"): float(d.min())}
    levels = sorted(set(STANDARD_D) | {float(v) for v in d_levels})
    # D_x is the k-th largest dose: an order statistic, so a partial sort (linear time) gives it exactly
    ascending = {x: d.size - min(max(1, math.ceil(round(x * d.size / 100.0, 9))), d.size) for x in levels}
    part = np.partition(d, sorted(set(ascending.values())))
    for x in levels:
        out[metric_key(name, f"D{_fmt(x)}")] = float(part[ascending[x]])
    for level in sorted({float(v) for v in v_levels}):
        out[metric_key(name, f"V{_fmt(level)}Gy")] = float(100.0 * np.count_nonzero(d >= level) / d.size)
    return out


def metric_value(dose, name: str, metric: str) -> float:
    """One metric by its name (helper for tests and ad-hoc use; CI needs the whole grid)."""
    kind, x = parse_metric(metric)
    if kind == "Dmean":
        return float(_as_doses(dose).mean())
    if kind == "Dmax":
        return float(_as_doses(dose).max())
    if kind == "Dmin":
        return float(_as_doses(dose).min())
    if kind == "HI":
        return homogeneity_index(dose)
    if kind == "D":
        return dose_at_volume(dose, x)
    if kind == "V":
        return volume_at_dose(dose, x)
    raise ValueError(f"{metric} needs the whole dose grid (use paddick_ci)")


def dvh_curve(dose, levels: np.ndarray) -> np.ndarray:
    """Cumulative DVH: percent of voxels with dose >= each level."""
    d = np.sort(_as_doses(dose))
    return 100.0 * (d.size - np.searchsorted(d, levels, side="left")) / d.size
