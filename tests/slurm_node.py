"""A real single-node SLURM cluster for the tests: Debian's slurm-wlm 22.05 and munge, started from
a directory of its own (config, key, socket, state, logs; free ports), so it never touches a SLURM
already on the machine. Needs root (slurmd) and the packages (`python3 dev.py test` installs them).

Jobs are recorded by `JobCompType=jobcomp/filetxt`, which `sacct -c` reads (full accounting would
need slurmdbd and a database). The partition's MaxTime is 30 minutes, so a longer walltime is
accepted by sbatch and then held by SLURM with reason PartitionTimeLimit, as on many real clusters.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def missing() -> list[str]:
    return [d for d in ("munged", "slurmctld", "slurmd", "sbatch", "sacct") if shutil.which(d) is None
            and not Path("/usr/sbin", d).exists()]


class SlurmNode:
    def __init__(self, root: Path):
        self.root = root
        self.host = socket.gethostname().split(".")[0]
        self.conf = root / "slurm.conf"
        self.socket = root / "munge" / "munge.socket"
        self.env: dict = {}

    def _write(self) -> None:
        for sub in ("munge", "state", "spool", "log"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        key = self.root / "munge" / "munge.key"
        key.write_bytes(secrets.token_bytes(1024))
        key.chmod(0o400)
        (self.root / "munge").chmod(0o711)  # munged wants its socket directory traversable
        cpus = os.cpu_count() or 1
        r = self.root
        self.conf.write_text(f"""\
ClusterName=tgsci-test
SlurmctldHost={self.host}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={self.socket}
CredType=cred/munge
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
StateSaveLocation={r}/state
SlurmdSpoolDir={r}/spool
SlurmctldPidFile={r}/slurmctld.pid
SlurmdPidFile={r}/slurmd.pid
SlurmctldLogFile={r}/log/slurmctld.log
SlurmdLogFile={r}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc={r}/log/jobcomp.txt
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
MinJobAge=600
NodeName={self.host} CPUs={cpus} RealMemory=4000 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=30 State=UP
""")

    def start(self, timeout_s: float = 60.0) -> "SlurmNode":
        self._write()
        r = self.root
        self.env = {"SLURM_CONF": str(self.conf)}
        run = lambda *cmd: subprocess.run(cmd, check=True, capture_output=True, text=True, env={**os.environ, **self.env})  # noqa: E731
        run("munged", "--force", f"--socket={self.socket}", f"--key-file={r}/munge/munge.key",
            f"--pid-file={r}/munge/munged.pid", f"--log-file={r}/log/munged.log", f"--seed-file={r}/munge/munged.seed")
        run("slurmctld", "-f", str(self.conf))
        run("slurmd", "-f", str(self.conf))
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            state = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, env={**os.environ, **self.env})
            if state.stdout.strip() == "idle":
                return self
            time.sleep(0.5)
        raise RuntimeError(f"the test SLURM node did not become idle within {timeout_s:.0f} s:\n{self.logs()}")

    def logs(self) -> str:
        out = []
        for name in ("slurmctld.log", "slurmd.log", "munged.log"):
            path = self.root / "log" / name
            if path.exists():
                out.append(f"--- {name}\n" + "\n".join(path.read_text(errors="replace").splitlines()[-15:]))
        return "\n".join(out)

    def stop(self) -> None:
        subprocess.run(["scancel", "--user=root"], capture_output=True, env={**os.environ, **self.env})
        for pidfile in ("slurmd.pid", "slurmctld.pid", "munge/munged.pid"):
            try:
                pid = int((self.root / pidfile).read_text().strip())
                os.kill(pid, signal.SIGTERM)
            except (OSError, ValueError):
                pass
        time.sleep(0.5)
