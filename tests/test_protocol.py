"""The paper's radiotherapy protocol: stop when all goals are met, reference plans in the prompt,
``--protocol paper``, and the paper's table (TextGrad, Nature 2025)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest
from scripted import NumberObjective, ScriptedEngine, proposals_json

from tgsci import TGD, History, Variable, build_objective, optimize
from tgsci.domains.molecule.objective import MoleculeObjective
from tgsci.presets import protocol_budget
from tgsci.prompts import TGD_SYSTEM
from tgsci.proposers import TGDProposer

# QED 0.38 (propane), 0.41, 0.55 (aspirin), 0.73 (ibuprofen-like), 0.80: the goal qed >= 0.7 is first met at step 3
LADDER = ["CCC", "CCO", "CC(=O)Oc1ccccc1C(=O)O", "CC(C)Cc1ccc(cc1)C(C)C(=O)O", "Cc1ccc(cc1)S(=O)(=O)NC(=O)NN1CCCCCC1"]


def ladder_engine():
    steps = iter(LADDER[1:])

    def respond(messages, kwargs):
        if messages[0]["content"] != TGD_SYSTEM:
            return "Raise QED: add an aromatic ring and a polar group."
        return proposals_json(next(steps))

    return ScriptedEngine(respond=respond)


def test_all_goals_met_stops_at_the_first_step_that_meets_them_and_never_before(tmp_path):
    objective = MoleculeObjective("PPARA", aggregation="qed", compare_references=False, goals=["qed>=0.7"])
    qeds = [objective.evaluate([s])[0].metrics["qed"] for s in LADDER]
    assert qeds[2] < 0.7 <= qeds[3]  # the ladder's first value that meets the goal is its 4th (step 3)
    result = optimize(objective, LADDER[0], method=TGDProposer(ladder_engine()), max_steps=10, n_proposals=1, patience=None,
                      stop_when="all_goals_met", run_dir=tmp_path)
    assert result.stop_reason == "all_goals_met" and [s.step for s in result.steps] == [0, 1, 2, 3]
    assert json.loads((tmp_path / "config.json").read_text())["budget"]["stop_when"] == "all_goals_met"
    assert "Goals: QED >= 0.7: MISSED" in result.steps[1].loss and "Goals: QED >= 0.7." in objective.describe()
    again = optimize(MoleculeObjective("PPARA", aggregation="qed", compare_references=False, goals=["qed>=0.7"]), LADDER[0],
                     method=TGDProposer(ladder_engine()), max_steps=10, n_proposals=1, patience=None, stop_when="all_goals_met",
                     run_dir=tmp_path)  # resumed: already met, nothing more to do
    assert again.stop_reason == "all_goals_met" and len(again.steps) == 4
    with pytest.raises(ValueError, match="needs an objective with goals"):
        optimize(NumberObjective(), "1", method="random", stop_when="all_goals_met")


def test_reference_designs_reach_the_prompt_and_it_stays_bounded():
    history = History(n_best=3, n_recent=3)
    refs = [(f"reference {c}", json.dumps({"PTV": 1000, "Rectum": 100 * i}), f"score {i}.0, goals met 5/7") for i, c in enumerate("ABCDE")]
    sizes = []
    for step in range(30):
        engine = ScriptedEngine([proposals_json(str(step))])
        x = Variable("7", "weights")
        tgd = TGD([x], engine, history=history, references=refs)
        tgd.propose(x)
        prompt = engine.prompts()[0]
        sizes.append(len(prompt))
        history.add(str(step), float(step % 5), f"score {step % 5}")
    assert "reference A: " in prompt and "reference C: " in prompt and "reference D" not in prompt  # at most 3
    assert refs[1][1] in prompt and "Reference designs (worked examples" in prompt
    assert max(sizes[10:]) - min(sizes[10:]) < 40
    without = ScriptedEngine([proposals_json("1")])
    TGD([Variable("7", "weights")], without).propose(Variable("7", "weights"))
    assert "Reference designs" not in without.prompts()[0]  # none: the prompt is as before


def test_the_plan_prompt_holds_the_case_reference_plans(plan, tmp_path):
    engine = ScriptedEngine(respond=lambda m, k: "Raise Core." if m[0]["content"] != TGD_SYSTEM else
                            json.dumps({"proposals": [{"OuterTarget": 1000, "Core": 700, "BODY": 90}]}))
    optimize(plan, plan.start_value(), method=TGDProposer(engine), max_steps=1, n_proposals=1, run_dir=tmp_path)
    update = next(p for p in engine.prompts() if "Reference designs" in p)
    for name, weights, _ in plan.case.reference_plans:
        line = next(line for line in update.splitlines() if line.startswith(f"- {name}: "))
        ref = dict(plan.references())[name]
        assert ref.value in line and line.endswith(plan.summarize(ref))


def test_protocol_paper_sets_what_it_says(tmp_path):
    run = tmp_path / "paper"
    done = subprocess.run([sys.executable, "-m", "tgsci.cli", "plan", "--case", "tg119", "--fast", "--protocol", "paper",
                           "--method", "random", "--run-dir", str(run)], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    config = json.loads((run / "config.json").read_text())
    assert config["spec"]["protocol"] == "paper" and config["objective"]["protocol"] == "paper"
    assert config["start"] == '{"BODY": 100, "Core": 100, "OuterTarget": 100}'
    assert config["budget"]["max_steps"] == 10 and config["budget"]["stop_when"] == "two_phase" and config["budget"]["patience"] is None
    assert (config["budget"]["plateau_margin"], config["budget"]["plateau_steps"]) == (0.5, 2)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["stop_reason"] in ("plateau", "max_steps") and [r["name"] for r in summary["references"]][:1] == ["reference A: target first"]
    space = build_objective({"kind": "plan", "case": "tg119", "fast": True, "protocol": "paper"}).search_space()
    assert set(space.values()) == {(100.0, 400.0)}
    assert protocol_budget("paper", "tpe", "plan") == {"max_steps": 50, "n_proposals": 1, "max_evaluations": 50, "patience": None, "stop_when": None}
    assert protocol_budget("paper-literal", "tgd", "plan") == {"max_steps": 10, "patience": None, "stop_when": "all_goals_met"}

    from tgsci.sweep import parse_spec

    spec = parse_spec({"sweep": {"kind": "plan", "cases": ["tg119"], "methods": ["tgd", "tpe"], "protocol": "paper"}, "plan": {"fast": True}})
    budgets = {r["method"]: r["budget"] for r in spec.expand()}
    assert budgets["tgd"]["max_steps"] == 10 and budgets["tgd"]["stop_when"] == "two_phase" and budgets["tgd"]["plateau_steps"] == 2
    assert budgets["tpe"]["max_evaluations"] == 50 and budgets["tpe"]["stop_when"] is None and "plateau_steps" not in budgets["tpe"]
    assert spec.expand()[0]["start"] == '{"BODY": 100, "Core": 100, "OuterTarget": 100}'
    from pathlib import Path

    from tgsci.sweep import load_spec

    example = load_spec(Path(__file__).resolve().parent.parent / "examples" / "sweep_paper.toml").expand()
    assert {(r["case"], r["method"], r["budget"]["max_steps"]) for r in example} == {
        ("prostate", "tgd", 10), ("prostate", "tpe", 50), ("prostate_sib", "tgd", 10), ("prostate_sib", "tpe", 50),
        ("tg119", "tgd", 10), ("tg119", "tpe", 50)}
    assert all(r["objective"]["protocol"] == "paper" for r in example)

    with open(run / "paper_table.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["plan"] for r in rows] == ["start", "best (random)", "reference A: target first (reference)",
                                         "reference B: core sparing (reference)", "reference C: balanced (reference)"]
    best = summary["best"]["metrics"]
    assert float(rows[1]["OuterTarget mean - Rx (Gy)"]) == pytest.approx(best["OuterTarget.Dmean"] - 50.0, abs=0.01)
    assert float(rows[1]["OuterTarget D95 - Rx (Gy)"]) == pytest.approx(best["OuterTarget.D95"] - 50.0, abs=0.01)
    assert float(rows[1]["OuterTarget min - Rx (Gy)"]) == pytest.approx(best["OuterTarget.Dmin"] - 50.0, abs=0.01)
    assert float(rows[1]["Core mean (Gy)"]) == pytest.approx(best["Core.Dmean"], abs=0.01) and "BODY mean (Gy)" not in rows[1]
    assert rows[1]["goals met"] == f"{best['goals_met']}/3" and int(rows[1]["evaluations to stop"]) == summary["evaluations"]
    assert float(rows[1]["OuterTarget D2 - Rx (Gy)"]) == pytest.approx(best["OuterTarget.D2"] - 50.0, abs=0.01)
    assert "The paper&#x27;s table" in (run / "report.html").read_text() or "The paper's table" in (run / "report.html").read_text()
