"""MoleculeObjective and its chemistry: validation, properties, targets, scores and words.

No docking here (see test_docking.py): the docking simulator is replaced where a score is needed.
"""

import re
import tomllib
from pathlib import Path

import pytest
from rdkit import Chem
from rdkit.Chem.rdMolDescriptors import CalcMolFormula

from simulators.measurement import Measurement
from simulators.properties import lipinski_violations, properties, tanimoto
from simulators.targets import UnknownTargetError, dockstring_targets_dir, get_target, load_manifest, target_names
from tgsci import build_objective
from tgsci.objectives.base import Evaluation, InvalidCandidate
from tgsci.domains.molecule.objective import MoleculeObjective

PEPTIDE_10 = "N" + "CC(=O)N[C@@H](CC(C)C)C(=O)N[C@@H](Cc1ccccc1)C(=O)N" * 3 + "CC(=O)O"


@pytest.fixture
def objective():
    return MoleculeObjective("PPARA", compare_references=False)


@pytest.mark.parametrize(
    "smiles, reason",
    [
        ("", "empty"),
        ("   ", "empty"),
        ("C1CC", "cannot parse"),
        ("c1ccccc1 C", "spaces"),
        ("CCO.Cl", "fragments"),
        (PEPTIDE_10, "heavy atoms"),
        ("C" * 30, "rotatable bonds"),
        ("C[Si](C)(C)C", "Si"),
        ("[CH3]", "radicals"),
    ],
)
def test_invalid_molecules_are_rejected_with_a_reason(objective, smiles, reason):
    with pytest.raises(InvalidCandidate, match=reason):
        objective.validate(smiles)


def test_validate_returns_canonical_smiles_and_strips_quotes(objective):
    assert objective.validate(' "OC(=O)c1ccccc1" ') == Chem.CanonSmiles("OC(=O)c1ccccc1")


def test_a_validated_smiles_is_not_parsed_again_by_the_simulators(objective, monkeypatch):
    import simulators.ligand
    import simulators.molecule_checks as checks

    from tgsci.objectives.base import Crosses, Mutates

    assert isinstance(objective, Mutates) and isinstance(objective, Crosses)  # Graph GA's operators (mol_ga)
    value = objective.validate("OC(=O)c1ccccc1")
    parsed = []
    monkeypatch.setattr(checks.Chem, "MolFromSmiles", lambda text, *a: parsed.append(text) or None)
    assert checks.canonical_smiles(value) is value and simulators.ligand.canonical_smiles(value) is value
    assert parsed == []  # the docking simulator and ligand preparation trust the objective's check
    with pytest.raises(checks.LigandError):
        checks.canonical_smiles(str(value))  # plain text is still parsed (here by the stub, which fails)
    assert parsed == [str(value)]


def test_scaffold_and_weight_constraints():
    obj = MoleculeObjective("PPARA", scaffold="c1ccccc1C(=O)O", max_mol_weight=200, compare_references=False)
    assert obj.validate("OC(=O)c1ccc(N)cc1")
    with pytest.raises(InvalidCandidate, match="substructure"):
        obj.validate("c1ccccc1CO")
    with pytest.raises(InvalidCandidate, match="molecular weight"):
        obj.validate("OC(=O)c1ccc(cc1)-c1ccc(cc1)-c1ccccc1")
    assert any("substructure" in c for c in obj.constraints())


def test_unknown_target_lists_valid_names():
    with pytest.raises(UnknownTargetError) as info:
        MoleculeObjective("PPAR")
    assert "PPARA" in str(info.value) and "JAK2" in str(info.value)
    assert get_target("ppara").name == "PPARA"


def test_known_property_values():
    aspirin = properties("CC(=O)Oc1ccccc1C(=O)O")
    assert aspirin["qed"] == pytest.approx(0.550, abs=0.005)
    assert 1.0 < aspirin["sa"] < 2.5 and aspirin["heavy_atoms"] == 13 and aspirin["rotatable_bonds"] == 2
    assert lipinski_violations(Chem.MolFromSmiles("C" * 30)) == 1  # logP > 5 only (MW 422)
    assert lipinski_violations(Chem.MolFromSmiles("C" * 40)) == 2  # and MW 563 > 500
    assert tanimoto("CCO", "CCO") == 1.0 and tanimoto("CCO", "c1ccccc1") < 0.2


