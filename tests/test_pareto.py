"""Pareto mode: the front, its hypervolume and knee, the words TGD reads, the run's files, bad input."""

import csv
import itertools
import json
import random

import pytest
from scripted import ScriptedEngine, proposals_json

from tgsci import build_objective, optimize
from tgsci.domains import SpecError
from tgsci.objectives.base import Evaluation
from tgsci.domains.molecule.objective import MoleculeObjective
from tgsci.pareto import Axis, ParetoTracker, dominates, front, hypervolume, knee, largest_gap, placement
from tgsci.record import RunRecord

X, Y, Z = Axis("x", "min", "X"), Axis("y", "max", "Y"), Axis("z", "min", "Z")


def ev(value, **metrics):
    return Evaluation(value, 0.0, metrics)


def test_front_and_hypervolume_in_two_dimensions_by_hand():
    points = [ev("a", x=1, y=3), ev("b", x=2, y=4), ev("c", x=3, y=1), ev("d", x=2, y=2), ev("a", x=9, y=9)]
    members = front(points, [X, Y])
    assert [m.value for m in members] == ["a", "b"]  # c and d are dominated by b; the second "a" is a repeat
    # minimize x, maximize y, reference x=4, y=0: a covers [1,4]x[0,3] = 9, b adds [2,4]x[3,4] = 2
    assert hypervolume(points, [X, Y], [4, 0]) == pytest.approx(11.0)
    assert hypervolume(points, [X, Y], [1, 0]) == 0.0  # nothing is better than the reference on x
    assert dominates((1, 1), (1, 2)) and not dominates((1, 2), (2, 1)) and not dominates((1, 1), (1, 1))


def test_three_dimensional_hypervolume_agrees_with_a_monte_carlo_count():
    rng = random.Random(7)
    points = [ev(str(i), x=rng.random(), y=rng.random(), z=rng.random()) for i in range(12)]
    exact = hypervolume(points, [X, Y, Z], [1.0, 0.0, 1.0])
    losses = [(p.metrics["x"], -p.metrics["y"], p.metrics["z"]) for p in points]
    n, inside = 60000, 0
    for _ in range(n):
        s = (rng.random(), -rng.random(), rng.random())
        inside += any(all(l <= c for l, c in zip(loss, s)) for loss in losses)
    assert exact == pytest.approx(inside / n, abs=0.01)


def test_knee_placement_and_gap_are_what_a_chemist_would_read():
    members = [ev("A", x=-10, y=0.2), ev("B", x=-8, y=0.5), ev("C", x=-4, y=0.9)]
    assert knee(members, [X, Y], [0, 0]).value == "B"  # the balanced one, not an extreme
    inner = ev("D", x=-9, y=0.3)
    text = placement(inner, members, [X, Y])
    assert text.startswith("on the front, between A and B on X")
    worse = ev("E", x=-7, y=0.4)
    assert placement(worse, members, [X, Y]).startswith("dominated by B (X and Y better there")
    assert [m.value for m in largest_gap(members, [X, Y], [0, 0])] == ["B", "C"]


@pytest.mark.parametrize("spec, message", [
    ({"objectives": ["vina", "logp"]}, "unknown objective\\(s\\) 'logp' for Pareto mode; choose from vina, qed, sa"),
    ({"objectives": "qed"}, "Pareto mode needs two or three different objectives"),
    ({"objectives": ["qed", "sa"], "reference_point": {"qed": 1.0}}, "reference point qed = 1: no molecule can be better"),
    ({"objectives": ["vina", "qed"], "reference_point": {"vina": -30}}, "reference point vina = -30"),
    ({"objectives": ["vina", "qed"], "aggregation": "qed"}, "objective vina needs docking"),
    ({"reference_point": {"qed": 0.1}}, "reference_point is for Pareto mode"),
])
def test_bad_pareto_settings_are_refused_before_any_docking(spec, message, tmp_path):
    with pytest.raises(SpecError, match=message):
        build_objective({"kind": "molecule", "target": "PPARA", "cache_dir": str(tmp_path), **spec})


def _qed_sa_objective(tmp_path):
    return build_objective({"kind": "molecule", "target": "PPARA", "aggregation": "qed", "objectives": ["qed", "sa"],
                            "compare_references": False, "cache_dir": str(tmp_path / "cache")})


