"""LLM engine: one thin wrapper over ``litellm.completion`` for every provider.

What it adds over a bare call: sampling kwargs passed through untouched, retries with
backoff on transient errors, a per-call timeout, a persistent sha256-keyed disk cache,
and token/cost accounting. API keys are read by litellm from the environment only;
the engine never accepts, stores or logs one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

from .rate_limit import LocalLimiter, RateLimits, estimate_tokens, limiter_key

# litellm downloads its price map at import unless told not to (no network here).
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

log = logging.getLogger("tgsci.engine")

DEFAULT_MODEL = "local/smollm2-135m"


class EngineError(RuntimeError):
    """The LLM could not be reached or answered unusably after all retries.

    ``usage``: what the failed attempts cost (calls that failed, seconds), for the run record.
    """

    def __init__(self, message: str = "", usage: "Optional[Usage]" = None):
        super().__init__(message)
        self.usage = usage


class MissingKeyError(EngineError):
    """A provider needs an API key that is not in the environment."""


@dataclass
class Usage:
    """Token, cost and call counts; added up per call, per step and per run."""

    calls: int = 0
    cached_calls: int = 0
    failed_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    seconds: float = 0.0
    prompt_seconds: float = 0.0  # prompt processing, where the provider reports it (the embedded model does)
    generation_seconds: float = 0.0
    cached_prompt_tokens: int = 0  # prompt tokens served from the provider's KV/prompt cache
    rate_limited: int = 0  # 429 replies (each also counts as a failed call)
    wait_seconds: float = 0.0  # time spent waiting for the model's rate limit or a 429's Retry-After

    def add(self, other: "Usage") -> None:
        for name, value in asdict(other).items():
            setattr(self, name, getattr(self, name) + value)

    def copy(self) -> "Usage":
        return Usage(**asdict(self))

    def plus(self, other: "Optional[Usage]") -> "Usage":
        """A new Usage: this one plus ``other`` (None counts as nothing)."""
        total = self.copy()
        if other is not None:
            total.add(other)
        return total

    def to_dict(self) -> dict:
        return asdict(self)

    def text(self) -> str:
        """One line for people: calls, tokens, cost and time (split when the provider reports it)."""
        line = (f"{self.calls} calls ({self.cached_calls} cached, {self.failed_calls} failed), {self.prompt_tokens} prompt"
                f"{f' ({self.cached_prompt_tokens} from the KV cache)' if self.cached_prompt_tokens else ''}"
                f" + {self.completion_tokens} completion tokens, ${self.cost_usd:.4f}, {self.seconds:.1f} s")
        if self.prompt_seconds or self.generation_seconds:
            line += f" (prompt {self.prompt_seconds:.1f} s, generation {self.generation_seconds:.1f} s)"
        if self.rate_limited or self.wait_seconds:
            line += f"; {self.wait_seconds:.1f} s waiting for the rate limit, {self.rate_limited} rate-limited (429)"
        return line


@dataclass
class Reply:
    text: str
    finish_reason: str = "stop"
    usage: Usage = field(default_factory=Usage)
    cached: bool = False


def cache_key(model: str, messages: list[dict], kwargs: dict) -> str:
    """Stable across processes (unlike Python's hash()): sha256 of the canonical JSON."""
    blob = json.dumps({"model": model, "messages": messages, "kwargs": kwargs}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def default_cache_dir() -> Path:
    from simulators.cache import default_cache_dir as cache_root

    return cache_root() / "llm"


def _open_cache(cache_dir: Path):
    """The LLM reply cache: JSON rows in SQLite (never pickles), in a directory of the user's own."""
    from simulators.cache import ResultCache

    return ResultCache(cache_dir, "llm.sqlite")


def missing_keys(model: str) -> list[str]:
    """Names of the environment variables the provider of ``model`` needs and does not have."""
    if model.startswith("local/"):
        return []
    import litellm

    empty = {k: v for k, v in os.environ.items() if k.endswith("_KEY") and not v.strip()}
    for name in empty:  # an empty key is a missing key
        del os.environ[name]
    try:
        check = litellm.validate_environment(model=model)
    except Exception:  # unknown provider: let the call itself report it
        return []
    finally:
        os.environ.update(empty)
    return list(check.get("missing_keys") or [])


class Engine:
    """Call any litellm model string: ``Engine("openai/gpt-4o", temperature=0.7)``.

    ``sampling`` kwargs (temperature, max_tokens, top_p, seed, stop, ...) go to every call
    unchanged; per-call kwargs override them. ``cache=False`` turns the disk cache off.
    """

    def __init__(
        self,
        model: Optional[str] = None,
        api_base: Optional[str] = None,
        *,
        timeout: float = 120.0,
        max_retries: int = 3,
        backoff_s: float = 1.0,
        cache: bool = True,
        cache_dir: Optional[os.PathLike] = None,
        rate_limits: Optional[RateLimits] = None,
        **sampling: Any,
    ) -> None:
        if "api_key" in sampling:
            raise ValueError("tgsci reads API keys from the environment only (e.g. OPENAI_API_KEY); do not pass api_key")
        self.model = model or os.environ.get("TGSCI_MODEL") or DEFAULT_MODEL
        self.api_base = api_base or os.environ.get("TGSCI_API_BASE") or None
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.sampling = dict(sampling)
        self.usage = Usage()
        # The model's requests/tokens per minute, shared with every engine on the same model and
        # endpoint: in this process by default; a sweep task swaps in the Dask scheduler's book.
        self.rate_limits = rate_limits or RateLimits()
        self.limiter = LocalLimiter(limiter_key(self.model, self.api_base), self.rate_limits) if self.rate_limits.active else None
        self._cache = _open_cache(Path(cache_dir) if cache_dir else default_cache_dir()) if cache else None
        if self.model.startswith("local/"):
            from .local_llm import register_local_provider

            register_local_provider()

    def __repr__(self) -> str:
        return f"Engine(model={self.model!r}, sampling={self.sampling!r})"

    @property
    def embedded(self) -> bool:
        """True for the in-process model (``local/...``): tgsci then sends its compact prompts, since
        every prompt token costs milliseconds on a CPU and a small model follows short prompts better."""
        return self.model.startswith("local/")

    def describe(self) -> dict:
        """What a run record keeps about this engine: never a key (credentials in the URL are masked)."""
        secret = ("key", "secret", "token", "header", "password", "auth")
        sampling = {k: "***" if any(w in k.lower() for w in secret) else v for k, v in self.sampling.items()}
        described = {"model": self.model, "api_base": masked_url(self.api_base), "sampling": sampling, "timeout": self.timeout}
        if self.rate_limits.active:
            described["rate_limits"] = self.rate_limits.to_dict()
        return described

    def check_keys(self) -> None:
        missing = missing_keys(self.model)
        if missing:
            raise MissingKeyError(
                f"model {self.model!r} needs {', '.join(missing)} in the environment; "
                f"export it (never put keys in files) or choose another model"
            )

    def __call__(
        self,
        prompt: str | list[dict],
        system: Optional[str] = None,
        **kwargs: Any,
    ) -> Reply:
        """Send one chat request; returns the reply text with its usage.

        ``cache_if(text) -> bool``: cache the reply only if it passes (a proposals reply only once
        it parses, so a resumed run never replays an unreadable one from the cache).
        """
        cache_if = kwargs.pop("cache_if", None)
        messages = _as_messages(prompt, system)
        call_kwargs = {**self.sampling, **kwargs}
        key_kwargs = {**call_kwargs, "api_base": self.api_base}
        key = cache_key(self.model, messages, key_kwargs)
        if self._cache is not None:
            hit = self._cache.get({"llm": key})
            if hit is not None and isinstance(hit.get("text"), str):
                reply = Reply(text=hit["text"], finish_reason=hit.get("finish_reason", "stop"), cached=True)
                reply.usage = Usage(calls=1, cached_calls=1)
                self.usage.add(reply.usage)
                return reply
        reply = self._call_with_retries(messages, call_kwargs)
        self.usage.add(reply.usage)
        if self._cache is not None and reply.text.strip() and (cache_if is None or cache_if(reply.text)):
            self._cache.put({"llm": key}, {"text": reply.text, "finish_reason": reply.finish_reason})
        return reply

    def _call_with_retries(self, messages: list[dict], call_kwargs: dict) -> Reply:
        import litellm
        from litellm import exceptions as lx

        litellm.suppress_debug_info = True
        transient = (
            lx.Timeout,
            lx.RateLimitError,
            lx.APIConnectionError,
            lx.ServiceUnavailableError,
            lx.InternalServerError,
        )
        self.check_keys()
        last_error: Optional[BaseException] = None
        failed = limited = 0
        waited = 0.0
        started = time.perf_counter()
        estimate = estimate_tokens(messages, call_kwargs.get("max_tokens"))
        for attempt in range(self.max_retries + 1):
            waited += self._wait_for_slot(estimate)
            start = time.perf_counter()
            delay = self.backoff_s * (2**attempt) * (1 + 0.25 * random.random())
            try:
                response = litellm.completion(
                    model=self.model,
                    messages=messages,
                    api_base=self.api_base,
                    timeout=self.timeout,
                    num_retries=0,
                    max_retries=0,  # the provider SDK's own retries off: 429s are counted and shared here
                    drop_params=True,  # e.g. `seed` for providers without it: dropped, not an error
                    **call_kwargs,
                )
                reply = _reply_from_response(response, time.perf_counter() - start)
                reply.usage.failed_calls = failed
                reply.usage.rate_limited = limited
                reply.usage.wait_seconds = waited
                if self.limiter is not None:
                    self.limiter.settle(reply.usage.prompt_tokens + reply.usage.completion_tokens - estimate)
                if reply.text.strip():
                    return reply
                last_error = EngineError("empty reply")
            except lx.AuthenticationError:
                raise MissingKeyError(f"{self.model}: authentication failed; check the provider's key variable") from None
            except (lx.BadRequestError, lx.NotFoundError) as exc:
                raise EngineError(f"{self.model}: request rejected: {_short(exc)}") from None
            except lx.RateLimitError as exc:
                last_error = exc
                limited += 1
                delay = retry_after_s(exc) or delay
                if self.limiter is not None:  # every caller of this model waits, not only this one
                    self.limiter.hold(delay)
            except transient as exc:
                last_error = exc
            failed += 1
            if attempt < self.max_retries:
                log.warning("LLM call failed (%s); retry %d/%d in %.1fs", _short(last_error), attempt + 1, self.max_retries, delay)
                if self.limiter is None or not isinstance(last_error, lx.RateLimitError):
                    time.sleep(delay)
                    waited += delay if isinstance(last_error, lx.RateLimitError) else 0.0
        self.usage.failed_calls += failed
        self.usage.rate_limited += limited
        self.usage.wait_seconds += waited
        where = f" at {masked_url(self.api_base)}" if self.api_base else ""
        raise EngineError(f"{self.model}{where}: no usable reply after {self.max_retries + 1} attempts: {_short(last_error)}",
                          usage=Usage(failed_calls=failed, rate_limited=limited, wait_seconds=waited,
                                      seconds=time.perf_counter() - started))

    def _wait_for_slot(self, tokens: int) -> float:
        """Sleep until the model's rate limit lets this request start; returns the seconds waited."""
        if self.limiter is None:
            return 0.0
        wait = self.limiter.reserve(tokens)
        if wait > 0:
            time.sleep(wait)
        return wait


MAX_RETRY_AFTER_S = 300.0


def retry_after_s(exc: BaseException) -> Optional[float]:
    """The Retry-After a 429 carried (seconds or an HTTP date), capped at 5 minutes; None if absent."""
    from litellm.utils import _get_retry_after_from_exception_header

    headers = getattr(exc, "litellm_response_headers", None) or getattr(getattr(exc, "response", None), "headers", None)
    try:
        seconds = _get_retry_after_from_exception_header(headers)
    except Exception:
        return None
    if seconds is None or seconds < 0:
        return None
    return min(float(seconds), MAX_RETRY_AFTER_S)


def masked_url(url: Optional[str]) -> Optional[str]:
    """``url`` with any user:password and query values replaced by ``***`` (for records and messages)."""
    if not url:
        return url
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    try:
        parts = urlsplit(url)
    except ValueError:
        return "***"
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    query = urlencode([(k, "***") for k, _ in parse_qsl(parts.query, keep_blank_values=True)], safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def is_embedded(engine) -> bool:
    """Whether ``engine`` (an Engine or any callable engine) is the in-process model."""
    return bool(getattr(engine, "embedded", False))


def _as_messages(prompt: str | list[dict], system: Optional[str]) -> list[dict]:
    if isinstance(prompt, list):
        messages = [dict(m) for m in prompt]
    else:
        messages = [{"role": "user", "content": str(prompt)}]
    if system:
        messages.insert(0, {"role": "system", "content": system})
    return messages


def _reply_from_response(response, seconds: float) -> Reply:
    choice = response.choices[0]
    text = choice.message.content or ""
    usage = getattr(response, "usage", None)
    prompt_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
    completion_tokens = int(getattr(usage, "completion_tokens", 0) or 0)
    cost = 0.0
    hidden = getattr(response, "_hidden_params", {}) or {}
    if hidden.get("response_cost"):
        cost = float(hidden["response_cost"])
    else:
        try:
            import litellm

            cost = float(litellm.completion_cost(completion_response=response) or 0.0)
        except Exception:
            cost = 0.0
    timings = getattr(response, "timings", None) or {}
    details = getattr(usage, "prompt_tokens_details", None)
    cached = int(timings.get("cache_n") or getattr(details, "cached_tokens", 0) or 0)
    return Reply(
        text=text,
        finish_reason=str(choice.finish_reason or "stop"),
        usage=Usage(calls=1, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, cost_usd=cost, seconds=seconds,
                    prompt_seconds=float(timings.get("prompt_ms") or 0.0) / 1000, generation_seconds=float(timings.get("predicted_ms") or 0.0) / 1000,
                    cached_prompt_tokens=cached),
    )


def _short(exc: Optional[BaseException]) -> str:
    text = f"{type(exc).__name__}: {exc}" if exc else "unknown error"
    return text if len(text) < 300 else text[:297] + "..."
