"""A plan back out to the clinic: the dose as DICOM RTDOSE on the patient's CT grid, and a DVH table.

The dose of a fluence is computed on the dose grid (``DoseEngine.dose_grid_dose``), resampled
linearly onto the CT grid (as pyRadPlan's ``compute_result_ct_grid`` and matRad do), and written
with pyRadPlan's RTDOSE exporter. For a patient imported from DICOM the RTDOSE carries the
patient's study and frame-of-reference UIDs, name and ID, and references the CT slices it was
planned on, so a planning system, 3D Slicer or dicompyler lays it over that CT. ``dvh_rows``
lists every structure's metrics on both grids, saying which.
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path
from typing import Optional

import numpy as np

from . import metrics as M


def ct_reference(engine):
    """An empty SimpleITK image with the CT grid's geometry (from the case data; no CT pixels needed)."""
    import SimpleITK as sitk

    grid = engine.data.meta.get("ct_grid")
    if not grid:
        raise ValueError("this influence matrix was cached without the CT geometry: delete the cache file to rebuild it")
    image = sitk.Image([int(v) for v in grid["size"]], sitk.sitkFloat32)
    image.SetSpacing([float(v) for v in grid["spacing"]])
    image.SetOrigin([float(v) for v in grid["origin"]])
    image.SetDirection([float(v) for v in grid["direction"]])
    return image


def dose_image(engine, fluence: np.ndarray):
    """The dose (Gy) of ``fluence`` on the dose grid, as a SimpleITK image."""
    import SimpleITK as sitk

    data = engine.data
    image = sitk.GetImageFromArray(engine.dose_cube(fluence).astype(np.float64))
    image.SetSpacing(data.grid_spacing)
    image.SetOrigin(data.grid_origin)
    return image


def ct_grid_dose(engine, fluence: np.ndarray):
    """The dose resampled linearly onto the CT grid (zero outside the dose grid)."""
    import SimpleITK as sitk

    return sitk.Resample(dose_image(engine, fluence), ct_reference(engine), sitk.Transform(), sitk.sitkLinear, 0.0)


def write_rtdose(engine, fluence: np.ndarray, path: str | Path, description: str = "tgsci plan") -> Path:
    """RTDOSE of ``fluence`` on the CT grid at ``path`` (written atomically); returns the path."""
    import pydicom
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence
    from pydicom.uid import generate_uid
    from pyRadPlan.io.dicom._export_common import UIDContext
    from pyRadPlan.io.dicom._export_dose import export_dose

    from ..files import write_bytes_atomic

    patient = engine.data.meta.get("patient") or {}
    ctx = UIDContext(
        study_uid=patient.get("study_uid") or generate_uid(), frame_uid=patient.get("frame_uid") or generate_uid(),
        patient_name=patient.get("patient_name") or f"tgsci^{engine.case.name}", patient_id=patient.get("patient_id") or engine.case.name,
    )
    with tempfile.TemporaryDirectory() as tmp:
        ds = pydicom.dcmread(export_dose(ct_grid_dose(engine, fluence), tmp, ctx))
    ds.SeriesDescription = description[:64]
    ds.Manufacturer = "tgsci"
    refs = patient.get("ct_sop_instances") or []
    if refs:  # the CT slices this dose was computed on (General Image module)
        items = []
        for sop_class, sop_instance in refs:
            item = Dataset()
            item.ReferencedSOPClassUID = sop_class
            item.ReferencedSOPInstanceUID = sop_instance
            items.append(item)
        ds.ReferencedImageSequence = Sequence(items)
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return write_bytes_atomic(path, buffer.getvalue())


def ct_grid_metrics(engine, fluence: np.ndarray, ct=None, cst=None) -> dict:
    """The case's metrics on the CT grid: dose resampled there, structures as drawn (loaded when not given)."""
    import SimpleITK as sitk

    if ct is None or cst is None:
        from .matrix import _structure_dicts
        from .phantoms import load_phantom

        ct, cst, _ = load_phantom(engine.case.phantom, _structure_dicts(engine.case))
    dose = sitk.GetArrayFromImage(ct_grid_dose(engine, fluence)).ravel()
    masks = {v.name: np.asarray(v.indices_numpy).ravel() for v in cst.vois}
    levels = engine.case.metric_levels()
    out: dict = {}
    for st in engine.case.structures:
        d_levels, v_levels = levels[st.name]
        out.update(M.structure_metrics(dose[masks[st.name]], st.name, d_levels=d_levels, v_levels=v_levels))
    target = engine.case.target
    out[f"{target}.HI"] = M.homogeneity_index(dose[masks[target]])
    out[f"{target}.CI"] = M.paddick_ci(dose, masks[target], engine.case.conformity_isodose * engine.case.prescription_gy)
    return out


def dvh_rows(engine, dose_grid_metrics: dict, ct_metrics: Optional[dict]) -> list[dict]:
    """One row per structure, metric and grid: value, unit, the goal on it (if any) and whether it is met."""
    goals = {g.key: g for g in engine.case.goals}
    spacing = engine.data.meta.get("ct_grid", {}).get("spacing")
    grids = [(f"dose grid {engine.case.plan.dose_grid_mm:g} mm", dose_grid_metrics)]
    if ct_metrics is not None:
        label = "CT grid " + (" x ".join(f"{s:g}" for s in spacing) + " mm" if spacing else "")
        grids.append((label.strip(), ct_metrics))
    rows = []
    for grid, values in grids:
        for key, value in values.items():
            if "." not in key or value is None:
                continue
            structure, metric = key.split(".", 1)
            kind, _ = M.parse_metric(metric)
            goal = goals.get(key)
            rows.append({
                "structure": structure, "metric": metric, "value": round(float(value), 4),
                "unit": "%" if kind == "V" else ("" if kind in ("HI", "CI") else "Gy"), "grid": grid,
                "goal": goal.label if goal else "", "met": (goal.met(value) if goal else ""),
            })
    return rows
