"""The client side of a sweep: expand the spec, skip finished runs, submit the rest to Dask,
retry failed ones, and keep ``status.json`` (written atomically by this process only).

``scheduler``: None = a LocalCluster; ``"tcp://host:8786"`` = an existing scheduler; a Dask
``Client``; or a cluster object (e.g. a dask-jobqueue SLURMCluster).
"""

from __future__ import annotations

import os
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional

from simulators.files import read_json, write_json_atomic

from ..proposers import LLM_METHODS
from ..record import run_state, set_aside_summary
from .progress import Progress
from .security import LOOPBACK_DASHBOARD, sweep_security
from .spec import load_spec, parse_spec
from .task import run_task

LOCK_NAME = "sweep.lock"


class SweepLockedError(RuntimeError):
    """Another sweep holds the lock on this output directory."""


@dataclass
class SweepResult:
    out_dir: Path
    runs: list[str]
    status: dict[str, str]  # run name -> finished | failed | pending
    submitted: int = 0
    skipped: int = 0
    wall_s: float = 0.0
    dashboard_link: Optional[str] = None
    n_workers: Optional[int] = None

    @property
    def finished(self) -> list[str]:
        return [n for n, s in self.status.items() if s == "finished"]

    @property
    def failed(self) -> list[str]:
        return [n for n, s in self.status.items() if s == "failed"]

    @property
    def ok(self) -> bool:
        return len(self.finished) == len(self.runs)


@contextmanager
def sweep_lock(out_dir: str | os.PathLike) -> Iterator[Path]:
    """Hold ``out_dir/sweep.lock``; SweepLockedError at once if another sweep holds it."""
    from filelock import FileLock, Timeout

    path = Path(out_dir) / LOCK_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise SweepLockedError(
            f"another sweep is running in {Path(out_dir)} (lock file {path} is held); "
            f"wait for it to finish or use another output directory"
        ) from None
    try:
        yield path
    finally:
        lock.release()


def default_n_workers() -> int:
    from simulators.machine import usable_cores

    return usable_cores()


def run_sweep(
    spec_path: str | os.PathLike | dict,
    out_dir: str | os.PathLike,
    scheduler=None,
    n_workers: Optional[int] = None,
    *,
    progress: bool = False,
    max_attempts: Optional[int] = None,
    llm_concurrency: Optional[int] = None,
    reset_failures: bool = False,
    dashboard: bool = True,
    dashboard_address: str = LOOPBACK_DASHBOARD,
    callback: Optional[Callable[[dict], None]] = None,
    console=None,
    watch: Optional[Callable] = None,
) -> SweepResult:
    """Expand the sweep file into runs and execute the unfinished ones on Dask.

    ``scheduler``: None = a LocalCluster of ``n_workers`` processes (default: the machine's
    cores) with one thread each; ``"tcp://host:8786"`` = an existing scheduler; a Dask
    ``Client`` or cluster object (e.g. a dask-jobqueue SLURMCluster, scaled to ``n_workers``
    when given); or a function returning one, called only if some run is left to do. A LocalCluster
    speaks TLS with credentials made for this sweep (``security``) and serves its dashboard on
    ``dashboard_address`` (default: loopback). Arguments override the spec's [resources]. ``progress`` shows a rich bar.
    ``callback(event)`` is called in this process after each run attempt ends. ``watch(client)`` is
    called about once a second: it may return a line to show, or raise to stop the sweep (e.g.
    ``slurm.SlurmWatch``: a job SLURM will never start); finished runs stay recorded either way.
    Raises SpecError (before anything starts) and SweepLockedError.
    """
    if isinstance(spec_path, dict):
        spec = parse_spec(spec_path)
    else:
        spec = load_spec(spec_path)
    res = spec.resources
    runs = spec.expand()
    max_attempts = max_attempts or res["max_attempts"]
    llm_concurrency = llm_concurrency or res["llm_concurrency"]
    n_workers = n_workers or res["n_workers"]
    out = Path(out_dir)
    t_start = time.perf_counter()
    sweep_id = uuid.uuid4().hex[:10]

    with sweep_lock(out):
        write_json_atomic(out / "sweep.json", {
            "name": spec.name, "spec": spec.raw, "spec_path": spec.source, "kind": spec.kind,
            "created": time.time(), "runs": runs,
        })
        status = _load_status(out)
        status["sweep"] = {"id": sweep_id, "spec_path": spec.source, "started": time.time(), "max_attempts": max_attempts}
        todo, states = [], {}
        for run in runs:
            st = status["runs"].setdefault(run["name"], {"status": "pending", "attempts": 0, "failures": 0, "errors": []})
            if reset_failures:
                st["failures"] = 0
            state, record = run_state(out / run["name"], run["budget"])
            if state == "finished":
                st.update(status="finished", stop_reason=record.summary.stop_reason)
                states[run["name"]] = "finished"
                continue
            if state == "engine_error":
                if st.get("status") != "failed" or not st.get("failures"):
                    st["failures"] = max(1, st.get("failures", 0))  # recorded outside a sweep: count it
                if st["failures"] >= max_attempts:
                    st.update(status="failed", stop_reason=record.summary.stop_reason)
                    states[run["name"]] = "failed"
                    continue
                set_aside_summary(out / run["name"])  # optimize() resumes it from its trajectory
            elif st.get("failures", 0) >= max_attempts:
                st["status"] = "failed"
                states[run["name"]] = "failed"
                continue
            st["status"] = "queued"
            states[run["name"]] = "queued"
            todo.append(run)
        skipped = len(runs) - len(todo)
        write_json_atomic(out / "status.json", status)
        result = SweepResult(out, [r["name"] for r in runs], {}, submitted=0, skipped=skipped)
        if todo:
            _execute(todo, out, status, states, scheduler, n_workers, max_attempts, llm_concurrency, spec,
                     sweep_id, progress, dashboard, dashboard_address, callback, console, result, len(runs), watch)
        result.status = {n: (s if s in ("finished", "failed") else "pending") for n, s in states.items()}
        result.wall_s = time.perf_counter() - t_start
        return result


