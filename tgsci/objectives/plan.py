"""Treatment-plan objective: tune the importance weights of an inverse IMRT plan.

The variable is a weight vector written as canonical JSON, one non-negative number per
optimization objective of the case (``{"BODY": 100, "Core": 300, "OuterTarget": 1000}`` for
TG119). Each candidate runs an inner fluence optimization (``simulators.dose``; all
candidates of a step in one batch) and the resulting dose is judged against every clinical
goal of the case manifest (``targets/cases/<case>.toml``).

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

import numpy as np

from simulators.dose import metrics as dvh
from simulators.dose.cases import CaseSpec, list_cases, load_case
from simulators.dose.engine import DoseEngine

from ..plots import PLAN_PANELS, plot_trajectory, save_figure
from ..rundir import csv_text, write_json_atomic, write_text_atomic
from .base import Evaluation, InvalidCandidate, Objective

__all__ = ["PlanObjective", "list_cases", "canonical_weights"]

_ENGINE_OPTIONS = ("threads", "check_memory", "warm_start", "use_result_cache")
SIGNIFICANT_DIGITS = 4
SEARCH_FACTOR = 30.0  # TPE/random search range: start weight / 30 ... start weight * 30
NEIGHBOR_SIGMA = 0.5  # log-normal perturbation of the random baseline (factor e^0.5 ~ 1.65 per sigma)

_KIND_WORDS = {
    "squared_deviation": "squared deviation from",
    "squared_overdose": "squared overdose above",
    "squared_underdose": "squared underdose below",
}


def _round_sig(x: float, digits: int = SIGNIFICANT_DIGITS) -> float | int:
    if x == 0:
        return 0
    r = float(f"{x:.{digits}g}")
    return int(r) if r.is_integer() and abs(r) < 2**53 else r


def canonical_weights(weights: dict) -> str:
    """Sorted keys, numbers rounded to 4 significant digits, integers without '.0'."""
    return json.dumps({k: _round_sig(float(weights[k])) for k in sorted(weights)}, sort_keys=True)


class PlanObjective(Objective):
    kind = "plan"
    what = "weight vector"
    direction = "lower score is better"
    item_grammar = None  # a GBNF `item` rule cannot describe a JSON object inside quotes

    def __init__(
        self, case: CaseSpec, cache_dir: Optional[str | Path] = None, use_result_cache: bool = True, **engine_options
    ):
        """``cache_dir`` holds the influence matrix and (``use_result_cache``) a SQLite table of
        evaluated weight vectors, so a repeated vector costs a lookup; default
        ``$TGSCI_CACHE_DIR/dose`` or ``~/.cache/tgsci/dose``."""
        self.case = case
        self.names = case.objective_names
        self.weight_max = float(case.weight_max)
        self.engine = DoseEngine(case, cache_dir=cache_dir, **engine_options)
        self._results = self._open_result_cache(cache_dir) if use_result_cache else None
        self._cache: dict[str, Evaluation] = {}
        self._fluence: dict[str, np.ndarray] = {}
        start = self.start_value()
        self.role_description = (
            f"importance weights of the inverse-planning objectives of the {case.name} plan "
            f"(JSON object: objective name -> non-negative number)"
        )
        self.example = start
        self.format_hint = (
            "Each value is one JSON object that gives every objective name a non-negative weight, "
            f"for example {start}."
        )
        self.max_tokens_per_item = 16 + 12 * len(self.names)
        self.item_schema = {
            "type": "object",
            "properties": {n: {"type": "number", "minimum": 0, "maximum": self.weight_max} for n in self.names},
            "required": list(self.names),
            "additionalProperties": False,
        }

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_case(cls, name: str, fast: bool = False, cache_dir: Optional[str | Path] = None, **overrides) -> "PlanObjective":
        """Objective for the case ``targets/cases/<name>.toml``.

        ``fast``: the manifest's [plan.fast] settings (tests). ``overrides``: plan settings
        (``bixel_width_mm``, ``dose_grid_mm``, ``max_iter``, ``gantry_angles``, ...) and engine
        options (``threads``, ``check_memory``). Unknown case names raise ValueError listing the
        valid ones; a machine without the memory the case needs raises MemoryError.
        """
        engine_options = {k: overrides.pop(k) for k in list(overrides) if k in _ENGINE_OPTIONS}
        case = load_case(name, fast=fast, **overrides)
        return cls(case, cache_dir=cache_dir, **engine_options)

    def _open_result_cache(self, cache_dir):
        from simulators.cache import ResultCache

        from simulators.dose.matrix import default_cache_dir

        return ResultCache(Path(cache_dir) if cache_dir else default_cache_dir(), name="plan-results.sqlite")

    def _result_fields(self, value: str) -> dict:
        return {"objective": self.fingerprint(), "matrix": self.engine.data.key, "weights": value}

    @staticmethod
    def memory_required_gb(name: str, fast: bool = False) -> float:
        """Free memory (GB) needed to build the case's influence matrix (from the manifest)."""
        return load_case(name, fast=fast).plan.memory_gb

    def start_value(self) -> str:
        """The manifest's starting weights, canonical."""
        return canonical_weights(self.case.start_weights())

    def search_space(self) -> dict[str, tuple[float, float]]:
        """Per objective, the (low, high) range the baselines search in (log scale):
        start weight / 30 ... start weight * 30, within (0, weight_max]."""
        start = self.case.start_weights()
        top = max(start.values()) or 1.0
        space = {}
        for n in self.names:
            w = start[n] if start[n] > 0 else top / 1000.0
            low = max(w / SEARCH_FACTOR, self.weight_max * 1e-9)
            high = min(w * SEARCH_FACTOR, self.weight_max)
            space[n] = (float(low), float(high))
        return space

    def to_params(self, value: str) -> dict[str, float]:
        return {k: float(v) for k, v in json.loads(value).items()}

    def from_params(self, params: dict) -> str:
        return self.validate(json.dumps(params))

    # ------------------------------------------------------------------ words
    def objective_lines(self) -> list[str]:
        return [
            f"{o.name}: {_KIND_WORDS[o.kind]} {o.dose_gy:g} Gy on {o.structure} (start weight {_round_sig(o.weight)})"
            for o in self.case.objectives
        ]

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
        )

    def describe_short(self) -> str:
        return f"{self.case.name} ({self.case.plan.variant}): {self.score_formula()}"

    def constraints(self) -> list[str]:
        return [
            f"a JSON object with exactly these keys: {', '.join(self.names)}",
            f"every weight is a finite number between 0 and {self.weight_max:g}; not all weights zero",
            "only the ratios between weights matter: multiplying all weights by one factor gives the same plan",
            "objectives: " + "; ".join(self.objective_lines()),
        ]

    def fingerprint(self) -> dict:
        return {"kind": self.kind, **self.case.fingerprint(), "inner_optimizer": "tgsci L-BFGS-B lock-step v1"}

    # ------------------------------------------------------------------ validation
    def validate(self, text: str) -> str:
        if not isinstance(text, str):
            raise InvalidCandidate("the weight vector must be JSON text")
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, ValueError) as exc:
            raise InvalidCandidate(f"not valid JSON ({exc.msg if hasattr(exc, 'msg') else exc}); write a JSON object such as {self.start_value()}") from None
        if isinstance(data, str):  # a JSON object quoted as a string
            try:
                data = json.loads(data)
            except (json.JSONDecodeError, ValueError):
                pass
        if not isinstance(data, dict):
            raise InvalidCandidate(f"expected a JSON object mapping objective names to weights, got {type(data).__name__}")
        unknown = sorted(set(data) - set(self.names))
        if unknown:
            raise InvalidCandidate(f"unknown objective name(s) {', '.join(unknown)}; valid names: {', '.join(self.names)}")
        missing = [n for n in self.names if n not in data]
        if missing:
            raise InvalidCandidate(f"missing weight(s) for {', '.join(missing)}; every one of {', '.join(self.names)} needs a weight")
        weights = {}
        for n in self.names:
            v = data[n]
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise InvalidCandidate(f"weight {n} must be a number, got {json.dumps(v)}")
            v = float(v)
            if not math.isfinite(v):
                raise InvalidCandidate(f"weight {n} is not finite ({v}); use a number between 0 and {self.weight_max:g}")
            if v < 0:
                raise InvalidCandidate(f"weight {n} is negative ({v:g}); weights must be >= 0")
            if v > self.weight_max:
                raise InvalidCandidate(f"weight {n} = {v:g} is above the upper bound {self.weight_max:g}")
            weights[n] = v
        if not any(_round_sig(v) for v in weights.values()):
            raise InvalidCandidate("all weights are zero; at least one objective needs a positive weight")
        return canonical_weights(weights)

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, values: list[str]) -> list[Evaluation]:
        out: list[Optional[Evaluation]] = [None] * len(values)
        todo: dict[str, list[int]] = {}
        for i, raw in enumerate(values):
            try:
                value = self.validate(raw)
            except InvalidCandidate as exc:
                out[i] = Evaluation(raw, None, error=str(exc), simulated=False)
                continue
            if value not in self._cache and self._results is not None:
                stored = self._results.get(self._result_fields(value))
                if stored is not None:
                    self._cache[value] = Evaluation(value, self.score_metrics(stored["metrics"])[0], stored["metrics"])
            if value in self._cache:
                c = self._cache[value]
                out[i] = Evaluation(value, c.score, dict(c.metrics), c.error, simulated=True, cached=True, seconds=0.0)
                continue
            todo.setdefault(value, []).append(i)
        if todo:
            order = list(todo)
            results = self.engine.evaluate([json.loads(v) for v in order])
            for value, res in zip(order, results):
                if res.error:
                    ev = Evaluation(value, None, {}, error=res.error, seconds=res.seconds)
                else:
                    m = dict(res.metrics)
                    score, parts = self.score_metrics(m)
                    m.update(parts)
                    m["inner_iterations"] = res.optimizer.get("nit")
                    ev = Evaluation(value, score, m, seconds=res.seconds)
                    self._fluence[value] = res.fluence
                    if self._results is not None:
                        self._results.put(self._result_fields(value), {"metrics": m})
                self._cache[value] = ev
                for n, i in enumerate(todo[value]):
                    out[i] = ev if n == 0 else Evaluation(value, ev.score, dict(ev.metrics), ev.error, cached=True)
        return out  # type: ignore[return-value]

    def score_metrics(self, m: dict) -> tuple[float, dict]:
        """Score and its parts (goals met, violations) from a metrics dict."""
        violation = 0.0
        met = 0
        worst = 0.0
        for g in self.case.goals:
            v = g.violation_pct(m[g.key])
            violation += g.priority * v
            met += v == 0.0
            worst = max(worst, v)
        rx = self.case.prescription_gy
        tb = [m[f"{s}.Dmean"] / rx for s in self.case.tiebreak_structures]
        tiebreak = self.case.tiebreak_weight * (sum(tb) / len(tb)) if tb else 0.0
        parts = {
            "goals_met": met, "goals_total": len(self.case.goals), "violation_pct_sum": violation,
            "worst_violation_pct": worst, "tiebreak": tiebreak,
        }
        return violation + tiebreak, parts

    # ------------------------------------------------------------------ text
    def _goal_status(self, g, value: float) -> str:
        unit = "" if not g.unit else (g.unit if g.unit == "%" else f" {g.unit}")
        if g.met(value):
            return "met"
        miss = abs(value - g.value)
        return f"MISSED by {miss:.2f}{unit} ({g.violation_pct(value):.1f}% of the goal)"

    def summarize(self, ev: Evaluation) -> str:
        if not ev.valid:
            return self.invalid_text(ev.error or "evaluation failed")
        m = ev.metrics
        worst = max(self.case.goals, key=lambda g: g.violation_pct(m[g.key]), default=None)
        text = f"score {ev.score:.3f}, goals met {m.get('goals_met')}/{m.get('goals_total')}"
        if worst is not None and not worst.met(m[worst.key]):
            text += f", worst: {worst.structure} {worst.metric} {_fmt(m[worst.key], worst.unit)} (goal {worst.op} {_fmt(worst.value, worst.unit)}, {worst.violation_pct(m[worst.key]):.1f}% off)"
        return text

    def verbalize(self, ev: Evaluation, start: Optional[Evaluation], best: Optional[Evaluation]) -> str:
        if not ev.valid:
            return self.invalid_text(ev.error or "evaluation failed")
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
        rx = self.case.prescription_gy
        oar = ", ".join(f"{s} Dmean {ev.metrics[f'{s}.Dmean']:.1f} Gy" for s in self.case.tiebreak_structures)
        lines.append(
            f"score {ev.score:.3f} (lower is better; {ev.metrics['goals_met']}/{ev.metrics['goals_total']} goals met"
            + (f"; {oar}; prescription {rx:g} Gy" if oar else "") + "); DVH numbers on the "
            + f"{self.case.plan.dose_grid_mm:g} mm dose grid"
        )
        return "\n".join(lines)

    # ------------------------------------------------------------------ baselines
    def neighbor(self, value: str, rng: random.Random) -> Optional[str]:
        """Multiply every weight by exp(N(0, 0.5)) (log-normal), kept inside the search space."""
        try:
            w = self.to_params(self.validate(value))
        except (InvalidCandidate, ValueError):
            return None
        space = self.search_space()
        out = {}
        for n in self.names:
            low, high = space[n]
            base = w[n] if w[n] > 0 else low
            out[n] = min(max(base * math.exp(rng.gauss(0.0, NEIGHBOR_SIGMA)), low), high)
        return canonical_weights(out)

    def crossover(self, a: str, b: str, rng: random.Random) -> Optional[str]:
        """Per weight, a random point between the parents on the log scale."""
        try:
            wa, wb = self.to_params(self.validate(a)), self.to_params(self.validate(b))
        except (InvalidCandidate, ValueError):
            return None
        low = {n: lo for n, (lo, _) in self.search_space().items()}
        out = {}
        for n in self.names:
            la, lb = math.log(max(wa[n], low[n])), math.log(max(wb[n], low[n]))
            t = rng.random()
            out[n] = math.exp(la + t * (lb - la))
        return canonical_weights(out)

    # ------------------------------------------------------------------ run outputs
    def fluence_of(self, value: str) -> Optional[np.ndarray]:
        """Optimized fluence of an evaluated value (re-optimized if this process has not seen it)."""
        value = self.validate(value)
        if value not in self._fluence:
            res = self.engine.evaluate([json.loads(value)])[0]
            if res.error:
                return None
            self._fluence[value] = res.fluence
        return self._fluence[value]

    def write_outputs(self, run_dir, result) -> list[str]:
        run_dir = Path(run_dir)
        files = []
        rows = []
        for rec in result.steps:
            for c in rec["candidates"]:
                rows.append(self._csv_row(rec["step"], c))
        write_text_atomic(run_dir / "plans.csv", csv_text(rows))
        files.append("plans.csv")
        plot_trajectory(result.steps, run_dir / "trajectory.png", PLAN_PANELS, title=self.describe_short())
        files.append("trajectory.png")
        best, start = result.best, result.start
        if best is not None and best.valid:
            payload = {
                "case": self.case.name, "plan_settings": self.case.plan.variant,
                "weights": json.loads(best.value), "score": best.score,
                "start_weights": json.loads(start.value) if start.valid else None,
                "start_score": start.score if start.valid else None,
                "goals": [
                    {"goal": g.label, "value": best.metrics[g.key], "met": g.met(best.metrics[g.key]),
                     "violation_pct": g.violation_pct(best.metrics[g.key]), "source": g.source}
                    for g in self.case.goals
                ],
                "metrics": best.metrics,
                "grid": f"DVH numbers on the {self.case.plan.dose_grid_mm:g} mm dose grid",
            }
            write_json_atomic(run_dir / "best_weights.json", payload)
            files.append("best_weights.json")
            fb = self.fluence_of(best.value)
            fs = self.fluence_of(start.value) if start.valid else None
            if fb is not None:
                db = self.engine.dose_grid_dose(fb)
                ds = self.engine.dose_grid_dose(fs) if fs is not None else None
                self._plot_dvh(run_dir / "dvh.png", ds, db)
                self._plot_slice(run_dir / "dose_slice.png", db)
                files += ["dvh.png", "dose_slice.png"]
        return files

    def _csv_row(self, step: int, c: dict) -> dict:
        row = {"step": step, "value": c.get("value"), "score": c.get("score"), "error": c.get("error"),
               "cached": c.get("cached"), "seconds": c.get("seconds")}
        try:
            w = json.loads(c.get("value") or "")
        except (json.JSONDecodeError, TypeError):
            w = {}
        for n in self.names:
            row[f"w_{n}"] = w.get(n) if isinstance(w, dict) else None
        m = c.get("metrics") or {}
        for k in self._metric_columns():
            row[k] = m.get(k)
        return row

    def _metric_columns(self) -> list[str]:
        cols = ["goals_met", "goals_total", "violation_pct_sum", "worst_violation_pct", "tiebreak", "inner_iterations"]
        levels = self.case.metric_levels()
        for s in self.case.structures:
            d_levels, v_levels = levels[s.name]
            cols += [f"{s.name}.Dmean", f"{s.name}.Dmax"]
            cols += [f"{s.name}.D{x:g}" for x in sorted(set(dvh.STANDARD_D) | set(d_levels))]
            cols += [f"{s.name}.V{x:g}Gy" for x in sorted(v_levels)]
        cols += [f"{self.case.target}.HI", f"{self.case.target}.CI", "dose_grid_mm"]
        return cols

    def _plot_dvh(self, path: Path, start_dose: Optional[np.ndarray], best_dose: np.ndarray) -> None:
        from matplotlib.figure import Figure

        fig = Figure(figsize=(9.5, 5.5), dpi=110)
        ax = fig.add_subplot(111)
        top = float(max(best_dose.max(), start_dose.max() if start_dose is not None else 0.0)) * 1.02
        levels = np.linspace(0.0, max(top, 1.0), 400)
        colors = _colors(len(self.case.structures))
        for s, color in zip(self.case.structures, colors):
            d = self.engine.structure_dose(best_dose, s.name)
            ax.plot(levels, dvh.dvh_curve(d, levels), color=color, lw=1.8, label=f"{s.name} (best)")
            if start_dose is not None:
                d0 = self.engine.structure_dose(start_dose, s.name)
                ax.plot(levels, dvh.dvh_curve(d0, levels), color=color, lw=1.2, ls="--", label=f"{s.name} (start)")
        for g in self.case.goals:
            kind, x = dvh.parse_metric(g.metric)
            if kind == "D":
                ax.plot([g.value], [x], marker="^" if g.op == ">=" else "v", color="k", ms=6)
            elif kind == "V":
                ax.plot([x], [g.value], marker="v", color="k", ms=6)
        ax.set_xlabel("Dose (Gy)")
        ax.set_ylabel("Volume (%)")
        ax.set_ylim(0, 101)
        ax.set_xlim(0, levels[-1])
        ax.grid(alpha=0.3)
        ax.set_title(f"{self.case.name}: DVH, best (solid) vs start (dashed); dose grid {self.case.plan.dose_grid_mm:g} mm; triangles = goals", fontsize=9)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
        fig.tight_layout()
        save_figure(fig, path, dpi=100)  # atomic, like every other figure

    def _plot_slice(self, path: Path, dose: np.ndarray) -> None:
        from matplotlib.figure import Figure

        data = self.engine.data
        nx, ny, nz = data.grid_dims
        cube = dose.reshape(nz, ny, nx)
        target = data.masks[self.case.target]
        zc = int(np.median(np.unravel_index(target, (nz, ny, nx))[0]))
        ox, oy, oz = data.grid_origin
        sx, sy, sz = data.grid_spacing
        extent = (ox - sx / 2, ox + (nx - 0.5) * sx, oy + (ny - 0.5) * sy, oy - sy / 2)
        fig = Figure(figsize=(7.5, 6.5), dpi=110)
        ax = fig.add_subplot(111)
        ax.imshow(data.ct_hu[zc], cmap="gray", vmin=-1000, vmax=1000, extent=extent, interpolation="nearest")
        rx = self.case.prescription_gy
        shown = np.ma.masked_less(cube[zc], 0.05 * rx)
        im = ax.imshow(shown, cmap="jet", alpha=0.45, vmin=0, vmax=1.1 * rx, extent=extent, interpolation="nearest")
        colors = _colors(len(self.case.structures))
        xs = ox + np.arange(nx) * sx
        ys = oy + np.arange(ny) * sy
        handles = []
        for s, color in zip(self.case.structures, colors):
            mask = np.zeros(nx * ny * nz, dtype=bool)
            mask[data.masks[s.name]] = True
            sl = mask.reshape(nz, ny, nx)[zc]
            if sl.any() and not sl.all():
                ax.contour(xs, ys, sl.astype(float), levels=[0.5], colors=[color], linewidths=1.6)
                handles.append((color, s.name))
        for color, name in handles:
            ax.plot([], [], color=color, label=name)
        if handles:
            ax.legend(fontsize=7, loc="lower right")
        # zoom to the structures' in-plane extent (all structures lie inside the body)
        union = np.zeros(nx * ny * nz, dtype=bool)
        for s in self.case.structures:
            union[data.masks[s.name]] = True
        ys_, xs_ = np.nonzero(union.reshape(nz, ny, nx).any(axis=0))
        if xs_.size:
            ax.set_xlim(ox + (xs_.min() - 2) * sx, ox + (xs_.max() + 2) * sx)
            ax.set_ylim(oy + (ys_.max() + 2) * sy, oy + (ys_.min() - 2) * sy)
        cb = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
        cb.set_label("Dose (Gy)")
        ax.set_xlabel("x (mm)")
        ax.set_ylabel("y (mm)")
        ax.set_title(f"{self.case.name}: best plan, axial slice z = {oz + zc * sz:.0f} mm (dose grid {self.case.plan.dose_grid_mm:g} mm)", fontsize=9)
        fig.tight_layout()
        save_figure(fig, path, dpi=100)  # atomic, like every other figure

    def close(self) -> None:
        self.engine.optimizer.close()


def _fmt(value: float, unit: str) -> str:
    if unit == "%":
        return f"{value:.1f}%"
    return f"{value:.2f} {unit}".rstrip()


def _colors(n: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return [cmap(i % 10) for i in range(n)]
