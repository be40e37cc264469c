"""optimize(): early stopping, run record, resume without repeating work, baselines, failures."""

import json
import re

import pytest
from scripted import NumberObjective, ScriptedEngine, proposals_json

from tgsci import EngineError, optimize
from tgsci.optim import DUPLICATE
from tgsci.prompts import TGD_SYSTEM
from tgsci.record import RunDirError, read_jsonl


def climbing_engine(step_size=5):
    """Feedback: 'go higher'; proposals: current + step_size, current + 2*step_size, ..."""

    def respond(messages, kwargs):
        if messages[0]["content"] != TGD_SYSTEM:
            return "The number is too low: go higher."
        found = re.search(r"<VALUE>(-?\d+)</VALUE>", messages[1]["content"])
        current = int(found.group(1)) if found else 0  # an invalid current value: start from 0
        k = kwargs["response_format"]["json_schema"]["schema"]["properties"]["proposals"]["maxItems"]
        return json.dumps({"proposals": [str(current + step_size * (i + 1)) for i in range(k)]})

    return ScriptedEngine(respond=respond)


def test_tgd_improves_and_writes_a_complete_run_record(tmp_path):
    objective = NumberObjective(target=42)
    engine = climbing_engine()
    result = optimize(objective, "10", engine=engine, max_steps=4, n_proposals=2, patience=None, run_dir=tmp_path)
    assert result.best.value == "40" and result.best.score == 2.0
    assert result.stop_reason == "max_steps"
    records = list(read_jsonl(tmp_path / "trajectory.jsonl"))
    assert [r["step"] for r in records] == [0, 1, 2, 3, 4]
    step = records[1]
    for key in ("current", "best", "candidates", "loss", "feedback", "failures", "replies", "usage", "timings"):
        assert key in step, key
    assert "away from the hidden integer" in step["loss"] and "go higher" in step["feedback"]
    assert step["usage"]["calls"] == 2  # one feedback call + one proposal call per step
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["finished"] and summary["best"]["value"] == "40" and summary["evaluations"] == 9
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["objective"] == {"kind": "number", "target": 42} and config["start"] == "10"


def test_target_score_stops_early():
    result = optimize(NumberObjective(target=20), "10", engine=climbing_engine(), max_steps=10, n_proposals=2, target_score=0.0)
    assert result.stop_reason == "target_score" and result.best.value == "20"


def test_patience_stops_when_nothing_improves():
    engine = ScriptedEngine(respond=lambda m, k: "feedback" if m[0]["content"] != TGD_SYSTEM else '{"proposals": ["-500"]}')
    # the same proposal each step: first it is evaluated (worse), then rejected as already tried
    result = optimize(NumberObjective(target=42), "40", engine=engine, max_steps=20, n_proposals=1, patience=2)
    assert result.stop_reason == "patience" and len(result.steps) == 3


def test_evaluation_budget_is_respected():
    objective = NumberObjective()
    result = optimize(objective, "0", engine=climbing_engine(1), max_steps=50, n_proposals=3, max_evaluations=7, patience=None)
    assert result.stop_reason == "max_evaluations" and len(objective.simulated) == 7


class Kill(Exception):
    """Stands for a killed process: raised from the step callback, after the step was recorded."""


def kill_at(step: int):
    def callback(record):
        if record.step == step:
            raise Kill()

    return callback


def test_resume_continues_without_repeating_steps(tmp_path):
    objective = NumberObjective(target=100)
    with pytest.raises(Kill):
        optimize(objective, "0", engine=climbing_engine(), max_steps=5, n_proposals=2, patience=None, run_dir=tmp_path, callback=kill_at(2))
    assert len(objective.simulated) == 5  # start + 2 steps x 2
    # a killed writer can leave a torn last line: it must be ignored, not crash the resume
    with open(tmp_path / "trajectory.jsonl", "a") as handle:
        handle.write('{"step": 3, "current": {"val')
    fresh = NumberObjective(target=100)
    result = optimize(fresh, "0", engine=climbing_engine(), max_steps=5, n_proposals=2, patience=None, run_dir=tmp_path)
    assert fresh.simulated == ["25", "30", "35", "40", "45", "50"]  # only steps 3-5, nothing repeated
    assert [r["step"] for r in read_jsonl(tmp_path / "trajectory.jsonl")] == [0, 1, 2, 3, 4, 5]
    assert result.best.value == "50"
    # asking again for the same finished run does no work at all
    again = NumberObjective(target=100)
    optimize(again, "0", engine=climbing_engine(), max_steps=5, n_proposals=2, patience=None, run_dir=tmp_path)
    assert again.simulated == []


