"""Planning on your own patient: DICOM CT + RTSTRUCT in (pyRadPlan's importers), RTDOSE out.

No patient can be downloaded here, so the patients are the shipped phantoms exported as DICOM with
pyRadPlan's exporter, then made to look like a real export: slice files shuffled and renamed, a
stray non-DICOM file, an ROI renamed to a TG-263 synonym, contours referencing their CT slices.
The independent DVH check rasterizes the RTSTRUCT with matplotlib's point-in-polygon test (what
dicompyler does) instead of pyRadPlan's scanline filler, and reads the RTDOSE with pydicom.
"""

from __future__ import annotations

import csv
import glob
import json
import random
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest

from simulators.dose.cases import load_case
from simulators.dose.matrix import _structure_dicts
from simulators.dose.patient import PatientError, scan_dicom
from simulators.dose.phantoms import load_phantom
from tgsci import build_objective
from tgsci.domains import SpecError

ROOT = Path(__file__).resolve().parent.parent


def export_patient(case_name: str, folder: Path, rename: dict | None = None) -> tuple:
    """The case's phantom as a DICOM folder a planning system could have written; (ct, cst) of the original."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence
    from pyRadPlan.io.dicom import DicomExporter

    case = load_case(case_name, fast=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ct, cst, _ = load_phantom(case.phantom, _structure_dicts(case))
        DicomExporter(str(folder)).save(ct=ct, cst=cst)
    cts = {}
    rng = random.Random(7)
    files = sorted(folder.glob("CT_*.dcm"))
    for i, f in zip(rng.sample(range(len(files)), len(files)), files):  # shuffled, renamed as a PACS would
        ds = pydicom.dcmread(f)
        cts[round(float(ds.ImagePositionPatient[2]), 3)] = ds
        f.rename(folder / f"IMG{i:05d}")
    rs = pydicom.dcmread(folder / "RTSTRUCT.dcm")
    for roi in rs.ROIContourSequence:  # contours referencing their slices, as planning systems write them
        for contour in roi.ContourSequence:
            ds = cts[round(float(contour.ContourData[2]), 3)]
            item = Dataset()
            item.ReferencedSOPClassUID, item.ReferencedSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
            contour.ContourImageSequence = Sequence([item])
    for roi in rs.StructureSetROISequence:
        roi.ROIName = (rename or {}).get(str(roi.ROIName), str(roi.ROIName))
    rs.save_as(folder / "RS.1.dcm")
    (folder / "RTSTRUCT.dcm").unlink()
    (folder / "notes.txt").write_text("exported for tgsci tests\n")
    return ct, cst


def dice(a, b) -> float:
    return 2.0 * np.logical_and(a, b).sum() / (a.sum() + b.sum())


@pytest.fixture(scope="module")
def prostate_dicom(tmp_path_factory):
    folder = tmp_path_factory.mktemp("patients") / "prostate-export"
    original = export_patient("prostate", folder, rename={"FemHead_L": "Femur_Head_L"})
    return folder, original


@pytest.fixture(scope="module")
def prostate_case(prostate_dicom, tmp_path_factory):
    folder, _ = prostate_dicom
    out = tmp_path_factory.mktemp("cases") / "p1.toml"
    done = subprocess.run([sys.executable, "-m", "tgsci.cli", "case", "init", "--dicom", str(folder), "--protocol", "prostate",
                           "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return out


def test_case_init_maps_the_rois_to_the_protocol_roles(prostate_case, prostate_dicom):
    import tomllib

    case = tomllib.loads(prostate_case.read_text())
    roles = {s["name"]: s.get("roi", s["name"]) for s in case["structures"]}
    assert roles == {"PTV": "PTV", "CTV": "CTV", "Rectum": "Rectum", "Bladder": "Bladder", "Femur_Head_L": "Femur_Head_L",
                     "Femur_Head_R": "FemHead_R", "External": "BODY"}
    assert {k: case["prescription"][k] for k in ("dose_gy", "fractions", "target", "normalize")} == \
        {"dose_gy": 78, "fractions": 39, "target": "PTV", "normalize": "D98"}
    # the protocol's objectives as a planner writes them, every number and range carried over
    objectives = {o["name"]: o for s in case["structures"] for o in s.get("objectives", [])}
    assert objectives["PTV_cov"] == {"name": "PTV_cov", "kind": "min_dvh", "dose_gy": 78, "volume_pct": 98, "weight": 1000,
                                     "dose_range": [76.05, 79.95], "volume_range": [95.0, 99.0]}
    assert objectives["Rectum_V70"]["kind"] == "max_dvh" and objectives["Rectum_V70"]["volume_range"] == [5.0, 20.0]
    assert objectives["PTV_hot"]["dose_gy"] == 81.9 and case["plan"]["judge_grid"] == "ct"
    assert case["plan"]["tune"] == ["weights", "dose_levels"] and case["plan"]["fast"]["judge_grid"] == "dose"
    sources = " ".join(g["source"] for g in case["goals"])
    assert "QUANTEC rectum (Michalski" in sources and "RTOG 0415" in sources and "RTOG 0126" in sources and len(case["goals"]) == 12
    d2 = next(g for g in case["goals"] if g["metric"] == "D2")  # the two RTOG 0126 levels of the hot spot, carried over
    assert (d2["value_rx"], d2["acceptable_rx"]) == (1.07, 1.10) and objectives["CTV_cold"]["kind"] == "squared_underdose"
    assert Path(prostate_case.parent / case["phantom"]["dicom"]).resolve() == prostate_dicom[0].resolve()
    assert "1 non-DICOM file(s) ignored" in scan_dicom(prostate_dicom[0]).summary()


def test_the_imported_patient_matches_the_phantom_it_came_from(prostate_case, prostate_dicom, tmp_path):
    """Dice of every structure, then the same plan on both: DVH goal metrics within 0.5 Gy."""
    import SimpleITK as sitk

    _, (ct0, cst0) = prostate_dicom
    case = load_case(str(prostate_case), fast=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ct, cst, info = load_phantom(case.phantom, _structure_dicts(case))
    assert ct.cube_hu.GetSize() == ct0.cube_hu.GetSize() and np.allclose(ct.cube_hu.GetOrigin(), ct0.cube_hu.GetOrigin())
    names = {"Femur_Head_L": "FemHead_L", "Femur_Head_R": "FemHead_R", "External": "BODY"}
    original = {v.name: sitk.GetArrayFromImage(v.mask).astype(bool) for v in cst0.vois}
    for v in cst.vois:
        assert dice(sitk.GetArrayFromImage(v.mask).astype(bool), original[names.get(v.name, v.name)]) >= 0.95, v.name
    assert info["roi_names"]["Femur_Head_L"] == "Femur_Head_L" and len(info["ct_sop_instances"]) == ct.cube_hu.GetSize()[2]

    from_dicom = build_objective({"kind": "plan", "case": str(prostate_case), "fast": True})
    from_toml = build_objective({"kind": "plan", "case": "prostate", "fast": True})
    # the protocol's objectives are the shipped case's (only the femoral heads and body are named as in the RTSTRUCT)
    renamed = {v: k for k, v in names.items()}
    assert [renamed.get(n, n) for n in from_toml.names] == from_dicom.names
    a = from_toml.evaluate([from_toml.start_value()])[0]
    b = from_dicom.evaluate([from_dicom.start_value()])[0]
    assert a.valid and b.valid, (a.error, b.error)
    for goal in from_toml.case.goals:
        other = ({v: k for k, v in names.items()}).get(goal.structure, goal.structure)
        assert abs(a.metrics[goal.key] - b.metrics[f"{other}.{goal.metric}"]) <= 0.5, goal.label
    from_dicom.close()
    from_toml.close()


@pytest.fixture(scope="module")
def tg119_plan(tmp_path_factory):
    """TG119 exported as DICOM, its case written by case init (generic protocol), planned by the CLI."""
    base = tmp_path_factory.mktemp("tg119")
    folder = base / "dicom"
    export_patient("tg119", folder)
    case = base / "tg119.toml"
    tgsci = [sys.executable, "-m", "tgsci.cli"]
    done = subprocess.run(tgsci + ["case", "init", "--dicom", str(folder), "--protocol", "generic", "--out", str(case)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    run = base / "run"
    done = subprocess.run(tgsci + ["plan", "--case", str(case), "--fast", "--method", "random", "--steps", "1", "--proposals", "1",
                                   "--run-dir", str(run)], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return folder, case, run


def _contour_masks(folder: Path) -> tuple[dict, list]:
    """Every ROI of the RTSTRUCT rasterized on the CT grid by matplotlib (voxel centre inside, even-odd)."""
    from matplotlib.path import Path as Polygon

    cts = sorted((pydicom.dcmread(f, stop_before_pixels=True) for f in glob.glob(str(folder / "IMG*"))),
                 key=lambda c: float(c.ImagePositionPatient[2]))
    z = [round(float(c.ImagePositionPatient[2]), 3) for c in cts]
    x0, y0 = float(cts[0].ImagePositionPatient[0]), float(cts[0].ImagePositionPatient[1])
    dy, dx = (float(v) for v in cts[0].PixelSpacing)
    ny, nx = int(cts[0].Rows), int(cts[0].Columns)
    yy, xx = np.mgrid[0:ny, 0:nx]
    centres = np.column_stack([x0 + xx.ravel() * dx, y0 + yy.ravel() * dy])
    rs = pydicom.dcmread(folder / "RS.1.dcm")
    names = {int(r.ROINumber): str(r.ROIName) for r in rs.StructureSetROISequence}
    masks = {}
    for rc in rs.ROIContourSequence:
        m = masks.setdefault(names[int(rc.ReferencedROINumber)], np.zeros((len(z), ny, nx), bool))
        for c in rc.ContourSequence:
            pts = np.asarray(c.ContourData, float).reshape(-1, 3)
            m[z.index(round(pts[0, 2], 3))] ^= Polygon(pts[:, :2]).contains_points(centres).reshape(ny, nx)
    return masks, cts


def test_rtdose_lies_on_the_ct_and_an_independent_dvh_agrees(tg119_plan):
    folder, _, run = tg119_plan
    dose_ds = pydicom.dcmread(run / "best_dose.dcm")
    masks, cts = _contour_masks(folder)
    first = cts[0]
    assert dose_ds.FrameOfReferenceUID == first.FrameOfReferenceUID and dose_ds.StudyInstanceUID == first.StudyInstanceUID
    assert np.allclose([float(v) for v in dose_ds.ImagePositionPatient], [float(v) for v in first.ImagePositionPatient])
    assert [float(v) for v in dose_ds.PixelSpacing] == [float(v) for v in first.PixelSpacing]
    assert (dose_ds.Rows, dose_ds.Columns, dose_ds.NumberOfFrames) == (first.Rows, first.Columns, len(cts))
    assert np.allclose(np.diff(dose_ds.GridFrameOffsetVector), float(cts[1].ImagePositionPatient[2]) - float(first.ImagePositionPatient[2]))
    referenced = {str(r.ReferencedSOPInstanceUID) for r in dose_ds.ReferencedImageSequence}
    assert referenced == {str(c.SOPInstanceUID) for c in cts}
    assert dose_ds.PatientID == first.PatientID and dose_ds.DoseUnits == "GY"
    assert str(dose_ds.PatientName) == str(first.PatientName)
    # read back from the patient's own files: no cache file names the patient (0600 files, a hash in the meta)
    from simulators.cache import default_cache_dir

    cached = list(default_cache_dir().rglob("*.npz"))
    assert cached
    for npz in cached:
        assert npz.stat().st_mode & 0o077 == 0
        text = npz.read_bytes()
        for identity in (str(first.PatientID), str(first.PatientName)):
            assert len(identity) >= 3 and identity.encode() not in text, identity
    dose = dose_ds.pixel_array.astype(float) * float(dose_ds.DoseGridScaling)  # (z, y, x) on the CT grid
    with open(run / "dvh.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    ours = {(r["structure"], r["metric"]): float(r["value"]) for r in rows if r["grid"].startswith("CT grid")}
    assert {r["grid"] for r in rows} == {"dose grid 6 mm", "CT grid 3 x 3 x 2.5 mm"}
    for roi, structure in (("OuterTarget", "PTV"), ("Core", "Core"), ("BODY", "External")):
        d = dose[masks[roi]]
        independent = {"D95": np.percentile(d, 5), "Dmean": d.mean(), "Dmax": d.max()}
        for metric, value in independent.items():
            assert abs(value - ours[(structure, metric)]) <= 1.0, (structure, metric, value, ours[(structure, metric)])


def test_a_recorded_plan_is_exported_again(tg119_plan, tmp_path):
    _, _, run = tg119_plan
    out = tmp_path / "again.dcm"
    done = subprocess.run([sys.executable, "-m", "tgsci.cli", "plan", "--run-dir", str(run), "--export-dose", "best", "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    a, b = pydicom.dcmread(run / "best_dose.dcm"), pydicom.dcmread(out)
    assert np.allclose(a.pixel_array * float(a.DoseGridScaling), b.pixel_array * float(b.DoseGridScaling), atol=1e-3)
    assert (tmp_path / "again.csv").is_file()


def test_a_matrad_file_is_a_patient_too(tmp_path):
    import SimpleITK as sitk
    from pyRadPlan.io import save_data

    case = load_case("prostate", fast=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ct, cst, _ = load_phantom(case.phantom, _structure_dicts(case))
        save_data(file_name=str(tmp_path / "patient.mat"), ct=ct, cst=cst)
    text = (ROOT / "targets" / "cases" / "prostate.toml").read_text()
    start, end = text.index("[phantom]"), text.index("[prescription]")
    (tmp_path / "case.toml").write_text(text[:start] + '[phantom]\nmatrad = "patient.mat"\n\n' + text[end:])
    loaded = load_case(str(tmp_path / "case.toml"), fast=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, cst2, info = load_phantom(loaded.phantom, _structure_dicts(loaded))
    original = {v.name: sitk.GetArrayFromImage(v.mask).astype(bool) for v in cst.vois}
    assert all(dice(sitk.GetArrayFromImage(v.mask).astype(bool), original[v.name]) >= 0.95 for v in cst2.vois)
    assert info["matrad"].endswith("patient.mat") and len(loaded.phantom["content_sha256"]) == 64


# ----------------------------------------------------------------------------- bad input, each with its message
@pytest.fixture
def export(prostate_dicom, tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(prostate_dicom[0], folder)
    return folder


def case_for(folder: Path, tmp_path: Path, **phantom) -> Path:
    text = (ROOT / "targets" / "cases" / "prostate.toml").read_text()
    start, end = text.index("[phantom]"), text.index("[prescription]")
    extra = "".join(f"{k} = {json.dumps(v)}\n" for k, v in phantom.items())
    text = text[:start] + f"[phantom]\ndicom = {json.dumps(str(folder))}\n{extra}\n" + text[end:]
    text = text.replace('name = "FemHead_L"\ntype', 'name = "FemHead_L"\nroi = "Femur_Head_L"\ntype')
    path = tmp_path / "case.toml"
    path.write_text(text)
    return path


def test_a_folder_without_ct_or_without_rtstruct(export, tmp_path):
    for f in export.glob("IMG*"):
        f.unlink()
    with pytest.raises(PatientError, match="no CT series in .*copy.*1 RTSTRUCT.*1 non-DICOM"):
        load_case(str(case_for(export, tmp_path)))
    empty = tmp_path / "only-ct"
    empty.mkdir()
    with pytest.raises(PatientError, match="DICOM folder .*nowhere does not exist"):
        load_case(str(case_for(tmp_path / "nowhere", tmp_path)))


def test_rtstruct_missing_or_of_another_frame_of_reference(export, tmp_path):
    rs = pydicom.dcmread(export / "RS.1.dcm")
    for item in rs.ReferencedFrameOfReferenceSequence:
        item.FrameOfReferenceUID = "1.2.3.4.5"
    rs.save_as(export / "RS.1.dcm")
    with pytest.raises(PatientError, match="references frame of reference 1.2.3.4.5, not the CT's"):
        load_case(str(case_for(export, tmp_path)))
    (export / "RS.1.dcm").unlink()
    with pytest.raises(PatientError, match="no RTSTRUCT in"):
        load_case(str(case_for(export, tmp_path)))


def _edit_slice(folder: Path, edit) -> None:
    path = sorted(folder.glob("IMG*"))[3]
    ds = pydicom.dcmread(path)
    edit(ds)
    ds.save_as(path)


def test_uneven_slices_a_tilt_and_mixed_series(export, tmp_path):
    case = case_for(export, tmp_path)

    def shift(ds):
        ds.ImagePositionPatient = [ds.ImagePositionPatient[0], ds.ImagePositionPatient[1], float(ds.ImagePositionPatient[2]) + 1.1]

    _edit_slice(export, shift)
    with pytest.raises(PatientError, match="uneven slice spacing"):
        load_case(str(case))
    _edit_slice(export, lambda ds: setattr(ds, "ImageOrientationPatient", [1, 0, 0, 0, 0.9848, 0.1736]))
    with pytest.raises(PatientError, match="different orientations|tilted"):
        load_case(str(case))


def test_several_series_must_be_chosen_by_uid(export, tmp_path):
    other = sorted(export.glob("IMG*"))[:5]
    uid = "1.2.826.0.1.3680043.8.498.1"
    for i, f in enumerate(other):
        ds = pydicom.dcmread(f)
        ds.SeriesInstanceUID, ds.SOPInstanceUID = uid, f"{uid}.{i}"
        ds.save_as(export / f"OTHER{i}")
    with pytest.raises(PatientError, match=f"several CT series: .*{uid} \\(no description, 5 slices\\).*series_uid"):
        load_case(str(case_for(export, tmp_path)))
    main = next(s for s in scan_dicom(export).series if s["uid"] != uid)["uid"]
    assert load_case(str(case_for(export, tmp_path, series_uid=main))).phantom["series_uid"] == main


def test_structures_unmatched_empty_or_matched_ignoring_case(export, tmp_path):
    case = case_for(export, tmp_path)
    text = case.read_text().replace('name = "Rectum"\ntype', 'name = "Rectum"\nroi = "RECTUM"\ntype')
    case.write_text(text)
    assert load_case(str(case)).structure("Rectum").roi == "RECTUM"  # matched to "Rectum" ignoring case
    case.write_text(text.replace('roi = "RECTUM"', 'roi = "Rectum_PRV"'))
    with pytest.raises(PatientError, match="structure\\(s\\) Rectum_PRV not found in RS.1.dcm; ROIs found: PTV, CTV, Rectum, Bladder"):
        load_case(str(case))
    rs = pydicom.dcmread(export / "RS.1.dcm")
    bladder = next(int(r.ROINumber) for r in rs.StructureSetROISequence if r.ROIName == "Bladder")
    for rc in rs.ROIContourSequence:
        if int(rc.ReferencedROINumber) == bladder:
            del rc.ContourSequence
    rs.save_as(export / "RS.1.dcm")
    case.write_text(text)
    with pytest.raises(SpecError, match="Bladder have no contour on any slice"):
        build_objective({"kind": "plan", "case": str(case), "fast": True})


def test_foreign_dicom_is_ignored_and_counted(export):
    from pydicom.data import get_testdata_file

    shutil.copy(get_testdata_file("MR_small.dcm"), export / "mr.dcm")
    assert "other DICOM ignored: 1 MR" in scan_dicom(export).summary()


def test_a_ct_too_large_and_a_matrix_too_large_are_refused_before_any_work(export, tmp_path, monkeypatch):
    import simulators.dose.matrix as matrix
    import simulators.dose.patient as patient

    monkeypatch.setattr(patient, "MAX_CT_VOXELS", 1000)
    with pytest.raises(PatientError, match="voxels .* more than 1,000: crop or downsample"):
        load_case(str(case_for(export, tmp_path)))
    monkeypatch.undo()
    monkeypatch.setattr(matrix, "available_memory_gb", lambda: 0.4)
    case = load_case(str(case_for(export, tmp_path)), dose_grid_mm=3.0, memory_gb=0.1)
    from simulators.dose import DoseEngine

    with pytest.raises(MemoryError, match="dose-grid voxels x .* bixels.*needs about .* GB.*dose_grid_mm.*bixel_width_mm.*gantry_angles"):
        DoseEngine(case, cache_dir=tmp_path / "dose")
