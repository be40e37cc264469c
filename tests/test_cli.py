"""CLI and configuration: version, engines, clear errors, precedence of settings."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tgsci.config import ConfigError, engine_settings, make_engines

ROOT = Path(__file__).resolve().parent.parent


def tgsci(*args, env=None, cwd=None):
    return subprocess.run([sys.executable, "-m", "tgsci.cli", *args], capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "200", **(env or {})}, cwd=cwd or ROOT, timeout=300)


def test_version():
    out = tgsci("--version")
    from importlib.metadata import version

    from tgsci.version import __version__

    assert out.returncode == 0 and out.stdout.strip() == f"tgsci {__version__}"
    assert version("tgsci") == __version__  # the installed metadata reads the same one place


def test_unknown_target_fails_fast_and_lists_valid_names(tmp_path):
    out = tgsci("molecule", "--target", "NOPE", "--run-dir", str(tmp_path / "r"))
    assert out.returncode == 2 and "unknown target 'NOPE'" in out.stderr and "PPARA" in out.stderr
    assert not (tmp_path / "r").exists()


def test_missing_key_names_the_variable(tmp_path):
    env = {k: v for k, v in os.environ.items() if "API_KEY" not in k}
    out = subprocess.run([sys.executable, "-m", "tgsci.cli", "molecule", "--model", "openai/gpt-4o", "--run-dir", str(tmp_path / "r")],
                         capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert out.returncode == 2 and "OPENAI_API_KEY" in out.stderr


def test_engines_lists_the_embedded_model_and_missing_keys():
    out = tgsci("engines", env={"TGSCI_MODEL": "anthropic/claude-sonnet-4-5", "ANTHROPIC_API_KEY": ""})
    assert out.returncode == 0
    assert "ANTHROPIC_API_KEY" in out.stdout and "local/smollm2-135m" in out.stdout


def test_settings_precedence_file_then_env_then_arguments(tmp_path, monkeypatch):
    path = tmp_path / "tgsci.toml"
    path.write_text('[engine]\nmodel = "openai/gpt-4o"\ntemperature = 0.2\nmax_tokens = 300\n')
    monkeypatch.setenv("TGSCI_CONFIG", str(path))
    monkeypatch.setenv("TGSCI_TEMPERATURE", "0.5")
    monkeypatch.delenv("TGSCI_MODEL", raising=False)
    settings = engine_settings({"max_tokens": 99})
    assert settings == {"model": "openai/gpt-4o", "temperature": 0.5, "max_tokens": 99}


def test_keys_in_the_config_file_are_refused(tmp_path, monkeypatch):
    path = tmp_path / "tgsci.toml"
    path.write_text('[engine]\nmodel = "openai/gpt-4o"\napi_key = "sk-123"\n')
    monkeypatch.setenv("TGSCI_CONFIG", str(path))
    with pytest.raises(ConfigError, match="environment only"):
        engine_settings()


def test_separate_optimizer_model(monkeypatch, tmp_path):
    monkeypatch.delenv("TGSCI_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    feedback, optimizer = make_engines({"model": "openai/gpt-4o-mini", "optimizer_model": "openai/gpt-4o"}, cache=False)
    assert feedback.model == "openai/gpt-4o-mini" and optimizer.model == "openai/gpt-4o"
    same_a, same_b = make_engines({"model": "local/smollm2-135m"}, cache=False)
    assert same_a is same_b and same_a.sampling["temperature"] == 0.8


def test_a_bad_case_file_is_one_error_with_its_line_and_no_run_directory(tmp_path):
    """A DVH objective without its volume: the file, line and key are named before any dose work,
    rich does not eat the [table] names, and no run directory is made."""
    text = (ROOT / "targets" / "cases" / "tg119.toml").read_text()
    bad = text.replace('kind = "squared_overdose"\n  dose_gy = 25.0', 'kind = "max_dvh"\n  dose_gy = 25.0', 1)
    assert bad != text
    case = tmp_path / "bad.toml"
    case.write_text(bad)
    line = next(n for n, raw in enumerate(bad.splitlines(), 1) if 'kind = "max_dvh"' in raw)
    out = tgsci("plan", "--case", str(case), "--fast", "--run-dir", str(tmp_path / "run"))
    message = " ".join(out.stderr.split())
    assert out.returncode == 2, out.stderr
    assert f"line {line}: structures[1].objectives[0].kind" in message and "needs volume_pct" in message
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_an_unreachable_llm_stops_the_run_with_its_own_reason_and_exit_code(tmp_path):
    """Every LLM call fails (nothing listens at --api-base): the run stops after a few failed steps,
    names the endpoint and the error, exits non-zero, and the same command later resumes it."""
    run = tmp_path / "run"
    args = ("molecule", "--aggregation", "qed", "--confirm-seeds", "1", "--patience", "0", "--model", "openai/any",
            "--api-base", "http://user:pw@127.0.0.1:9/v1", "--steps", "8", "--run-dir", str(run))  # QED only: no docking
    env = {"OPENAI_API_KEY": "not-a-real-key", "TGSCI_MAX_RETRIES": "0"}
    out = tgsci(*args, env=env)
    text = " ".join((out.stdout + out.stderr).split())
    assert out.returncode == 3, text
    assert "failed on 3 steps in a row" in text and "after 1 attempts" in text and "http://***@127.0.0.1:9/v1" in text and "Connection" in text
    assert "pw" not in (run / "config.json").read_text()
    from tgsci.record import RunRecord

    record = RunRecord.load(run)
    assert record.summary.stop_reason.startswith("engine_error") and [s.step for s in record.steps] == [0, 1, 2, 3]
    again = tgsci(*args, env=env)
    assert again.returncode == 3 and "resuming" in again.stdout + again.stderr
    assert [s.step for s in RunRecord.load(run).steps] == list(range(7))


def test_unknown_engine_settings_are_refused(tmp_path, monkeypatch):
    config = tmp_path / "tgsci.toml"
    config.write_text('[engine]\nmodel = "openai/gpt-4o"\nextra_headers = "Authorization: x"\n')
    monkeypatch.setenv("TGSCI_CONFIG", str(config))
    with pytest.raises(ConfigError, match="unknown \\[engine\\] setting extra_headers"):
        engine_settings()


def test_exporting_a_dose_from_a_run_that_has_none_is_refused(tmp_path):
    run = tmp_path / "mol"
    done = tgsci("molecule", "--aggregation", "qed", "--method", "random", "--steps", "1", "--proposals", "1",
                 "--confirm-seeds", "1", "--start", "c1ccc2[nH]ccc2c1", "--run-dir", str(run))
    assert done.returncode == 0, done.stderr
    assert "c1ccc2[nH]ccc2c1" in done.stdout  # printed as text, not eaten as rich markup
    refused = tgsci("plan", "--run-dir", str(run), "--export-dose", "best")
    assert refused.returncode == 2 and "is a molecule run: it has no dose to export" in " ".join(refused.stderr.split())
    assert not list(run.glob("*.dcm"))
