"""Command line: a thin layer over the Python API (config -> engines -> objective -> optimize)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from .cli_common import console, engines_for, fail, objective_from, run_and_report
from .domains import domains
from .version import __version__

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Optimize molecules and treatment plans with textual gradients.")


def _version(value: bool) -> None:
    if value:
        print(f"tgsci {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """tgsci: textual-gradient design of molecules and radiotherapy plans."""


for _domain in domains():  # each kind's own commands (tgsci molecule, tgsci plan, a plug-in's), first in --help
    _domain.add_commands(app)


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
        fail(str(exc))
    if len(runs) != 1:
        fail(f"{spec} holds {len(runs)} runs; `tgsci run` takes a spec of one (one subject, start, seed and method), "
              f"`tgsci sweep {spec}` runs them all")
    one = runs[0]
    feedback, optimizer = engines_for(one["method"], one["engine"] or None, no_cache)
    b = one["budget"]
    run_and_report(objective_from(one["objective"]), one["start"], one["method"], feedback, optimizer, b["max_steps"], b["n_proposals"],
         b["max_evaluations"], b["patience"], b["target_score"], run_dir or Path("runs") / one["name"], one["seed"],
         b.get("stop_when"), b["min_improvement"], {k: b[k] for k in ("plateau_margin", "plateau_steps") if k in b})


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
    dashboard_address: str = typer.Option("127.0.0.1:0", help="Where the Dask dashboard listens (default: a free loopback port; "
                                          "it shows the workers' logs, so open it wider only on a trusted network)."),
) -> None:
    """Run every target x start x seed x method of a spec on Dask; re-running resumes."""
    from .record import RunDirError
    from .sweep import SpecError, SweepLockedError, run_sweep
    from .sweep.slurm import ClusterError, SlurmSettings, run_sweep_on_slurm

    if cluster not in ("local", "slurm"):
        fail(f"--cluster must be local or slurm, not {cluster!r}")
    options = dict(progress=True, max_attempts=max_attempts, llm_concurrency=llm_concurrency)
    try:
        if cluster == "slurm":
            settings = SlurmSettings(jobs=jobs, cores_per_job=cores_per_job, memory=memory, walltime=walltime, queue=queue,
                                     account=account, python=python or sys.executable, interface=interface,
                                     log_dir=out / "slurm-logs", cache_dir=cache_dir, dashboard_address=dashboard_address)
            console.print(f"SLURM: {jobs} job(s) x {cores_per_job} worker(s), {memory}, {walltime}"
                          f"{f', partition {queue}' if queue else ''}{f', account {account}' if account else ''}; logs in {out / 'slurm-logs'}")
            result = run_sweep_on_slurm(spec, out, settings, **options)
        else:
            result = run_sweep(spec, out, scheduler=scheduler, n_workers=workers, dashboard_address=dashboard_address, **options)
    except (SpecError, SweepLockedError, FileNotFoundError, RunDirError, ClusterError) as exc:
        fail(str(exc))
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
            fail(f"{directory} is neither a run directory (config.json) nor a sweep directory (sweep.json)")
    except ReportError as exc:
        fail(str(exc))
    for path in paths:
        console.print(f"wrote {path}")


@app.command()
def engines(ping: bool = typer.Option(False, help="Send a one-line request to each configured model.")) -> None:
    """Show the configured models, whether their keys are set (never their values) and local models."""
    from .config import ConfigError, engine_settings
    from .engine import Engine, EngineError, missing_keys
    from .local_llm import available_models

    try:
        settings = engine_settings()
    except ConfigError as exc:
        fail(str(exc))
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
        fail(str(exc))
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