def _load_status(out: Path) -> dict:
    try:
        data = read_json(out / "status.json")
        if isinstance(data, dict) and isinstance(data.get("runs"), dict):
            return data
    except (OSError, ValueError):
        pass
    return {"runs": {}}


@contextmanager
def _client(scheduler, n_workers: Optional[int], env: dict, dashboard_address: str = LOOPBACK_DASHBOARD):
    """A connected Client (and the LocalCluster it made, closed on exit)."""
    from distributed import Client, LocalCluster

    if scheduler is None:
        n_workers = n_workers or default_n_workers()
        if "TGSCI_LOCAL_THREADS" not in os.environ:  # the embedded model: the machine's cores shared by the workers
            from ..local_llm import local_threads

            env = {**env, "TGSCI_LOCAL_THREADS": str(local_threads(processes=n_workers))}
        if "TGSCI_DOCKING_CORES" not in os.environ:  # each run docks on its share of the cores
            env = {**env, "TGSCI_DOCKING_CORES": str(max(1, default_n_workers() // n_workers))}
        # TLS with credentials made for this sweep only: another user of the machine who finds the
        # port can neither submit code nor read results; the dashboard on a free loopback port
        security = sweep_security()
        cluster = LocalCluster(
            n_workers=n_workers, threads_per_worker=1, processes=True, host="127.0.0.1",
            dashboard_address=dashboard_address, env=env, security=security, protocol="tls://",
        )
        client = Client(cluster, security=security)
        try:
            yield client
        finally:
            client.close()
            cluster.close()
    elif isinstance(scheduler, str):
        client = Client(scheduler, timeout="30s")
        try:
            yield client
        finally:
            client.close()
    elif isinstance(scheduler, Client):
        yield scheduler
    elif callable(scheduler) and not hasattr(scheduler, "scheduler_address"):  # a factory: called only when there is work
        made = scheduler()
        client = Client(made, security=getattr(made, "security", None))
        try:
            yield client
        finally:
            client.close()
    else:  # a cluster object (LocalCluster, SLURMCluster, ...): its own credentials, if any
        if n_workers:
            scheduler.scale(n_workers)
        client = Client(scheduler, security=getattr(scheduler, "security", None))
        try:
            yield client
        finally:
            client.close()


def dashboard_links(client, dashboard_address: str = LOOPBACK_DASHBOARD) -> tuple[Optional[str], Optional[str]]:
    """(dashboard link if the bokeh dashboard answers, else None; the scheduler's plain info page).
    Dask writes the link with the scheduler's host; a dashboard bound to loopback is linked there."""
    import urllib.request
    from urllib.parse import urlsplit, urlunsplit

    try:
        if "dashboard" not in (client.scheduler_info().get("services") or {}):
            return None, None
        link = client.dashboard_link
    except Exception:
        return None, None
    if dashboard_address.startswith("127.0.0.1:"):
        parts = urlsplit(link)
        link = urlunsplit(parts._replace(netloc=f"127.0.0.1:{parts.port}"))
    base = link.rsplit("/", 1)[0]
    info = f"{base}/info/main/workers.html"
    try:
        with urllib.request.urlopen(link, timeout=2) as reply:
            body = reply.read(4096).decode("utf-8", "replace")
        if reply.status == 200 and "needs bokeh" not in body:
            return link, info
    except Exception:
        pass
    return None, info


def _execute(todo, out, status, states, scheduler, n_workers, max_attempts, llm_concurrency, spec, sweep_id,
             progress, dashboard, dashboard_address, callback, console, result, total, watch=None) -> None:
    from distributed import Semaphore, wait

    # The docking/LLM cache: [resources] cache_dir goes to every task; otherwise a LocalCluster's
    # workers get this process's TGSCI_CACHE_DIR, and remote workers keep their own environment
    # (on a cluster the cache belongs on node-local disk: see examples/sweep_jobqueue.py).
    env = {}
    cache_dir = spec.resources["cache_dir"] or (os.environ.get("TGSCI_CACHE_DIR") if scheduler is None else None)
    if cache_dir:
        env["TGSCI_CACHE_DIR"] = str(cache_dir)

    with _client(scheduler, n_workers, env, dashboard_address) as client, Progress(progress, total, console) as bar:
        result.dashboard_link, info_page = dashboard_links(client, dashboard_address) if dashboard else (None, None)
        try:
            result.n_workers = len(client.scheduler_info().get("workers", {}))
        except Exception:
            pass
        if result.dashboard_link:
            bar.say(f"Dask dashboard: {result.dashboard_link}")
        elif info_page:
            bar.say(f"Dask scheduler page: {info_page} (the full dashboard needs bokeh)")
        semaphore = None
        if llm_concurrency and any(r["method"] in LLM_METHODS for r in todo):
            semaphore = Semaphore(max_leases=llm_concurrency, name=f"tgsci-llm-{sweep_id}")
        by_name = {r["name"]: r for r in todo}
        pending: dict = {}

        def submit(run: dict) -> None:
            st = status["runs"][run["name"]]
            st["attempts"] = st.get("attempts", 0) + 1
            st["status"] = "queued"
            key = f"tgsci-{run['name']}-a{st['attempts']}-{sweep_id}"
            fut = client.submit(run_task, run, str(out), semaphore, st["attempts"], sweep_id, key=key, pure=False)
            pending[fut] = run["name"]
            result.submitted += 1

        for run in todo:
            submit(run)
        write_json_atomic(out / "status.json", status)
        last_poll = 0.0
        try:
            while pending:
                try:
                    done, _ = wait(list(pending), timeout=0.5, return_when="FIRST_COMPLETED")
                except TimeoutError:
                    done = set()
                changed = False
                for fut in done:
                    name = pending.pop(fut)
                    try:
                        res = fut.result()
                    except Exception as exc:  # KilledWorker (worker died too often), cancelled, ...
                        res = {"name": name, "status": "error", "error": f"{type(exc).__name__}: {exc}", "retryable": True}
                    fut.release()
                    st = status["runs"][name]
                    st.update(stop_reason=res.get("stop_reason"), worker=res.get("worker"), updated=time.time())
                    if res["status"] == "finished":
                        st["status"] = states[name] = "finished"
                    else:
                        st["failures"] = st.get("failures", 0) + 1
                        st["errors"] = (st.get("errors", []) + [str(res.get("error"))[:2000]])[-3:]
                        if res["status"] == "error" and res.get("retryable", True) and st["failures"] < max_attempts:
                            submit(by_name[name])  # retried; Dask places it on any live worker
                            st["status"] = "retrying"
                        else:
                            st["status"] = states[name] = "failed"
                    changed = True
                    if callback:
                        callback({"run": name, "attempt": st["attempts"], "status": st["status"], "result": res})
                now = time.monotonic()
                if changed or now - last_poll > 1.0:
                    running = _running(client, pending)
                    for fut, name in pending.items():
                        st = status["runs"][name]
                        if st["status"] in ("queued", "retrying", "running"):
                            st["status"] = "running" if fut.key in running else "queued"
                    last_poll = now
                    if changed:
                        write_json_atomic(out / "status.json", status)
                    bar.update(states, len(running))
                    said = watch(client) if watch is not None else None
                    if said:
                        bar.say(said)
        except BaseException:
            for fut, name in pending.items():
                status["runs"][name]["status"] = "interrupted"
                fut.cancel()
            write_json_atomic(out / "status.json", status)
            raise
        write_json_atomic(out / "status.json", status)
        bar.update(states, 0)


def _running(client, pending: dict) -> set:
    try:
        processing = client.processing()
    except Exception:
        return set()
    keys = {k for ks in processing.values() for k in ks}
    return {fut.key for fut in pending if fut.key in keys}


