"""``tgsci serve``: the embedded model as an OpenAI-compatible HTTP server (llama.cpp's own).

Workers of a sweep, notebooks or another machine then reach one model through litellm's HTTP
routes: ``--model openai/smollm2-135m --api-base http://127.0.0.1:PORT/v1`` with the server's
key in ``OPENAI_API_KEY``. It binds 127.0.0.1 unless told otherwise. It always has a key, since
llama.cpp's server answers every origin (any local user, any web page in the user's browser):
``$TGSCI_SERVE_API_KEY``, or a random one written to a 0600 file and printed once. ``no_key``
serves loopback without one, for those who ask.
"""

from __future__ import annotations

import ipaddress
import os
import signal
import threading
from dataclasses import dataclass

KEY_VARIABLE = "TGSCI_SERVE_API_KEY"


class ServeError(ValueError):
    pass


@dataclass
class Served:
    """A running server: its OpenAI base URL and where its key came from ("env", "file", "none")."""

    server: object
    base_url: str
    model: str
    key_source: str
    key: str = ""
    key_file: str = ""


def _new_key_file() -> tuple[str, str]:
    """A random key in a fresh 0600 file under the user's private cache directory."""
    import secrets
    import tempfile

    from simulators.cache import default_cache_dir, private_dir

    key = secrets.token_urlsafe(24)
    fd, path = tempfile.mkstemp(dir=private_dir(default_cache_dir() / "serve"), prefix="key-", suffix=".txt")
    with os.fdopen(fd, "w") as handle:  # mkstemp: 0600
        handle.write(key + "\n")
    return key, path


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(model: str = "smollm2-135m", host: str = "127.0.0.1", port: int = 8080, parallel: int = 1,
          threads: int = 0, no_key: bool = False) -> Served:
    """Start the server (in this process, in llama.cpp's threads) and return once it listens.

    ``parallel``: request slots (sweep workers served at once); ``threads``: 0 = this machine's
    cores up to 4. The key is ``$TGSCI_SERVE_API_KEY``, else a new random one (in a 0600 file);
    ``no_key`` serves without one, on loopback only."""
    import xllamacpp

    from .local_llm import server_params

    if parallel < 1 or threads < 0 or not 0 <= port <= 65535:
        raise ServeError("--parallel must be >= 1, --threads >= 0 and --port within 0-65535")
    key, source, key_file = os.environ.get(KEY_VARIABLE, "").strip(), "env", ""
    if no_key:
        if not _loopback(host):
            raise ServeError(f"serving on {host} (reachable from other machines) needs a key: drop --no-key")
        key, source = "", "none"
    elif not key:
        key, key_file = _new_key_file()
        source = "file"
    server = xllamacpp.Server(server_params(model, host, key or None, port=port, n_parallel=parallel, threads=threads))
    address = server.listening_address  # "http://HOST:PORT"
    return Served(server, f"{address.rstrip('/')}/v1", model, source, key if source == "file" else "", key_file)


def wait_for_signal() -> None:
    """Block until SIGINT or SIGTERM."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()


def banner(served: Served) -> str:
    """What to tell the user: a key from the environment is never printed; a generated one is,
    once, with the file that keeps it."""
    if served.key_source == "env":
        key = f"set to the value of {KEY_VARIABLE}"
    elif served.key_source == "file":
        key = f"set to {served.key} (this server's new key, also in {served.key_file}, readable by you only)"
    else:
        key = "set to any text (this server has no key: --no-key)"
    return (f"serving local/{served.model} at {served.base_url} (OpenAI-compatible; llama.cpp)\n"
            f"use: --model openai/{served.model} --api-base {served.base_url} with OPENAI_API_KEY {key}")
