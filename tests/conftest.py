import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


# The quick tier (python3 dev.py test --quick) leaves out these modules (real docking panels, notebooks,
# servers, the embedded model end to end, DICOM patients, sweeps) and every test marked slow itself.
SLOW_MODULES = {"test_docking", "test_http_route", "test_local_llm", "test_notebooks", "test_receptor", "test_patient",
                "test_sweep", "test_confirmation", "test_protocol", "test_faults", "test_dose_engine", "test_plan_judging",
                "test_plan_levels", "test_plan_pareto", "test_slurm"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.module.__name__.rsplit(".", 1)[-1] in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory) -> Path:
    """One docking/LLM cache for the whole session, never the user's ~/.cache."""
    path = tmp_path_factory.mktemp("tgsci-cache")
    os.environ["TGSCI_CACHE_DIR"] = str(path)
    return path


@pytest.fixture(autouse=True)
def _isolated_cache(shared_cache, monkeypatch):
    monkeypatch.setenv("TGSCI_CACHE_DIR", str(shared_cache))


@pytest.fixture(scope="session")
def plan(tmp_path_factory):
    """TG119 at the case's fast settings; the dose matrix is shared with tests/test_dose_engine.py."""
    from tgsci import build_objective

    path = tmp_path_factory.getbasetemp() / "dose-cache"
    path.mkdir(exist_ok=True)
    return build_objective({"kind": "plan", "case": "tg119", "fast": True, "cache_dir": str(path)})
