"""One writer per run directory: ``with run_lock(run_dir): ...`` around everything that appends to it.

Every run holds it: the CLI, a sweep task, ``optimize()`` called from Python. A second run on
the same directory is refused at once (or after ``wait_s``), naming the holder's PID and host.
The lock is an OS file lock (``.run.lock``, released by the kernel when its process dies), so a
lock left by a killed run is simply taken over; the holder file (``.run.holder.json``) it left
is named in a warning. Re-entrant within one thread: a sweep task holds the lock and the
``optimize()`` it calls takes it again.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from simulators.files import write_json_atomic

from .record import RunDirError

LOCK_NAME, HOLDER_NAME = ".run.lock", ".run.holder.json"
_held: dict[tuple[str, int], int] = {}  # (run directory, thread) -> depth
_guard = threading.Lock()


class RunLockedError(RunDirError):
    """Another process (or thread) is writing this run directory."""


def _holder(directory: Path) -> dict:
    try:
        with open(directory / HOLDER_NAME, encoding="utf-8") as handle:
            data = json.load(handle)
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _describe(holder: dict) -> str:
    if not holder:
        return "another process"
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder.get("since", 0))) if holder.get("since") else "?"
    return f"PID {holder.get('pid', '?')} on host {holder.get('host', '?')} (since {since})"


@contextmanager
def run_lock(run_dir: str | os.PathLike, wait_s: float = 0.0) -> Iterator[Path]:
    """Hold ``run_dir``'s lock (creating the directory); RunLockedError if another writer has it."""
    from filelock import FileLock, Timeout

    directory = Path(run_dir)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunDirError(f"cannot create run directory {directory}: {exc}") from None
    key = (str(directory.resolve()), threading.get_ident())
    with _guard:
        if key in _held:
            _held[key] += 1
            reentered = True
        else:
            reentered = False
    if reentered:
        try:
            yield directory
        finally:
            with _guard:
                _held[key] -= 1
        return

    lock = FileLock(str(directory / LOCK_NAME), timeout=wait_s)
    try:
        lock.acquire()
    except Timeout:
        raise RunLockedError(
            f"run directory {directory} is in use by {_describe(_holder(directory))}; "
            f"wait for that run to end, or use another run directory"
        ) from None
    try:
        left = _holder(directory)
        me = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}
        if left and (left.get("pid"), left.get("host")) != (me["pid"], me["host"]):
            warnings.warn(f"took over run directory {directory}: its last writer, {_describe(left)}, ended without "
                          f"releasing it (killed?); resuming from what it recorded", stacklevel=3)
        write_json_atomic(directory / HOLDER_NAME, me)
        with _guard:
            _held[key] = 1
        try:
            yield directory
        finally:
            with _guard:
                _held.pop(key, None)
            try:
                os.unlink(directory / HOLDER_NAME)
            except OSError:
                pass
    finally:
        lock.release()
