"""Sweeps: hundreds of independent ``optimize()`` runs from one TOML file, on Dask distributed.

A sweep file names the objective (molecules: targets x starting SMILES; plans: cases), the
seeds, the methods, the budget and the simulator settings; ``run_sweep`` expands it into runs,
one run directory each under ``out_dir`` (named ``PPARA__start0-1a2b3c4d__seed0__tgd``), and
runs each as one Dask task that builds its own objective and engine inside the worker and
calls ``optimize()`` on its run directory::

    [sweep]
    kind = "molecule"                 # molecule | plan
    targets = ["PPARA", "JAK2"]       # or "all"  (plans: cases = ["tg119"] or "all")
    starts = ["c1ccccc1", "CCO"]      # plans: optional, default ["default"] = the case's weights
    seeds = [0, 1]                    # or a count: seeds = 2
    methods = ["tgd", "random"]       # or method = "tgd"

    [budget]                          # optimize() arguments
    max_steps = 10
    n_proposals = 4
    max_evaluations = 40
    patience = 3                      # 0 = no early stopping

    [engine]                          # config.make_engines() overrides
    model = "local/smollm2-135m"

    [docking]                         # simulators.docking.DockingSettings fields
    exhaustiveness = 8
    cpu = 1                           # Vina threads per docking process (sweep default 1)

    [objective]                       # MoleculeObjective options
    aggregation = "dockstring"
    compare_references = true

    [resources]
    llm_concurrency = 2               # LLM calls at once across the whole sweep
    docking_workers = 1               # docking processes per run
    max_attempts = 3                  # failures before a run is left as failed

Files in ``out_dir``: ``sweep.json`` (the expanded run list), ``status.json`` (status,
attempts and failures per run; written atomically by the sweep process only), ``sweep.lock``
(held while a sweep runs; a second sweep on the same directory refuses to start), and per
run: optimize()'s own files plus ``sweep_run.json`` (one entry per attempt: worker, wall
times, dockings actually run), written atomically by the task.

Re-running a sweep skips finished runs, resumes interrupted ones from their run directories
(optimize appends every step, so a kill loses no finished step) and retries failed ones until
they have failed ``max_attempts`` times. A run that ended with ``engine_error`` (LLM provider
down) counts as failed; the next invocation resumes it from its trajectory.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import logging
import math
import os
import socket
import time
import tomllib
import traceback
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Optional

from .rundir import read_json, write_json_atomic

log = logging.getLogger("tgsci.sweep")

KINDS = ("molecule", "plan")
METHODS = ("tgd", "random", "graph-ga", "tpe")
LOCK_NAME = "sweep.lock"
RUN_FILE = "sweep_run.json"

# Allowed keys per table; a key outside these is an error that names it.
SPEC_KEYS: dict[str, tuple[str, ...]] = {
    "sweep": ("name", "kind", "targets", "cases", "starts", "seeds", "method", "methods"),
    "budget": ("max_steps", "n_proposals", "max_evaluations", "patience", "min_improvement", "target_score"),
    "engine": ("model", "optimizer_model", "feedback_model", "api_base", "temperature", "max_tokens", "timeout", "top_p", "max_retries"),
    "docking": ("exhaustiveness", "seed", "n_poses", "ph", "writer", "cpu", "timeout_s", "memory_limit_mb", "limits"),
    "objective": ("aggregation", "qed_weight", "compare_references", "scaffold", "max_mol_weight", "constraints"),
    "plan": None,  # passed to PlanObjective.from_case(); checked against its signature when importable
    "resources": ("n_workers", "llm_concurrency", "docking_workers", "max_attempts", "cache_dir", "run_lock_timeout_s"),
}
LIMIT_KEYS = ("max_heavy_atoms", "max_rotatable_bonds", "allow_fragments")
BUDGET_DEFAULTS = {"max_steps": 10, "n_proposals": 4, "max_evaluations": None, "patience": 3, "min_improvement": 0.0, "target_score": None}
RESOURCE_DEFAULTS = {"n_workers": None, "llm_concurrency": None, "docking_workers": 1, "max_attempts": 3, "cache_dir": None, "run_lock_timeout_s": 3600.0}


class SpecError(ValueError):
    """The sweep file is malformed, names an unknown key, target, case or method, or misses a key."""


class SweepLockedError(RuntimeError):
    """Another sweep holds the lock on this output directory."""


# ============================================================================ specification
@dataclass
class SweepSpec:
    kind: str
    subjects: list[str]  # targets (molecule) or cases (plan)
    starts: list[str]
    seeds: list[int]
    methods: list[str]
    budget: dict
    engine: dict
    docking: dict
    objective: dict
    plan: dict
    resources: dict
    name: str = ""
    source: str = "<dict>"
    raw: dict = field(default_factory=dict)

    def expand(self) -> list[dict]:
        """One dict per run (JSON-able; what a task receives), in a deterministic order."""
        runs = []
        for subject in self.subjects:
            for i, start in enumerate(self.starts):
                for seed in self.seeds:
                    for method in self.methods:
                        runs.append({
                            "name": run_name(subject, i, start, seed, method),
                            "kind": self.kind,
                            "target" if self.kind == "molecule" else "case": subject,
                            "start": start,
                            "start_index": i,
                            "seed": seed,
                            "method": method,
                            "budget": dict(self.budget),
                            "engine": dict(self.engine),
                            "docking": dict(self.docking),
                            "objective": dict(self.objective),
                            "plan": dict(self.plan),
                            "docking_workers": self.resources["docking_workers"],
                            "cache_dir": self.resources["cache_dir"],
                            "run_lock_timeout_s": self.resources["run_lock_timeout_s"],
                        })
        return runs


def run_name(subject: str, start_index: int, start: str, seed: int, method: str) -> str:
    """``PPARA__start0-1a2b3c4d__seed0__tgd``: stable for the same spec, unique per start string."""
    digest = hashlib.sha1(start.encode("utf-8")).hexdigest()[:8]
    return f"{subject}__start{start_index}-{digest}__seed{seed}__{method}"


def load_spec(path: str | os.PathLike) -> SweepSpec:
    """Read and check a sweep TOML file; SpecError says the line (syntax) or the key (content)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"cannot read sweep file {path}: {exc.strerror or exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:  # its message carries "(at line L, column C)"
        raise SpecError(f"{path}: invalid TOML: {exc}") from None
    return parse_spec(data, source=str(path), text=text)


