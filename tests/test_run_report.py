"""``tgsci report RUN_DIR``: one self-contained HTML page per run, checked in headless Chromium."""

import base64
import json
import re
from html.parser import HTMLParser

import pytest
from browser import render
from scripted import NumberObjective, ScriptedEngine, proposals_json
from typer.testing import CliRunner

from tgsci.cli import app
from tgsci.domains.plan import goal_rows
from tgsci.loop import optimize
from tgsci.domains.molecule.objective import MoleculeObjective
from tgsci.proposers import TGDProposer
from tgsci.run_report import ReportError, feedback_rows, load_run, report_run

MARKER = "Add a carboxylic acid <b>&</b> keep the ring"  # must arrive escaped, never as markup


class _Resources(HTMLParser):
    """Every URL the page would load or link to, and every <img> src."""

    def __init__(self):
        super().__init__()
        self.urls, self.images = [], []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("src", "href", "srcset", "poster", "data", "action", "background") and value:
                self.urls.append(value)
            if name == "style" and value:
                self.urls += re.findall(r"url\(([^)]*)\)", value)
        if tag == "img":
            self.images.append(dict(attrs).get("src", ""))

    def handle_data(self, data):
        if self.lasttag == "style":
            self.urls += re.findall(r"url\(([^)]*)\)", data)


def _resources(text: str) -> _Resources:
    parser = _Resources()
    parser.feed(text)
    return parser


def _decoded(src: str) -> bytes:
    head, _, payload = src.partition(",")
    assert head.startswith("data:image/") and head.endswith(";base64"), head[:40]
    return base64.b64decode(payload, validate=True)


@pytest.fixture(scope="module")
def molecule_run(tmp_path_factory):
    """A real RDKit objective (QED, no docking) driven by scripted LLM text: 2 TGD steps."""
    smiles = iter([["CC(=O)Oc1ccccc1C(=O)O", "c1ccc2ccccc2c1"], ["OC(=O)c1ccccc1", "not a smiles"], ["CCN(CC)CC", "Cc1ccccc1O"]])

    def respond(messages, kwargs):
        if "response_format" in kwargs or "grammar" in kwargs:
            return proposals_json(*next(smiles))
        return MARKER

    run = tmp_path_factory.mktemp("runs") / "qed"
    objective = MoleculeObjective("PPARA", aggregation="qed")
    result = optimize(objective, "c1ccccc1", method=TGDProposer(ScriptedEngine(respond=respond)), max_steps=2,
                      n_proposals=2, run_dir=run, patience=None)
    return run, result, objective


def test_molecule_report_is_self_contained_and_shows_every_molecule(molecule_run):
    run, result, objective = molecule_run
    path = report_run(run)
    assert path == run / "report.html"
    text = path.read_text()
    res = _resources(text)
    assert res.urls and all(u.startswith("data:") for u in res.urls), [u[:60] for u in res.urls if not u.startswith("data:")]
    assert "<script" not in text and "http://" not in text and "https://" not in text
    valid = {c.value for s in result.steps for c in s.candidates if c.valid}
    n_refs = len(result.references)
    # trajectory + start/best + approved drugs + every valid candidate
    assert len(res.images) == 1 + 2 + n_refs + len(valid) and n_refs == 4
    kinds = [_decoded(src)[:5] for src in res.images]
    assert kinds[0] == b"\x89PNG\r" and all(k.startswith(b"<?xml") or k.startswith(b"<svg") for k in kinds[1:])
    assert "Add a carboxylic acid &lt;b&gt;&amp;&lt;/b&gt; keep the ring" in text and MARKER not in text
    assert "not a smiles" in text  # the rejected proposal and its reason are shown
    assert result.stop_reason in text and "fenofibrate" in text
    usage = json.loads((run / "summary.json").read_text())["usage"]
    assert f"{usage['calls']} calls" in text and usage["calls"] == 4


def test_report_renders_in_headless_chromium_with_every_image(molecule_run, tmp_path):
    run, _, _ = molecule_run
    path = report_run(run, tmp_path / "page.html")
    n_images = len(_resources(path.read_text()).images)
    shot = tmp_path / "shot.png"
    seen = render(path, screenshot=shot)
    assert seen == {"ok": n_images, "total": n_images, "sections": 6}
    import matplotlib.image as mpimg

    pixels = mpimg.imread(shot)
    assert pixels.shape[1] == 1280 and pixels[..., :3].std() > 0.05  # not a blank page


