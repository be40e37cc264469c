"""Build a case's dose influence matrix with pyRadPlan once, cache it on disk, reload it later.

The cache file (``<cache_dir>/<case>-<key[:16]>.npz``, uncompressed) holds the matrix as
float32 CSR restricted to the dose-grid voxels with a non-empty row, the dose-grid geometry,
every structure's dose-grid voxel indices (as drawn, and after pyRadPlan's overlap
priorities, which is what the optimization uses) and the CT resampled to the dose grid (for
pictures). ``key`` is the sha256 of the case geometry, the plan settings that shape the
matrix, the pyRadPlan version and this file's format version. A file whose stored key
differs, or that cannot be read, is rebuilt, never reused. Writes are atomic (temporary file
in the same directory, fsync, ``os.replace``), so a killed build never leaves half a file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
import scipy.sparse as sp

from ..cache import CacheDirError, ForeignCacheDirError, private_dir
from ..files import atomic_writer, slug
from .cases import CaseSpec
from .optimizer import compact_csr

logger = logging.getLogger(__name__)

CACHE_FORMAT = 3  # 2: meta holds the CT grid and the patient source (for RTDOSE export); 3: a hash, not the patient's name
#: How many influence matrices this process computed (not loaded), per case name; tests read it.
BUILD_COUNTS: Counter = Counter()


def default_cache_dir() -> Path:
    from ..cache import default_cache_dir as cache_root

    return cache_root() / "dose"


def pyradplan_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pyradplan")
    except PackageNotFoundError:
        return "unknown"


def cache_key(case: CaseSpec) -> str:
    fields = {**case.matrix_fields(), "pyradplan": pyradplan_version(), "format": CACHE_FORMAT}
    return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()


def cache_path(case: CaseSpec, cache_dir: Optional[Path] = None) -> Path:
    """Where the case's matrix is cached: the case name as a slug (a name is never a path)."""
    directory = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return directory / f"{slug(case.name)}-{cache_key(case)[:16]}.npz"


@dataclass
class CaseData:
    """Everything the engine needs after the matrix exists (no pyRadPlan objects)."""

    key: str
    matrix: sp.csr_array  # rows: dose-grid voxels with a non-empty influence row; float32
    rows: np.ndarray  # dose-grid linear index (numpy z, y, x order) of each matrix row
    grid_dims: tuple  # (nx, ny, nz)
    grid_spacing: tuple  # mm (x, y, z)
    grid_origin: tuple  # mm, center of voxel (0, 0, 0)
    masks: dict  # structure -> dose-grid linear indices (as drawn)
    opt_masks: dict  # structure -> dose-grid linear indices after overlap priorities
    ct_hu: np.ndarray  # (nz, ny, nx) float32, CT resampled to the dose grid
    beam_num: np.ndarray
    meta: dict = field(default_factory=dict)
    source: str = "built"  # "built" now or loaded from "cache"
    path: Optional[Path] = None

    @property
    def n_grid(self) -> int:
        nx, ny, nz = self.grid_dims
        return int(nx * ny * nz)

    @property
    def n_bixels(self) -> int:
        return int(self.matrix.shape[1])

    def nbytes(self) -> int:
        return int(self.matrix.data.nbytes + self.matrix.indices.nbytes + self.matrix.indptr.nbytes)


@dataclass
class PyRadPlanObjects:
    """The live pyRadPlan objects of a fresh build (for running pyRadPlan's own optimizer)."""

    ct: Any
    cst: Any
    stf: Any
    dij: Any
    pln: Any


# ------------------------------------------------------------------------------ memory
def available_memory_gb() -> float:
    try:
        import psutil

        return psutil.virtual_memory().available / 2**30
    except Exception:  # noqa: BLE001
        try:
            with open("/proc/meminfo") as handle:
                for line in handle:
                    if line.startswith("MemAvailable:"):
                        return int(line.split()[1]) / 2**20
        except OSError:
            pass
    return float("inf")


def check_memory(required_gb: float, what: str) -> None:
    have = available_memory_gb()
    if have < required_gb:
        raise MemoryError(
            f"{what} needs about {required_gb:.1f} GB of free memory, but only {have:.1f} GB is available "
            f"on this machine; free memory or use the fast settings (fast=True), or a coarser dose grid "
            f"(dose_grid_mm), wider bixels (bixel_width_mm) or fewer beams (gantry_angles)."
        )


