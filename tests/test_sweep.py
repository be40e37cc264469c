"""Sweeps on real Dask clusters with real docking: kill and resume without repeating work,
an external scheduler with a worker killed mid-run, an LLM provider that is down, spec
errors, the lock, and the report.

Budgets are tiny (exhaustiveness 1, one or three steps, one proposal) so the file runs in a
few minutes on 2 cores; the docking, the cache and the Dask processes are all real.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from simulators.files import read_json
from tgsci.metrics import top_k_auc
from tgsci.record import read_jsonl
from tgsci.sweep import (
    LimitedEngine,
    SpecError,
    SweepLockedError,
    load_spec,
    run_name,
    run_sweep,
    sweep_lock,
)
from tgsci.sweep.report import report_sweep

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
KILL_TARGETS = ["PPARA", "ABL1", "JAK2", "PTGS2", "ACHE", "ESR1"]
STARTS = ["c1ccccc1", "CCO"]


def write_spec(path: Path, body: str) -> Path:
    path.write_text(body.strip() + "\n", encoding="utf-8")
    return path


def tiny_spec(path: Path, targets, methods=("random",), max_steps=1, extra="") -> Path:
    """A small sweep at exhaustiveness 1; no multi-seed confirmation (tests/test_confirmation.py tests it)."""
    confirm = "confirm_seeds = 1\n"
    extra = extra.replace("[objective]\n", "[objective]\n" + confirm) if "[objective]\n" in extra else extra + "\n[objective]\n" + confirm
    return write_spec(path, f"""
[sweep]
name = "test"
kind = "molecule"
targets = {json.dumps(list(targets))}
starts = {json.dumps(STARTS if len(targets) > 1 else STARTS[1:])}
seeds = [0]
methods = {json.dumps(list(methods))}

[budget]
max_steps = {max_steps}
n_proposals = 1
patience = 0

[docking]
exhaustiveness = 1
cpu = 1
{extra}
""")


def install_insert_log(db: Path) -> None:
    """Log every row the docking cache ever writes (a REPLACE of an existing key included):
    the number of dockings that completed, across killed and resumed processes."""
    db.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(db)
    con.executescript("""
        CREATE TABLE IF NOT EXISTS results (key TEXT PRIMARY KEY, fields TEXT, value TEXT, created REAL);
        CREATE TABLE insert_log (key TEXT);
        CREATE TRIGGER log_insert AFTER INSERT ON results BEGIN INSERT INTO insert_log VALUES (new.key); END;
    """)
    con.close()


def cache_counts(db: Path) -> tuple[int, int, int]:
    con = sqlite3.connect(db)
    try:
        rows = con.execute("SELECT COUNT(*) FROM results").fetchone()[0]
        inserts = con.execute("SELECT COUNT(*) FROM insert_log").fetchone()[0]
        distinct = con.execute("SELECT COUNT(DISTINCT key) FROM insert_log").fetchone()[0]
    finally:
        con.close()
    return rows, inserts, distinct


def docked_pairs(out: Path) -> set[tuple[str, str]]:
    """Distinct (SMILES, target) pairs with a Vina score in all run trajectories."""
    pairs = set()
    for run in read_json(out / "sweep.json")["runs"]:
        for rec in read_jsonl(out / run["name"] / "trajectory.jsonl"):
            for c in rec["candidates"]:
                if f"vina_{run['target']}" in (c.get("metrics") or {}):
                    pairs.add((c["value"], run["target"]))
    return pairs


def uncached_pairs(db: Path, pairs: set[tuple[str, str]]) -> list[tuple[str, str]]:
    """The docked pairs whose SMILES the cache never saw (to name them when the counts differ)."""
    con = sqlite3.connect(db)
    try:
        cached = {json.loads(f)["smiles"] for (f,) in con.execute("SELECT fields FROM results")}
    finally:
        con.close()
    return sorted(p for p in pairs if p[0] not in cached)


def finished_runs(out: Path) -> set[str]:
    done = set()
    if not out.exists():
        return done
    for d in out.iterdir():
        s = d / "summary.json"
        if s.exists():
            try:
                if read_json(s).get("finished"):
                    done.add(d.name)
            except (OSError, ValueError):
                pass
    return done


def midway_runs(out: Path) -> set[str]:
    """Runs with a recorded step and no summary yet."""
    if not out.exists():
        return set()
    return {d.name for d in out.iterdir() if (d / "trajectory.jsonl").exists() and not (d / "summary.json").exists()
            and any(True for _ in read_jsonl(d / "trajectory.jsonl"))}


def kill_group(proc: subprocess.Popen, sig=signal.SIGKILL) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def wait_group_gone(pgid: int, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    return False


# ----------------------------------------------------------------------------- spec errors
def test_unknown_target_fails_before_anything_starts(tmp_path):
    spec = tiny_spec(tmp_path / "s.toml", ["PPARA", "NOTATARGET"])
    out = tmp_path / "out"
    with pytest.raises(SpecError) as err:
        run_sweep(spec, out, n_workers=1)
    msg = str(err.value)
    assert "NOTATARGET" in msg and "Valid targets" in msg and "PPARA" in msg and "THRB" in msg
    assert "line 4" in msg  # the targets line
    assert not out.exists()  # nothing started, nothing written


def test_malformed_toml_reports_the_line(tmp_path):
    spec = write_spec(tmp_path / "s.toml", """
