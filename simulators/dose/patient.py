"""Your own patient: a DICOM folder (CT series + RTSTRUCT) or a matRad ``.mat`` file, read by
pyRadPlan's importers (``pyRadPlan.io``), checked first so that a bad export gets a clear message.

``scan_dicom`` reads only headers (pydicom) and says what a folder holds: CT series (by
SeriesInstanceUID), structure sets, doses, files that are not DICOM (ignored and counted).
``check_series`` refuses what would give a wrong dose silently: slices with uneven spacing or
a gantry (orientation) tilt, a series whose slices disagree in size or pixel spacing, an
RTSTRUCT on another frame of reference. ``load_dicom`` then imports the CT and the structures
with pyRadPlan and matches the case's structure names to ROI names (exactly, then ignoring
case; an unmatched name lists the names found).
"""

from __future__ import annotations

import hashlib
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

MAX_CT_VOXELS = 80_000_000  # ~320 MB as float32; a larger CT is refused with the way out


class PatientError(ValueError):
    """A patient source that cannot be planned on; the message says why and what to change."""


@dataclass
class DicomScan:
    directory: Path
    series: list[dict] = field(default_factory=list)  # CT series: uid, description, files, frame_uid, study_uid
    structure_sets: list[dict] = field(default_factory=list)  # path, frame_uid, roi_names, referenced_series
    doses: list[str] = field(default_factory=list)
    not_dicom: int = 0  # files that are not DICOM: ignored
    other: Counter = field(default_factory=Counter)  # DICOM of other modalities (RTPLAN, MR, ...): ignored

    def summary(self) -> str:
        series = "; ".join(f"{s['uid']} ({s['description'] or 'no description'}, {len(s['files'])} slices)" for s in self.series)
        parts = [f"{len(self.series)} CT series" + (f": {series}" if series else ""),
                 f"{len(self.structure_sets)} RTSTRUCT", f"{len(self.doses)} RTDOSE"]
        if self.other:
            parts.append("other DICOM ignored: " + ", ".join(f"{n} {m}" for m, n in sorted(self.other.items())))
        if self.not_dicom:
            parts.append(f"{self.not_dicom} non-DICOM file(s) ignored")
        return ", ".join(parts)


def scan_dicom(directory: str | Path) -> DicomScan:
    """Headers of every file in ``directory`` (not recursive), grouped by what they are."""
    import pydicom

    directory = Path(directory).expanduser()
    if not directory.is_dir():
        raise PatientError(f"DICOM folder {directory} does not exist (or is not a folder)")
    scan = DicomScan(directory)
    series: dict[str, dict] = {}
    for path in sorted(directory.iterdir()):
        if not path.is_file():
            continue
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
            modality = str(ds.Modality)
        except Exception:  # noqa: BLE001 - anything pydicom cannot read is not DICOM for us
            scan.not_dicom += 1
            continue
        if modality == "CT":
            uid = str(getattr(ds, "SeriesInstanceUID", ""))
            entry = series.setdefault(uid, {"uid": uid, "description": str(getattr(ds, "SeriesDescription", "") or ""),
                                            "files": [], "frame_uid": str(getattr(ds, "FrameOfReferenceUID", "")),
                                            "study_uid": str(getattr(ds, "StudyInstanceUID", "")), "headers": []})
            entry["files"].append(path)
            entry["headers"].append(ds)
        elif modality == "RTSTRUCT":
            refs = [str(r.FrameOfReferenceUID) for r in getattr(ds, "ReferencedFrameOfReferenceSequence", [])]
            rois = [str(r.ROIName) for r in getattr(ds, "StructureSetROISequence", [])]
            contoured = {int(c.ReferencedROINumber) for c in getattr(ds, "ROIContourSequence", []) if getattr(c, "ContourSequence", None)}
            numbers = {str(r.ROIName): int(r.ROINumber) for r in getattr(ds, "StructureSetROISequence", [])}
            scan.structure_sets.append({"path": path, "frame_uids": refs, "roi_names": rois,
                                        "empty_rois": [n for n, k in numbers.items() if k not in contoured]})
        elif modality == "RTDOSE":
            scan.doses.append(str(path))
        else:
            scan.other[modality] += 1
    scan.series = sorted(series.values(), key=lambda s: (-len(s["files"]), s["uid"]))
    return scan


def choose_series(scan: DicomScan, series_uid: Optional[str] = None) -> dict:
    """The CT series to plan on: the one asked for, or the only one; several without a choice is an error."""
    if not scan.series:
        raise PatientError(f"no CT series in {scan.directory} ({scan.summary()})")
    if series_uid:
        for s in scan.series:
            if s["uid"] == series_uid:
                return s
        raise PatientError(f"CT series {series_uid} is not in {scan.directory}; found {scan.summary()}")
    if len(scan.series) > 1:
        raise PatientError(f"{scan.directory} holds several CT series: {scan.summary()}. Choose one with "
                           f"series_uid = \"...\" in the case's [phantom] table (CLI: --series UID)")
    return scan.series[0]


