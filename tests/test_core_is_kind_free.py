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


def test_the_objective_interface_is_narrow_and_the_rest_are_capabilities():
    """A subclass writes describe, validate, evaluate and verbalize; the base class adds helpers only.
    What a method or the loop may use beyond that is a Protocol each objective has or not."""
    from tgsci import build_objective
    from tgsci.objectives import base
    from tgsci.objectives.function import FunctionObjective

    public = {n for n, v in vars(base.Objective).items() if callable(v) and not n.startswith("_")}
    assert public == {"describe", "describe_short", "constraints", "validate", "checked", "evaluate", "screen",
                      "summarize", "verbalize", "invalid_text", "fingerprint", "close"}
    capabilities = {c.__name__: c for c in (base.HasGoals, base.HasReferences, base.ShowsReferences, base.WritesOutputs,
                                            base.Mutates, base.Crosses, base.SearchSpace, base.Confirms, base.ExportsDose)}

    def has(objective) -> set[str]:
        return {name for name, c in capabilities.items() if isinstance(objective, c)}

    assert has(FunctionObjective(lambda v: (0.0, ""), "nothing")) == set()
    assert has(FunctionObjective(lambda v: (0.0, ""), "nothing", neighbor=lambda v, rng: v)) == {"Mutates"}
    molecule = build_objective({"target": "PPARA", "aggregation": "qed", "compare_references": False})
    plan = build_objective({"kind": "plan", "case": "tg119", "fast": True})
    try:
        assert has(molecule) == {"HasGoals", "HasReferences", "WritesOutputs", "Mutates", "Crosses", "Confirms"}
        assert has(plan) == {"HasGoals", "HasReferences", "ShowsReferences", "WritesOutputs", "Mutates", "Crosses",
                             "SearchSpace", "ExportsDose"}
    finally:
        molecule.close()
        plan.close()
