"""Untrusted input and damaged state on a shared node: hostile LLM replies, squatted and damaged
caches, two writers on one run, names that try to become paths. Nothing here may end a run with a
traceback, lose a step, or block a run for good."""

import json
import os
import sqlite3
import subprocess
import sys
import time
import warnings

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scripted import NumberObjective, ScriptedEngine, proposals_json

from simulators.cache import CacheDirError, ForeignCacheDirError, ResultCache, private_dir
from simulators.dose.cases import load_case
from simulators.files import slug
from tgsci import optimize
from tgsci.formats import ParseError, parse_proposals, validated
from tgsci.domains.plan.objective import parse_weights
from tgsci.record import RunDirError, append_jsonl, read_jsonl
from tgsci.run_lock import RunLockedError, run_lock

NESTED = "[" * 1000 + "]" * 1000
HUGE = "9" * 4000
HOSTILE_REPLIES = {
    "nested brackets": '{"proposals": ' + NESTED + "}",
    "nested objects": '{"proposals": [' + '{"a":' * 1000 + "1" + "}" * 1000 + "]}",
    "4,000-digit number": '{"proposals": [' + HUGE + "]}",
    "1 MB of text": "x[" * 500_000,
    "NUL bytes": '{"proposals": ["4\x002", "\x00"]}',
    "invalid UTF-8": b'{"proposals": ["\xff\xfe41"]}'.decode("utf-8", "surrogateescape"),
}


# ----------------------------------------------------------------------------- reply and value parsers
@settings(max_examples=300, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=400) | st.from_regex(r'\{"proposals": \[.*', fullmatch=False))
def test_the_reply_parser_is_total(text):
    try:
        values = parse_proposals(text)
    except ParseError:
        return
    assert values and all(isinstance(v, str) for v in values)


@pytest.mark.parametrize("what", list(HOSTILE_REPLIES))
def test_hostile_replies_are_a_parse_error_or_strings(what):
    try:
        values = parse_proposals(HOSTILE_REPLIES[what])
    except ParseError as exc:
        assert str(exc)
    else:
        assert all(isinstance(v, str) for v in values)


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(st.recursive(st.none() | st.booleans() | st.floats(allow_nan=True) | st.integers() | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                    max_leaves=20))
def test_the_plan_value_parser_is_total(data):
    case = load_case("tg119", fast=True)
    for text in (json.dumps(data), json.dumps({"weights": data}), json.dumps({"weights": {"Core": data}})):
        try:
            parse_weights(case, text)
        except ValueError as exc:
            assert str(exc)


@pytest.mark.parametrize("text", ['{"weights": {"Core": ' + HUGE + "}}", '{"weights": ' + NESTED + "}",
                                  '{"weights": {"Core": 1e999}}', "\x00", "{" * 5000])
def test_hostile_plan_values_are_rejected_with_a_reason(text):
    case = load_case("tg119", fast=True)
    with pytest.raises(ValueError) as exc:
        validated(lambda t: parse_weights(case, t), text)
    assert str(exc.value)


def test_a_validator_that_crashes_becomes_a_reason():
    def crashes(text):
        return str(int(text) ** 10**6)  # OverflowError-class failures, RecursionError, ...

    def deep(text):
        raise RecursionError("maximum recursion depth exceeded")

    with pytest.raises(ValueError, match="RecursionError"):
        validated(deep, "x")
    assert validated(lambda t: t.upper(), "ok") == "OK"
    with pytest.raises(ValueError):
        validated(crashes, "not a number")


