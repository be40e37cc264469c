"""PlanObjective (validation, batched evaluation, score, text) and the loop with random search and TPE on TG119 (fast settings)."""

import csv
import json
import math
import random

import pytest

from simulators.dose.cases import GoalSpec, list_cases
from tgsci import build_objective
from tgsci.domains import SpecError
from tgsci.loop import optimize
from tgsci.objectives.base import InvalidCandidate
from tgsci.domains.plan.objective import canonical_weights

START = '{"BODY": 100, "Core": 300, "OuterTarget": 1000}'


def test_start_value_and_canonical_form(plan):
    assert plan.start_value() == START
    assert plan.validate('{"OuterTarget": 1000.0, "BODY": 100, "Core": 300.00}') == START
    assert plan.validate('{"OuterTarget": 123.456789, "BODY": 1e-3, "Core": 3}') == '{"BODY": 0.001, "Core": 3, "OuterTarget": 123.5}'
    assert plan.validate(json.dumps(START)) == START  # a JSON object quoted as a string
    value = plan.validate('{"OuterTarget": 2.0/3, "BODY": 1, "Core": 1}'.replace("2.0/3", "0.6666666"))
    assert plan.validate(value) == value  # idempotent
    assert canonical_weights({"b": 2.0, "a": 1.5}) == '{"a": 1.5, "b": 2}'


@pytest.mark.parametrize(
    "text, reason",
    [
        ("OuterTarget=1000", "not valid JSON"),
        ("[1000, 300, 100]", "expected a JSON object"),
        ('{"OuterTarget": 1000, "Core": 300, "BODY": 100, "Lung": 5}', "unknown objective name.*Lung.*valid names: OuterTarget, Core, BODY"),
        ('{"OuterTarget": 1000, "Core": 300}', "missing weight.*BODY"),
        ('{"OuterTarget": NaN, "Core": 300, "BODY": 100}', "not finite"),
        ('{"OuterTarget": Infinity, "Core": 300, "BODY": 100}', "not finite"),
        ('{"OuterTarget": 1000, "Core": -3, "BODY": 100}', "negative"),
        ('{"OuterTarget": 1e9, "Core": 300, "BODY": 100}', "above the upper bound 100000"),
        ('{"OuterTarget": 0, "Core": 0, "BODY": 0.0}', "all weights are zero"),
        ('{"OuterTarget": "high", "Core": 300, "BODY": 100}', "must be a number"),
        ('{"OuterTarget": true, "Core": 300, "BODY": 100}', "must be a number"),
    ],
)
def test_each_bad_input_is_rejected_with_its_reason(plan, text, reason):
    with pytest.raises(InvalidCandidate, match=reason):
        plan.validate(text)


def test_schema_grammar_and_words(plan):
    schema = plan.value_format.schema
    assert schema["type"] == "object" and schema["required"] == ["OuterTarget", "Core", "BODY"]
    assert schema["additionalProperties"] is False
    assert all(p == {"type": "number", "minimum": 0, "maximum": 100000.0} for p in schema["properties"].values())
    assert plan.value_format.example == START
    # the embedded model's grammar writes exactly the compact object, keys in the case's order
    from tgsci.formats import proposals_grammar

    grammar = proposals_grammar(plan.value_format.grammar, 2, plan.value_format.quoted)
    assert '"{" "\\"OuterTarget\\": " weight ", " "\\"Core\\": " weight ", " "\\"BODY\\": " weight "}"' in grammar
    assert not plan.value_format.quoted and "<weight>" in plan.value_format.placeholder
    text = " ".join(plan.constraints())
    assert "OuterTarget, Core, BODY" in text and "100000" in text and "ratios" in text
    assert "OuterTarget D95 >= 50 Gy" in plan.describe()
    fp = plan.fingerprint()
    assert fp["case"] == "tg119" and fp["plan"]["dose_grid_mm"] == 6.0 and fp["plan"]["max_iter"] == 50
    goals = [GoalSpec(**g) for g in fp["goals"]]  # goals are data in the run record, not labels to parse back
    assert goals == list(plan.case.goals) and "Core D10 <= 25 Gy" in [g.label for g in goals]
    from simulators.dose.cases import load_case

    assert load_case("tg119", fast=True, max_iter=10).fingerprint() != plan.case.fingerprint()


