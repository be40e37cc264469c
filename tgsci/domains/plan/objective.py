"""Treatment-plan objective: tune the importance weights of an inverse IMRT plan.

The variable is a weight vector written as canonical JSON, one non-negative number per
optimization objective of the case (``{"BODY": 100, "Core": 300, "OuterTarget": 1000}`` for
TG119). Each candidate runs an inner fluence optimization (``simulators.dose``; all
candidates of a step in one batch) and the resulting dose is judged against every clinical
goal of the case manifest (``targets/cases/<case>.toml``). Built from a spec by
``tgsci.domains.build_objective({"kind": "plan", "case": "tg119"})``.

Score (lower is better, 0 would be a perfect plan with zero OAR dose):

    score = sum_g priority_g * violation_g  +  tiebreak_weight * mean_s(Dmean_s / prescription)

with violation_g = how far the goal is missed in percent of the goal value (0 when met; e.g.
D95 = 47.5 Gy for D95 >= 50 Gy gives 5.0), and the tie-breaker (at most ~0.1 by default) the
mean dose of the manifest's ``tiebreak_structures`` relative to the prescription, so that among
plans meeting every goal the one sparing the organs at risk more ranks first. A score below
``tiebreak_weight`` therefore means every goal is met.

All DVH numbers are on the dose grid of the plan settings (``dose_grid_mm``); see
``simulators.dose.engine`` for how they differ from CT-grid numbers.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Optional

from simulators.dose import metrics as dvh
from simulators.dose.cases import ACCEPTABLE, UNACCEPTABLE, CaseSpec, plan_level
from simulators.dose.simulator import DoseSimulator
from simulators.dose.weights import canonical_weights, round_sig
from simulators.files import write_json_atomic, write_text_atomic

from ...tables import csv_text
from ...pareto import ParetoMode
from ...objectives.base import Evaluation, InvalidCandidate, Objective
from .axes import plan_axes
from .values import PlanValues

__all__ = ["PlanObjective", "canonical_weights", "parse_weights"]

DOSE_GRID_WARNING = "dose grid, not for clinical decisions: the CT grid the RTDOSE is read on may disagree"

PANELS = [("score", "score (% goal misses, lower is better)"), ("goals_met", "clinical goals met")]


def parse_weights(case: CaseSpec, text: str) -> str:
    """The canonical candidate (weights, and the levels the case tunes) in ``text`` for ``case``, or
    InvalidCandidate saying what is wrong."""
    return PlanValues(case, case.start_weights()).parse(text)


class PlanObjective(ParetoMode, Objective):
    kind = "plan"
    what = "weight vector"
    direction = "lower score is better"

    def __init__(self, case: CaseSpec, cache_dir: Optional[str | Path] = None, use_result_cache: bool = True,
                 protocol: Optional[str] = None, objectives: Optional[str] = None, reference_point: Optional[dict] = None,
                 **engine_options):
        """``cache_dir`` holds the influence matrix and the table of evaluated weight vectors
        (default ``$TGSCI_CACHE_DIR/dose`` or ``~/.cache/tgsci/dose``); ``protocol``: a study
        protocol of ``tgsci.presets`` (``"paper"``: start weights 100, baselines search [100, 400]);
        ``objectives = "goals"``: Pareto mode, one axis per clinical goal (``plan_pareto``), with
        ``reference_point`` {goal key: value} overriding the default reference;
        ``engine_options`` go to ``DoseEngine`` (``threads``, ``check_memory``, ``warm_start``, ``progress``)."""
        from ...presets import protocol as preset

        self.case = case
        self.protocol = protocol
        self.objectives = objectives
        if objectives:
            self.set_pareto(*plan_axes(case, objectives, reference_point))
        self._preset = preset(protocol, self.kind) if protocol else {}
        self._references: Optional[list[tuple[str, Evaluation]]] = None
        self.names = case.objective_names
        self.weight_max = float(case.weight_max)
        self.simulator = DoseSimulator(case, cache_dir=cache_dir, use_result_cache=use_result_cache, **engine_options)
        self.engine = self.simulator.engine
        search = self._preset.get("search_range")
        self.values = PlanValues(case, self.start_weights(), tuple(search) if search else None)
        levels = " and the dose levels the case lets move" if self.values.tunes_levels else ""
        self.role_description = (
            f"importance weights{levels} of the inverse-planning objectives of the {case.name} plan "
            f"(JSON object: objective name -> non-negative number)"
        )
        self.value_format = self.values.value_format()

    @property
    def simulations(self) -> int:
        """Weight vectors actually optimized by this objective (cache hits excluded)."""
        return self.simulator.optimized

    def references(self) -> list[tuple[str, Evaluation]]:
        """The case's reference plans, evaluated like any candidate (cached): the paper's table shows them."""
        if self._references is None:
            plans = self.case.reference_plans
            evals = self.evaluate([self.values.with_case_levels(w) for _, w, _ in plans]) if plans else []
            self._references = [(name, ev) for (name, _, _), ev in zip(plans, evals)]
        return self._references

    def prompt_references(self) -> list[tuple[str, str, str]]:
        return [(name, ev.value, self.summarize(ev)) for name, ev in self.references() if ev.valid]

    def goals_met(self, ev: Evaluation) -> Optional[bool]:
        if not self.case.goals:
            return None
        return ev.valid and ev.metrics.get("goals_met") == len(self.case.goals)

    def sparing(self, ev: Evaluation) -> Optional[float]:
        """The organ-sparing tie-break in Gy: the mean of the tie-break structures' mean doses (what the
        score's tie-break term weighs; None without tie-break structures or a valid plan)."""
        names = self.case.tiebreak_structures
        if not (ev.valid and names):
            return None
        return sum(ev.metrics[f"{s}.Dmean"] for s in names) / len(names)

    def start_weights(self) -> dict[str, float]:
        """The manifest's starting weights, or the protocol's (the paper's: 100 for every objective)."""
        if "start_weight" in self._preset:
            return {n: float(self._preset["start_weight"]) for n in self.names}
        return self.case.start_weights()

    def start_value(self) -> str:
        """The starting weights (and the case's dose levels when they are tuned), canonical."""
        return self.values.start

    def search_space(self) -> dict[str, tuple[float, float]]:
        """Per parameter, the (low, high) range the baselines search in: weights on a log scale (the
        protocol's range, else start weight / 30 ... start weight x 30, within (0, weight_max]), dose
        levels and volumes within the case's ranges on a linear scale (``linear_params``)."""
        return self.values.search_space(self.case.start_weights())

    def linear_params(self) -> set[str]:
        return self.values.linear_params()

    def to_params(self, value: str) -> dict[str, float]:
        return self.values.to_params(value)

    def from_params(self, params: dict[str, float]) -> str:
        return self.values.from_params(params)

    # ------------------------------------------------------------------ words
    def objective_lines(self) -> list[str]:
        lines = []
        for o in self.case.objectives:
            moves = []
            if o.name in self.values.levels["dose_gy"]:
                moves.append(f"dose level tunable within {o.dose_range[0]:g}-{o.dose_range[1]:g} Gy")
            if o.name in self.values.levels["volume_pct"]:
                moves.append(f"volume tunable within {o.volume_range[0]:g}-{o.volume_range[1]:g}%")
            lines.append(f"{o.name}: {o.label} on {o.structure} (start weight {round_sig(o.weight)}"
                         + "".join(f"; {m}" for m in moves) + ")")
        return lines

    def score_formula(self) -> str:
        return (
            "score = sum over goals of (percent by which the goal is missed) "
            f"+ {self.case.tiebreak_weight:g} x mean(Dmean/prescription) of {', '.join(self.case.tiebreak_structures) or 'none'}"
        )

    def describe(self) -> str:
        goals = "; ".join(g.label for g in self.case.goals)
        return (
            f"Tune the importance weights of the inverse-planning objectives of the {self.case.name} case "
            f"({self.case.description}; prescription {self.case.prescription_gy:g} Gy in {self.case.fractions} fractions) "
            f"so that the optimized plan meets every clinical goal: {goals}. "
            f"A larger weight makes the fluence optimizer care more about that objective; only ratios between weights matter. "
            f"Lower score is better ({self.score_formula()})."
            + (" Pareto mode: no single score decides; the aim is a wide front of trade-offs between the target's coverage "
               "and each organ's goal (a plan counts when no other one is better on every goal at once); fill the front's gaps."
               if self._axes else "")
        )

    def describe_short(self) -> str:
        return f"{self.case.name} ({self.case.plan.variant}, goals judged on the {self.verdict_grid()}): {self.score_formula()}"

    def constraints(self) -> list[str]:
        return [
            f"a JSON object with exactly these keys: {', '.join(self.names)}",
            f"every weight is a finite number between 0 and {self.weight_max:g}; not all weights zero",
            "only the ratios between weights matter: multiplying all weights by one factor gives the same plan",
            "objectives: " + "; ".join(self.objective_lines()),
        ]

    def fingerprint(self) -> dict:
        from simulators.dose.simulator import OPTIMIZER_VERSION

        return {"kind": self.kind, **self.case.fingerprint(), "inner_optimizer": OPTIMIZER_VERSION,
                **({"protocol": self.protocol} if self.protocol else {}),
                **({"pareto": {"objectives": self.objectives, "reference_point": self._reference}} if self.objectives else {})}

    # ------------------------------------------------------------------ validation
    def validate(self, text: str) -> str:
        return parse_weights(self.case, text)

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, values: list[str]) -> list[Evaluation]:
        """All valid vectors in one batched inner optimization (repeats come from the simulator's cache)."""
        out, ok = self.screen(values)
        results = self.simulator.evaluate([json.loads(v) for _, v in ok]) if ok else []
        for (i, value), res in zip(ok, results):
            if res.error:
                out[i] = Evaluation(value, None, {}, error=res.error, cached=res.cached, seconds=res.seconds)
                continue
            m = dict(res.metrics)
            score, parts = self.score_metrics(m)
            m.update(parts)
            m["inner_iterations"] = res.optimizer.get("nit")
            out[i] = Evaluation(value, score, m, cached=res.cached, seconds=res.seconds)
        return out  # type: ignore[return-value]

    def score_metrics(self, m: dict) -> tuple[float, dict]:
        """Score and its parts (goals met, violations) from a metrics dict."""
        violation = 0.0
        met = acceptable = 0
        worst = 0.0
        for g in self.case.goals:
            v = g.violation_pct(m[g.key])
            violation += g.priority * v
            met += v == 0.0
            acceptable += g.level(m[g.key]) != UNACCEPTABLE
            worst = max(worst, v)
        rx = self.case.prescription_gy
        tb = [m[f"{s}.Dmean"] / rx for s in self.case.tiebreak_structures]
        tiebreak = self.case.tiebreak_weight * (sum(tb) / len(tb)) if tb else 0.0
        parts = {
            "goals_met": met, "goals_acceptable": acceptable, "goals_total": len(self.case.goals), "violation_pct_sum": violation,
            "worst_violation_pct": worst, "tiebreak": tiebreak,
        }
        return violation + tiebreak, parts

    # ------------------------------------------------------------------ text
    def _goal_status(self, g, value: float, brief: bool = False) -> str:
        """"met", or by how much (in the goal's unit) the value misses it, and whether the miss is
        within the goal's acceptable variation."""
        if g.met(value):
            return "met"
        unit = "" if not g.unit else (g.unit if g.unit == "%" else f" {g.unit}")
        miss = f"MISSED by {abs(value - g.value):.2f}{unit}"
        if g.acceptable is not None:
            miss += ", within the acceptable variation" if g.level(value) == ACCEPTABLE else ", beyond the acceptable variation too"
        return miss if brief else f"{miss} ({g.violation_pct(value):.1f}% of the goal)"

    def plan_level(self, ev: Evaluation) -> str:
        """"per protocol", "acceptable variation" or "unacceptable" (every goal at its level, RTOG-style)."""
        return plan_level(self.case.goals, ev.metrics) if ev.valid else UNACCEPTABLE

    def spot_lines(self, ev: Evaluation, brief: bool = False) -> list[str]:
        """Each target's cold spot (near-minimum D98, minimum) and hot spot (near-maximum D2, maximum),
        ICRU 83's numbers, against its own prescribed dose: what a physicist reads first."""
        m = ev.metrics
        lines = []
        for name, rx in self.spot_targets():
            keys = [f"{name}.{k}" for k in ("D98", "Dmin", "D2", "Dmax")]
            if not all(k in m for k in keys):
                continue
            d98, dmin, d2, dmax = (m[k] for k in keys)
            if brief:
                lines.append(f"{name} (Rx {rx:g} Gy): D98 {d98:.1f}, min {dmin:.1f}, D2 {d2:.1f}, max {dmax:.1f} Gy")
            else:
                lines.append(f"{name} cold spot: D98 {d98:.1f} Gy ({100 * d98 / rx:.1f}% of its {rx:g} Gy), minimum {dmin:.1f} Gy "
                             f"({100 * dmin / rx:.1f}%); hot spot: D2 {d2:.1f} Gy ({100 * d2 / rx:.1f}%), maximum {dmax:.1f} Gy "
                             f"({100 * dmax / rx:.1f}%)")
        return lines

    def spot_targets(self) -> list[tuple[str, float]]:
        """(target, its prescribed dose): every TARGET structure (a CTV without a dose of its own gets the prescription's)."""
        doses = dict(self.case.targets)
        return [(s.name, doses.get(s.name, self.case.prescription_gy)) for s in self.case.structures if s.type == "TARGET"]

    def summarize(self, ev: Evaluation) -> str:
        if not ev.valid:
            return self.invalid_text(ev.error or "evaluation failed")
        m = ev.metrics
        worst = max(self.case.goals, key=lambda g: g.violation_pct(m[g.key]), default=None)
        text = f"score {ev.score:.4g}, goals met {m.get('goals_met')}/{m.get('goals_total')} ({self.plan_level(ev)})"
        if worst is not None and not worst.met(m[worst.key]):
            text += f", worst: {worst.structure} {worst.metric} {_fmt(m[worst.key], worst.unit)} (goal {worst.op} {_fmt(worst.value, worst.unit)}, {worst.violation_pct(m[worst.key]):.1f}% off)"
        return text

    def verbalize(self, ev: Evaluation, start: Optional[Evaluation], best: Optional[Evaluation], brief: bool = False) -> str:
        if not ev.valid:
            return self.invalid_text(ev.error or "evaluation failed")
        text = self._brief(ev, best) if brief else self._full(ev, start, best)
        trade_off = self.trade_off(ev, brief, "plans")
        text += ("\n" + trade_off) if trade_off else ""
        return text

    def _full(self, ev: Evaluation, start: Optional[Evaluation], best: Optional[Evaluation]) -> str:
        lines = []
        for g in self.case.goals:
            v = ev.metrics[g.key]
            line = f"{g.structure} {g.metric} = {_fmt(v, g.unit)} (goal {g.op} {_fmt(g.value, g.unit)}): {self._goal_status(g, v)}"
            ctx = []
            for tag, ref in (("start", start), ("best", best)):
                if ref is not None and ref.valid and ref.value != ev.value and g.key in ref.metrics:
                    r = ref.metrics[g.key]
                    ctx.append(f"{tag} plan {_fmt(r, g.unit)}, change {v - r:+.2f}")
            if ctx:
                line += "; " + "; ".join(ctx)
            lines.append(line)
        lines += self.spot_lines(ev)
        rx = self.case.prescription_gy
        oar = ", ".join(f"{s} Dmean {ev.metrics[f'{s}.Dmean']:.1f} Gy" for s in self.case.tiebreak_structures)
        lines.append(
            f"score {ev.score:.4g} (lower is better; {ev.metrics['goals_met']}/{ev.metrics['goals_total']} goals met, plan level: "
            f"{self.plan_level(ev)}" + (f"; {oar}; prescription {rx:g} Gy" if oar else "") + f"); DVH numbers on the {self.verdict_grid()}"
            + self._normalization_words(ev)
        )
        return "\n".join(lines)

    def _normalization_words(self, ev: Evaluation) -> str:
        """"; plan normalized: dose x 1.034 so that PTV D95 = 78 Gy" (nothing without normalization)."""
        factor = ev.metrics.get("normalization")
        if self.case.normalize == "none" or factor is None:
            return ""
        return (f"; plan normalized: dose x {factor:.3f} so that {self.case.target} {self.case.normalize} = "
                f"{self.case.prescription_gy:g} Gy")

    def _brief(self, ev: Evaluation, best: Optional[Evaluation]) -> str:
        """Each goal's number, verdict and the best plan's number; the score and the OAR means."""
        m = ev.metrics
        better = best is not None and best.valid and best.value != ev.value
        lines = []
        for g in self.case.goals:
            status = self._goal_status(g, m[g.key], brief=True)
            lines.append(f"{g.structure} {g.metric} {_fmt(m[g.key], g.unit)} (goal {g.op} {_fmt(g.value, g.unit)}): {status}"
                         + (f"; best {_fmt(best.metrics[g.key], g.unit)}" if better and g.key in best.metrics else ""))
        lines += self.spot_lines(ev, brief=True)
        oar = ", ".join(f"{s} Dmean {m[f'{s}.Dmean']:.1f} Gy" for s in self.case.tiebreak_structures)
        lines.append(f"score {ev.score:.4g}" + (f" (best {best.score:.4g})" if better else "") + f", lower is better; "
                     f"{m['goals_met']}/{m['goals_total']} goals met" + (f"; {oar}" if oar else ""))
        return "\n".join(lines)

    # ------------------------------------------------------------------ baselines
    def neighbor(self, value: str, rng: random.Random) -> Optional[str]:
        """Each weight times exp(N(0, 0.5)) (log-normal), each tuned level moved by N(0, 0.15 x its
        range), kept inside the search space; None for a value that is not a valid plan."""
        try:
            return self.values.neighbor(self.checked(value), rng, self.search_space())
        except (InvalidCandidate, ValueError, KeyError):
            return None

    def crossover(self, a: str, b: str, rng: random.Random) -> Optional[str]:
        """Per parameter, a random point between the parents (weights on the log scale)."""
        try:
            return self.values.crossover(self.checked(a), self.checked(b), rng, self.search_space())
        except (InvalidCandidate, ValueError, KeyError):
            return None

    # ------------------------------------------------------------------ run outputs
    def write_outputs(self, run_dir, result) -> list[str]:
        """plans.csv, trajectory.png, best_weights.json, dvh.png and dose_slice.png."""
        from ...plots import plot_trajectory
        from .dose_figures import plot_dose_slice, plot_dvh

        run_dir = Path(run_dir)
        rows = [self._csv_row(rec.step, c) for rec in result.steps for c in rec.candidates]
        write_text_atomic(run_dir / "plans.csv", csv_text(rows))
        plot_trajectory(result.steps, run_dir / "trajectory.png", PANELS, title=self.describe_short())
        files = ["plans.csv", "trajectory.png"]
        files += self.front_files(run_dir, result, "reference plans")
        best, start = result.best, result.start
        if not best.valid:
            return files
        payload = {
            "case": self.case.name, "plan_settings": self.case.plan.variant,
            "weights": json.loads(best.value), "score": best.score,
            "start_weights": json.loads(start.value) if start.valid else None,
            "start_score": start.score if start.valid else None,
            "goals": [{"goal": g.label, **g.as_data(), "achieved": best.metrics[g.key], "met": g.met(best.metrics[g.key]),
                       "level": g.level(best.metrics[g.key]), "violation_pct": g.violation_pct(best.metrics[g.key])}
                      for g in self.case.goals],
            "plan_level": self.plan_level(best),
            "metrics": best.metrics,
            "grid": f"DVH numbers on the {self.verdict_grid()}",
            "normalization": best.metrics.get("normalization", 1.0),
        }
        write_json_atomic(run_dir / "best_weights.json", payload)
        files.append("best_weights.json")
        fb = self.simulator.fluence(best.value)
        fs = self.simulator.fluence(start.value) if start.valid else None
        if fb is not None:
            db = self.engine.dose_grid_dose(fb)
            ds = self.engine.dose_grid_dose(fs) if fs is not None else None
            plot_dvh(self.engine, run_dir / "dvh.png", ds, db)
            plot_dose_slice(self.engine, run_dir / "dose_slice.png", db)
            files += ["dvh.png", "dose_slice.png"] + self.export_dose(best.value, run_dir / "best_dose.dcm", run_dir / "dvh.csv")
        return files

    def grid_label(self) -> str:
        """The grid goals are judged on ("CT grid 3 x 3 x 2.5 mm", "dose grid 6 mm")."""
        return self.engine.grid_label(self.case.plan.judge_grid)

    def verdict_grid(self) -> str:
        """The judging grid in words, with the warning a dose-grid verdict needs: the CT grid the RTDOSE
        is read on can disagree by several Gy at a steep edge (``benchmarks/results/plan_grids.txt``)."""
        return self.grid_label() + ("" if self.case.plan.judge_grid == "ct" else f" ({DOSE_GRID_WARNING})")

    def export_dose(self, value: str, path: Path, dvh_csv: Optional[Path] = None) -> list[str]:
        """The plan of ``value`` (normalized as the case says) as DICOM RTDOSE on the CT grid at ``path``
        and, with ``dvh_csv``, its DVH metrics on the dose grid and on the CT grid. Returns the file names."""
        from simulators.dose.export import DVH_COLUMNS, dvh_rows, write_rtdose

        value = self.validate(value)
        fluence = self.simulator.fluence(value)
        if fluence is None:
            raise ValueError(f"the inner optimization of {value} failed: no dose to export")
        write_rtdose(self.engine, fluence, path, description=f"tgsci {self.case.name} {value}")
        written = [Path(path).name]
        if dvh_csv is not None:
            dose = self.engine.dose_grid_dose(fluence)
            rows = dvh_rows(self.engine, self.engine.metrics_from_dose(dose, "dose"), self.engine.metrics_from_dose(dose, "ct"))
            write_text_atomic(dvh_csv, csv_text(rows, DVH_COLUMNS))
            written.append(Path(dvh_csv).name)
        return written

    def _csv_row(self, step: int, c: Evaluation) -> dict:
        row = {"step": step, "value": c.value, "score": c.score, "error": c.error, "origin": c.origin, "cached": c.cached, "seconds": c.seconds}
        try:
            params = self.to_params(c.value or "")
        except (ValueError, TypeError, AttributeError, KeyError):
            params = {}
        for n in self.names:
            row[f"w_{n}"] = params.get(n)
        for n in sorted(self.values.linear_params()):
            row[n] = params.get(n)
        m = c.metrics
        for k in self._metric_columns():
            row[k] = m.get(k)
        return row

    def _metric_columns(self) -> list[str]:
        cols = ["goals_met", "goals_acceptable", "goals_total", "violation_pct_sum", "worst_violation_pct", "tiebreak", "inner_iterations",
                "normalization", "grid_gap_gy"]
        levels = self.case.metric_levels()
        for s in self.case.structures:
            d_levels, v_levels = levels[s.name]
            cols += [f"{s.name}.Dmean", f"{s.name}.Dmax"]
            cols += [f"{s.name}.D{x:g}" for x in sorted(set(dvh.STANDARD_D) | set(d_levels))]
            cols += [f"{s.name}.V{x:g}Gy" for x in sorted(v_levels)]
        cols += [f"{self.case.target}.HI", f"{self.case.target}.CI", "dose_grid_mm"]
        return cols

    def close(self) -> None:
        self.simulator.close()


def _fmt(value: float, unit: str) -> str:
    if unit == "%":
        return f"{value:.1f}%"
    return f"{value:.2f} {unit}".rstrip()