def test_a_broken_image_is_caught_by_the_render_check(molecule_run, tmp_path):
    run, _, _ = molecule_run
    text = report_run(run, tmp_path / "ok.html").read_text()
    broken = tmp_path / "broken.html"
    src = _resources(text).images[0]
    broken.write_text(text.replace(src, src[:40] + "AAAA", 1))
    seen = render(broken)
    assert seen["ok"] == seen["total"] - 1


def test_feedback_rows_are_the_textual_gradients_of_each_step(molecule_run):
    run, result, _ = molecule_run
    rows = feedback_rows(load_run(run))
    assert [r["step"] for r in rows] == [1, 2]
    assert all(r["feedback"] == MARKER and "QED" in r["loss"] for r in rows)
    assert "not a smiles" in rows[1]["rejected"]


def test_plan_report_has_dose_figures_and_a_goal_table_per_step(plan, tmp_path):
    run = tmp_path / "plan"
    result = optimize(plan, plan.start_value(), method="random", max_steps=2, n_proposals=2, run_dir=run, patience=None)
    text = report_run(run).read_text()
    res = _resources(text)
    alts = re.findall(r'alt="([^"]*)"', text)
    assert {"trajectory", "DVH", "dose slice"} <= set(alts) and len(res.images) == 3
    assert all(u.startswith("data:") for u in res.urls)
    rows = goal_rows(load_run(run))
    assert [r["step"] for r in rows] == [0, 1, 2]
    labels = [g.label for g in plan.case.goals]
    for row, step in zip(rows, result.steps):
        best = min((c for c in step.candidates if c.valid), key=lambda c: c.score)
        for goal in plan.case.goals:
            value = best.metrics[goal.key]
            assert row[goal.label] == f"{value:.1f} Gy {'met' if goal.met(value) else 'MISSED'}"
        assert row["goals met"] == f"{best.metrics['goals_met']}/3"
    assert all(f"<th>{label.replace('>', '&gt;').replace('<', '&lt;')}</th>" in text for label in labels)
    seen = render(run / "report.html")
    assert seen["ok"] == seen["total"] == 3


def test_unfinished_run_still_gets_a_report(tmp_path):
    engine = ScriptedEngine(respond=lambda m, k: proposals_json("40", "45") if "response_format" in k else "go up")
    optimize(NumberObjective(), "1", method=TGDProposer(engine), max_steps=1, n_proposals=2, run_dir=tmp_path / "n")
    (tmp_path / "n" / "summary.json").unlink()  # as if killed before the end
    text = report_run(tmp_path / "n").read_text()
    assert "not finished" in text and "go up" in text
    assert len(_resources(text).images) == 1  # the trajectory, drawn from trajectory.jsonl
    assert ">40<" in text and ">45<" in text


def test_cli_report_for_a_run_and_a_clear_error_otherwise(molecule_run, tmp_path):
    run, _, _ = molecule_run
    (run / "report.html").unlink(missing_ok=True)
    out = CliRunner().invoke(app, ["report", str(run)])
    assert out.exit_code == 0 and (run / "report.html").is_file()
    out = CliRunner().invoke(app, ["report", str(tmp_path)])
    assert out.exit_code == 2 and "neither a run directory" in " ".join(out.output.split())
    with pytest.raises(ReportError, match="not a run directory"):
        load_run(tmp_path)


def test_a_record_of_another_format_is_refused_with_the_version_that_wrote_it(molecule_run, tmp_path):
    import shutil

    from tgsci import optimize as run
    from tgsci.record import RunDirError

    old = tmp_path / "old-run"
    shutil.copytree(molecule_run[0], old)
    config = json.loads((old / "config.json").read_text())
    config.pop("record_format")
    config["tgsci_version"] = "0.1.0"
    (old / "config.json").write_text(json.dumps(config))  # what tgsci 0.1.0 wrote: no record_format
    with pytest.raises(ReportError, match=r"written by tgsci 0\.1\.0 \(run record format 1\).*reads format 2"):
        load_run(old)
    with pytest.raises(RunDirError, match=r"written by tgsci 0\.1\.0"):
        run(MoleculeObjective("PPARA", aggregation="qed"), "c1ccccc1", method="random", max_steps=1, run_dir=old)


def test_cli_runs_write_their_report(tmp_path):
    run = tmp_path / "cli-run"
    out = CliRunner().invoke(app, ["molecule", "--aggregation", "qed", "--method", "random", "--steps", "1",
                                   "--proposals", "2", "--run-dir", str(run)])
    assert out.exit_code == 0, out.output
    text = (run / "report.html").read_text()
    assert "Candidates (" in text and len(_resources(text).images) >= 3