def parse_spec(data: dict, source: str = "<dict>", text: str = "") -> SweepSpec:
    """Check a parsed sweep specification (see the module docstring for the format)."""
    where = _Where(source, text)
    if not isinstance(data, dict):
        raise SpecError(f"{source}: the sweep specification must be a table")
    for table, value in data.items():
        if table not in SPEC_KEYS:
            raise SpecError(where.unknown(table, None, list(SPEC_KEYS), what="table"))
        if not isinstance(value, dict):
            raise SpecError(f"{where.at(None, table)}: '{table}' must be a table ([{table}]), not {type(value).__name__}")
        allowed = SPEC_KEYS[table]
        if allowed is not None:
            for key in value:
                if key not in allowed:
                    raise SpecError(where.unknown(key, table, list(allowed)))
    sweep = data.get("sweep")
    if sweep is None:
        raise SpecError(f"{source}: missing table [sweep] (with kind, targets or cases, starts, seeds, method)")
    kind = sweep.get("kind", "molecule")
    if kind not in KINDS:
        raise SpecError(f"{where.at('sweep', 'kind')}: sweep.kind must be one of {', '.join(KINDS)}, not {kind!r}")

    # methods
    if "method" in sweep and "methods" in sweep:
        raise SpecError(f"{where.at('sweep', 'methods')}: give sweep.method or sweep.methods, not both")
    if "method" not in sweep and "methods" not in sweep:
        raise SpecError(f"{source}: missing key sweep.method (or sweep.methods); choose from {', '.join(METHODS)}")
    methods = _str_list(sweep.get("methods", sweep.get("method")), "sweep.methods" if "methods" in sweep else "sweep.method", where)
    for m in methods:
        if m not in METHODS:
            raise SpecError(f"{where.at('sweep', 'methods' if 'methods' in sweep else 'method')}: unknown method {m!r}; choose from {', '.join(METHODS)}")

    # seeds
    seeds_raw = sweep.get("seeds", [0])
    if _is_int(seeds_raw):
        if seeds_raw < 1:
            raise SpecError(f"{where.at('sweep', 'seeds')}: sweep.seeds as a count must be >= 1")
        seeds = list(range(seeds_raw))
    elif isinstance(seeds_raw, list) and seeds_raw and all(_is_int(s) for s in seeds_raw):
        seeds = _unique(seeds_raw)
    else:
        raise SpecError(f"{where.at('sweep', 'seeds')}: sweep.seeds must be a count (e.g. 3) or a non-empty list of integers")

    # subjects and starts
    if kind == "molecule":
        if "cases" in sweep:
            raise SpecError(f"{where.at('sweep', 'cases')}: sweep.cases is for kind = \"plan\"; molecules take sweep.targets")
        if "targets" not in sweep:
            raise SpecError(f"{source}: missing key sweep.targets (a list of target names, or \"all\")")
        subjects = _targets(sweep["targets"], where)
        if "starts" not in sweep:
            raise SpecError(f"{source}: missing key sweep.starts (a list of starting SMILES)")
        starts = _str_list(sweep["starts"], "sweep.starts", where)
        if data.get("plan"):
            raise SpecError(f"{where.at(None, 'plan')}: [plan] is for kind = \"plan\"")
    else:
        if "targets" in sweep:
            raise SpecError(f"{where.at('sweep', 'targets')}: sweep.targets is for kind = \"molecule\"; plans take sweep.cases")
        if "cases" not in sweep:
            raise SpecError(f"{source}: missing key sweep.cases (a list of case names, or \"all\")")
        subjects = _cases(sweep["cases"], where)
        starts = _str_list(sweep.get("starts", ["default"]), "sweep.starts", where)
        for table in ("docking", "objective"):
            if data.get(table):
                raise SpecError(f"{where.at(None, table)}: [{table}] is for kind = \"molecule\"")

    budget = {**BUDGET_DEFAULTS, **data.get("budget", {})}
    _check_budget(budget, where)
    resources = {**RESOURCE_DEFAULTS, **data.get("resources", {})}
    _check_resources(resources, where)
    engine = dict(data.get("engine", {}))
    for key, value in engine.items():
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise SpecError(f"{where.at('engine', key)}: engine.{key} must be a string or a number")
    docking = {"cpu": 1, **data.get("docking", {})} if kind == "molecule" else {}
    objective = dict(data.get("objective", {}))
    plan = dict(data.get("plan", {}))
    if kind == "molecule":
        _check_docking(docking, where)
        _check_objective(objective, where)
        starts = _check_smiles(starts, objective, where)
    else:
        _check_plan_options(plan, where)
    spec = SweepSpec(
        kind=kind, subjects=subjects, starts=starts, seeds=seeds, methods=methods, budget=budget,
        engine=engine, docking=docking, objective=objective, plan=plan, resources=resources,
        name=str(sweep.get("name", "")), source=source, raw=data,
    )
    return spec


