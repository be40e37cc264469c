"""Persistent result cache (SQLite rows of JSON): a repeated candidate costs a lookup, not a simulation.

Keyed by sha256 of the canonical candidate, the target, the settings and the software
versions, so a changed setting or library never returns a stale result. Safe for several
processes (WAL mode, one short transaction per write). It holds data only, never code (no
pickles): whoever can write a cache can at worst make it wrong, never run anything. Cache
directories are the user's own (created 0700; one owned by another user is refused). A damaged
cache file is moved aside and the lookup is a miss; a failed write is a warning: a cache never
stops a run. This is the one cache implementation of tgsci (docking and dose results, LLM replies).
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import stat
import threading
import time
import warnings
from pathlib import Path
from typing import Optional


class CacheDirError(ValueError):
    """A cache directory that cannot be created or used (the run goes on without that cache)."""


class ForeignCacheDirError(CacheDirError):
    """A cache directory another user owns: refused, the run stops with this message."""


def default_cache_dir() -> Path:
    """Root of every tgsci cache (docking, dose, LLM): ``$TGSCI_CACHE_DIR`` or ``~/.cache/tgsci``."""
    base = os.environ.get("TGSCI_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "tgsci")
    return Path(base)


def _owner(uid: int) -> str:
    try:
        import pwd

        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except (KeyError, ImportError):
        return f"uid {uid}"


def private_dir(path: str | os.PathLike) -> Path:
    """``path`` as a directory only this user can write: created 0700, or an existing one of ours
    (made 0700 if others could write it). Another user's directory is refused: on a shared node
    anyone who can write a cache decides what tgsci reads back (scores, receptors, dose matrices)."""
    path = Path(path).expanduser()
    root = default_cache_dir().expanduser()
    if root in path.parents:  # $TGSCI_CACHE_DIR/dose: the root is checked too (a squatted root owns its subdirectories)
        private_dir(root)
    try:
        for part in [*reversed(path.parents), path]:  # missing parents are private too
            if not part.exists():
                part.mkdir(mode=0o700, exist_ok=True)
        info = path.lstat()
    except OSError as exc:
        raise CacheDirError(f"cache directory {path} cannot be created: {exc.strerror or exc}") from None
    if stat.S_ISLNK(info.st_mode):
        info = path.stat()
    if not stat.S_ISDIR(info.st_mode):
        raise CacheDirError(f"cache directory {path} is not a directory")
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        raise ForeignCacheDirError(
            f"cache directory {path} belongs to {_owner(info.st_uid)}, not to you ({_owner(os.getuid())}): "
            f"tgsci does not use a cache another user can write. Set TGSCI_CACHE_DIR (or cache_dir) to a directory of your own"
        )
    if info.st_mode & 0o022:
        try:
            os.chmod(path, stat.S_IMODE(info.st_mode) & ~0o077 | 0o700)
        except OSError as exc:  # e.g. a filesystem without modes: ours all the same
            warnings.warn(f"cache directory {path} is writable by others and could not be made private ({exc})", stacklevel=2)
    return path


def key_of(fields: dict) -> str:
    return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()


class ResultCache:
    """``get(fields)`` / ``put(fields, value)`` of JSON values in ``directory/name``."""

    busy_timeout = 60.0  # seconds a write waits for another process's write

    def __init__(self, directory: str | os.PathLike, name: str = "results.sqlite"):
        self.path = Path(directory).expanduser() / name
        self._conn: Optional[sqlite3.Connection] = None
        self._lock = threading.Lock()
        self._warned: set[str] = set()
        self._reopen_after = 0.0  # a transient open failure (busy, locked) is retried from get/put after this time
        try:
            private_dir(directory)  # another user's directory: ForeignCacheDirError, the run stops
        except ForeignCacheDirError:
            raise
        except CacheDirError as exc:
            self._warn("open", f"result cache disabled: {self.path.parent} is not writable ({exc})")
            return
        self._open()

    def _open(self) -> None:
        try:
            self._connect()
        except sqlite3.OperationalError as exc:  # busy or locked by another process, out of file handles: transient
            self._conn = None
            self._reopen_after = time.monotonic() + 5.0
            self._warn("open", f"result cache {self.path} cannot be opened yet ({exc}); retrying")
        except sqlite3.DatabaseError as exc:
            self._set_aside(exc)
        except (OSError, sqlite3.Error) as exc:
            self._warn("open", f"result cache disabled: {self.path} cannot be opened ({exc})")
            self._conn = None

    def _ready(self) -> bool:
        """An open connection, reopened when an earlier open failed for a transient reason."""
        if self._conn is None and self._reopen_after and time.monotonic() >= self._reopen_after:
            self._reopen_after = 0.0
            self._open()
        return self._conn is not None

    def _connect(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)  # created private; SQLite opens it afterwards
        os.close(fd)
        conn = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("CREATE TABLE IF NOT EXISTS results (key TEXT PRIMARY KEY, fields TEXT, value TEXT, created REAL)")
        except sqlite3.Error:
            conn.close()
            raise
        self._conn = conn

    def _warn(self, what: str, message: str) -> None:
        if what not in self._warned:
            self._warned.add(what)
            warnings.warn(message, stacklevel=3)

    def _set_aside(self, exc: BaseException) -> None:
        """Move a damaged database (and its WAL files) aside, warn once, start an empty one."""
        if self._conn is not None:
            try:
                self._conn.close()
            except sqlite3.Error:
                pass
        self._conn = None
        aside = self.path.with_name(f"{self.path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
        try:
            os.replace(self.path, aside)
            for suffix in ("-wal", "-shm"):
                extra = Path(str(self.path) + suffix)
                if extra.exists():
                    os.replace(extra, Path(str(aside) + suffix))
            self._connect()
            self._warn("damaged", f"cache {self.path} was damaged ({exc}); moved it to {aside} and started an empty one")
        except (OSError, sqlite3.Error) as again:
            self._conn = None
            self._warn("damaged", f"cache {self.path} is damaged ({exc}) and could not be replaced ({again}); running without it")

    def get(self, fields: dict) -> Optional[dict]:
        """The cached value, or None (also when the cache is damaged: it is set aside)."""
        with self._lock:
            if not self._ready():
                return None
            try:
                row = self._conn.execute("SELECT value FROM results WHERE key = ?", (key_of(fields),)).fetchone()
            except sqlite3.DatabaseError as exc:
                if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
                    return None  # busy beyond the timeout: a miss, the file is fine
                self._set_aside(exc)
                return None
            except sqlite3.Error:
                return None
        if not row:
            return None
        try:
            value = json.loads(row[0])
        except (TypeError, ValueError, RecursionError):
            return None
        return value if isinstance(value, dict) else None

    def put(self, fields: dict, value: dict) -> None:
        """Store a value; a full disk or a damaged file is a warning, never an error."""
        with self._lock:
            if not self._ready():
                return
            try:
                self._conn.execute(
                    "INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?)",
                    (key_of(fields), json.dumps(fields, sort_keys=True, default=str), json.dumps(value), time.time()),
                )
            except sqlite3.DatabaseError as exc:
                if isinstance(exc, sqlite3.OperationalError):  # disk full, read-only, busy: the file is fine
                    self._warn("write", f"could not write the cache {self.path} ({exc}); results are not cached")
                else:
                    self._set_aside(exc)
            except (sqlite3.Error, OSError) as exc:
                self._warn("write", f"could not write the cache {self.path} ({exc}); results are not cached")

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __len__(self) -> int:
        with self._lock:
            if self._conn is None:
                return 0
            try:
                return self._conn.execute("SELECT COUNT(*) FROM results").fetchone()[0]
            except sqlite3.Error:
                return 0
