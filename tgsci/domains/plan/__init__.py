"""The plan domain: spec -> PlanObjective, and how treatment-plan runs are reported.

Spec (a dict or TOML table; every key but ``case`` optional)::

    kind = "plan"
    case = "tg119"                    # a case in targets/cases
    fast = true                       # the case's [plan.fast] settings (quick trials, tests)
    protocol = "paper"                # tgsci.presets: start weights 100, baselines search [100, 400]
    objectives = "goals"              # Pareto mode: one axis per clinical goal (coverage up, organ doses down)
    reference_point = {"Rectum.V70Gy" = 50}   # of the hypervolume, per goal (default: 0 Gy coverage, 120 % Rx, 100 %)
    dose_grid_mm = 5                  # plan settings override the case's: machine, gantry_angles, couch_angles,
    max_iter = 100                    #   bixel_width_mm, dose_grid_mm, max_iter, memory_gb, judge_grid, tune
    threads = 2                       # dose engine: threads, check_memory, use_result_cache
    cache_dir = "~/.cache/tgsci/dose"
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any, Optional

from ...html import figures, html_table
from .. import Domain, SpecError, register
from .spec import SETTING_KEYS, PlanOptions, PlanSettings



class PlanDomain(Domain):
    kind = "plan"
    subject = "case"
    subjects_key = "cases"
    sweep_tables = ("plan",)

    def sweep_options(self, data: dict, resources: dict, base: Path) -> dict:
        """[plan]: plan settings, merged into the objective spec."""
        return dict(data.get("plan", {}))

    options_model = PlanOptions
    # The TextGrad paper's radiotherapy protocol (Nature 2025): every objective weight starts at 100, the
    # case's reference plans go into the TGD prompt, at most 10 iterations; its baseline, Bayesian
    # optimization with Optuna, has 50 trials with every weight searched in [100, 400] (here: TPE, 50
    # evaluations, the start included). The paper stops "as soon as every clinical goal is met"
    # ("paper-literal"); where the start already meets every goal that rule never lets TGD act, so "paper"
    # runs two phases (tgsci.two_phase): reach every goal, then lower the mean organ dose with every goal
    # held, and stop once 2 steps in a row lowered it by less than 0.5 Gy (above the inner optimizer's
    # step-to-step noise: benchmarks/results/plan_stop_rule.txt) or at 10 steps.
    protocols = {
        name: {
            "start_weight": 100.0,
            "search_range": (100.0, 400.0),
            "budget": {"max_steps": 10, "patience": None, **rule},
            "budget_by_method": {m: {"max_steps": 50, "n_proposals": 1, "max_evaluations": 50, "patience": None, "stop_when": None}
                                 for m in ("tpe", "nsga2")},
        }
        for name, rule in (("paper", {"stop_when": "two_phase", "plateau_margin": 0.5, "plateau_steps": 2}),
                           ("paper-literal", {"stop_when": "all_goals_met"}))
    }
    table_models = {"plan": PlanSettings}
    path_keys = ("case", "cache_dir")
    methods = ("tgd", "tgd-nofeedback", "random", "graph-ga", "tpe", "nsga2")
    trajectory_panels = [("score", "score (% goal misses, lower is better)"), ("goals_met", "clinical goals met")]
    summary_columns = ["best_goals_met"]

    def add_commands(self, app) -> None:
        from .cli import add_commands

        add_commands(app)

    # ------------------------------------------------------------------ specs
    def check(self, spec: dict) -> dict:
        out = dict(spec)
        if "case" not in out:
            raise SpecError("a plan spec needs case (a case name; see targets/cases)", "case")
        PlanOptions.checked(out)  # types and ranges; the case and its goals are checked below
        out["case"] = self._name(out["case"], "case")
        out["fast"] = out.get("fast", False)
        if out.get("protocol") is not None:
            self._protocol(out["protocol"])
        case = self.case(out)  # the manifest and every setting are checked here, before any dose work
        if out.get("objectives") is not None or out.get("reference_point") is not None:
            from .axes import plan_axes

            reference = out.get("reference_point") or {}
            if out.get("objectives") is None:
                raise SpecError('reference_point is for Pareto mode: give objectives = "goals" too', "reference_point")
            try:
                plan_axes(case, out["objectives"], reference)
            except ValueError as exc:
                raise SpecError(str(exc), "reference_point" if str(exc).startswith("reference point") else "objectives") from None
        return out

    def case(self, spec: dict):
        """The CaseSpec of a checked spec (manifest plus setting overrides)."""
        from simulators.dose.cases import load_case

        settings = {k: spec[k] for k in SETTING_KEYS if k in spec}
        try:
            return load_case(spec["case"], fast=spec.get("fast", False), **settings)
        except (ValueError, KeyError, TypeError) as exc:
            key = next((k for k in settings if k in str(exc)), "case")  # where in a sweep file to point
            raise SpecError(f"case {Path(spec['case']).name if _is_path(spec['case']) else spec['case']!r}: {exc}", key) from None

    def absolute(self, key: str, value: str, base: Path) -> str:
        if key == "case" and not _is_path(value):
            return value  # a built-in case name
        return super().absolute(key, value, base)

    def _name(self, name: Any, key: str) -> str:
        from simulators.dose.cases import list_cases

        if isinstance(name, str) and _is_path(name):
            if not Path(name).is_file():
                raise SpecError(f"case file {name} does not exist", key)
            return name
        valid = list_cases()
        lower = {c.lower(): c for c in valid}
        if not isinstance(name, str) or name.lower() not in lower:
            close = difflib.get_close_matches(str(name).lower(), list(lower), n=2)
            hint = f" Did you mean {', '.join(lower[c] for c in close)}?" if close else ""
            raise SpecError(f"unknown case {name!r}.{hint} Valid cases: {', '.join(valid)}", key)
        return lower[name.lower()]

    def build(self, spec: dict):
        from .objective import PlanObjective

        engine = {k: spec[k] for k in ("threads", "check_memory", "progress") if k in spec}
        return PlanObjective(self.case(spec), cache_dir=spec.get("cache_dir"), use_result_cache=spec.get("use_result_cache", True),
                             protocol=spec.get("protocol"), objectives=spec.get("objectives"),
                             reference_point=spec.get("reference_point"), **engine)

    def subjects(self, value: Any, options: dict, base: Optional[Path] = None) -> list[str]:
        from simulators.dose.cases import list_cases

        if value == "all":
            return list_cases()
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not value:
            raise SpecError('cases must be "all" or a non-empty list of case names', self.subjects_key)
        value = [self.absolute("case", v, Path(base or Path.cwd())) if isinstance(v, str) else v for v in value]
        return list(dict.fromkeys(self._name(v, self.subjects_key) for v in value))

    def start(self, spec: dict, value: Optional[str]) -> str:
        from ...objectives.base import InvalidCandidate
        from .objective import parse_weights
        from .values import PlanValues

        case = self.case(spec)
        if value in (None, "default"):  # the case's (or the protocol's) weights, with its levels when it tunes them
            weights = ({n: self.protocols[spec["protocol"]]["start_weight"] for n in case.objective_names}
                       if spec.get("protocol") else case.start_weights())
            return PlanValues(case, weights).start
        try:
            return parse_weights(case, value)
        except InvalidCandidate as exc:
            raise SpecError(f"start {value!r} is not a weight vector of case {case.name}: {exc}", "starts") from None

    # ------------------------------------------------------------------ reports
    def objective_text(self, config) -> str:
        obj = config.objective
        plan = obj.get("plan") or {}
        return (f"IMRT plan weights, case {obj.get('case', '?')} ({plan.get('variant', '?')} settings, "
                f"{len(plan.get('gantry_angles') or [])} beams, {plan.get('dose_grid_mm', '?')} mm dose grid, "
                f"prescription {obj.get('prescription_gy', '?')} Gy; goals judged on the {_grid_words(obj)})")

    def overview_rows(self, config) -> list[tuple[str, str]]:
        return [("clinical goals", "; ".join(g.label for g in goals_of(config)))]

    def report_sections(self, run) -> list[tuple[str, str]]:
        dose = figures(run.path, [
            ("dvh.png", "DVH", "Dose-volume histograms, start (dashed) vs best (solid); dose in Gy, volume in %."),
            ("dose_slice.png", "dose slice", "Dose (Gy) of the best plan on the target's central slice, with contours."),
        ])
        sections = [("Dose", dose or "<p>DVH and dose slice are written when the run finishes.</p>"),
                    ("Clinical goals per step (the step's best plan)", html_table(goal_rows(run)))]
        differ = grid_flags(run.path)
        if differ:
            sections.append(("Goal metrics the two grids read more than 1 Gy apart (best plan, from dvh.csv)",
                             html_table(differ) + "<p class=\"note\">The planning system reads the exported RTDOSE on the CT "
                             f"grid; goals were judged on the {_grid_words(run.config.objective)}.</p>"))
        weights = []
        for label, ev in (("start", run.start), ("best", run.best)):
            try:
                w = json.loads(ev.value) if ev is not None else {}
            except json.JSONDecodeError:
                w = {}
            weights.append({"": label, **(w if isinstance(w, dict) else {}), "score": ev.score if ev else None})
        sections.append(("Objective weights", html_table(weights)))
        rows = [{"step": s, "weights": c.value, "score": c.score,
                 "goals met": f"{c.metrics.get('goals_met', '-')}/{c.metrics.get('goals_total', '-')}", "error": c.error or "",
                 "origin": self.origin(run, s, c)} for s, c in run.candidates()]
        sections.append((f"Plans evaluated ({len(rows)})", html_table(rows)))
        method = run.config.method.get("method", "best")
        table = self.comparison_rows(run, f"best ({method})")
        if table:
            sections.append(("The paper's table: start, best and reference plans (also in paper_table.csv)",
                             html_table(table) + "<p class=\"note\">Deviations are from each target's own prescribed dose; "
                             f"numbers on the {_grid_words(run.config.objective)}; reference plans are the case's worked "
                             "examples, evaluated by tgsci.</p>"))
        return sections

    result_columns = {"goals met": ("goals_met", "d"), "of": ("goals_total", "d")}
    comparison_file = "paper_table.csv"

    def comparison_rows(self, run, label: str, context: bool = True) -> list[dict]:
        """The TextGrad paper's table (Nature 2025, radiotherapy): per plan, each target's mean, minimum
        and D95 deviation from its own prescribed dose (and D98, D2: ICRU 83's near-minimum and
        near-maximum), each organ's mean dose, goals met, evaluations to all goals and to the stop
        (numbers on the grid the case judges on, after its normalization)."""
        obj = run.config.objective
        rx, target, oars = obj.get("prescription_gy"), obj.get("target"), obj.get("oars") or []
        if rx is None or target is None:
            return []
        targets = obj.get("targets") or [[target, rx]]

        def row(name: str, ev, evaluations=None, to_goals=None) -> dict:
            m = ev.metrics if ev is not None and ev.valid else {}
            out = {"case": obj.get("case"), "plan": name}
            for t, dose in targets:  # each target against its own prescribed dose
                out[f"{t} mean - Rx (Gy)"] = _round(m.get(f"{t}.Dmean"), -dose)
                out[f"{t} min - Rx (Gy)"] = _round(m.get(f"{t}.Dmin"), -dose)
                out[f"{t} D95 - Rx (Gy)"] = _round(m.get(f"{t}.D95"), -dose)
                out[f"{t} D98 - Rx (Gy)"] = _round(m.get(f"{t}.D98"), -dose)  # ICRU 83 near-minimum: the cold spot
                out[f"{t} D2 - Rx (Gy)"] = _round(m.get(f"{t}.D2"), -dose)  # near-maximum: the hot spot
            out.update({f"{o} mean (Gy)": _round(m.get(f"{o}.Dmean")) for o in oars})
            out["goals met"] = f"{m['goals_met']}/{m['goals_total']}" if "goals_met" in m else ""
            out["evaluations to all goals"] = to_goals
            out["evaluations to stop"] = evaluations
            return out

        rows = []
        if context:
            rows.append(row("start", run.start, 1, 1 if run.start is not None and _all_met(run.start) else None))
        simulated = [c for rec in run.steps for c in rec.candidates if c.simulated]
        first = next((i + 1 for i, c in enumerate(simulated) if _all_met(c)), None)
        rows.append(row(label, run.best, run.evaluations(), first))
        if context:
            rows += [row(f"{name} (reference)", ev) for name, ev in run.references]
        return rows

    def summary_values(self, best) -> dict:
        m = best.metrics
        return {"best_goals_met": f"{m['goals_met']}/{m['goals_total']}" if "goals_met" in m else None}


def _is_path(value: str) -> bool:
    """A case given as a file (``my/case.toml``), not a built-in name."""
    return value.endswith(".toml") or "/" in value or "\\" in value


def _grid_words(obj: dict) -> str:
    """Where a run's plans were judged, and how they were normalized, in words."""
    plan = obj.get("plan") or {}
    grid = ("CT grid" if obj.get("judge_grid") == "ct"
            else f"{plan.get('dose_grid_mm', '?')} mm dose grid (not for clinical decisions: the CT grid may disagree)")
    norm = obj.get("normalize") or "none"
    return grid + ("" if norm == "none" else f", every plan normalized to {obj.get('target')} {norm} = {obj.get('prescription_gy')} Gy")