class _Where:
    """Line numbers for keys (tomllib reports them only for syntax errors)."""

    def __init__(self, source: str, text: str):
        self.source = source
        self.lines = text.splitlines() if text else []

    def line(self, table: Optional[str], key: str) -> Optional[int]:
        import re

        current = None
        for n, raw in enumerate(self.lines, 1):
            line = raw.strip()
            header = re.match(r"^\[\[?\s*([^\]]+?)\s*\]\]?", line)
            if header:
                current = header.group(1).strip().strip('"')
                if table is None and current == key:
                    return n
                continue
            if table is not None and current == table and re.match(rf'^"?{re.escape(key)}"?\s*=', line):
                return n
            if table is not None and current is None and re.match(rf'^{re.escape(table)}\.{re.escape(key)}\s*=', line):
                return n
        return None

    def at(self, table: Optional[str], key: str) -> str:
        n = self.line(table, key)
        return f"{self.source}, line {n}" if n else self.source

    def unknown(self, key: str, table: Optional[str], allowed: list[str], what: str = "key") -> str:
        name = f"{table}.{key}" if table else key
        close = difflib.get_close_matches(key, allowed, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        place = f"[{table}]" if table else "the top level"
        return f"{self.at(table, key)}: unknown {what} {name!r} in {place}{hint}; valid: {', '.join(allowed)}"


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_num(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _unique(items: list) -> list:
    seen, out = set(), []
    for x in items:
        if x not in seen:
            seen.add(x)
            out.append(x)
    return out


def _str_list(value, name: str, where: _Where) -> list[str]:
    table, key = name.split(".", 1)
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v.strip() for v in value):
        raise SpecError(f"{where.at(table, key)}: {name} must be a non-empty string or list of non-empty strings")
    return _unique([v.strip() for v in value])


def _targets(value, where: _Where) -> list[str]:
    from simulators.targets import UnknownTargetError, get_target, target_names

    if value == "all":
        return target_names()
    names = _str_list(value, "sweep.targets", where)
    out = []
    for name in names:
        try:
            out.append(get_target(name).name)
        except UnknownTargetError as exc:
            raise SpecError(f"{where.at('sweep', 'targets')}: {exc}") from None
    return _unique(out)


def _list_cases() -> list[str]:
    try:
        from .objectives.plan import list_cases  # being written alongside; lazily imported
    except ImportError:
        from simulators.dose.cases import list_cases
    return list(list_cases())


def _cases(value, where: _Where) -> list[str]:
    valid = _list_cases()
    if value == "all":
        return valid
    names = _str_list(value, "sweep.cases", where)
    lower = {c.lower(): c for c in valid}
    out = []
    for name in names:
        if name.lower() not in lower:
            close = difflib.get_close_matches(name.lower(), list(lower), n=2)
            hint = f" Did you mean {', '.join(lower[c] for c in close)}?" if close else ""
            raise SpecError(f"{where.at('sweep', 'cases')}: unknown case {name!r}.{hint} Valid cases: {', '.join(valid)}")
        out.append(lower[name.lower()])
    return _unique(out)


def _check_budget(b: dict, where: _Where) -> None:
    def bad(key, rule):
        raise SpecError(f"{where.at('budget', key)}: budget.{key} {rule}, not {b[key]!r}")

    if not _is_int(b["max_steps"]) or b["max_steps"] < 0:
        bad("max_steps", "must be an integer >= 0")
    if not _is_int(b["n_proposals"]) or b["n_proposals"] < 1:
        bad("n_proposals", "must be an integer >= 1")
    if b["max_evaluations"] is not None and (not _is_int(b["max_evaluations"]) or b["max_evaluations"] < 1):
        bad("max_evaluations", "must be an integer >= 1")
    if b["patience"] is not None:
        if not _is_int(b["patience"]) or b["patience"] < 0:
            bad("patience", "must be an integer >= 0 (0 = no early stopping)")
        if b["patience"] == 0:
            b["patience"] = None
    if not _is_num(b["min_improvement"]) or b["min_improvement"] < 0:
        bad("min_improvement", "must be a number >= 0")
    if b["target_score"] is not None and not _is_num(b["target_score"]):
        bad("target_score", "must be a number")


def _check_resources(r: dict, where: _Where) -> None:
    for key in ("n_workers", "llm_concurrency"):
        if r[key] is not None and (not _is_int(r[key]) or r[key] < 1):
            raise SpecError(f"{where.at('resources', key)}: resources.{key} must be an integer >= 1")
    for key in ("docking_workers", "max_attempts"):
        if not _is_int(r[key]) or r[key] < 1:
            raise SpecError(f"{where.at('resources', key)}: resources.{key} must be an integer >= 1")
    if r["cache_dir"] is not None and not isinstance(r["cache_dir"], str):
        raise SpecError(f"{where.at('resources', 'cache_dir')}: resources.cache_dir must be a path string")
    if not _is_num(r["run_lock_timeout_s"]) or r["run_lock_timeout_s"] < 0:
        raise SpecError(f"{where.at('resources', 'run_lock_timeout_s')}: resources.run_lock_timeout_s must be a number >= 0")


def _check_docking(d: dict, where: _Where) -> None:
    from simulators.docking import DockingSettings
    from simulators.molecule_checks import LigandLimits

    limits = d.get("limits")
    if limits is not None:
        if not isinstance(limits, dict):
            raise SpecError(f"{where.at('docking', 'limits')}: docking.limits must be a table ([docking.limits])")
        for key in limits:
            if key not in LIMIT_KEYS:
                raise SpecError(where.unknown(key, "docking.limits", list(LIMIT_KEYS)))
    try:
        DockingSettings(**{**d, "limits": LigandLimits(**limits) if limits else LigandLimits()})
    except (TypeError, ValueError) as exc:
        raise SpecError(f"{where.source}: [docking]: {exc}") from None
    for key in ("exhaustiveness", "n_poses", "cpu", "seed", "memory_limit_mb"):
        if key in d and not _is_int(d[key]):
            raise SpecError(f"{where.at('docking', key)}: docking.{key} must be an integer")


def _check_objective(o: dict, where: _Where) -> None:
    from .objectives.molecule import AGGREGATIONS

    if "aggregation" in o and o["aggregation"] not in AGGREGATIONS:
        raise SpecError(f"{where.at('objective', 'aggregation')}: objective.aggregation must be one of {', '.join(AGGREGATIONS)}")
    if "compare_references" in o and not isinstance(o["compare_references"], bool):
        raise SpecError(f"{where.at('objective', 'compare_references')}: objective.compare_references must be true or false")
    for key in ("qed_weight", "max_mol_weight"):
        if key in o and not _is_num(o[key]):
            raise SpecError(f"{where.at('objective', key)}: objective.{key} must be a number")
    if "constraints" in o and not (isinstance(o["constraints"], list) and all(isinstance(c, str) for c in o["constraints"])):
        raise SpecError(f"{where.at('objective', 'constraints')}: objective.constraints must be a list of strings")


def _check_smiles(starts: list[str], objective: dict, where: _Where) -> list[str]:
    """Canonical SMILES of each start; a start that is not a valid molecule is a spec error."""
    from simulators.molecule_checks import LigandError, canonical_smiles

    out = []
    for s in starts:
        try:
            out.append(canonical_smiles(s))
        except LigandError as exc:
            raise SpecError(f"{where.at('sweep', 'starts')}: start {s!r} is not a valid molecule: {exc}") from None
    return _unique(out)


def _check_plan_options(plan: dict, where: _Where) -> None:
    import inspect

    try:
        from .objectives.plan import PlanObjective
    except ImportError:
        return  # checked by the task when the plan objective exists
    params = inspect.signature(PlanObjective.from_case).parameters
    if any(p.kind == p.VAR_KEYWORD for p in params.values()):
        return
    allowed = [n for n in params if n not in ("cls", "self", "name", "case")]
    for key in plan:
        if key not in allowed:
            raise SpecError(where.unknown(key, "plan", allowed))


# ============================================================================ the task (worker side)
class LimitedEngine:
    """An Engine whose calls each hold one lease of a (distributed) semaphore.

    Same interface as Engine for the loop: ``__call__``, ``.model``, ``.usage``, ``.describe()``;
    anything else is read from the wrapped engine.
    """

    def __init__(self, engine, semaphore):
        self.engine = engine
        self.semaphore = semaphore

    def __call__(self, *args, **kwargs):
        with self.semaphore:
            return self.engine(*args, **kwargs)

    @property
    def model(self) -> str:
        return self.engine.model

    @property
    def usage(self):
        return self.engine.usage

    def describe(self) -> dict:
        return self.engine.describe()

    def __getattr__(self, name: str):
        if name in ("engine", "semaphore"):
            raise AttributeError(name)
        return getattr(self.engine, name)


def build_objective(run: dict):
    """The run's objective, built where it runs (inside the Dask worker)."""
    if run["kind"] == "molecule":
        from simulators.docking import DockingSettings
        from simulators.molecule_checks import LigandLimits

        from .objectives.molecule import MoleculeObjective

        docking = dict(run["docking"])
        limits = docking.pop("limits", None)
        if limits:
            docking["limits"] = LigandLimits(**limits)
        options = dict(run["objective"])
        constraints = tuple(options.pop("constraints", ()))
        return MoleculeObjective(
            run["target"], docking=DockingSettings(**docking), cache_dir=run.get("cache_dir"),
            n_workers=run.get("docking_workers", 1), extra_constraints=constraints, **options,
        )
    from .objectives.plan import PlanObjective  # written alongside; imported only for plan sweeps

    options = dict(run.get("plan", {}))
    if run.get("cache_dir"):
        options.setdefault("cache_dir", run["cache_dir"])
    return PlanObjective.from_case(run["case"], **options)


def _plan_start(objective, run: dict) -> str:
    """A plan run's start: the literal weights given in the spec, or the case's own ("default")."""
    if run["start"] != "default":
        return run["start"]
    for attr in ("default_start", "start_value"):
        value = getattr(objective, attr, None)
        if callable(value):
            value = value()
        if isinstance(value, str):
            return value
        if isinstance(value, dict):
            return json.dumps(value, sort_keys=True)
    case = getattr(objective, "case", None)
    if case is not None and hasattr(case, "start_weights"):
        return json.dumps(case.start_weights(), sort_keys=True)
    raise ValueError(f"the plan objective for {run['case']!r} has no default start; give sweep.starts")


def _dockings(objective) -> tuple[int, int]:
    """(dockings actually run, docking processes started) by this objective's simulators so far."""
    sims = getattr(objective, "_simulators", {}) or {}
    return sum(getattr(s, "misses", 0) for s in sims.values()), len(sims)


def _worker_address() -> Optional[str]:
    try:
        from distributed import get_worker

        return get_worker().address
    except Exception:
        return None


def run_task(run: dict, out_dir: str, semaphore=None, attempt: int = 1, sweep_id: str = "") -> dict:
    """Execute one run (the Dask task). Never raises for a run's own failure: returns its status.

    Returns {"name", "status": finished|failed|error, "stop_reason", "error", "retryable",
    "optimize_s", "task_s", "dockings", "worker"}. ``failed`` = optimize() stopped on engine
    errors; ``error`` = an exception (retried by the sweep up to max_attempts).
    """
    from filelock import FileLock, Timeout

    t_task = time.perf_counter()
    run_dir = Path(out_dir) / run["name"]
    run_dir.mkdir(parents=True, exist_ok=True)
    if run.get("cache_dir"):
        run = {**run, "cache_dir": os.path.expanduser(os.path.expandvars(str(run["cache_dir"])))}
        os.environ["TGSCI_CACHE_DIR"] = run["cache_dir"]  # the LLM cache too (Engine reads the env)
    result = {"name": run["name"], "status": "error", "stop_reason": None, "error": None, "retryable": True,
              "optimize_s": 0.0, "task_s": 0.0, "dockings": 0, "worker": _worker_address()}
    # A run executes in one place at a time: if a worker the scheduler gave up on is in fact
    # still running it, this attempt waits for it instead of writing the same run directory.
    lock = FileLock(str(run_dir / ".run.lock"), timeout=float(run.get("run_lock_timeout_s", 3600.0)))
    try:
        lock.acquire()
    except Timeout:
        result["error"] = f"run directory {run_dir} is locked by another process (lock {run_dir / '.run.lock'})"
        return result
    try:
        record = _load_run_file(run_dir)
        entry = {"attempt": attempt, "sweep_id": sweep_id, "host": socket.gethostname(), "pid": os.getpid(),
                 "worker": result["worker"], "started": time.time(), "updated": time.time(), "ended": None,
                 "status": "running", "steps_done": None, "dockings": 0, "optimize_s": None, "task_s": None, "error": None}
        record["attempts"].append(entry)
        write_json_atomic(run_dir / RUN_FILE, record)
        objective = None
        t0 = None
        try:
            from .loop import optimize

            objective = build_objective(run)
            engine = optimizer_engine = None
            if run["method"] == "tgd":
                from .config import make_engines

                engine, optimizer_engine = make_engines(run.get("engine") or None)
                if semaphore is not None:
                    same = optimizer_engine is engine
                    engine = LimitedEngine(engine, semaphore)  # wrapped once when shared: usage counted once
                    optimizer_engine = engine if same else LimitedEngine(optimizer_engine, semaphore)
            start = run["start"] if run["kind"] == "molecule" else _plan_start(objective, run)

            def on_step(rec: dict) -> None:
                entry["steps_done"] = rec["step"]
                entry["dockings"] = _dockings(objective)[0]
                entry["updated"] = time.time()
                write_json_atomic(run_dir / RUN_FILE, record)

            b = run["budget"]
            t0 = time.perf_counter()
            res = optimize(
                objective, start, method=run["method"], engine=engine, optimizer_engine=optimizer_engine,
                max_steps=b["max_steps"], n_proposals=b["n_proposals"], max_evaluations=b["max_evaluations"],
                patience=b["patience"], min_improvement=b["min_improvement"], target_score=b["target_score"],
                run_dir=run_dir, seed=run["seed"], callback=on_step,
            )
            result["optimize_s"] = time.perf_counter() - t0
            result["stop_reason"] = res.stop_reason
            if str(res.stop_reason).startswith("engine_error"):
                result.update(status="failed", error=res.stop_reason)
            else:
                result["status"] = "finished"
        except Exception as exc:
            from .rundir import RunDirError

            result["error"] = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=6)}"
            result["retryable"] = not isinstance(exc, RunDirError)
            result["optimize_s"] = time.perf_counter() - t0 if t0 is not None else 0.0
        finally:
            if objective is not None:
                result["dockings"] = _dockings(objective)[0]
                try:
                    objective.close()
                except Exception:
                    pass
        result["task_s"] = time.perf_counter() - t_task
        entry.update(status=result["status"], ended=time.time(), updated=time.time(), dockings=result["dockings"],
                     optimize_s=result["optimize_s"], task_s=result["task_s"], error=result["error"])
        record["dockings"] = sum(a.get("dockings") or 0 for a in record["attempts"])
        write_json_atomic(run_dir / RUN_FILE, record)
        return result
    finally:
        lock.release()


