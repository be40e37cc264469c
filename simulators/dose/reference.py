"""pyRadPlan's own ``fluence_optimization`` for given weights (the reference our optimizer must match)."""

from __future__ import annotations

import logging
import time
import warnings
from typing import Optional

import numpy as np

from .cases import CaseSpec
from .matrix import PyRadPlanObjects, build

def pyradplan_objective(obj, weight: float, dose: float | None = None, volume: float | None = None):
    """pyRadPlan 0.5's objective for one of the case's objectives (``objectives`` maps the kinds),
    with priority ``weight`` and, optionally, another dose level or volume."""
    from pyRadPlan.optimization import objectives as objmod

    d = obj.dose_gy if dose is None else float(dose)
    v = obj.volume_pct if volume is None else float(volume)
    f_diff = "linear" if obj.linear else "quadratic"
    made = {
        "squared_deviation": lambda: objmod.SquaredDeviation(d_ref=d),
        "squared_overdose": lambda: objmod.SquaredOverdosing(d_max=d),
        "squared_underdose": lambda: objmod.SquaredUnderdosing(d_min=d),
        "mean_dose": lambda: objmod.MeanDose(d_ref=d, f_diff=f_diff),
        "eud": lambda: objmod.EUD(eud_ref=d, k=1.0 / float(obj.exponent), f_diff=f_diff),  # pyRadPlan's k is 1/a
        "min_dvh": lambda: objmod.MinDVH(d=d, v_min=v),
        "max_dvh": lambda: objmod.MaxDVH(d=d, v_max=v),
    }[obj.kind]()
    return made.model_copy(update={"priority": float(weight)})


def structure_set_with_weights(cst, case: CaseSpec, weights: dict, doses: Optional[dict] = None, volumes: Optional[dict] = None):
    """A copy of ``cst`` whose VOIs carry the case's objectives with ``weights`` as priorities
    (and ``doses``/``volumes`` where given, by objective name)."""
    per_structure: dict[str, list] = {}
    for obj in case.objectives:
        per_structure.setdefault(obj.structure, []).append(
            pyradplan_objective(obj, weights[obj.name], (doses or {}).get(obj.name), (volumes or {}).get(obj.name)))
    vois = [v.model_copy(update={"objectives": per_structure.get(v.name, [])}) for v in cst.vois]
    return cst.model_copy(update={"vois": vois})


def pyradplan_fluence(
    raw: Optional[PyRadPlanObjects], case: CaseSpec, weights: dict, max_iter: Optional[int] = None,
    x0: Optional[np.ndarray] = None, doses: Optional[dict] = None, volumes: Optional[dict] = None,
) -> tuple[np.ndarray, dict]:
    """Fluence from pyRadPlan's ``fluence_optimization`` (scipy L-BFGS-B) and info (seconds, iterations).
    ``x0``: start there instead of pyRadPlan's zeros (its EUD gradient is NaN at zero dose)."""
    from pyRadPlan import fluence_optimization
    from pyRadPlan.optimization.problems import _nonlin_fluence

    if raw is None:
        _, raw = build(case)
    pln = raw.pln.model_copy(deep=True)
    pln.prop_opt = {"solver": "scipy", "max_iter": int(max_iter or case.plan.max_iter), "display": False}
    cst = structure_set_with_weights(raw.cst, case, weights, doses, volumes)
    info: dict = {}
    level = logging.getLogger("pyRadPlan").level
    logging.getLogger("pyRadPlan").setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            problem = _nonlin_fluence.NonLinearFluencePlanningProblem
            original = problem._solve
            if x0 is not None:
                problem._solve = lambda self: self.solver.solve(np.asarray(x0, dtype=np.float64).copy())
            t0 = time.perf_counter()
            try:
                w = fluence_optimization(raw.ct, cst, raw.stf, raw.dij, pln, opt_info=info)
            finally:
                problem._solve = original
            seconds = time.perf_counter() - t0
    finally:
        logging.getLogger("pyRadPlan").setLevel(level)
    result = info.get("result_info", {})
    return np.asarray(w, dtype=np.float64), {
        "seconds": seconds, "nit": info.get("num_iter"), "nfev": int(result.get("nfev", 0)) if hasattr(result, "get") else None,
        "message": str(result.get("message", "")) if hasattr(result, "get") else "",
    }


def pyradplan_objective_and_gradient(raw: PyRadPlanObjects, case: CaseSpec, weights: dict, x: np.ndarray,
                                     doses: Optional[dict] = None, volumes: Optional[dict] = None) -> tuple[float, np.ndarray]:
    """f and its gradient at fluence ``x`` from pyRadPlan's own planning problem (the objectives' and
    the dose's code as pyRadPlan runs them)."""
    from pyRadPlan.optimization.problems import _nonlin_fluence
    from pyRadPlan.optimization.problems import get_problem_from_pln

    pln = raw.pln.model_copy(deep=True)
    pln.prop_opt = {"solver": "scipy", "max_iter": 1, "display": False}
    cst = structure_set_with_weights(raw.cst, case, weights, doses, volumes)
    problem = get_problem_from_pln(pln)
    out = {}

    def evaluate(self):
        x64 = np.asarray(x, dtype=np.float64)
        out["f"] = float(self._objective_function(x64))
        out["g"] = np.asarray(self._objective_gradient(x64), dtype=np.float64).copy()
        return x64, {}

    original = _nonlin_fluence.NonLinearFluencePlanningProblem._solve
    _nonlin_fluence.NonLinearFluencePlanningProblem._solve = evaluate
    level = logging.getLogger("pyRadPlan").level
    logging.getLogger("pyRadPlan").setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            problem.solve(raw.ct, cst, raw.stf, raw.dij)
    finally:
        _nonlin_fluence.NonLinearFluencePlanningProblem._solve = original
        logging.getLogger("pyRadPlan").setLevel(level)
    return out["f"], out["g"]
