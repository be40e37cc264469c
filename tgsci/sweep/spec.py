"""The sweep file: read, check and expand it into runs (see ``tgsci.sweep`` for the format).

Everything is checked here, before any Dask task starts: unknown tables and keys (with the
line and a "did you mean"), methods, seeds, budgets, and each run's objective spec through
the domain registry (``tgsci.domains.check_spec``: unknown targets, cases, settings), and
every start value. A spec error is never a task failure, so it is never retried.
"""

from __future__ import annotations

import difflib
import hashlib
import math
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from simulators.files import slug

from ..domains import DEFAULT_KIND, SpecError, check_spec, domains, get_domain
from ..proposers import canonical_method

# Allowed keys per table; None: checked by the objective's domain. Each domain adds its subjects key
# to [sweep] and its own tables (spec_keys()).
SPEC_KEYS: dict[str, Optional[tuple[str, ...]]] = {
    "sweep": ("name", "kind", "starts", "seeds", "method", "methods", "protocol"),
    "budget": ("max_steps", "n_proposals", "max_evaluations", "patience", "min_improvement", "target_score", "stop_when"),
    "engine": ("model", "optimizer_model", "feedback_model", "api_base", "temperature", "max_tokens", "timeout", "top_p", "max_retries",
               "requests_per_minute", "tokens_per_minute"),
    "objective": None,  # the domain's options (tgsci.domains)
    "resources": ("n_workers", "llm_concurrency", "docking_workers", "max_attempts", "cache_dir", "run_lock_timeout_s"),
}
BUDGET_DEFAULTS = {"max_steps": 10, "n_proposals": 4, "max_evaluations": None, "patience": 3, "min_improvement": 0.0,
                   "target_score": None, "stop_when": None}
RESOURCE_DEFAULTS = {"n_workers": None, "llm_concurrency": None, "docking_workers": 0, "max_attempts": 3, "cache_dir": None, "run_lock_timeout_s": 3600.0}


def spec_keys() -> dict[str, Optional[tuple[str, ...]]]:
    """SPEC_KEYS with every registered domain's subjects key and tables."""
    keys = dict(SPEC_KEYS)
    keys["sweep"] = keys["sweep"] + tuple(dict.fromkeys(k for d in domains() for k in (d.subjects_key, *d.sweep_keys)))
    keys.update({table: None for d in domains() for table in d.sweep_tables})
    return keys


@dataclass
class SweepSpec:
    kind: str
    subjects: list[str]  # targets (molecule) or cases (plan)
    starts: list[str]
    seeds: list[int]
    methods: list[str]
    budget: dict
    engine: dict
    objectives: dict[str, dict]  # subject -> checked objective spec
    budgets: dict[str, dict]  # method -> budget (the [budget] table, or a protocol's for that method)
    run_starts: dict[tuple[str, int], str]  # (subject, start index) -> the start value, resolved and checked
    resources: dict
    name: str = ""
    source: str = "<dict>"
    raw: dict = field(default_factory=dict)

    def expand(self) -> list[dict]:
        """One dict per run (JSON-able; what a task receives), in a deterministic order."""
        subject_key = get_domain(self.kind).subject
        runs = []
        for subject in self.subjects:
            for i, start in enumerate(self.starts):
                for seed in self.seeds:
                    for method in self.methods:
                        runs.append({
                            "name": run_name(subject, i, start, seed, method), "kind": self.kind, subject_key: subject,
                            "subject": subject, "start": self.run_starts[(subject, i)], "start_index": i, "seed": seed,
                            "method": method, "budget": dict(self.budgets[method]), "engine": dict(self.engine),
                            "objective": self.objectives[subject],
                            "run_lock_timeout_s": self.resources["run_lock_timeout_s"],
                        })
        return runs


def run_name(subject: str, start_index: int, start: str, seed: int, method: str) -> str:
    """``PPARA__start0-1a2b3c4d__seed0__tgd``: stable for the same spec, unique per start string.

    Always one safe path component under the sweep's output: a subject given as a file
    (``../cases/my.toml``, ``/abs/my.toml``) is named by its stem and a hash of its path."""
    digest = hashlib.sha1(start.encode("utf-8")).hexdigest()[:8]
    if "/" in subject or "\\" in subject:
        label = f"{slug(Path(subject).stem, 40)}-{hashlib.sha1(subject.encode('utf-8')).hexdigest()[:6]}"
    else:
        label = slug(subject)
    return f"{label}__start{start_index}-{digest}__seed{seed}__{slug(method)}"


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
    """Check a parsed sweep specification (see ``tgsci.sweep`` for the format). Relative paths in it
    are read against the sweep file's folder (the working directory for a dict). Total: a value of
    the wrong shape anywhere is a SpecError, never another exception."""
    try:
        return _parse_spec(data, source, text)
    except SpecError:
        raise
    except (TypeError, AttributeError, KeyError, IndexError, OverflowError, RecursionError) as exc:
        raise SpecError(f"{source}: a value has the wrong type ({type(exc).__name__}: {str(exc)[:160]}); "
                        f"compare with examples/sweep_small.toml") from None


