"""Sweeps through a real SLURM controller (tests/slurm_node.py): worker jobs submitted by
dask-jobqueue, one cancelled mid-run, the sweep finishing every run anyway, a second sweep that
submits nothing, the jobs in `sacct`; and every bad setting a clear error within a bounded wait."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from slurm_node import SlurmNode, missing
from tgsci.record import read_jsonl
from tgsci.sweep.slurm import ClusterError, SlurmSettings, check_settings, run_sweep_on_slurm

pytestmark = pytest.mark.slow

SPEC = """\
[sweep]
name = "slurm"
kind = "molecule"
targets = ["PPARA", "JAK2"]
starts = ["c1ccccc1", "c1ccncc1"]
seeds = [0]
methods = ["tgd"]

[budget]
max_steps = 4
n_proposals = 2
patience = 0

[objective]
aggregation = "qed"
compare_references = false
confirm_seeds = 1
"""


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    assert not missing(), (f"SLURM is not installed ({', '.join(missing())} missing): `python3 dev.py test` installs "
                           f"Debian's slurm-wlm and munge as root, or run `apt-get install slurm-wlm munge`")
    node = SlurmNode(tmp_path_factory.mktemp("slurm")).start()
    old = {k: os.environ.get(k) for k in ("SLURM_CONF", "TGSCI_SCHEDULER_HOST")}
    os.environ.update(node.env, TGSCI_SCHEDULER_HOST="127.0.0.1")
    yield node
    node.stop()
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def _sweep_cli(spec: Path, out: Path, *extra: str) -> subprocess.Popen:
    args = [sys.executable, "-m", "tgsci.cli", "sweep", str(spec), "--out", str(out), "--cluster", "slurm", "--jobs", "2",
            "--cores-per-job", "1", "--memory", "1500MB", "--walltime", "00:20:00", *extra]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=dict(os.environ))


def _runs_in_progress(out: Path) -> list[str]:
    """Runs a worker of this sweep is executing now (the task writes sweep_run.json as it starts and steps)."""
    sweep_id = json.loads((out / "status.json").read_text())["sweep"]["id"]
    busy = []
    for path in out.glob("*/sweep_run.json"):
        last = json.loads(path.read_text())["attempts"][-1]
        if last["sweep_id"] == sweep_id and last["status"] == "running":
            busy.append(path.parent.name)
    return busy


def _squeue(*args: str) -> list[list[str]]:
    out = subprocess.run(["squeue", "-h", "-o", "%i|%j|%T", *args], capture_output=True, text=True).stdout
    return [line.split("|") for line in out.splitlines() if line.strip()]


def test_a_sweep_runs_on_slurm_stops_on_ctrl_c_survives_a_cancelled_job_and_resumes_to_nothing(slurm, tmp_path):
    spec = tmp_path / "sweep.toml"
    spec.write_text(SPEC)
    out = tmp_path / "out"
    # 1. Ctrl-C once a run has finished: a clean stop, that run recorded, no job left behind
    proc = _sweep_cli(spec, out)
    try:
        deadline = time.time() + 300
        while not any((d / "summary.json").exists() for d in out.glob("*")):
            assert proc.poll() is None and time.time() < deadline, proc.stdout.read() if proc.poll() is not None else "timeout"
            time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        text, _ = proc.communicate(timeout=120)
        text = " ".join(text.split())  # rich wraps lines at the terminal's width
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130 and "interrupted" in text and "run the same command again to resume" in text, text
    status = json.loads((out / "status.json").read_text())
    assert list(out.glob("*/summary.json")) and {r["status"] for r in status["runs"].values()} <= {"finished", "interrupted"}
    assert not [j for j in _squeue() if j[1] == "tgsci-sweep" and j[2] in ("RUNNING", "PENDING")]

    # 2. Again: one worker job cancelled mid-run; the sweep still finishes every run
    proc = _sweep_cli(spec, out)
    try:
        deadline = time.time() + 300
        # wait until both worker jobs run and two runs are on workers: the job cancelled next is mid-run
        while True:
            assert proc.poll() is None and time.time() < deadline, proc.stdout.read() if proc.poll() is not None else "timeout"
            running = [j for j in _squeue() if j[1] == "tgsci-sweep" and j[2] == "RUNNING"]
            if len(running) == 2 and len(_runs_in_progress(out)) >= 2:
                break
            time.sleep(0.5)
        victim = running[0][0]
        subprocess.run(["scancel", victim], check=True)
        text, _ = proc.communicate(timeout=600)
        text = " ".join(text.split())
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, text
    assert "4 finished, 0 failed" in text and "Dask worker(s) connected" in text and "Dask scheduler page" in text
    status = json.loads((out / "status.json").read_text())
    assert {r["status"] for r in status["runs"].values()} == {"finished"}
    this_sweep = status["sweep"]["id"]
    attempts = {run: [a for a in json.loads((out / run / "sweep_run.json").read_text())["attempts"] if a["sweep_id"] == this_sweep]
                for run in status["runs"]}
    assert any(len(a) >= 2 and a[0]["ended"] is None for a in attempts.values()), attempts  # cut by scancel, run again ...
    for run in status["runs"]:  # ... from its own record: every step once, none lost
        steps = [r["step"] for r in read_jsonl(out / run / "trajectory.jsonl")]
        assert steps == list(range(5)), (run, steps)
    # SLURM's own record: the jobs ran through the controller, the cancelled one among them
    sacct = subprocess.run(["sacct", "-c", "-o", "JobID,JobName,State"], capture_output=True, text=True)
    rows = [line.split() for line in sacct.stdout.splitlines()[2:] if "tgsci-swe" in line]
    assert len(rows) >= 3 and any(r[0] == victim and r[2] == "CANCELLED" for r in rows), sacct.stdout
    assert not [j for j in _squeue() if j[1] == "tgsci-sweep"]  # all jobs gone when the sweep ends

    jobs_before = len(rows)
    again = _sweep_cli(spec, out)
    text, _ = again.communicate(timeout=120)
    text = " ".join(text.split())
    assert again.returncode == 0 and "4 finished, 0 failed" in text, text
    assert "Dask worker(s) connected" not in text  # nothing left to do: no job submitted
    sacct = subprocess.run(["sacct", "-c", "-o", "JobID,JobName,State"], capture_output=True, text=True).stdout
    assert len([line for line in sacct.splitlines()[2:] if "tgsci-swe" in line]) == jobs_before


def _settings(tmp_path, **kw) -> SlurmSettings:
    base = dict(jobs=1, cores_per_job=1, memory="500MB", walltime="00:05:00", log_dir=tmp_path / "logs")
    return SlurmSettings(**{**base, **kw})


def test_no_sbatch_on_path_is_named(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ClusterError, match=r"no `sbatch`, `squeue`, `scancel`, `sinfo` on PATH"):
        check_settings(_settings(tmp_path))


def test_a_setting_that_would_add_lines_to_the_job_script_is_refused(tmp_path):
    with pytest.raises(ClusterError, match=r"--walltime must be one line"):
        check_settings(_settings(tmp_path, walltime="01:00:00\n#SBATCH --exclusive"))


def test_a_partition_slurm_does_not_have_is_named_with_those_it_has(slurm, tmp_path):
    with pytest.raises(ClusterError, match=r"SLURM has no partition 'gpu-big' \(--queue\); partitions: debug"):
        check_settings(_settings(tmp_path, queue="gpu-big"))


def test_a_walltime_slurm_rejects_is_named_before_any_job(slurm, tmp_path):
    with pytest.raises(ClusterError, match=r"SLURM refuses the worker job .*--time=ten minutes.*Invalid --time specification"):
        check_settings(_settings(tmp_path, walltime="ten minutes"))


def _sweep_must_fail(tmp_path, settings: SlurmSettings, match: str, within_s: float) -> None:
    spec = tmp_path / "sweep.toml"
    spec.write_text(SPEC.replace('starts = ["c1ccccc1", "c1ccncc1"]', 'starts = ["c1ccccc1"]').replace('["PPARA", "JAK2"]', '["PPARA"]'))
    start = time.perf_counter()
    with pytest.raises(ClusterError, match=match):
        run_sweep_on_slurm(spec, tmp_path / "out", settings)
    assert time.perf_counter() - start < within_s
    assert not [j for j in _squeue() if j[1] == "tgsci-sweep"]  # its jobs were cancelled
    status = json.loads((tmp_path / "out" / "status.json").read_text())
    assert {r["status"] for r in status["runs"].values()} == {"interrupted"}  # recorded, resumable


def test_a_walltime_over_the_partitions_limit_stops_the_sweep_instead_of_waiting_forever(slurm, tmp_path):
    _sweep_must_fail(tmp_path, _settings(tmp_path, walltime="02:00:00"),
                     r"will not start: PartitionTimeLimit \(the walltime is longer than the partition's time limit", within_s=60)


def test_a_job_that_dies_at_start_is_reported_with_its_log(slurm, tmp_path):
    broken = tmp_path / "python"  # exists here (it passes the local check) but cannot start a worker
    broken.write_text("#!/bin/sh\necho 'error while loading shared libraries: libpython3.11.so.1.0' >&2\nexit 127\n")
    broken.chmod(0o755)
    _sweep_must_fail(tmp_path, _settings(tmp_path, python=str(broken)),
                     r"(?s)ended \(FAILED, exit code 127:0\) before any Dask worker connected; is --python .*libpython3.11", within_s=60)


def test_the_slurm_scheduler_admits_only_workers_with_this_sweeps_credentials(tmp_path):
    """The scheduler listens where the nodes reach it: mutual TLS with credentials of this sweep,
    handed to the jobs in 0600 files of a 0700 folder beside the logs; the dashboard on loopback."""
    import stat

    from distributed import Client

    from tgsci.sweep.slurm import start_cluster

    cluster = start_cluster(_settings(tmp_path))
    try:
        assert cluster.scheduler_address.startswith("tls://")
        folder = tmp_path / ".dask-tls"
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        files = list(folder.iterdir())
        assert files and all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files)
        script = cluster.job_script()
        assert "--tls-ca-file" in script and "--tls-key" in script and str(folder) in script
        import socket
        from urllib.parse import urlparse

        port = urlparse(cluster.dashboard_link).port
        socket.create_connection(("127.0.0.1", port), timeout=5).close()  # the dashboard answers on loopback ...
        host = urlparse(cluster.scheduler_address.replace("tls://", "http://")).hostname
        if host not in ("127.0.0.1", "localhost"):  # ... and not where the nodes reach the scheduler
            with pytest.raises(OSError):
                socket.create_connection((host, port), timeout=5).close()
        with pytest.raises((OSError, TypeError)):
            Client(cluster.scheduler_address, timeout="5s")
    finally:
        cluster.close()


def test_an_output_folder_that_would_add_lines_to_the_job_script_is_refused(tmp_path):
    with pytest.raises(ClusterError, match=r"--out must be one line"):
        check_settings(_settings(tmp_path, log_dir=tmp_path / "a\n#SBATCH --exclusive" / "logs"))
