"""The four notebooks run top to bottom on the embedded model with quick budgets and show what they promise.

They are executed with nbclient in a fresh kernel (``TGSCI_NOTEBOOK_QUICK=1``, run directories in a temporary
folder, no API keys), so a notebook that errors fails the suite. The committed files carry no outputs.
"""

import json
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
KEYS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "TGSCI_CAPABLE_MODEL", "TGSCI_MODEL", "TGSCI_RUNS")


def _execute(name: str, runs: Path, monkeypatch) -> dict:
    for key in KEYS:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("TGSCI_NOTEBOOK_QUICK", "1")
    monkeypatch.setenv("TGSCI_RUNS", str(runs))
    book = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    NotebookClient(book, timeout=1200, kernel_name="python3", resources={"metadata": {"path": str(runs)}}).execute()
    out = {"png": 0, "svg": 0, "html": [], "3dmol": 0, "text": "", "last": ""}
    for cell in book.cells:
        if cell.cell_type != "code":
            continue
        cell_text = ""
        for o in cell.outputs:
            assert o.output_type != "error", f"{name}: {o.ename}: {o.evalue}"
            if o.output_type == "stream" and o.name == "stdout":
                cell_text += o.text
            data = o.get("data", {})
            out["png"] += "image/png" in data
            out["svg"] += "image/svg+xml" in data
            out["3dmol"] += any(k.startswith("application/3dmoljs") for k in data)
            if "text/html" in data:
                out["html"].append(data["text/html"])
        out["text"] += cell_text
        out["last"] = cell_text
    return out


def test_molecule_design(tmp_path, monkeypatch):
    out = _execute("molecule_design", tmp_path, monkeypatch)
    run = tmp_path / "notebook-molecule-quick"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["finished"] and summary["steps"] == 2
    assert out["png"] >= 2  # trajectory, comparison with the approved drugs
    assert out["svg"] >= 3  # the candidate grid and one grid per shown step
    assert out["3dmol"] == 1 and "PPARA_target.pdbqt" in out["text"]
    assert "=== step 1: molecule c1ccccc1" in out["text"] and "--- feedback (textual gradient)" in out["text"]
    assert any("fenofibrate" in h and "tgsci best" in h for h in out["html"])
    assert (run / "report.html").is_file() and (run / "best.sdf").is_file()
    assert "set OPENAI_API_KEY in the environment" in out["last"]


def test_treatment_planning(tmp_path, monkeypatch):
    out = _execute("treatment_planning", tmp_path, monkeypatch)
    for case in ("tg119", "prostate"):
        run = tmp_path / f"notebook-plan-{case}-quick"
        assert json.loads((run / "summary.json").read_text())["finished"]
        assert (run / "dvh.png").is_file() and (run / "report.html").is_file()
    assert out["png"] >= 4  # DVH and dose slice of both cases
    tables = [h for h in out["html"] if "goals met" in h and "the paper's table" not in h]
    assert len(tables) == 2 and "Core D10 &lt;= 25 Gy" in tables[0] and "PTV D98 &gt;= 78 Gy" in tables[1] and "PTV D2 &lt;= 83.46 Gy (acceptable &lt;= 85.8 Gy)" in tables[1]
    assert "--- feedback" in out["text"] and "MISSED" in out["text"] + "".join(tables)
    # the prostate's planning-system objectives, normalization and tuned levels, start vs best
    assert "normalize: PTV D98 = 78 Gy" in out["text"] and "max DVH: at most 20% of the volume at or above 70 Gy" in out["text"]
    levels = next(h for h in out["html"] if "dose levels (Gy), volumes and the normalization factor" in h)
    assert "Rectum_V70" in levels and "PTV_hot" in levels and "normalization" in levels
    paper = [h for h in out["html"] if "the paper's table" in h]
    assert len(paper) == 2 and "PTV mean - Rx (Gy)" in paper[1] and "reference A: target first (reference)" in paper[0]
    patient = tmp_path / "notebook-plan-patient-quick"  # the "your own patient" section: DICOM in, RTDOSE out
    assert (patient / "best_dose.dcm").is_file() and f"RTDOSE of the best plan on the patient's CT grid: {patient}" in out["text"]
    assert "'Femur_Head_L': 'FemHead_L'" in out["text"] and any("CT grid" in h and "met" in h for h in out["html"])
    assert "set ANTHROPIC_API_KEY in the environment" in out["last"]


def test_target_sweep(tmp_path, monkeypatch):
    out = _execute("target_sweep", tmp_path, monkeypatch)
    assert "4 finished, 0 failed" in out["text"]
    assert (tmp_path / "notebook-sweep-quick" / "summary.png").is_file() and out["png"] >= 1
    assert any("PPARA" in h and "JAK2" in h and "auc_top10" in h for h in out["html"])
    assert "set OPENAI_API_KEY in the environment" in out["last"]


def test_textgrad_primitives(tmp_path, monkeypatch):
    out = _execute("textgrad_primitives", tmp_path, monkeypatch)
    assert "overshoot 52.7%" in out["text"]  # the notebook's own simulator, start k=4, c=0.8
    assert "params is now {" in out["text"] and "iteration 2: best score" in out["text"]
    assert out["png"] == 1
    from tgsci.record import RunRecord

    run = RunRecord.load(tmp_path / "notebook-spring-quick")  # optimize(fn, ...) on the notebook's plain function
    assert run.finished and run.config.objective["kind"] == "function" and run.config.objective["function"] == "spring"
    valid = [c for step in run.steps for c in step.candidates if c.valid]
    assert valid and all(c.text.startswith("overshoot ") and "settling time" in c.text for c in valid)  # its words, recorded
    assert run.summary.best.score == min(c.score for c in valid) and "step 0: {" in out["text"]
    assert "set OPENAI_API_KEY in the environment" in out["last"]


@pytest.mark.parametrize("path", sorted(NOTEBOOKS.glob("*.ipynb")), ids=lambda p: p.stem)
def test_committed_notebooks_are_stripped_and_end_with_a_capable_model_cell(path):
    book = nbformat.read(path, as_version=4)
    nbformat.validate(book)
    code = [c for c in book.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code), f"{path.name} has outputs: strip them"
    assert book.cells[-2].cell_type == "markdown" and "Use a capable model" in book.cells[-2].source
    assert "missing_keys(CAPABLE_MODEL)" in code[-1].source


def test_every_notebook_is_tested():
    names = {p.stem for p in NOTEBOOKS.glob("*.ipynb")}
    assert names == {"molecule_design", "treatment_planning", "target_sweep", "textgrad_primitives"}