#: Measured on the TG119 and prostate builds (pyRadPlan 0.5.0 photon pencil beams): every bixel
#: touches the dose-grid voxels within ~50 mm of its central axis along its path through the body
#: (non-zeros estimated 1.08x the built count for the prostate, 1.68x for TG119: on the safe side);
#: building costs ~0.5 us and, at the peak, ~40 bytes per non-zero (prostate: 20.2 M, 1.16 GB max RSS).
LATERAL_CUTOFF_MM = 50.0
SECONDS_PER_NONZERO = 0.5e-6
BYTES_PER_NONZERO = 40.0


def estimate_build(ct, case: CaseSpec, bixels: int) -> dict:
    """Size, memory and time of an influence-matrix build, from the CT and the bixel count, before it runs."""
    import SimpleITK as sitk

    hu = sitk.GetArrayFromImage(ct.cube_hu)
    spacing = np.asarray(ct.cube_hu.GetSpacing(), dtype=float)  # x, y, z
    body = np.argwhere(hu > -500)
    extent = (body.max(0) - body.min(0) + 1)[::-1] * spacing if body.size else np.asarray(hu.shape[::-1]) * spacing
    g = float(case.plan.dose_grid_mm)
    voxels = int(np.prod(np.ceil(np.asarray(hu.shape[::-1]) * spacing / g)))
    path_mm = float(np.mean(extent[:2]))
    per_bixel = math.pi * LATERAL_CUTOFF_MM**2 / g**2 * path_mm / g
    nnz = int(min(bixels * per_bixel, bixels * voxels))
    return {"dose_grid_voxels": voxels, "bixels": int(bixels), "nonzeros": nnz,
            "memory_gb": BYTES_PER_NONZERO * nnz / 2**30 + hu.nbytes * 3 / 2**30 + 0.3,
            "seconds": SECONDS_PER_NONZERO * nnz}


# ------------------------------------------------------------------------------ build
def make_plan(case: CaseSpec):
    from pyRadPlan import PhotonPlan

    s = case.plan
    pln = PhotonPlan(machine=s.machine, num_of_fractions=case.fractions, prescribed_dose=case.prescription_gy)
    pln.prop_stf = {
        "gantry_angles": [float(a) for a in s.gantry_angles],
        "couch_angles": [float(a) for a in s.couch_angles],
        "bixel_width": float(s.bixel_width_mm),
    }
    r = float(s.dose_grid_mm)
    pln.prop_dose_calc = {"dose_grid": {"resolution": {"x": r, "y": r, "z": r}}}
    return pln


def _structure_dicts(case: CaseSpec) -> list[dict]:
    out = []
    for st in case.structures:
        d = {"name": st.name, "type": st.type, **({"roi": st.roi} if st.roi else {})}
        if st.overlap_priority is not None:
            d["overlap_priority"] = st.overlap_priority
        out.append(d)
    return out


def build(case: CaseSpec, check_mem: bool = True, progress: bool = False) -> tuple[CaseData, PyRadPlanObjects]:
    """Compute the influence matrix and dose-grid masks with pyRadPlan (slow: seconds to minutes).

    Before the dose calculation its size, memory and time are estimated (``estimate_build``) and
    logged; MemoryError when the machine lacks the memory. ``progress``: pyRadPlan's own bars."""
    from pyRadPlan.core import ProgressReporter

    t0 = time.perf_counter()
    console = ProgressReporter.console_progress
    ProgressReporter.console_progress = progress
    try:
        return _build(case, t0, check_mem)
    finally:
        ProgressReporter.console_progress = console


