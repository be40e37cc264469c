"""Generated prostate patients (simulators/dose/patients.py): seeded anatomy within its stated ranges,
written as DICOM and read back through `tgsci case init`, as a clinic's patient is."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from simulators.dose.patients import PAPER_SEEDS, GeneratorError, paper_patient_case, prostate_phantom
from simulators.dose.phantoms import synthetic_masks


@pytest.mark.parametrize("seed", PAPER_SEEDS + (101, 777))
def test_each_seed_draws_an_anatomy_within_the_stated_ranges(seed):
    phantom, anatomy = prostate_phantom(seed)
    masks, hu = synthetic_masks(phantom)
    cc = 27.0 / 1000
    ptv = masks["PTV"].sum() * cc
    inside = 100 * (masks["Rectum"] & masks["PTV"]).sum() / masks["Rectum"].sum()
    assert 40 <= ptv <= 150 and 3 <= inside <= 15 and anatomy.ptv_cc == pytest.approx(ptv, abs=0.1)
    assert not (masks["CTV"] & ~masks["PTV"]).any()  # the CTV inside its margin
    assert not (masks["Bladder"] & masks["PTV"]).any() and not (masks["FemHead_L"] & masks["PTV"]).any()
    ys = np.nonzero(masks["Rectum"])[1].mean(), np.nonzero(masks["PTV"])[1].mean()
    assert ys[0] > ys[1]  # the rectum behind the PTV (LPS: +y posterior, array axis 1)
    assert set(np.unique(hu[masks["FemHead_L"]])) == {450.0} and set(np.unique(hu[~masks["BODY"]])) == {-1000.0}
    assert prostate_phantom(seed) == (phantom, anatomy)  # the seed alone decides


def test_the_five_patients_differ():
    anatomies = [prostate_phantom(s)[1] for s in PAPER_SEEDS]
    assert len({a.ptv_cc for a in anatomies}) == 5 and {a.seminal_vesicles for a in anatomies} == {True, False}


@pytest.mark.parametrize("seed", [-1, 2**31, 1.5, True, "7"])
def test_a_seed_out_of_range_is_refused(seed):
    with pytest.raises(GeneratorError, match="a patient seed is an integer"):
        prostate_phantom(seed)


def test_a_paper_patient_goes_through_dicom_and_case_init(tmp_path):
    case = paper_patient_case(2, cache_dir=tmp_path)
    text = case.read_text()
    assert "tgsci case init --protocol prostate" in text and 'normalize = "D98"' in text
    anatomy = json.loads((tmp_path / f"prostate-{PAPER_SEEDS[1]}" / "anatomy.json").read_text())
    assert anatomy["seed"] == PAPER_SEEDS[1] and list((tmp_path / f"prostate-{PAPER_SEEDS[1]}").glob("*.dcm"))
    from simulators.dose.cases import load_case

    loaded = load_case(str(case), fast=True)
    assert {s.name for s in loaded.structures} == {"PTV", "CTV", "Rectum", "Bladder", "Femur_Head_L", "Femur_Head_R", "External"}
    assert {g.key for g in loaded.goals} >= {"PTV.D98", "PTV.D2", "CTV.Dmin", "Rectum.V70Gy"}
    assert paper_patient_case(2, cache_dir=tmp_path) == case  # made once, reused
    with pytest.raises(GeneratorError, match="the paper's patients are 1-5"):
        paper_patient_case(6, cache_dir=tmp_path)


def test_case_generate_writes_a_patient_and_refuses_bad_input(tmp_path):
    def cli(*args):
        done = subprocess.run([sys.executable, "-m", "tgsci.cli", "case", "generate", *args], capture_output=True, text=True,
                              timeout=300)
        return done.returncode, " ".join((done.stdout + done.stderr).split())  # rich wraps long lines

    code, text = cli("--seed", "23", "--out", str(tmp_path / "p"))
    assert code == 0 and "% of the rectum inside it" in text and (tmp_path / "p" / "anatomy.json").is_file(), text
    code, text = cli("--seed", "23", "--out", str(tmp_path / "p"))  # never over an existing patient
    assert code == 2 and "is not an empty folder" in text
    code, text = cli("--seed", "-3", "--out", str(tmp_path / "q"))
    assert code == 2 and "a patient seed is an integer" in text and not (tmp_path / "q").exists()
