"""Domains are plug-ins: the one place that builds objectives from specs and reports their runs.

A spec is a dict or a TOML table naming a ``kind`` and its options::

    {"kind": "molecule", "target": "PPARA", "aggregation": "vina", "docking": {"exhaustiveness": 4}}
    {"kind": "plan", "case": "tg119", "fast": True}

``build_objective(spec)`` checks it (unknown keys, targets and cases are ``SpecError`` at once,
before any simulator starts) and builds the objective. Each domain registers a ``Domain``: its
spec parser, its start values, its report sections, its CSV and sweep-summary columns and
panels; the CLI, sweeps, notebooks and reports ask the registry, and nobody else switches on
the kind. Objectives made in Python (a plain function, your own subclass) get the generic
domain in reports.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from ..spec_models import Resources, SpecError, SpecModel, plain

if TYPE_CHECKING:
    from ..objectives.base import Evaluation, Objective
    from ..record import RunConfig, RunRecord


class Domain:
    """The generic domain; molecule and plan subclass it. Methods get specs already checked."""

    kind = "objective"
    subject = "subject"  # the spec key a sweep varies: "target", "case"
    subjects_key = "subjects"  # its plural in sweep files: "targets", "cases"
    option_keys: tuple[str, ...] = ()  # keys allowed besides kind and subject (without options_model)
    path_keys: tuple[str, ...] = ()  # keys holding file paths: made absolute against the spec's folder
    methods: tuple[str, ...] = ("tgd",)  # proposers (tgsci.proposers) its objectives support
    trajectory_panels = [("score", "score (lower is better)")]
    value_column = "best_value"  # the sweep-summary column of the best value
    summary_columns: list[str] = []  # per-run sweep columns read from the best candidate
    reference_metrics: tuple[str, ...] = ()  # ref_<metric> columns; the first picks the best reference (else the score)
    # sweep figure panels: (summary column, axis label, reference metric drawn as a bar or None, y limits or None)
    summary_panels: list[tuple] = [("best_score", "best score\nlower is better", None, None)]
    # sweep files: the domain's own tables besides [objective] (molecules: [docking]), whether sweep.starts
    # is required, and whether one list of starts serves every subject (SMILES) or starts are per subject
    sweep_tables: tuple[str, ...] = ()
    sweep_keys: tuple[str, ...] = ()  # the domain's own [sweep] keys besides its subjects (molecules: targets_file)
    starts_required = False
    shared_starts = False
    sweep_moved: dict[str, str] = {}  # objective options a sweep file sets elsewhere: key -> where (molecules: docking)
    subjects_help = ""  # the rule of sweep.<subjects_key> in errors and the schema (default: "all" or names)
    # typed specs (tgsci.spec_models): the objective's options (None: checked by check() alone), models of
    # the domain's own sweep tables, and [resources] with the domain's own keys
    options_model: Optional[type[SpecModel]] = None
    table_models: dict[str, type[SpecModel]] = {}
    resources_model: type[Resources] = Resources
    # published setups by name (tgsci.presets): "budget" (optimize() arguments), "budget_by_method", and
    # what the domain reads itself (molecules: "starts", "objective" options; plans: "start_weight", ...)
    protocols: dict[str, dict] = {}

    def sweep_options(self, data: dict, resources: dict, base: Path) -> dict:
        """Objective options a sweep file's domain tables and keys add (``sweep_tables``, ``sweep_keys``;
        file paths read against ``base``, the sweep file's folder), before the spec check."""
        return {}

    def add_commands(self, app) -> None:
        """Add this kind's own CLI commands to tgsci's typer ``app`` (``tgsci molecule``, ``tgsci plan``)."""

    # ------------------------------------------------------------------ specs
    def check(self, spec: dict) -> dict:
        """The spec with defaults filled in and values normalized; SpecError otherwise. Cheap."""
        raise SpecError(f"objectives of kind {self.kind!r} are built in Python, not from a spec")

    def build(self, spec: dict) -> "Objective":
        raise SpecError(f"objectives of kind {self.kind!r} are built in Python, not from a spec")

    def subjects(self, value: Any, options: dict, base: Optional[Path] = None) -> list[str]:
        """A sweep's subjects: ``"all"`` or a list of names, each checked (``options``: the objective's;
        ``base``: the sweep file's folder, against which a subject given as a file path is read)."""
        raise SpecError(f"kind {self.kind!r} cannot be swept")

    def start(self, spec: dict, value: Optional[str]) -> str:
        """The normalized start for ``value`` (None or "default": the domain's own); SpecError if invalid."""
        if value is None:
            raise SpecError("give a start value")
        return value

    def _protocol(self, name: Any) -> dict:
        """The protocol ``name`` of this kind (tgsci.presets); SpecError lists the known ones."""
        from ..presets import protocol

        try:
            return protocol(name, self.kind)
        except (ValueError, TypeError) as exc:
            raise SpecError(str(exc), "protocol") from None

    def absolute(self, key: str, value: str, base: Path) -> str:
        """A path key's value read against ``base`` (the spec's folder)."""
        return str((base / Path(value).expanduser()).resolve())

    def unknown_keys(self, spec: dict, table: Optional[str] = None) -> None:
        options = tuple(self.options_model.model_fields) if self.options_model is not None else self.option_keys
        allowed = tuple(dict.fromkeys(("kind", self.subject) + options))
        for key in spec:
            if key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise SpecError(f"unknown option {key!r} for a {self.kind} objective{hint}; valid: {', '.join(allowed)}", key, table)

    # ------------------------------------------------------------------ reports
    @staticmethod
    def origin(run: "RunRecord", step: int, c: "Evaluation") -> str:
        """Who proposed a candidate: the start, the run's method (the LLM, for TGD), or what its record says (a fallback)."""
        if c.origin:
            return c.origin
        if step == 0:
            return "start"
        from ..proposers import LLM_METHODS

        method = str(run.config.method.get("method", ""))
        return "LLM" if method in LLM_METHODS else method

    def objective_text(self, config: "RunConfig") -> str:
        return str(config.objective.get("kind", "objective"))

    def report_sections(self, run: "RunRecord") -> list[tuple[str, str]]:
        from ..html import html_table

        rows = [{"step": step, "value": c.value, "score": c.score, "result": c.text, "error": c.error or "",
                 "origin": self.origin(run, step, c)} for step, c in run.candidates()]
        return [(f"Candidates ({len(rows)})", html_table(rows))]

    comparison_file = ""  # a table comparing a run's best with its start and references (plans: the paper's)

    def comparison_rows(self, run: "RunRecord", label: str, context: bool = True) -> list[dict]:
        """Rows of ``comparison_file`` for a run: its best labelled ``label``; with ``context`` also
        the start and the reference designs."""
        return []

    def comparison_summary(self, rows: list[dict]) -> list[dict]:
        """Rows of ``<comparison_file stem>_summary.csv`` over every run's comparison rows ([] for none)."""
        return []

    def overview_rows(self, config: "RunConfig") -> list[tuple[str, str]]:
        """Extra (label, text) rows of the report's summary table."""
        return []

    def summary_values(self, best: "Evaluation") -> dict:
        """The ``summary_columns`` of one run's best candidate."""
        return {}

    result_columns: dict[str, tuple[str, str]] = {}  # CLI table: column -> (metric, format spec)

    def result_rows(self, result, objective) -> list[tuple[str, "Evaluation"]]:
        """(label, evaluation) rows the CLI prints after a run."""
        return [("start", result.start), ("best", result.best)]


