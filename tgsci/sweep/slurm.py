"""Sweeps on a SLURM cluster: dask-jobqueue's SLURMCluster, checked before anything is submitted
and watched while it runs, so a bad setting is a clear message within seconds, never a hang.

Each SLURM job runs ``cores_per_job`` Dask workers of one thread (one run each at a time); the
sweep process holds the scheduler (on a login node, or in a small job of its own). What SLURM
refuses up front (no ``sbatch``, an unknown partition or account, a malformed walltime) is caught
by ``sbatch --test-only`` before the cluster starts; what it only shows later (a job held for a
reason that never clears, a job that dies before its worker connects) by ``SlurmWatch``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from .security import private_folder, sweep_security

# squeue reasons of a pending job that waiting will not clear, and what they mean for the user
NEVER_STARTS = {
    "PartitionTimeLimit": "the walltime is longer than the partition's time limit",
    "PartitionNodeLimit": "the job asks for more nodes than the partition allows",
    "PartitionDown": "the partition is down",
    "PartitionInactive": "the partition is inactive",
    "InvalidAccount": "the account is not valid",
    "InvalidQOS": "the QOS is not valid",
    "AccountNotAllowed": "the account may not use this partition",
    "QOSMaxWallDurationPerJobLimit": "the walltime is longer than the QOS allows",
    "AssocMaxWallDurationPerJobLimit": "the walltime is longer than the account allows",
    "BadConstraints": "the job's constraints cannot be met",
    "ReqNodeNotAvail": "the requested node is not available",
    "JobHeldAdmin": "an administrator holds the job",
}
COMMAND_TIMEOUT_S = 30.0


class ClusterError(RuntimeError):
    """SLURM cannot run the sweep's workers as asked; the message says what and why."""


@dataclass(frozen=True)
class SlurmSettings:
    jobs: int
    cores_per_job: int = 1
    memory: str = "4GB"
    walltime: str = "01:00:00"
    queue: Optional[str] = None
    account: Optional[str] = None
    python: str = sys.executable
    interface: Optional[str] = None  # e.g. "ib0"; default: the scheduler's host name
    log_dir: Optional[Path] = None
    security_dir: Optional[Path] = None  # the workers' TLS credentials, on the shared filesystem (default: beside log_dir)
    dashboard_address: str = "127.0.0.1:0"
    cache_dir: Optional[str] = None  # node-local disk of the user's own; expanded on the node
    extra_env: dict = field(default_factory=dict)

    def sbatch_options(self) -> list[str]:
        options = ["-n", "1", f"--cpus-per-task={self.cores_per_job}", f"--mem={self.memory}", f"--time={self.walltime}"]
        if self.queue:
            options.append(f"--partition={self.queue}")
        if self.account:
            options.append(f"--account={self.account}")
        return options


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise ClusterError(f"`{' '.join(cmd[:2])}` did not answer within {COMMAND_TIMEOUT_S:.0f} s: is slurmctld reachable?") from None


def check_settings(settings: SlurmSettings) -> None:
    """Everything SLURM can refuse before a job exists: raises ClusterError naming the setting."""
    if settings.jobs < 1 or settings.cores_per_job < 1:
        raise ClusterError(f"--jobs and --cores-per-job must be >= 1 (got {settings.jobs} and {settings.cores_per_job})")
    for name in ("memory", "walltime", "queue", "account", "python", "interface", "cache_dir", "log_dir", "security_dir"):
        value = getattr(settings, name)
        if value is not None and any(c in str(value) for c in "\n\r\0"):  # each becomes a line of the job script
            flag = "out" if name in ("log_dir", "security_dir") else name.replace("_", "-")
            raise ClusterError(f"--{flag} must be one line, not {value!r}")
    missing = [c for c in ("sbatch", "squeue", "scancel", "sinfo") if shutil.which(c) is None]
    if missing:
        raise ClusterError(f"no {', '.join(f'`{c}`' for c in missing)} on PATH: run this on a SLURM login node "
                           f"(or load the site's slurm module) to use --cluster slurm")
    if not Path(settings.python).is_file() and shutil.which(settings.python) is None:
        raise ClusterError(f"--python {settings.python} does not exist here; give the Python of the environment "
                           f"the nodes share (default: this one, {sys.executable})")
    if settings.queue:
        listed = _run(["sinfo", "-h", "-o", "%P"])
        partitions = sorted({p.strip().rstrip("*") for p in listed.stdout.split() if p.strip()})
        if listed.returncode == 0 and settings.queue not in partitions:
            raise ClusterError(f"SLURM has no partition {settings.queue!r} (--queue); partitions: {', '.join(partitions) or 'none'}")
    test = _run(["sbatch", "--test-only", *settings.sbatch_options(), "--job-name=tgsci-check", "--wrap", "true"])
    if test.returncode != 0:
        said = " ".join(line.strip() for line in test.stderr.splitlines() if line.strip()) or f"exit code {test.returncode}"
        raise ClusterError(f"SLURM refuses the worker job ({' '.join(settings.sbatch_options())}): {said}")