def test_every_hostile_reply_is_recorded_and_the_run_resumes_to_its_end(tmp_path):
    """Each bad reply is a recorded rejection; the step goes on; killing and resuming replays nothing."""
    replies = []
    for text in HOSTILE_REPLIES.values():
        replies += ["feedback: go higher", text]  # the feedback call, then the proposals call (and its retry)
        replies += [text]
    objective = NumberObjective(target=42)

    def respond(messages, kwargs):
        return replies.pop(0) if replies else proposals_json("41")

    engine = ScriptedEngine(respond=respond)
    steps = len(HOSTILE_REPLIES)
    first = optimize(objective, "10", engine=engine, max_steps=3, n_proposals=1, patience=None, run_dir=tmp_path)
    assert first.stop_reason == "max_steps"
    again = optimize(objective, "10", engine=engine, max_steps=steps + 1, n_proposals=1, patience=None, run_dir=tmp_path)
    records = list(read_jsonl(tmp_path / "trajectory.jsonl"))
    assert [r["step"] for r in records] == list(range(steps + 2))  # no step lost, none repeated
    assert again.stop_reason == "max_steps" and again.best.value == "41"
    failures = [f for r in records[1:steps + 1] for f in r["failures"]]
    assert len(failures) >= steps and all(f["reason"] for f in failures)
    assert not any(r.get("error") for r in records)  # rejected proposals, not failed steps


def test_an_unreadable_reply_is_not_cached(tmp_path, monkeypatch):
    """A resumed run must not replay a reply that did not parse: only parseable replies are cached."""
    from tgsci.engine import Engine, Reply, Usage

    calls = []

    def fake(self, messages, call_kwargs):
        calls.append(1)
        return Reply(text="no json here" if len(calls) == 1 else proposals_json("7"), usage=Usage(calls=1))

    monkeypatch.setattr(Engine, "_call_with_retries", fake)
    engine = Engine("openai/gpt-4o-mini", cache_dir=tmp_path / "llm")
    from tgsci.optim import _parses

    assert engine("same prompt", cache_if=_parses).text == "no json here"
    assert engine("same prompt", cache_if=_parses).text == proposals_json("7")  # asked again, not replayed
    assert engine("same prompt", cache_if=_parses).cached  # the parseable one was kept
    assert len(calls) == 2


def test_the_llm_cache_holds_json_not_pickles(tmp_path, monkeypatch):
    from tgsci.engine import Engine, Reply, Usage

    monkeypatch.setattr(Engine, "_call_with_retries", lambda self, m, k: Reply(text="hello", usage=Usage(calls=1)))
    Engine("openai/gpt-4o-mini", cache_dir=tmp_path / "llm")("hi")
    with sqlite3.connect(tmp_path / "llm" / "llm.sqlite") as conn:
        [(value,)] = conn.execute("SELECT value FROM results").fetchall()
    assert json.loads(value)["text"] == "hello"
    assert oct((tmp_path / "llm").stat().st_mode & 0o777) == "0o700"


# ----------------------------------------------------------------------------- caches
def test_a_squatted_cache_directory_is_refused_naming_its_owner(tmp_path):
    squatted = tmp_path / "shared" / "tgsci"
    squatted.mkdir(parents=True)
    os.chown(squatted, 65534, 65534)  # the tests run as root: hand it to "nobody"
    with pytest.raises(ForeignCacheDirError, match=r"belongs to .*65534"):
        ResultCache(squatted)
    with pytest.raises(ForeignCacheDirError):
        private_dir(squatted)
    mine = private_dir(tmp_path / "new" / "cache")
    assert mine.stat().st_mode & 0o777 == 0o700 and (tmp_path / "new").stat().st_mode & 0o777 == 0o700
    (tmp_path / "open").mkdir(mode=0o777)
    os.chmod(tmp_path / "open", 0o777)
    assert private_dir(tmp_path / "open").stat().st_mode & 0o777 == 0o700  # ours, tightened


