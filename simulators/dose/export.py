"""A plan back out to the clinic: the dose as DICOM RTDOSE on the patient's CT grid, and a DVH table.

The dose of a fluence is computed on the dose grid (``DoseEngine.dose_grid_dose``), resampled
linearly onto the CT grid (as pyRadPlan's ``compute_result_ct_grid`` and matRad do), and written
with pyRadPlan's RTDOSE exporter. For a patient imported from DICOM the RTDOSE carries the
patient's study and frame-of-reference UIDs, name and ID, and references the CT slices it was
planned on, so a planning system, 3D Slicer or dicompyler lays it over that CT. ``dvh_rows``
lists every structure's metrics on both grids, saying which one the case judges on and flagging
goal metrics whose grids differ by more than 1 Gy.
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
    name, patient_id = f"tgsci^{engine.case.name}", engine.case.name
    if patient.get("patient_sha256") and engine.case.phantom.get("dicom"):
        from .patient import patient_identity

        name, patient_id = patient_identity(engine.case.phantom, patient["patient_sha256"])
    ctx = UIDContext(
        study_uid=patient.get("study_uid") or generate_uid(), frame_uid=patient.get("frame_uid") or generate_uid(),
        patient_name=name, patient_id=patient_id,
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


def dvh_rows(engine, dose_grid_metrics: dict, ct_metrics: Optional[dict]) -> list[dict]:
    """One row per structure, metric and grid: value, unit, the goal on it (if any), whether it is met,
    the grid the case judges on, and for a goal's dose metric whether the two grids differ by more
    than ``GAP_FLAG_GY`` (the planning system will read the CT grid's number)."""
    goals = {g.key: g for g in engine.case.goals}
    judged = engine.case.plan.judge_grid
    grids = [("dose", engine.grid_label("dose"), dose_grid_metrics)]
    if ct_metrics is not None:
        grids.append(("ct", engine.grid_label("ct"), ct_metrics))
    rows = []
    for grid, label, values in grids:
        other = ct_metrics if grid == "dose" else dose_grid_metrics
        for key, value in values.items():
            if "." not in key or value is None:
                continue
            structure, metric = key.split(".", 1)
            kind, _ = M.parse_metric(metric)
            goal = goals.get(key)
            gap = abs(float(value) - float(other[key])) if other is not None and key in other else None
            rows.append({
                "structure": structure, "metric": metric, "value": round(float(value), 4),
                "unit": "%" if kind == "V" else ("" if kind in ("HI", "CI") else "Gy"), "grid": label,
                "judged": ("yes" if judged == "ct" else "yes (dose grid, not for clinical decisions)") if grid == judged else "",
                "goal": goal.label if goal else "", "met": (goal.met(value) if goal else ""),
                "grids_differ": ("yes" if goal is not None and goal.unit == "Gy" and gap is not None and gap > GAP_FLAG_GY else ""),
            })
    return rows


DVH_COLUMNS = ["structure", "metric", "value", "unit", "grid", "judged", "goal", "met", "grids_differ"]
GAP_FLAG_GY = 1.0
