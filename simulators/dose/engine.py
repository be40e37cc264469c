"""``DoseEngine``: weight vectors in, DVH metrics out (batch-first, deterministic).

    engine = DoseEngine(load_case("tg119", fast=True))
    results = engine.evaluate([{"OuterTarget": 1000, "Core": 300, "BODY": 100}, ...])
    results[0].metrics["OuterTarget.D95"]   # Gy, on the grid the case judges on

Per case the influence matrix is built once and cached on disk (see ``matrix``); each call
runs one batched inner fluence optimization (see ``optimizer``) for all its plans (weights, and
optionally their own dose levels and volumes) and computes, per structure, Dmean, Dmax, D2,
D50, D95, D98 (Gy), extra D<x> and V<dose>Gy (% of the structure) asked for by the manifest or
its goals, and for the target HI and the Paddick CI.

**Which grid.** ``[plan] judge_grid = "dose"`` (the fast settings): structures rasterized on the
dose grid by nearest neighbour, as pyRadPlan does. ``"ct"`` (clinical settings): the CT grid the
exported RTDOSE is read on (``ct_grid``: structures as drawn, dose interpolated as the export
does); there ``grid_gap_gy`` records the largest difference of a goal's dose metric between
the two grids. The grids differ where the dose is steep across a structure's edge (TG119 at
5 mm, start weights: OuterTarget D95 49.5 on the dose grid vs 45.1 Gy on the CT grid).

**Normalization** (``[prescription] normalize = "D95"``, ``"Dmean"``, ``"none"``): every plan's dose
is scaled so that the target's metric equals the prescription, on the judging grid, before any
goal is judged; the factor is the metric ``normalization`` and the result's fluence is scaled by
it (so exports and pictures show the normalized plan).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from simulators.measurement import Measurement

from . import metrics as M
from .cases import CaseSpec, load_case
from .ct_grid import CtGrid
from .matrix import CaseData, PyRadPlanObjects, load_or_build
from .optimizer import FluenceOptimizer, Term
from .weights import canonical_weights, join_plan, split_plan


@dataclass
class PlanResult(Measurement):
    """A Measurement plus the optimized fluence and the inner optimizer's report."""

    weights: dict = field(default_factory=dict)
    fluence: Optional[np.ndarray] = None
    optimizer: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "candidate": self.candidate, "metrics": self.metrics, "error": self.error, "cached": self.cached,
            "seconds": self.seconds, "weights": self.weights, "optimizer": self.optimizer,
        }