def _parse_spec(data: dict, source: str = "<dict>", text: str = "") -> SweepSpec:
    where = _Where(source, text)
    base = Path(source).resolve().parent if source != "<dict>" else Path.cwd()
    if not isinstance(data, dict):
        raise SpecError(f"{source}: the sweep specification must be a table")
    if isinstance(data.get("sweep"), dict):  # an unknown kind first: its own keys would read as unknown ones
        try:
            get_domain(data["sweep"].get("kind", DEFAULT_KIND))
        except SpecError as exc:
            raise SpecError(f"{where.at('sweep', 'kind')}: {exc}") from None
    keys = spec_keys()
    for table, value in data.items():
        if table not in keys:
            raise SpecError(where.unknown(table, None, list(keys), what="table"))
        if not isinstance(value, dict):
            raise SpecError(f"{where.at(None, table)}: '{table}' must be a table ([{table}]), not {type(value).__name__}")
        allowed = keys[table]
        for key in value if allowed is not None else ():
            if key not in allowed:
                raise SpecError(where.unknown(key, table, list(allowed)))
    sweep = data.get("sweep")
    if sweep is None:
        subjects = " or ".join(d.subjects_key for d in domains())
        raise SpecError(f"{source}: missing table [sweep] (with kind, {subjects}, starts, seeds, method)")
    kind = sweep.get("kind", DEFAULT_KIND)
    try:
        domain = get_domain(kind)
    except SpecError as exc:
        raise SpecError(f"{where.at('sweep', 'kind')}: {exc}") from None
    for table in {t for d in domains() for t in d.sweep_tables}:
        if data.get(table) and table not in domain.sweep_tables:
            raise SpecError(f"{where.at(None, table)}: [{table}] is not for kind = {kind!r}")
    methods = _methods(sweep, where, domain)
    seeds = _seeds(sweep.get("seeds", [0]), where)

    for key in {k for d in domains() for k in d.sweep_keys} - set(domain.sweep_keys):
        if key in sweep:
            raise SpecError(f"{where.at('sweep', key)}: sweep.{key} is not for kind = {kind!r}")
    for other in {d.subjects_key for d in domains()} - {domain.subjects_key}:
        if other in sweep:
            raise SpecError(f"{where.at('sweep', other)}: sweep.{other} is not for kind = {kind!r}; it takes sweep.{domain.subjects_key}")
    if domain.subjects_key not in sweep:
        raise SpecError(f"{source}: missing key sweep.{domain.subjects_key} (a list of names, or \"all\")")
    resources = {**RESOURCE_DEFAULTS, **data.get("resources", {})}
    _check_resources(resources, where)
    options = _objective_options(domain, data, resources, base)
    try:
        subjects = domain.subjects(sweep[domain.subjects_key], options, base)
    except SpecError as exc:
        raise SpecError(f"{where.at('sweep', domain.subjects_key)}: {exc}") from None
    preset = None
    if sweep.get("protocol") is not None:
        from ..presets import protocol

        try:
            preset = protocol(sweep["protocol"], kind)
        except ValueError as exc:
            raise SpecError(f"{where.at('sweep', 'protocol')}: {exc}") from None
    if "starts" not in sweep and preset is not None and "starts" in preset:
        sweep = {**sweep, "starts": list(preset["starts"])}  # the protocol's starts
    if domain.starts_required and "starts" not in sweep:
        raise SpecError(f"{source}: missing key sweep.starts (a list of starting values)")
    starts = _str_list(sweep.get("starts", ["default"]), "sweep.starts", where)

    budget = {**BUDGET_DEFAULTS, **data.get("budget", {})}
    _check_budget(budget, where)
    budgets = {m: dict(budget) for m in methods}
    if preset is not None:
        from ..presets import protocol_budget

        budgets = {m: {**budget, **protocol_budget(sweep["protocol"], m, kind)} for m in methods}
    engine = dict(data.get("engine", {}))
    for key, value in engine.items():
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise SpecError(f"{where.at('engine', key)}: engine.{key} must be a string or a number")
        if key in ("requests_per_minute", "tokens_per_minute") and not (isinstance(value, (int, float)) and 0 < value < float("inf")):
            raise SpecError(f"{where.at('engine', key)}: engine.{key} must be a number > 0 (the provider's limit per minute)")

    objectives, run_starts = {}, {}
    for subject in subjects:
        try:
            objectives[subject] = check_spec({"kind": kind, domain.subject: subject, **options}, base=base)
        except SpecError as exc:
            raise SpecError(f"{_place(where, exc, kind)}: {exc}") from None
        for i, start in enumerate(starts):
            try:
                run_starts[(subject, i)] = domain.start(objectives[subject], start)
            except SpecError as exc:
                raise SpecError(f"{where.at('sweep', 'starts')}: {exc}") from None
    if domain.shared_starts:  # one list of starts for every subject (SMILES): listed in their canonical form
        starts = list(dict.fromkeys(run_starts[(subjects[0], i)] for i in range(len(starts))))
        run_starts = {(s, i): v for s in subjects for i, v in enumerate(starts)}
    return SweepSpec(kind=kind, subjects=subjects, starts=starts, seeds=seeds, methods=methods, budget=budget, engine=engine,
                     objectives=objectives, budgets=budgets, run_starts=run_starts, resources=resources, name=str(sweep.get("name", "")),
                     source=source, raw=data)


