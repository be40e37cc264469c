"""Doses on the CT grid, where the clinic reads an exported plan: structures as drawn on the CT and
the dose-grid dose interpolated there exactly as the RTDOSE export does it (SimpleITK's linear
interpolation, 0 outside the dose grid), as one sparse matrix made once per engine.

On the shipped prostate case at 5 mm the two grids read the same plan differently (PTV D95 77.2
vs 72.7 Gy at the start weights): a plan judged on the dose grid can show several Gy of
under-coverage in the planning system. Clinical settings therefore judge goals (and normalize)
here (``[plan] judge_grid = "ct"``); per evaluation this costs one product with ~8 entries per
structure voxel on the CT (``benchmarks/results/plan_grids.txt``).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def interpolation_matrix(points_mm: np.ndarray, origin: tuple, spacing: tuple, dims: tuple) -> sp.csr_array:
    """(n_points x n_grid) matrix of trilinear weights: row i times a dose-grid dose (flat in numpy
    z, y, x order; ``dims`` = (nx, ny, nz); axis-aligned grid) is the dose at ``points_mm[i]`` (x, y, z),
    as ``itk::LinearInterpolateImageFunction`` inside ``sitk.Resample`` gives it: points outside
    [-0.5, n - 0.5) voxels on any axis get 0, neighbours past the last voxel are clamped to it."""
    cidx = (np.asarray(points_mm, dtype=np.float64) - np.asarray(origin, dtype=np.float64)) / np.asarray(spacing, dtype=np.float64)
    n = np.asarray(dims, dtype=np.int64)
    inside = np.all((cidx >= -0.5) & (cidx < n - 0.5), axis=1)
    cidx = cidx[inside]
    rows_in = np.flatnonzero(inside)
    base = np.floor(cidx).astype(np.int64)
    frac = cidx - base
    rows, cols, vals = [], [], []
    for corner in range(8):
        offset = np.array([(corner >> a) & 1 for a in range(3)])
        idx = np.clip(base + offset, 0, n - 1)
        w = np.prod(np.where(offset == 1, frac, 1.0 - frac), axis=1)
        flat = (idx[:, 2] * n[1] + idx[:, 1]) * n[0] + idx[:, 0]
        keep = w > 0
        rows.append(rows_in[keep])
        cols.append(flat[keep])
        vals.append(w[keep])
    matrix = sp.csr_array((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                          shape=(len(points_mm), int(np.prod(n))))
    matrix.sum_duplicates()  # clamped neighbours at the edges fall on one voxel: their weights add up
    return matrix


class CtGrid:
    """The case's structures on the CT grid and the interpolation onto their voxels.

    ``doses(dose_grid_doses)`` gives (k x n_voxels) doses on the union of every structure's CT voxels;
    ``index[name]`` are a structure's positions in that union. Loads the phantom once (the CT's
    geometry and contours; for TG119 0.5 s, plus pyRadPlan's import when not yet loaded)."""

    def __init__(self, engine):
        from .matrix import _structure_dicts
        from .phantoms import load_phantom

        _, cst, _ = load_phantom(engine.case.phantom, _structure_dicts(engine.case))
        meta = engine.data.meta.get("ct_grid")
        if not meta:
            raise ValueError("this influence matrix was cached without the CT geometry: delete the cache file to rebuild it")
        size = np.asarray(meta["size"], dtype=np.int64)  # (x, y, z)
        spacing, origin = np.asarray(meta["spacing"]), np.asarray(meta["origin"])
        direction = np.asarray(meta["direction"], dtype=np.float64).reshape(3, 3)
        masks = {v.name: np.asarray(v.indices_numpy, dtype=np.int64).ravel() for v in cst.vois}
        names = [s.name for s in engine.case.structures]
        union = np.unique(np.concatenate([masks[n] for n in names]))
        self.index = {n: np.searchsorted(union, masks[n]) for n in names}
        z, rest = np.divmod(union, size[0] * size[1])
        y, x = np.divmod(rest, size[0])
        ijk = np.stack([x, y, z], axis=1).astype(np.float64)
        points = origin + (ijk * spacing) @ direction.T
        data = engine.data
        self.matrix = interpolation_matrix(points, data.grid_origin, data.grid_spacing, data.grid_dims).astype(np.float32)
        self.n_voxels = int(union.size)
        self.spacing = tuple(float(s) for s in spacing)

    @property
    def label(self) -> str:
        return "CT grid " + " x ".join(f"{s:g}" for s in self.spacing) + " mm"

    def doses(self, dose_grid_doses: np.ndarray) -> np.ndarray:
        """(k x n_voxels) CT-grid doses for (k x n_grid) dose-grid doses (float32)."""
        d = np.asarray(dose_grid_doses, dtype=np.float32).reshape(-1, self.matrix.shape[1])
        return np.ascontiguousarray((self.matrix @ d.T).T)
