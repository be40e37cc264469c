"""Engine: kwargs pass-through, retries, timeouts, cache keys and hits, usage, keys never stored."""

import json
import subprocess
import sys
import warnings

import litellm
import pytest
from litellm import ModelResponse
from litellm import exceptions as lx

from tgsci.engine import Engine, EngineError, MissingKeyError, cache_key


def _response(text="ok", prompt_tokens=7, completion_tokens=3):
    return ModelResponse(
        model="openai/gpt-4o-mini",
        choices=[{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
        usage={"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens},
    )


@pytest.fixture
def fake_completion(monkeypatch):
    calls = []
    script = []

    def completion(**kwargs):
        calls.append(kwargs)
        item = script.pop(0) if script else _response()
        if isinstance(item, Exception):
            raise item
        return item

    monkeypatch.setattr(litellm, "completion", completion)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")
    return calls, script


def test_sampling_kwargs_reach_litellm_untouched(fake_completion, tmp_path):
    calls, _ = fake_completion
    engine = Engine("openai/gpt-4o-mini", temperature=0.3, top_p=0.9, seed=11, cache_dir=tmp_path)
    engine("hi", max_tokens=17, stop=["\n"])
    sent = calls[0]
    assert (sent["temperature"], sent["top_p"], sent["seed"], sent["max_tokens"], sent["stop"]) == (0.3, 0.9, 11, 17, ["\n"])
    assert sent["timeout"] == 120.0 and sent["model"] == "openai/gpt-4o-mini"


def test_transient_errors_are_retried_with_backoff(fake_completion, tmp_path):
    calls, script = fake_completion
    script += [lx.RateLimitError("slow down", "openai", "gpt-4o-mini"), lx.Timeout("timed out", "gpt-4o-mini", "openai"), _response("finally")]
    engine = Engine("openai/gpt-4o-mini", backoff_s=0.01, cache_dir=tmp_path)
    reply = engine("hi")
    assert reply.text == "finally" and len(calls) == 3 and engine.usage.failed_calls == 2


def test_empty_replies_are_retried_then_fail_clearly(fake_completion, tmp_path):
    _, script = fake_completion
    script += [_response("")] * 3
    engine = Engine("openai/gpt-4o-mini", max_retries=2, backoff_s=0.01, cache_dir=tmp_path)
    with pytest.raises(EngineError, match="no usable reply after 3 attempts"):
        engine("hi")


def test_auth_failure_is_not_retried_and_names_the_problem(fake_completion, tmp_path):
    calls, script = fake_completion
    script.append(lx.AuthenticationError("bad key", "openai", "gpt-4o-mini"))
    with pytest.raises(MissingKeyError, match="authentication failed"):
        Engine("openai/gpt-4o-mini", cache_dir=tmp_path)("hi")
    assert len(calls) == 1


def test_missing_key_names_the_environment_variable(monkeypatch, tmp_path):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(MissingKeyError, match="OPENAI_API_KEY"):
        Engine("openai/gpt-4o-mini", cache_dir=tmp_path)("hi")


def test_api_key_argument_is_refused():
    with pytest.raises(ValueError, match="environment"):
        Engine("openai/gpt-4o-mini", api_key="sk-x", cache=False)


def test_cache_hit_skips_the_call_and_is_counted(fake_completion, tmp_path):
    calls, _ = fake_completion
    engine = Engine("openai/gpt-4o-mini", temperature=0.5, cache_dir=tmp_path)
    first, second = engine("same prompt"), engine("same prompt")
    assert len(calls) == 1 and second.cached and second.text == first.text
    assert engine.usage.calls == 2 and engine.usage.cached_calls == 1 and engine.usage.prompt_tokens == 7
    # a different kwarg is a different request
    engine("same prompt", temperature=0.9)
    assert len(calls) == 2
    # a new engine (another process would do the same) reads the same disk cache
    Engine("openai/gpt-4o-mini", temperature=0.5, cache_dir=tmp_path)("same prompt")
    assert len(calls) == 2


def test_cache_can_be_turned_off(fake_completion):
    calls, _ = fake_completion
    engine = Engine("openai/gpt-4o-mini", cache=False)
    engine("x")
    engine("x")
    assert len(calls) == 2


def test_cache_key_is_stable_across_processes():
    messages = [{"role": "user", "content": "héllo"}]
    here = cache_key("m", messages, {"temperature": 0.7, "max_tokens": 5})
    code = (
        "import json,sys; sys.path.insert(0, '.'); from tgsci.engine import cache_key; "
        f"print(cache_key('m', {messages!r}, {{'max_tokens': 5, 'temperature': 0.7}}))"
    )
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert here == other and len(here) == 64
    assert cache_key("m", messages, {"temperature": 0.8}) != cache_key("m", messages, {"temperature": 0.7})


def test_unwritable_cache_directory_warns_and_still_works(fake_completion, tmp_path):
    blocked = tmp_path / "file-not-dir"
    blocked.write_text("x")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        engine = Engine("openai/gpt-4o-mini", cache_dir=blocked / "cache")
    assert any("not writable" in str(w.message) for w in caught)
    assert engine("hi").text == "ok"


def test_usage_and_cost_are_accounted_per_call(fake_completion, tmp_path):
    _, script = fake_completion
    script += [_response("a", 100, 10), _response("b", 50, 5)]
    engine = Engine("openai/gpt-4o-mini", cache=False)
    engine("one")
    engine("two")
    assert engine.usage.prompt_tokens == 150 and engine.usage.completion_tokens == 15
    assert engine.usage.cost_usd > 0  # gpt-4o-mini has a price in litellm's local cost map


def test_keys_never_reach_cache_or_run_files(fake_completion, tmp_path, monkeypatch):
    from scripted import NumberObjective

    from tgsci import optimize

    secret = "sk-SENTINEL-0123456789abcdef"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    _, script = fake_completion
    script += [_response("go higher"), _response(json.dumps({"proposals": ["40"]}))]
    engine = Engine("openai/gpt-4o-mini", cache_dir=tmp_path / "cache")
    optimize(NumberObjective(), "10", engine=engine, max_steps=1, n_proposals=1, run_dir=tmp_path / "run")
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path