def _load_run_file(run_dir: Path) -> dict:
    try:
        data = read_json(run_dir / RUN_FILE)
        if isinstance(data, dict) and isinstance(data.get("attempts"), list):
            return data
    except (OSError, ValueError):
        pass
    return {"name": run_dir.name, "attempts": [], "dockings": 0}


# ============================================================================ the sweep (client side)
@dataclass
class SweepResult:
    out_dir: Path
    runs: list[str]
    status: dict[str, str]  # run name -> finished | failed | pending
    submitted: int = 0
    skipped: int = 0
    wall_s: float = 0.0
    dashboard_link: Optional[str] = None
    n_workers: Optional[int] = None

    @property
    def finished(self) -> list[str]:
        return [n for n, s in self.status.items() if s == "finished"]

    @property
    def failed(self) -> list[str]:
        return [n for n, s in self.status.items() if s == "failed"]

    @property
    def ok(self) -> bool:
        return len(self.finished) == len(self.runs)


@contextmanager
def sweep_lock(out_dir: str | os.PathLike) -> Iterator[Path]:
    """Hold ``out_dir/sweep.lock``; SweepLockedError at once if another sweep holds it."""
    from filelock import FileLock, Timeout

    path = Path(out_dir) / LOCK_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise SweepLockedError(
            f"another sweep is running in {Path(out_dir)} (lock file {path} is held); "
            f"wait for it to finish or use another output directory"
        ) from None
    try:
        yield path
    finally:
        lock.release()


