"""The molecule commands: ``tgsci molecule`` (one run on a DOCKSTRING target or your protein) and
``tgsci targets`` (the targets a spec may name)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ...cli_common import budget_for, console, engines_for, fail, objective_from, parse_pairs, run_and_report, start_from


def add_commands(app: typer.Typer) -> None:
    app.command()(molecule)
    app.command()(targets)


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
    method: str = typer.Option("tgd", help="tgd | tgd-nofeedback (the ablation: no textual gradient) | random | graph-ga"),
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
    feedback, optimizer = engines_for(method, {"model": model, "optimizer_model": optimizer_model, "api_base": api_base,
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
        spec["reference_point"] = parse_pairs(reference_point, "--reference-point")
    if targets_file:
        spec["targets_file"] = str(targets_file)
    if receptor:
        spec.update(_receptor_spec(receptor, target, box_ligand, padding, box_center, box_size, box_residues, chains,
                                   keep_waters, keep_hetero, altloc, delete_residues, delete_bad_residues, max_box_side))
    else:
        spec["target"] = target or "PPARA"
    objective = objective_from(spec)
    for note in (objective.targets[objective.primary].preparation or {}).get("box", {}).get("notes", []):
        console.print(escape(f"note: {note}"))
    start_value = start_from(objective.spec, start)
    budget = budget_for(protocol, "molecule", method, steps, proposals, max_evaluations, patience, stop_when)
    run_and_report(objective, start_value, method, feedback, optimizer, budget["steps"], budget["proposals"], budget["max_evaluations"],
         budget["patience"], target_score, run_dir, seed, budget["stop_when"])


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


def targets(file: Optional[Path] = typer.Option(None, "--file", help="Your own target manifest instead of DOCKSTRING's.")) -> None:
    """List the targets (DOCKSTRING's 58, or those of --file) with their receptor, box and reference drugs."""
    from simulators.targets import UnknownTargetError, load_manifest

    try:
        entries = load_manifest(file)
    except (UnknownTargetError, OSError) as exc:
        fail(str(exc))
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
