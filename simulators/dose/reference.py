"""pyRadPlan's own ``fluence_optimization`` for given weights (the reference our optimizer must match)."""

from __future__ import annotations

import logging
import time
import warnings
from typing import Optional

import numpy as np

from .cases import CaseSpec
from .matrix import PyRadPlanObjects, build

_KIND_CLASS = {
    "squared_deviation": ("SquaredDeviation", "d_ref"),
    "squared_overdose": ("SquaredOverdosing", "d_max"),
    "squared_underdose": ("SquaredUnderdosing", "d_min"),
}


def structure_set_with_weights(cst, case: CaseSpec, weights: dict):
    """A copy of ``cst`` whose VOIs carry the case's objectives with ``weights`` as priorities."""
    from pyRadPlan.optimization import objectives as objmod

    per_structure: dict[str, list] = {}
    for obj in case.objectives:
        cls_name, level = _KIND_CLASS[obj.kind]
        cls = getattr(objmod, cls_name)
        per_structure.setdefault(obj.structure, []).append(cls(priority=float(weights[obj.name]), **{level: obj.dose_gy}))
    vois = [v.model_copy(update={"objectives": per_structure.get(v.name, [])}) for v in cst.vois]
    return cst.model_copy(update={"vois": vois})


def pyradplan_fluence(
    raw: Optional[PyRadPlanObjects], case: CaseSpec, weights: dict, max_iter: Optional[int] = None
) -> tuple[np.ndarray, dict]:
    """Fluence from pyRadPlan's ``fluence_optimization`` (scipy L-BFGS-B) and info (seconds, iterations)."""
    from pyRadPlan import fluence_optimization

    if raw is None:
        _, raw = build(case)
    pln = raw.pln.model_copy(deep=True)
    pln.prop_opt = {"solver": "scipy", "max_iter": int(max_iter or case.plan.max_iter), "display": False}
    cst = structure_set_with_weights(raw.cst, case, weights)
    info: dict = {}
    level = logging.getLogger("pyRadPlan").level
    logging.getLogger("pyRadPlan").setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t0 = time.perf_counter()
            w = fluence_optimization(raw.ct, cst, raw.stf, raw.dij, pln, opt_info=info)
            seconds = time.perf_counter() - t0
    finally:
        logging.getLogger("pyRadPlan").setLevel(level)
    result = info.get("result_info", {})
    return np.asarray(w, dtype=np.float64), {
        "seconds": seconds, "nit": info.get("num_iter"), "nfev": int(result.get("nfev", 0)) if hasattr(result, "get") else None,
        "message": str(result.get("message", "")) if hasattr(result, "get") else "",
    }