def _build(case: CaseSpec, t0: float, check_mem: bool = True) -> tuple[CaseData, PyRadPlanObjects]:
    from pyRadPlan import generate_stf
    from pyRadPlan.dose.engines import get_engine

    from .phantoms import load_phantom

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pyRadPlan's ray tracer divides by zero on axis-parallel rays
        ct, cst, patient = load_phantom(case.phantom, _structure_dicts(case))
        pln = make_plan(case)
        stf = generate_stf(ct, cst, pln)
        estimate = estimate_build(ct, case, stf.total_number_of_bixels)
        what = f"the {case.name} influence matrix ({case.plan.variant} settings: {estimate['dose_grid_voxels']:,} dose-grid voxels x {estimate['bixels']:,} bixels)"
        if check_mem:
            check_memory(estimate["memory_gb"], what)
        logger.warning("computing %s: about %.1f GB and %.0f s", what, estimate["memory_gb"], estimate["seconds"])
        engine = get_engine(pln)
        engine.console_progress = False
        dij = engine.calc_dose_influence(ct, cst, stf)
        t_dij = time.perf_counter() - t0
        full = dij.physical_dose.flat[0]
        csr = sp.csr_array(full, dtype=np.float32)
        csr.sum_duplicates()
        csr.sort_indices()
        nonempty = np.flatnonzero(np.diff(csr.indptr))
        matrix = compact_csr(csr[nonempty])
        del csr
        grid = dij.dose_grid
        ct_dg = ct.resample_to_grid(grid)
        masks = _indices(cst.resample_on_new_ct(ct_dg))
        opt_masks = _indices(cst.apply_overlap_priorities().resample_on_new_ct(ct_dg))
        import SimpleITK as sitk

        ct_hu = sitk.GetArrayFromImage(ct_dg.cube_hu).astype(np.float32)
    wanted = [s.name for s in case.structures]
    missing = [n for n in wanted if n not in masks]
    if missing:
        raise ValueError(f"structures {missing} are missing from the built phantom")
    for n in wanted:
        if masks[n].size == 0:
            raise ValueError(f"structure {n!r} has no voxel on the {case.plan.dose_grid_mm} mm dose grid")
    BUILD_COUNTS[case.name] += 1
    data = CaseData(
        key=cache_key(case),
        matrix=matrix,
        rows=nonempty.astype(np.int64),
        grid_dims=tuple(int(v) for v in grid.dimensions),
        grid_spacing=tuple(float(grid.resolution[a]) for a in ("x", "y", "z")),
        grid_origin=tuple(float(v) for v in grid.origin),
        masks={n: masks[n] for n in wanted},
        opt_masks={n: opt_masks[n] for n in wanted},
        ct_hu=ct_hu,
        beam_num=np.asarray(dij.beam_num, dtype=np.int32),
        meta={
            "case": case.name, "fields": case.matrix_fields(), "pyradplan": pyradplan_version(),
            "format": CACHE_FORMAT, "build_seconds": time.perf_counter() - t0, "dij_seconds": t_dij,
            "full_shape": list(full.shape), "nnz": int(matrix.nnz), "patient": patient, "estimate": estimate,
            "ct_grid": {"size": list(ct.cube_hu.GetSize()), "spacing": list(ct.cube_hu.GetSpacing()),
                        "origin": list(ct.cube_hu.GetOrigin()), "direction": list(ct.cube_hu.GetDirection())},
        },
        source="built",
    )
    logger.info("built %s influence matrix %s (%d nnz) in %.1f s", case.name, matrix.shape, matrix.nnz, t_dij)
    return data, PyRadPlanObjects(ct, cst, stf, dij, pln)


def _indices(cst) -> dict[str, np.ndarray]:
    return {v.name: np.asarray(v.indices_numpy, dtype=np.int64).ravel() for v in cst.vois}


# ------------------------------------------------------------------------------ disk cache
def save(data: CaseData, path: Path) -> None:
    arrays = {
        "data": data.matrix.data, "indices": data.matrix.indices, "indptr": data.matrix.indptr,
        "shape": np.asarray(data.matrix.shape, dtype=np.int64), "rows": data.rows,
        "grid_dims": np.asarray(data.grid_dims, dtype=np.int64),
        "grid_spacing": np.asarray(data.grid_spacing), "grid_origin": np.asarray(data.grid_origin),
        "ct_hu": data.ct_hu, "beam_num": data.beam_num,
        "meta": np.asarray(json.dumps({**data.meta, "key": data.key, "structures": list(data.masks)})),
    }
    for i, name in enumerate(data.masks):
        arrays[f"mask_{i}"] = data.masks[name]
        arrays[f"optmask_{i}"] = data.opt_masks[name]
    with atomic_writer(path, private=True) as handle:
        np.savez(handle, **arrays)


def load(path: Path, expected_key: str) -> CaseData:
    """Load a cache file; raises ValueError if it belongs to other settings."""
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
        if meta.get("key") != expected_key:
            raise ValueError(f"{path} was built for other settings (key {str(meta.get('key'))[:16]})")
        shape = tuple(int(v) for v in z["shape"])
        matrix = compact_csr(sp.csr_array((z["data"], z["indices"], z["indptr"]), shape=shape))
        names = meta["structures"]
        data = CaseData(
            key=meta["key"], matrix=matrix, rows=z["rows"],
            grid_dims=tuple(int(v) for v in z["grid_dims"]),
            grid_spacing=tuple(float(v) for v in z["grid_spacing"]),
            grid_origin=tuple(float(v) for v in z["grid_origin"]),
            masks={n: z[f"mask_{i}"] for i, n in enumerate(names)},
            opt_masks={n: z[f"optmask_{i}"] for i, n in enumerate(names)},
            ct_hu=z["ct_hu"], beam_num=z["beam_num"], meta=meta, source="cache", path=Path(path),
        )
    check_data(data)
    return data