GENERIC = Domain()
_REGISTRY: dict[str, Domain] = {}


def register(domain: Domain) -> Domain:
    _REGISTRY[domain.kind] = domain
    return domain


def kinds() -> list[str]:
    _load_builtin()
    return list(_REGISTRY)


def get_domain(kind: str) -> Domain:
    """The registered domain of ``kind``; SpecError lists the known kinds."""
    _load_builtin()
    if kind not in _REGISTRY:
        raise SpecError(f"unknown kind {kind!r}; choose one of: {', '.join(_REGISTRY)}", "kind")
    return _REGISTRY[kind]


def domain_for(kind: str) -> Domain:
    """For reports: the registered domain, or the generic one (objectives made in Python)."""
    _load_builtin()
    return _REGISTRY.get(kind, GENERIC)


DEFAULT_KIND = "molecule"  # the kind of a spec or sweep file that names none (the paper's first study)


def domains() -> list[Domain]:
    """Every registered domain."""
    _load_builtin()
    return list(_REGISTRY.values())


def check_spec(spec: dict, table: Optional[str] = None, base: Optional[str | Path] = None) -> dict:
    """The normalized spec (``kind`` defaults to ``DEFAULT_KIND``; file paths absolute, relative ones
    read against ``base``, default the working directory); SpecError says what is wrong."""
    if not isinstance(spec, dict):
        raise SpecError(f"an objective spec must be a table (dict), not {type(spec).__name__}")
    spec = plain({"kind": DEFAULT_KIND, **spec})
    domain = get_domain(spec["kind"])
    domain.unknown_keys(spec, table)
    for key in domain.path_keys:
        if spec.get(key) is not None:
            if not isinstance(spec[key], (str, Path)):
                raise SpecError(f"{key} must be a file path, not {spec[key]!r}", key, table)
            spec[key] = domain.absolute(key, str(spec[key]), Path(base or Path.cwd()))
    return domain.check(spec)


def build_objective(spec: dict, base: Optional[str | Path] = None) -> "Objective":
    """Check ``spec`` and build its objective; the objective keeps the spec (``objective.spec``)."""
    spec = check_spec(spec, base=base)
    objective = get_domain(spec["kind"]).build(spec)
    objective.spec = spec
    return objective


ENTRY_POINT_GROUP = "tgsci.domains"  # other packages' domains: ``[project.entry-points."tgsci.domains"]``
_plugins_loaded = False


def _load_builtin() -> None:
    """Import the built-in domains (each registers itself on import; importing twice is a no-op),
    then, once, the domains other installed packages declare as entry points."""
    from . import molecule, plan  # noqa: F401

    global _plugins_loaded
    if not _plugins_loaded:
        _plugins_loaded = True
        _load_plugins()


def _load_plugins() -> None:
    """Register each ``tgsci.domains`` entry point: a Domain instance or class, or a module that
    registers its own. One that fails to import is a warning naming it; the others still load."""
    import warnings
    from importlib.metadata import entry_points

    for point in entry_points(group=ENTRY_POINT_GROUP):
        try:
            loaded = point.load()
        except Exception as exc:  # noqa: BLE001 - another package's bug must not stop tgsci
            warnings.warn(f"domain plug-in {point.name!r} ({point.value}) could not be loaded: {type(exc).__name__}: {exc}",
                          stacklevel=3)
            continue
        if isinstance(loaded, type) and issubclass(loaded, Domain):
            loaded = loaded()
        if isinstance(loaded, Domain):
            if loaded.kind in _REGISTRY and _REGISTRY[loaded.kind] is not loaded:
                warnings.warn(f"domain plug-in {point.name!r} ({point.value}) redefines kind {loaded.kind!r}: ignored", stacklevel=3)
                continue
            register(loaded)


__all__ = ["SpecError", "Domain", "GENERIC", "DEFAULT_KIND", "ENTRY_POINT_GROUP", "register", "kinds", "domains", "get_domain", "domain_for", "check_spec",
           "build_objective"]
