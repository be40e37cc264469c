"""Sparse products of the fluence optimizer, compiled by numba: the matrix is read once per product
for a block of k weight vectors, on every core.

scipy's CSR kernels are single-threaded and, for a block of k columns, do not amortize the matrix
read (benchmarks/results/dose_reoptimization.txt has both). Here each row's entries come from memory once and stay in L1
while the k columns are accumulated. Results do not depend on the number of threads or on k:

- ``dose``: each output entry is its own sum over the row's entries, in their order (float64);
- ``backprop``: the rows are cut into ``CHUNKS`` fixed ranges; each range accumulates its active
  rows into its own buffer in row order and the buffers are added in range order.

So column j of a block equals the single-vector product bit for bit, with 1 thread or 32. The
4-column passes are explicit 4 x float64 vector code (``simd.py``: the same arithmetic per column).
``dose_rows`` computes chosen rows only (the optimizer's screening) and ``GroupSums`` gives the
per-group entry sums its dose bound needs. ``squared_residuals`` turns a block's doses into one
objective term's squared-residual sums and voxel gradients.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from .simd import axpy4, dot4

CHUNKS = 16  # fixed: the summation order of the transposed product depends on it, not on threads


ROWS_PER_TASK = 256
# Indices are unsigned: numba then skips its negative-index wraparound test on every access
# (measured: 8.5 -> 5.9 ms per product on TG119 fast, one thread; scipy 5.7 ms).


@nb.njit(cache=True, boundscheck=False, inline="always")
def _row_dose(indptr, indices, data, X, i, out, o):  # pragma: no cover - compiled
    # X is float64 (exact copies of the float32 fluence): a matrix entry meets its 4 columns in one
    # 32-byte row of X, with no conversion per column (measured on TG119 at 5 mm, k = 4, one thread:
    # 65.7 -> 43.5 ms; k = 1 unchanged at ~34 ms). Row i's dose goes to out[o].
    p0, p1 = indptr[i], indptr[i + 1]
    k = X.shape[1]
    c = 0
    while c + 4 <= k:  # four columns per pass over the row, in one vector register
        out[o, c], out[o, c + 1], out[o, c + 2], out[o, c + 3] = dot4(indices, data, X, p0, p1, c)
        c += 4
    while c < k:  # the same sum, one column
        a = 0.0
        for jj in range(p0, p1):
            a += np.float64(data[jj]) * X[indices[jj], c]
        out[o, c] = a
        c += 1


@nb.njit(parallel=True, cache=True, boundscheck=False)
def _dose(indptr, indices, data, X, out):  # pragma: no cover - compiled
    n_rows = indptr.size - 1
    n_tasks = (n_rows + ROWS_PER_TASK - 1) // ROWS_PER_TASK
    for task in nb.prange(n_tasks):
        for i in range(task * ROWS_PER_TASK, min(n_rows, (task + 1) * ROWS_PER_TASK)):
            _row_dose(indptr, indices, data, X, i, out, i)


@nb.njit(parallel=True, cache=True, boundscheck=False)
def _dose_rows(indptr, indices, data, rows, X, out):  # pragma: no cover - compiled
    n = rows.size
    n_tasks = (n + ROWS_PER_TASK - 1) // ROWS_PER_TASK
    for task in nb.prange(n_tasks):
        for t in range(task * ROWS_PER_TASK, min(n, (task + 1) * ROWS_PER_TASK)):
            _row_dose(indptr, indices, data, X, rows[t], out, t)


@nb.njit(cache=True, boundscheck=False)
def _group_sums(indptr, indices, data, shift, n_groups):  # pragma: no cover - compiled
    # per row, the sum of its entries in each group of 2**shift consecutive columns (CSR)
    n_rows = indptr.size - 1
    acc = np.zeros(n_groups)
    seen = np.zeros(n_groups, dtype=np.bool_)
    touched = np.empty(n_groups, dtype=np.int64)
    ptr = np.zeros(n_rows + 1, dtype=np.int64)
    cols = np.empty(0, dtype=np.int32)
    vals = np.empty(0, dtype=np.float64)
    for sweep in range(2):  # first count, then fill
        nnz = 0
        for i in range(n_rows):
            m = 0
            for jj in range(indptr[i], indptr[i + 1]):
                gi = np.int64(indices[jj]) >> shift
                if not seen[gi]:
                    seen[gi] = True
                    touched[m] = gi
                    m += 1
                acc[gi] += np.float64(data[jj])
            touched[:m].sort()
            for t in range(m):
                gi = touched[t]
                if sweep == 1:
                    cols[nnz + t] = gi
                    vals[nnz + t] = acc[gi]
                acc[gi] = 0.0
                seen[gi] = False
            nnz += m
            ptr[i + 1] = nnz
        if sweep == 0:
            cols = np.empty(nnz, dtype=np.int32)
            vals = np.empty(nnz, dtype=np.float64)
    return ptr, cols, vals


@nb.njit(parallel=True, cache=True, boundscheck=False)
def _needed_rows(ptr, cols, vals, rowsum, dref, gmax, dmax, limit, need):  # pragma: no cover - compiled
    # need[c, i] = need[c, i] or (an upper bound of row i's dose in column c) > limit[i]. First the
    # coarse bound dref + rowsum * max(delta) (one product; enough for most low-dose rows), then the
    # group bound dref[c, i] + sum_g S[i, g] * gmax[g, c]
    n_rows = ptr.size - 1
    k = gmax.shape[1]
    n_tasks = (n_rows + ROWS_PER_TASK - 1) // ROWS_PER_TASK
    for task in nb.prange(n_tasks):
        for i in range(task * ROWS_PER_TASK, min(n_rows, (task + 1) * ROWS_PER_TASK)):
            lim = limit[i]
            coarse = rowsum[i]
            c = 0
            while c + 4 <= k:  # four columns: one vector pass over S's row when any of them needs it
                fine = False
                for t in range(c, c + 4):
                    fine |= not need[t, i] and np.float64(dref[t, i]) + coarse * dmax[t] > lim
                if fine:
                    s = dot4(cols, vals, gmax, ptr[i], ptr[i + 1], c)
                    for t in range(4):
                        if np.float64(dref[c + t, i]) + s[t] > lim:
                            need[c + t, i] = True
                c += 4
            while c < k:
                d0 = np.float64(dref[c, i])
                if not need[c, i] and d0 + coarse * dmax[c] > lim:
                    u = d0
                    for jj in range(ptr[i], ptr[i + 1]):
                        u += np.float64(vals[jj]) * gmax[cols[jj], c]
                    if u > lim:
                        need[c, i] = True
                c += 1


@nb.njit(cache=True, boundscheck=False)
def costs_and_union(need, weight):  # pragma: no cover - compiled
    """Per column, the summed ``weight`` of its needed rows; and the rows any column needs."""
    k, n = need.shape
    costs = np.zeros(k)
    union = np.zeros(n, dtype=np.bool_)
    for c in range(k):
        for i in range(n):
            if need[c, i]:
                costs[c] += weight[i]
                union[i] = True
    return costs, union


@nb.njit(parallel=True, cache=True, boundscheck=False)
def _backprop(indptr, indices, data, rows, cuts, g, n_cols, partial):  # pragma: no cover - compiled
    k = g.shape[0]
    n_chunks = partial.shape[0]
    for ch in nb.prange(n_chunks):
        buf = partial[ch]
        buf[:, :] = 0.0
        for t in range(cuts[ch], cuts[ch + 1]):
            i = rows[t]
            c = 0
            while c + 4 <= k:  # four columns at a time: one 32-byte row of the buffer per entry
                # a zero g adds +0.0: the same bits as skipping it
                axpy4(indices, data, buf, indptr[i], indptr[i + 1], c, g[c, i], g[c + 1, i], g[c + 2, i], g[c + 3, i])
                c += 4
            while c < k:
                gc = np.float64(g[c, i])
                for jj in range(indptr[i], indptr[i + 1]):
                    buf[indices[jj], c] += np.float64(data[jj]) * gc
                c += 1


@nb.njit(parallel=True, cache=True, boundscheck=False)
def squared_residuals(Dt, rows, computed, screened, dose, kind, grad_scale, gt):  # pragma: no cover - compiled
    """One objective term on a block, columns in parallel: per column c, the sequential float64 sum
    of squared residuals over ``rows`` (returned) and gt[c, i] += residual * grad_scale[c] (float32),
    with column c's dose level ``dose[c]`` (float32). ``kind``: 0 deviation, 1 overdose (residual >= 0), 2 underdose (<= 0); ``screened``: skip rows
    not ``computed`` (their residual is exactly 0). The same float32/float64 operations in the same
    order as ``FluenceOptimizer._residuals_numpy`` (tested bit for bit), without its temporaries:
    TG119, 4 columns, 2 threads: 0.42 -> 0.13 ms per evaluation."""
    k = Dt.shape[0]
    sums = np.zeros(k)
    for c in nb.prange(k):  # columns are independent: each has its own row of gt
        acc = 0.0
        sc = grad_scale[c]
        level = dose[c]
        for t in range(rows.size):
            i = rows[t]
            if screened and not computed[i]:
                continue
            r = Dt[c, i] - level
            if kind == 1 and r < 0:  # as np.maximum(r, 0): NaN and -0.0 pass through
                r = np.float32(0.0)
            elif kind == 2 and r > 0:
                r = np.float32(0.0)
            r64 = np.float64(r)
            acc += r64 * r64
            gt[c, i] += r * sc
        sums[c] = acc
    return sums


class Prepared:
    """The matrix as the kernels read it: unsigned indices, 16-bit when the columns allow it (a
    quarter less memory traffic: 6 instead of 8 bytes per non-zero), made once per matrix."""

    def __init__(self, A):
        self.shape = A.shape
        self.indptr = A.indptr.astype(np.uint64)
        self.indices = A.indices.astype(np.uint16 if A.shape[1] <= 65536 else np.uint32)
        self.data = np.ascontiguousarray(A.data, dtype=np.float32)


def _fluence64(P: Prepared, X: np.ndarray) -> np.ndarray:
    """The fluence as the products read it: rounded to float32 (the matrix's precision), held as a
    contiguous (n_cols, k) float64 block (exact copies; no conversion per column in the kernels)."""
    return np.ascontiguousarray(np.asarray(X, dtype=np.float32).reshape(P.shape[1], -1), dtype=np.float64)


def dose(P: Prepared, X: np.ndarray) -> np.ndarray:
    """A @ X (float64, rows x k) for an (n_cols, k) fluence block."""
    X64 = _fluence64(P, X)
    out = np.empty((P.shape[0], X64.shape[1]), dtype=np.float64)
    _dose(P.indptr, P.indices, P.data, X64, out)
    return out


def dose_rows(P: Prepared, X: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """(A @ X)[rows] (float64, len(rows) x k): each row's sum exactly as ``dose`` computes it."""
    X64 = _fluence64(P, X)
    rows = np.ascontiguousarray(rows, dtype=np.uint64)
    out = np.empty((rows.size, X64.shape[1]), dtype=np.float64)
    _dose_rows(P.indptr, P.indices, P.data, rows, X64, out)
    return out


class GroupSums:
    """S[i, g] = sum of row i's entries in column group g (``2**shift`` consecutive columns), CSR:
    with it, ``dref + S @ max_per_group(x - x_ref, 0)`` bounds every row's dose at x from above.
    float32 sums: their rounding (~1e-7 relative) is far inside the screening margin."""

    def __init__(self, P: Prepared, shift: int = 5):
        self.shift = shift
        self.n_groups = (P.shape[1] + (1 << shift) - 1) >> shift
        ptr, cols, vals = _group_sums(P.indptr, P.indices, P.data, shift, self.n_groups)
        self.ptr = ptr.astype(np.uint64)
        self.cols = cols.astype(np.uint16 if self.n_groups <= 65536 else np.uint32)
        self.vals = vals.astype(np.float32)
        row_of = np.repeat(np.arange(P.shape[0]), np.diff(ptr))
        # all of a row's groups at once (the coarse bound), rounded up for the float32 entries
        self.rowsum = np.bincount(row_of, weights=vals, minlength=P.shape[0]) * (1.0 + 1e-6)

    def mark_needed(self, dref: np.ndarray, delta: np.ndarray, limit: np.ndarray, need: np.ndarray) -> None:
        """need[c, i] |= the dose bound of row i exceeds limit[i], for reference doses ``dref`` (k x rows)
        and fluence increases ``delta`` (n_cols x k) since the references."""
        starts = np.arange(0, delta.shape[0], 1 << self.shift)
        gmax = np.ascontiguousarray(np.maximum.reduceat(delta, starts, axis=0), dtype=np.float64)
        dmax = np.ascontiguousarray(gmax.max(axis=0))
        _needed_rows(self.ptr, self.cols, self.vals, self.rowsum, dref, gmax, dmax, limit, need)


def backprop(P: Prepared, g: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """A^T g^T (float64, n_cols x k) for voxel gradients ``g`` (k x n_rows) non-zero only on ``rows``
    (sorted row indices; the other rows contribute exactly 0 and are not read)."""
    g32 = np.ascontiguousarray(g, dtype=np.float32)
    rows = np.ascontiguousarray(rows, dtype=np.uint64)
    # chunks are fixed ranges of row indices, whatever rows are active: a column's sum is grouped
    # the same way in a block as alone
    cuts = np.searchsorted(rows, (P.shape[0] * np.arange(CHUNKS + 1, dtype=np.uint64)) // CHUNKS).astype(np.int64)
    partial = _aligned_empty((CHUNKS, P.shape[1], g32.shape[0]))
    _backprop(P.indptr, P.indices, P.data, rows, cuts, g32, P.shape[1], partial)
    out = partial[0].copy()
    for ch in range(1, CHUNKS):
        out += partial[ch]
    return out


def _aligned_empty(shape: tuple) -> np.ndarray:
    """float64 array starting on a 64-byte boundary: a 4-column row (32 bytes) never straddles two
    cache lines (measured: transposed product k = 4 7-10 % faster than from numpy's 16-byte start)."""
    n = int(np.prod(shape))
    raw = np.empty(n + 8, dtype=np.float64)
    start = (-raw.ctypes.data % 64) // 8
    return raw[start:start + n].reshape(shape)


def set_threads(n: int) -> int:
    """Use ``n`` threads (at most numba's pool size); returns the number in use."""
    n = max(1, min(int(n), nb.config.NUMBA_NUM_THREADS))
    nb.set_num_threads(n)
    return n
