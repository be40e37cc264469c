"""The embedded model, for real: litellm custom provider, constrained output, and end-to-end TGD runs."""

import json
import re

import litellm
import pytest
from rdkit import Chem

from tgsci import Engine, optimize
from tgsci.formats import parse_proposals, proposals_grammar
from tgsci.local_llm import register_local_provider
from tgsci.domains.molecule.objective import SMILES_GRAMMAR, MoleculeObjective
from tgsci.record import RunRecord, read_jsonl

pytestmark = pytest.mark.slow


def test_litellm_routes_local_models_to_the_embedded_llama_cpp():
    register_local_provider()
    response = litellm.completion(model="local/smollm2-135m", messages=[{"role": "user", "content": "Say hello."}], max_tokens=8, seed=1)
    assert response.choices[0].message.content.strip()
    assert 0 < response.usage.completion_tokens <= 8 and response.usage.prompt_tokens > 0


def test_grammar_makes_the_small_model_write_valid_smiles_proposals():
    engine = Engine("local/smollm2-135m", cache=False, temperature=0.8)
    reply = engine("Propose 3 drug-like molecules that could bind PPARA.", grammar=proposals_grammar(SMILES_GRAMMAR, 3), max_tokens=256)
    values = parse_proposals(reply.text)
    assert len(values) == 3
    assert all(Chem.MolFromSmiles(v) is not None for v in values), values


def test_json_schema_response_format_is_enforced():
    engine = Engine("local/smollm2-135m", cache=False)
    schema = {"type": "object", "properties": {"score": {"type": "integer"}}, "required": ["score"]}
    reply = engine("Rate aspirin from 1 to 10 as JSON.", response_format={"type": "json_schema", "json_schema": {"name": "r", "schema": schema}}, max_tokens=32)
    assert isinstance(json.loads(reply.text)["score"], int)


def _check_run_dir(run_dir, steps):
    for name in ("config.json", "trajectory.jsonl", "summary.json", "molecules.csv", "trajectory.png"):
        assert (run_dir / name).exists(), name
    records = list(read_jsonl(run_dir / "trajectory.jsonl"))
    assert [r["step"] for r in records] == list(range(steps + 1))
    for rec in records[1:]:
        assert rec["feedback"].strip() and rec["replies"], rec["step"]  # the real model answered both calls
        assert rec["usage"]["calls"] >= 2 and rec["usage"]["prompt_tokens"] > 0
        # every proposal was either evaluated or rejected with a recorded reason
        assert rec["candidates"] or rec["failures"]
        assert all(f["reason"] for f in rec["failures"])
    return records


def test_end_to_end_tgd_with_the_embedded_model_on_qed(tmp_path):
    """8 real steps: at least 7 yield a new valid molecule; LLM time is split and the KV cache reused."""
    objective = MoleculeObjective("PPARA", aggregation="qed", compare_references=False)
    engine = Engine("local/smollm2-135m", temperature=0.8, cache_dir=tmp_path / "llm")
    result = optimize(objective, "c1ccccc1", engine=engine, max_steps=8, n_proposals=2, patience=None, run_dir=tmp_path / "run")
    records = _check_run_dir(tmp_path / "run", 8)
    tried = {"c1ccccc1"}
    productive = 0
    for rec in records[1:]:
        new = {c["value"] for c in rec["candidates"] if c["error"] is None} - tried
        productive += bool(new)
        tried |= {c["value"] for c in rec["candidates"]}
        usage = rec["usage"]
        assert usage["prompt_seconds"] > 0 and usage["generation_seconds"] > 0, usage  # llama.cpp's own split
        # the update call continues the feedback exchange: at least that exchange came from the KV cache
        assert usage["cached_prompt_tokens"] > 100, usage
    assert productive >= 7, [[f["reason"] for f in r["failures"]] for r in records[1:]]
    assert "QED " in records[1]["loss"] and "QED drug-likeness" not in records[1]["loss"]  # the brief form
    # each step's loss is the objective's words (brief, for the embedded model) for the candidate the
    # previous step ended on (the forward pass of the primitives), and the recorded best is the best
    # of everything evaluated
    run = RunRecord.load(tmp_path / "run")
    for prev, rec in zip(run.steps, run.steps[1:]):
        assert rec.loss == objective.verbalize(prev.current, run.steps[0].current, prev.best, brief=True)
    valid = [c for rec in run.steps for c in rec.candidates if c.valid]
    assert result.best.score == min(c.score for c in valid) == run.summary.best.score
    assert result.usage.calls >= 4 and result.usage.calls == sum(rec.usage.calls for rec in run.steps)
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["stop_reason"] == "max_steps"


def test_end_to_end_tgd_with_real_docking(tmp_path):
    from simulators.docking import DockingSettings

    objective = MoleculeObjective("PPARA", docking=DockingSettings(exhaustiveness=1), cache_dir=str(tmp_path / "dock"), compare_references=False)
    engine = Engine("local/smollm2-135m", temperature=0.8, cache_dir=tmp_path / "llm")
    try:
        result = optimize(objective, "c1ccccc1", engine=engine, max_steps=1, n_proposals=2, run_dir=tmp_path / "run")
    finally:
        objective.close()
    _check_run_dir(tmp_path / "run", 1)
    loss = list(read_jsonl(tmp_path / "run" / "trajectory.jsonl"))[1]["loss"]
    assert re.search(r"Vina PPARA -\d+\.\d kcal/mol", loss), loss  # the real docking score, in the brief form
    assert result.start.metrics["vina"] < 0 and (tmp_path / "run" / "best.sdf").read_text().count("$$$$") == 1


def test_the_embedded_model_opens_no_tcp_port():
    """xllamacpp always starts llama.cpp's HTTP listener; tgsci points it at a private Unix socket."""
    import os
    import stat

    import psutil

    from tgsci.local_llm import _servers

    engine = Engine("local/smollm2-135m", cache=False)
    assert engine("Say OK.", max_tokens=4).text
    listening = [c.laddr for c in psutil.Process().net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]
    assert listening == []
    address = _servers["smollm2-135m"].listening_address
    assert address.startswith("unix://")
    folder = os.path.dirname(address.removeprefix("unix://"))
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700  # only this user can reach the socket