def start_cluster(settings: SlurmSettings):
    """A SLURMCluster with one single-threaded Dask worker per core of each job (not yet scaled)."""
    SLURMCluster = _import_slurm_cluster()

    env = {"OMP_NUM_THREADS": "1", "TGSCI_DOCKING_CORES": "1", "TGSCI_LOCAL_THREADS": "1", **settings.extra_env}
    if settings.cache_dir:
        env["TGSCI_CACHE_DIR"] = settings.cache_dir
    prologue = [f"export {k}={_quote(v)}" for k, v in env.items()]
    # a free loopback port: 8787 may be another user's on a login node, and the dashboard shows the workers' logs
    scheduler_options = {"dashboard_address": settings.dashboard_address}
    if settings.interface is None and os.environ.get("TGSCI_SCHEDULER_HOST"):
        scheduler_options["host"] = os.environ["TGSCI_SCHEDULER_HOST"]  # else Dask's choice: the address of the default route
    return SLURMCluster(
        cores=settings.cores_per_job,
        processes=settings.cores_per_job,
        memory=settings.memory,
        walltime=settings.walltime,
        queue=settings.queue,
        account=settings.account,
        python=settings.python,
        interface=settings.interface,
        job_name="tgsci-sweep",
        job_script_prologue=prologue,
        log_directory=str(settings.log_dir) if settings.log_dir else None,
        death_timeout=120,  # a worker whose scheduler vanished exits instead of idling on the allocation
        scheduler_options=scheduler_options,
        # mutual TLS with credentials of this sweep: the scheduler listens where the nodes reach it,
        # and without them nobody else on the cluster can connect and run code as this user
        security=sweep_security(), protocol="tls://", shared_temp_directory=str(_credentials_folder(settings)),
    )


def _credentials_folder(settings: SlurmSettings) -> Path:
    try:
        return private_folder(_security_dir(settings))
    except OSError as exc:
        raise ClusterError(f"cannot keep the sweep's TLS credentials: {exc}") from None


def _security_dir(settings: SlurmSettings) -> Path:
    if settings.security_dir is not None:
        return Path(settings.security_dir)
    if settings.log_dir is not None:
        return Path(settings.log_dir).parent / ".dask-tls"
    return Path.home() / ".cache" / "tgsci" / "dask-tls"


def _import_slurm_cluster():
    """dask_jobqueue's SLURMCluster. Importing dask_jobqueue (0.9.0, its runner module) replaces the
    SIGINT handler with ``sys.exit()``: Ctrl-C would end the sweep with exit code 0 and no word.
    The handler in place before the import is put back."""
    import signal
    import threading

    main = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGINT) if main else None
    from dask_jobqueue import SLURMCluster

    if main and previous is not None:
        signal.signal(signal.SIGINT, previous)
    return SLURMCluster


def _quote(value: str) -> str:
    """Shell-quoted for the job script; a plain ``$VAR/...`` (e.g. "$TMPDIR/tgsci") stays expandable on the node."""
    import shlex

    text = str(value)
    if "$" in text and "$(" not in text and not any(c in text for c in '`"\\'):
        return f'"{text}"'
    return shlex.quote(text)


