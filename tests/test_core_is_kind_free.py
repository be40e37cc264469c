"""The core never names a kind: a new domain (tgsci.domains) needs no core file touched.

Every string literal of the core modules is checked against the registered kinds and their
subject keys; each kind's commands (``cli.py``), spec models (``spec.py``) and protocols live in its package.
"""

import ast
from pathlib import Path

from tgsci.domains import domains

CORE = Path(__file__).resolve().parent.parent / "tgsci"


def _literals(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body
                  and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings]


def test_no_core_module_names_a_kind():
    names = {n for d in domains() for n in (d.kind, d.subject, d.subjects_key)}
    assert {"molecule", "plan", "targets", "cases"} <= names
    core = [p for p in CORE.rglob("*.py") if "domains" not in p.parts]
    assert len(core) >= 25
    hits = [f"{p.relative_to(CORE)}:{line}: {text!r}" for p in core for line, text in _literals(p) if text in names]
    assert not hits, hits


def test_each_kind_is_one_package_and_the_objectives_package_is_generic():
    for d in domains():
        package = CORE / "domains" / d.kind
        assert (package / "__init__.py").is_file() and (package / "objective.py").is_file(), d.kind
        assert type(d).__module__ == f"tgsci.domains.{d.kind}"
    assert sorted(p.name for p in (CORE / "objectives").glob("*.py")) == ["__init__.py", "base.py", "function.py"]
