"""The two-phase stop rule (tgsci.two_phase): reach every goal, then lower the tie-break with every
goal held as a constraint, stop on a plateau; counted from the record, so a resumed run stops where
an uninterrupted one would. And the paper's literal rule beside it."""

from __future__ import annotations

import json

import pytest
from scripted import ScriptedEngine, proposals_json

from tgsci import optimize
from tgsci.objectives.function import FunctionObjective
from tgsci.prompts import TGD_SYSTEM
from tgsci.proposers import TGDProposer

# value -> (every goal met, score, tie-break in Gy): "c" has the lowest score of all but breaks a goal
TABLE = {"a": (False, 5.0, 40.0), "b": (True, 0.30, 30.0), "c": (False, 0.10, 10.0), "d": (True, 0.298, 29.8),
         "e": (True, 0.25, 25.0), "f": (True, 0.249, 24.9), "g": (True, 0.2485, 24.85), "h": (True, 0.2484, 24.84),
         "i": (True, 0.1, 10.0)}
SEQUENCE = "bcdefghi"


class TablePlan(FunctionObjective):
    def __init__(self):
        def score(value: str):
            met, s, spare = TABLE[value]
            return s, f"plan {value}: score {s}, organ mean {spare} Gy, goals {'met' if met else 'missed'}"

        def known(text: str) -> str:
            if text not in TABLE:
                raise ValueError(f"{text!r} is not a plan of the table")
            return text

        super().__init__(score, "Lower the score.", validate=known, role="plan letter")

    def fingerprint(self):
        return {"kind": "table-plan"}

    def goals_met(self, ev):
        return bool(ev.valid and TABLE[ev.value][0])

    def sparing(self, ev):
        return TABLE[ev.value][2] if ev.valid else None


def engine(sequence=SEQUENCE):
    steps = iter(sequence)

    def respond(messages, kwargs):
        if messages[0]["content"] != TGD_SYSTEM:
            return "Lower the organ dose, keep every goal."
        return proposals_json(next(steps))

    return ScriptedEngine(respond=respond)


def run(run_dir, max_steps=10, sequence=SEQUENCE, **rule):
    return optimize(TablePlan(), "a", method=TGDProposer(engine(sequence)), max_steps=max_steps, n_proposals=1, patience=None,
                    run_dir=run_dir, **rule)


def test_two_phase_holds_every_goal_and_stops_on_a_plateau(tmp_path):
    result = run(tmp_path, stop_when="two_phase", plateau_margin=0.5, plateau_steps=3)
    # b meets the goals (30 Gy); c scores lower but breaks a goal: never the best; d lowers by 0.2 < 0.5; e by 4.8
    # (counted); f, g, h by < 0.5 each: 3 flat steps, stop
    assert result.stop_reason == "plateau" and [s.step for s in result.steps] == list(range(8))
    assert [s.best.value for s in result.steps] == ["a", "b", "b", "d", "e", "f", "g", "h"]
    assert result.best.value == "h" and result.evaluations_to_goals == 2
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["evaluations_to_goals"] == 2 and summary["evaluations"] == 8
    assert json.loads((tmp_path / "config.json").read_text())["budget"]["plateau_steps"] == 3


def test_a_resumed_two_phase_run_stops_where_an_uninterrupted_one_does(tmp_path):
    first = run(tmp_path, max_steps=5, stop_when="two_phase", plateau_margin=0.5, plateau_steps=3)
    assert first.stop_reason == "max_steps" and first.best.value == "f"
    again = run(tmp_path, sequence="ghi", stop_when="two_phase", plateau_margin=0.5, plateau_steps=3)  # steps 6 on
    assert again.stop_reason == "plateau" and [s.best.value for s in again.steps][-1] == "h" and len(again.steps) == 8


def test_the_papers_literal_rule_stops_at_the_first_plan_meeting_every_goal(tmp_path):
    result = run(tmp_path, stop_when="all_goals_met")
    assert result.stop_reason == "all_goals_met" and result.best.value == "b" and len(result.steps) == 2


def test_without_the_rule_the_lowest_score_wins_even_if_it_breaks_a_goal(tmp_path):
    result = run(tmp_path, max_steps=2)
    assert result.best.value == "c"  # what two_phase prevents


@pytest.mark.parametrize("rule, message", [({"plateau_margin": -0.5}, "plateau_margin must be a number >= 0"),
                                           ({"plateau_steps": 0}, "plateau_steps must be an integer >= 1")])
def test_a_bad_plateau_setting_is_one_clear_error_before_anything_runs(tmp_path, rule, message):
    with pytest.raises(ValueError, match=message):
        run(tmp_path / "run", stop_when="two_phase", **rule)
    assert not (tmp_path / "run").exists()


def test_two_phase_needs_goals_and_a_tie_break(tmp_path):
    from scripted import NumberObjective

    with pytest.raises(ValueError, match="needs an objective with goals and a tie-break"):
        optimize(NumberObjective(), "1", method="random", stop_when="two_phase")