def default_n_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def run_status(run_dir: Path, budget: Optional[dict] = None) -> tuple[str, Optional[dict]]:
    """(state, summary) of a run directory: finished | engine_error | interrupted | new."""
    summary_path = run_dir / "summary.json"
    if summary_path.exists():
        try:
            summary = read_json(summary_path)
        except (OSError, ValueError):
            summary = None
        if summary and summary.get("finished"):
            if str(summary.get("stop_reason", "")).startswith("engine_error"):
                return "engine_error", summary
            if budget is not None:
                try:
                    old = read_json(run_dir / "config.json").get("budget", {})
                except (OSError, ValueError):
                    old = {}
                if any(old.get(k) != v for k, v in budget.items()):
                    return "interrupted", summary  # a changed budget: optimize() extends the run
            return "finished", summary
    if (run_dir / "trajectory.jsonl").exists():
        return "interrupted", None
    return "new", None


def run_sweep(
    spec_path: str | os.PathLike | dict,
    out_dir: str | os.PathLike,
    scheduler=None,
    n_workers: Optional[int] = None,
    *,
    progress: bool = False,
    max_attempts: Optional[int] = None,
    llm_concurrency: Optional[int] = None,
    docking_workers: Optional[int] = None,
    reset_failures: bool = False,
    dashboard: bool = True,
    callback: Optional[Callable[[dict], None]] = None,
    console=None,
) -> SweepResult:
    """Expand the sweep file into runs and execute the unfinished ones on Dask.

    ``scheduler``: None = a LocalCluster of ``n_workers`` processes (default: the machine's
    cores) with one thread each; ``"tcp://host:8786"`` = an existing scheduler; or a Dask
    ``Client`` or cluster object (e.g. a dask-jobqueue SLURMCluster, scaled to ``n_workers``
    when given). Arguments override the spec's [resources]. ``progress`` shows a rich bar.
    ``callback(event)`` is called in this process after each run attempt ends.
    Raises SpecError (before anything starts) and SweepLockedError.
    """
    if isinstance(spec_path, dict):
        spec = parse_spec(spec_path)
    else:
        spec = load_spec(spec_path)
    res = spec.resources
    if docking_workers is not None:
        res["docking_workers"] = docking_workers
    runs = spec.expand()
    max_attempts = max_attempts or res["max_attempts"]
    llm_concurrency = llm_concurrency or res["llm_concurrency"]
    n_workers = n_workers or res["n_workers"]
    out = Path(out_dir)
    t_start = time.perf_counter()
    sweep_id = uuid.uuid4().hex[:10]

    with sweep_lock(out):
        write_json_atomic(out / "sweep.json", {
            "name": spec.name, "spec": spec.raw, "spec_path": spec.source, "kind": spec.kind,
            "created": time.time(), "runs": runs,
        })
        status = _load_status(out)
        status["sweep"] = {"id": sweep_id, "spec_path": spec.source, "started": time.time(), "max_attempts": max_attempts}
        todo, states = [], {}
        for run in runs:
            st = status["runs"].setdefault(run["name"], {"status": "pending", "attempts": 0, "failures": 0, "errors": []})
            if reset_failures:
                st["failures"] = 0
            state, summary = run_status(out / run["name"], run["budget"])
            if state == "finished":
                st.update(status="finished", stop_reason=summary.get("stop_reason"))
                states[run["name"]] = "finished"
                continue
            if state == "engine_error":
                if st.get("status") != "failed" or not st.get("failures"):
                    st["failures"] = max(1, st.get("failures", 0))  # recorded outside a sweep: count it
                if st["failures"] >= max_attempts:
                    st.update(status="failed", stop_reason=summary.get("stop_reason"))
                    states[run["name"]] = "failed"
                    continue
                _set_aside(out / run["name"])  # optimize() resumes it from its trajectory
            elif st.get("failures", 0) >= max_attempts:
                st["status"] = "failed"
                states[run["name"]] = "failed"
                continue
            st["status"] = "queued"
            states[run["name"]] = "queued"
            todo.append(run)
        skipped = len(runs) - len(todo)
        write_json_atomic(out / "status.json", status)
        result = SweepResult(out, [r["name"] for r in runs], {}, submitted=0, skipped=skipped)
        if todo:
            _execute(todo, out, status, states, scheduler, n_workers, max_attempts, llm_concurrency, spec,
                     sweep_id, progress, dashboard, callback, console, result, len(runs))
        result.status = {n: (s if s in ("finished", "failed") else "pending") for n, s in states.items()}
        result.wall_s = time.perf_counter() - t_start
        return result