def _round(value, shift: float = 0.0):
    return None if value is None else round(float(value) + shift, 2)


def _all_met(ev) -> bool:
    m = ev.metrics if ev.valid else {}
    return "goals_met" in m and m["goals_met"] == m["goals_total"]


def grid_flags(run_dir) -> list[dict]:
    """The best plan's goal metrics whose dose-grid and CT-grid values differ by more than 1 Gy
    (``dvh.csv``), one row per metric with both values."""
    import csv

    path = Path(run_dir) / "dvh.csv"
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r.get("goal")]
    by_key: dict = {}
    for r in rows:
        entry = by_key.setdefault((r["structure"], r["metric"]), {"goal": r["goal"]})
        entry["CT grid" if r["grid"].startswith("CT") else "dose grid"] = f"{float(r['value']):.2f} {r['unit']}".strip()
        entry["flagged"] = entry.get("flagged") or r.get("grids_differ") == "yes"
    return [{k: v for k, v in e.items() if k != "flagged"} for e in by_key.values() if e["flagged"]]


def goals_of(config) -> list:
    """The clinical goals a run was judged against, rebuilt from the record (stored as data)."""
    from simulators.dose.cases import GoalSpec

    return [GoalSpec(**g) for g in config.objective.get("goals") or []]


def plan_level(goals, metrics: dict) -> str:
    from simulators.dose.cases import plan_level as level

    return level(goals, metrics) if goals else ""


def goal_rows(run) -> list[dict]:
    """Per step, the step's best plan checked against every clinical goal of the case, and the level it reaches."""
    from simulators.dose.cases import ACCEPTABLE, PER_PROTOCOL

    goals = goals_of(run.config)
    rows = []
    for rec in run.steps:
        valid = [c for c in rec.candidates if c.valid]
        if not valid:
            rows.append({"step": rec.step, "score": None, "goals met": "no new valid plan"})
            continue
        c = min(valid, key=lambda c: c.score)
        m = c.metrics
        row = {"step": rec.step, "score": float(f"{c.score:.4g}"),
               "goals met": f"{m.get('goals_met', '?')}/{m.get('goals_total', len(goals))}", "plan level": plan_level(goals, m)}
        for g in goals:
            value = m.get(g.key)
            unit = "%" if g.unit == "%" else " Gy"
            words = {PER_PROTOCOL: "met", ACCEPTABLE: "acceptable variation"}.get(g.level(value) if value is not None else "", "MISSED")
            row[g.label] = "-" if value is None else f"{value:.1f}{unit} {words}"
        rows.append(row)
    return rows


register(PlanDomain())
