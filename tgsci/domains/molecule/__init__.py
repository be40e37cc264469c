"""The molecule domain: spec -> MoleculeObjective, and how molecule runs are reported.

Spec (a dict or TOML table; every key but ``target`` optional)::

    kind = "molecule"
    target = "PPARA"                  # or a table of weights: {JAK2 = 1, LCK = -1}
    targets_file = "my_targets.toml"  # your own targets (schema of targets/dockstring_targets.toml)
    receptor = "protein.pdb"          # or your own receptor file (PDB, mmCIF, or PDBQT used as is), with one box:
    box_ligand = "ligand.sdf"         #   the box around a ligand + padding (Angstrom),
    padding = 4.0
    box_center = [10.0, 4.5, -3.2]    #   or a center and size,
    box_size = [22, 22, 22]
    box_residues = ["A:ASP86", "A:LYS33"]   # or the box around residues
    max_box_side = 40.0
    prepare = {chains = ["A"], keep_waters = false, keep_hetero = ["ZN"], altloc = "A", delete_residues = ["A:300"]}
    off_targets = ["LCK"]             # weight -1 each (selectivity)
    aggregation = "dockstring"        # dockstring | vina | qed
    qed_weight = 10.0
    scaffold = "c1ccccc1C(=O)O"       # SMARTS every proposal keeps
    max_mol_weight = 450
    constraints = ["no ester"]        # extra words for the LLM
    goals = ["vina<=-9", "qed>=0.6"]  # or tables {metric, op, value}: for stop_when = "all_goals_met"
    compare_references = true         # dock the target's approved drugs for comparison
    confirm_seeds = 3                 # at the end, the best molecules and the drugs docked with 3 Vina seeds (1 = off)
    confirm_top = 3                   #   how many of the run's best molecules
    objectives = ["vina", "qed", "sa"]  # Pareto mode: the front of these (two or three) instead of one score
    reference_point = {vina = 0, qed = 0, sa = 10}   # of the hypervolume (these are the defaults)
    protocol = "paper"                # tgsci.presets: the paper's molecule study (its options; sweeps: its starts and budget)
    docking = {exhaustiveness = 8, seed = 974528263, cpu = 0, limits = {max_heavy_atoms = 60}}
    docking_workers = 0               # docking processes (0 = chosen from the cores, see simulators.docking.docking_layout)
    cache_dir = "~/.cache/tgsci"
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from ...html import html_table, molecule_image
from .. import Domain, SpecError, register
from .spec import DockingTable, MoleculeOptions, MoleculeResources

DEFAULT_START = "c1ccccc1"
RECEPTOR_KEYS = ("receptor", "box_ligand", "padding", "box_center", "box_size", "box_residues", "max_box_side", "prepare")


class MoleculeDomain(Domain):
    kind = "molecule"
    subject = "target"
    subjects_key = "targets"
    options_model = MoleculeOptions
    # The paper's molecule study (Vina + QED on DOCKSTRING targets, compared with approved drugs) from three
    # small fragment starts (benzene, pyridine, phenol: the paper started from benzene-like fragments). The
    # budget is tgsci's, stated here because the paper's exact one could not be checked offline: at most 20
    # steps of 3 proposals (61 dockings with the start), stopping early after 5 steps without a better
    # molecule; every method gets the same 61 dockings. The best molecules and the drugs are confirmed with 3 Vina seeds.
    protocols = {
        "paper": {
            "starts": ["c1ccccc1", "c1ccncc1", "Oc1ccccc1"],
            "objective": {"aggregation": "dockstring", "compare_references": True, "confirm_seeds": 3},
            "budget": {"max_steps": 20, "n_proposals": 3, "max_evaluations": 61, "patience": 5, "stop_when": None},
        },
    }
    table_models = {"docking": DockingTable}
    resources_model = MoleculeResources
    path_keys = ("receptor", "box_ligand", "targets_file", "cache_dir")
    methods = ("tgd", "tgd-nofeedback", "random", "graph-ga")
    trajectory_panels = [("score", "score (lower is better)"), ("vina", "Vina (kcal/mol)"), ("qed", "QED")]
    value_column = "best_smiles"
    summary_columns = ["best_vina", "best_qed"]
    reference_metrics = ("vina", "qed")  # ref_<metric> columns; the first picks the best reference
    summary_panels = [("best_vina", "best Vina (kcal/mol)\nlower is better", "vina", None),
                      ("best_qed", "QED of the best molecule\nhigher is better", "qed", (0, 1))]
    sweep_tables = ("docking",)
    sweep_moved = {"docking": "[docking]", "docking_workers": "[resources] docking_workers"}
    subjects_help = '"all", "with_drugs" (the 38 with approved drugs), a target name or a list of them'
    sweep_keys = ("targets_file",)
    starts_required = True
    shared_starts = True  # a SMILES start is the same for every target

    def sweep_options(self, data: dict, resources: dict, base: Path) -> dict:
        """[docking] is the objective's docking table; docking workers come from [resources]; sweep.targets_file
        is read against the sweep file's folder."""
        options = {"docking": dict(data.get("docking", {})), "docking_workers": resources["docking_workers"]}
        if data.get("sweep", {}).get("targets_file") is not None:
            options["targets_file"] = self.absolute("targets_file", str(data["sweep"]["targets_file"]), base)  # subjects() reads it
        return options

    def add_commands(self, app) -> None:
        from .cli import add_commands

        add_commands(app)

    # ------------------------------------------------------------------ specs
    def check(self, spec: dict) -> dict:
        out = dict(spec)
        if out.get("protocol") is not None:
            out = {**self._protocol(out["protocol"])["objective"], **out}  # the spec's own keys win
        MoleculeOptions.checked(out)  # types and ranges; what follows needs files, RDKit or the manifest
        if out.get("receptor"):
            out.update(self._receptor(out))
        elif any(k in out for k in RECEPTOR_KEYS):
            raise SpecError(f"{', '.join(k for k in RECEPTOR_KEYS if k in out)}: only with receptor = \"protein.pdb\"",
                            next(k for k in RECEPTOR_KEYS if k in out))
        elif "target" not in out:
            raise SpecError("a molecule spec needs target (a DOCKSTRING name, a name of targets_file, or a table of weights) "
                            "or receptor (your own protein file)", "target")
        else:
            out["target"] = self._target(out["target"], out.get("targets_file"))
        off = out.get("off_targets", [])
        out["off_targets"] = [self._name(t, "off_targets", out.get("targets_file")) for t in ([off] if isinstance(off, str) else off)]
        out.setdefault("aggregation", "dockstring")
        if "constraints" in out:
            out["constraints"] = list(out["constraints"])
        if "goals" in out:
            from .goals import parse_goal

            try:
                out["goals"] = [parse_goal(g) for g in out["goals"]]
            except ValueError as exc:
                raise SpecError(str(exc), "goals") from None
        if out.get("scaffold") is not None:
            from rdkit import Chem

            if Chem.MolFromSmarts(out["scaffold"]) is None:
                raise SpecError(f"cannot parse scaffold {out['scaffold']!r} as SMARTS/SMILES", "scaffold")
        if out.get("objectives") is not None or out.get("reference_point") is not None:
            out.update(self._pareto(out))
        out["docking"] = dict(out.get("docking") or {})  # typed by DockingTable, the same rules as DockingSettings
        return out

    @staticmethod
    def _pareto(spec: dict) -> dict:
        from .axes import pareto_axes

        names = spec.get("objectives") or []
        if isinstance(names, str):
            names = [n for n in names.split(",") if n.strip()]
        reference = spec.get("reference_point") or {}
        if reference and not names:
            raise SpecError("reference_point is for Pareto mode: give objectives too", "reference_point")
        try:
            axes, point = pareto_axes(names, reference, spec.get("aggregation", "dockstring"))
        except ValueError as exc:
            raise SpecError(str(exc), "reference_point" if str(exc).startswith("reference point") else "objectives") from None
        return {"objectives": [a.metric for a in axes], "reference_point": dict(zip((a.metric for a in axes), point))}

    def _name(self, name: str, key: str, targets_file: Optional[str] = None) -> str:
        """The target's name, its receptor prepared now (cached) when it is a file: errors come before any docking."""
        from simulators.receptor import ReceptorError
        from simulators.targets import UnknownTargetError, get_target

        try:
            return get_target(name, targets_file).name
        except (UnknownTargetError, ReceptorError) as exc:
            raise SpecError(str(exc), key) from None

    def _target(self, value: Any, targets_file: Optional[str]) -> str | dict:
        if isinstance(value, str):
            return self._name(value, "target", targets_file)
        return {self._name(name, "target", targets_file): float(w) for name, w in value.items()}

    def _receptor(self, spec: dict) -> dict:
        """Check a receptor-file spec by preparing it (cached) and building its box; the checked keys."""
        from simulators.receptor import ReceptorError

        if "target" in spec and not isinstance(spec["target"], str):
            raise SpecError("with receptor, target is the name of your target (a string); use targets_file for several", "target")
        try:
            target = self.receptor_target(spec)
        except (ReceptorError, TypeError) as exc:
            raise SpecError(str(exc), "receptor") from None
        return {"target": target.name}

    @staticmethod
    def receptor_target(spec: dict):
        """The Target of a spec with receptor = file (prepared and boxed; cached by content)."""
        from simulators.receptor import MAX_BOX_SIDE, ReceptorError, ReceptorOptions
        from simulators.targets import PREPARE_KEYS, target_from_files

        prepare = dict(spec.get("prepare") or {})
        unknown = sorted(set(prepare) - set(PREPARE_KEYS))
        if unknown:
            raise ReceptorError(f"unknown receptor option(s) {', '.join(unknown)}; valid: {', '.join(PREPARE_KEYS)}")
        options = ReceptorOptions(**{k: tuple(v) if isinstance(v, list) else v for k, v in prepare.items()})
        return target_from_files(
            spec["receptor"], name=spec.get("target") if isinstance(spec.get("target"), str) else None,
            box_ligand=spec.get("box_ligand"), padding=float(spec.get("padding", 4.0)), box_center=spec.get("box_center"),
            box_size=spec.get("box_size"), box_residues=spec.get("box_residues"),
            max_box_side=float(spec.get("max_box_side", MAX_BOX_SIDE)), options=options,
            cache_dir=spec.get("cache_dir"),
        )

    def build(self, spec: dict):
        from simulators.docking import DockingSettings
        from simulators.molecule_checks import LigandLimits

        from .objective import MoleculeObjective

        docking = dict(spec["docking"])
        limits = docking.pop("limits", None)
        settings = DockingSettings(**docking, **({"limits": LigandLimits(**limits)} if limits else {}))
        target = self.receptor_target(spec) if spec.get("receptor") else spec["target"]
        weights = {target: 1.0} if not isinstance(target, dict) else dict(target)
        weights.update({t: -1.0 for t in spec["off_targets"]})
        options = {k: spec[k] for k in ("aggregation", "qed_weight", "scaffold", "max_mol_weight", "compare_references",
                                        "cache_dir", "targets_file", "confirm_seeds", "confirm_top",
                                        "objectives", "reference_point") if k in spec}
        return MoleculeObjective(weights, docking=settings, n_workers=spec.get("docking_workers", 0),
                                 extra_constraints=tuple(spec.get("constraints", ())), goals=tuple(spec.get("goals", ())), **options)

    def subjects(self, value: Any, options: dict, base: Optional[Path] = None) -> list[str]:
        """Target names: "all" (of targets_file when given, else DOCKSTRING's 58), "with_drugs" (those
        with approved drugs to compare with: 38 of DOCKSTRING's) or a list."""
        from simulators.targets import UnknownTargetError, load_manifest, target_names

        targets_file = options.get("targets_file")
        if value in ("all", "with_drugs"):
            try:
                names = target_names(targets_file)
            except UnknownTargetError as exc:
                raise SpecError(str(exc), "targets_file") from None
            if value == "with_drugs":
                entries = load_manifest(targets_file)  # read only: no receptor is prepared for this
                names = [n for n in names if entries[n].get("references")]
                if not names:
                    raise SpecError("no target of the manifest has approved drugs ([[targets.NAME.references]])", self.subjects_key)
            return names
        if isinstance(value, str):
            try:
                return [self._name(value, self.subjects_key, targets_file)]
            except SpecError as exc:
                raise SpecError(f'{exc} (or "all", "with_drugs")', self.subjects_key) from None
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            raise SpecError('targets must be "all", "with_drugs" or a non-empty list of target names', self.subjects_key)
        return list(dict.fromkeys(self._name(v, self.subjects_key, targets_file) for v in value))

    def start(self, spec: dict, value: Optional[str]) -> str:
        from simulators.molecule_checks import LigandError, canonical_smiles

        value = DEFAULT_START if value in (None, "default") else value
        try:
            return canonical_smiles(value)
        except LigandError as exc:
            raise SpecError(f"start {value!r} is not a valid molecule: {exc}", "starts") from None

    # ------------------------------------------------------------------ reports
    def objective_text(self, config) -> str:
        obj = config.objective
        targets = ", ".join(f"{t} (weight {w:g})" for t, w in (obj.get("targets") or {}).items())
        return f"molecule: {targets}; score {obj.get('aggregation', '?')} (lower is better)"

    def report_sections(self, run) -> list[tuple[str, str]]:
        sections = []
        pair = [{"": label, "molecule": molecule_image(ev.value, legend=label), **_columns(ev)}
                for label, ev in (("start", run.start), ("best", run.best)) if ev is not None]
        sections.append(("Start and best", html_table(pair, raw=["molecule"])))
        if run.references:
            rows = [{"approved drug": name, "molecule": molecule_image(ev.value, legend=name), **_columns(ev)}
                    for name, ev in run.references]
            sections.append(("Approved drugs, docked with the same settings", html_table(rows, raw=["molecule"])))
        if run.summary is not None and run.summary.pareto is not None:
            sections.append(self._front_section(run))
        if run.summary is not None and run.summary.confirmed is not None:
            sections.append(self._confirmed_section(run.summary.confirmed))
        valid = sorted(((s, c) for s, c in run.candidates() if c.valid), key=lambda sc: sc[1].score)
        shown = valid[:MAX_CANDIDATE_ROWS]
        rows = [{"rank": i + 1, "molecule": molecule_image(c.value, size=(200, 150)), "step": s, **_columns(c),
                 "origin": self.origin(run, s, c)} for i, (s, c) in enumerate(shown)]
        more = f"<p>{len(valid) - len(shown)} more in molecules.csv.</p>" if len(valid) > len(shown) else ""
        sections.append((f"Candidates ({len(valid)} valid, best first)", html_table(rows, raw=["molecule"], css_class="candidates") + more))
        if (run.path / "best.sdf").is_file():
            sections.append(("Best pose", "<p>The best docked pose is in <code>best.sdf</code> (and <code>best.pdbqt</code>); open it "
                                          "with <code>receptor.pdb</code> in PyMOL or ChimeraX (<code>receptor.json</code> says where "
                                          "the receptor came from and how it was prepared); "
                                          "<code>notebooks/molecule_design.ipynb</code> shows it in 3D.</p>"))
        return sections

    @staticmethod
    def _front_section(run) -> tuple[str, str]:
        import csv

        from ...html import png_file

        pareto = run.summary.pareto
        axes = ", ".join(a["label"] for a in pareto["axes"])
        reference = ", ".join(f"{a['label']} {r:g}" for a, r in zip(pareto["axes"], pareto["reference"]))
        parts = [f"<p>Pareto mode on {axes}: {len(pareto['front'])} molecules on the front (loop's single-seed numbers), "
                 f"hypervolume {pareto['hypervolume']:.3g} against the reference point ({reference}); knee: "
                 f"<code>{pareto.get('knee') or '-'}</code>. The figure and table below use the confirmed numbers where the "
                 "run has them.</p>"]
        for name in ("front.png", "hypervolume.png"):
            if (run.path / name).is_file():
                parts.append(png_file(run.path / name, name))
        if (run.path / "front.csv").is_file():
            with open(run.path / "front.csv", newline="") as handle:
                rows = list(csv.DictReader(handle))
            for r in rows:
                r["molecule"] = molecule_image(r["value"], size=(200, 150))
            parts.append(html_table(rows, raw=["molecule"]))
        return ("Pareto front", "".join(parts))

    @staticmethod
    def _confirmed_section(confirmed) -> tuple[str, str]:
        disagree = set(confirmed.disagree)
        named = [(f"rank {i + 1}", c) for i, c in enumerate(confirmed.candidates)] + [(n, e) for n, e in confirmed.references]
        rows = [{"": label, "molecule": molecule_image(ev.value, size=(200, 150)), "SMILES": ev.value, "score": ev.score,
                 "score (1 seed)": ev.metrics.get("score_single"), "Vina (best of seeds)": ev.metrics.get("vina"),
                 "Vina (1 seed)": ev.metrics.get("vina_single"), "spread": ev.metrics.get("vina_spread"),
                 "seeds disagree": "yes" if ev.value in disagree else ""} for label, ev in named]
        stays = confirmed.stays_best
        verdict = ("the run's single-seed best is still the best" if stays else
                   f"the confirmed best is {confirmed.best.value}, not the run's single-seed best") if stays is not None else ""
        text = (f"<p>{confirmed.method}. The loop ranked on one seed; the drug comparison and the sweep tables use these "
                f"numbers. After confirmation {verdict}.</p>")
        return (f"Confirmed with {confirmed.repeats} Vina seeds", text + html_table(rows, raw=["molecule"]))

    def summary_values(self, best) -> dict:
        return {"best_vina": best.metrics.get("vina"), "best_qed": best.metrics.get("qed")}

    comparison_file = "drug_table.csv"

    def comparison_rows(self, run, label: str, context: bool = True) -> list[dict]:
        """Per run, its best molecule (confirmed numbers when the run has them) against the target's
        best approved drug (best Vina): whether it matches or beats the drug on both Vina and QED;
        with ``context`` also each drug once."""
        best, refs = run.summary.compared if run.summary else (None, [])
        target = next(iter(run.config.objective.get("targets") or {"?": 1}))
        valid = [(n, e) for n, e in refs if e.valid and "vina" in e.metrics]
        drug = min(valid, key=lambda ne: ne[1].metrics["vina"]) if valid else None
        rows = []
        if context:
            rows += [{"target": target, "design": f"{n} (approved drug)", "smiles": e.value, "vina": e.metrics.get("vina"),
                      "qed": e.metrics.get("qed"), "score": e.score} for n, e in valid]
        if best is not None and best.valid:
            m = best.metrics
            both = drug is not None and m.get("vina") is not None and m["vina"] <= drug[1].metrics["vina"] and m["qed"] >= drug[1].metrics["qed"]
            rows.append({"target": target, "design": label, "smiles": best.value, "vina": m.get("vina"), "qed": m.get("qed"),
                         "score": best.score, "best_drug": drug[0] if drug else None,
                         "best_drug_vina": drug[1].metrics["vina"] if drug else None,
                         "best_drug_qed": drug[1].metrics.get("qed") if drug else None,
                         "matches_or_beats_drug_on_both": both if drug else None})
        return rows

    def comparison_summary(self, rows: list[dict]) -> list[dict]:
        """Per method: on how many targets with a drug its best molecule (over starts and seeds)
        matches or beats the best drug on both Vina and QED (the paper's comparison)."""
        best: dict[tuple[str, str], dict] = {}
        for r in rows:
            if r.get("best_drug") is None:
                continue
            key = (r["design"].split(" ")[0], r["target"])
            if key not in best or r["score"] < best[key]["score"]:
                best[key] = r
        out = []
        for method in sorted({m for m, _ in best}):
            mine = [r for (m, _), r in best.items() if m == method]
            wins = [r["target"] for r in mine if r["matches_or_beats_drug_on_both"]]
            out.append({"method": method, "targets_with_a_drug": len(mine), "matches_or_beats_on_both": len(wins),
                        "fraction": round(len(wins) / len(mine), 3) if mine else None, "targets": " ".join(sorted(wins))})
        return out

    result_columns = {"Vina kcal/mol": ("vina", ".1f"), "QED": ("qed", ".2f")}

    def result_rows(self, result, objective) -> list:
        rows = super().result_rows(result, objective)
        confirmed = result.confirmed
        if confirmed is None:
            return rows + [(f"{n} (drug)", e) for n, e in result.references]
        if confirmed.best is not None:
            rows.append((f"best, {confirmed.repeats} seeds", confirmed.best))
        return rows + [(f"{n} (drug, {confirmed.repeats} seeds)", e) for n, e in confirmed.references]


MAX_CANDIDATE_ROWS = 60


def _columns(ev) -> dict:
    m = ev.metrics
    return {"SMILES": ev.value, "score": ev.score, "Vina (kcal/mol)": m.get("vina"), "QED": m.get("qed"),
            "SA": m.get("sa"), "MW (g/mol)": m.get("mol_weight"), "error": ev.error or ""}


register(MoleculeDomain())
