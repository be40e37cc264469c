"""The worker side of a sweep: one run as one Dask task.

The task builds its objective from the run's checked spec (``tgsci.domains.build_objective``)
and its engines inside the worker, calls ``optimize()`` on its run directory, and keeps
``sweep_run.json`` (one entry per attempt: worker, wall times, simulations actually run)
up to date after every step. It never raises for a run's own failure: it returns a status.
"""

from __future__ import annotations

import os
import socket
import time
import traceback
from pathlib import Path
from typing import Optional

from simulators.files import read_json, write_json_atomic

RUN_FILE = "sweep_run.json"


class LimitedEngine:
    """An Engine whose calls each hold one lease of a (distributed) semaphore.

    Same interface as Engine for the loop: ``__call__``, ``.model``, ``.usage``, ``.describe()``;
    anything else is read from the wrapped engine.
    """

    def __init__(self, engine, semaphore):
        self.engine = engine
        self.semaphore = semaphore

    def __call__(self, *args, **kwargs):
        with self.semaphore:
            return self.engine(*args, **kwargs)

    @property
    def model(self) -> str:
        return self.engine.model

    @property
    def usage(self):
        return self.engine.usage

    def describe(self) -> dict:
        return self.engine.describe()

    def __getattr__(self, name: str):
        if name in ("engine", "semaphore"):
            raise AttributeError(name)
        return getattr(self.engine, name)


def _engines(run: dict, semaphore):
    """(feedback, optimizer) engines of an LLM method, each call under the sweep's semaphore."""
    from ..config import make_engines
    from ..proposers import LLM_METHODS

    if run["method"] not in LLM_METHODS:
        return None, None
    engine, optimizer_engine = make_engines(run.get("engine") or None)
    for each in {id(engine): engine, id(optimizer_engine): optimizer_engine}.values():
        _share_rate_limit(each)
    if semaphore is not None:
        same = optimizer_engine is engine
        engine = LimitedEngine(engine, semaphore)  # wrapped once when shared: usage counted once
        optimizer_engine = engine if same else LimitedEngine(optimizer_engine, semaphore)
    return engine, optimizer_engine


def _share_rate_limit(engine) -> None:
    """A rate-limited engine on a Dask worker books its calls on the scheduler: one limit per model
    for every worker of the sweep (not one per worker)."""
    if engine.limiter is None:
        return
    from distributed import get_client

    from ..rate_limit import SchedulerLimiter

    try:
        client = get_client()
    except ValueError:  # not inside a Dask task: the process's own book
        return
    engine.limiter = SchedulerLimiter(engine.limiter.key, engine.rate_limits, client)


def _worker_address() -> Optional[str]:
    try:
        from distributed import get_worker

        return get_worker().address
    except Exception:
        return None