def test_a_pareto_run_keeps_its_front_and_tgd_reads_the_trade_off(tmp_path):
    objective = _qed_sa_objective(tmp_path)
    batches = [["c1ccccc1O", "CC(=O)Nc1ccccc1"], ["CC(C)Cc1ccc(cc1)C(C)C(=O)O", "c1ccc2ccccc2c1"],
               ["CC(=O)Oc1ccccc1C(=O)O", "OC(=O)c1ccccc1"]]
    replies = list(itertools.chain.from_iterable(("feedback: widen the front", proposals_json(*b)) for b in batches))
    engine = ScriptedEngine(replies)
    run = tmp_path / "run"
    result = optimize(objective, "c1ccccc1", engine=engine, max_steps=3, n_proposals=2, patience=None, run_dir=run)
    axes = objective.pareto_axes()
    everything = [c for rec in result.steps for c in rec.candidates]
    members = front(everything, axes)
    summary = RunRecord.load(run).summary
    assert sorted(summary.pareto["front"]) == sorted(m.value for m in members) and len(members) >= 2
    assert summary.pareto["knee"] == knee(members, axes, [0.0, 10.0]).value == result.best.value
    assert summary.pareto["hypervolume"] == pytest.approx(hypervolume(everything, axes, [0.0, 10.0]))
    prompts = engine.prompts()
    assert "Pareto front of" in prompts[2] and "largest gap lies between" in prompts[2]  # step 2's loss sees step 1's front
    assert "Pareto mode: no single weighted score decides" in prompts[0]
    with open(run / "front.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert {r["value"] for r in rows} == {m.value for m in members} and sum(r["knee"] == "True" for r in rows) == 1
    assert (run / "front.png").stat().st_size > 5000 and (run / "hypervolume.png").is_file()
    curve = ParetoTracker(objective).curve(RunRecord.load(run).steps)
    assert curve[-1] == pytest.approx(summary.pareto["hypervolume"]) and curve[0] < curve[-1]
    objective.close()


def test_pareto_patience_counts_steps_without_a_larger_hypervolume(tmp_path):
    objective = _qed_sa_objective(tmp_path)
    # decanoic and lauric acid (QED 0.57/0.54, SA 1.53/1.58) are dominated by paracetamol (QED 0.60, SA 1.41)
    engine = ScriptedEngine(["f", proposals_json("CCCCCCCCCC(=O)O"), "f", proposals_json("CCCCCCCCCCCC(=O)O"),
                             "f", proposals_json("c1ccccc1O")])
    result = optimize(objective, "CC(=O)Nc1ccc(O)cc1", engine=engine, max_steps=3, n_proposals=1, patience=2,
                      run_dir=tmp_path / "run")
    # two steps without a larger hypervolume: stop before phenol (which would widen the front)
    assert result.stop_reason == "patience" and len(result.steps) == 3
    objective.close()
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["pareto"]["front"] == ["CC(=O)Nc1ccc(O)cc1"]


@pytest.mark.slow
def test_cli_pareto_run_with_the_embedded_model(tmp_path):
    """A real LLM in Pareto mode (QED and SA need no docking): the run finishes with a front and its files."""
    from test_cli import tgsci

    run = tmp_path / "run"
    out = tgsci("molecule", "--aggregation", "qed", "--objectives", "qed,sa", "--steps", "1", "--proposals", "2",
                "--run-dir", str(run), env={"TGSCI_CACHE_DIR": str(tmp_path / "cache")})
    assert out.returncode == 0, out.stdout + out.stderr
    summary = json.loads((run / "summary.json").read_text())
    assert summary["pareto"]["front"] and summary["pareto"]["hypervolume"] > 0
    assert {"front.csv", "front.png", "hypervolume.png"} <= set(summary["outputs"])
    assert "Pareto front" in (run / "report.html").read_text()
    bad = tgsci("molecule", "--objectives", "vina", "--run-dir", str(tmp_path / "bad"))
    assert bad.returncode == 2 and "Pareto mode needs two or three different objectives" in " ".join(bad.stdout.split() + bad.stderr.split())
    assert not (tmp_path / "bad").exists()


def test_a_pareto_sweep_reports_hypervolume_per_run_and_per_method(tmp_path):
    from tgsci.sweep import run_sweep
    from tgsci.sweep.report import report_sweep

    spec = tmp_path / "sweep.toml"
    spec.write_text("""
[sweep]
kind = "molecule"
targets = ["PPARA"]
starts = ["c1ccccc1", "c1ccncc1"]
methods = ["random", "graph-ga"]
[objective]
aggregation = "qed"
objectives = ["qed", "sa"]
compare_references = false
[budget]
max_steps = 3
n_proposals = 3
patience = 0
""")
    run_sweep(spec, tmp_path / "out", n_workers=1, dashboard=False)
    report = report_sweep(tmp_path / "out")
    assert len(report.rows) == 4 and all(r["status"] == "finished" and r["hypervolume"] > 0 for r in report.rows)
    for row in report.rows:  # the row's hypervolume is the run's own front against the default reference point
        run = RunRecord.load(tmp_path / "out" / row["name"])
        everything = [c for rec in run.steps for c in rec.candidates]
        assert row["hypervolume"] == pytest.approx(hypervolume(everything, _qed_sa_objective(tmp_path).pareto_axes(), [0, 10]), abs=1e-6)
    assert (tmp_path / "out" / "hypervolume.png").stat().st_size > 5000
