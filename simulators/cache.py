"""Persistent result cache (SQLite): a repeated candidate costs a lookup, not a simulation.

Keyed by sha256 of the canonical candidate, the target, the settings and the software
versions, so a changed setting or library never returns a stale result. Safe for several
processes (WAL mode, one short transaction per write).
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Optional


def default_cache_dir() -> Path:
    """Root of every tgsci cache (docking, dose, LLM): ``$TGSCI_CACHE_DIR`` or ``~/.cache/tgsci``."""
    base = os.environ.get("TGSCI_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "tgsci")
    return Path(base)


def key_of(fields: dict) -> str:
    return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()


class ResultCache:
    def __init__(self, directory: Path, name: str = "results.sqlite"):
        self.path = Path(directory) / name
        self._conn: Optional[sqlite3.Connection] = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._connect()
        except (OSError, sqlite3.Error) as exc:
            import warnings

            warnings.warn(f"result cache disabled: {self.path} is not writable ({exc})", stacklevel=2)
            self._conn = None

    def _connect(self) -> None:
        self._conn = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS results (key TEXT PRIMARY KEY, fields TEXT, value TEXT, created REAL)"
        )

    def get(self, fields: dict) -> Optional[dict]:
        if self._conn is None:
            return None
        row = self._conn.execute("SELECT value FROM results WHERE key = ?", (key_of(fields),)).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, fields: dict, value: dict) -> None:
        if self._conn is None:
            return
        try:
            self._conn.execute(
                "INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?)",
                (key_of(fields), json.dumps(fields, sort_keys=True, default=str), json.dumps(value), time.time()),
            )
        except sqlite3.Error:
            pass  # a cache that cannot be written must not stop the run

    def __len__(self) -> int:
        if self._conn is None:
            return 0
        return self._conn.execute("SELECT COUNT(*) FROM results").fetchone()[0]
