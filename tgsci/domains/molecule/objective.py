"""MoleculeObjective: a SMILES string scored by Vina docking and RDKit QED (the paper's setup).

Score (lower is better) by aggregation:
- ``dockstring`` (default): ``sum_t w_t * vina_t + qed_weight * (1 - QED)`` (DOCKSTRING's objective);
- ``vina``: ``sum_t w_t * vina_t``;
- ``qed``: ``-QED`` (no docking; fast).
Multi-target designs use weights, e.g. selective JAK2 over LCK: ``targets={"JAK2": 1, "LCK": -1}``.
An invalid or rejected SMILES gets one "invalid molecule: why" message instead of scores.
"""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Optional

from simulators.files import write_json_atomic, write_text_atomic

from ...formats import ValueFormat
from ...tables import csv_text
from ...pareto import ParetoMode
from ...objectives.base import Evaluation, InvalidCandidate, Objective
from .goals import goal_met, goal_text, parse_goal
from .axes import pareto_axes
from .spec import MoleculeOptions

CSV_METRICS = ("vina", "qed", "sa", "lipinski_violations", "heavy_atoms", "rotatable_bonds", "mol_weight", "logp", "sim_reference")

# GBNF for one SMILES inside JSON quotes, for the embedded model only (API models get a JSON
# schema). A free SMILES grammar still let a 135M model write 7-membered aromatic rings and
# unclosed rings (most proposals invalid); this one builds molecules from whole ring templates,
# linkers and substituents (two or three ring parts, so neither bare rings nor endless chains), with
# ring-closure digits by nesting depth, so nearly every proposal parses and the docking budget
# goes to molecules, not to syntax errors. No stereo centres ("[C@@H]" in a chain is a radical: 50
# of the 60 proposals rejected in one 20-step benchmark run). Substituent chains are short (SMILES tokenize at ~1.2
# characters per token) so a runaway item rarely hits the token limit; when one does, the whole
# items before it are kept (formats.parse_proposals).
SMILES_GRAMMAR = r"""item ::= ring1 (link ring1){1,2} atom{0,2}
link ::= atom{0,2}
branch2 ::= head2 tail2{0,2}
head2 ::= ring2 | atom | bond atom
tail2 ::= bond? atom | ring2 | "(" term ")"
atom ::= "C" | "N" | "O" | "S" | "C(=O)" | "S(=O)(=O)" | "N(C)"
bond ::= "="
term ::= "F" | "Cl" | "Br" | "=O" | "O" | "N" | "C" | "C#N" | "OC" | "C(=O)O" | "C(=O)N" | "CC" | "C(F)(F)F"
ring1 ::= "c1ccccc1" | "c1ccncc1" | "c1cccnc1" | "c1ncccn1" | "c1ccsc1" | "c1ccoc1" | "c1cc[nH]c1" | "c1cnc[nH]1" | "C1CCCCC1" | "C1CCNCC1" | "C1CCOCC1" | "C1CCCC1" | "N1CCNCC1" | "N1CCOCC1" | "c1ccc2ccccc2c1" | "c1ccc2[nH]ccc2c1" | "c1ccc2ncccc2c1" | "c1ccc(" sub2 ")cc1" | "c1cc(" sub2 ")ccc1" | "c1ccc(" term ")c(" sub2 ")c1" | "c1ccc(" sub2 ")nc1"
ring2 ::= "c2ccccc2" | "c2ccncc2" | "c2cccnc2" | "c2ccsc2" | "C2CCCCC2" | "C2CCNCC2" | "C2CCOCC2" | "N2CCNCC2" | "N2CCOCC2" | "c2ccc(" term ")cc2"
sub2 ::= term | branch2
"""