def _set_aside(run_dir: Path) -> None:
    summary = run_dir / "summary.json"
    if summary.exists():
        n = 1
        while (run_dir / f"summary.engine_error.{n}.json").exists():
            n += 1
        os.replace(summary, run_dir / f"summary.engine_error.{n}.json")


def _load_status(out: Path) -> dict:
    try:
        data = read_json(out / "status.json")
        if isinstance(data, dict) and isinstance(data.get("runs"), dict):
            return data
    except (OSError, ValueError):
        pass
    return {"runs": {}}


@contextmanager
def _client(scheduler, n_workers: Optional[int], env: dict, dashboard: bool):
    """A connected Client (and the LocalCluster it made, closed on exit)."""
    from distributed import Client, LocalCluster

    if scheduler is None:
        # ":0": a free port (the default 8787 may be another user's cluster on a shared machine)
        cluster = LocalCluster(
            n_workers=n_workers or default_n_workers(), threads_per_worker=1, processes=True,
            dashboard_address=":0", env=env,
        )
        client = Client(cluster)
        try:
            yield client
        finally:
            client.close()
            cluster.close()
    elif isinstance(scheduler, str):
        client = Client(scheduler, timeout="30s")
        try:
            yield client
        finally:
            client.close()
    elif isinstance(scheduler, Client):
        yield scheduler
    else:  # a cluster object (LocalCluster, SLURMCluster, ...)
        if n_workers:
            scheduler.scale(n_workers)
        client = Client(scheduler)
        try:
            yield client
        finally:
            client.close()


