"""The route a user takes with a capable model, for real: litellm's HTTP routes to a llama.cpp server.

`tgsci serve` runs llama.cpp's own OpenAI-compatible server with the embedded model on 127.0.0.1;
the tests talk to it exactly as tgsci talks to Ollama, vLLM or a llama.cpp server elsewhere
(`--model openai/... --api-base http://.../v1`, the key in OPENAI_API_KEY). No mock.
"""

import csv
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time

import pytest

from tgsci import Engine, EngineError, MissingKeyError
from tgsci.record import read_jsonl

pytestmark = pytest.mark.slow

MODEL = "openai/smollm2-135m"


class Server:
    """`tgsci serve` in a subprocess: started, killed and restarted on the same port."""

    def __init__(self, key: str, port: int = 0, parallel: int = 1):
        self.key, self.port, self.parallel = key, port, parallel
        self.proc = None
        self.url = ""

    def start(self) -> "Server":
        env = {**os.environ, "TGSCI_SERVE_API_KEY": self.key}
        self.proc = subprocess.Popen([sys.executable, "-m", "tgsci.cli", "serve", "--port", str(self.port), "--parallel", str(self.parallel)],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
        line = self.proc.stdout.readline()  # the banner's first line, once it listens
        match = re.search(r"(http://127\.0\.0\.1:(\d+)/v1)", line)
        assert match, f"no banner from tgsci serve: {line!r}"
        self.url, self.port = match.group(1), int(match.group(2))
        return self

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def server():
    srv = Server(secrets.token_hex(16), parallel=2).start()
    yield srv
    srv.stop()


@pytest.fixture
def client_env(server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", server.key)
    return server


def test_json_schema_reaches_the_server_and_constrains_it(client_env):
    engine = Engine(MODEL, client_env.url, cache=False, max_retries=0)
    schema = {"type": "object", "properties": {"code": {"type": "string", "enum": ["zebra-42-quartz"]}}, "required": ["code"]}
    reply = engine("Say hello.", response_format={"type": "json_schema", "json_schema": {"name": "c", "schema": schema}}, max_tokens=64)
    assert json.loads(reply.text) == {"code": "zebra-42-quartz"}  # no model says this unless the grammar makes it
    assert reply.usage.prompt_tokens > 0 and reply.usage.prompt_seconds > 0  # llama.cpp's timings come back over HTTP too


def test_the_vllm_route_works_against_the_same_kind_of_server(client_env, monkeypatch):
    """litellm's hosted_vllm/ route (vLLM's OpenAI-compatible API; its key in HOSTED_VLLM_API_KEY)."""
    monkeypatch.setenv("HOSTED_VLLM_API_KEY", client_env.key)
    engine = Engine("hosted_vllm/smollm2-135m", client_env.url, cache=False, max_retries=0)
    schema = {"type": "object", "properties": {"n": {"type": "integer", "enum": [7321]}}, "required": ["n"]}
    reply = engine("Pick a number.", response_format={"type": "json_schema", "json_schema": {"name": "n", "schema": schema}}, max_tokens=64)
    assert json.loads(reply.text) == {"n": 7321}


def test_the_key_is_checked_by_the_server(client_env, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "not-the-key")
    with pytest.raises(MissingKeyError, match="authentication failed"):
        Engine(MODEL, client_env.url, cache=False, max_retries=0)("Say OK.", max_tokens=4)


def test_the_seed_reaches_the_server(client_env):
    engine = Engine(MODEL, client_env.url, cache=False, temperature=1.2, max_retries=0)
    ask = lambda seed: engine("Write a sentence about the sea.", seed=seed, max_tokens=24).text  # noqa: E731
    assert ask(7) == ask(7)
    assert len({ask(seed) for seed in (1, 2, 3, 4)}) > 1


def test_a_call_slower_than_its_timeout_fails_fast_with_a_clear_error(client_env):
    engine = Engine(MODEL, client_env.url, cache=False, timeout=0.5, max_retries=0)
    start = time.perf_counter()
    with pytest.raises(EngineError, match="no usable reply after 1 attempts"):
        engine("Write a very long story about a ship.", max_tokens=1500, temperature=1.0)
    assert time.perf_counter() - start < 10


def _cli(args, env, **kw):
    return subprocess.Popen([sys.executable, "-m", "tgsci.cli", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def test_cli_run_over_http_survives_a_killed_server(tmp_path):
    """Killed mid-run: the engine retries, the step is recorded with its error, the run goes on once the server is back."""
    srv = Server(secrets.token_hex(16)).start()
    env = {**os.environ, "OPENAI_API_KEY": srv.key}
    run_dir = tmp_path / "run"
    args = ["molecule", "--target", "PPARA", "--aggregation", "qed", "--start", "c1ccccc1", "--steps", "5", "--proposals", "2",
            "--patience", "0", "--model", MODEL, "--api-base", srv.url, "--run-dir", str(run_dir), "--no-cache"]
    proc = _cli(args, env)
    try:
        trajectory = run_dir / "trajectory.jsonl"
        deadline = time.time() + 300
        while len(list(read_jsonl(trajectory)) if trajectory.exists() else []) < 2:  # start + step 1 over HTTP
            assert proc.poll() is None and time.time() < deadline, proc.stdout.read() if proc.poll() is not None else "timeout"
            time.sleep(0.2)
        srv.kill()
        while not any(r.get("error") for r in read_jsonl(trajectory)):  # retried, then recorded
            assert proc.poll() is None and time.time() < deadline, "the run ended instead of recording the failed step"
            time.sleep(0.2)
        srv.start()  # same port
        out, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
        srv.stop()
    assert proc.returncode == 0, out
    records = list(read_jsonl(run_dir / "trajectory.jsonl"))
    failed = [r for r in records if r.get("error")]
    assert failed and "no usable reply" in failed[0]["error"] and failed[0]["usage"]["failed_calls"] >= 1
    after = [r for r in records if r["step"] > failed[-1]["step"]]
    assert after and all(r["usage"]["calls"] >= 2 and not r.get("error") for r in after)  # the server answered again
    assert [r["step"] for r in records] == list(range(6))
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["stop_reason"] == "max_steps"
    config = json.loads((run_dir / "config.json").read_text())
    assert config["method"]["optimizer_engine"]["model"] == MODEL and config["method"]["optimizer_engine"]["api_base"] == srv.url
    assert srv.key not in (run_dir / "config.json").read_text() + (run_dir / "trajectory.jsonl").read_text()


def test_a_sweep_whose_workers_share_one_server_and_its_rate_limit(client_env, tmp_path):
    """Four workers behind a proxy that answers 429 (Retry-After: 1) above one request per 2 s, as a
    hosted API does: the limit set in [engine] (24 a minute) is kept by all of them together (one book
    on the Dask scheduler). No run fails; any 429 (a cold worker's first request can arrive late) is
    recorded and honoured; the waits are recorded per run and in the sweep's table."""
    from rate_proxy import RateLimitedProxy

    from tgsci.sweep import run_sweep
    from tgsci.sweep.report import report_sweep

    with RateLimitedProxy(client_env.url.removesuffix("/v1"), limit=1, window=2.0) as proxy:
        spec = {
            "sweep": {"name": "http", "kind": "molecule", "targets": ["PPARA", "JAK2"], "starts": ["c1ccccc1", "c1ccncc1"],
                      "seeds": [0], "methods": ["tgd"]},
            "budget": {"max_steps": 1, "n_proposals": 2, "patience": 0},
            "engine": {"model": MODEL, "api_base": proxy.url, "temperature": 0.8, "max_tokens": 160, "requests_per_minute": 24},
            "objective": {"aggregation": "qed", "compare_references": False},
            "resources": {"n_workers": 4, "llm_concurrency": 4},
        }
        result = run_sweep(spec, tmp_path / "sweep", n_workers=4, dashboard=False)
    assert result.ok and result.n_workers == 4
    runs = sorted(p for p in (tmp_path / "sweep").iterdir() if (p / "config.json").is_file())
    assert len(runs) == 4
    usage = []
    for run in runs:
        summary = json.loads((run / "summary.json").read_text())
        assert summary["stop_reason"] == "max_steps" and summary["usage"]["calls"] >= 2
        usage.append(summary["usage"])
        engine = json.loads((run / "config.json").read_text())["method"]["feedback_engine"]
        assert engine["api_base"] == proxy.url and engine["rate_limits"]["requests_per_minute"] == 24
    assert all(u["failed_calls"] == u["rate_limited"] for u in usage)  # nothing failed but 429s, each retried
    # every 429 recorded; few (a cold worker's first request may leave late, after its slot)
    assert sum(u["rate_limited"] for u in usage) == len(proxy.refused) <= 6, proxy.refused
    assert len(proxy.accepted) >= 8
    # 8+ requests spaced 2.5 s apart by one shared book: the runs waited, together at least a few seconds
    assert sum(u["wait_seconds"] for u in usage) > 5.0, usage
    report_sweep(tmp_path / "sweep")
    rows = list(csv.DictReader(open(tmp_path / "sweep" / "summary.csv")))
    assert sorted(float(r["rate_wait_s"]) for r in rows) == sorted(round(u["wait_seconds"], 2) for u in usage)


def test_serve_without_a_key_in_the_environment_makes_one(tmp_path):
    """llama.cpp answers any origin: with no TGSCI_SERVE_API_KEY the server gets a random key, printed
    once and kept in a 0600 file; a request without it is refused."""
    import urllib.error
    import urllib.request

    env = {k: v for k, v in os.environ.items() if k != "TGSCI_SERVE_API_KEY"}
    env["TGSCI_CACHE_DIR"] = str(tmp_path / "cache")
    proc = subprocess.Popen([sys.executable, "-m", "tgsci.cli", "serve", "--port", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, env=env)
    try:
        first, second = proc.stdout.readline(), proc.stdout.readline()
        url = re.search(r"(http://127\.0\.0\.1:\d+/v1)", first).group(1)
        key, path = re.search(r"set to (\S+) \(this server's new key, also in (\S+),", second).groups()
        assert open(path).read().strip() == key and os.stat(path).st_mode & 0o777 == 0o600
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{url}/models", timeout=30)
        assert refused.value.code == 401
        request = urllib.request.Request(f"{url}/models", headers={"Authorization": f"Bearer {key}"})
        assert "smollm2" in urllib.request.urlopen(request, timeout=30).read().decode()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