def test_evaluate_batches_valid_values_and_rejects_invalid_ones(plan):
    calls = []
    original = plan.engine.evaluate

    def spy(vectors, *a, **k):
        calls.append(len(vectors))
        return original(vectors, *a, **k)

    plan.engine.evaluate = spy
    try:
        values = ['{"BODY": 50, "Core": 600, "OuterTarget": 1000}', "nonsense", '{"BODY": 100, "Core": 150, "OuterTarget": 1000}']
        evs = plan.evaluate(values)
    finally:
        plan.engine.evaluate = original
    assert calls == [2]  # both valid vectors in ONE inner optimization
    assert not evs[1].simulated and evs[1].score is None and "not valid JSON" in evs[1].error
    for ev in (evs[0], evs[2]):
        assert ev.valid and ev.simulated
        m = ev.metrics
        assert m["goals_total"] == 3 and 0 <= m["goals_met"] <= 3
        assert {"OuterTarget.D95", "OuterTarget.D10", "Core.D10", "BODY.Dmax", "OuterTarget.CI", "OuterTarget.HI"} <= set(m)
    again = plan.evaluate([values[0]])[0]
    assert again.cached and again.score == evs[0].score


def test_a_new_objective_reads_evaluated_vectors_from_the_disk_cache(plan, tmp_path_factory):
    value = '{"BODY": 75, "Core": 450, "OuterTarget": 1000}'
    first = plan.evaluate([value])[0]
    cache = str(tmp_path_factory.getbasetemp() / "dose-cache")
    fresh = build_objective({"kind": "plan", "case": "tg119", "fast": True, "cache_dir": cache})
    fresh.engine.evaluate = lambda *a, **k: pytest.fail("the engine must not run for a cached vector")
    again = fresh.evaluate([value])[0]
    assert again.cached and again.score == pytest.approx(first.score) and again.metrics == first.metrics
    assert fresh.simulations == 0
    other = build_objective({"kind": "plan", "case": "tg119", "fast": True, "cache_dir": cache, "max_iter": 5})
    assert other.simulator.cache_fields(value) != plan.simulator.cache_fields(value)  # other settings, other key


def test_score_is_goal_violations_plus_a_small_tiebreak(plan):
    ev = plan.evaluate([START])[0]
    m = ev.metrics
    violation = max(0, (50 - m["OuterTarget.D95"]) / 50 * 100) + max(0, (m["OuterTarget.D10"] - 55) / 55 * 100) \
        + max(0, (m["Core.D10"] - 25) / 25 * 100)
    tiebreak = 0.1 * (m["Core.Dmean"] / 50 + m["BODY.Dmean"] / 50) / 2
    assert ev.score == pytest.approx(violation + tiebreak)
    assert m["violation_pct_sum"] == pytest.approx(violation) and tiebreak < 0.1
    assert m["goals_met"] == sum([m["OuterTarget.D95"] >= 50, m["OuterTarget.D10"] <= 55, m["Core.D10"] <= 25])


def test_summary_and_verbalization(plan):
    start = plan.evaluate([START])[0]
    other = plan.evaluate(['{"BODY": 20, "Core": 3000, "OuterTarget": 1000}'])[0]
    s = plan.summarize(start)
    assert s.startswith(f"score {start.score:.4g}") and "goals met" in s and "BODY" not in s.split("worst")[0]
    text = plan.verbalize(other, start, other)
    lines = text.splitlines()
    assert len(lines) == 5  # one per goal, the target's cold and hot spots, the score line
    m = other.metrics
    assert lines[3] == (f"OuterTarget cold spot: D98 {m['OuterTarget.D98']:.1f} Gy ({100 * m['OuterTarget.D98'] / 50:.1f}% of its 50 Gy), "
                        f"minimum {m['OuterTarget.Dmin']:.1f} Gy ({100 * m['OuterTarget.Dmin'] / 50:.1f}%); hot spot: "
                        f"D2 {m['OuterTarget.D2']:.1f} Gy ({100 * m['OuterTarget.D2'] / 50:.1f}%), maximum {m['OuterTarget.Dmax']:.1f} Gy "
                        f"({100 * m['OuterTarget.Dmax'] / 50:.1f}%)")
    assert lines[0].startswith("OuterTarget D95 = ") and "goal >= 50.00 Gy" in lines[0]
    core = next(g for g in plan.case.goals if g.key == "Core.D10")
    value = other.metrics["Core.D10"]
    expected = "met" if core.met(value) else f"MISSED by {value - core.value:.2f} Gy"
    assert lines[2].startswith(f"Core D10 = {value:.2f} Gy (goal <= 25.00 Gy): {expected}")
    assert "start plan" in lines[0] and "change" in lines[0]
    assert "dose grid" in lines[-1]
    bad = plan.evaluate(["{}"])[0]
    assert "invalid weight vector" in plan.verbalize(bad, start, start)
    brief = plan.verbalize(other, start, start, brief=True).splitlines()
    assert len(brief) == 5 and brief[3].startswith("OuterTarget (Rx 50 Gy): D98 ") and brief[2].startswith(f"Core D10 {value:.2f} Gy (goal <= 25.00 Gy): {expected}")
    assert f"best {start.metrics['Core.D10']:.2f} Gy" in brief[2] and brief[4].startswith(f"score {other.score:.4g} (best {start.score:.4g})")
    assert len("\n".join(brief)) < 0.7 * len(text)