class DoseEngine:
    """Dose-volume calculator for one case and one set of plan settings.

    ``cache_dir``: where the influence matrix is cached (default ``$TGSCI_CACHE_DIR/dose`` or
    ``~/.cache/tgsci/dose``). ``threads``: threads for the sparse products (default
    ``$TGSCI_DOSE_THREADS`` or min(2, cores); results do not depend on it). Raises MemoryError
    when the machine has less free memory than the case needs (manifest ``memory_gb`` to
    build; ~3.5 x the cache file to load: measured peak 1.1 GB for TG119 at 5 mm).
    """

    def __init__(
        self,
        case: CaseSpec | str,
        cache_dir: Optional[str | Path] = None,
        *,
        fast: bool = False,
        check_memory: bool = True,
        warm_start: Optional[np.ndarray] = None,
        threads: Optional[int] = None,
        progress: bool = False,
    ):
        self.case = load_case(case, fast=fast) if isinstance(case, str) else case
        t0 = time.perf_counter()
        self.data: CaseData
        self.pyradplan: Optional[PyRadPlanObjects]
        self.data, self.pyradplan = load_or_build(self.case, Path(cache_dir) if cache_dir else None, check_memory, progress)
        self.setup_seconds = time.perf_counter() - t0
        self.names = self.case.objective_names
        self.optimizer = self._make_optimizer(threads)
        self.warm_start = warm_start
        self._levels = self.case.metric_levels()
        self._ct_grid: Optional[CtGrid] = None

    # ------------------------------------------------------------------ setup
    def _make_optimizer(self, threads: Optional[int] = None) -> FluenceOptimizer:
        data = self.data
        row_of = np.full(data.n_grid, -1, dtype=np.int64)  # dose-grid voxel -> matrix row
        row_of[data.rows] = np.arange(data.rows.size)
        mats = []
        for obj in self.case.objectives:
            vox = data.opt_masks[obj.structure]
            rows = row_of[vox]
            mats.append((obj, rows[rows >= 0], int(vox.size), int(np.count_nonzero(rows < 0))))
        used = np.unique(np.concatenate([m[1] for m in mats])) if mats else np.zeros(0, dtype=np.int64)
        if used.size == data.matrix.shape[0]:
            matrix, remap = data.matrix, None
        else:
            matrix = data.matrix[used]
            remap = np.full(data.matrix.shape[0], -1, dtype=np.int64)
            remap[used] = np.arange(used.size)
        terms = []
        for obj, rows, n_vox, n_empty in mats:
            terms.append(Term(obj.name, obj.kind, obj.dose_gy, rows if remap is None else remap[rows], n_vox, n_empty,
                              volume=obj.volume_pct, exponent=obj.exponent, linear=obj.linear))
        self.objective_rows = int(used.size)
        opt = FluenceOptimizer(matrix, terms, max_iter=self.case.plan.max_iter, threads=threads)
        if remap is None:
            # every stored row carries an objective: keep only the optimizer's (row-permuted) copy
            data.matrix = opt.A
            data.rows = data.rows[opt.perm]
        return opt

    # ------------------------------------------------------------------ evaluation
    def check_weights(self, weights: dict) -> Optional[str]:
        """Why this weight vector cannot be optimized, or None."""
        if not isinstance(weights, dict):
            return "weights must be a mapping of objective name to number"
        unknown = sorted(set(weights) - set(self.names))
        missing = [n for n in self.names if n not in weights]
        if unknown or missing:
            return f"weights must name exactly {self.names} (unknown: {unknown}, missing: {missing})"
        values = []
        for n in self.names:
            try:
                v = float(weights[n])
            except (TypeError, ValueError, OverflowError):
                return f"weight {n} is not a number"
            if not math.isfinite(v) or v < 0:
                return f"weight {n} must be finite and >= 0"
            values.append(v)
        if not any(values):
            return "all weights are zero"
        return None

    def check_plan(self, plan: dict) -> Optional[str]:
        """Why this plan (weights, or {"weights", "dose_gy", "volume_pct"}) cannot be optimized, or None."""
        if not isinstance(plan, dict):
            return "a plan must be a mapping"
        weights, doses, volumes = split_plan(plan)
        reason = self.check_weights(weights)
        if reason:
            return reason
        try:
            self.optimizer.block_params([weights], [doses], [volumes])
        except (ValueError, TypeError, OverflowError) as exc:
            return str(exc)
        return None

    def evaluate(self, plans: list[dict], x0: Optional[np.ndarray] = None) -> list[PlanResult]:
        """Optimize all plans in one batch; a bad or failed plan gets ``error``, the rest go on.

        A plan is a weight vector ({objective: weight}) or {"weights": ..., "dose_gy": {objective:
        Gy}, "volume_pct": {objective: %}} (levels not named keep the case's). ``x0`` (or the
        engine's ``warm_start``): starting fluence (n_bixels,) instead of zeros. The result of a plan
        does not depend on the other plans of the batch."""
        t0 = time.perf_counter()
        results: list[Optional[PlanResult]] = [None] * len(plans)
        good = []
        for i, plan in enumerate(plans):
            reason = self.check_plan(plan)
            if reason:
                results[i] = PlanResult(candidate=str(plan), error=reason, weights=dict(plan) if isinstance(plan, dict) else {})
            else:
                good.append(i)
        if good:
            start = x0 if x0 is not None else self.warm_start
            if start is not None and np.asarray(start).size != self.optimizer.n_bixels:
                raise ValueError(f"x0 needs {self.optimizer.n_bixels} bixel weights, got {np.asarray(start).size}")
            parts = [split_plan(plans[i]) for i in good]
            fluences = self.optimizer.optimize([p[0] for p in parts], x0=start, doses=[p[1] for p in parts],
                                               volumes=[p[2] for p in parts])
            done = [fr for fr in fluences if not fr.error]
            doses = iter(self.dose_grid_doses(np.stack([fr.x for fr in done], axis=1)) if done else [])
            elapsed = time.perf_counter() - t0
            for i, (weights, levels, volumes), fr in zip(good, parts, fluences):
                w = {n: float(weights[n]) for n in self.names}
                plan = join_plan(w, levels, volumes)
                info = {"nit": fr.nit, "nfev": fr.nfev, "message": fr.message, "objective": fr.fun,
                        "batch": len(good), "batch_seconds": elapsed}
                if fr.error:
                    results[i] = PlanResult(candidate=canonical_weights(plan), error=fr.error, weights=plan, optimizer=info,
                                            seconds=elapsed / len(good))
                    continue
                try:
                    metrics, factor = self.judge(next(doses))
                    results[i] = PlanResult(candidate=canonical_weights(plan), metrics=metrics, weights=plan,
                                            fluence=fr.x * factor, optimizer=info, seconds=elapsed / len(good))
                except Exception as exc:  # noqa: BLE001
                    results[i] = PlanResult(candidate=canonical_weights(plan), error=f"metrics failed: {exc}", weights=plan,
                                            optimizer=info, seconds=elapsed / len(good))
        return results  # type: ignore[return-value]

    # ------------------------------------------------------------------ doses and metrics
    def dose_grid_dose(self, fluence: np.ndarray) -> np.ndarray:
        """Dose (Gy) on every dose-grid voxel, flat in numpy (z, y, x) order."""
        return self.dose_grid_doses(np.asarray(fluence).reshape(-1, 1))[0]

    def dose_grid_doses(self, fluences: np.ndarray) -> np.ndarray:
        """Doses (k x voxels) for fluences (n_bixels x k): one product for all, on the optimizer's
        compiled kernels when it holds every stored row (float64 sums, all threads)."""
        k = fluences.shape[1]
        doses = np.zeros((k, self.data.n_grid), dtype=np.float32)
        if self.data.matrix is self.optimizer.A:
            doses[:, self.data.rows] = self.optimizer.dose(fluences).reshape(-1, k).T
        else:
            doses[:, self.data.rows] = (self.data.matrix @ np.asarray(fluences, dtype=np.float32)).T
        return doses

    def dose_cube(self, fluence: np.ndarray) -> np.ndarray:
        nx, ny, nz = self.data.grid_dims
        return self.dose_grid_dose(fluence).reshape(nz, ny, nx)

    @property
    def ct_grid(self) -> CtGrid:
        """The CT grid's structures and the interpolation onto them (made at first use)."""
        if self._ct_grid is None:
            self._ct_grid = CtGrid(self)
        return self._ct_grid

    def grid_label(self, grid: str) -> str:
        return self.ct_grid.label if grid == "ct" else f"dose grid {self.case.plan.dose_grid_mm:g} mm"

    def _on_grid(self, dose: np.ndarray, grid: str) -> tuple[np.ndarray, dict]:
        """(doses of every voxel the grid's structures cover, {structure: positions in it})."""
        if grid == "ct":
            return self.ct_grid.doses(dose)[0], self.ct_grid.index
        return np.asarray(dose), self.data.masks

    def structure_dose(self, dose: np.ndarray, structure: str, grid: str = "dose") -> np.ndarray:
        """A structure's voxel doses on the ``grid`` ("dose" or "ct") of a dose-grid dose."""
        values, index = self._on_grid(dose, grid)
        return values[index[structure]]

    def metrics_from_dose(self, dose: np.ndarray, grid: str = "dose", scale: float = 1.0) -> dict:
        """Every DVH number of the case for a dose-grid dose (times ``scale``), on ``grid``; on the CT
        grid the Paddick CI counts the isodose volume inside the structures (the body outline holds it)."""
        values, index = self._on_grid(dose, grid)
        if scale != 1.0:
            values = values * scale
        out: dict = {}
        for st in self.case.structures:
            d_levels, v_levels = self._levels[st.name]
            out.update(M.structure_metrics(values[index[st.name]], st.name, d_levels=d_levels, v_levels=v_levels))
        target = self.case.target
        out[f"{target}.HI"] = M.homogeneity_index(values[index[target]])
        out[f"{target}.CI"] = M.paddick_ci(values, index[target], self.case.conformity_isodose * self.case.prescription_gy)
        out["dose_grid_mm"] = float(self.case.plan.dose_grid_mm)
        return out

    def normalization(self, dose: np.ndarray) -> float:
        """The factor that brings the target's normalization metric to the prescription on the judging
        grid (1.0 without normalization)."""
        case = self.case
        if case.normalize == "none":
            return 1.0
        target = self.structure_dose(dose, case.target, case.plan.judge_grid)
        value = M.metric_value(target, case.target, case.normalize)
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"cannot normalize: {case.target} {case.normalize} is {value:g} Gy")
        return case.prescription_gy / value

    def judge(self, dose: np.ndarray) -> tuple[dict, float]:
        """(metrics, normalization factor) of a dose-grid dose as the case judges it: normalized, on its
        judging grid, with ``normalization`` and, on the CT grid, ``grid_gap_gy``."""
        grid = self.case.plan.judge_grid
        factor = self.normalization(dose)
        metrics = self.metrics_from_dose(dose, grid, factor)
        metrics["normalization"] = factor
        if grid == "ct":
            metrics["grid_gap_gy"] = self.grid_gap(metrics, self.metrics_from_dose(dose, "dose", factor))
        return metrics, factor

    def grid_gap(self, ct: dict, dose_grid: dict) -> float:
        """The largest |CT grid - dose grid| of a goal's dose metric (Gy; 0 when no goal is in Gy)."""
        keys = [g.key for g in self.case.goals if g.unit == "Gy"]
        return max((abs(ct[k] - dose_grid[k]) for k in keys if k in ct and k in dose_grid), default=0.0)

    def ct_grid_metrics(self, fluence: np.ndarray) -> dict:
        """The metrics of a fluence's dose on the CT grid (no normalization: scale the fluence)."""
        return self.metrics_from_dose(self.dose_grid_dose(fluence), "ct")

    def describe(self) -> dict:
        d = self.data
        return {
            "case": self.case.name, "variant": self.case.plan.variant, "matrix_shape": list(d.matrix.shape),
            "nnz": int(d.matrix.nnz), "objective_rows": self.objective_rows, "grid_dims": list(d.grid_dims),
            "dose_grid_mm": self.case.plan.dose_grid_mm, "bixel_width_mm": self.case.plan.bixel_width_mm,
            "max_iter": self.case.plan.max_iter, "source": d.source, "cache_file": str(d.path) if d.path else None,
            "matrix_gb": d.nbytes() / 2**30,
        }
