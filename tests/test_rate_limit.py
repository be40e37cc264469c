"""Rate limits shared by every caller of one model: the book's arithmetic, the engine's 429
handling (Retry-After honoured, waits recorded) and one book on the Dask scheduler for all workers."""

import httpx
import litellm
import pytest
from litellm import ModelResponse
from litellm import exceptions as lx

import tgsci.engine as engine_module
from tgsci.config import ConfigError, make_engines
from tgsci.engine import Engine, retry_after_s
from tgsci.rate_limit import LocalLimiter, RateLimits, SchedulerLimiter, SlotBook, estimate_tokens


def test_the_book_spaces_requests_evenly_and_a_429_holds_everyone():
    book = SlotBook()
    assert [book.reserve("m", 1.0, now=10.0) for _ in range(3)] == [0.0, 1.0, 2.0]  # next slots 10, 11, 12
    assert book.reserve("other", 1.0, now=10.0) == 0.0  # another model has its own limit
    book.hold("m", 5.0, now=10.5)  # Retry-After 5 s: nobody before 15.5
    assert book.reserve("m", 1.0, now=10.5) == pytest.approx(5.0)
    book.settle("m", -100.0, now=11.0)  # an estimate far too high gives its time back, never before now
    assert book.reserve("m", 1.0, now=11.0) == 0.0


def test_a_request_costs_its_share_of_the_tighter_limit():
    limits = RateLimits(requests_per_minute=120, tokens_per_minute=6000)
    assert limits.cost_s(10) == pytest.approx(0.5)  # the request limit binds: 60/120
    assert limits.cost_s(1000) == pytest.approx(10.0)  # the token limit binds: 1000 * 60/6000
    assert estimate_tokens([{"role": "user", "content": "x" * 400}], max_tokens=50) == 150
    for bad in (0, -5, float("nan"), float("inf"), "fast"):
        with pytest.raises(ValueError, match="requests_per_minute must be a number > 0"):
            RateLimits(requests_per_minute=bad)


def test_limits_come_from_the_engine_config_and_bad_ones_are_refused(monkeypatch, tmp_path):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")
    monkeypatch.setenv("TGSCI_REQUESTS_PER_MINUTE", "30")
    feedback, optimizer = make_engines({"model": "openai/gpt-4o-mini", "tokens_per_minute": 9000}, cache=False)
    assert feedback.rate_limits == RateLimits(30.0, 9000.0) and feedback.describe()["rate_limits"]["tokens_per_minute"] == 9000.0
    monkeypatch.setenv("TGSCI_REQUESTS_PER_MINUTE", "-1")
    with pytest.raises(ConfigError, match="requests_per_minute must be a number > 0"):
        make_engines({"model": "openai/gpt-4o-mini"}, cache=False)
    monkeypatch.setenv("TGSCI_REQUESTS_PER_MINUTE", "lots")
    with pytest.raises(ConfigError, match="requests_per_minute must be a number, not 'lots'"):
        make_engines({"model": "openai/gpt-4o-mini"}, cache=False)


def _ok(prompt_tokens=7, completion_tokens=3):
    return ModelResponse(model="openai/gpt-4o-mini",
                         choices=[{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "ok"}}],
                         usage={"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                                "total_tokens": prompt_tokens + completion_tokens})


def _429(retry_after: str):
    return lx.RateLimitError("slow down", "openai", "gpt-4o-mini",
                             response=httpx.Response(429, headers={"retry-after": retry_after}))


@pytest.fixture
def fake(monkeypatch):
    """litellm.completion replaced by a script; time.sleep recorded instead of slept; a fresh book."""
    script, sleeps = [], []

    def completion(**kwargs):
        item = script.pop(0) if script else _ok()
        if isinstance(item, Exception):
            raise item
        return item

    monkeypatch.setattr(litellm, "completion", completion)
    monkeypatch.setattr(engine_module.time, "sleep", sleeps.append)
    monkeypatch.setattr(LocalLimiter, "_books", {})
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")
    return script, sleeps


def test_a_429s_retry_after_is_honoured_and_recorded(fake):
    script, sleeps = fake
    script += [_429("3"), _ok()]
    engine = Engine("openai/gpt-4o-mini", backoff_s=0.01, cache=False)
    reply = engine("hi")
    assert sleeps == [3.0]  # the server's Retry-After, not the 0.01 s backoff
    assert (reply.usage.rate_limited, reply.usage.failed_calls, reply.usage.wait_seconds) == (1, 1, 3.0)
    assert engine.usage.rate_limited == 1 and "1 rate-limited (429)" in engine.usage.text()
    assert retry_after_s(_429("Wed, 21 Oct 2015 07:28:00 GMT")) is None  # a date in the past: no wait
    assert retry_after_s(_429("100000")) == 300.0  # capped


def test_engines_on_one_model_share_its_limit_and_a_429_holds_all_of_them(fake):
    script, sleeps = fake
    a = Engine("openai/gpt-4o-mini", cache=False, rate_limits=RateLimits(requests_per_minute=60))
    b = Engine("openai/gpt-4o-mini", cache=False, rate_limits=RateLimits(requests_per_minute=60))
    other = Engine("openai/gpt-4o", cache=False, rate_limits=RateLimits(requests_per_minute=60))
    a("one"), b("two"), other("three")  # sleeping is faked, so the clock barely moves: slots 0 s, 1 s; other model 0 s
    assert sleeps == [pytest.approx(1.0, abs=0.05)]
    assert b.usage.wait_seconds == pytest.approx(1.0, abs=0.05) and other.usage.wait_seconds == 0.0
    script += [_429("10"), _ok()]
    a("four")  # its slot is at ~2 s; the 429 then holds the model for 10 s: the retry waits for that, not a backoff
    assert sleeps[-2:] == [pytest.approx(2.0, abs=0.05), pytest.approx(10.0, abs=0.1)]
    b("five")  # b waits for the hold too (it never saw the 429)
    assert sleeps[-1] == pytest.approx(10.0 + 1.0, abs=0.1)


def test_a_dask_sweeps_workers_book_on_one_scheduler():
    from distributed import Client, LocalCluster, get_client

    def book(i):
        return SchedulerLimiter("model@", RateLimits(requests_per_minute=60), get_client()).reserve(10)

    with LocalCluster(n_workers=2, threads_per_worker=2, processes=False, dashboard_address=None) as cluster, Client(cluster) as client:
        waits = sorted(client.gather(client.map(book, range(4))))
        assert waits == pytest.approx([0.0, 1.0, 2.0, 3.0], abs=0.2)  # one book: four slots a second apart
