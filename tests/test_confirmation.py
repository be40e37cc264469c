"""Multi-seed confirmation: a run's best molecules and the approved drugs are docked again with more
Vina seeds; reports and the drug comparison read the best of the seeds, the loop keeps its ranking."""

import csv
from types import SimpleNamespace

import pytest

from simulators.docking import DockingSettings
from tgsci import build_objective, optimize
from tgsci.domains.molecule.objective import MoleculeObjective
from tgsci.record import RunRecord
from tgsci.sweep.report import _run_row

SETTINGS = DockingSettings(exhaustiveness=1)
MOLECULES = ["OC(=O)Cc1ccc(OCc2ccccc2)cc1", "CC(C)(Oc1ccc(Cl)cc1)C(=O)O", "CCCCc1ccc(C(=O)O)cc1"]  # small PPARA-like acids


def test_confirmation_keeps_each_seed_and_the_best_of_them(tmp_path):
    objective = MoleculeObjective("PPARA", docking=SETTINGS, confirm_seeds=3, confirm_top=2, compare_references=False,
                                  cache_dir=str(tmp_path))
    single = objective.evaluate(MOLECULES)
    result = SimpleNamespace(evaluations=single, references=[("clofibric acid", single[1])])
    confirmed = objective.confirm(result)
    ranked = sorted(single, key=lambda e: e.score)
    assert [c.value for c in confirmed.candidates] == [e.value for e in ranked[:2]]  # the loop's order, top 2
    assert confirmed.references[0][0] == "clofibric acid" and confirmed.repeats == 3
    everything = confirmed.candidates + [e for _, e in confirmed.references]
    for ev, before in ((c, next(e for e in single if e.value == c.value)) for c in everything):
        seeds = [ev.metrics[f"vina_seed{k}"] for k in (1, 2, 3)]
        assert seeds[0] == before.metrics["vina"] == ev.metrics["vina_single"]  # seed 1 is the run's own docking
        assert ev.metrics["vina"] == min(seeds) and ev.metrics["vina_spread"] == pytest.approx(max(seeds) - min(seeds), abs=1e-3)
        assert ev.score == pytest.approx(objective._score(ev.metrics)) and ev.metrics["score_single"] == before.score
        assert (ev.value in confirmed.disagree) == (ev.metrics["vina_spread"] > 1.0)
    assert any(ev.metrics["vina_spread"] > 0 for ev in everything), "three seeds at exhaustiveness 1 never differ?"
    assert confirmed.stays_best == (confirmed.best.value == ranked[0].value)
    docked = objective.simulations
    again = objective.confirm(result)  # every seed's docking is cached: confirming again docks nothing
    assert objective.simulations == docked and [c.to_dict() for c in again.candidates] == [c.to_dict() for c in confirmed.candidates]
    objective.close()


def test_a_run_records_its_confirmation_and_reports_read_it(tmp_path):
    spec = {"kind": "molecule", "target": "PPARA", "docking": {"exhaustiveness": 1}, "confirm_seeds": 2, "confirm_top": 2,
            "cache_dir": str(tmp_path / "cache"), "compare_references": False}
    objective = build_objective(spec)
    run = tmp_path / "run"
    result = optimize(objective, "c1ccccc1C(=O)O", method="random", max_steps=1, n_proposals=3, run_dir=run, seed=3)
    objective.close()
    summary = RunRecord.load(run).summary
    assert summary.confirmed is not None and summary.confirmed.repeats == 2
    with open(run / "confirmed.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["kind"] for r in rows] == ["candidate", "candidate"] and rows[0]["smiles"] == result.best.value
    assert float(rows[0]["vina_seed1"]) == result.best.metrics["vina"] and rows[0]["vina_seed2"]
    best, refs = summary.compared
    assert best is summary.confirmed.best and best.score == pytest.approx(min(float(r["score"]) for r in rows))
    row, row_refs = _run_row(tmp_path, {"name": "run", "kind": "molecule", "target": "PPARA", "start": "x", "seed": 3,
                                        "method": "random", "budget": {"max_steps": 1, "n_proposals": 3}}, {}, get_molecule_domain())
    assert row["best_vina"] == best.metrics["vina"] and row["best_smiles"] == best.value and row["confirmed_repeats"] == 2
    from tgsci.run_report import report_run

    assert "Confirmed with 2 Vina seeds" in report_run(run).read_text()


def get_molecule_domain():
    from tgsci.domains import get_domain

    return get_domain("molecule")


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "3"])
def test_confirmation_settings_are_checked_before_any_docking(bad, tmp_path):
    from tgsci.domains import SpecError

    with pytest.raises(SpecError, match="confirm_seeds must be an integer >= 1"):
        build_objective({"kind": "molecule", "target": "PPARA", "confirm_seeds": bad, "cache_dir": str(tmp_path)})
    with pytest.raises(ValueError, match="confirm_top must be an integer >= 1"):
        MoleculeObjective("PPARA", confirm_top=bad, cache_dir=str(tmp_path))
