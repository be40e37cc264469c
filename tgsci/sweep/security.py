"""What keeps a sweep's Dask cluster to its own user on a shared node or cluster.

Dask's scheduler runs whatever a connected client submits, so a scheduler that accepts anyone runs
anyone's code as the sweep's user. Every cluster tgsci starts uses mutual TLS with credentials
made for that sweep alone (``Security.temporary()``: a fresh key and self-signed certificate, kept
in memory; a SLURM sweep's workers read them from 0600 files in a 0700 folder of the user's); a
client or worker without them fails the TLS handshake. The dashboard listens on loopback only,
unless the user names another address.
"""

from __future__ import annotations

import os
from pathlib import Path

LOOPBACK_DASHBOARD = "127.0.0.1:0"  # a free port on loopback: reach it from elsewhere with an SSH tunnel


def sweep_security():
    """Fresh TLS credentials for one sweep: every connection must present them (``require_encryption``)."""
    from distributed.security import Security

    return Security.temporary()


def private_folder(path: str | os.PathLike) -> Path:
    """``path`` created 0700 (and made so), for the worker credentials of a SLURM sweep: on the
    filesystem the nodes share, readable by this user only."""
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    if folder.is_symlink() or not folder.is_dir():
        raise OSError(f"{folder} must be a folder of its own (not a link) for the sweep's TLS credentials")
    if folder.stat().st_uid != os.getuid():
        raise OSError(f"{folder} belongs to another user: the sweep's TLS credentials cannot be kept there")
    os.chmod(folder, 0o700)
    return folder