class SlurmWatch:
    """Polls squeue for the cluster's jobs; raises ClusterError when the sweep can no longer get a worker.

    Called from the sweep's loop with its Dask client. A job pending for a reason that never clears,
    or every job gone before any worker connected, stops the sweep with SLURM's own words and the
    job log's last lines. Returns a line on what SLURM is doing when it changes (for the progress).
    """

    def __init__(self, cluster, settings: SlurmSettings, every_s: float = 3.0):
        self.cluster = cluster if callable(cluster) else (lambda: cluster)  # the cluster, or a function giving it
        self.settings, self.every_s = settings, every_s
        self.last = 0.0
        self.seen_workers = False
        self.jobs: set[str] = set()  # every job the cluster submitted (lost ones are replaced)
        self.said = ""

    def __call__(self, client) -> Optional[str]:
        now = time.monotonic()
        if now - self.last < self.every_s:
            return None
        self.last = now
        cluster = self.cluster()
        if cluster is None:
            return None
        self.jobs |= {str(job.job_id) for job in list(cluster.workers.values()) if getattr(job, "job_id", None)}
        try:
            connected = len(client.scheduler_info().get("workers", {}))
        except Exception:
            connected = 0
        self.seen_workers = self.seen_workers or connected > 0
        if not self.jobs:
            return None
        listed = _run(["squeue", "-h", "-j", ",".join(sorted(self.jobs, key=int)), "-o", "%i|%T|%r"])
        if listed.returncode != 0 and "Invalid job id" not in listed.stderr:
            return None  # slurmctld busy or restarting: ask again next time
        states = {}
        for line in listed.stdout.splitlines():
            parts = line.strip().split("|")
            if len(parts) == 3:
                states[parts[0]] = (parts[1], parts[2])
        for job_id, (state, reason) in states.items():
            if state == "PENDING" and reason in NEVER_STARTS:
                raise ClusterError(f"SLURM job {job_id} will not start: {reason} ({NEVER_STARTS[reason]}; "
                                   f"{' '.join(self.settings.sbatch_options())})")
        ended = sorted((j for j in self.jobs if j not in states), key=int)
        if ended and not self.seen_workers:  # a job ended and no worker ever connected: they die at start
            raise ClusterError(self._died(ended[0]))
        running = sum(1 for s, _ in states.values() if s == "RUNNING")
        pending = [r for s, r in states.values() if s == "PENDING"]
        line = f"SLURM: {running} job(s) running, {connected} Dask worker(s) connected"
        if pending:
            line += f", {len(pending)} pending ({', '.join(sorted(set(pending)))})"
        if line != self.said:
            self.said = line
            return line
        return None

    def _died(self, job_id: str) -> str:
        shown = _run(["scontrol", "show", "job", job_id]).stdout if shutil.which("scontrol") else ""
        fields = dict(item.split("=", 1) for item in shown.split() if "=" in item)
        state = fields.get("JobState", "ended")
        code = fields.get("ExitCode", "?")
        log = self._log_tail(job_id, fields.get("StdErr"))
        return (f"SLURM job {job_id} ended ({state}, exit code {code}) before any Dask worker connected; "
                f"is --python {self.settings.python} there on the nodes?" + (f"\nits log ends with:\n{log}" if log else ""))

    def _log_tail(self, job_id: str, stderr_path: Optional[str]) -> str:
        candidates = [Path(stderr_path)] if stderr_path else []
        if self.settings.log_dir:
            candidates += sorted(Path(self.settings.log_dir).glob(f"*{job_id}*"))
        for path in candidates:
            try:
                text = path.read_text(errors="replace").strip()
            except OSError:
                continue
            if text:
                return "\n".join(text.splitlines()[-5:])
        return ""


def run_sweep_on_slurm(spec, out_dir, settings: SlurmSettings, **sweep_kwargs):
    """``run_sweep`` on a SLURMCluster of ``settings.jobs`` jobs, kept at that size (a lost job is
    replaced), checked before the first job and watched throughout. Nothing is submitted when every
    run is finished; the jobs are cancelled when the sweep returns or raises."""
    from .client import run_sweep
    from .spec import load_spec, parse_spec

    parse_spec(spec) if isinstance(spec, dict) else load_spec(spec)  # a bad spec submits nothing
    started = []

    def start():
        check_settings(settings)
        cluster = start_cluster(settings)
        started.append(cluster)
        cluster.adapt(minimum_jobs=settings.jobs, maximum_jobs=settings.jobs)
        return cluster

    try:
        return run_sweep(spec, out_dir, scheduler=start, watch=SlurmWatch(lambda: started[0] if started else None, settings),
                         **sweep_kwargs)
    finally:
        for cluster in started:
            cluster.close()