def test_manifest_matches_dockstring_target_files():
    names = target_names()
    assert len(names) == 58 and set(load_manifest()) == set(names)
    for name in names:
        target = get_target(name)
        conf = (dockstring_targets_dir() / f"{name}_conf.txt").read_text()
        values = dict(line.replace(" ", "").split("=") for line in conf.splitlines() if "=" in line)
        assert target.center == tuple(float(values[f"center_{a}"]) for a in "xyz"), name
        assert target.size == tuple(float(values[f"size_{a}"]) for a in "xyz"), name
        assert target.receptor_path.exists()


def test_reference_drugs_have_their_published_formula_and_a_source_identifier():
    with open(Path(__file__).resolve().parent.parent / "targets" / "dockstring_targets.toml", "rb") as handle:
        data = tomllib.load(handle)["targets"]
    with_refs = [name for name, t in data.items() if t.get("references")]
    assert len(with_refs) >= 29 and "PPARA" in with_refs  # the paper compared with approved drugs on 29 targets
    for name in with_refs:
        for ref in data[name]["references"]:
            mol = Chem.MolFromSmiles(ref["smiles"])
            assert mol is not None and CalcMolFormula(mol) == ref["formula"], (name, ref["name"])
            assert re.fullmatch(r"DB\d{5}|CHEMBL\d+", ref["id"]) and ref["status"].startswith("approved"), (name, ref)
    by_id = {}
    for name in with_refs:  # one identifier is one drug everywhere in the manifest
        for ref in data[name]["references"]:
            assert by_id.setdefault(ref["id"], (ref["name"], ref["smiles"])) == (ref["name"], ref["smiles"]), ref
    assert {r.name for r in get_target("MET").references} >= {"crizotinib", "capmatinib"}


@pytest.mark.parametrize("entry, message", [
    ('name = "x"\nsmiles = "CCO"', r"references\[0\] \(x\): needs id \(id: the drug's DrugBank or ChEMBL identifier"),
    ('name = "x"\nsmiles = "CCO"\nid = ""', r"needs id"),
    ('name = "x"\nsmiles = "CCO"\nid = "DB1"\nchembl = "x"', r"unknown key\(s\) chembl"),
])
def test_a_drug_without_an_identifier_is_named_before_any_docking(tmp_path, entry, message):
    from tgsci.domains import SpecError

    manifest = tmp_path / "mine.toml"
    manifest.write_text(f'[targets.MINE]\nreceptor = "{get_target("THRB").receptor}"\ncenter = [0, 0, 0]\nsize = [20, 20, 20]\n'
                        f"[[targets.MINE.references]]\n{entry}\n")
    with pytest.raises(SpecError, match=message):
        build_objective({"kind": "molecule", "target": "MINE", "targets_file": str(manifest), "cache_dir": str(tmp_path)})


class FakeDocking:
    """A docking simulator with fixed scores (``simulators=`` of MoleculeObjective); counts calls."""

    def __init__(self, scores):
        self.scores = {Chem.CanonSmiles(s): v for s, v in scores.items()}
        self.calls = 0

    def evaluate(self, smiles_list):
        self.calls += 1
        return [Measurement(s, {"vina": self.scores[s]}) if s in self.scores else Measurement(s, error="boom") for s in smiles_list]

    def close(self):
        pass


def _with_fake_docking(per_target, *args, **kwargs):
    return MoleculeObjective(*args, simulators={t: FakeDocking(s) for t, s in per_target.items()}, **kwargs)


def test_dockstring_score_is_vina_plus_ten_times_one_minus_qed():
    smi = Chem.CanonSmiles("CC(=O)Oc1ccccc1C(=O)O")
    obj = _with_fake_docking({"PPARA": {smi: -6.5}}, "PPARA", compare_references=False)
    ev = obj.evaluate([smi])[0]
    assert ev.score == pytest.approx(-6.5 + 10 * (1 - 0.5501), abs=0.01)
    assert ev.metrics["vina"] == -6.5 and ev.simulated


