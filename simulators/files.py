"""The one atomic file writer of tgsci and its simulators.

Every file a run, a sweep or a cache leaves behind is written to a temporary file in the same
directory, fsynced, then renamed over the target: a killed process leaves the old file or the
new one, never half of one. ``simulators/`` owns it because ``tgsci/`` may import simulators,
never the other way round.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO, Iterator


def _umask() -> int:
    """The process umask without changing it (``os.umask`` would, briefly, for every thread)."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022


@contextmanager
def atomic_writer(path: str | os.PathLike, private: bool = False) -> Iterator[BinaryIO]:
    """``with atomic_writer(path) as handle: handle.write(...)``: the file appears whole or not at all.

    For writers that want a file object (``np.savez``, ``Figure.savefig``); on an exception the
    temporary file is removed and the target is untouched. ``private``: mode 0600 (cache files,
    which may hold patient data), else 0666 minus the umask (run records and reports).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        if not private:
            os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; records and reports are shared data
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_bytes_atomic(path: str | os.PathLike, data: bytes, private: bool = False) -> Path:
    with atomic_writer(path, private) as handle:
        handle.write(data)
    return Path(path)


def write_text_atomic(path: str | os.PathLike, text: str, private: bool = False) -> Path:
    return write_bytes_atomic(path, text.encode("utf-8"), private)


def write_json_atomic(path: str | os.PathLike, data: Any, private: bool = False) -> Path:
    return write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n", private)


def read_json(path: str | os.PathLike) -> Any:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def slug(name: str, max_len: int = 48) -> str:
    """``name`` as one safe path component: letters, digits, ``.``, ``_`` and ``-`` only, no leading
    dot, at most ``max_len`` characters; when anything had to change, a short hash of the original
    keeps distinct names distinct. Names from specs and case files never become paths otherwise."""
    text = str(name)
    safe = _UNSAFE.sub("-", text).strip(".-")[:max_len].strip(".-")
    if safe == text and safe:
        return safe
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{safe}-{digest}" if safe else f"name-{digest}"
