"""Command line: a thin layer over the Python API (config -> engines -> objective -> optimize)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from .version import __version__

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Optimize molecules and treatment plans with textual gradients.")
console = Console(stderr=True)


def _version(value: bool) -> None:
    if value:
        print(f"tgsci {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """tgsci: textual-gradient design of molecules and radiotherapy plans."""


def _fail(message: str) -> None:
    console.print(f"[bold red]error:[/] {escape(str(message))}")  # a [table] name in the message is text, not markup
    raise typer.Exit(code=2)


def _engines(method, settings: dict, no_cache: bool):
    """(feedback, optimizer) engines for LLM methods from [engine] settings (None: the config's),
    checked for keys up front; (None, None) for baselines."""
    from .config import ConfigError, make_engines
    from .engine import MissingKeyError
    from .proposers import LLM_METHODS, canonical_method

    try:
        method = canonical_method(method)
    except ValueError as exc:
        _fail(str(exc))
    if method not in LLM_METHODS:
        return None, None

    try:
        feedback, optimizer = make_engines(settings, cache=not no_cache)
        feedback.check_keys()
        optimizer.check_keys()
    except (ConfigError, MissingKeyError, ValueError) as exc:
        _fail(str(exc))
    return feedback, optimizer


def _objective(spec: dict):
    """The objective of a spec, or a clear error and exit 2 (unknown target, case, setting; no memory)."""
    from .domains import SpecError, build_objective

    try:
        return build_objective(spec)
    except (SpecError, ValueError, MemoryError) as exc:
        _fail(str(exc))


def _start(spec: dict, start: Optional[str]) -> str:
    from .domains import SpecError, get_domain

    try:
        return get_domain(spec["kind"]).start(spec, start)
    except SpecError as exc:
        _fail(str(exc))


def _run(objective, start, method, feedback, optimizer, steps, proposals, max_evaluations, patience, target_score, run_dir, seed,
         stop_when=None, min_improvement=0.0):
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
            _fail(str(exc))
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
                min_improvement=min_improvement,
            )
        except (RunDirError, EngineError, ValueError) as exc:
            _fail(str(exc))
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
    if result.stop_reason.startswith("engine_error"):  # every LLM call of the last steps failed: not a finished run
        console.print(f"[bold red]stopped:[/] the LLM failed on {MAX_CONSECUTIVE_ENGINE_ERRORS} steps in a row: "
                      f"{escape(result.stop_reason.removeprefix('engine_error: '))}\n"
                      "the finished steps are saved; run the same command again to retry from there")
        raise typer.Exit(code=3)
    return result


def _cell(value, spec: str) -> str:
    return "-" if value is None else format(value, spec) if spec else str(value)


@app.command()
def molecule(
    target: Optional[str] = typer.Option(None, help="Target name: DOCKSTRING's (see `tgsci targets`) or of --targets-file; "
                                                    "with --receptor, the name of your target. Default PPARA."),
    targets_file: Optional[Path] = typer.Option(None, help="Your own target manifest (schema of targets/dockstring_targets.toml)."),
    receptor: Optional[Path] = typer.Option(None, help="Your own receptor: PDB or mmCIF (prepared: hydrogens at pH 7.4, "
                                                       "waters/ions/ligands removed) or a ready .pdbqt (used as is)."),
    box_ligand: Optional[Path] = typer.Option(None, help="Box around this ligand (SDF, MOL, MOL2, PDB, PDBQT) plus --padding."),
    padding: float = typer.Option(4.0, help="Angstrom added on each side of the --box-ligand or --box-residues box."),
    box_center: Optional[tuple[float, float, float]] = typer.Option(None, help="Box center X Y Z (Angstrom), with --box-size."),
    box_size: Optional[tuple[float, float, float]] = typer.Option(None, help="Box size X Y Z (Angstrom)."),
    box_residues: Optional[str] = typer.Option(None, help="Box around residues, e.g. A:ASP86,A:LYS33."),
    chains: Optional[str] = typer.Option(None, help="Receptor chains to keep, e.g. A or A,B (default: all)."),
    keep_waters: bool = typer.Option(False, help="Keep crystal waters in the receptor."),
    keep_hetero: Optional[str] = typer.Option(None, help="Hetero groups to keep by residue name, e.g. ZN,MG."),
    altloc: Optional[str] = typer.Option(None, help="Alternate location to keep (default: the highest occupancy per residue)."),
    delete_residues: Optional[str] = typer.Option(None, help="Residues to delete, e.g. A:350,B:15."),
    delete_bad_residues: bool = typer.Option(False, help="Delete every residue meeko cannot type (named in receptor.json)."),
    max_box_side: float = typer.Option(40.0, help="Largest box side accepted (Angstrom); Vina's cost grows with the box volume."),
    goal: list[str] = typer.Option([], help="A goal on a metric, e.g. --goal 'vina<=-9' --goal 'qed>=0.6' (shown to the LLM)."),
    stop_when: Optional[str] = typer.Option(None, help="all_goals_met: stop as soon as the best molecule meets every --goal."),
    start: str = typer.Option("c1ccccc1", help="Starting SMILES."),
    steps: int = typer.Option(10, min=0, help="Maximum optimization steps."),
    proposals: int = typer.Option(4, min=1, help="Candidates proposed per step."),
    method: str = typer.Option("tgd", help="tgd | random | graph-ga (tgsci.proposers.METHODS)"),
    model: Optional[str] = typer.Option(None, help="litellm model string; default: the embedded local model."),
    optimizer_model: Optional[str] = typer.Option(None, help="A different model for TGD updates."),
    api_base: Optional[str] = typer.Option(None, help="Base URL for Ollama/vLLM/OpenAI-compatible servers."),
    temperature: Optional[float] = typer.Option(None),
    max_tokens: Optional[int] = typer.Option(None),
    aggregation: str = typer.Option("dockstring", help="dockstring (Vina + 10*(1-QED)) | vina | qed"),
    off_target: list[str] = typer.Option([], help="Targets to avoid (selectivity), weight -1 each."),
    qed_weight: float = typer.Option(10.0),
    scaffold: Optional[str] = typer.Option(None, help="SMARTS every proposal must keep."),
    exhaustiveness: int = typer.Option(8, min=1),
    docking_seed: Optional[int] = typer.Option(None, help="Vina/embedding seed (default: dockstring's)."),
    workers: int = typer.Option(0, min=0, help="Docking worker processes (0 = chosen from the cores: Vina threads first, up to exhaustiveness)."),
    confirm_seeds: int = typer.Option(3, min=1, help="At the end, dock the best molecules and the approved drugs with this many "
                                                     "Vina seeds; reports use the best of the seeds (1 = off)."),
    confirm_top: int = typer.Option(3, min=1, help="How many of the run's best molecules --confirm-seeds docks again."),
    objectives: Optional[str] = typer.Option(None, help="Pareto mode: a front of these metrics instead of one score, e.g. vina,qed,sa."),
    reference_point: Optional[str] = typer.Option(None, help="Pareto mode: the hypervolume's reference point, e.g. vina=0,qed=0,sa=10 "
                                                             "(the default)."),
    protocol: Optional[str] = typer.Option(None, help="paper: the paper's molecule study (tgsci/presets.py): its budget "
                                                      "(20 steps x 3, 61 dockings, early stop after 5 steps without a better molecule)."),
    max_evaluations: Optional[int] = typer.Option(None, help="Docking budget (candidates)."),
    patience: int = typer.Option(3, help="Stop after this many steps without improvement (0: never)."),
    target_score: Optional[float] = typer.Option(None, help="Stop once the score is at or below this."),
    run_dir: Path = typer.Option(Path("runs/molecule"), help="Run directory (resumed if it exists)."),
    seed: int = typer.Option(0),
    no_cache: bool = typer.Option(False, help="Do not use the LLM disk cache."),
) -> None:
    """Optimize a molecule for docking (Vina) and drug-likeness (QED) against a protein target."""
    feedback, optimizer = _engines(method, {"model": model, "optimizer_model": optimizer_model, "api_base": api_base,
                                            "temperature": temperature, "max_tokens": max_tokens}, no_cache)
    docking = {"exhaustiveness": exhaustiveness, **({"seed": docking_seed} if docking_seed is not None else {})}
    spec = {"kind": "molecule", "off_targets": list(off_target), "aggregation": aggregation,
            "qed_weight": qed_weight, "scaffold": scaffold, "docking": docking, "docking_workers": workers,
            "confirm_seeds": confirm_seeds, "confirm_top": confirm_top, **({"protocol": protocol} if protocol else {})}
    if goal:
        spec["goals"] = list(goal)
    if objectives:
        spec["objectives"] = objectives
    if reference_point:
        spec["reference_point"] = _pairs(reference_point, "--reference-point")
    if targets_file:
        spec["targets_file"] = str(targets_file)
    if receptor:
        spec.update(_receptor_spec(receptor, target, box_ligand, padding, box_center, box_size, box_residues, chains,
                                   keep_waters, keep_hetero, altloc, delete_residues, delete_bad_residues, max_box_side))
    else:
        spec["target"] = target or "PPARA"
    objective = _objective(spec)
    for note in (objective.targets[objective.primary].preparation or {}).get("box", {}).get("notes", []):
        console.print(escape(f"note: {note}"))
    start_value = _start(objective.spec, start)
    budget = _budget(protocol, "molecule", method, steps, proposals, max_evaluations, patience, stop_when)
    _run(objective, start_value, method, feedback, optimizer, budget["steps"], budget["proposals"], budget["max_evaluations"],
         budget["patience"], target_score, run_dir, seed, budget["stop_when"])


def _pairs(text: str, option: str) -> dict:
    """``a=1,b=2`` as {"a": 1.0, "b": 2.0}; a clear error for anything else."""
    out = {}
    for item in (x.strip() for x in text.split(",") if x.strip()):
        key, _, value = item.partition("=")
        try:
            out[key.strip()] = float(value)
        except ValueError:
            _fail(f"{option}: {item!r} is not name=number (e.g. vina=0,qed=0,sa=10)")
    return out


def _receptor_spec(receptor, target, box_ligand, padding, box_center, box_size, box_residues, chains, keep_waters,
                   keep_hetero, altloc, delete_residues, delete_bad_residues, max_box_side) -> dict:
    """The spec keys of ``--receptor`` and its box and preparation options."""
    def names(text):
        return [x.strip() for x in text.split(",") if x.strip()] if text else []

    spec = {"receptor": str(receptor), "padding": padding, "max_box_side": max_box_side}
    if target:
        spec["target"] = target
    if box_ligand:
        spec["box_ligand"] = str(box_ligand)
    if box_center or box_size:
        spec.update(box_center=list(box_center or ()), box_size=list(box_size or ()))
    if box_residues:
        spec["box_residues"] = names(box_residues)
    prepare = {"chains": names(chains), "keep_waters": keep_waters, "keep_hetero": names(keep_hetero),
               "delete_residues": names(delete_residues), "delete_bad_residues": delete_bad_residues,
               **({"altloc": altloc} if altloc else {})}
    spec["prepare"] = {k: v for k, v in prepare.items() if v not in ([], False)}
    return spec


@app.command()
def plan(
    case: str = typer.Option("tg119", help="Treatment case: a name in targets/cases (tg119, prostate) or a case file (tgsci case init writes one)."),
    start: Optional[str] = typer.Option(None, help="Starting weights as JSON; default: the case's."),
    steps: int = typer.Option(8, min=0),
    proposals: int = typer.Option(2, min=1),
    method: str = typer.Option("tgd", help="tgd | random | graph-ga | tpe | nsga2 (tgsci.proposers.METHODS)"),
    objectives: Optional[str] = typer.Option(None, help="goals: Pareto mode, one axis per clinical goal (coverage against "
                                                        "each organ's goal) instead of one score."),
    fast: bool = typer.Option(False, help="Coarse plan settings of the case (quick trials, tests)."),
    model: Optional[str] = typer.Option(None, help="litellm model string; default: the embedded local model."),
    optimizer_model: Optional[str] = typer.Option(None),
    api_base: Optional[str] = typer.Option(None),
    temperature: Optional[float] = typer.Option(None),
    max_tokens: Optional[int] = typer.Option(None),
    max_evaluations: Optional[int] = typer.Option(None, help="Plan-evaluation budget."),
    patience: int = typer.Option(3, help="Stop after this many steps without improvement (0: never)."),
    run_dir: Path = typer.Option(Path("runs/plan"), help="Run directory (resumed if it exists)."),
    seed: int = typer.Option(0),
    no_cache: bool = typer.Option(False, help="Do not use the LLM disk cache."),
    protocol: Optional[str] = typer.Option(None, help="paper: the TextGrad paper's protocol (start weights 100, reference plans, "
                                                      "stop when all goals are met or after 10 steps; TPE: 50 evaluations in [100, 400])."),
    stop_when: Optional[str] = typer.Option(None, help="all_goals_met: stop as soon as the best plan meets every clinical goal."),
    export_dose: Optional[str] = typer.Option(None, help="Only export a recorded plan of --run-dir as DICOM RTDOSE: "
                                                         "best, start, a step number, or weights as JSON."),
    out: Optional[Path] = typer.Option(None, help="With --export-dose: the RTDOSE file (default RUN_DIR/dose_<which>.dcm)."),
) -> None:
    """Tune the objective weights of an inverse IMRT plan against the case's clinical goals."""
    if export_dose is not None:
        return _export_dose(run_dir, export_dose, out)
    feedback, optimizer = _engines(method, {"model": model, "optimizer_model": optimizer_model, "api_base": api_base,
                                            "temperature": temperature, "max_tokens": max_tokens}, no_cache)
    console.print(escape(f"preparing case {case} (the dose influence matrix is computed once, then cached)"))
    objective = _objective({"kind": "plan", "case": case, "fast": fast, "progress": sys.stderr.isatty(),
                            **({"protocol": protocol} if protocol else {}), **({"objectives": objectives} if objectives else {})})
    start_value = _start(objective.spec, start)
    budget = _budget(protocol, "plan", method, steps, proposals, max_evaluations, patience, stop_when)
    _run(objective, start_value, method, feedback, optimizer, budget["steps"], budget["proposals"], budget["max_evaluations"],
         budget["patience"], None, run_dir, seed, budget["stop_when"])


def _budget(protocol, kind, method, steps, proposals, max_evaluations, patience, stop_when) -> dict:
    """The run's budget: the options given, or the protocol's for this kind and method."""
    budget = {"steps": steps, "proposals": proposals, "max_evaluations": max_evaluations, "patience": patience or None, "stop_when": stop_when}
    if protocol:
        from .presets import protocol_budget
        from .proposers import canonical_method

        try:
            preset = protocol_budget(protocol, canonical_method(method), kind)
        except ValueError as exc:
            _fail(str(exc))
        budget.update({"steps": preset["max_steps"], "proposals": preset.get("n_proposals", proposals),
                       "max_evaluations": preset.get("max_evaluations"), "patience": preset.get("patience"),
                       "stop_when": preset.get("stop_when")})
        console.print(f"protocol {protocol}: {budget}")
    return budget


def _export_dose(run_dir: Path, which: str, out: Optional[Path]) -> None:
    """Re-export a recorded plan (its weights re-optimized to the same fluence) as RTDOSE + DVH table."""
    from .domains import SpecError, build_objective
    from .objectives.base import ExportsDose
    from .record import RunDirError, RunRecord

    try:
        record = RunRecord.load(run_dir)
    except RunDirError as exc:
        _fail(str(exc))
    if not record.config.spec:
        _fail(f"{run_dir} was not written by tgsci plan (no spec in its config.json)")
    if which in ("best", "start"):
        ev = record.best if which == "best" else record.start
        value, label = (ev.value if ev is not None else None), which
    elif which.isdigit():
        step = next((s for s in record.steps if s.step == int(which)), None)
        valid = [c for c in step.candidates if c.valid] if step else []
        if not valid:
            _fail(f"step {which} of {run_dir} has no valid plan")
        value, label = min(valid, key=lambda c: c.score).value, f"step{which}"
    else:
        value, label = which, "weights"
    path = out or run_dir / f"dose_{label}.dcm"
    objective = None
    try:
        objective = build_objective(record.config.spec)
        if not isinstance(objective, ExportsDose):
            _fail(f"{run_dir} is a {record.kind} run: it has no dose to export")
        written = objective.export_dose(value, path, dvh_csv=path.with_suffix(".csv"))
    except (SpecError, ValueError, MemoryError) as exc:
        _fail(str(exc))
    finally:
        if objective is not None:
            objective.close()
    console.print(escape(f"wrote {', '.join(str(path.parent / w) for w in written)} for {value}"))


case_app = typer.Typer(no_args_is_help=True, help="Treatment cases: write one from a patient's DICOM export.")
app.add_typer(case_app, name="case")


@case_app.command("init")
def case_init(
    dicom: Path = typer.Option(..., help="Folder with the patient's CT series and RTSTRUCT."),
    protocol: str = typer.Option("prostate", help="Protocol in targets/protocols: prostate | generic."),
    out: Path = typer.Option(Path("case.toml"), help="Case file to write."),
    series: Optional[str] = typer.Option(None, help="CT SeriesInstanceUID when the folder holds several."),
    prescription: Optional[float] = typer.Option(None, help="Prescription dose (Gy); default: the protocol's."),
    fractions: Optional[int] = typer.Option(None, help="Number of fractions; default: the protocol's."),
    name: Optional[str] = typer.Option(None, help="Case name; default: the folder's name."),
) -> None:
    """Map the RTSTRUCT's ROIs to a protocol's roles and write a starting case file (check it, then `tgsci plan --case`)."""
    from simulators.dose.protocols import init_case

    try:
        done = init_case(dicom, protocol, out, series, prescription, fractions, name)
    except (ValueError, OSError) as exc:
        _fail(str(exc))
    table = Table(title=f"{out} (protocol {protocol})")
    table.add_column("role")
    table.add_column("ROI")
    for role, roi in done["mapped"].items():
        table.add_row(role, escape(roi))  # ROI names come from the patient's files
    for roi in done["as_oars"]:
        table.add_row("organ at risk (goals to fill in)", escape(roi))
    for roi in [r for r in done["unmapped"] if r not in done["as_oars"]]:
        table.add_row("[dim]not used (listed as a comment)[/]", escape(roi))
    Console().print(table)
    console.print(escape(f"next: check {out}, then `tgsci plan --case {out}`"))


@app.command()
def run(
    spec: Path = typer.Argument(..., help="A spec file in the sweep format whose [sweep] names one subject, start, seed and method."),
    run_dir: Optional[Path] = typer.Option(None, help="Run directory (resumed if it exists); default runs/<run name>."),
    no_cache: bool = typer.Option(False, help="Do not use the LLM disk cache."),
) -> None:
    """One run from a spec file, of any registered kind (built in, or a domain another package installs)."""
    from .sweep import SpecError
    from .sweep.spec import load_spec

    try:
        runs = load_spec(spec).expand()
    except SpecError as exc:
        _fail(str(exc))
    if len(runs) != 1:
        _fail(f"{spec} holds {len(runs)} runs; `tgsci run` takes a spec of one (one subject, start, seed and method), "
              f"`tgsci sweep {spec}` runs them all")
    one = runs[0]
    feedback, optimizer = _engines(one["method"], one["engine"] or None, no_cache)
    b = one["budget"]
    _run(_objective(one["objective"]), one["start"], one["method"], feedback, optimizer, b["max_steps"], b["n_proposals"],
         b["max_evaluations"], b["patience"], b["target_score"], run_dir or Path("runs") / one["name"], one["seed"],
         b.get("stop_when"), b["min_improvement"])


@app.command()
def sweep(
    spec: Path = typer.Argument(..., help="Sweep specification (TOML); see examples/sweep_small.toml."),
    out: Path = typer.Option(Path("runs/sweep"), help="Output directory: one run directory per run."),
    scheduler: Optional[str] = typer.Option(None, help="tcp://host:8786 of a running Dask scheduler; default: a LocalCluster."),
    workers: Optional[int] = typer.Option(None, help="LocalCluster worker processes (default: the cores)."),
    max_attempts: Optional[int] = typer.Option(None, help="Retries of a failing run."),
    llm_concurrency: Optional[int] = typer.Option(None, help="Concurrent LLM calls across the sweep."),
    cluster: str = typer.Option("local", help="local (this machine) or slurm (workers as SLURM jobs; run on a login node)."),
    jobs: int = typer.Option(2, help="slurm: jobs to keep running (a lost one is replaced)."),
    cores_per_job: int = typer.Option(4, help="slurm: CPUs per job, one single-threaded Dask worker each."),
    memory: str = typer.Option("8GB", help="slurm: memory per job (Vina + RDKit: ~1-2 GB per worker)."),
    walltime: str = typer.Option("04:00:00", help="slurm: time limit per job (a finished run is never lost to it)."),
    queue: Optional[str] = typer.Option(None, help="slurm: partition."),
    account: Optional[str] = typer.Option(None, help="slurm: account to charge."),
    python: Optional[str] = typer.Option(None, help="slurm: the Python on the nodes (default: this one; the venv must be shared)."),
    interface: Optional[str] = typer.Option(None, help="slurm: network interface the workers reach the scheduler on (e.g. ib0)."),
    cache_dir: Optional[str] = typer.Option(None, help="slurm: TGSCI_CACHE_DIR on the nodes, on node-local disk (e.g. '$TMPDIR/tgsci')."),
) -> None:
    """Run every target x start x seed x method of a spec on Dask; re-running resumes."""
    from .record import RunDirError
    from .sweep import SpecError, SweepLockedError, run_sweep
    from .sweep.slurm import ClusterError, SlurmSettings, run_sweep_on_slurm

    if cluster not in ("local", "slurm"):
        _fail(f"--cluster must be local or slurm, not {cluster!r}")
    options = dict(progress=True, max_attempts=max_attempts, llm_concurrency=llm_concurrency)
    try:
        if cluster == "slurm":
            settings = SlurmSettings(jobs=jobs, cores_per_job=cores_per_job, memory=memory, walltime=walltime, queue=queue,
                                     account=account, python=python or sys.executable, interface=interface,
                                     log_dir=out / "slurm-logs", cache_dir=cache_dir)
            console.print(f"SLURM: {jobs} job(s) x {cores_per_job} worker(s), {memory}, {walltime}"
                          f"{f', partition {queue}' if queue else ''}{f', account {account}' if account else ''}; logs in {out / 'slurm-logs'}")
            result = run_sweep_on_slurm(spec, out, settings, **options)
        else:
            result = run_sweep(spec, out, scheduler=scheduler, n_workers=workers, **options)
    except (SpecError, SweepLockedError, FileNotFoundError, RunDirError, ClusterError) as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        console.print(f"[yellow]interrupted[/]: every finished run and step is recorded in {out}; "
                      f"run the same command again to resume (status: {out / 'status.json'})")
        raise typer.Exit(code=130)
    console.print(f"{len(result.finished)} finished, {len(result.failed)} failed; report: tgsci report {out}")
    if not result.ok:
        raise typer.Exit(code=1)


@app.command()
def schema(output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write it to this file (default: print it).")) -> None:
    """The JSON Schema of spec files (docs/spec.schema.json): editors check a run or sweep TOML file with it."""
    from simulators.files import write_text_atomic

    from .spec_models import schema_text

    text = schema_text()
    if output is None:
        sys.stdout.write(text)
    else:
        write_text_atomic(output, text)
        console.print(f"wrote {output}")


@app.command()
def report(
    directory: Path = typer.Argument(..., help="A run directory (molecule/plan) or a sweep output directory."),
    out: Optional[Path] = typer.Option(None, help="HTML file for a run report (default: DIRECTORY/report.html)."),
) -> None:
    """A run: one self-contained HTML page. A sweep: summary.csv, targets.csv (cases.csv) and summary.png."""
    from .run_report import ReportError, report_run
    from .sweep.report import report_sweep

    try:
        if (directory / "sweep.json").is_file():
            paths = list(report_sweep(directory).paths.values())
        elif (directory / "config.json").is_file():
            paths = [report_run(directory, out)]
        else:
            _fail(f"{directory} is neither a run directory (config.json) nor a sweep directory (sweep.json)")
    except ReportError as exc:
        _fail(str(exc))
    for path in paths:
        console.print(f"wrote {path}")


@app.command()
def targets(file: Optional[Path] = typer.Option(None, "--file", help="Your own target manifest instead of DOCKSTRING's.")) -> None:
    """List the targets (DOCKSTRING's 58, or those of --file) with their receptor, box and reference drugs."""
    from simulators.targets import UnknownTargetError, load_manifest

    try:
        entries = load_manifest(file)
    except (UnknownTargetError, OSError) as exc:
        _fail(str(exc))
    table = Table(title=f"targets of {file}" if file else "DOCKSTRING targets")
    for col in ("target", "receptor", "box", "reference drugs"):
        table.add_column(col, overflow="fold")
    for name, e in sorted(entries.items()):
        if "center" in e:
            box = f"center {e['center']}, size {e.get('size')}"
        elif "box_ligand" in e:
            box = f"around {Path(e['box_ligand']).name} + {e.get('padding', 4.0):g} A"
        else:
            box = f"around residues {e.get('box_residues')}"
        table.add_row(*map(escape, (name, Path(e["receptor"]).name, box, ", ".join(r["name"] for r in e.get("references", [])))))
    Console().print(table)


@app.command()
def engines(ping: bool = typer.Option(False, help="Send a one-line request to each configured model.")) -> None:
    """Show the configured models, whether their keys are set (never their values) and local models."""
    from .config import ConfigError, engine_settings
    from .engine import Engine, EngineError, missing_keys
    from .local_llm import available_models

    try:
        settings = engine_settings()
    except ConfigError as exc:
        _fail(str(exc))
    table = Table(title="LLM engines")
    for col in ("role", "model", "status"):
        table.add_column(col, overflow="fold")
    for role in ("model", "feedback_model", "optimizer_model"):
        name = settings.get(role)
        if not name:
            continue
        missing = missing_keys(name)
        status = f"missing {', '.join(missing)}" if missing else "ready"
        if name.startswith("local/"):
            path = available_models().get(name.split("/", 1)[1], "")
            status = "ready (embedded)" if path and not path.startswith("unavailable") else (path or "unknown local model")
        if ping and status.startswith("ready"):
            try:
                Engine(name, settings.get("api_base"), cache=False, max_retries=0)("Say OK.", max_tokens=4)
                status += ", answered"
            except EngineError as exc:
                status = f"unreachable: {exc}"
        table.add_row(role, name, status)
    for name, path in available_models().items():
        table.add_row("local", f"local/{name}", path)
    Console().print(table)


@app.command()
def serve(
    model: str = typer.Option("smollm2-135m", help="Local model name (see `tgsci engines`) or a .gguf path."),
    host: str = typer.Option("127.0.0.1", help="Address to bind (the server always has a key unless --no-key, loopback only)."),
    port: int = typer.Option(8080, min=0, max=65535, help="TCP port (0: a free one)."),
    parallel: int = typer.Option(1, min=1, help="Requests served at once (e.g. a sweep's workers)."),
    threads: int = typer.Option(0, min=0, help="CPU threads (0: this machine's cores up to 4)."),
    no_key: bool = typer.Option(False, "--no-key", help="Serve loopback without a key (default: TGSCI_SERVE_API_KEY, else a new random key)."),
) -> None:
    """Serve the embedded model over HTTP (llama.cpp's OpenAI-compatible server) until interrupted."""
    from .local_llm import LocalModelError
    from .serve import ServeError, banner, wait_for_signal
    from .serve import serve as start

    try:
        served = start(model, host, port, parallel, threads, no_key)
    except (ServeError, LocalModelError) as exc:
        _fail(str(exc))
    print(banner(served), flush=True)
    wait_for_signal()


def main() -> None:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    try:
        app()
    except KeyboardInterrupt:
        console.print("interrupted: finished steps are saved; run the same command again to resume")
        sys.exit(130)


if __name__ == "__main__":
    main()