def test_a_squatted_cache_stops_a_cli_run_with_the_message(tmp_path):
    squatted = tmp_path / "squat"
    squatted.mkdir()
    os.chown(squatted, 65534, 65534)
    env = {**os.environ, "TGSCI_CACHE_DIR": str(squatted)}
    proc = subprocess.run([sys.executable, "-m", "tgsci.cli", "plan", "--case", "tg119", "--fast",
                           "--method", "random", "--steps", "1", "--run-dir", str(tmp_path / "run")],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr + proc.stdout
    assert "belongs to" in proc.stderr + proc.stdout


@pytest.mark.parametrize("damage", ["garbage", "truncated", "malformed page"])
def test_a_damaged_cache_is_a_miss_moved_aside_and_replaced(tmp_path, damage):
    cache = ResultCache(tmp_path)
    for i in range(200):
        cache.put({"i": i}, {"v": i})
    cache.close()  # checkpointed: every row is in the main file
    path = tmp_path / "results.sqlite"
    data = path.read_bytes()
    if damage == "garbage":
        path.write_bytes(b"not a database at all" * 100)
    elif damage == "truncated":
        path.write_bytes(data[:len(data) // 3])
    else:
        path.write_bytes(data[:4096] + b"\xff" * 4096 + data[8192:])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cache = ResultCache(tmp_path)
        misses = [cache.get({"i": i}) for i in range(200)]
        cache.put({"i": 1}, {"v": "new"})
        assert cache.get({"i": 1}) == {"v": "new"}  # a working cache again
    assert all(m is None or m == {"v": i} for i, m in enumerate(misses))
    aside = sorted(p.name for p in tmp_path.glob("results.sqlite.damaged-*") if not p.name.endswith(("-wal", "-shm")))
    if damage != "truncated" or any(m is None for m in misses):  # a truncated file may still read as a valid prefix
        assert len(aside) == 1 and any(aside[0] in str(w.message) for w in caught)


def test_a_cache_another_process_holds_locked_is_not_set_aside_and_is_used_once_free(tmp_path, monkeypatch):
    """A busy database at open (a sweep's workers all starting at once) is transient, not damage:
    the file and its rows stay, and the cache is used as soon as the lock is gone."""
    monkeypatch.setattr(ResultCache, "busy_timeout", 0.2)
    path = tmp_path / "results.sqlite"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE results (key TEXT PRIMARY KEY, fields TEXT, value TEXT, created REAL)")
    holder.execute("INSERT INTO results VALUES ('k', '{}', '{}', 0)")
    holder.execute("BEGIN EXCLUSIVE")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cache = ResultCache(tmp_path)
        cache.put({"i": 1}, {"v": 1})  # still locked: not written, no error
    assert any("cannot be opened yet" in str(w.message) for w in caught), [str(w.message) for w in caught]
    assert not list(tmp_path.glob("results.sqlite.damaged-*"))
    holder.execute("COMMIT")
    holder.close()
    cache._reopen_after = time.monotonic()  # the retry is due
    cache.put({"i": 1}, {"v": 1})
    assert cache.get({"i": 1}) == {"v": 1} and len(cache) == 2  # the old row kept, the new one written


def test_a_full_disk_is_a_warning_not_a_crash(tmp_path):
    mount = tmp_path / "small"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.fail("could not mount a small tmpfs (the tests run as root)")
    try:
        cache = ResultCache(mount / "cache")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for i in range(400):
                cache.put({"i": i}, {"blob": "x" * 4000})
        assert any("could not write the cache" in str(w.message) for w in caught)
        assert cache.get({"i": 0}) == {"blob": "x" * 4000}  # what fitted is still there
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


# ----------------------------------------------------------------------------- one writer per run
def test_a_second_run_on_one_directory_is_refused_with_the_holder(tmp_path):
    objective = NumberObjective(target=42)
    code = ("import sys, time; sys.path[:0] = sys.argv[2:]; from tgsci.run_lock import run_lock\n"
            "with run_lock(sys.argv[1]):\n    print('held', flush=True); time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", code, str(tmp_path), str(ROOT_CASES.parent.parent)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunLockedError, match=rf"PID {holder.pid} on host"):
            optimize(objective, "10", method="random", max_steps=1, run_dir=tmp_path)
    finally:
        holder.kill()
        holder.wait()
    with warnings.catch_warnings(record=True) as caught:  # the killed holder's lock is taken over
        warnings.simplefilter("always")
        result = optimize(objective, "10", method="random", max_steps=1, run_dir=tmp_path)
    assert result.stop_reason == "max_steps"
    assert any(f"PID {holder.pid}" in str(w.message) and "took over" in str(w.message) for w in caught)
    assert not (tmp_path / ".run.holder.json").exists()


def test_the_lock_is_reentrant_in_one_thread_only(tmp_path):
    import threading

    with run_lock(tmp_path):
        with run_lock(tmp_path):  # a sweep task holds it, the optimize() it calls takes it again
            pass
        errors = []

        def other():
            try:
                with run_lock(tmp_path):
                    pass
            except RunLockedError as exc:
                errors.append(exc)

        thread = threading.Thread(target=other)
        thread.start()
        thread.join()
        assert len(errors) == 1


def test_a_corrupt_middle_line_is_reported_by_its_number(tmp_path):
    path = tmp_path / "trajectory.jsonl"
    for i in range(3):
        append_jsonl(path, {"step": i})
    lines = path.read_text().splitlines(keepends=True)
    lines[1] = '{"step": 1, "broken\n'
    path.write_text("".join(lines))
    with pytest.raises(RunDirError, match="line 2"):
        list(read_jsonl(path))
    path.write_text("".join([lines[0], lines[2], '{"torn": ']))
    assert [r["step"] for r in read_jsonl(path)] == [0, 2]  # a torn tail is skipped ...
    append_jsonl(path, {"step": 3})
    assert [r["step"] for r in read_jsonl(path)] == [0, 2, 3]  # ... and cut before the next append
    path.write_text("".join([lines[0], '{"corrupt last\n']))
    append_jsonl(path, {"step": 1})
    assert [r["step"] for r in read_jsonl(path)] == [0, 1]  # a corrupt complete last line is cut too


# ----------------------------------------------------------------------------- names never become paths
@pytest.mark.parametrize("name", ["../../etc/passwd", "/abs/case.toml", "..", ".hidden", "a/b", "", "x" * 300, "ok-name_1.2"])
def test_slugs_are_one_safe_component(name):
    out = slug(name)
    assert out and "/" not in out and not out.startswith(".") and len(out) <= 60 and out not in (".", "..")
    if name == "ok-name_1.2":
        assert out == name
    assert slug(name) == out and (name == "" or slug(name + "x") != out)


def test_sweep_case_paths_resolve_against_the_sweep_file_and_names_stay_inside(tmp_path):
    from tgsci.sweep.spec import load_spec

    cases = tmp_path / "cases"
    cases.mkdir()
    src = (ROOT_CASES / "tg119.toml").read_text()
    (cases / "mine.toml").write_text(src.replace('name = "tg119"', 'name = "../../escape"'))
    sweeps = tmp_path / "sweeps"
    sweeps.mkdir()
    spec_file = sweeps / "s.toml"
    spec_file.write_text(f'[sweep]\nkind = "plan"\ncases = ["../cases/mine.toml", "{cases / "mine.toml"}"]\n'
                         'method = "random"\n[plan]\nfast = true\n[budget]\nmax_steps = 1\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    cwd = os.getcwd()
    os.chdir(elsewhere)  # relative paths are the sweep file's, not the working directory's
    try:
        spec = load_spec(spec_file)
    finally:
        os.chdir(cwd)
    runs = spec.expand()
    assert len(spec.subjects) == 1 and spec.subjects[0] == str((cases / "mine.toml").resolve())
    for run in runs:
        assert "/" not in run["name"] and not run["name"].startswith(".")
        assert (tmp_path / "out" / run["name"]).resolve().parent == (tmp_path / "out").resolve()


def test_a_case_name_never_becomes_a_cache_path(tmp_path):
    from simulators.dose.matrix import cache_path

    from dataclasses import replace

    case = replace(load_case("tg119", fast=True), name="../../../outside/x")
    path = cache_path(case, tmp_path)
    assert path.parent == tmp_path and "/" not in path.name


from pathlib import Path  # noqa: E402

ROOT_CASES = Path(__file__).resolve().parent.parent / "targets" / "cases"


def test_overlong_smiles_and_huge_receptors_are_refused_before_the_heavy_work(tmp_path):
    from simulators.molecule_checks import MAX_SMILES_CHARS, LigandError, canonical_smiles
    from simulators.receptor import MAX_RECEPTOR_ATOMS, ReceptorError, ReceptorOptions, clean_structure

    with pytest.raises(LigandError, match=f"at most {MAX_SMILES_CHARS}"):
        canonical_smiles("C" * (MAX_SMILES_CHARS + 1))
    assert canonical_smiles("C" * 100) == "C" * 100
    n = MAX_RECEPTOR_ATOMS + 10
    lines = [f"ATOM  {i % 100000:5d}  CA  ALA A{i % 10000:4d}    {i % 97:8.3f}{i % 89:8.3f}{i % 83:8.3f}  1.00  0.00           C"
             for i in range(n)]
    big = tmp_path / "big.pdb"
    big.write_text("\n".join(lines) + "\nEND\n")
    with pytest.raises(ReceptorError, match=f"{n} atoms"):
        clean_structure(big, ReceptorOptions())


def test_two_processes_build_one_dose_matrix_once(tmp_path):
    """Sweep workers on an uncached case: one builds the influence matrix, the other waits and loads it."""
    code = ("import sys; sys.path.insert(0, sys.argv[2]); from simulators.dose.cases import load_case\n"
            "from simulators.dose.matrix import load_or_build\n"
            "data, _ = load_or_build(load_case('tg119', fast=True), __import__('pathlib').Path(sys.argv[1]), check_mem=False)\n"
            "print(data.source, data.matrix.nnz, flush=True)")
    root = str(ROOT_CASES.parent.parent)
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "dose"), root], stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=600)[0].split() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert sorted(o[0] for o in outs) == ["built", "cache"] and outs[0][1] == outs[1][1]
    assert len(list((tmp_path / "dose").glob("*.npz"))) == 1


def test_a_cached_matrix_with_indices_out_of_bounds_is_never_used(tmp_path):
    import numpy as np
    import scipy.sparse as sp

    from simulators.dose.matrix import CaseData, check_data

    def data(indices=(0, 1, 2), rows=(0, 5), mask=(1, 2)):
        matrix = sp.csr_array((np.ones(3, np.float32), np.asarray(indices, np.int32), np.asarray([0, 2, 3], np.int32)), shape=(2, 3))
        return CaseData(key="k", matrix=matrix, rows=np.asarray(rows), grid_dims=(2, 2, 2), grid_spacing=(1, 1, 1),
                        grid_origin=(0, 0, 0), masks={"PTV": np.asarray(mask)}, opt_masks={"PTV": np.asarray(mask)},
                        ct_hu=np.zeros((2, 2, 2), np.float32), beam_num=np.zeros(3, np.int32))

    check_data(data())
    for bad in (data(indices=(0, 7, 2)), data(rows=(0, 8)), data(mask=(1, -1)), data(mask=(1, 99))):
        with pytest.raises(ValueError):
            check_data(bad)


# ----------------------------------------------------------------------------- spec and case parsers
def _leaves(data, path=()):
    if isinstance(data, dict):
        for key, value in data.items():
            yield from _leaves(value, path + (key,))
    elif isinstance(data, list) and data:
        for i, value in enumerate(data):
            yield from _leaves(value, path + (i,))
    yield path


def _mutated(data, path, value):
    import copy

    out = copy.deepcopy(data)
    if not path:
        return value
    node = out
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return out


JUNK = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=12),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
                    max_leaves=8)


