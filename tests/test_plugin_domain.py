"""A domain from another package (tests/plugin_domain, entry point ``tgsci.domains``) is driven by
`tgsci run`, `tgsci sweep` and `tgsci report` with no tgsci file naming it; a broken one is a
warning, not a crash."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PLUGIN = Path(__file__).resolve().parent / "plugin_domain"

pytestmark = pytest.mark.slow  # pip builds the package (setuptools in an isolated build environment)

SPEC = """\
[sweep]
kind = "words"
words = {words}
starts = ["a"]
seeds = [0]
methods = ["random"]

[objective]
max_length = 8

[budget]
max_steps = 6
n_proposals = 4
patience = 0
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The plug-in installed (with its entry point's metadata) in a folder of its own: the venv is not touched."""
    target = tmp_path_factory.mktemp("site")
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--disable-pip-version-check",
                           "--target", str(target), str(PLUGIN)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert list(target.glob("tgsci_words-*.dist-info/entry_points.txt"))
    return target


def tgsci(*args, site=None, cwd):
    env = {**os.environ, "COLUMNS": "200", "PYTHONPATH": os.pathsep.join(p for p in (str(site or ""), os.environ.get("PYTHONPATH", "")) if p)}
    return subprocess.run([sys.executable, "-m", "tgsci.cli", *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=600)


def test_run_sweep_and_report_drive_a_domain_another_package_installs(site, tmp_path):
    spec = tmp_path / "one.toml"
    spec.write_text(SPEC.format(words='["ocean"]'))
    without = tgsci("run", str(spec), cwd=tmp_path)  # not installed: the kind is unknown, and the known ones are listed
    assert without.returncode == 2 and "unknown kind 'words'; choose one of: molecule, plan" in " ".join(without.stderr.split())

    done = tgsci("run", str(spec), "--run-dir", str(tmp_path / "run"), site=site, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    records = [json.loads(line) for line in (tmp_path / "run" / "trajectory.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == list(range(7))
    candidates = [c for r in records for c in r["candidates"]]
    assert candidates[0]["value"] == "a" and candidates[0]["score"] == 4.0  # 'a' is 4 insertions from 'ocean'
    values = [c["value"] for c in candidates]
    assert len(values) == 1 + 6 * 4 and len(set(values)) == len(values)  # random edits, none tried twice
    assert all(v.isalpha() and v.islower() and len(v) <= 8 for v in values)
    rows = list(csv.DictReader(open(tmp_path / "run" / "words.csv")))  # the plug-in's own output file
    assert [(r["word"], float(r["distance"])) for r in rows] == [(c["value"], c["score"]) for c in candidates]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["best"]["score"] == min(c["score"] for c in candidates)
    assert "words" in (tmp_path / "run" / "report.html").read_text()

    two = tmp_path / "sweep.toml"
    two.write_text(SPEC.format(words='["ocean", "river"]'))
    assert "holds 2 runs" in " ".join(tgsci("run", str(two), site=site, cwd=tmp_path).stderr.split())
    swept = tgsci("sweep", str(two), "--out", str(tmp_path / "sweep"), "--workers", "1", site=site, cwd=tmp_path)
    assert swept.returncode == 0 and "2 finished, 0 failed" in swept.stdout + swept.stderr, swept.stdout + swept.stderr
    reported = tgsci("report", str(tmp_path / "sweep"), site=site, cwd=tmp_path)
    assert reported.returncode == 0, reported.stderr
    summary = list(csv.DictReader(open(tmp_path / "sweep" / "summary.csv")))
    assert sorted(r["word"] for r in summary) == ["ocean", "river"] and all(r["status"] == "finished" for r in summary)
    assert len(list((tmp_path / "sweep").glob("*/words.csv"))) == 2 and (tmp_path / "sweep" / "words.csv").is_file()


def test_a_plug_in_that_fails_to_import_is_named_and_the_rest_work(tmp_path):
    site = tmp_path / "site"
    info = site / "broken_domain-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-domain\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[tgsci.domains]\nbroken = broken_domain_missing:Domain\n")
    code = "from tgsci.domains import kinds; print(kinds())"
    env = {**os.environ, "PYTHONPATH": str(site)}
    listed = subprocess.run([sys.executable, "-W", "always", "-c", code], capture_output=True, text=True, env=env)
    assert listed.returncode == 0 and "['molecule', 'plan']" in listed.stdout, listed.stderr
    assert "domain plug-in 'broken' (broken_domain_missing:Domain) could not be loaded: ModuleNotFoundError" in listed.stderr