def check_data(data: CaseData) -> None:
    """Raise ValueError unless every index a compiled kernel will follow is in bounds: the CSR
    structure (monotone indptr, column indices < bixels), matrix rows and structure voxels inside
    the dose grid, and array shapes that fit the grid. A cache file is data from disk: the
    kernels do no bounds checks of their own."""
    m = data.matrix
    try:
        m.check_format(full_check=True)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"the cached matrix is malformed ({exc})") from None
    dims = data.grid_dims
    if len(dims) != 3 or min(dims) < 1 or len(data.grid_spacing) != 3 or len(data.grid_origin) != 3:
        raise ValueError(f"the cached dose grid is malformed (dims {dims})")
    n_grid = data.n_grid

    def within(name: str, idx: np.ndarray, limit: int) -> None:
        idx = np.asarray(idx)
        if idx.ndim != 1 or (idx.size and (idx.dtype.kind not in "iu" or idx.min() < 0 or idx.max() >= limit)):
            raise ValueError(f"the cached {name} are outside the dose grid of {limit} voxels")

    if data.rows.shape != (m.shape[0],):
        raise ValueError(f"the cached matrix has {m.shape[0]} rows but {data.rows.shape} row indices")
    within("matrix rows", data.rows, n_grid)
    for name in data.masks:
        within(f"voxels of {name!r}", data.masks[name], n_grid)
        within(f"optimization voxels of {name!r}", data.opt_masks[name], n_grid)
    nx, ny, nz = dims
    if data.ct_hu.shape != (nz, ny, nx):
        raise ValueError(f"the cached CT has shape {data.ct_hu.shape}, not the dose grid's {(nz, ny, nx)}")
    if data.beam_num.shape != (m.shape[1],):
        raise ValueError(f"the cached beam numbers ({data.beam_num.shape}) do not match {m.shape[1]} beamlets")


def load_or_build(
    case: CaseSpec, cache_dir: Optional[Path] = None, check_mem: bool = True, progress: bool = False
) -> tuple[CaseData, Optional[PyRadPlanObjects]]:
    """The case's data from the disk cache, or built now (and cached). Second item: pyRadPlan objects if built."""
    from filelock import FileLock

    directory = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    try:
        private_dir(directory)  # another user's directory: ForeignCacheDirError, nothing is read from it
    except ForeignCacheDirError:
        raise
    except CacheDirError as exc:
        logger.warning("the influence matrix is not cached: %s", exc)
        return build(case, check_mem, progress)
    path = cache_path(case, directory)
    key = cache_key(case)
    cached = _load_cached(case, path, key, check_mem)
    if cached is not None:
        return cached, None
    # One build per matrix across processes (sweep workers on one uncached case): the others
    # wait here, then load what the first one wrote, and only the builder checks free memory.
    with FileLock(str(path) + ".lock"):
        cached = _load_cached(case, path, key, check_mem)
        if cached is not None:
            return cached, None
        return _build_and_save(case, path, check_mem, progress)


def _load_cached(case: CaseSpec, path: Path, key: str, check_mem: bool) -> Optional[CaseData]:
    """The cache file's data, or None when there is none or it cannot be used (then it is rebuilt)."""
    if not path.is_file():
        return None
    if check_mem:
        check_memory(3.5 * path.stat().st_size / 2**30 + 0.3, f"case {case.name!r} ({case.plan.variant} settings)")
    try:
        return load(path, key)
    except Exception as exc:  # noqa: BLE001 - unreadable, malformed or foreign: rebuild
        logger.warning("rebuilding %s: %s", path, exc)
        return None


def _build_and_save(case: CaseSpec, path: Path, check_mem: bool, progress: bool) -> tuple[CaseData, Optional[PyRadPlanObjects]]:
    if check_mem:  # the manifest's floor, before even the phantom is loaded
        check_memory(case.plan.memory_gb, f"building case {case.name!r} ({case.plan.variant} settings)")
    logger.warning(
        "computing the %s dose influence matrix (%s settings) with pyRadPlan once; it is cached in %s",
        case.name, case.plan.variant, path.parent,
    )
    data, raw = build(case, check_mem, progress)
    try:
        save(data, path)
        data.path = path
    except OSError as exc:
        logger.warning("could not cache the influence matrix at %s: %s", path, exc)
    return data, raw