class MoleculeObjective(ParetoMode, Objective):
    kind = "molecule"
    role_description = "SMILES string of a candidate drug molecule"
    what = "molecule"
    value_format = ValueFormat(
        schema={"type": "string", "minLength": 1, "maxLength": 200}, grammar=SMILES_GRAMMAR, example='"<SMILES>"',
        hint="Each value is one SMILES string of a single neutral drug-like molecule.", max_tokens_per_item=64,
    )

    def __init__(
        self,
        target="PPARA",
        aggregation: str = "dockstring",
        qed_weight: float = 10.0,
        docking=None,
        limits=None,
        scaffold: Optional[str] = None,
        max_mol_weight: Optional[float] = None,
        extra_constraints: tuple[str, ...] = (),
        cache_dir: Optional[str] = None,
        n_workers: int = 0,
        compare_references: bool = True,
        simulators: Optional[dict] = None,
        targets_file: Optional[str] = None,
        goals: tuple = (),
        confirm_seeds: int = 3,
        confirm_top: int = 3,
        objectives: tuple = (),
        reference_point: Optional[dict] = None,
    ) -> None:
        """``target``: a name (DOCKSTRING's, or of ``targets_file``), a ``Target`` (your own receptor:
        ``simulators.targets.target_from_files``), or {name or Target: weight} for selectivity.
        ``simulators``: {target name: object with ``evaluate(smiles) -> list[Measurement]``} to use
        instead of Vina docking for those targets (tests, or a docking program of your own).
        ``goals``: e.g. ``["vina<=-9", "qed>=0.6"]`` (or dicts): shown to the LLM, checked by ``goals_met``.
        ``confirm_seeds``/``confirm_top``: at the end of a run, the ``confirm_top`` best molecules and the
        approved drugs are docked with this many Vina seeds (1 = off; see ``molecule_confirm``).
        ``objectives``: e.g. ``("vina", "qed", "sa")``: Pareto mode (``molecule_pareto``), with
        ``reference_point`` {metric: value} for the hypervolume (default Vina 0, QED 0, SA 10)."""
        from simulators.docking import DockingSettings
        from simulators.targets import Target

        MoleculeOptions.checked({"aggregation": aggregation, "qed_weight": qed_weight, "max_mol_weight": max_mol_weight,
                                 "confirm_seeds": confirm_seeds, "confirm_top": confirm_top})  # the spec's rules: SpecError, a ValueError
        weights = {target: 1.0} if isinstance(target, (str, Target)) else dict(target)
        if not weights:
            raise ValueError("give at least one target")
        self.targets_file = targets_file
        self.cache_dir = cache_dir
        self.goals = [parse_goal(g) for g in goals]
        self.targets: dict[str, Target] = {}
        self.weights = {}
        for key, w in weights.items():
            if not math.isfinite(float(w)):
                raise ValueError(f"target weight for {key} must be finite")
            t = key if isinstance(key, Target) else self._known(key)
            self.targets[t.name] = t
            self.weights[t.name] = float(w)
        self.primary = next(iter(self.weights))
        self.aggregation = aggregation
        self.qed_weight = float(qed_weight)
        self.docking = docking or DockingSettings()
        self.limits = limits or self.docking.limits
        self.scaffold = scaffold
        self._scaffold_mol = None
        if scaffold:
            from rdkit import Chem

            self._scaffold_mol = Chem.MolFromSmarts(scaffold)
            if self._scaffold_mol is None:
                raise ValueError(f"cannot parse scaffold {scaffold!r} as SMARTS/SMILES")
        self.max_mol_weight = max_mol_weight
        self.extra_constraints = tuple(extra_constraints)
        self.n_workers = n_workers
        self.confirm_seeds, self.confirm_top = confirm_seeds, confirm_top
        self.objectives = tuple(objectives)
        if self.objectives:
            self.set_pareto(*pareto_axes(self.objectives, reference_point, aggregation))
        self.compare_references = compare_references
        self._simulators: dict = {(self.targets[t].name if t in self.targets else self._known(t).name): sim
                                  for t, sim in (simulators or {}).items()}
        self._references: Optional[list[tuple[str, Evaluation]]] = None

    def _known(self, name: str):
        from simulators.targets import get_target

        return get_target(name, self.targets_file, self.cache_dir)  # raises with the list of valid names

    @property
    def simulations(self) -> int:
        """Dockings actually run by this objective (cache hits excluded)."""
        return sum(getattr(s, "misses", 0) for s in self._simulators.values())

    # ------------------------------------------------------------------ description
    def describe(self) -> str:
        text = self._goal_sentence()
        if self._axes:
            wants = ", ".join(f"{a.label} ({'lower' if a.direction == 'min' else 'higher'} is better)" for a in self._axes)
            text += (f" Pareto mode: no single weighted score decides; the aim is a wide front of trade-offs between {wants}. "
                     "A molecule counts when no other one is better on every metric at once; fill the front's gaps.")
        if self.goals:
            text += " Goals: " + " and ".join(goal_text(g) for g in self.goals) + "."
        return text

    def _goal_sentence(self) -> str:
        if self.aggregation == "qed":
            return "Design a drug-like molecule with the highest QED (drug-likeness, 0 to 1)."
        parts = []
        for name, w in self.weights.items():
            if w > 0:
                parts.append(f"bind strongly to {name} (low Vina docking score)")
            elif w < 0:
                parts.append(f"bind weakly to {name} (high Vina docking score, for selectivity)")
        goal = "Design a molecule that will " + " and ".join(parts)
        if self.aggregation == "dockstring":
            goal += f", while staying drug-like (high QED). Score = {self.score_formula()}, lower is better."
        else:
            goal += f". Score = {self.score_formula()}, lower is better."
        return goal

    def goals_met(self, ev: Evaluation) -> Optional[bool]:
        if not self.goals:
            return None
        return ev.valid and all(goal_met(g, ev.metrics) for g in self.goals)

    def score_formula(self) -> str:
        terms = " + ".join(
            (f"Vina({n})" if w == 1 else f"{w:g}*Vina({n})") for n, w in self.weights.items()
        ).replace("+ -", "- ")
        if self.aggregation == "dockstring":
            return f"{terms} + {self.qed_weight:g}*(1 - QED)"
        if self.aggregation == "vina":
            return terms
        return "-QED"

    def constraints(self) -> list[str]:
        items = [
            "one valid SMILES of a single neutral molecule (no '.', no salts)",
            f"at most {self.limits.max_heavy_atoms} heavy atoms and {self.limits.max_rotatable_bonds} rotatable bonds",
            "only the elements C, N, O, S, P, F, Cl, Br, I (and H)",
        ]
        if self.scaffold:
            items.append(f"keep the substructure {self.scaffold}")
        if self.max_mol_weight:
            items.append(f"molecular weight at most {self.max_mol_weight:g} g/mol")
        return items + list(self.extra_constraints)

    def fingerprint(self) -> dict:
        from dataclasses import asdict

        own = {n: t.fingerprint() for n, t in self.targets.items() if t.source != "dockstring"}
        return {
            "kind": self.kind,
            "targets": self.weights,
            **({"receptors": own} if own else {}),
            "aggregation": self.aggregation,
            "qed_weight": self.qed_weight,
            "docking": self.docking.key_fields() if self.aggregation != "qed" else None,
            "limits": asdict(self.limits),
            "scaffold": self.scaffold,
            "max_mol_weight": self.max_mol_weight,
            **({"goals": self.goals} if self.goals else {}),
            **({"pareto": {"objectives": list(self.objectives), "reference_point": self._reference}} if self.objectives else {}),
        }

    # ------------------------------------------------------------------ validation
    def validate(self, text: str) -> str:
        from rdkit import Chem
        from rdkit.Chem import Descriptors
        from simulators.molecule_checks import LigandError, canonical_smiles, check_dockable

        raw = str(text).strip().strip("\"'`").strip()
        try:
            canonical = canonical_smiles(raw)
            mol = Chem.MolFromSmiles(canonical)
            check_dockable(mol, self.limits)
        except LigandError as exc:
            raise InvalidCandidate(str(exc)) from None
        if self._scaffold_mol is not None and not mol.HasSubstructMatch(self._scaffold_mol):
            raise InvalidCandidate(f"it does not keep the required substructure {self.scaffold}")
        if self.max_mol_weight and Descriptors.MolWt(mol) > self.max_mol_weight:
            raise InvalidCandidate(f"molecular weight {Descriptors.MolWt(mol):.0f} is above {self.max_mol_weight:g}")
        return canonical

    # ------------------------------------------------------------------ evaluation
    def _simulator(self, target: str):
        if target not in self._simulators:
            from simulators.docking import DockingSimulator

            self._simulators[target] = DockingSimulator(self.targets[target], self.docking, self.cache_dir, self.n_workers)
        return self._simulators[target]

    def evaluate(self, values: list[str]) -> list[Evaluation]:
        from simulators.properties import max_similarity, properties

        out, ok = self.screen(values)
        refs = [r.smiles for r in self._target_references()]
        metrics = {i: {**properties(smi), "sim_reference": max_similarity(smi, refs)} for i, smi in ok}
        errors: dict[int, str] = {}
        cached = {i: True for i, _ in ok}
        seconds = {i: 0.0 for i, _ in ok}
        if self.aggregation != "qed" and ok:
            for target in self.weights:
                measurements = self._simulator(target).evaluate([smi for _, smi in ok])
                for (i, _), m in zip(ok, measurements):
                    seconds[i] += m.seconds
                    cached[i] = cached[i] and m.cached
                    if m.error:
                        errors.setdefault(i, f"docking against {target} failed: {m.error}")
                    else:
                        metrics[i][f"vina_{target}"] = m.metrics["vina"]
                        if target == self.primary:
                            metrics[i]["vina"] = m.metrics["vina"]
        for i, smi in ok:
            error = errors.get(i)
            score = None if error else self._score(metrics[i])
            out[i] = Evaluation(smi, score, metrics[i], error, simulated=True, cached=cached[i], seconds=seconds[i])
        return out  # type: ignore[return-value]

    def _score(self, m: dict) -> float:
        if self.aggregation == "qed":
            return -m["qed"]
        vina = sum(w * m[f"vina_{t}"] for t, w in self.weights.items())
        if self.aggregation == "vina":
            return vina
        return vina + self.qed_weight * (1.0 - m["qed"])

    # ------------------------------------------------------------------ references
    def _target_references(self):
        return list(self.targets[self.primary].references)

    def references(self) -> list[tuple[str, Evaluation]]:
        """(name, evaluation) of the primary target's approved drugs, computed by tgsci (cached)."""
        if self._references is None:
            refs = self._target_references() if self.compare_references else []
            evals = self.evaluate([r.smiles for r in refs]) if refs else []
            self._references = [(r.name, e) for r, e in zip(refs, evals)]
        return self._references

    def best_reference(self) -> Optional[tuple[str, Evaluation]]:
        valid = [(n, e) for n, e in self.references() if e.valid]
        return min(valid, key=lambda ne: ne[1].score) if valid else None

    def confirm(self, result):
        """The run's best molecules and the drugs re-docked with ``confirm_seeds`` seeds (``Confirms``)."""
        from .confirm import confirm_molecules

        return confirm_molecules(self, result)

    # ------------------------------------------------------------------ words
    def summarize(self, ev: Evaluation) -> str:
        if not ev.valid:
            return self.invalid_text(ev.error or "evaluation failed")
        m = ev.metrics
        parts = [f"score {ev.score:.2f}"]
        if "vina" in m:
            parts.append(f"Vina {m['vina']:.1f} kcal/mol")
        parts.append(f"QED {m['qed']:.2f}")
        return ", ".join(parts)

    def verbalize(self, ev: Evaluation, start: Optional[Evaluation], best: Optional[Evaluation], brief: bool = False) -> str:
        if not ev.valid:
            return self.invalid_text(ev.error or "evaluation failed")
        text = self._brief(ev, start, best) if brief else self._full(ev, start, best)
        trade_off = self.trade_off(ev, brief, "molecules")
        return text + ("\n" + trade_off if trade_off else "")

    def _full(self, ev: Evaluation, start: Optional[Evaluation], best: Optional[Evaluation]) -> str:
        m = ev.metrics
        ref = self.best_reference()

        def context(key: str, fmt: str) -> str:
            bits = []
            for label, other in (("start", start), ("best so far", best)):
                if other is not None and other.valid and other.value != ev.value and key in other.metrics:
                    bits.append(f"{label} {format(other.metrics[key], fmt)}")
            if ref and key in ref[1].metrics:
                bits.append(f"{ref[0]} (approved drug) {format(ref[1].metrics[key], fmt)}")
            return f" ({'; '.join(bits)})" if bits else ""

        lines = []
        for target in self.weights if self.aggregation != "qed" else ():
            key = f"vina_{target}"
            direction = "lower is better" if self.weights[target] > 0 else "higher is better: avoid binding"
            lines.append(f"Vina docking score against {target}: {m[key]:.1f} kcal/mol, {direction}{context(key, '.1f')}.")
        lines.append(f"QED drug-likeness: {m['qed']:.2f} (0 to 1, higher is better){context('qed', '.2f')}.")
        best_txt = f"; best so far {best.score:.2f}" if best is not None and best.valid and best.value != ev.value else ""
        lines.append(f"Score = {self.score_formula()} = {ev.score:.2f} (lower is better{best_txt}).")
        lines.append(
            f"SA score {m['sa']:.1f} (1 easy to 10 hard to make); Lipinski violations {m['lipinski_violations']}; "
            f"{m['heavy_atoms']} heavy atoms; {m['rotatable_bonds']} rotatable bonds; MW {m['mol_weight']:.0f}; logP {m['logp']:.1f}."
        )
        if self.goals:
            lines.append("Goals: " + "; ".join(
                f"{goal_text(g)}: {'met' if goal_met(g, m) else 'MISSED'} ({m.get(g['metric'], float('nan')):.2f})" for g in self.goals) + ".")
        if start is not None and start.valid and start.value != ev.value:
            from simulators.properties import tanimoto

            lines.append(f"Tanimoto similarity to the start: {tanimoto(ev.value, start.value):.2f}.")
        return "\n".join(lines)

    def _brief(self, ev: Evaluation, start: Optional[Evaluation], best: Optional[Evaluation]) -> str:
        """The same numbers as the full text, a third of its tokens: compared with the best so far
        and the approved drug only."""
        m, ref = ev.metrics, self.best_reference()
        better = best is not None and best.valid and best.value != ev.value

        def context(key: str, fmt: str) -> str:
            bits = [f"best {format(best.metrics[key], fmt)}"] if better and key in best.metrics else []
            if ref and key in ref[1].metrics:
                bits.append(f"{ref[0]} {format(ref[1].metrics[key], fmt)}")
            return f" ({', '.join(bits)})" if bits else ""

        parts = [f"Vina {t} {m[f'vina_{t}']:.1f} kcal/mol{context(f'vina_{t}', '.1f')}"
                 for t in (self.weights if self.aggregation != "qed" else ())]
        parts.append(f"QED {m['qed']:.2f}{context('qed', '.2f')}")
        parts.append(f"score {ev.score:.2f}" + (f" (best {best.score:.2f})" if better else "") + ", lower is better")
        lines = ["; ".join(parts) + "."]
        extra = (f"SA {m['sa']:.1f}, Lipinski violations {m['lipinski_violations']}, {m['heavy_atoms']} heavy atoms, "
                 f"MW {m['mol_weight']:.0f}, logP {m['logp']:.1f}")
        if start is not None and start.valid and start.value != ev.value:
            from simulators.properties import tanimoto

            extra += f", similarity to start {tanimoto(ev.value, start.value):.2f}"
        lines.append(extra + ".")
        if self.goals:
            lines.append("Goals: " + "; ".join(f"{goal_text(g)}: {'met' if goal_met(g, m) else 'MISSED'}" for g in self.goals) + ".")
        return "\n".join(lines)

    # ------------------------------------------------------------------ baselines
    def neighbor(self, value: str, rng: random.Random) -> Optional[str]:
        from mol_ga.graph_ga.gen_candidates import mutate
        from rdkit.rdBase import BlockLogs

        with BlockLogs():  # RDKit's reaction warnings for unmapped atoms are expected here
            return mutate(value, rng)

    def crossover(self, a: str, b: str, rng: random.Random) -> Optional[str]:
        from mol_ga.graph_ga.gen_candidates import reproduce
        from rdkit.rdBase import BlockLogs

        with BlockLogs():
            return reproduce(a, b, 0.0, rng)

    # ------------------------------------------------------------------ outputs
    def write_outputs(self, run_dir, result) -> list[str]:
        """molecules.csv (every candidate), references.csv, best.sdf (the best pose), trajectory.png."""
        from . import MoleculeDomain
        from ...plots import plot_trajectory

        run_dir = Path(run_dir)
        rows = [{"step": rec.step, "smiles": c.value, "score": c.score, "error": c.error, "origin": c.origin,
                 **{k: c.metrics.get(k) for k in CSV_METRICS}} for rec in result.steps for c in rec.candidates]
        write_text_atomic(run_dir / "molecules.csv", csv_text(rows, ["step", "smiles", "score", "error", "origin", *CSV_METRICS]))
        ref_rows = [{"name": n, "smiles": e.value, "score": e.score, "vina": e.metrics.get("vina"), "qed": e.metrics.get("qed"), "error": e.error}
                    for n, e in result.references]
        write_text_atomic(run_dir / "references.csv", csv_text(ref_rows, ["name", "smiles", "score", "vina", "qed", "error"]))
        files = ["molecules.csv", "references.csv"]
        if result.confirmed is not None:
            write_text_atomic(run_dir / "confirmed.csv", confirmed_csv(result.confirmed))
            files.append("confirmed.csv")
        files += self.front_files(run_dir, result, "approved drugs")
        if self.aggregation != "qed":
            files += self._write_receptor(run_dir)
        if result.best.valid and self.aggregation != "qed":
            hit = self._simulator(self.primary).evaluate([result.best.value])[0]
            for name, key in (("best.sdf", "pose_sdf"), ("best.pdbqt", "pose_pdbqt")):
                text = hit.artifacts.get(key) if hit.valid else ""
                if text:
                    write_text_atomic(run_dir / name, text)
                    files.append(name)
        plot_trajectory(result.steps, run_dir / "trajectory.png", MoleculeDomain.trajectory_panels, result.references,
                        title=self.describe_short())
        files.append("trajectory.png")
        return files

    def _write_receptor(self, run_dir: Path) -> list[str]:
        """receptor.pdb (opens with best.sdf in PyMOL/ChimeraX) and receptor.json (where it came from, what was done)."""
        from simulators.receptor import file_sha256, pdbqt_to_pdb

        target = self.targets[self.primary]
        pdb = Path(target.pdb).read_text() if target.pdb else pdbqt_to_pdb(Path(target.receptor).read_text())
        write_text_atomic(run_dir / "receptor.pdb", pdb)
        record = dict(target.preparation or {})
        record.update(target=target.name, target_source=target.source, receptor_pdbqt=str(target.receptor),
                      receptor_pdbqt_sha256=file_sha256(target.receptor), center=list(target.center), size=list(target.size))
        write_json_atomic(run_dir / "receptor.json", record)
        return ["receptor.pdb", "receptor.json"]

    def describe_short(self) -> str:
        return f"{', '.join(self.weights)}: {self.score_formula()}"

    def close(self) -> None:
        for sim in self._simulators.values():
            sim.close()
        self._simulators = {}


CONFIRMED_COLUMNS = ["kind", "name", "smiles", "score", "seeds_disagree", "score_single", "vina", "vina_single", "vina_spread", "qed"]


def confirmed_csv(confirmed) -> str:
    """confirmed.csv: per confirmed molecule (candidates in the loop's order, then the drugs) the
    confirmed and the single-seed numbers and each seed's Vina."""
    seeds = [f"vina_seed{k + 1}" for k in range(confirmed.repeats)]
    disagree = set(confirmed.disagree)
    named = [("candidate", f"rank {i + 1} of the run", c) for i, c in enumerate(confirmed.candidates)]
    named += [("approved drug", n, e) for n, e in confirmed.references]
    rows = [{"kind": kind, "name": name, "smiles": ev.value, "score": ev.score, "seeds_disagree": ev.value in disagree,
             **{k: ev.metrics.get(k) for k in [*CONFIRMED_COLUMNS[5:], *seeds] if k in ev.metrics}}
            for kind, name, ev in named]
    return csv_text(rows, CONFIRMED_COLUMNS + seeds)