def run_task(run: dict, out_dir: str, semaphore=None, attempt: int = 1, sweep_id: str = "") -> dict:
    """Execute one run (the Dask task). Never raises for a run's own failure: returns its status.

    Returns {"name", "status": finished|failed|error, "stop_reason", "error", "retryable",
    "optimize_s", "task_s", "simulations", "worker"}. ``failed`` = optimize() stopped on engine
    errors; ``error`` = an exception (retried by the sweep up to max_attempts, unless it is a
    spec or run-directory error, which another attempt cannot fix).
    """
    from ..run_lock import RunLockedError, run_lock

    t_task = time.perf_counter()
    run_dir = Path(out_dir) / run["name"]
    run_dir.mkdir(parents=True, exist_ok=True)
    spec = dict(run["objective"])
    if spec.get("cache_dir"):
        spec["cache_dir"] = os.path.expanduser(os.path.expandvars(str(spec["cache_dir"])))
        os.environ["TGSCI_CACHE_DIR"] = spec["cache_dir"]  # the LLM cache too (Engine reads the env)
    result = {"name": run["name"], "status": "error", "stop_reason": None, "error": None, "retryable": True,
              "optimize_s": 0.0, "task_s": 0.0, "simulations": 0, "worker": _worker_address()}
    # A run executes in one place at a time: if a worker the scheduler gave up on is in fact
    # still running it, this attempt waits for it instead of writing the same run directory.
    lock = run_lock(run_dir, wait_s=float(run.get("run_lock_timeout_s", 3600.0)))
    try:
        lock.__enter__()
    except RunLockedError as exc:
        result["error"] = str(exc)
        return result
    try:
        record = _load_run_file(run_dir)
        entry = {"attempt": attempt, "sweep_id": sweep_id, "host": socket.gethostname(), "pid": os.getpid(),
                 "worker": result["worker"], "started": time.time(), "updated": time.time(), "ended": None,
                 "status": "running", "steps_done": None, "simulations": 0, "optimize_s": None, "task_s": None, "error": None}
        record["attempts"].append(entry)
        write_json_atomic(run_dir / RUN_FILE, record)
        _attempt(run, spec, run_dir, semaphore, record, entry, result)
        result["task_s"] = time.perf_counter() - t_task
        entry.update(status=result["status"], ended=time.time(), updated=time.time(), simulations=result["simulations"],
                     optimize_s=result["optimize_s"], task_s=result["task_s"], error=result["error"])
        record["simulations"] = sum(a.get("simulations") or 0 for a in record["attempts"])
        write_json_atomic(run_dir / RUN_FILE, record)
        return result
    finally:
        lock.__exit__(None, None, None)


def _attempt(run: dict, spec: dict, run_dir: Path, semaphore, record: dict, entry: dict, result: dict) -> None:
    """Build, optimize, close; fills ``result``."""
    from ..domains import SpecError, build_objective
    from ..loop import optimize
    from ..record import RunDirError

    objective = None
    t0 = None
    try:
        objective = build_objective(spec)
        engine, optimizer_engine = _engines(run, semaphore)

        def on_step(rec) -> None:
            entry.update(steps_done=rec.step, simulations=_simulations(objective), updated=time.time())
            write_json_atomic(run_dir / RUN_FILE, record)

        b = run["budget"]
        t0 = time.perf_counter()
        res = optimize(
            objective, run["start"], method=run["method"], engine=engine, optimizer_engine=optimizer_engine,
            max_steps=b["max_steps"], n_proposals=b["n_proposals"], max_evaluations=b["max_evaluations"],
            patience=b["patience"], min_improvement=b["min_improvement"], target_score=b["target_score"],
            run_dir=run_dir, seed=run["seed"], callback=on_step, stop_when=b.get("stop_when"),
            **{k: b[k] for k in ("plateau_margin", "plateau_steps") if k in b},
        )
        result["optimize_s"] = time.perf_counter() - t0
        result["stop_reason"] = res.stop_reason
        if str(res.stop_reason).startswith("engine_error"):
            result.update(status="failed", error=res.stop_reason)
        else:
            result["status"] = "finished"
    except Exception as exc:
        result["error"] = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=6)}"
        result["retryable"] = not isinstance(exc, (RunDirError, SpecError))
        result["optimize_s"] = time.perf_counter() - t0 if t0 is not None else 0.0
    finally:
        if objective is not None:
            result["simulations"] = _simulations(objective)
            try:
                objective.close()
            except Exception:
                pass


def _simulations(objective) -> int:
    """Simulations actually run by the objective in this process (cache hits excluded)."""
    from ..objectives.base import CountsSimulations

    return int(objective.simulations or 0) if isinstance(objective, CountsSimulations) else 0


def _load_run_file(run_dir: Path) -> dict:
    try:
        data = read_json(run_dir / RUN_FILE)
        if isinstance(data, dict) and isinstance(data.get("attempts"), list):
            return data
    except (OSError, ValueError):
        pass
    return {"name": run_dir.name, "attempts": [], "simulations": 0}