def check_series(series: dict) -> dict:
    """Geometry checks on the slice headers; returns the geometry (spacing, size, normal)."""
    headers = series["headers"]
    orientations = {tuple(round(float(v), 4) for v in h.ImageOrientationPatient) for h in headers}
    if len(orientations) > 1:
        raise PatientError(f"CT series {series['uid']}: slices have different orientations (mixed series?)")
    row, col = np.array(next(iter(orientations))[:3]), np.array(next(iter(orientations))[3:])
    normal = np.cross(row, col)
    if not (np.allclose(np.abs(row), [1, 0, 0], atol=1e-3) and np.allclose(np.abs(col), [0, 1, 0], atol=1e-3)):
        raise PatientError(f"CT series {series['uid']}: the slices are tilted (ImageOrientationPatient {list(row) + list(col)}); "
                           f"gantry-tilted or oblique CTs must be resampled to axial slices before planning")
    shapes = {(int(h.Rows), int(h.Columns), tuple(round(float(v), 4) for v in h.PixelSpacing)) for h in headers}
    if len(shapes) > 1:
        raise PatientError(f"CT series {series['uid']}: slices differ in size or pixel spacing {sorted(shapes)} (mixed series?)")
    positions = sorted(float(np.dot(np.array(h.ImagePositionPatient, dtype=float), normal)) for h in headers)
    if len(positions) < 2:
        raise PatientError(f"CT series {series['uid']} has {len(positions)} slice: a 3D plan needs a volume")
    steps = np.diff(positions)
    if np.any(steps < 1e-3):
        raise PatientError(f"CT series {series['uid']}: two slices at the same position (duplicated or mixed series)")
    if steps.max() - steps.min() > max(0.01 * float(np.median(steps)), 1e-3):
        raise PatientError(f"CT series {series['uid']}: uneven slice spacing ({steps.min():.3f} to {steps.max():.3f} mm); "
                           f"resample the CT to even slices before planning")
    rows, cols, spacing = next(iter(shapes))
    voxels = rows * cols * len(positions)
    if voxels > MAX_CT_VOXELS:
        raise PatientError(f"CT series {series['uid']} has {voxels:,} voxels ({cols} x {rows} x {len(positions)}), more than "
                           f"{MAX_CT_VOXELS:,}: crop or downsample the CT before planning")
    return {"size": (cols, rows, len(positions)), "pixel_spacing": spacing, "slice_spacing": float(np.median(steps)),
            "voxels": voxels}


def structure_set_for(scan: DicomScan, series: dict) -> dict:
    """The RTSTRUCT on the series' frame of reference; errors say what was found instead."""
    if not scan.structure_sets:
        raise PatientError(f"no RTSTRUCT in {scan.directory} ({scan.summary()}): export the structure set with the CT")
    same = [s for s in scan.structure_sets if series["frame_uid"] in s["frame_uids"]]
    if not same:
        frames = sorted({f for s in scan.structure_sets for f in s["frame_uids"]})
        raise PatientError(f"the RTSTRUCT in {scan.directory} references frame of reference {', '.join(frames) or '(none)'}, "
                           f"not the CT's {series['frame_uid']}: it belongs to another image")
    if len(same) > 1:
        warnings.warn(f"several RTSTRUCT files on the CT's frame of reference; using {same[0]['path'].name}", stacklevel=2)
    return same[0]


def match_names(wanted: list[str], found: list[str], where: str) -> dict[str, str]:
    """{wanted: found}: exact match first, then ignoring case; PatientError lists the names found."""
    lower = {}
    for name in found:
        lower.setdefault(name.lower(), name)
    out, missing = {}, []
    for name in wanted:
        if name in found:
            out[name] = name
        elif name.lower() in lower:
            out[name] = lower[name.lower()]
        else:
            missing.append(name)
    if missing:
        raise PatientError(f"structure(s) {', '.join(missing)} not found in {where}; ROIs found: {', '.join(found) or '(none)'}")
    return out


def content_digest(paths: list[Path]) -> str:
    """sha256 over the files' bytes (sorted by name): changes when the patient's data changes."""
    h = hashlib.sha256()
    for path in sorted(Path(p) for p in paths):
        h.update(path.name.encode())
        h.update(Path(path).read_bytes())
    return h.hexdigest()


