"""``tgsci serve``: the embedded model as an OpenAI-compatible HTTP server (llama.cpp's own).

Workers of a sweep, notebooks or another machine then reach one model through litellm's HTTP
routes: ``--model openai/smollm2-135m --api-base http://127.0.0.1:PORT/v1`` with the server's
key in ``OPENAI_API_KEY``. It binds 127.0.0.1 unless told otherwise; any other address needs a
key (``TGSCI_SERVE_API_KEY``), since llama.cpp's server answers every origin.
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
    """A running server: its OpenAI base URL and whether its key came from the environment."""

    server: object
    base_url: str
    model: str
    key_from_env: bool


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(model: str = "smollm2-135m", host: str = "127.0.0.1", port: int = 8080, parallel: int = 1,
          threads: int = 0) -> Served:
    """Start the server (in this process, in llama.cpp's threads) and return once it listens.

    ``parallel``: request slots (sweep workers served at once); ``threads``: 0 = this machine's
    cores up to 4. The key is ``$TGSCI_SERVE_API_KEY``: required off loopback, optional on it."""
    import xllamacpp

    from .local_llm import server_params

    if parallel < 1 or threads < 0 or not 0 <= port <= 65535:
        raise ServeError("--parallel must be >= 1, --threads >= 0 and --port within 0-65535")
    key = os.environ.get(KEY_VARIABLE, "").strip()
    if not key and not _loopback(host):
        raise ServeError(f"serving on {host} (reachable from other machines) needs a key: set {KEY_VARIABLE}")
    server = xllamacpp.Server(server_params(model, host, key or None, port=port, n_parallel=parallel, threads=threads))
    address = server.listening_address  # "http://HOST:PORT"
    return Served(server, f"{address.rstrip('/')}/v1", model, bool(key))


def wait_for_signal() -> None:
    """Block until SIGINT or SIGTERM."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()


def banner(served: Served) -> str:
    """What to tell the user; never the key itself."""
    key = f"set to the value of {KEY_VARIABLE}" if served.key_from_env else "set to any text (this server has no key)"
    return (f"serving local/{served.model} at {served.base_url} (OpenAI-compatible; llama.cpp)\n"
            f"use: --model openai/{served.model} --api-base {served.base_url} with OPENAI_API_KEY {key}")
