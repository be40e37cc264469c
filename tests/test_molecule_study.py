"""The paper's molecule study: the protocol preset, the per-target table against the approved drugs."""

from types import SimpleNamespace

import pytest

from tgsci.domains import SpecError, get_domain
from tgsci.objectives.base import Confirmation, Evaluation
from tgsci.presets import protocol
from tgsci.record import RunSummary
from tgsci.sweep.spec import parse_spec


def test_the_paper_protocol_gives_molecule_sweeps_their_starts_budget_and_confirmation(tmp_path):
    spec = parse_spec({"sweep": {"kind": "molecule", "targets": ["PPARA", "JAK2"], "methods": ["tgd", "random"], "protocol": "paper"},
                       "resources": {"cache_dir": str(tmp_path)}})
    assert spec.starts == ["c1ccccc1", "c1ccncc1", "Oc1ccccc1"] and len(spec.expand()) == 2 * 3 * 2
    assert all(b["max_evaluations"] == 61 and b["patience"] == 5 and b["n_proposals"] == 3 for b in spec.budgets.values())
    assert spec.objectives["JAK2"]["confirm_seeds"] == 3 and spec.objectives["JAK2"]["aggregation"] == "dockstring"
    own = parse_spec({"sweep": {"kind": "molecule", "targets": ["PPARA"], "protocol": "paper", "starts": ["CCO"], "method": "tgd"},
                      "objective": {"confirm_seeds": 1}, "resources": {"cache_dir": str(tmp_path)}})
    assert own.starts == ["CCO"] and own.objectives["PPARA"]["confirm_seeds"] == 1  # the sweep's own keys win
    with pytest.raises(SpecError, match="unknown protocol 'nature' for kind 'molecule'; choose one of: paper"):
        parse_spec({"sweep": {"kind": "molecule", "targets": ["PPARA"], "protocol": "nature", "method": "tgd"}})
    assert protocol("paper", "plan")["start_weight"] == 100.0  # the plan preset is untouched


def _run(target: str, best: dict, drugs: dict, confirmed: bool = False):
    ev = Evaluation("C" * len(best), best["score"], {"vina": best["vina"], "qed": best["qed"]})
    refs = [(n, Evaluation(n, d["score"], {"vina": d["vina"], "qed": d["qed"]})) for n, d in drugs.items()]
    summary = RunSummary(start=ev, best=ev, steps=1, evaluations=1, stop_reason="max_steps", references=refs)
    if confirmed:  # the confirmed best is 0.5 kcal/mol better than the single seed said
        better = Evaluation(ev.value, ev.score - 0.5, {"vina": best["vina"] - 0.5, "qed": best["qed"]})
        summary.confirmed = Confirmation("test", 3, [better], refs)
    return SimpleNamespace(summary=summary, config=SimpleNamespace(objective={"targets": {target: 1.0}}))


def test_the_drug_table_says_where_a_method_matches_or_beats_the_best_drug_on_both():
    domain = get_domain("molecule")
    drugs = {"weak": {"vina": -7.0, "qed": 0.9, "score": -6.0}, "strong": {"vina": -9.0, "qed": 0.5, "score": -4.0}}
    rows = []
    rows += domain.comparison_rows(_run("T1", {"vina": -9.2, "qed": 0.6, "score": -5.2}, drugs), "tgd seed 0 start 0")
    rows += domain.comparison_rows(_run("T1", {"vina": -8.0, "qed": 0.8, "score": -6.0}, drugs), "random seed 0 start 0", context=False)
    rows += domain.comparison_rows(_run("T2", {"vina": -8.6, "qed": 0.7, "score": -5.6}, drugs, confirmed=True), "tgd seed 0 start 0")
    rows += domain.comparison_rows(_run("T2", {"vina": -8.6, "qed": 0.4, "score": -2.6}, drugs), "random seed 0 start 0", context=False)
    assert [r["design"] for r in rows[:2]] == ["weak (approved drug)", "strong (approved drug)"]
    tgd_t1 = next(r for r in rows if r["target"] == "T1" and r["design"].startswith("tgd"))
    assert tgd_t1["best_drug"] == "strong" and tgd_t1["matches_or_beats_drug_on_both"] is True  # -9.2 <= -9.0 and 0.6 >= 0.5
    tgd_t2 = next(r for r in rows if r["target"] == "T2" and r["design"].startswith("tgd"))
    assert tgd_t2["vina"] == -9.1 and tgd_t2["matches_or_beats_drug_on_both"] is True  # confirmed: -8.6 - 0.5
    summary = {r["method"]: r for r in domain.comparison_summary(rows)}
    assert summary["tgd"]["fraction"] == 1.0 and summary["tgd"]["targets"] == "T1 T2"
    assert summary["random"]["matches_or_beats_on_both"] == 0 and summary["random"]["targets_with_a_drug"] == 2


def test_one_command_runs_the_paper_study_on_every_target_with_a_drug():
    from pathlib import Path

    from simulators.targets import get_target, target_names
    from tgsci.sweep.spec import load_spec

    spec = load_spec(Path(__file__).resolve().parent.parent / "examples" / "sweep_molecule_paper.toml")
    with_drugs = [n for n in target_names() if get_target(n).references]
    assert spec.subjects == with_drugs and len(with_drugs) >= 29
    assert len(spec.expand()) == len(with_drugs) * 3 * 3 and spec.methods == ["tgd", "random", "graph-ga"]


def test_top5_auc_scaled_from_the_start_to_the_best_reference(tmp_path):
    from scripted import NumberObjective, ScriptedEngine, proposals_json

    from tgsci import optimize
    from tgsci.metrics import top_k_auc
    from tgsci.sweep.report import _run_row

    class WithReference(NumberObjective):
        def references(self):
            return [("the answer", Evaluation("42", 0.0)), ("a guess", Evaluation("40", 2.0))]

    engine = ScriptedEngine(["f", proposals_json("10", "20"), "f", proposals_json("30", "41")])
    optimize(WithReference(), "0", engine=engine, max_steps=2, n_proposals=2, patience=None, run_dir=tmp_path / "run")
    budget = {"max_steps": 2, "n_proposals": 2}
    row, _ = _run_row(tmp_path, {"name": "run", "kind": "number", "start": "0", "seed": 0, "method": "tgd", "budget": budget},
                      {}, get_domain("molecule"))
    scores = [42, 32, 22, 12, 1]  # |n - 42| of 0, 10, 20, 30, 41
    auc5 = top_k_auc(scores, 5, k=5)
    assert row["auc_top5"] == pytest.approx(auc5, abs=1e-4) and row["auc_top10"] == pytest.approx(top_k_auc(scores, 5), abs=1e-4)
    assert row["auc_top5_vs_ref"] == pytest.approx((42 - auc5) / (42 - 0), abs=1e-4)  # 0 = the start, 1 = the best reference


def test_a_misspelt_target_selector_names_the_selectors(tmp_path):
    with pytest.raises(SpecError, match="unknown target 'with_drug'.*\\(or \"all\", \"with_drugs\"\\)"):
        parse_spec({"sweep": {"kind": "molecule", "targets": "with_drug", "method": "random", "protocol": "paper"}})