def check_patient(phantom: dict, rois: list[str]) -> tuple[DicomScan, dict, dict, dict, dict]:
    """Every header check of a DICOM phantom, before any pixel is read:
    (scan, series, geometry, rtstruct, {wanted ROI: ROI found})."""
    scan = scan_dicom(phantom["dicom"])
    series = choose_series(scan, phantom.get("series_uid"))
    geometry = check_series(series)
    rtstruct = structure_set_for(scan, series)
    mapping = match_names(list(dict.fromkeys(rois)), rtstruct["roi_names"], rtstruct["path"].name)
    empty = [r for r in mapping.values() if r in rtstruct["empty_rois"]]
    if empty:
        raise PatientError(f"structure(s) {', '.join(empty)} have no contour on any slice in {rtstruct['path'].name}")
    return scan, series, geometry, rtstruct, mapping


def identity_hash(header) -> str:
    """sha256 of a header's PatientID and PatientName: names the patient in caches without naming them."""
    text = f"{getattr(header, 'PatientID', '') or ''}\x00{getattr(header, 'PatientName', '') or ''}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def patient_identity(phantom: dict, expected_sha256: str) -> tuple[str, str]:
    """(PatientName, PatientID) of the case's CT series, read from its files now; PatientError if
    they are no longer the patient the plan was computed for."""
    scan = scan_dicom(phantom["dicom"])
    first = choose_series(scan, phantom.get("series_uid"))["headers"][0]
    if identity_hash(first) != expected_sha256:
        raise PatientError(f"the CT series in {scan.directory} now belongs to another patient than the one this plan was "
                           f"computed for; recompute the plan (delete the case's cached matrix)")
    return str(getattr(first, "PatientName", "") or ""), str(getattr(first, "PatientID", "") or "")


def load_dicom(phantom: dict, structures: list[dict]):
    """(CT, StructureSet renamed to the case's names, info) of a case's ``[phantom] dicom = DIR``."""
    from pyRadPlan.core import ProgressReporter
    from pyRadPlan.cst import validate_cst
    from pyRadPlan.io.dicom._import_cst import import_rtstruct
    from pyRadPlan.io.dicom._import_ct import import_ct
    import pydicom

    rois = {s["name"]: s.get("roi") or s["name"] for s in structures}
    scan, series, geometry, rtstruct, mapping = check_patient(phantom, list(rois.values()))
    quiet = ProgressReporter()
    quiet.console_progress = False  # no tqdm bars: importing takes seconds
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ct = import_ct(str(scan.directory), [str(f) for f in series["files"]], reporter=quiet)
        vois = {v.name: v for v in import_rtstruct(pydicom.dcmread(rtstruct["path"]), ct, reporter=quiet)}
    renamed = []
    for spec in structures:
        roi = mapping[rois[spec["name"]]]
        if roi not in vois:
            raise PatientError(f"structure {roi} in {rtstruct['path'].name} has no voxel on the CT grid (contours outside the image?)")
        update = {"name": spec["name"], "voi_type": spec["type"]}
        if "overlap_priority" in spec:
            update["overlap_priority"] = int(spec["overlap_priority"])
        renamed.append(vois[roi].model_copy(update=update))
    first = series["headers"][0]
    info = {
        "scan": scan.summary(), "series_uid": series["uid"], "frame_uid": series["frame_uid"], "study_uid": series["study_uid"],
        # Not the name or ID: the matrix cache keeps only their hash; the RTDOSE export reads them
        # back from the patient's own files (patient_identity), so no cache file names a patient.
        "patient_sha256": identity_hash(first),
        "ct_sop_instances": [[str(h.SOPClassUID), str(h.SOPInstanceUID)] for h in series["headers"]],
        "rtstruct": str(rtstruct["path"]), "roi_names": mapping, "geometry": geometry,
    }
    return ct, validate_cst(renamed, ct), info


def load_matrad(phantom: dict, structures: list[dict]):
    """(CT, StructureSet renamed to the case's names) of a case's ``[phantom] matrad = FILE`` (matRad/pyRadPlan .mat)."""
    from pyRadPlan.cst import validate_cst
    from pyRadPlan.io import load_patient

    path = Path(phantom["matrad"])
    if not path.is_file():
        raise PatientError(f"matRad file {path} does not exist")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ct, cst = load_patient(path)
    except Exception as exc:  # noqa: BLE001 - a file pyRadPlan cannot read
        raise PatientError(f"cannot read {path.name} as a matRad/pyRadPlan patient file: {exc}") from None
    if cst is None:
        raise PatientError(f"{path.name} has a CT but no structures (cst)")
    names = [v.name for v in cst.vois]
    rois = {s["name"]: s.get("roi") or s["name"] for s in structures}
    mapping = match_names(list(dict.fromkeys(rois.values())), names, path.name)
    by_name = {v.name: v for v in cst.vois}
    renamed = []
    for spec in structures:
        update = {"name": spec["name"], "voi_type": spec["type"]}
        if "overlap_priority" in spec:
            update["overlap_priority"] = int(spec["overlap_priority"])
        renamed.append(by_name[mapping[rois[spec["name"]]]].model_copy(update=update))
    return ct, validate_cst(renamed, ct), {"matrad": str(path), "roi_names": mapping}

