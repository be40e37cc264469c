"""Pareto mode for plans: one axis per clinical goal; TPE and NSGA-II in the same mode (Optuna's
multi-objective samplers), the front and its hypervolume recorded, bad settings refused."""

import csv

import pytest
from optuna.trial import TrialState

from tgsci import build_objective, optimize
from tgsci.domains import SpecError
from tgsci.pareto import front, hypervolume
from tgsci.proposers.tpe import NSGA2Proposer, TPEProposer
from tgsci.record import RunRecord


@pytest.fixture(scope="module")
def pareto_plan(tmp_path_factory):
    """TG119 at its fast settings in Pareto mode; the dose matrix is the session's (conftest's plan fixture)."""
    cache = tmp_path_factory.getbasetemp() / "dose-cache"
    cache.mkdir(exist_ok=True)
    objective = build_objective({"kind": "plan", "case": "tg119", "fast": True, "objectives": "goals", "cache_dir": str(cache)})
    yield objective
    objective.close()


def test_each_goal_is_an_axis_with_a_stated_reference(pareto_plan):
    axes, ref = pareto_plan.pareto_axes(), pareto_plan.reference_point()
    goals = pareto_plan.case.goals
    assert [a.metric for a in axes] == [g.key for g in goals] and len(axes) >= 2
    for a, g, r in zip(axes, goals, ref):
        assert a.direction == ("max" if g.op == ">=" else "min")
        assert r == (0.0 if g.op == ">=" else (100.0 if g.unit == "%" else 1.2 * pareto_plan.case.prescription_gy))


@pytest.mark.parametrize("proposer", [TPEProposer(n_startup_trials=2), NSGA2Proposer(population_size=4)], ids=["tpe", "nsga2"])
def test_optuna_baselines_search_the_front_in_pareto_mode(pareto_plan, proposer, tmp_path):
    run = tmp_path / proposer.name
    result = optimize(pareto_plan, pareto_plan.start_value(), method=proposer, max_steps=4, n_proposals=2, patience=None, run_dir=run)
    axes = pareto_plan.pareto_axes()
    study = proposer._study
    assert [d.name for d in study.directions] == [("MAXIMIZE" if a.direction == "max" else "MINIMIZE") for a in axes]
    told = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    valid = [e for e in result.evaluations if e.valid]
    assert len(told) == len(valid) == 9  # the start and 4 steps of 2, every one told with its goal metrics
    by_values = sorted(tuple(t.values) for t in told)
    assert by_values == sorted(tuple(e.metrics[a.metric] for a in axes) for e in valid)
    if isinstance(proposer, NSGA2Proposer):
        key = proposer._sampler(0)._get_generation_key()
        assert sorted({t.system_attrs[key] for t in told}) == [0, 1, 2]  # 9 told in generations of 4
    summary = RunRecord.load(run).summary
    members = front(result.evaluations, axes)
    assert sorted(summary.pareto["front"]) == sorted(m.value for m in members)
    assert summary.pareto["hypervolume"] == pytest.approx(hypervolume(result.evaluations, axes, pareto_plan.reference_point()))
    with open(run / "front.csv", newline="") as handle:
        assert len(list(csv.DictReader(handle))) == len(members)
    assert (run / "front.png").is_file() and (run / "hypervolume.png").is_file()


def test_tgd_reads_the_plan_front(pareto_plan, tmp_path):
    from scripted import ScriptedEngine

    start = pareto_plan.start_value()
    import json

    w = json.loads(start)
    more = json.dumps({k: v * (3 if i == 0 else 1) for i, (k, v) in enumerate(w.items())})
    engine = ScriptedEngine(["spare the core more", '{"proposals": [' + json.dumps(more) + "]}"] * 2)
    optimize(pareto_plan, start, engine=engine, max_steps=2, n_proposals=1, patience=None, run_dir=tmp_path / "tgd")
    prompts = engine.prompts()
    assert "Pareto mode: no single score decides" in prompts[0] and "Trade-off on" in prompts[2] and "plans)" in prompts[2]


@pytest.mark.parametrize("extra, message", [
    ({"objectives": "organs"}, r'objectives must be "goals" \(Pareto mode: one axis per clinical goal\), not .organs.'),
    ({"objectives": "goals", "reference_point": {"Bladder.Dmean": 10}}, "reference point: Bladder.Dmean is not a goal of case"),
    ({"reference_point": {"Core.D10": 40}}, "reference_point is for Pareto mode"),
])
def test_bad_plan_pareto_settings_are_refused_before_any_dose_work(extra, message):
    with pytest.raises(SpecError, match=message):
        build_objective({"kind": "plan", "case": "tg119", "fast": True, **extra})