def test_run_dir_of_another_objective_is_refused(tmp_path):
    optimize(NumberObjective(target=1), "0", engine=climbing_engine(), max_steps=1, n_proposals=1, run_dir=tmp_path)
    with pytest.raises(RunDirError, match="different objective"):
        optimize(NumberObjective(target=2), "0", engine=climbing_engine(), max_steps=1, n_proposals=1, run_dir=tmp_path)
    with pytest.raises(RunDirError, match="different start"):
        optimize(NumberObjective(target=1), "5", engine=climbing_engine(), max_steps=1, n_proposals=1, run_dir=tmp_path)


def test_engine_failure_is_recorded_and_the_loop_goes_on(tmp_path):
    calls = {"n": 0}
    inner = climbing_engine()

    def respond(messages, kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            return EngineError("provider down")
        return inner.respond(messages, kwargs)

    result = optimize(NumberObjective(), "10", engine=ScriptedEngine(respond=respond), max_steps=2, n_proposals=1, run_dir=tmp_path)
    records = list(read_jsonl(tmp_path / "trajectory.jsonl"))
    assert "provider down" in records[1]["error"] and records[2]["candidates"]
    assert result.best.value == "15"


def test_repeated_engine_failures_stop_with_a_reason():
    engine = ScriptedEngine(respond=lambda m, k: EngineError("rate limited"))
    result = optimize(NumberObjective(), "10", engine=engine, max_steps=10, n_proposals=1)
    assert result.stop_reason.startswith("engine_error") and "rate limited" in result.stop_reason


def test_invalid_start_is_evaluated_as_invalid_and_the_loop_recovers():
    result = optimize(NumberObjective(target=42), "forty", engine=climbing_engine(), max_steps=1, n_proposals=1)
    assert not result.start.valid and "not an integer" in result.start.error
    assert result.best.valid and result.best.value == "5"


@pytest.mark.parametrize("method", ["random", "graph-ga"])
def test_baselines_run_through_the_same_loop_and_budget(method, tmp_path):
    objective = NumberObjective(target=42)
    result = optimize(objective, "10", method=method, max_steps=30, n_proposals=3, max_evaluations=13, patience=None, seed=1, run_dir=tmp_path)
    assert len(objective.simulated) == 13 and result.stop_reason == "max_evaluations"
    assert result.best.score < 32  # better than the start
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["method"]["method"] == method


def test_baseline_resume_draws_the_same_candidates(tmp_path):
    full = NumberObjective()
    optimize(full, "10", method="random", max_steps=4, n_proposals=2, patience=None, seed=3)
    part = NumberObjective()
    optimize(part, "10", method="random", max_steps=2, n_proposals=2, patience=None, seed=3, run_dir=tmp_path)
    rest = NumberObjective()
    optimize(rest, "10", method="random", max_steps=4, n_proposals=2, patience=None, seed=3, run_dir=tmp_path)
    assert part.simulated + rest.simulated == full.simulated


def test_a_stalled_loop_does_not_replay_the_same_request():
    """Same prompt + same seed (or an LLM cache hit) would repeat the same rejected proposals forever."""
    engine = ScriptedEngine(respond=lambda m, k: "feedback" if m[0]["content"] != TGD_SYSTEM else '{"proposals": ["10"]}')
    optimize(NumberObjective(), "10", engine=engine, max_steps=3, n_proposals=1, patience=None, seed=0)
    seeds = [r["kwargs"]["seed"] for r in engine.requests if r["messages"][0]["content"] == TGD_SYSTEM]
    assert len(seeds) == len(set(seeds)) == 3  # one proposal call per step (duplicates are not retried), all different


def test_the_loop_is_the_primitives_one_tgd_per_run_fed_by_tell(monkeypatch):
    from tgsci.optim import TGD
    from tgsci.proposers import TGDProposer

    made = []
    original = TGD.__init__

    def counting_init(self, *args, **kwargs):
        made.append(self)
        original(self, *args, **kwargs)

    monkeypatch.setattr(TGD, "__init__", counting_init)
    engine = climbing_engine()
    proposer = TGDProposer(engine)
    result = optimize(NumberObjective(target=42), "10", method=proposer, max_steps=3, n_proposals=2, patience=None)
    assert made == [proposer.tgd]  # one optimizer for the whole run, not one per step
    # the TGD's own bounded history holds what the loop told it: the start and every candidate, in order
    assert [e.value for e in proposer.tgd.history.entries] == ["10", "15", "20", "25", "30", "35", "40"]
    # each step's usage is what that step's Proposal spent: one feedback and one update call
    assert [s.usage.calls for s in result.steps] == [0, 2, 2, 2] and result.usage.calls == engine.usage.calls == 6
    # forward: the loss the feedback call read is the objective's words for the step's current value
    feedback = [r["messages"] for r in engine.requests if r["messages"][0]["content"] != TGD_SYSTEM]
    assert "The number 20 is 22 away from the hidden integer" in feedback[1][-1]["content"]
    assert result.steps[2].loss.startswith("The number 20 is 22 away") and result.steps[2].feedback == "The number is too low: go higher."


def test_a_resumed_run_sends_the_same_prompts_as_an_uninterrupted_one(tmp_path):
    """The history the TGD prompt shows is rebuilt from the record (tell() replays every step)."""
    full = climbing_engine()
    optimize(NumberObjective(target=100), "0", engine=full, max_steps=4, n_proposals=2, patience=None, seed=5)
    with pytest.raises(Kill):
        optimize(NumberObjective(target=100), "0", engine=climbing_engine(), max_steps=4, n_proposals=2, patience=None,
                 seed=5, run_dir=tmp_path, callback=kill_at(2))
    resumed = climbing_engine()
    optimize(NumberObjective(target=100), "0", engine=resumed, max_steps=4, n_proposals=2, patience=None, seed=5, run_dir=tmp_path)
    assert [r["messages"] for r in resumed.requests] == [r["messages"] for r in full.requests[4:]]
    assert [r["kwargs"]["seed"] for r in resumed.requests if "seed" in r["kwargs"]] == \
        [r["kwargs"]["seed"] for r in full.requests[4:] if "seed" in r["kwargs"]]


def _repeating_engine(embedded: bool) -> ScriptedEngine:
    """Feedback, then always the start value again: a model that only repeats itself."""
    def respond(messages, kwargs):
        return proposals_json("0") if "proposals" in messages[-1]["content"] else "Try a larger number."

    engine = ScriptedEngine(respond=respond)
    engine.embedded = embedded
    return engine


def test_a_step_where_the_embedded_model_only_repeats_gets_one_labelled_fallback_candidate(tmp_path):
    from tgsci.run_report import report_run

    objective = NumberObjective(target=100)
    result = optimize(objective, "0", engine=_repeating_engine(True), max_steps=3, n_proposals=2, patience=None, run_dir=tmp_path)
    records = list(read_jsonl(tmp_path / "trajectory.jsonl"))
    for rec in records[1:]:
        [candidate] = rec["candidates"]  # one mutation, not k: the LLM keeps the budget
        assert candidate["origin"] == "fallback: mutation of a repeated LLM proposal"
        assert abs(int(candidate["value"])) <= 5 and candidate["value"] != "0"  # a neighbour of what the LLM repeated
        assert [f["reason"] for f in rec["failures"]] == [DUPLICATE]  # the LLM's own attempts stay recorded
    assert json.loads((tmp_path / "config.json").read_text())["method"]["fallback"] is True
    html = report_run(tmp_path).read_text()
    assert html.count("fallback: mutation of") == 3
    assert len(result.evaluations) == 4


def test_api_models_get_no_fallback_a_repeating_step_stays_empty():
    result = optimize(NumberObjective(target=100), "0", engine=_repeating_engine(False), max_steps=2, n_proposals=2, patience=None)
    assert [len(s.candidates) for s in result.steps[1:]] == [0, 0]


def test_the_embedded_model_reads_constraints_once_at_the_start_of_every_prompt():
    """Stable blocks go first in the feedback prompt (cached across steps) and are not repeated in the follow-up."""
    engine = _repeating_engine(True)
    optimize(NumberObjective(target=100), "0", engine=engine, max_steps=2, n_proposals=1, patience=None)
    feedback, update = engine.requests[0]["messages"], engine.requests[1]["messages"]
    constraints = "Constraints every value must satisfy:"
    assert constraints in feedback[1]["content"] and constraints not in update[-1]["content"]
    assert engine.requests[2]["messages"][1]["content"].split("<CANDIDATE>")[0] == feedback[1]["content"].split("<CANDIDATE>")[0]
    api = _repeating_engine(False)
    optimize(NumberObjective(target=100), "0", engine=api, max_steps=1, n_proposals=1, patience=None)
    assert constraints not in api.requests[0]["messages"][1]["content"] and constraints in api.requests[1]["messages"][1]["content"]