def test_neighbor_and_crossover_stay_valid_and_in_bounds(plan):
    rng = random.Random(3)
    space = plan.search_space()
    assert space["OuterTarget"] == pytest.approx((1000 / 30, 30000))
    seen = set()
    for _ in range(20):
        v = plan.neighbor(START, rng)
        w = json.loads(plan.validate(v))
        assert all(space[n][0] * 0.999 <= w[n] <= space[n][1] * 1.001 for n in w)
        seen.add(v)
    assert len(seen) == 20
    child = json.loads(plan.crossover(START, '{"BODY": 10, "Core": 3000, "OuterTarget": 100}', rng))
    assert 10 <= child["BODY"] <= 100 and 300 <= child["Core"] <= 3000 and 100 <= child["OuterTarget"] <= 1000
    assert plan.neighbor("garbage", rng) is None
    assert plan.neighbor(START, random.Random(5)) == plan.neighbor(START, random.Random(5))


def test_unknown_case_lists_valid_ones():
    assert {"tg119", "prostate"} <= set(list_cases())
    with pytest.raises(SpecError, match="unknown case 'liver'.*Valid cases: prostate, prostate_sib, tg119"):
        build_objective({"kind": "plan", "case": "liver", "fast": True})
    with pytest.raises(SpecError, match="unknown option 'dose_grid'.*did you mean 'dose_grid_mm'"):
        build_objective({"kind": "plan", "case": "tg119", "dose_grid": 4})


def _rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_loop_with_random_search_writes_the_plan_outputs(plan, tmp_path):
    run = tmp_path / "random"
    result = optimize(plan, START, method="random", max_steps=2, n_proposals=2, run_dir=run)
    assert result.stop_reason == "max_steps"  # patience 3 cannot run out in 2 steps
    for name in ("plans.csv", "dvh.png", "dose_slice.png", "best_weights.json"):
        assert (run / name).is_file() and (run / name).stat().st_size > 0
    rows = _rows(run / "plans.csv")
    assert len(rows) == sum(len(r.candidates) for r in result.steps) == 5
    assert {"step", "value", "score", "w_OuterTarget", "w_Core", "w_BODY", "OuterTarget.D95", "Core.D10", "goals_met"} <= set(rows[0])
    assert rows[0]["value"] == START and float(rows[0]["w_OuterTarget"]) == 1000
    best = json.loads((run / "best_weights.json").read_text())
    assert canonical_weights(best["weights"]) == result.best.value
    assert best["score"] == pytest.approx(result.best.score)
    valid = [e for e in result.evaluations if e.valid]
    assert result.best.score == min(e.score for e in valid) and result.best.value in {e.value for e in valid}
    assert [g["goal"] for g in best["goals"]] == ["OuterTarget D95 >= 50 Gy", "OuterTarget D10 <= 55 Gy", "Core D10 <= 25 Gy"]
    assert (run / "dvh.png").read_bytes()[:4] == b"\x89PNG"
    summary = json.loads((run / "summary.json").read_text())
    assert set(summary["outputs"]) == {"plans.csv", "trajectory.png", "dvh.png", "dose_slice.png", "best_weights.json",
                                       "best_dose.dcm", "dvh.csv"}
    dvh_rows = _rows(run / "dvh.csv")
    assert {r["grid"] for r in dvh_rows} == {"dose grid 6 mm", "CT grid 3 x 3 x 2.5 mm"}
    d95 = next(r for r in dvh_rows if r["structure"] == "OuterTarget" and r["metric"] == "D95" and r["grid"].startswith("dose"))
    assert float(d95["value"]) == pytest.approx(result.best.metrics["OuterTarget.D95"], abs=1e-3) and d95["goal"] == "OuterTarget D95 >= 50 Gy"


