"""Batched fluence optimization on a cached dose influence matrix.

Same problem as pyRadPlan's ``NonLinearFluencePlanningProblem`` with the scipy solver:

    minimize_w  sum_t  p_t * f_t(d[VOI_t]),   d = D w,   w >= 0

with f_t one of the objective kinds of ``objectives`` (squared deviation, over- and underdose,
mean dose, EUD, min and max DVH, as pyRadPlan 0.5 defines them), p_t the weight ("priority") of
objective t and VOI_t its dose-grid voxels after overlap priorities. Solved with scipy's L-BFGS-B
(bounds [0, inf), tol 1e-5, x0 = 0 unless warm-started), as pyRadPlan does. Each column of a
block (one plan) has its own weights and may have its own dose levels and volumes (``Params``).

What makes it fast (per evaluation, the sparse products dominate; scipy's kernels are
single-threaded). Times per weight vector and per block of vectors, on 1 and 2 threads, against
pyRadPlan's ``fluence_optimization``: see benchmarks/results/dose_reoptimization.txt
(`benchmarks/dose_reoptimization.py`).

- float32 CSR with int32 indices, restricted to the voxels that carry objectives; voxels whose
  dose row is empty enter only as constants (they still count in N_t, as in pyRadPlan).
- One evaluation = one forward product and one transposed product over the **active** rows only:
  rows whose residual is zero (e.g. body voxels below d_max, > 90 % of the rows on TG119)
  contribute exactly 0 and are skipped.
- The forward product is **screened** (``_Screen``): a row of an overdose-only VOI whose dose
  cannot have reached its d_max since the last full product (a bound from per-group entry sums)
  is not computed. Same f and g bits as the full product (tested); on TG119 at 5 mm 12 % of the
  rows per evaluation, k = 1 one thread 4.3 -> 1.8 s per 100 iterations
  (``TGSCI_DOSE_SCREENING=0`` computes every row, for comparison).
- k weight vectors are optimized together: k of scipy's L-BFGS-B cores advance in lock step
  in one thread (``lbfgsb.minimize_block``: same iterates as ``minimize``), so each matrix pass
  serves a block of k columns. Column j of a block product equals the single-vector product
  bit for bit, so a batch gives the same plans as k separate runs (a test checks it).
- OpenBLAS is held at one thread while optimizing (see ``_blas``).
- The products run in numba-compiled kernels (``kernels.py``: all threads, the matrix read once
  per block of k columns, summation order fixed so results do not depend on threads or k); with
  ``TGSCI_DOSE_KERNEL=scipy`` (or without numba) scipy's kernels on the two fixed row blocks,
  optionally on two threads.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Optional, Sequence

import numpy as np
import scipy.sparse as sp

from ..machine import usable_cores
from ._blas import single_threaded_blas
from .lbfgsb import FluenceResult, minimize_block
from .objectives import SQUARED, check_parameters, value_and_gradient

RESIDUAL_KINDS = {kind: code for code, kind in enumerate(SQUARED)}  # the codes of kernels.squared_residuals
N_BLOCKS = 2  # fixed row split (the summation order of the transposed product depends on it)


@dataclass
class Term:
    """One objective on one VOI (rows index the optimizer's restricted matrix). ``dose``: its dose
    level (Gy); ``volume``: % for the DVH kinds; ``exponent``: the EUD's a; ``linear``: |.| instead
    of (.)^2 for mean dose and EUD (pyRadPlan's ``f_diff``)."""

    name: str
    kind: str
    dose: float
    rows: np.ndarray
    n_voxels: int
    n_empty: int = 0  # voxels of the VOI whose dose row is empty (dose is always 0 there)
    volume: Optional[float] = None
    exponent: Optional[float] = None
    linear: bool = False

    def __post_init__(self):
        reason = check_parameters(self.kind, self.dose, self.volume, self.exponent)
        if reason:
            raise ValueError(f"objective {self.name!r}: {reason}")
        if self.n_voxels <= 0:
            raise ValueError(f"objective {self.name!r} has an empty VOI on the dose grid")

    def empty_constant(self, dose) -> np.ndarray:
        """Sum of squared residuals over the empty-row voxels (dose 0 there), per dose level (squared kinds)."""
        dose = np.asarray(dose, dtype=np.float64)
        if self.kind == "squared_overdose":
            return np.where(dose >= 0, 0.0, self.n_empty * dose**2)
        return self.n_empty * dose**2


@dataclass
class Params:
    """The objective parameters of a block of plans, one column per plan: weights, dose levels (Gy)
    and volumes (%, NaN for kinds without one), each (n_terms, k)."""

    weights: np.ndarray
    doses: np.ndarray
    volumes: np.ndarray

    def take(self, ids) -> "Params":
        return Params(self.weights[:, ids], self.doses[:, ids], self.volumes[:, ids])


@dataclass
class _Block:
    r0: int
    r1: int
    rows: sp.csr_array  # rows r0:r1 of the matrix (zero-copy view)
    fwd: sp.csr_array  # CSR of rows.T


def default_threads() -> int:
    """Threads for the matrix products: $TGSCI_DOSE_THREADS, else min(2, usable cores)."""
    env = os.environ.get("TGSCI_DOSE_THREADS")
    if env:
        return max(1, int(env))
    return min(2, usable_cores())


@dataclass
class _Stats:
    evaluations: int = 0  # batched evaluations (matrix passes)
    columns: int = 0  # columns evaluated in total
    active_rows: int = 0
    forward_rows: int = 0  # rows whose dose the forward products computed (all rows without screening)
    full_forwards: int = 0
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)


class FluenceOptimizer:
    """Optimizes fluence for blocks of weight vectors on one influence matrix.

    ``matrix``: CSR (voxels x bixels) float32 restricted to the rows the terms index.
    The rows are split into ``N_BLOCKS`` contiguous blocks of about equal non-zeros; with
    ``threads`` > 1 the blocks' products run in parallel (scipy's sparse kernels release the
    GIL). The split is fixed, so results are bit-identical for any number of threads.
    """

    def __init__(
        self, matrix: sp.csr_array, terms: Sequence[Term], max_iter: int = 100, tol: float = 1e-5,
        threads: Optional[int] = None,
    ):
        if not sp.issparse(matrix) or matrix.format != "csr":
            raise TypeError("matrix must be a scipy CSR array")
        A = compact_csr(matrix)
        self.n_rows, self.n_bixels = A.shape
        for t in terms:
            if t.rows.size and (t.rows.min() < 0 or t.rows.max() >= self.n_rows):
                raise ValueError(f"objective {t.name!r} indexes rows outside the matrix")
        # Row order: rows of always-active terms (deviation, underdose) first, then by decreasing
        # row sum (the dose from unit fluence), dealt alternately to the two blocks. The rows a
        # gradient needs (target and hot voxels) then sit together at the start of each block
        # and both blocks get about the same share of them. Measured on TG119 at 5 mm, one
        # thread: forward product 38.6 -> 35.0 ms, transposed product 14.8 -> 13.6 ms.
        key = np.asarray(A.sum(axis=1)).ravel().astype(np.float64)
        for t in terms:
            if t.kind != "squared_overdose":  # rows every evaluation needs (see _row_limits)
                key[t.rows] = np.inf
        order = np.argsort(-key, kind="stable")
        self.perm = np.concatenate([order[b::N_BLOCKS] for b in range(N_BLOCKS)])
        inverse = np.empty_like(self.perm)
        inverse[self.perm] = np.arange(self.perm.size)
        self.A = compact_csr(A[self.perm])
        self.terms = [replace(t, rows=np.sort(inverse[t.rows])) for t in terms]
        self.names = [t.name for t in self.terms]
        self.max_iter = int(max_iter)
        self.tol = float(tol)
        self.threads = default_threads() if threads is None else max(1, int(threads))
        self.kernel = kernel_backend()
        self.blocks = self._make_blocks(N_BLOCKS) if self.kernel == "scipy" else []
        self._prepared = None
        if self.kernel == "numba":
            from . import kernels

            self._prepared = kernels.Prepared(self.A)
        self.screening = self.kernel == "numba" and os.environ.get("TGSCI_DOSE_SCREENING", "1") != "0"
        self._row_nnz = np.diff(self.A.indptr).astype(np.float64) / max(1, self.A.nnz)
        self._group_sums = None  # made at the first optimization that screens
        self._pool: Optional[ThreadPoolExecutor] = None
        self.stats = _Stats()

    def _make_blocks(self, n: int) -> list[_Block]:
        """The ``n`` contiguous row blocks of the permuted matrix; each keeps a zero-copy CSR view of
        its rows (for the transposed product) and a CSR of its transpose (whose .T, a CSC view,
        serves the forward product: measured faster than CSR @ X with scipy's kernels)."""
        indptr = self.A.indptr
        sizes = [len(range(b, self.n_rows, n)) for b in range(n)]
        cuts = [0] + list(np.cumsum(sizes))
        blocks = []
        for r0, r1 in zip(cuts[:-1], cuts[1:]):
            if r1 <= r0:
                continue
            p0, p1 = int(indptr[r0]), int(indptr[r1])
            rows = sp.csr_array(
                (self.A.data[p0:p1], self.A.indices[p0:p1], (indptr[r0:r1 + 1] - p0).astype(np.int32)),
                shape=(r1 - r0, self.n_bixels), copy=False,
            )
            blocks.append(_Block(r0, r1, rows, compact_csr(sp.csr_array(rows.T))))
        return blocks

    def _map(self, fn, items):
        if len(items) == 1 or self.threads == 1:
            return [fn(item) for item in items]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=min(self.threads, len(items)), thread_name_prefix="dose")
        return list(self._pool.map(fn, items))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None

    # ------------------------------------------------------------------ one block evaluation
    def dose(self, X: np.ndarray) -> np.ndarray:
        """D @ X (float32) for an (n_bixels,) or (n_bixels, k) fluence, rows in the optimizer's
        internal order (row i is input row ``perm[i]``)."""
        if self.kernel == "numba":
            from . import kernels

            kernels.set_threads(self.threads)
            out = kernels.dose(self._prepared, np.asarray(X).reshape(self.n_bixels, -1)).astype(np.float32)
            return out.reshape(self.n_rows) if np.ndim(X) == 1 else out
        X32 = np.ascontiguousarray(X, dtype=np.float32)
        parts = self._map(lambda b: b.fwd.T @ X32, self.blocks)
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0)

    def _backward(self, gt: np.ndarray, candidates: Optional[np.ndarray] = None) -> np.ndarray:
        """D^T g for voxel gradients ``gt`` (k x rows), using only rows with a non-zero entry
        (the others contribute exactly 0; ``candidates``: sorted rows outside which gt is 0).
        Both paths give the same bits as the full product."""
        k = gt.shape[0]
        if self.kernel == "numba":
            from . import kernels

            if candidates is None:
                active = np.flatnonzero(np.any(gt != 0.0, axis=0))
            else:
                active = candidates[np.any(gt[:, candidates] != 0.0, axis=0)]
            self.stats.active_rows += int(active.size)
            kernels.set_threads(self.threads)
            return kernels.backprop(self._prepared, gt, active)

        def one(b: _Block) -> tuple[np.ndarray, int]:
            g = gt[:, b.r0:b.r1]
            if k <= 2:
                # (k x rows) sparse @ CSR: visits only the active rows' entries, copies nothing
                gs = sp.csr_array(g)
                return (gs @ b.rows).toarray().T, gs.nnz
            active = np.flatnonzero(np.any(g != 0.0, axis=0))
            if active.size == 0:
                return np.zeros((self.n_bixels, k), dtype=np.float32), 0
            if active.size > 0.5 * g.shape[1]:
                return b.rows.T @ np.ascontiguousarray(g.T), int(active.size)
            return b.rows[active].T @ np.ascontiguousarray(g[:, active].T), int(active.size)

        parts = self._map(one, self.blocks)
        G = parts[0][0]
        for p in parts[1:]:
            G = G + p[0]
        self.stats.active_rows += sum(p[1] for p in parts)
        return np.asarray(G, dtype=np.float64).reshape(self.n_bixels, k)

    def evaluate_block(
        self, X: np.ndarray, P: np.ndarray | Params, ids: Optional[Sequence[int]] = None, screen: Optional[_Screen] = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Objective values (k,) and gradients (n_bixels, k) for fluences X and the parameters P
        (``Params``, or a weight matrix (n_terms, k) with the terms' own dose levels).

        Every reduction runs per column on contiguous data, so column j's numbers do not depend
        on the other columns of the block (a batch equals single runs bit for bit). ``screen``: the
        screening state of one ``optimize`` call, ``ids``: the solvers the columns belong to in it."""
        t0 = time.perf_counter()
        X = np.asarray(X, dtype=np.float64).reshape(self.n_bixels, -1)
        k = X.shape[1]
        live = None
        if screen is not None and ids is not None:
            X32 = np.ascontiguousarray(X, dtype=np.float32)
            live = screen.rows_to_compute(X32, ids)
        if live is None:  # every row
            if np.any(X):
                Dt = np.ascontiguousarray(self.dose(X).reshape(self.n_rows, k).T)  # (k, rows)
            else:  # the usual start, x = 0: every sum is +0.0, as the kernels would give
                Dt = np.zeros((k, self.n_rows), dtype=np.float32)
            self.stats.forward_rows += self.n_rows
            self.stats.full_forwards += 1
            if screen is not None and ids is not None:
                screen.set_references(X32, Dt, ids)
        else:
            from . import kernels

            kernels.set_threads(self.threads)
            Dt = np.empty((k, self.n_rows), dtype=np.float32)  # only the live rows are read below
            Dt[:, live] = kernels.dose_rows(self._prepared, X32, live).T
            self.stats.forward_rows += int(live.size)
            computed = np.zeros(self.n_rows, dtype=bool)
            computed[live] = True
        f, gt = self._residuals(Dt, P, None if live is None else computed)
        G = self._backward(gt, live)
        s = self.stats
        s.evaluations += 1
        s.columns += k
        s.seconds += time.perf_counter() - t0
        return f, G

    def params(self, P: np.ndarray | Params) -> Params:
        """``P`` as ``Params`` (a weight matrix gets every term's own dose level and volume)."""
        if isinstance(P, Params):
            return P
        P = np.asarray(P, dtype=np.float64)
        k = P.shape[1]
        doses = np.repeat(np.array([[t.dose] for t in self.terms], dtype=np.float64), k, axis=1)
        volumes = np.repeat(np.array([[np.nan if t.volume is None else t.volume] for t in self.terms]), k, axis=1)
        return Params(P, doses, volumes)

    def _residuals(self, Dt: np.ndarray, P: np.ndarray | Params, computed: Optional[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """f (k,) and the voxel gradients gt (k x rows, float32) from the doses Dt (k x rows) and
        parameters P; ``computed``: the rows whose dose Dt holds (None: every row). The squared kinds
        run compiled with the numba products (one pass per term, no temporaries), else numpy: the
        same bits either way; the other kinds (``objectives.value_and_gradient``) the same in both."""
        if self.kernel != "numba":
            return self._residuals_numpy(Dt, P, computed)
        from . import kernels

        P = self.params(P)
        k = Dt.shape[0]
        gt = np.zeros((k, self.n_rows), dtype=np.float32)
        f = np.zeros(k, dtype=np.float64)
        mask = np.ones(1, dtype=bool) if computed is None else computed
        for ti, term in enumerate(self.terms):
            p = P.weights[ti]
            if not np.any(p):
                continue
            if term.kind not in RESIDUAL_KINDS:
                f += self._nonlinear(term, Dt, p, P.doses[ti], P.volumes[ti], gt)
                continue
            scale = p / term.n_voxels
            sums = kernels.squared_residuals(Dt, term.rows, mask, computed is not None, P.doses[ti].astype(np.float32),
                                             RESIDUAL_KINDS[term.kind], (2.0 * scale).astype(np.float32), gt)
            f += scale * (sums + term.empty_constant(P.doses[ti]))
        return f, gt

    def _nonlinear(self, term: Term, Dt: np.ndarray, p: np.ndarray, doses: np.ndarray, volumes: np.ndarray,
                   gt: np.ndarray) -> np.ndarray:
        """p * f of a mean/EUD/DVH term per column; adds p * df/dd to gt (its rows are always computed)."""
        f = np.zeros(Dt.shape[0])
        for c in range(Dt.shape[0]):
            if p[c] == 0:
                continue
            value, grad = value_and_gradient(term.kind, Dt[c, term.rows], term.n_voxels, term.n_empty, float(doses[c]),
                                             float(volumes[c]), term.exponent or 1.0, term.linear)
            f[c] = p[c] * value
            gt[c, term.rows] += (p[c] * grad).astype(np.float32)
        return f

    def _residuals_numpy(self, Dt: np.ndarray, P: np.ndarray | Params, computed: Optional[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        P = self.params(P)
        k = Dt.shape[0]
        gt = np.zeros((k, self.n_rows), dtype=np.float32)
        f = np.zeros(k, dtype=np.float64)
        for ti, term in enumerate(self.terms):
            p = P.weights[ti]  # (k,)
            if not np.any(p):
                continue
            if term.kind not in RESIDUAL_KINDS:
                f += self._nonlinear(term, Dt, p, P.doses[ti], P.volumes[ti], gt)
                continue
            # screened rows are below every overdose limit: their residual is exactly 0, and leaving
            # zeros out of the sequential sums below changes no bit
            rows = term.rows if computed is None else term.rows[computed[term.rows]]
            scale = p / term.n_voxels  # (k,)
            empty = term.empty_constant(P.doses[ti])
            if rows.size == 0:  # every voxel of the VOI has an empty dose row, or all are screened
                f += scale * empty
                continue
            r = Dt[:, rows] - P.doses[ti].astype(np.float32)[:, None]
            if term.kind == "squared_overdose":
                np.maximum(r, 0.0, out=r)
            elif term.kind == "squared_underdose":
                np.minimum(r, 0.0, out=r)
            r64 = r.astype(np.float64)
            # sequential sum per column (cumsum): numpy's pairwise/SIMD reductions group terms
            # differently for different k, which would make a batch differ from single runs
            f += scale * (np.cumsum(r64 * r64, axis=1)[:, -1] + empty)
            # a term's rows are unique; different terms may share rows and simply add up
            gt[:, rows] += r * (2.0 * scale).astype(np.float32)[:, None]
        return f, gt

    # ------------------------------------------------------------------ k solvers in lock step
    def optimize(
        self,
        weights: Sequence[dict] | np.ndarray,
        x0: Optional[np.ndarray] = None,
        max_iter: Optional[int] = None,
        doses: Optional[Sequence[dict]] = None,
        volumes: Optional[Sequence[dict]] = None,
    ) -> list[FluenceResult]:
        """Optimize every weight vector (dict name -> weight, or an (n_terms, k) array) together.
        ``doses``/``volumes``: per vector, {objective name: dose level (Gy) / volume (%)} for the
        objectives whose level differs from the term's own (None: every term's own)."""
        P = self.block_params(weights, doses, volumes)
        k = P.weights.shape[1]
        if k == 0:
            return []
        if x0 is None:
            X0 = np.zeros((self.n_bixels, k))
        else:
            X0 = np.asarray(x0, dtype=np.float64).reshape(self.n_bixels, -1)
            if X0.shape[1] == 1 and k > 1:
                X0 = np.repeat(X0, k, axis=1)
        maxiter = self.max_iter if max_iter is None else int(max_iter)
        screen = None  # per call: concurrent optimize calls on one optimizer keep their own state
        limit = _row_limits(self.terms, self.n_rows, P.doses.min(axis=1))
        if self.screening and np.isfinite(limit).any():
            from . import kernels

            if self._group_sums is None:
                self._group_sums = kernels.GroupSums(self._prepared)
            screen = _Screen(self, limit)
        with single_threaded_blas():
            return minimize_block(
                lambda X, ids: self.evaluate_block(X, P.take(ids), ids=ids, screen=screen), X0, self.tol, maxiter,
            )

    def block_params(self, weights, doses: Optional[Sequence[dict]] = None, volumes: Optional[Sequence[dict]] = None) -> Params:
        """``Params`` for a block: the weights (dicts or matrix), each term's dose level and volume
        unless ``doses``/``volumes`` (one dict per column) say otherwise."""
        P = self.params(self.weight_matrix(weights))
        for table, given in ((P.doses, doses), (P.volumes, volumes)):
            if given is None:
                continue
            if len(given) != P.weights.shape[1]:
                raise ValueError("doses and volumes need one entry per weight vector")
            for c, levels in enumerate(given):
                unknown = sorted(set(levels or {}) - set(self.names))
                if unknown:
                    raise ValueError(f"dose levels or volumes for unknown objective(s) {unknown}")
                for name, value in (levels or {}).items():
                    table[self.names.index(name), c] = float(value)
        for ti, t in enumerate(self.terms):
            for c in range(P.weights.shape[1]):
                reason = check_parameters(t.kind, float(P.doses[ti, c]), None if t.volume is None else float(P.volumes[ti, c]),
                                          t.exponent)
                if reason:
                    raise ValueError(f"objective {t.name!r}: {reason}")
        return P

    def weight_matrix(self, weights) -> np.ndarray:
        if isinstance(weights, np.ndarray):
            P = np.asarray(weights, dtype=np.float64)
            if P.ndim == 1:
                P = P[:, None]
            if P.shape[0] != len(self.terms):
                raise ValueError(f"weight matrix needs {len(self.terms)} rows (one per objective)")
            return P
        cols = []
        for w in weights:
            missing = [n for n in self.names if n not in w]
            if missing:
                raise ValueError(f"missing weight(s) for {missing}")
            cols.append([float(w[n]) for n in self.names])
        return np.asarray(cols, dtype=np.float64).T.reshape(len(self.terms), len(cols))


SCREEN_MARGIN = 1e-5  # relative: covers the float32 rounding of stored doses and of the products


def _row_limits(terms: Sequence[Term], n_rows: int, levels: np.ndarray) -> np.ndarray:
    """Per row, the dose below which the row adds nothing to f or g: the lowest overdose level of its
    terms (``levels``: per term, the lowest over the block's plans), less a safety margin; -inf for
    rows every evaluation needs (deviation, underdose, mean, EUD and DVH terms: see ``objectives``)."""
    limit = np.full(n_rows, np.inf)
    for t, level in zip(terms, levels):
        if t.kind == "squared_overdose" and level > 0:
            limit[t.rows] = np.minimum(limit[t.rows], level * (1.0 - SCREEN_MARGIN))
    for t, level in zip(terms, levels):
        if t.kind != "squared_overdose" or level <= 0:
            limit[t.rows] = -np.inf
    return limit


class _Screen:
    """Safe screening of the forward product, per solver of one ``optimize`` call.

    After an evaluation that computes every row (the reference: fluence x_r, doses d_r), a row's
    dose at a later x is at most d_r + sum_g S[i, g] * max_{j in g} (x - x_r)_j^+ (S: the row's
    entry sums per group of 32 bixels). Rows whose bound stays under their overdose limit have a
    residual of exactly 0, so they are not computed: f and g are the same bits as with every row
    (a test runs both). A new reference is taken when the rows computed since the last one have
    cost more than one full product beyond what the first screened evaluation cost (rent or buy).
    Measured on TG119 at 5 mm, 100 iterations: 12 % of the rows per evaluation (a study before it
    was built bounded the share of non-zeros at a quarter), 5-6 full products.
    """

    def __init__(self, opt: FluenceOptimizer, limit: np.ndarray):
        self.opt = opt
        self.limit = limit  # per row (``_row_limits``)
        self.always = limit == -np.inf
        self.refs: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self.base: dict[int, float] = {}
        self.excess: dict[int, float] = {}
        self._stacked: Optional[tuple] = None

    def rows_to_compute(self, X32: np.ndarray, ids: Sequence[int]) -> Optional[np.ndarray]:
        """Sorted rows the block needs, or None for all rows (no reference yet, or time for a new one)."""
        from . import kernels

        opt = self.opt
        if any(j not in self.refs for j in ids) or not np.isfinite(X32).all():
            return None  # no reference yet, or a NaN/inf fluence: the full product reports it
        key = tuple(ids)
        if self._stacked is None or self._stacked[0] != key:  # the block's references, stacked once
            self._stacked = (key, np.stack([self.refs[j][1] for j in ids]),
                             np.stack([self.refs[j][0] for j in ids], axis=1))
        _, dref, xref = self._stacked
        delta = np.maximum(X32 - xref, 0.0)
        need = np.repeat(self.always[None, :], len(ids), axis=0)
        opt._group_sums.mark_needed(dref, delta, self.limit, need)
        costs, union = kernels.costs_and_union(need, opt._row_nnz)
        renew = False
        for c, j in enumerate(ids):
            cost = float(costs[c])
            base = self.base.setdefault(j, cost)
            self.excess[j] = self.excess.get(j, 0.0) + cost - base
            renew |= self.excess[j] > 1.0
        return None if renew else np.flatnonzero(union)

    def set_references(self, X32: np.ndarray, Dt: np.ndarray, ids: Sequence[int]) -> None:
        self._stacked = None
        for c, j in enumerate(ids):
            self.refs[j] = (X32[:, c].copy(), Dt[c].astype(np.float32))
            self.base.pop(j, None)
            self.excess[j] = 0.0


def kernel_backend() -> str:
    """``numba`` (compiled products, all threads, one matrix read per block) when importable, else
    ``scipy``; ``TGSCI_DOSE_KERNEL=scipy`` forces scipy's kernels."""
    choice = os.environ.get("TGSCI_DOSE_KERNEL", "").strip().lower()
    if choice == "scipy":
        return "scipy"
    try:
        import numba  # noqa: F401
    except ImportError:
        if choice == "numba":
            raise
        return "scipy"
    return "numba"


def compact_csr(matrix) -> sp.csr_array:
    """float32 CSR with int32 indices (a third less memory traffic than int64), sorted."""
    m = sp.csr_array(matrix)
    if m.dtype != np.float32:
        m = m.astype(np.float32)
    if m.nnz < 2**31 - 1 and (m.indices.dtype != np.int32 or m.indptr.dtype != np.int32):
        m = sp.csr_array(
            (m.data, m.indices.astype(np.int32), m.indptr.astype(np.int32)), shape=m.shape, copy=False
        )
    if not m.has_sorted_indices:
        m.sort_indices()
    return m
