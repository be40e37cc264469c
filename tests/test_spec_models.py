"""Typed specs (tgsci.spec_models): one definition of the budget, errors with key path and line,
and the published JSON Schema (docs/spec.schema.json) kept current and true to what tgsci accepts."""

import json
import tomllib
from pathlib import Path

import jsonschema
import pytest

from tgsci import optimize
from tgsci.domains import SpecError, check_spec
from tgsci.spec_models import Budget, schema_text
from tgsci.sweep.spec import load_spec

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = ROOT / "docs" / "spec.schema.json"

MOLECULE = """
[sweep]
targets = ["PPARA"]
starts = ["CCO"]
method = "random"
"""
PLAN = """
[sweep]
kind = "plan"
cases = ["tg119"]
method = "random"
"""


def _validator():
    return jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text(encoding="utf-8")))


def _spec(tmp_path, text: str) -> Path:
    path = tmp_path / "spec.toml"
    path.write_text(text.strip() + "\n", encoding="utf-8")
    return path


def _error(path: Path) -> str:
    with pytest.raises(SpecError) as err:
        load_spec(path)
    return str(err.value)


def test_the_published_schema_is_current():
    assert SCHEMA.read_text(encoding="utf-8") == schema_text(), "run: tgsci schema -o docs/spec.schema.json"


def test_the_schema_accepts_every_example_and_refuses_what_tgsci_refuses(tmp_path):
    validator = _validator()
    examples = sorted((ROOT / "examples").glob("*.toml"))
    assert len(examples) >= 3
    for path in examples:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        assert not list(validator.iter_errors(data)), path.name
        load_spec(path)  # and tgsci reads each
    for bad in (MOLECULE + "[budget]\nmax_step = 3\n", MOLECULE + "[budget]\npatience = true\n",
                MOLECULE + "[docking]\nexhaustiveness = 0\n", MOLECULE + "[objective]\ntarget = \"THRB\"\n",
                PLAN + "[plan]\nmax_iter = \"many\"\n", PLAN + "[resources]\ndocking_workers = 2\n",
                MOLECULE + "[engine]\nrequests_per_minute = 0\n"):
        assert list(validator.iter_errors(tomllib.loads(bad))), bad  # the editor flags it
        with pytest.raises(SpecError):
            load_spec(_spec(tmp_path, bad))  # and so does tgsci


def test_shared_tables_name_the_key_path_the_rule_and_the_line(tmp_path):
    msg = _error(_spec(tmp_path, MOLECULE + "\n[budget]\nmax_steps = 2\npatience = true\n"))
    assert "line 8: budget.patience must be an integer >= 0" in msg and "not True" in msg
    msg = _error(_spec(tmp_path, MOLECULE + "\n[engine]\nrequests_per_minute = 0\n"))
    assert "line 7: engine.requests_per_minute must be a number > 0" in msg
    msg = _error(_spec(tmp_path, MOLECULE + "\n[resources]\ndocking_workers = -1\n"))
    assert "line 7: resources.docking_workers must be an integer >= 0" in msg
    msg = _error(_spec(tmp_path, PLAN + "\n[resources]\ndocking_workers = 2\n"))  # a molecule domain's resource
    assert "line 7: resources.docking_workers is not for kind = 'plan'" in msg
    msg = _error(_spec(tmp_path, PLAN + "\n[resources]\nn_worker = 2\n"))
    assert "line 7: unknown key 'resources.n_worker' (did you mean 'n_workers'?)" in msg
    msg = _error(_spec(tmp_path, MOLECULE.replace('starts = ["CCO"]', "starts = []")))
    assert "line 3: sweep.starts must be a non-empty string or list" in msg
    msg = _error(_spec(tmp_path, MOLECULE.replace('method = "random"', 'method = "random"\nseeds = 0')))
    assert "line 5: sweep.seeds must be a count" in msg
    msg = _error(_spec(tmp_path, MOLECULE + "\n[docking]\nexhaustiveness = 2\nlimits = {max_heavy_atoms = 0}\n"))
    assert "line 8: docking.limits.max_heavy_atoms must be an integer >= 1, not 0" in msg  # an inline table's line
    msg = _error(_spec(tmp_path, MOLECULE + "\n[objective]\ntarget = \"THRB\"\n"))
    assert "line 7: objective.target is set by [sweep] (targets)" in msg


