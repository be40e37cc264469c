"""Settings from (in order of precedence) arguments, environment variables and ``tgsci.toml``.

``tgsci.toml`` (current directory, or the file named by ``TGSCI_CONFIG``)::

    [engine]
    model = "openai/gpt-4o"          # default: the embedded local model
    optimizer_model = "openai/gpt-4o" # optional: a different model for TGD updates
    feedback_model = "openai/gpt-4o-mini"
    api_base = "http://localhost:8000/v1"
    temperature = 0.7
    max_tokens = 512
    timeout = 120
    max_retries = 3                  # per call, with backoff, on timeouts, 429s and 5xx
    requests_per_minute = 500        # optional: the provider's limits, kept by every caller of the
    tokens_per_minute = 200000       #   model together (a sweep's workers share one limit)

Keys are never read from files: providers read them from their environment variables.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Optional

from .engine import DEFAULT_MODEL, Engine
from .rate_limit import RateLimits

ENV = {
    "model": "TGSCI_MODEL",
    "optimizer_model": "TGSCI_OPTIMIZER_MODEL",
    "feedback_model": "TGSCI_FEEDBACK_MODEL",
    "api_base": "TGSCI_API_BASE",
    "temperature": "TGSCI_TEMPERATURE",
    "max_tokens": "TGSCI_MAX_TOKENS",
    "timeout": "TGSCI_TIMEOUT",
    "max_retries": "TGSCI_MAX_RETRIES",
    "requests_per_minute": "TGSCI_REQUESTS_PER_MINUTE",
    "tokens_per_minute": "TGSCI_TOKENS_PER_MINUTE",
}
FLOATS = {"temperature", "timeout", "requests_per_minute", "tokens_per_minute"}
INTS = {"max_tokens", "max_retries"}
# The [engine] settings tgsci passes on (to litellm, and into run records): anything else, e.g.
# extra_headers or aws_secret_access_key, could carry a credential into config.json. Refused.
SAMPLING = ("temperature", "max_tokens", "top_p", "top_k", "min_p", "seed", "stop", "presence_penalty",
            "frequency_penalty", "repeat_penalty")
ALLOWED = (*ENV, *SAMPLING)
LOCAL_DEFAULTS = {"temperature": 0.8}


class ConfigError(ValueError):
    pass


def config_path() -> Optional[Path]:
    explicit = os.environ.get("TGSCI_CONFIG")
    if explicit:
        return Path(explicit)
    local = Path.cwd() / "tgsci.toml"
    return local if local.exists() else None


def load_file(path: Optional[Path] = None) -> dict:
    path = path or config_path()
    if path is None:
        return {}
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    for section in data.values():
        if isinstance(section, dict) and any("key" in k.lower() and "api" in k.lower() for k in section):
            raise ConfigError(f"{path}: API keys are read from the environment only; remove them from the file")
    return data


def engine_settings(overrides: Optional[dict] = None, path: Optional[Path] = None) -> dict:
    """Merged [engine] settings: file < environment < overrides (None values are ignored)."""
    merged: dict[str, Any] = dict(load_file(path).get("engine", {}))
    for key, var in ENV.items():
        if os.environ.get(var):
            merged[key] = os.environ[var]
    for key, value in (overrides or {}).items():
        if value is not None:
            merged[key] = value
    unknown = sorted(k for k in merged if k not in ALLOWED)
    if unknown:
        raise ConfigError(f"unknown [engine] setting{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; "
                          f"allowed: {', '.join(ALLOWED)} (keys and headers come from the environment only)")
    for key in (*FLOATS, *INTS):
        if key in merged:
            try:
                merged[key] = (float if key in FLOATS else int)(merged[key])
            except (TypeError, ValueError):
                raise ConfigError(f"[engine] {key} must be a number, not {merged[key]!r}") from None
    merged.setdefault("model", DEFAULT_MODEL)
    if merged["model"].startswith("local/"):
        for key, value in LOCAL_DEFAULTS.items():
            merged.setdefault(key, value)
    return merged


def make_engines(overrides: Optional[dict] = None, path: Optional[Path] = None, cache: bool = True) -> tuple[Engine, Engine]:
    """(feedback engine, optimizer engine); the same object when both use one model."""
    settings = engine_settings(overrides, path)
    model = settings.pop("model")
    feedback_model = settings.pop("feedback_model", None) or model
    optimizer_model = settings.pop("optimizer_model", None) or model
    api_base = settings.pop("api_base", None)
    timeout = settings.pop("timeout", 120.0)
    retries = settings.pop("max_retries", 3)
    if retries < 0:
        raise ConfigError(f"max_retries must be >= 0, not {retries}")
    try:
        limits = RateLimits(settings.pop("requests_per_minute", None), settings.pop("tokens_per_minute", None))
    except ValueError as exc:
        raise ConfigError(f"[engine] {exc}") from None
    common = dict(timeout=timeout, max_retries=retries, cache=cache, rate_limits=limits)
    feedback = Engine(feedback_model, api_base, **common, **settings)
    if optimizer_model == feedback_model:
        return feedback, feedback
    return feedback, Engine(optimizer_model, api_base, **common, **settings)