def dashboard_links(client) -> tuple[Optional[str], Optional[str]]:
    """(dashboard link if the bokeh dashboard answers, else None; the scheduler's plain info page)."""
    import urllib.request

    try:
        if "dashboard" not in (client.scheduler_info().get("services") or {}):
            return None, None
        link = client.dashboard_link
    except Exception:
        return None, None
    base = link.rsplit("/", 1)[0]
    info = f"{base}/info/main/workers.html"
    try:
        with urllib.request.urlopen(link, timeout=2) as reply:
            body = reply.read(4096).decode("utf-8", "replace")
        if reply.status == 200 and "needs bokeh" not in body:
            return link, info
    except Exception:
        pass
    return None, info


def _execute(todo, out, status, states, scheduler, n_workers, max_attempts, llm_concurrency, spec, sweep_id,
             progress, dashboard, callback, console, result, total) -> None:
    from distributed import Semaphore, wait

    # The docking/LLM cache: [resources] cache_dir goes to every task; otherwise a LocalCluster's
    # workers get this process's TGSCI_CACHE_DIR, and remote workers keep their own environment
    # (on a cluster the cache belongs on node-local disk: see examples/sweep_jobqueue.py).
    env = {}
    cache_dir = spec.resources["cache_dir"] or (os.environ.get("TGSCI_CACHE_DIR") if scheduler is None else None)
    if cache_dir:
        env["TGSCI_CACHE_DIR"] = str(cache_dir)

    with _client(scheduler, n_workers, env, dashboard) as client, _Progress(progress, total, console) as bar:
        result.dashboard_link, info_page = dashboard_links(client) if dashboard else (None, None)
        try:
            result.n_workers = len(client.scheduler_info().get("workers", {}))
        except Exception:
            pass
        if result.dashboard_link:
            bar.say(f"Dask dashboard: {result.dashboard_link}")
        elif info_page:
            bar.say(f"Dask scheduler page: {info_page} (the full dashboard needs bokeh)")
        semaphore = None
        if llm_concurrency and any(r["method"] == "tgd" for r in todo):
            semaphore = Semaphore(max_leases=llm_concurrency, name=f"tgsci-llm-{sweep_id}")
        by_name = {r["name"]: r for r in todo}
        pending: dict = {}

        def submit(run: dict) -> None:
            st = status["runs"][run["name"]]
            st["attempts"] = st.get("attempts", 0) + 1
            st["status"] = "queued"
            key = f"tgsci-{run['name']}-a{st['attempts']}-{sweep_id}"
            fut = client.submit(run_task, run, str(out), semaphore, st["attempts"], sweep_id, key=key, pure=False)
            pending[fut] = run["name"]
            result.submitted += 1

        for run in todo:
            submit(run)
        write_json_atomic(out / "status.json", status)
        last_poll = 0.0
        try:
            while pending:
                try:
                    done, _ = wait(list(pending), timeout=0.5, return_when="FIRST_COMPLETED")
                except TimeoutError:
                    done = set()
                changed = False
                for fut in done:
                    name = pending.pop(fut)
                    try:
                        res = fut.result()
                    except Exception as exc:  # KilledWorker (worker died too often), cancelled, ...
                        res = {"name": name, "status": "error", "error": f"{type(exc).__name__}: {exc}", "retryable": True}
                    fut.release()
                    st = status["runs"][name]
                    st.update(stop_reason=res.get("stop_reason"), worker=res.get("worker"), updated=time.time())
                    if res["status"] == "finished":
                        st["status"] = states[name] = "finished"
                    else:
                        st["failures"] = st.get("failures", 0) + 1
                        st["errors"] = (st.get("errors", []) + [str(res.get("error"))[:2000]])[-3:]
                        if res["status"] == "error" and res.get("retryable", True) and st["failures"] < max_attempts:
                            submit(by_name[name])  # retried; Dask places it on any live worker
                            st["status"] = "retrying"
                        else:
                            st["status"] = states[name] = "failed"
                    changed = True
                    if callback:
                        callback({"run": name, "attempt": st["attempts"], "status": st["status"], "result": res})
                now = time.monotonic()
                if changed or now - last_poll > 1.0:
                    running = _running(client, pending)
                    for fut, name in pending.items():
                        st = status["runs"][name]
                        if st["status"] in ("queued", "retrying", "running"):
                            st["status"] = "running" if fut.key in running else "queued"
                    last_poll = now
                    if changed:
                        write_json_atomic(out / "status.json", status)
                    bar.update(states, len(running))
        except BaseException:
            for fut, name in pending.items():
                status["runs"][name]["status"] = "interrupted"
                fut.cancel()
            write_json_atomic(out / "status.json", status)
            raise
        write_json_atomic(out / "status.json", status)
        bar.update(states, 0)


