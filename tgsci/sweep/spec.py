"""The sweep file: read, check and expand it into runs (see ``tgsci.sweep`` for the format).

Everything is checked here, before any Dask task starts: unknown tables and keys (with the
line and a "did you mean"), methods, seeds, budgets, and each run's objective spec through
the domain registry (``tgsci.domains.check_spec``: unknown targets, cases, settings), and
every start value. A spec error is never a task failure, so it is never retried.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from simulators.files import slug

from ..domains import DEFAULT_KIND, SpecError, check_spec, domains, get_domain
from ..proposers import canonical_method
from ..spec_models import Budget, EngineTable, names, sweep_model

CORE_TABLES = ("sweep", "budget", "engine", "objective", "resources")  # besides each domain's own (Domain.sweep_tables)


def tables() -> list[str]:
    """Every table a sweep file may hold: the core ones and every registered domain's."""
    return list(dict.fromkeys([*CORE_TABLES, *(t for d in domains() for t in d.sweep_tables)]))


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
    known = tables()
    for table, value in data.items():
        if table not in known:
            raise SpecError(where.unknown(table, None, known, what="table"))
        if not isinstance(value, dict):
            raise SpecError(f"{where.at(None, table)}: '{table}' must be a table ([{table}]), not {type(value).__name__}")
    if "sweep" not in data:
        subjects = " or ".join(d.subjects_key for d in domains())
        raise SpecError(f"{source}: missing table [sweep] (with kind, {subjects}, starts, seeds, method)")
    kind = data["sweep"].get("kind", DEFAULT_KIND)
    domain = get_domain(kind)
    for table in {t for d in domains() for t in d.sweep_tables}:
        if data.get(table) and table not in domain.sweep_tables:
            raise SpecError(f"{where.at(None, table)}: [{table}] is not for kind = {kind!r}")
    for key in {k for d in domains() for k in d.sweep_keys} - set(domain.sweep_keys):
        if key in data["sweep"]:
            raise SpecError(f"{where.at('sweep', key)}: sweep.{key} is not for kind = {kind!r}")
    for key in {k for d in domains() for k in d.resources_model.model_fields} - set(domain.resources_model.model_fields):
        if key in data.get("resources", {}):
            raise SpecError(f"{where.at('resources', key)}: resources.{key} is not for kind = {kind!r}")
    for other in {d.subjects_key for d in domains()} - {domain.subjects_key}:
        if other in data["sweep"]:
            raise SpecError(f"{where.at('sweep', other)}: sweep.{other} is not for kind = {kind!r}; it takes sweep.{domain.subjects_key}")

    sweep = _checked(sweep_model(domain), data["sweep"], "sweep", where)
    budget = _checked(Budget, data.get("budget", {}), "budget", where).as_dict()
    resources = _checked(domain.resources_model, data.get("resources", {}), "resources", where).model_dump()
    engine = dict(data.get("engine", {}))
    _checked(EngineTable, engine, "engine", where)
    methods = _methods(sweep, where, domain)
    seeds = list(range(sweep.seeds)) if isinstance(sweep.seeds, int) else list(dict.fromkeys(sweep.seeds))

    try:
        options = _objective_options(domain, data, resources, base)
    except SpecError as exc:
        raise SpecError(f"{where.at(exc.table, exc.key)}: {exc}") from None
    try:
        subjects = domain.subjects(data["sweep"][domain.subjects_key], options, base)
    except SpecError as exc:
        raise SpecError(f"{where.at('sweep', domain.subjects_key)}: {exc}") from None
    preset = None
    if sweep.protocol is not None:
        from ..presets import protocol

        try:
            preset = protocol(sweep.protocol, kind)
        except ValueError as exc:
            raise SpecError(f"{where.at('sweep', 'protocol')}: {exc}") from None
    starts = sweep.starts
    if starts is None and preset is not None and "starts" in preset:
        starts = list(preset["starts"])  # the protocol's starts
    if domain.starts_required and starts is None:
        raise SpecError(f"{source}: missing key sweep.starts (a list of starting values)")
    starts = names(starts if starts is not None else ["default"])

    budgets = {m: dict(budget) for m in methods}
    if preset is not None:
        from ..presets import protocol_budget

        budgets = {m: {**budget, **protocol_budget(sweep.protocol, m, kind)} for m in methods}

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
                     objectives=objectives, budgets=budgets, run_starts=run_starts, resources=resources, name=sweep.name,
                     source=source, raw=data)


def _checked(model, value: dict, table: str, where: "_Where"):
    """``model`` of a table; a SpecError points at the key's line."""
    try:
        return model.checked(value, table)
    except SpecError as exc:
        place = where.at(exc.table, exc.key) if exc.key else where.at(None, table)
        raise SpecError(f"{place}: {exc}", exc.key, exc.table) from None


def _objective_options(domain, data: dict, resources: dict, base: Path) -> dict:
    """The objective spec's options from the sweep file's [objective] table and the domain's own
    tables (``Domain.sweep_options``); file paths are read against the sweep file's folder."""
    options = dict(data.get("objective", {}))
    for key in ("kind", domain.subject):
        if key in options:
            raise SpecError(f"objective.{key} is set by [sweep] ({'kind' if key == 'kind' else domain.subjects_key}), "
                            "not in [objective]", key, "objective")
    for key, where in domain.sweep_moved.items():
        if key in options:
            raise SpecError(f"objective.{key} goes in {where} of a sweep file, not in [objective]", key, "objective")
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
    if exc.table:  # a nested table of the objective: [docking], [docking.limits], [objective.prepare]
        for table in (exc.table, f"objective.{exc.table}"):
            n = where.find(table, exc.key) if exc.key else where.line(None, table)
            if n:
                return f"{where.source}, line {n}"
        return where.source
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

    def find(self, table: Optional[str], key: str) -> Optional[int]:
        """The line of ``key`` in ``table``, or of the inline table holding it (limits = {...} in [docking])."""
        n = self.line(table, key)
        while n is None and table and "." in table:
            table, key = table.rsplit(".", 1)
            n = self.line(table, key)
        return n

    def at(self, table: Optional[str], key: str) -> str:
        n = self.find(table, key)
        return f"{self.source}, line {n}" if n else self.source

    def unknown(self, key: str, table: Optional[str], allowed: list[str], what: str = "key") -> str:
        name = f"{table}.{key}" if table else key
        close = difflib.get_close_matches(key, allowed, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        place = f"[{table}]" if table else "the top level"
        return f"{self.at(table, key)}: unknown {what} {name!r} in {place}{hint}; valid: {', '.join(allowed)}"


def _methods(sweep, where: _Where, domain) -> list[str]:
    """The canonical method names of [sweep], each one the domain supports."""
    if sweep.method is not None and sweep.methods is not None:
        raise SpecError(f"{where.at('sweep', 'methods')}: give sweep.method or sweep.methods, not both")
    key = "methods" if sweep.methods is not None else "method"
    if getattr(sweep, key) is None:
        raise SpecError(f"{where.source}: missing key sweep.method (or sweep.methods); choose from {', '.join(domain.methods)}")
    methods = []
    for m in names(getattr(sweep, key)):
        try:
            m = canonical_method(m)
        except ValueError as exc:
            raise SpecError(f"{where.at('sweep', key)}: {exc}") from None
        if m not in domain.methods:
            raise SpecError(f"{where.at('sweep', key)}: method {m!r} does not apply to kind = {domain.kind!r}; choose from {', '.join(domain.methods)}")
        methods.append(m)
    return list(dict.fromkeys(methods))