@settings(max_examples=150, deadline=None, derandomize=True, database=None)
@given(st.data())
def test_the_case_parser_is_total(data):
    """Any value at any key of a valid case file: a CaseSpec or one ValueError (CaseError) with a reason."""
    import tomllib

    from simulators.dose.cases import parse_case

    base = tomllib.loads((ROOT_CASES / "prostate.toml").read_text())
    paths = [p for p in _leaves(base) if "phantom" not in p[:1]]  # [phantom] paths would read a patient from disk
    path = data.draw(st.sampled_from(paths))
    try:
        parse_case(_mutated(base, path, data.draw(JUNK)), fast=True, manifest="fuzz.toml")
    except ValueError as exc:
        assert str(exc)


@settings(max_examples=150, deadline=None, derandomize=True, database=None)
@given(st.data())
def test_the_sweep_spec_parser_is_total(data):
    from tgsci.domains import SpecError
    from tgsci.sweep.spec import parse_spec

    base = {"sweep": {"kind": "plan", "cases": ["tg119"], "methods": ["random", "tpe"], "seeds": [0, 1], "starts": ["default"]},
            "plan": {"fast": True}, "budget": {"max_steps": 2, "n_proposals": 2, "patience": 3},
            "engine": {"temperature": 0.5}, "resources": {"max_attempts": 2}}
    path = data.draw(st.sampled_from(list(_leaves(base))))
    try:
        parse_spec(_mutated(base, path, data.draw(JUNK)))
    except (SpecError, ValueError) as exc:
        assert str(exc)