[sweep]
targets = ["PPARA"]
starts = ["CCO"
method = "random"
""")
    with pytest.raises(SpecError) as err:
        load_spec(spec)
    assert "line 4" in str(err.value) or "line 5" in str(err.value), str(err.value)
    assert "invalid TOML" in str(err.value)


def test_unknown_and_missing_keys_are_named(tmp_path):
    spec = tiny_spec(tmp_path / "s.toml", ["PPARA"])
    text = spec.read_text().replace("max_steps = 1", "max_step = 1")
    spec.write_text(text)
    with pytest.raises(SpecError) as err:
        load_spec(spec)
    msg = str(err.value)
    assert "'budget.max_step'" in msg and "did you mean 'max_steps'" in msg
    assert f"line {text.splitlines().index('max_step = 1') + 1}" in msg

    spec.write_text(text.replace("max_step = 1", "max_steps = 1").replace('starts = ["CCO"]\n', ""))
    with pytest.raises(SpecError, match=r"missing key sweep\.starts"):
        load_spec(spec)

    spec.write_text(text.replace("max_step = 1", "max_steps = 1").replace("[docking]", "[dockin]"))
    with pytest.raises(SpecError, match=r"unknown table 'dockin'.*did you mean 'docking'"):
        load_spec(spec)

    spec.write_text(text.replace("max_step = 1", "max_steps = 1").replace('methods = ["random"]', 'methods = ["randm"]'))
    with pytest.raises(SpecError, match=r"unknown method 'randm'"):
        load_spec(spec)


def test_expansion_is_deterministic_and_all_means_every_target(tmp_path):
    spec = write_spec(tmp_path / "s.toml", """
[sweep]
targets = "all"
starts = ["c1ccccc1", "OCC"]
seeds = 2
methods = ["tgd", "random"]
""")
    s = load_spec(spec)
    runs = s.expand()
    assert len(runs) == 58 * 2 * 2 * 2
    assert s.starts == ["c1ccccc1", "CCO"]  # canonical SMILES
    names = [r["name"] for r in runs]
    assert len(set(names)) == len(names)
    assert names[0] == run_name("ABL1", 0, "c1ccccc1", 0, "tgd") and names[0].startswith("ABL1__start0-")
    assert [r["name"] for r in load_spec(spec).expand()] == names
    assert runs[0]["budget"]["max_steps"] == 10
    # docking layout left to the run (simulators.docking.docking_layout on its share of the cores)
    assert runs[0]["objective"] == {"kind": "molecule", "target": "ABL1", "aggregation": "dockstring", "off_targets": [],
                                    "docking": {}, "docking_workers": 0}


def test_objective_and_plan_tables_are_checked_when_the_file_is_read(tmp_path):
    """A typo in [plan] or [objective] is a spec error with its line, never a Dask task that fails and retries."""
    plan = write_spec(tmp_path / "plan.toml", """
[sweep]
kind = "plan"
cases = ["tg119"]
method = "random"

[plan]
fast = true
dose_grid = 4
""")
    with pytest.raises(SpecError) as err:
        load_spec(plan)
    assert "unknown option 'dose_grid'" in str(err.value) and "did you mean 'dose_grid_mm'" in str(err.value)
    assert "line 8" in str(err.value)  # the dose_grid line
    plan.write_text(plan.read_text().replace("dose_grid = 4", "max_iter = \"many\""))
    with pytest.raises(SpecError, match="line 8: max_iter must be an integer >= 1, not 'many'"):
        load_spec(plan)
    plan.write_text(plan.read_text().replace('max_iter = "many"', "").replace('method = "random"', 'starts = [\'{"BODY": 1}\']\nmethod = "random"'))
    with pytest.raises(SpecError, match=r"line 4: start .* is not a weight vector of case tg119: missing weight"):
        load_spec(plan)
    molecule = tiny_spec(tmp_path / "m.toml", ["PPARA"], extra="[objective]\naggregation = \"vinaa\"")
    line = molecule.read_text().splitlines().index('aggregation = "vinaa"') + 1
    with pytest.raises(SpecError, match=f"line {line}: aggregation must be one of dockstring, vina, qed"):
        load_spec(molecule)
    molecule = tiny_spec(tmp_path / "m.toml", ["PPARA"], methods=("tpe",))
    with pytest.raises(SpecError, match="method 'tpe' does not apply to kind = 'molecule'"):
        load_spec(molecule)
    plan.write_text(plan.read_text().replace('kind = "plan"', 'kind = "plan"\ntargets_file = "my_targets.toml"'))
    with pytest.raises(SpecError, match=r"line 3: sweep.targets_file is not for kind = 'plan'"):  # a molecule domain's key
        load_spec(plan)


def test_top_k_auc_follows_the_pmo_definition():
    # k=2, budget 5: top-2 means after each evaluation 3, 2, 1.5 then carried: (3+2+1.5*3)/5
    assert top_k_auc([3.0, 1.0, 2.0], budget=5, k=2) == pytest.approx(1.9)
    # a failed evaluation (None) uses budget but adds no score; early values take the first score
    assert top_k_auc([None, 4.0, 2.0], budget=3, k=10) == pytest.approx((4 + 4 + 3) / 3)
    assert top_k_auc([None, None], budget=4) is None


def test_limited_engine_holds_the_semaphore_around_each_call():
    from scripted import ScriptedEngine

    sem = threading.Semaphore(1)
    seen = []

    def respond(messages, kwargs):
        seen.append(sem.acquire(blocking=False))  # False: the wrapper holds the only lease
        return "ok"

    inner = ScriptedEngine(respond=respond)
    engine = LimitedEngine(inner, sem)
    assert engine("hi").text == "ok" and engine("again").text == "ok"
    assert seen == [False, False] and sem.acquire(blocking=False)  # released after each call
    assert engine.model == inner.model and engine.usage is inner.usage and engine.usage.calls == 2
    assert engine.describe() == inner.describe() and engine.requests is inner.requests


def test_a_second_sweep_on_a_locked_directory_is_refused(tmp_path):
    spec = tiny_spec(tmp_path / "s.toml", ["PPARA"])
    out = tmp_path / "out"
    with sweep_lock(out) as lock_path:
        with pytest.raises(SweepLockedError) as err:
            run_sweep(spec, out, n_workers=1)
    assert str(lock_path) in str(err.value) and "another sweep" in str(err.value)
    assert not (out / "sweep.json").exists()


def test_failed_runs_are_retried_up_to_max_attempts_and_resumed_by_a_later_sweep(tmp_path):
    from distributed import Client, LocalCluster
    from filelock import FileLock

    spec = tiny_spec(tmp_path / "s.toml", ["PPARA"], max_steps=0,
                     extra="[resources]\nmax_attempts = 2\nrun_lock_timeout_s = 0")
    out = tmp_path / "out"
    name = run_name("PPARA", 0, "CCO", 0, "random")
    (out / name).mkdir(parents=True)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster, \
            Client(cluster) as client:
        with FileLock(str(out / name / ".run.lock")):  # another process is inside this run directory
            first = run_sweep(spec, out, scheduler=client)
        assert first.status == {name: "failed"} and first.submitted == 2  # tried, retried, given up
        st = read_json(out / "status.json")["runs"][name]
        assert st["failures"] == 2 and st["attempts"] == 2 and "is in use by another process" in st["errors"][-1]
        assert report_sweep(out, plot=False).rows[0]["status"] == "failed"

        second = run_sweep(spec, out, scheduler=client)  # at the limit: left as failed
        assert second.submitted == 0 and second.status == {name: "failed"}

        third = run_sweep(spec, out, scheduler=client, max_attempts=3)  # a higher limit: retried, finishes
        assert third.submitted == 1 and third.status == {name: "finished"}
    assert read_json(out / name / "summary.json")["finished"]
    assert [a["status"] for a in read_json(out / name / "sweep_run.json")["attempts"]] == ["finished"]


# ----------------------------------------------------------------------------- LocalCluster: kill and resume
def test_killed_sweep_resumes_to_completion_without_docking_twice(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("TGSCI_CACHE_DIR", str(cache))
    db = cache / "results.sqlite"
    install_insert_log(db)
    spec = tiny_spec(tmp_path / "sweep.toml", KILL_TARGETS, extra="[objective]\ncompare_references = false")
    out = tmp_path / "out"
    n_runs = len(KILL_TARGETS) * len(STARTS)
    code = "import sys; from tgsci.sweep import run_sweep; run_sweep(sys.argv[1], sys.argv[2], n_workers=2)"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    log = open(tmp_path / "first.log", "w")
    proc = subprocess.Popen([sys.executable, "-c", code, str(spec), str(out)], env=env, cwd=tmp_path,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    locked_refused = None
    try:
        deadline = time.monotonic() + 240
        # kill once 3 runs have finished and another is between its steps (resumed from its run dir)
        while len(finished_runs(out)) < 3 or not midway_runs(out):
            assert proc.poll() is None, f"the sweep ended before it was killed:\n{(tmp_path / 'first.log').read_text()[-3000:]}"
            assert time.monotonic() < deadline, "no run finished in time"
            if locked_refused is None and (out / "sweep.json").exists():
                with pytest.raises(SweepLockedError) as err:  # the first sweep holds the lock
                    run_sweep(spec, out, n_workers=1)
                locked_refused = str(err.value)
            time.sleep(0.2)
        kill_group(proc)  # SIGKILL the sweep, its Dask workers and their docking processes
        killed_at = time.time()
    finally:
        kill_group(proc)
        proc.wait(30)
        log.close()
    assert wait_group_gone(proc.pid), "processes of the killed sweep survived"
    assert locked_refused and str(out / "sweep.lock") in locked_refused

    before = finished_runs(out)
    midway = midway_runs(out)
    assert 3 <= len(before) < n_runs and midway, (before, midway)
    mtimes = {n: (out / n / "summary.json").stat().st_mtime_ns for n in before}
    status = read_json(out / "status.json")["runs"]
    assert any(s["status"] in ("running", "queued") for s in status.values())  # killed mid-sweep

    result = run_sweep(spec, out, n_workers=2)
    assert result.ok, result.status
    assert result.skipped == len(before) and result.submitted == n_runs - len(before)

    for name in result.runs:
        steps = [r["step"] for r in read_jsonl(out / name / "trajectory.jsonl")]
        assert steps == [0, 1], (name, steps)  # no step lost, none repeated
        attempts = read_json(out / name / "sweep_run.json")["attempts"]
        if name in before:
            assert len(attempts) == 1 and (out / name / "summary.json").stat().st_mtime_ns == mtimes[name]
        if name in midway:  # resumed: step 0 is the one written before the kill
            assert len(attempts) == 2 and attempts[0]["status"] == "running"
            assert next(read_jsonl(out / name / "trajectory.jsonl"))["time"] < killed_at
    status = read_json(out / "status.json")["runs"]
    assert all(s["status"] == "finished" and s["failures"] == 0 for s in status.values())

    pairs = docked_pairs(out)
    rows, inserts, distinct_keys = cache_counts(db)
    # every (SMILES, target) was docked exactly once over both sweeps (the killed one included)
    assert inserts == distinct_keys == rows == len(pairs), (
        (inserts, distinct_keys, rows, len(pairs)), uncached_pairs(db, pairs), (tmp_path / "first.log").read_text()[-3000:])
    assert len(pairs) >= 2 * n_runs - 1  # start + one proposal per run (a proposal may coincide)
    reported = sum(read_json(out / n / "sweep_run.json")["simulations"] for n in result.runs)
    assert reported <= inserts  # a docking finished just before the kill is reported by nobody

    # a third invocation has nothing to do
    again = run_sweep(spec, out, n_workers=1)
    assert again.ok and again.submitted == 0 and again.skipped == n_runs


# ----------------------------------------------------------------------------- external scheduler
@pytest.fixture(scope="module")
def scheduler_sweep(tmp_path_factory):
    """A `dask scheduler` and a `dask worker` on 127.0.0.1; the worker is SIGKILLed in the middle
    of a run and a second one started. Methods: random (finishes) and tgd against an LLM
    endpoint that refuses connections (fails with engine_error)."""
    base = tmp_path_factory.mktemp("sched")
    cache = base / "cache"
    env = {**os.environ, "TGSCI_CACHE_DIR": str(cache), "PYTHONPATH": str(ROOT)}
    spec = tiny_spec(base / "sweep.toml", ["PTGS2"], methods=("random", "tgd"), max_steps=3, extra="""
[objective]
compare_references = true

[engine]
model = "hosted_vllm/down"
api_base = "http://127.0.0.1:9/v1"
max_retries = 0

[resources]
llm_concurrency = 1
""")
    out = base / "out"
    sched_file = base / "scheduler.json"
    procs: list[subprocess.Popen] = []

    def start(args, name):
        log = open(base / f"{name}.log", "w")
        p = subprocess.Popen([str(BIN / "dask"), *args], env=env, cwd=base, stdout=log, stderr=subprocess.STDOUT,
                             start_new_session=True)
        procs.append(p)
        return p

    def start_worker(name):
        return start(["worker", "--scheduler-file", str(sched_file), "--nworkers", "1", "--nthreads", "1",
                      "--host", "127.0.0.1", "--no-dashboard", "--name", name], name)

    saved_env = os.environ.get("TGSCI_CACHE_DIR")
    os.environ["TGSCI_CACHE_DIR"] = str(cache)  # the client side (spec checks) uses the same cache
    box: dict = {}
    try:
        start(["scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard", "--scheduler-file", str(sched_file)], "scheduler")
        deadline = time.monotonic() + 60
        while not sched_file.exists():
            assert time.monotonic() < deadline, "the dask scheduler did not start"
            time.sleep(0.2)
        time.sleep(0.3)
        address = json.loads(sched_file.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:")
        worker_a = start_worker("worker-a")

        def target():
            try:
                box["result"] = run_sweep(spec, out, scheduler=address)
            except BaseException as exc:  # reported by the test
                box["error"] = exc

        thread = threading.Thread(target=target, daemon=True)
        thread.start()
        victim = run_name("PTGS2", 0, "CCO", 0, "random")
        deadline = time.monotonic() + 180
        while True:  # kill worker A once the random run has a recorded step but has not finished
            steps = list(read_jsonl(out / victim / "trajectory.jsonl"))
            if steps and not (out / victim / "summary.json").exists():
                break
            assert thread.is_alive() and not (out / victim / "summary.json").exists(), \
                f"the run finished before the worker could be killed: {box}"
            assert time.monotonic() < deadline, "the run did not start"
            time.sleep(0.05)
        kill_group(worker_a)
        worker_a.wait(30)
        killed_at = time.time()
        killed_steps = [r["step"] for r in read_jsonl(out / victim / "trajectory.jsonl")]
        start_worker("worker-b")
        thread.join(240)
        assert not thread.is_alive(), "the sweep did not finish after the worker was replaced"
        yield {"out": out, "address": address, "victim": victim, "killed_at": killed_at,
               "killed_steps": killed_steps, **box}
    finally:
        for p in reversed(procs):
            kill_group(p, signal.SIGTERM)
        for p in reversed(procs):
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                kill_group(p)
                p.wait(10)
        if saved_env is None:
            os.environ.pop("TGSCI_CACHE_DIR", None)
        else:
            os.environ["TGSCI_CACHE_DIR"] = saved_env


def test_external_scheduler_survives_a_dead_worker_and_reports_engine_errors(scheduler_sweep):
    assert "error" not in scheduler_sweep, scheduler_sweep.get("error")
    result = scheduler_sweep["result"]
    out, victim = scheduler_sweep["out"], scheduler_sweep["victim"]
    tgd = run_name("PTGS2", 0, "CCO", 0, "tgd")
    assert result.status == {victim: "finished", tgd: "failed"}
    assert result.dashboard_link is None  # --no-dashboard

    # the killed run was retried on the other worker and resumed: its steps were kept, not redone
    records = list(read_jsonl(out / victim / "trajectory.jsonl"))
    assert [r["step"] for r in records] == [0, 1, 2, 3]
    assert scheduler_sweep["killed_steps"] and records[0]["time"] < scheduler_sweep["killed_at"]
    attempts = read_json(out / victim / "sweep_run.json")["attempts"]
    assert len(attempts) == 2 and attempts[0]["status"] == "running" and attempts[1]["status"] == "finished"
    assert attempts[0]["worker"] != attempts[1]["worker"]
    assert read_json(out / victim / "summary.json")["stop_reason"] == "max_steps"

    # LLM provider down: optimize stops after 3 engine errors; the sweep reports it as failed
    summary = read_json(out / tgd / "summary.json")
    assert summary["stop_reason"].startswith("engine_error") and "Connection refused" in summary["stop_reason"]
    st = read_json(out / "status.json")["runs"][tgd]
    assert st["status"] == "failed" and st["failures"] == 1 and "engine_error" in st["errors"][-1]


def test_report_lists_every_run_marks_failures_and_compares_with_reference_drugs(scheduler_sweep):
    out = scheduler_sweep["out"]
    report = report_sweep(out)
    with open(out / "summary.csv", newline="") as handle:
        rows = {r["method"]: r for r in csv.DictReader(handle)}
    assert set(rows) == {"random", "tgd"}  # one row per run
    ok, failed = rows["random"], rows["tgd"]
    assert ok["status"] == "finished" and float(ok["best_vina"]) < 0 and 0 < float(ok["best_qed"]) <= 1
    assert ok["best_smiles"] and ok["evaluations"] == "4" and ok["stop_reason"] == "max_steps"
    assert float(ok["auc_top10"]) >= float(ok["best_score"])  # mean of top-10 over the budget >= the best
    assert int(ok["simulations"]) >= 1 and float(ok["wall_s"]) > 0 and ok["attempts"] == "2"
    assert failed["status"] == "failed" and failed["error"].startswith("engine_error")
    assert failed["best_score"] == failed["best_vina"] == failed["best_smiles"] == failed["auc_top10"] == ""

    with open(out / "targets.csv", newline="") as handle:
        (target,) = list(csv.DictReader(handle))
    assert target["target"] == "PTGS2" and target["finished"] == "1" and target["failed"] == "1"
    assert target["ref_name"] == "celecoxib" and float(target["ref_vina"]) < 0
    assert float(target["delta_vina"]) == pytest.approx(float(ok["best_vina"]) - float(target["ref_vina"]), abs=1e-3)
    assert float(ok["ref_best_vina"]) == pytest.approx(float(target["ref_vina"]))

    png = out / "summary.png"
    assert report.paths["summary.png"] == png and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 20_000
    assert report.by_status() == {"finished": 1, "failed": 1}


def test_a_spec_error_inside_a_task_is_not_retried(tmp_path):
    """A run dict whose objective spec is bad (e.g. a sweep.json edited by hand) fails once, with the reason."""
    from tgsci.sweep import run_task

    run = {"name": "bad", "kind": "plan", "start": "default", "seed": 0, "method": "random",
           "budget": {"max_steps": 1, "n_proposals": 1, "max_evaluations": None, "patience": None, "min_improvement": 0.0, "target_score": None},
           "engine": {}, "objective": {"kind": "plan", "case": "no-such-case"}}
    result = run_task(run, str(tmp_path))
    assert result["status"] == "error" and result["retryable"] is False and "unknown case 'no-such-case'" in result["error"]
    assert read_json(tmp_path / "bad" / "sweep_run.json")["attempts"][0]["status"] == "error"


def test_the_local_cluster_admits_only_this_sweeps_credentials():
    """Another user of the machine who finds the scheduler's port cannot connect (and so cannot run
    code as the sweep's user); the dashboard listens on loopback."""
    from distributed import Client
    from distributed.security import Security

    from tgsci.sweep.client import _client

    with _client(None, 1, {}) as client:
        address = client.scheduler.address
        assert address.startswith("tls://127.0.0.1:")
        assert client.submit(lambda x: x + 1, 1).result(timeout=60) == 2  # the sweep's own client works
        dashboard = client.scheduler_info()["services"].get("dashboard")
        assert dashboard is None or "127.0.0.1" in client.dashboard_link
        for attempt in ({}, {"security": Security.temporary()}):  # no credentials; someone else's
            with pytest.raises((OSError, TypeError)):
                Client(address, timeout="5s", **attempt)
        with pytest.raises(OSError):
            Client(address.replace("tls://", "tcp://"), timeout="5s")
