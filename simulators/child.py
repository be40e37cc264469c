"""How tgsci starts its own Python children (docking workers, receptor preparation): one place.

``python -P`` keeps the working directory off ``sys.path``; the environment given here must not
put it back. An empty ``PYTHONPATH`` entry (``"root:"``, ``"::"``) or a relative one is read
against the working directory, so a stray ``json.py`` there would run inside the child: only
absolute entries are kept, this repository's root first.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parent.parent)


def child_pythonpath(inherited: str | None = None) -> str:
    """This repository's root, then the absolute entries of ``inherited`` (default: this process's ``PYTHONPATH``)."""
    given = os.environ.get("PYTHONPATH", "") if inherited is None else inherited
    kept = [p for p in given.split(os.pathsep) if p and os.path.isabs(p) and p != ROOT]
    return os.pathsep.join([ROOT, *kept])


def child_command(module: str, *args: str) -> tuple[list[str], dict]:
    """(argv, env) to run ``python -P -m module args...`` with the safe ``PYTHONPATH`` above."""
    env = {**os.environ, "PYTHONPATH": child_pythonpath()}
    return [sys.executable, "-P", "-m", module, *args], env


def limit_memory(megabytes: int | None) -> None:
    """Cap this process's address space (a child calls it first: a blow-up costs the child, never the node)."""
    if megabytes:
        import resource

        limit = int(megabytes) * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
