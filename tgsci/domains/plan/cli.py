"""The plan commands: ``tgsci plan`` (one run on a case, or a recorded plan exported as RTDOSE) and
``tgsci case init`` (a case file from a patient's DICOM export)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ...cli_common import budget_for, console, engines_for, export_dose as export_recorded_dose, fail, objective_from, run_and_report, start_from


def add_commands(app: typer.Typer) -> None:
    app.command()(plan)
    case_app = typer.Typer(no_args_is_help=True, help="Treatment cases: write one from a patient's DICOM export.")
    case_app.command("init")(case_init)
    case_app.command("generate")(case_generate)
    app.add_typer(case_app, name="case")


def plan(
    case: str = typer.Option("tg119", help="Treatment case: a name in targets/cases (tg119, prostate) or a case file (tgsci case init writes one)."),
    start: Optional[str] = typer.Option(None, help="Starting weights as JSON; default: the case's."),
    steps: int = typer.Option(8, min=0),
    proposals: int = typer.Option(2, min=1),
    method: str = typer.Option("tgd", help="tgd | tgd-nofeedback (the ablation: no textual gradient) | random | graph-ga | tpe | nsga2"),
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
                                                      "two phases: every goal, then organ sparing until a plateau, 10 steps at most; "
                                                      "TPE: 50 evaluations in [100, 400]); paper-literal: its rule as written "
                                                      "(stop as soon as every goal is met)."),
    stop_when: Optional[str] = typer.Option(None, help="all_goals_met: stop as soon as the best plan meets every clinical goal; "
                                                       "two_phase: reach every goal, then lower the mean organ dose with every "
                                                       "goal held, stop on a plateau (--plateau-margin Gy, --plateau-steps)."),
    plateau_margin: float = typer.Option(0.5, help="two_phase: the fall in mean organ dose (Gy) a step must reach to count."),
    plateau_steps: int = typer.Option(2, help="two_phase: steps without that fall before the run stops."),
    export_dose: Optional[str] = typer.Option(None, help="Only export a recorded plan of --run-dir as DICOM RTDOSE: "
                                                         "best, start, a step number, or weights as JSON."),
    out: Optional[Path] = typer.Option(None, help="With --export-dose: the RTDOSE file (default RUN_DIR/dose_<which>.dcm)."),
) -> None:
    """Tune the objective weights of an inverse IMRT plan against the case's clinical goals."""
    if export_dose is not None:
        return export_recorded_dose(run_dir, export_dose, out)
    feedback, optimizer = engines_for(method, {"model": model, "optimizer_model": optimizer_model, "api_base": api_base,
                                            "temperature": temperature, "max_tokens": max_tokens}, no_cache)
    plateau = {"plateau_margin": plateau_margin, "plateau_steps": plateau_steps} if stop_when == "two_phase" else None
    budget = budget_for(protocol, "plan", method, steps, proposals, max_evaluations, patience, stop_when, plateau)  # checked here
    console.print(escape(f"preparing case {case} (the dose influence matrix is computed once, then cached)"))
    objective = objective_from({"kind": "plan", "case": case, "fast": fast, "progress": sys.stderr.isatty(),
                            **({"protocol": protocol} if protocol else {}), **({"objectives": objectives} if objectives else {})})
    start_value = start_from(objective.spec, start)
    run_and_report(objective, start_value, method, feedback, optimizer, budget["steps"], budget["proposals"], budget["max_evaluations"],
         budget["patience"], None, run_dir, seed, budget["stop_when"], plateau=budget.get("plateau"))


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
        fail(str(exc))
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


def case_generate(
    seed: int = typer.Option(..., help="Seed of the anatomy (the paper's five: 11, 23, 37, 41, 59)."),
    out: Path = typer.Option(..., help="A new (or empty) folder for the DICOM CT series and RTSTRUCT."),
) -> None:
    """Write a generated prostate patient (CTV, PTV, rectum, bladder, femoral heads) as DICOM, for `tgsci case init`."""
    from simulators.dose.patients import GeneratorError, check_seed, write_patient

    try:
        check_seed(seed)
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise GeneratorError(f"{out} exists and is not an empty folder: give a new one")
        anatomy = write_patient(seed, out)
    except (GeneratorError, OSError) as exc:
        fail(str(exc))
    console.print(escape(f"patient {seed}: PTV {anatomy.ptv_cc:g} cc, {anatomy.measured_rectum_in_ptv_pct:g} % of the rectum "
                         f"inside it, seminal vesicles {'in' if anatomy.seminal_vesicles else 'not in'} the CTV; DICOM in {out}"))
    console.print(escape(f"next: tgsci case init --dicom {out} --protocol prostate --out case.toml"))