def test_domain_options_are_typed_with_the_rule_in_the_message():
    with pytest.raises(SpecError, match=r"docking_workers must be an integer >= 0 .*not True"):
        check_spec({"target": "PPARA", "docking_workers": True})
    with pytest.raises(SpecError, match=r"qed_weight must be a finite number, not nan"):
        check_spec({"target": "PPARA", "qed_weight": float("nan")})
    with pytest.raises(SpecError) as err:
        check_spec({"target": "PPARA", "docking": {"limits": {"max_heavy_atoms": "60"}}})
    assert "docking.limits.max_heavy_atoms must be an integer >= 1" in str(err.value)
    assert (err.value.key, err.value.table) == ("max_heavy_atoms", "docking.limits")
    with pytest.raises(SpecError, match=r"tune must be \[\"weights\"\] or"):
        check_spec({"kind": "plan", "case": "tg119", "tune": ["dose_levels"]})
    spec = check_spec({"target": "PPARA", "off_targets": "THRB"})
    assert spec["off_targets"] == ["THRB"]  # one name is a list of one


def test_optimize_and_sweep_files_share_one_budget_definition():
    def fn(value):
        return float(len(value)), "shorter is better"

    with pytest.raises(ValueError, match=r"max_steps must be an integer >= 0, not -1"):
        optimize(fn, "abc", describe="short", max_steps=-1)
    with pytest.raises(ValueError, match=r"stop_when must be \"all_goals_met\""):
        optimize(fn, "abc", describe="short", stop_when="never")
    with pytest.raises(ValueError, match=r"min_improvement must be a number >= 0"):
        optimize(fn, "abc", describe="short", min_improvement=-0.1)
    assert Budget().as_dict() == {"max_steps": 10, "n_proposals": 4, "max_evaluations": None, "patience": 3,
                                  "min_improvement": 0.0, "target_score": None, "stop_when": None}
    assert Budget.checked({"patience": 0}).as_dict()["patience"] is None  # 0: no early stopping


def test_the_spec_models_match_the_simulators_settings_they_describe():
    """The schema's defaults are the simulators' own: a drift would document one thing and run another."""
    from dataclasses import asdict

    from simulators.docking import DockingSettings
    from simulators.receptor import ReceptorOptions
    from tgsci.domains.molecule.spec import DockingTable, PrepareTable

    assert DockingTable().model_dump() == asdict(DockingSettings())
    prepare = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(ReceptorOptions()).items()}
    assert PrepareTable().model_dump() == prepare
    with pytest.raises(SpecError, match=r"docking.writer must be \"meeko\" or \"openbabel\", not 'obabel'"):
        check_spec({"target": "PPARA", "docking": {"writer": "obabel"}})


def test_python_values_a_notebook_computes_pass_and_are_stored_as_plain_numbers():
    import numpy as np

    spec = check_spec({"kind": "plan", "case": "tg119", "fast": True, "gantry_angles": list(np.arange(0, 360, 72)),
                       "bixel_width_mm": np.int64(10)})
    assert spec["gantry_angles"] == [0, 72, 144, 216, 288] and type(spec["gantry_angles"][0]) is int
    assert check_spec(json.loads(json.dumps(spec))) == spec  # a run record's spec builds the same objective
    assert check_spec({"target": "PPARA", "qed_weight": np.float64(5.0), "docking": None})["docking"] == {}
    assert check_spec({"target": "PPARA", "docking": {"limits": None}})["docking"] == {"limits": None}

    def fn(value):
        return float(len(value)), "shorter is better"

    result = optimize(fn, "abc", describe="short", max_steps=np.int64(0), n_proposals=np.int32(2))
    assert result.stop_reason == "max_steps"


def test_errors_inside_lists_tables_and_moved_keys_name_the_item_and_the_line(tmp_path):
    msg = _error(_spec(tmp_path, MOLECULE + "\n[objective]\ngoals = [{metric = \"vina\", op = \"<\", value = -9}]\n"))
    assert "line 7: goals[0].op must be \"<=\" or \">=\", not '<'" in msg
    msg = _error(_spec(tmp_path, MOLECULE + "\n[objective]\nobjectives = [\"vina\", \"qed\"]\nreference_point = {vina = \"x\"}\n"))
    assert "line 8: reference_point.vina: input should be a valid number, not 'x'" in msg
    msg = _error(_spec(tmp_path, MOLECULE + "\n[objective.prepare]\nchains = 3\n"))
    assert "line 7: prepare.chains must be a list of chain ids" in msg
    msg = _error(_spec(tmp_path, MOLECULE + "\n[objective]\ndocking = {exhaustiveness = 2}\n"))
    assert "line 7: objective.docking goes in [docking] of a sweep file" in msg  # it was silently dropped
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    assert "docking" not in schema["$defs"]["MoleculeObjectiveTable"]["properties"]
