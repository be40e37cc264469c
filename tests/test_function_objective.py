"""Your own simulator in a few lines: ``optimize(fn, start, describe=..., validate=...)``."""

import json
import math

import pytest
from scripted import ScriptedEngine, proposals_json

from tgsci import FunctionObjective, optimize
from tgsci.prompts import TGD_SYSTEM
from tgsci.record import RunRecord


def climber(step=3):
    """Feedback 'go up'; proposals: the current number + step, + 2 step."""

    def respond(messages, kwargs):
        if messages[0]["content"] != TGD_SYSTEM:
            return "Too low: go up."
        current = int(messages[1]["content"].split("<VALUE>")[1].split("</VALUE>")[0])
        return proposals_json(str(current + step), str(current + 2 * step))

    return ScriptedEngine(respond=respond)


def test_a_plain_function_is_optimized_and_its_words_reach_the_llm_and_the_record(tmp_path):
    calls = []

    def simulate(text):
        calls.append(text)
        x = int(text)
        return (x - 20) ** 2, f"x = {x}: squared distance to the hidden optimum is {(x - 20) ** 2}"

    engine = climber()
    result = optimize(simulate, "5", describe="Find the integer that minimizes the squared distance.",
                      validate=lambda t: str(int(t)), engine=engine, max_steps=3, n_proposals=2, patience=None, run_dir=tmp_path)
    assert calls == ["5", "8", "11", "14", "17", "20", "23"]  # each value simulated once, a step's best is the next current
    assert result.best.value == "20" and result.best.score == 0 and result.best.text.startswith("x = 20:")
    feedback_prompt = engine.requests[0]["messages"][1]["content"]
    assert "squared distance to the hidden optimum is 225" in feedback_prompt  # the function's own words are the loss
    assert "Find the integer that minimizes" in feedback_prompt
    run = RunRecord.load(tmp_path)
    assert run.config.objective == {"kind": "function", "function": "test_a_plain_function_is_optimized_and_its_words_reach_the_llm_and_the_record.<locals>.simulate",
                                     "goal": "Find the integer that minimizes the squared distance.", "batch": False}
    assert [c.text for c in run.steps[1].candidates] == ["x = 8: squared distance to the hidden optimum is 144",
                                                         "x = 11: squared distance to the hidden optimum is 81"]


def test_batch_functions_get_every_new_value_of_a_step_at_once():
    batches = []

    def simulate_all(values):
        batches.append(list(values))
        return [(abs(float(v) - 1.5), f"{v} is {abs(float(v) - 1.5):g} from 1.5") for v in values]

    engine = ScriptedEngine(respond=lambda m, k: "closer to 1.5" if m[0]["content"] != TGD_SYSTEM else proposals_json("1", "2", "1.5"))
    result = optimize(simulate_all, "0", describe="get to 1.5", batch=True, engine=engine, max_steps=1, n_proposals=3)
    assert batches == [["0"], ["1", "2", "1.5"]] and result.best.value == "1.5"


def test_invalid_values_failures_and_bad_returns_are_recorded_never_raised(tmp_path):
    def simulate(text):
        x = float(text)
        if x > 100:
            raise RuntimeError("solver diverged")
        if x < 0:
            return None, "negative inputs have no solution"
        if x == 7:
            return "seven"
        return math.nan if x == 3 else x, f"value {x}"

    def validate(text):
        if not text.replace(".", "", 1).lstrip("-").isdigit():
            raise ValueError(f"{text!r} is not a number")
        return text

    objective = FunctionObjective(simulate, "smallest non-negative number", validate=validate)
    evs = objective.evaluate(["abc", "200", "-1", "7", "3", "2"])
    assert [e.valid for e in evs] == [False, False, False, False, False, True]
    assert not evs[0].simulated and "'abc' is not a number" in evs[0].error
    assert evs[1].simulated and evs[1].error == "RuntimeError: solver diverged"
    assert evs[2].error == "negative inputs have no solution"
    assert "must return (score, words)" in evs[3].error
    assert evs[4].error == "value 3.0"  # NaN score: failed, its words kept as the reason
    assert objective.verbalize(evs[1], evs[5], evs[5]) == "invalid candidate value: RuntimeError: solver diverged"
    engine = ScriptedEngine(respond=lambda m, k: "try lower" if m[0]["content"] != TGD_SYSTEM else proposals_json("200", "1"))
    result = optimize(objective, "2", engine=engine, max_steps=1, n_proposals=2, run_dir=tmp_path)
    assert result.best.value == "1"
    step = RunRecord.load(tmp_path).steps[1]
    assert [(c.value, c.error) for c in step.candidates] == [("200", "RuntimeError: solver diverged"), ("1", None)]