def test_loop_with_tpe_tells_optuna_every_evaluation(plan, tmp_path):
    from optuna.trial import TrialState

    from tgsci.proposers.tpe import TPEProposer

    proposer = TPEProposer(n_startup_trials=2)
    result = optimize(plan, START, method=proposer, max_steps=3, n_proposals=2, run_dir=tmp_path / "tpe", patience=None)
    assert result.stop_reason == "max_steps"
    assert len(result.evaluations) == 7
    # every evaluation has been told to Optuna, the last step's too (the loop tells after each step)
    told = proposer._study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    expected = {e.value for e in result.evaluations if e.valid}
    assert {canonical_weights(t.params) for t in told} == expected
    assert all(t.value == pytest.approx(next(e.score for e in result.evaluations if e.value == canonical_weights(t.params))) for t in told)
    space = plan.search_space()
    for step in result.steps[1:]:
        for c in step.candidates:
            w = json.loads(c.value)
            assert all(space[n][0] * 0.999 <= w[n] <= space[n][1] * 1.001 for n in w)
    assert (tmp_path / "tpe" / "plans.csv").is_file()


def test_loop_runs_tpe_by_name(plan, tmp_path):
    result = optimize(plan, START, method="tpe", max_steps=1, n_proposals=2, run_dir=tmp_path / "tpe-name")
    assert len(result.steps) == 2 and len(result.steps[1].candidates) == 2
    assert json.loads((tmp_path / "tpe-name" / "config.json").read_text())["method"]["method"] == "tpe"
    assert math.isfinite(result.best.score)


def test_tgd_step_with_a_scripted_llm_sees_the_goals_and_returns_weight_objects(plan, tmp_path):
    from scripted import ScriptedEngine

    from tgsci.proposers import TGDProposer

    def respond(messages, kwargs):
        if "response_format" in kwargs:  # the TGD update asks for constrained JSON
            schema = kwargs["response_format"]["json_schema"]["schema"]["properties"]["proposals"]["items"]
            assert schema["required"] == ["OuterTarget", "Core", "BODY"]
            return json.dumps({"proposals": [
                {"OuterTarget": 1000, "Core": 900, "BODY": 80},
                {"OuterTarget": 1000, "Core": -5, "BODY": 80},  # invalid: negative
                {"OuterTarget": 1200, "Core": 600, "BODY": 100},
            ]})
        return "Raise the Core weight to cut its D10; keep the target weight."

    engine = ScriptedEngine(respond=respond)
    result = optimize(plan, START, method=TGDProposer(engine), max_steps=1, n_proposals=2, run_dir=tmp_path / "tgd")
    prompts = "\n".join(engine.prompts())
    assert "Core D10 = " in prompts and "goal <= 25.00 Gy" in prompts  # the verbalized goals reached the LLM
    assert "OuterTarget, Core, BODY" in prompts  # the constraints too
    values = [c.value for c in result.steps[1].candidates]
    assert values == ['{"BODY": 80, "Core": 900, "OuterTarget": 1000}', '{"BODY": 100, "Core": 600, "OuterTarget": 1200}']
    assert any("negative" in f.reason for f in result.steps[1].failures)


@pytest.mark.parametrize("case, extra", [("prostate", {}), ("prostate", {"protocol": "paper"}), ("tg119", {})])
def test_the_default_start_is_a_valid_candidate_also_when_the_case_tunes_dose_levels(case, extra):
    """prostate tunes its dose levels: its default start (CLI, sweeps without starts) must carry them,
    or the run starts from an invalid plan (it did: the start was the weights alone)."""
    from tgsci.domains import check_spec, get_domain
    from tgsci.domains.plan.objective import parse_weights

    spec = check_spec({"kind": "plan", "case": case, "fast": True, **extra})
    start = get_domain("plan").start(spec, None)
    assert parse_weights(get_domain("plan").case(spec), start) == start  # what the objective's validate() accepts
    assert ('"dose_gy"' in start) == (case == "prostate")  # TG119 tunes weights only
    if "protocol" in extra:
        assert set(json.loads(start)["weights"].values()) == {100}