def _objective_options(domain, data: dict, resources: dict, base: Path) -> dict:
    """The objective spec's options from the sweep file's [objective] table and the domain's own
    tables (``Domain.sweep_options``); file paths are read against the sweep file's folder."""
    options = dict(data.get("objective", {}))
    if data.get("sweep", {}).get("protocol") is not None:
        options["protocol"] = data["sweep"]["protocol"]
    options.update(domain.sweep_options(data, resources, base))
    if resources["cache_dir"] is not None:
        options.setdefault("cache_dir", resources["cache_dir"])
    return options


def _place(where: "_Where", exc: SpecError, kind: str) -> str:
    """Where in the sweep file the key of a domain's SpecError lives."""
    domain = get_domain(kind)
    if exc.key in (domain.subject, domain.subjects_key):
        return where.at("sweep", domain.subjects_key)
    if exc.table:  # a nested table of the objective, e.g. docking or docking.limits
        return where.at(exc.table, exc.key) if exc.key else where.at(None, exc.table)
    for table in ("objective", *domain.sweep_tables):
        if exc.key and where.line(table, exc.key):
            return where.at(table, exc.key)
    return where.source


class _Where:
    """Line numbers for keys (tomllib reports them only for syntax errors)."""

    def __init__(self, source: str, text: str):
        self.source = source
        self.lines = text.splitlines() if text else []

    def line(self, table: Optional[str], key: str) -> Optional[int]:
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


def _str_list(value, name: str, where: _Where) -> list[str]:
    table, key = name.split(".", 1)
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v.strip() for v in value):
        raise SpecError(f"{where.at(table, key)}: {name} must be a non-empty string or list of non-empty strings")
    return list(dict.fromkeys(v.strip() for v in value))


def _methods(sweep: dict, where: _Where, domain) -> list[str]:
    if "method" in sweep and "methods" in sweep:
        raise SpecError(f"{where.at('sweep', 'methods')}: give sweep.method or sweep.methods, not both")
    key = "methods" if "methods" in sweep else "method"
    if key not in sweep:
        raise SpecError(f"{where.source}: missing key sweep.method (or sweep.methods); choose from {', '.join(domain.methods)}")
    methods = []
    for m in _str_list(sweep[key], f"sweep.{key}", where):
        try:
            m = canonical_method(m)
        except ValueError as exc:
            raise SpecError(f"{where.at('sweep', key)}: {exc}") from None
        if m not in domain.methods:
            raise SpecError(f"{where.at('sweep', key)}: method {m!r} does not apply to kind = {domain.kind!r}; choose from {', '.join(domain.methods)}")
        methods.append(m)
    return list(dict.fromkeys(methods))


def _seeds(value, where: _Where) -> list[int]:
    if _is_int(value):
        if value < 1:
            raise SpecError(f"{where.at('sweep', 'seeds')}: sweep.seeds as a count must be >= 1")
        return list(range(value))
    if isinstance(value, list) and value and all(_is_int(s) for s in value):
        return list(dict.fromkeys(value))
    raise SpecError(f"{where.at('sweep', 'seeds')}: sweep.seeds must be a count (e.g. 3) or a non-empty list of integers")


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
    if b["stop_when"] not in (None, "all_goals_met"):
        bad("stop_when", 'must be "all_goals_met"')


def _check_resources(r: dict, where: _Where) -> None:
    for key in ("n_workers", "llm_concurrency"):
        if r[key] is not None and (not _is_int(r[key]) or r[key] < 1):
            raise SpecError(f"{where.at('resources', key)}: resources.{key} must be an integer >= 1")
    if not _is_int(r["docking_workers"]) or r["docking_workers"] < 0:
        raise SpecError(f"{where.at('resources', 'docking_workers')}: resources.docking_workers must be an integer >= 0 "
                        "(0 = chosen from the run's cores)")
    if not _is_int(r["max_attempts"]) or r["max_attempts"] < 1:
        raise SpecError(f"{where.at('resources', 'max_attempts')}: resources.max_attempts must be an integer >= 1")
    if r["cache_dir"] is not None and not isinstance(r["cache_dir"], str):
        raise SpecError(f"{where.at('resources', 'cache_dir')}: resources.cache_dir must be a path string")
    if not _is_num(r["run_lock_timeout_s"]) or r["run_lock_timeout_s"] < 0:
        raise SpecError(f"{where.at('resources', 'run_lock_timeout_s')}: resources.run_lock_timeout_s must be a number >= 0")