def _running(client, pending: dict) -> set:
    try:
        processing = client.processing()
    except Exception:
        return set()
    keys = {k for ks in processing.values() for k in ks}
    return {fut.key for fut in pending if fut.key in keys}


class _Progress:
    """A rich progress bar over runs (done / running / failed), or plain log lines."""

    def __init__(self, enabled: bool, total: int, console=None):
        self.enabled = enabled
        self.total = total
        self.console = console
        self.progress = None
        self.task = None

    def __enter__(self) -> "_Progress":
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.console = self.console or Console(stderr=True)
            self.progress = Progress(
                TextColumn("[bold]sweep"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                TimeElapsedColumn(), console=self.console, transient=False,
            )
            self.progress.start()
            self.task = self.progress.add_task("sweep", total=self.total, info="")
        return self

    def say(self, text: str) -> None:
        if self.progress is not None:
            self.progress.console.print(text)
        else:
            log.info(text)

    def update(self, states: dict, running: int) -> None:
        done = sum(1 for s in states.values() if s == "finished")
        failed = sum(1 for s in states.values() if s == "failed")
        if self.progress is not None:
            info = f"[green]{done} done[/] · [cyan]{running} running[/] · [red]{failed} failed[/]"
            self.progress.update(self.task, completed=done + failed, info=info)

    def __exit__(self, *exc) -> None:
        if self.progress is not None:
            self.progress.stop()