def test_an_objective_and_function_options_do_not_mix():
    objective = FunctionObjective(lambda v: (0.0, "ok"), "anything")
    with pytest.raises(TypeError, match="describe: only for a plain function"):
        optimize(objective, "x", describe="again", method="random")
    with pytest.raises(TypeError, match='needs describe='):
        optimize(lambda v: (0.0, "ok"), "x")
    with pytest.raises(TypeError, match="needs an Objective or a function"):
        optimize(42, "x", describe="no")


def test_random_search_uses_the_functions_neighbor_operator():
    seen = []
    result = optimize(lambda v: (abs(int(v) - 9), json.dumps({"v": v})), "0", describe="reach 9", method="random",
                      neighbor=lambda v, rng: (seen.append(v), str(int(v) + rng.choice([1, 2])))[1],
                      validate=lambda t: str(int(t)), max_steps=20, n_proposals=1, patience=None, max_evaluations=8)
    assert seen and result.best.score < 9 and result.stop_reason == "max_evaluations"


def test_a_value_is_validated_once_however_many_parts_of_the_loop_see_it():
    """The proposer checks a proposal; the batch evaluation, the history and the next step trust it."""
    seen = []

    def validate(text: str) -> str:
        seen.append(text)
        if not text.strip().isdigit():
            raise ValueError("digits only")
        return str(int(text))

    engine = ScriptedEngine(respond=lambda m, k: "lower" if m[0]["content"] != TGD_SYSTEM else proposals_json("007", "3", "x"))
    result = optimize(lambda v: (float(v), "lower is better"), "10", describe="a small number", validate=validate,
                      engine=engine, max_steps=2, n_proposals=3, patience=None)
    assert result.best.value == "3" and [s.step for s in result.steps] == [0, 1, 2]
    # each text once (the start, then the three proposals), though the proposer, the batch evaluation and
    # TGD's retries on "x" (the same reply each time) all ask: before, 13 calls for these 4 texts
    assert seen == ["10", "007", "3", "x"]
    failed = [(f.text, f.reason) for s in result.steps for f in s.failures]
    assert sum(text == "x" for text, _ in failed) >= 2  # rejected at each ask, with its reason reused
    assert all("digits only" in reason for text, reason in failed if text == "x")


def test_baselines_need_a_mutation_operator_and_say_so_before_any_evaluation():
    from tgsci.objectives.base import Crosses, Mutates
    from tgsci.objectives.function import FunctionObjective

    calls = []

    def fn(v):
        calls.append(v)
        return float(v), "lower"

    plain = FunctionObjective(fn, "a small number")
    assert not isinstance(plain, Mutates) and not isinstance(plain, Crosses)
    with pytest.raises(ValueError, match=r"method 'random' needs an objective with the Mutates capability \(neighbor\(\)\)"):
        optimize(plain, "5", method="random", max_steps=2)
    assert calls == []  # refused up front, not after the start was simulated
    # Graph GA with a neighbor and no crossover: mutation only, and it still improves
    mutating = FunctionObjective(fn, "a small number", neighbor=lambda v, rng: str(int(v) - rng.choice([1, 2])),
                                 validate=lambda t: str(int(t)))
    assert isinstance(mutating, Mutates) and not isinstance(mutating, Crosses)
    result = optimize(mutating, "5", method="graph-ga", max_steps=3, n_proposals=2, patience=None)
    assert result.best.score < 5 and result.stop_reason == "max_steps"


def test_a_reused_rejection_keeps_its_exception_type():
    from tgsci.objectives.base import InvalidCandidate
    from tgsci.objectives.function import FunctionObjective

    def validate(text):
        raise InvalidCandidate("never valid")

    objective = FunctionObjective(lambda v: (0.0, ""), "nothing", validate=validate)
    for _ in range(2):  # the second answer comes from the memo
        with pytest.raises(InvalidCandidate, match="never valid"):
            objective.checked("x")