def test_receptor_preparation_runs_in_a_child_that_a_timeout_stops(tmp_path):
    from receptor_inputs import rcsb_like_pdb

    from simulators.receptor import ReceptorError, ReceptorOptions, prepare_isolated

    pdb = tmp_path / "thrb.pdb"
    pdb.write_text(rcsb_like_pdb("THRB"))
    with pytest.raises(ReceptorError, match="took longer than 0 s and was stopped"):
        prepare_isolated(pdb, ReceptorOptions(), timeout_s=0.3)
    with pytest.raises(ReceptorError, match="chain\\(s\\) Z not in thrb.pdb"):  # the child's own reason comes back
        prepare_isolated(pdb, ReceptorOptions(chains=("Z",)))


def test_child_pythonpath_keeps_the_working_directory_out():
    """An empty or relative PYTHONPATH entry is read against the working directory: never passed on."""
    from simulators.child import ROOT, child_pythonpath

    assert child_pythonpath("") == ROOT
    assert child_pythonpath(os.pathsep.join(["", "lib", "/opt/site", ".", "/opt/site2", ""])) == os.pathsep.join(
        [ROOT, "/opt/site", "/opt/site2"])


def test_a_module_planted_in_the_working_directory_never_runs_in_the_receptor_child(tmp_path, monkeypatch):
    from receptor_inputs import rcsb_like_pdb

    from simulators.receptor import ReceptorError, ReceptorOptions, prepare_isolated

    work = tmp_path / "work"
    work.mkdir()
    marker = tmp_path / "planted-code-ran"
    (work / "json.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\nraise SystemExit(7)\n")
    pdb = tmp_path / "thrb.pdb"
    pdb.write_text(rcsb_like_pdb("THRB"))
    monkeypatch.chdir(work)
    monkeypatch.setenv("PYTHONPATH", "")  # the shape that put the working directory first: "root:"
    with pytest.raises(ReceptorError, match="chain\\(s\\) Z not in thrb.pdb"):
        prepare_isolated(pdb, ReceptorOptions(chains=("Z",)))
    assert not marker.exists()


def test_limit_memory_caps_the_child():
    import subprocess
    import sys

    from simulators.child import ROOT

    code = ("from simulators.child import limit_memory\nlimit_memory(400)\n"
            "try:\n    b = bytearray(800 * 2**20)\nexcept MemoryError:\n    print('capped')\n")
    done = subprocess.run([sys.executable, "-P", "-c", code], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": ROOT})
    assert done.stdout.strip() == "capped", done.stderr
