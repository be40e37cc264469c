"""Dose levels in the variable (``[plan] tune = ["weights", "dose_levels"]``): one JSON object with
weights and levels, bounds checked with the reason, baselines searching the levels, and the
embedded model's grammar writing valid objects. TG119 at its fast settings with DVH objectives."""

import json
import tomllib

import pytest

from simulators.dose.cases import cases_dir, parse_case
from tgsci.loop import optimize
from tgsci.objectives.base import InvalidCandidate
from tgsci.domains.plan.objective import PlanObjective

START = ('{"dose_gy": {"Core": 25, "OuterTarget": 50}, "volume_pct": {"Core": 10}, '
         '"weights": {"BODY": 100, "Core": 300, "OuterTarget": 1000}}')


def _case(tune=("weights", "dose_levels")):
    path = cases_dir() / "tg119.toml"
    data = tomllib.loads(path.read_text())
    st = {s["name"]: s for s in data["structures"]}
    st["OuterTarget"]["objectives"][0].update(kind="min_dvh", volume_pct=95.0, dose_range=[48.0, 53.0])
    st["Core"]["objectives"][0].update(kind="max_dvh", volume_pct=10.0, dose_range=[15.0, 30.0], volume_range=[5.0, 20.0])
    data["plan"]["tune"] = list(tune)
    return parse_case(data, fast=True, manifest=str(path))


@pytest.fixture(scope="module")
def levels(tmp_path_factory):
    path = tmp_path_factory.getbasetemp() / "dose-cache"
    path.mkdir(exist_ok=True)
    return PlanObjective(_case(), cache_dir=path)


def test_the_start_holds_the_case_levels_and_values_are_canonical(levels):
    assert levels.start_value() == START
    same = '{"weights": {"OuterTarget": 1000.0, "Core": 300, "BODY": 100}, "volume_pct": {"Core": 10.0}, "dose_gy": {"OuterTarget": 50, "Core": 25.00001}}'
    assert levels.validate(same) == START
    assert levels.to_params(START) == {"BODY": 100, "Core": 300, "OuterTarget": 1000, "dose_gy.Core": 25, "dose_gy.OuterTarget": 50,
                                       "volume_pct.Core": 10}
    assert levels.from_params(levels.to_params(START)) == START
    assert levels.linear_params() == {"dose_gy.Core", "dose_gy.OuterTarget", "volume_pct.Core"}
    space = levels.search_space()
    assert space["dose_gy.Core"] == (15.0, 30.0) and space["volume_pct.Core"] == (5.0, 20.0) and space["Core"] == (10.0, 9000.0)
    lines = " ".join(levels.constraints())
    assert "dose level tunable within 15-30 Gy" in lines and "volume tunable within 5-20%" in lines


@pytest.mark.parametrize("text, reason", [
    ('{"BODY": 100, "Core": 300, "OuterTarget": 1000}', "tunes weights and dose levels"),
    (START.replace('"Core": 25', '"Core": 45'), r"dose level of Core = 45 Gy is outside its range \[15, 30\] Gy"),
    (START.replace('"Core": 10', '"Core": 40'), r"volume of Core = 40 % is outside its range \[5, 20\] %"),
    (START.replace(', "OuterTarget": 50', ""), "misses the dose level of OuterTarget"),
    (START.replace('"Core": 25', '"BODY": 30, "Core": 25'), "names BODY, whose dose level the case does not tune"),
    (START.replace('"volume_pct"', '"volumes"'), "unknown key"),
    (START.replace('"Core": 25', '"Core": "high"'), "dose level of Core must be a number"),
    (START.replace('"Core": 25', '"Core": 1e999'), "not finite"),
    (START.replace('"Core": 300', '"Core": -3'), "negative"),
])
def test_bad_levels_are_rejected_with_their_reason(levels, text, reason):
    with pytest.raises(InvalidCandidate, match=reason):
        levels.validate(text)


def test_a_weights_only_case_refuses_levels(plan):
    with pytest.raises(InvalidCandidate, match="tunes weights only"):
        plan.validate(START)


def test_the_dose_level_moves_the_plan(levels):
    lower = START.replace('"Core": 25', '"Core": 15')
    a, b = levels.evaluate([START, lower])
    assert a.valid and b.valid and a.value != b.value
    assert b.metrics["Core.D10"] < a.metrics["Core.D10"] - 1.0  # a lower max-DVH level pushes the core's D10 down
    again = levels.evaluate([lower])[0]
    assert again.cached and again.metrics == b.metrics  # each (weights, levels) is its own cached plan


@pytest.mark.parametrize("method", ["tpe", "random"])
def test_baselines_move_the_levels_within_their_bounds(levels, tmp_path, method):
    result = optimize(levels, START, method=method, max_steps=2, n_proposals=3, run_dir=tmp_path / method, seed=4)
    space = levels.search_space()
    moved = set()
    for step in result.steps[1:]:
        for c in step.candidates:
            params = levels.to_params(c.value)
            assert all(space[n][0] - 1e-9 <= params[n] <= space[n][1] + 1e-9 for n in levels.linear_params()), params
            moved |= {n for n in levels.linear_params() if params[n] != levels.to_params(START)[n]}
    assert moved == levels.linear_params()  # every level was searched, not only the weights
    header = (tmp_path / method / "plans.csv").read_text().splitlines()[0]
    assert "dose_gy.Core" in header and "volume_pct.Core" in header


def test_tgd_sees_and_proposes_weights_and_levels_in_one_object(levels, tmp_path):
    from scripted import ScriptedEngine

    from tgsci.proposers import TGDProposer

    def respond(messages, kwargs):
        if "response_format" in kwargs:
            item = kwargs["response_format"]["json_schema"]["schema"]["properties"]["proposals"]["items"]
            assert item["properties"]["dose_gy"]["properties"]["Core"] == {"type": "number", "minimum": 15.0, "maximum": 30.0}
            good = json.loads(START)
            good["dose_gy"]["Core"] = 20
            bad = json.loads(START)
            bad["dose_gy"]["OuterTarget"] = 60
            return json.dumps({"proposals": [good, bad]})
        return "Lower the core's max-DVH level to 20 Gy."

    engine = ScriptedEngine(respond=respond)
    result = optimize(levels, START, method=TGDProposer(engine), max_steps=1, n_proposals=2, run_dir=tmp_path / "tgd")
    prompts = "\n".join(engine.prompts())
    assert "dose level tunable within 15-30 Gy" in prompts and '"dose_gy"' in prompts
    assert [c.value for c in result.steps[1].candidates] == [START.replace('"Core": 25', '"Core": 20')]
    assert any("outside its range [48, 53] Gy" in f.reason for f in result.steps[1].failures)


def test_the_embedded_models_grammar_writes_valid_weight_and_level_objects(levels):
    """The real SmolLM2 under the value format's grammar: every proposal parses and lies in bounds."""
    from tgsci import Engine
    from tgsci.formats import parse_proposals, structured_kwargs

    engine = Engine("local/smollm2-135m", cache=False, temperature=0.8)
    fmt = levels.value_format
    reply = engine(f"Propose 3 plans. Format: {fmt.compact_example}. {fmt.compact_hint}",
                   max_tokens=3 * fmt.max_tokens_per_item + 16, seed=3, **structured_kwargs(engine, fmt, 3))
    values = parse_proposals(reply.text)
    assert len(values) == 3
    valid = []
    for v in values:
        try:
            valid.append(levels.validate(v))
        except InvalidCandidate as exc:  # the grammar fixes the shape and every level's range
            assert "all weights are zero" in str(exc), exc
            valid.append(v)
    assert len(valid) == 3, values
