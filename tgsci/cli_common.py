"""What every CLI command shares: the console, errors as exit 2, engines, objectives, budgets, and
one run under a progress bar. Commands live in ``tgsci.cli`` and in each domain's ``cli.py``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

console = Console(stderr=True)


def fail(message: str) -> None:
    console.print(f"[bold red]error:[/] {escape(str(message))}")  # a [table] name in the message is text, not markup
    raise typer.Exit(code=2)


def engines_for(method, settings: dict, no_cache: bool):
    """(feedback, optimizer) engines for LLM methods from [engine] settings (None: the config's),
    checked for keys up front; (None, None) for baselines."""
    from .config import ConfigError, make_engines
    from .engine import MissingKeyError
    from .proposers import LLM_METHODS, canonical_method

    try:
        method = canonical_method(method)
    except ValueError as exc:
        fail(str(exc))
    if method not in LLM_METHODS:
        return None, None

    try:
        feedback, optimizer = make_engines(settings, cache=not no_cache)
        feedback.check_keys()
        optimizer.check_keys()
    except (ConfigError, MissingKeyError, ValueError) as exc:
        fail(str(exc))
    return feedback, optimizer


def objective_from(spec: dict):
    """The objective of a spec, or a clear error and exit 2 (unknown target, case, setting; no memory)."""
    from .domains import SpecError, build_objective

    try:
        return build_objective(spec)
    except (SpecError, ValueError, MemoryError) as exc:
        fail(str(exc))


def start_from(spec: dict, start: Optional[str]) -> str:
    from .domains import SpecError, get_domain

    try:
        return get_domain(spec["kind"]).start(spec, start)
    except SpecError as exc:
        fail(str(exc))


def run_and_report(objective, start, method, feedback, optimizer, steps, proposals, max_evaluations, patience, target_score, run_dir, seed,
         stop_when=None, min_improvement=0.0, plateau: Optional[dict] = None):
    """Run optimize() under a rich progress bar, print the outcome and write the report."""
    from .domains import domain_for
    from .engine import EngineError
    from .loop import MAX_CONSECUTIVE_ENGINE_ERRORS, optimize
    from .record import RunDirError, run_state, set_aside_summary
    from .run_report import report_run

    if run_dir is not None and Path(run_dir).is_dir():
        try:
            state, record = run_state(run_dir)
        except RunDirError as exc:
            fail(str(exc))
        if state == "engine_error":  # the LLM was unreachable: asked again, the run goes on from its last step
            console.print(escape(f"resuming {run_dir}: it stopped on LLM errors ({record.summary.stop_reason})"))
            set_aside_summary(run_dir)

    with Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(), console=console, transient=False,
    ) as progress:
        task = progress.add_task(f"{method} steps", total=steps, status="evaluating start")

        def on_step(record) -> None:
            status = f"best {record.best.score:.3f}" if record.best.valid else "no valid candidate yet"
            progress.update(task, completed=record.step, status=status)

        try:
            result = optimize(
                objective, start, method=method, engine=feedback, optimizer_engine=optimizer, max_steps=steps,
                n_proposals=proposals, max_evaluations=max_evaluations, patience=patience,
                target_score=target_score, run_dir=run_dir, seed=seed, callback=on_step, stop_when=stop_when,
                min_improvement=min_improvement, **(plateau or {}),
            )
        except (RunDirError, EngineError, ValueError) as exc:
            fail(str(exc))
        finally:
            objective.close()
    table = Table(title=f"{objective.describe_short()}  (stop: {result.stop_reason})")
    columns = domain_for(objective.kind).result_columns
    for col in ("", "value", "score", *columns):
        table.add_column(col, overflow="fold")
    for label, ev in domain_for(objective.kind).result_rows(result, objective):
        cells = [_cell(ev.metrics.get(key), spec) for key, spec in columns.values()]
        # values and errors are text, not rich markup: a SMILES's [nH] or [O-] would vanish as a tag
        table.add_row(label, escape(ev.value), f"{ev.score:.3f}" if ev.valid else escape(ev.error or "invalid"), *cells)
    Console().print(table)
    u = result.usage
    console.print(f"LLM {u.text()}")
    fallback = sum(1 for ev in result.evaluations if ev.origin)
    if fallback:
        console.print(f"{fallback} candidate(s) came from the fallback mutation, not the LLM (labelled in the record)")
    if result.run_dir:
        console.print(escape(f"run record: {result.run_dir}"))
        console.print(escape(f"report (self-contained HTML): {report_run(result.run_dir)}"))
    # the verdict last, with how it was judged (a plan's: the grid, and a warning on the dose grid)
    console.print(escape(f"best: {objective.summarize(result.best)} [{objective.describe_short()}]"))
    if result.stop_reason.startswith("engine_error"):  # every LLM call of the last steps failed: not a finished run
        console.print(f"[bold red]stopped:[/] the LLM failed on {MAX_CONSECUTIVE_ENGINE_ERRORS} steps in a row: "
                      f"{escape(result.stop_reason.removeprefix('engine_error: '))}\n"
                      "the finished steps are saved; run the same command again to retry from there")
        raise typer.Exit(code=3)
    return result


def _cell(value, spec: str) -> str:
    return "-" if value is None else format(value, spec) if spec else str(value)


def parse_pairs(text: str, option: str) -> dict:
    """``a=1,b=2`` as {"a": 1.0, "b": 2.0}; a clear error for anything else."""
    out = {}
    for item in (x.strip() for x in text.split(",") if x.strip()):
        key, _, value = item.partition("=")
        try:
            out[key.strip()] = float(value)
        except ValueError:
            fail(f"{option}: {item!r} is not name=number (e.g. vina=0,qed=0,sa=10)")
    return out


def budget_for(protocol, kind, method, steps, proposals, max_evaluations, patience, stop_when, plateau: Optional[dict] = None) -> dict:
    """The run's budget: the options given, or the protocol's for this kind and method (checked: exit 2 when wrong)."""
    budget = {"steps": steps, "proposals": proposals, "max_evaluations": max_evaluations, "patience": patience or None,
              "stop_when": stop_when, "plateau": plateau}
    if protocol:
        from .presets import protocol_budget
        from .proposers import canonical_method

        try:
            preset = protocol_budget(protocol, canonical_method(method), kind)
        except ValueError as exc:
            fail(str(exc))
        budget.update({"steps": preset["max_steps"], "proposals": preset.get("n_proposals", proposals),
                       "max_evaluations": preset.get("max_evaluations"), "patience": preset.get("patience"),
                       "stop_when": preset.get("stop_when"),
                       "plateau": {k: preset[k] for k in ("plateau_margin", "plateau_steps") if k in preset}})
        console.print(f"protocol {protocol}: {budget}")
    _check_budget(budget)
    return budget


def _check_budget(budget: dict) -> None:
    """A bad budget (a negative margin, plateau steps < 1, ...) is one message before any simulation."""
    from .spec_models import Budget, SpecError

    try:
        Budget.checked({"max_steps": budget["steps"], "n_proposals": budget["proposals"], "max_evaluations": budget["max_evaluations"],
                        "patience": budget["patience"], "stop_when": budget["stop_when"], **(budget.get("plateau") or {})})
    except SpecError as exc:
        fail(str(exc))


def export_dose(run_dir: Path, which: str, out: Optional[Path]) -> None:
    """Re-export a recorded plan (its weights re-optimized to the same fluence) as RTDOSE + DVH table."""
    from .domains import SpecError, build_objective
    from .objectives.base import ExportsDose
    from .record import RunDirError, RunRecord

    try:
        record = RunRecord.load(run_dir)
    except RunDirError as exc:
        fail(str(exc))
    if not record.config.spec:
        fail(f"{run_dir} was not written by tgsci plan (no spec in its config.json)")
    if which in ("best", "start"):
        ev = record.best if which == "best" else record.start
        value, label = (ev.value if ev is not None else None), which
    elif which.isdigit():
        step = next((s for s in record.steps if s.step == int(which)), None)
        valid = [c for c in step.candidates if c.valid] if step else []
        if not valid:
            fail(f"step {which} of {run_dir} has no valid plan")
        value, label = min(valid, key=lambda c: c.score).value, f"step{which}"
    else:
        value, label = which, "weights"
    path = out or run_dir / f"dose_{label}.dcm"
    objective = None
    try:
        objective = build_objective(record.config.spec)
        if not isinstance(objective, ExportsDose):
            fail(f"{run_dir} is a {record.kind} run: it has no dose to export")
        written = objective.export_dose(value, path, dvh_csv=path.with_suffix(".csv"))
    except (SpecError, ValueError, MemoryError) as exc:
        fail(str(exc))
    finally:
        if objective is not None:
            objective.close()
    console.print(escape(f"wrote {', '.join(str(path.parent / w) for w in written)} for {value}"))