def test_selectivity_weights_reward_weak_off_target_binding():
    smi = Chem.CanonSmiles("c1ccc2[nH]ccc2c1")
    obj = _with_fake_docking({"JAK2": {smi: -8.0}, "LCK": {smi: -5.0}}, {"JAK2": 1.0, "LCK": -1.0}, aggregation="vina",
                             compare_references=False)
    assert obj.evaluate([smi])[0].score == pytest.approx(-3.0)
    assert "LCK" in obj.describe() and "weakly" in obj.describe()


def test_failed_docking_and_invalid_proposals_become_errors_not_exceptions():
    good = Chem.CanonSmiles("c1ccccc1O")
    obj = _with_fake_docking({"PPARA": {}}, "PPARA", compare_references=False)
    bad_dock, invalid = obj.evaluate([good, "C1CC"])
    assert bad_dock.score is None and "docking against PPARA failed: boom" in bad_dock.error and bad_dock.simulated
    assert invalid.score is None and "cannot parse" in invalid.error and not invalid.simulated


def test_verbalization_states_numbers_with_direction_and_context():
    fenofibrate = next(r.smiles for r in get_target("PPARA").references if r.name == "fenofibrate")
    obj = _with_fake_docking({"PPARA": {fenofibrate: -8.0}}, "PPARA")  # the other approved drugs fail: not shown
    assert [name for name, ev in obj.references() if ev.valid] == ["fenofibrate"]
    start = Evaluation("c1ccccc1", 1.4, {"vina": -4.2, "vina_PPARA": -4.2, "qed": 0.44})
    ev = Evaluation("Oc1ccccc1", -1.0, {"vina": -5.1, "vina_PPARA": -5.1, "qed": 0.47, "sa": 1.1, "lipinski_violations": 0, "heavy_atoms": 7,
                                          "rotatable_bonds": 0, "mol_weight": 94.1, "logp": 1.4})
    text = obj.verbalize(ev, start, start)
    for needle in ("Vina docking score against PPARA: -5.1 kcal/mol, lower is better", "start -4.2", "fenofibrate (approved drug) -8.0",
                   "QED drug-likeness: 0.47 (0 to 1, higher is better", "Vina(PPARA) + 10*(1 - QED) = -1.00", "Tanimoto similarity to the start"):
        assert needle in text, needle
    invalid = obj.verbalize(Evaluation("C1CC", None, {}, "RDKit cannot parse"), start, start)
    assert invalid == "invalid molecule: RDKit cannot parse"
    # the brief form (embedded model): the same numbers against the best and the drug, far fewer words
    brief = obj.verbalize(ev, start, start, brief=True)
    for needle in ("Vina PPARA -5.1 kcal/mol (best -4.2, fenofibrate -8.0)", "QED 0.47 (best 0.44", "score -1.00 (best 1.40)",
                   "logP 1.4", "similarity to start"):
        assert needle in brief, needle
    assert len(brief) < 0.7 * len(text)
    assert obj.verbalize(Evaluation("C1CC", None, {}, "RDKit cannot parse"), start, start, brief=True) == invalid


def test_qed_only_objective_needs_no_docking():
    docking = FakeDocking({})
    obj = MoleculeObjective("PPARA", aggregation="qed", compare_references=False, simulators={"PPARA": docking})
    ev = obj.evaluate(["CC(=O)Oc1ccccc1C(=O)O"])[0]
    assert ev.score == pytest.approx(-0.550, abs=0.005) and docking.calls == 0 and ev.valid
    text = obj.verbalize(ev, None, None)
    assert "QED drug-likeness: 0.55" in text and "Vina" not in text


def test_baseline_operators_return_valid_new_molecules():
    import random

    obj = MoleculeObjective("PPARA", compare_references=False)
    rng = random.Random(0)
    children = {obj.neighbor("CC(C)Cc1ccc(cc1)C(C)C(=O)O", rng) for _ in range(20)} - {None}
    assert len(children) >= 5 and all(Chem.MolFromSmiles(c) for c in children)
    crosses = {obj.crossover("CC(C)Cc1ccc(cc1)C(C)C(=O)O", "Cc1ccc(C)c(OCCCC(C)(C)C(=O)O)c1", rng) for _ in range(20)} - {None}
    assert crosses and all(Chem.MolFromSmiles(c) for c in crosses)
