"""Treatment cases: TOML manifests in ``targets/cases/`` parsed into plain dataclasses.

A manifest holds data, not code: phantom, prescription, structures with their optimization
objectives (kind, dose level, starting weight), clinical goals with their source, scoring,
and plan settings with a ``[plan.fast]`` variant for tests.
"""

from __future__ import annotations

import hashlib
import json
import math
import tomllib
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Optional

from ..toml_lines import dotted, key_lines, line_of
from .metrics import parse_metric
from .objectives import DVH, KINDS as OBJECTIVE_KINDS, check_parameters
from .weights import join_plan

GOAL_OPS = ("<=", ">=")
GOAL_TOLERANCE = 1e-6  # relative: a goal missed by less is met (float32 doses of a normalized plan)
TUNABLE = ("weights", "dose_levels")
JUDGE_GRIDS = ("dose", "ct")


class CaseError(ValueError):
    """A case manifest that cannot be planned: the message and the key path it is about."""

    def __init__(self, message: str, path: tuple = ()):
        super().__init__(message)
        self.message, self.path = message, tuple(path)


def cases_dir() -> Path:
    """``targets/cases`` next to this repository's packages (or inside an installed ``targets``)."""
    here = Path(__file__).resolve().parents[2] / "targets" / "cases"
    if here.is_dir():
        return here
    try:
        from importlib import resources

        installed = Path(str(resources.files("targets"))) / "cases"
        if installed.is_dir():
            return installed
    except (ModuleNotFoundError, TypeError):
        pass
    return here


def list_cases() -> list[str]:
    return sorted(p.stem for p in cases_dir().glob("*.toml"))


@dataclass(frozen=True)
class ObjectiveSpec:
    """One optimization objective (kinds: ``objectives.KINDS``). ``dose_range``/``volume_range``:
    the bounds within which ``tune = ["weights", "dose_levels"]`` may move its dose level/volume."""

    name: str
    structure: str
    kind: str
    dose_gy: float
    weight: float
    volume_pct: Optional[float] = None
    exponent: Optional[float] = None
    linear: bool = False
    dose_range: Optional[tuple] = None
    volume_range: Optional[tuple] = None

    @property
    def label(self) -> str:
        """``max DVH: at most 20% of the volume at or above 70 Gy``-like words for prompts and reports."""
        from .objectives import WORDS

        words = WORDS[self.kind]
        if self.kind in DVH:
            words = words.replace("V%", f"{self.volume_pct:g}%")
        extra = f" (a = {self.exponent:g})" if self.kind == "eud" else ""
        return f"{words} {self.dose_gy:g} Gy{extra}"


#: what a plan reaches on one goal, as protocols score plans (RTOG 0126: "no variation", "minor variation")
PER_PROTOCOL, ACCEPTABLE, UNACCEPTABLE = "per protocol", "acceptable variation", "unacceptable"


@dataclass(frozen=True)
class GoalSpec:
    """A clinical goal: ``metric op value`` (the per-protocol level) and, optionally, ``acceptable``:
    the looser level a protocol still accepts as a (minor) variation. Only the per-protocol level
    counts as met; the acceptable one says how bad a miss is."""

    structure: str
    metric: str
    op: str
    value: float
    source: str
    priority: float = 1.0
    unit: str = "Gy"
    acceptable: Optional[float] = None

    @property
    def key(self) -> str:
        return f"{self.structure}.{self.metric}"

    @property
    def label(self) -> str:
        text = f"{self.structure} {self.metric} {self.op} {self.value:g} {self.unit}"
        if self.acceptable is not None:
            text += f" (acceptable {self.op} {self.acceptable:g} {self.unit})"
        return text.replace(" %", "%").replace(" )", ")")

    def _miss(self, level: float, value: float) -> float:
        """How far ``value`` misses ``level``, in percent of the goal value (0 when it holds)."""
        if value is None or not math.isfinite(value):
            return float("inf")
        scale = max(abs(self.value), 1e-9)
        miss = (level - value) if self.op == ">=" else (value - level)
        if miss <= GOAL_TOLERANCE * scale:  # a plan normalized to this very number lands on it up to rounding
            return 0.0
        return 100.0 * miss / scale

    def violation_pct(self, value: float) -> float:
        """How far ``value`` misses the per-protocol level, in percent of the goal value (0 when met)."""
        return self._miss(self.value, value)

    def met(self, value: float) -> bool:
        return self.violation_pct(value) == 0.0

    def level(self, value: float) -> str:
        """PER_PROTOCOL, ACCEPTABLE (misses the goal, holds its acceptable level) or UNACCEPTABLE."""
        if self.met(value):
            return PER_PROTOCOL
        if self.acceptable is not None and self._miss(self.acceptable, value) == 0.0:
            return ACCEPTABLE
        return UNACCEPTABLE

    def as_data(self) -> dict:
        """The goal as data (``GoalSpec(**data)`` rebuilds it); a one-level goal as it always was."""
        data = asdict(self)
        if data["acceptable"] is None:
            del data["acceptable"]
        return data


def plan_level(goals, metrics: dict) -> str:
    """The plan's level: every goal per protocol, else every goal at least acceptable, else unacceptable."""
    levels = {g.level(metrics.get(g.key, float("nan"))) for g in goals}
    if levels <= {PER_PROTOCOL}:
        return PER_PROTOCOL
    return ACCEPTABLE if UNACCEPTABLE not in levels else UNACCEPTABLE


@dataclass(frozen=True)
class StructureSpec:
    name: str
    type: str
    overlap_priority: Optional[int] = None
    d_levels: tuple = ()
    v_levels: tuple = ()
    roi: Optional[str] = None  # the ROI name in the patient's RTSTRUCT when it differs from ``name``
    dose_gy: Optional[float] = None  # a target's own prescribed dose (simultaneous integrated boost)


@dataclass(frozen=True)
class PlanSettings:
    machine: str
    gantry_angles: tuple
    couch_angles: tuple
    bixel_width_mm: float
    dose_grid_mm: float
    max_iter: int
    memory_gb: float
    variant: str = "clinical"
    judge_grid: str = "dose"  # where goals are judged and plans normalized: "dose" grid or "ct" grid
    tune: tuple = ("weights",)  # what the proposers move: weights, and optionally dose_levels

    def dose_calc_fields(self) -> dict:
        """What determines the influence matrix (not max_iter)."""
        return {
            "machine": self.machine,
            "gantry_angles": [float(a) for a in self.gantry_angles],
            "couch_angles": [float(a) for a in self.couch_angles],
            "bixel_width_mm": float(self.bixel_width_mm),
            "dose_grid_mm": float(self.dose_grid_mm),
        }


@dataclass(frozen=True)
class CaseSpec:
    name: str
    description: str
    phantom: dict
    prescription_gy: float
    fractions: int
    target: str
    conformity_isodose: float
    structures: tuple
    objectives: tuple
    goals: tuple
    plan: PlanSettings
    tiebreak_structures: tuple = ()
    tiebreak_weight: float = 0.1
    weight_max: float = 1e5
    reference_plans: tuple = ()  # (name, plan (weights, maybe levels: ``weights.join_plan``), source): worked examples
    manifest: str = ""
    extra: dict = field(default_factory=dict)
    normalize: str = "none"  # "D95", "Dmean", another D<x>, or "none": scale every plan so that metric = Rx
    normalize_source: str = ""

    @property
    def targets(self) -> list[tuple[str, float]]:
        """(name, prescribed dose) of every target with a dose: the prescription's target first."""
        out = [(self.target, self.prescription_gy)]
        for s in self.structures:
            if s.type == "TARGET" and s.name != self.target and s.dose_gy is not None:
                out.append((s.name, s.dose_gy))
        return out

    @property
    def tunes_dose_levels(self) -> bool:
        return "dose_levels" in self.plan.tune

    def tunable(self) -> tuple[list[ObjectiveSpec], list[ObjectiveSpec]]:
        """(objectives whose dose level, objectives whose volume) the proposers move, in manifest order."""
        if not self.tunes_dose_levels:
            return [], []
        return ([o for o in self.objectives if o.dose_range is not None],
                [o for o in self.objectives if o.volume_range is not None])

    @property
    def objective_names(self) -> list[str]:
        return [o.name for o in self.objectives]

    def start_weights(self) -> dict[str, float]:
        return {o.name: o.weight for o in self.objectives}

    def structure(self, name: str) -> StructureSpec:
        for s in self.structures:
            if s.name == name:
                return s
        raise KeyError(name)

    def metric_levels(self) -> dict[str, tuple[set, set]]:
        """Per structure: extra D<x> and V<dose>Gy levels (manifest lists plus every goal)."""
        levels = {s.name: (set(s.d_levels), set(s.v_levels)) for s in self.structures}
        for g in self.goals:
            kind, x = parse_metric(g.metric)
            if kind == "D":
                levels[g.structure][0].add(x)
            elif kind == "V":
                levels[g.structure][1].add(x)
        return levels

    def matrix_fields(self) -> dict:
        """Everything the cached influence matrix and masks depend on (hashed into the cache key)."""
        return {
            "case": self.name,
            "phantom": _without_paths(self.phantom),
            "structures": [
                {"name": s.name, "type": s.type, "overlap_priority": s.overlap_priority, "roi": s.roi} for s in self.structures
            ],
            "plan": self.plan.dose_calc_fields(),
        }

    def fingerprint(self) -> dict:
        """What identifies the case's content (not where its manifest lives)."""
        content = {k: v for k, v in asdict(self).items() if k not in ("manifest", "extra")}
        content["phantom"] = _without_paths(self.phantom)
        content["plan"] = {k: v for k, v in content["plan"].items() if k != "memory_gb"}
        return {
            "case": self.name,
            "manifest_sha256": hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest(),
            "plan": {**self.plan.dose_calc_fields(), "max_iter": self.plan.max_iter, "variant": self.plan.variant},
            "prescription_gy": self.prescription_gy,
            "target": self.target,
            "targets": [list(t) for t in self.targets],  # [name, prescribed dose] of every target
            "normalize": self.normalize,
            "judge_grid": self.plan.judge_grid,
            "oars": [s.name for s in self.structures if s.type == "OAR" and not _is_body(s.name)],
            "goals": [g.as_data() for g in self.goals],  # as data: GoalSpec(**goal) rebuilds each
        }


def _is_body(name: str) -> bool:
    """The outline of the patient (External, BODY, ...): an OAR for the optimizer, not an organ in tables."""
    return name.strip().lower() in ("body", "external", "skin", "outline", "patient")


def _without_paths(phantom: dict) -> dict:
    """A patient's phantom is identified by its content hash, not by the folder it sits in."""
    return {k: v for k, v in phantom.items() if k not in ("dicom", "matrad")}


PLAN_KEYS = ("machine", "gantry_angles", "couch_angles", "bixel_width_mm", "dose_grid_mm", "max_iter", "memory_gb",
             "judge_grid", "tune")


def _plan_settings(table: dict, fast: bool, overrides: dict) -> PlanSettings:
    base = {k: v for k, v in table.items() if not isinstance(v, dict)}
    variant = "clinical"
    if fast:
        if "fast" not in table:
            raise CaseError("this case has no [plan.fast] settings", ("plan",))
        base.update(table["fast"])
        variant = "fast"
    for key in base:
        if key not in PLAN_KEYS:
            raise CaseError(f"unknown plan setting {key!r}; allowed: {', '.join(PLAN_KEYS)}", ("plan", key))
    unknown = set(overrides) - set(PLAN_KEYS)
    if unknown:
        raise ValueError(f"unknown plan setting(s) {sorted(unknown)}; allowed: {sorted(PLAN_KEYS)}")
    if overrides:
        base.update(overrides)
        variant += "+" + ",".join(f"{k}={overrides[k]}" for k in sorted(overrides))
    for key in ("bixel_width_mm", "dose_grid_mm", "max_iter"):
        if key not in base:
            raise CaseError(f"[plan] needs {key}", ("plan",))
    gantry = tuple(float(a) for a in base["gantry_angles"])
    couch = tuple(float(a) for a in base.get("couch_angles", [0.0] * len(gantry)))
    if "gantry_angles" in overrides and "couch_angles" not in overrides:
        couch = (0.0,) * len(gantry)
    if len(couch) != len(gantry):
        raise CaseError("gantry_angles and couch_angles differ in length", ("plan", "couch_angles"))
    judge = base.get("judge_grid", "dose")
    if judge not in JUDGE_GRIDS:
        raise CaseError(f"judge_grid must be one of {', '.join(JUDGE_GRIDS)}, not {judge!r}", ("plan", "judge_grid"))
    tune = base.get("tune", ["weights"])
    if isinstance(tune, str):
        tune = [tune]
    if not isinstance(tune, (list, tuple)) or "weights" not in tune or any(t not in TUNABLE for t in tune):
        raise CaseError(f'tune must be ["weights"] or ["weights", "dose_levels"], not {tune!r}', ("plan", "tune"))
    settings = PlanSettings(
        machine=str(base.get("machine", "Generic")),
        gantry_angles=gantry,
        couch_angles=couch,
        bixel_width_mm=float(base["bixel_width_mm"]),
        dose_grid_mm=float(base["dose_grid_mm"]),
        max_iter=int(base["max_iter"]),
        memory_gb=float(base.get("memory_gb", 2.0)),
        variant=variant,
        judge_grid=judge,
        tune=tuple(t for t in TUNABLE if t in tune),
    )
    if settings.bixel_width_mm <= 0 or settings.dose_grid_mm <= 0 or settings.max_iter < 1:
        raise CaseError("bixel_width_mm, dose_grid_mm and max_iter must be positive", ("plan",))
    return settings


def _number(value, path: tuple, what: str, low: Optional[float] = None, high: Optional[float] = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise CaseError(f"{what} must be a finite number, not {value!r}", path)
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f">= {low:g}" if high is None else (f"<= {high:g}" if low is None else f"within [{low:g}, {high:g}]")
        raise CaseError(f"{what} must be {bounds}, not {value:g}", path)
    return float(value)


def _range(value, path: tuple, what: str, low: float, high: Optional[float] = None) -> tuple[float, float]:
    if not (isinstance(value, (list, tuple)) and len(value) == 2):
        raise CaseError(f"{what} must be [minimum, maximum], not {value!r}", path)
    lo, hi = (_number(v, path, what, low, high) for v in value)
    if lo > hi:
        raise CaseError(f"{what} [{lo:g}, {hi:g}]: the minimum exceeds the maximum", path)
    return lo, hi


GOAL_KEYS = ("structure", "metric", "op", "value", "value_rx", "acceptable", "acceptable_rx", "source", "priority")


def _level(g: dict, key: str, rx: float, path: tuple, what: str) -> Optional[float]:
    """A goal level in its unit: ``key`` as given, or ``key_rx`` times the prescription (None when neither)."""
    if key in g:
        return _number(g[key], path + (key,), f"{what} {key}")
    if f"{key}_rx" in g:
        return _number(g[f"{key}_rx"], path + (f"{key}_rx",), f"{what} {key}_rx", 0.0) * rx
    return None


OBJECTIVE_KEYS = ("name", "kind", "dose_gy", "dose_rx", "weight", "volume_pct", "exponent", "linear", "dose_range",
                  "volume_range", "source")


def _objective(o: dict, structure: str, rx: float, path: tuple) -> ObjectiveSpec:
    """One ``[[structures.objectives]]`` entry, every parameter checked (its path for the line)."""
    if not isinstance(o, dict):
        raise CaseError("an objective must be a table", path)
    for key in o:
        if key not in OBJECTIVE_KEYS:
            raise CaseError(f"unknown objective key {key!r}; allowed: {', '.join(OBJECTIVE_KEYS)}", path + (key,))
    name = str(o.get("name", structure))
    kind = o.get("kind")
    if kind not in OBJECTIVE_KINDS:
        raise CaseError(f"objective {name}: unknown kind {kind!r}; kinds: {', '.join(OBJECTIVE_KINDS)}", path + ("kind",))
    if "dose_gy" in o:
        dose = _number(o["dose_gy"], path + ("dose_gy",), f"objective {name}: dose_gy", 0.0)
    elif "dose_rx" in o:
        dose = _number(o["dose_rx"], path + ("dose_rx",), f"objective {name}: dose_rx", 0.0) * rx
    else:
        raise CaseError(f"objective {name} needs dose_gy (or dose_rx, a fraction of the prescription)", path)
    weight = _number(o.get("weight"), path + ("weight",), f"objective {name}: weight", 0.0)
    volume = o.get("volume_pct")
    if kind in DVH and volume is None:
        raise CaseError(f"objective {name}: a {kind} objective needs volume_pct (the volume in % that dose_gy applies to)",
                        path + ("kind",))
    if volume is not None:
        volume = _number(volume, path + ("volume_pct",), f"objective {name}: volume_pct", 0.0, 100.0)
    exponent = o.get("exponent")
    if exponent is not None:
        exponent = _number(exponent, path + ("exponent",), f"objective {name}: exponent")
    reason = check_parameters(kind, dose, volume, exponent)
    if reason:
        key = "exponent" if "exponent" in reason or "EUD" in reason else ("volume_pct" if "volume" in reason else "kind")
        raise CaseError(f"objective {name}: {reason}", path + (key,))
    linear = o.get("linear", False)
    if not isinstance(linear, bool) or (linear and kind not in ("mean_dose", "eud")):
        raise CaseError(f"objective {name}: linear = true applies to mean_dose and eud objectives only", path + ("linear",))
    dose_range = volume_range = None
    if "dose_range" in o:
        dose_range = _range(o["dose_range"], path + ("dose_range",), f"objective {name}: dose_range", 0.0)
        if not dose_range[0] <= dose <= dose_range[1]:
            raise CaseError(f"objective {name}: dose level {dose:g} Gy is outside its dose_range "
                            f"[{dose_range[0]:g}, {dose_range[1]:g}]", path + ("dose_range",))
    if "volume_range" in o:
        if kind not in DVH:
            raise CaseError(f"objective {name}: volume_range applies to min_dvh and max_dvh objectives only", path + ("volume_range",))
        volume_range = _range(o["volume_range"], path + ("volume_range",), f"objective {name}: volume_range", 0.0, 100.0)
        if not volume_range[0] <= volume <= volume_range[1]:
            raise CaseError(f"objective {name}: volume {volume:g}% is outside its volume_range "
                            f"[{volume_range[0]:g}, {volume_range[1]:g}]", path + ("volume_range",))
    return ObjectiveSpec(name=name, structure=structure, kind=kind, dose_gy=dose, weight=weight, volume_pct=volume,
                         exponent=exponent, linear=linear, dose_range=dose_range, volume_range=volume_range)


# What a value of the wrong shape raises deep in the checks (a table where a number belongs, a
# list where a name belongs): turned into one CaseError, so no manifest ends in a traceback.
SHAPE_ERRORS = (TypeError, AttributeError, KeyError, IndexError, OverflowError, RecursionError)


def parse_case(data: dict, fast: bool = False, manifest: str = "", **overrides) -> CaseSpec:
    """A checked CaseSpec from a parsed manifest; CaseError names the key path of what is wrong."""
    if not isinstance(data, dict):
        raise CaseError("a case manifest is a TOML table")
    try:
        return _parse_case(data, fast, manifest, **overrides)
    except SHAPE_ERRORS as exc:
        raise CaseError(f"a value has the wrong type ({type(exc).__name__}: {str(exc)[:160]}); "
                        f"compare with targets/cases/prostate.toml") from None


def _parse_case(data: dict, fast: bool = False, manifest: str = "", **overrides) -> CaseSpec:
    for key in ("name", "phantom", "prescription", "structures", "plan"):
        if key not in data:
            raise CaseError(f"missing [{key}] (see targets/cases/prostate.toml for the schema)")
    rx_table = data["prescription"]
    rx = _number(rx_table.get("dose_gy"), ("prescription", "dose_gy"), "prescription dose_gy", 0.0)
    if rx <= 0:
        raise CaseError("prescription dose_gy must be > 0", ("prescription", "dose_gy"))
    structures, objectives = [], []
    for i, s in enumerate(data["structures"]):
        path = ("structures", i)
        if not isinstance(s, dict) or "name" not in s or "type" not in s:
            raise CaseError("every [[structures]] entry needs name and type", path)
        own = s.get("dose_gy")
        if own is not None:
            own = _number(own, path + ("dose_gy",), f"structure {s['name']}: dose_gy", 0.0)
            if s["type"].upper() != "TARGET":
                raise CaseError(f"structure {s['name']}: dose_gy (a prescribed dose) applies to targets only", path + ("dose_gy",))
        structures.append(
            StructureSpec(
                name=s["name"], type=s["type"].upper(), overlap_priority=s.get("overlap_priority"),
                d_levels=tuple(float(x) for x in s.get("d_levels", [])),
                v_levels=tuple(float(x) for x in s.get("v_levels", [])), roi=s.get("roi"), dose_gy=own,
            )
        )
        for j, o in enumerate(s.get("objectives", [])):
            objectives.append(_objective(o, s["name"], rx, path + ("objectives", j)))
    names = [o.name for o in objectives]
    if len(set(names)) != len(names):
        raise CaseError(f"objective names must be unique, got {names}", ("structures",))
    known = {s.name: s for s in structures}
    target = rx_table.get("target")
    if target not in known or known[target].type != "TARGET":
        raise CaseError(f"prescription target {target!r} must be a structure of type TARGET; targets: "
                        f"{', '.join(n for n, s in known.items() if s.type == 'TARGET') or 'none'}", ("prescription", "target"))
    normalize = str(rx_table.get("normalize", "none"))
    if normalize != "none":
        try:
            kind, _ = parse_metric(normalize)
        except ValueError:
            kind = None
        if kind not in ("D", "Dmean"):
            raise CaseError(f'normalize must be "D95", "Dmean", another D<percent> or "none", not {normalize!r}',
                            ("prescription", "normalize"))
    norm_target = rx_table.get("normalize_to", target)
    if norm_target != target:
        kind = known[norm_target].type if norm_target in known else None
        raise CaseError(f"normalize_to {norm_target!r}: plans are normalized on the prescription's target {target!r}"
                        + ("" if kind else " (no such structure)") + (f"; {norm_target} is an {kind}, not a target" if kind and kind != "TARGET" else ""),
                        ("prescription", "normalize_to"))
    goals = []
    for i, g in enumerate(data.get("goals", [])):
        path = ("goals", i)
        if g.get("structure") not in known:
            raise CaseError(f"goal on unknown structure {g.get('structure')!r}", path + ("structure",))
        if g.get("op") not in GOAL_OPS:
            raise CaseError(f"goal op must be one of {GOAL_OPS}", path + ("op",))
        try:
            kind, _ = parse_metric(str(g.get("metric")))
        except ValueError as exc:
            raise CaseError(str(exc), path + ("metric",)) from None
        for key in g:
            if key not in GOAL_KEYS:
                raise CaseError(f"unknown goal key {key!r}; allowed: {', '.join(GOAL_KEYS)}", path + (key,))
        value = _level(g, "value", rx, path, "goal")
        if value is None:
            raise CaseError("a goal needs value (or value_rx, a fraction of the prescription)", path)
        acceptable = _level(g, "acceptable", rx, path, "goal")
        if acceptable is not None and (acceptable > value if g["op"] == ">=" else acceptable < value):
            looser = "below" if g["op"] == ">=" else "above"
            raise CaseError(f"goal {g['structure']} {g['metric']} {g['op']} {value:g}: its acceptable level {acceptable:g} is "
                            f"stricter than the per-protocol one (the levels are inverted: acceptable must be at or {looser} "
                            f"{value:g})", path + ("acceptable" if "acceptable" in g else "acceptable_rx",))
        unit = "%" if kind == "V" else ("" if kind in ("HI", "CI") else "Gy")
        goals.append(GoalSpec(g["structure"], g["metric"], g["op"], value, g.get("source", ""), float(g.get("priority", 1.0)), unit,
                              acceptable))
    scoring = data.get("scoring", {})
    plan = _plan_settings(data["plan"], fast, overrides)
    references = []
    for i, r in enumerate(data.get("reference_plans", [])):
        path = ("reference_plans", i)
        if set(r.get("weights", {})) != set(names):
            raise CaseError(f"reference plan {r.get('name')!r}: weights must name exactly the objectives {names}", path + ("weights",))
        levels = {}
        for table, what in (("dose_gy", "dose_range"), ("volume_pct", "volume_range")):
            given = r.get(table) or {}
            if given and "dose_levels" not in plan.tune:
                raise CaseError(f"reference plan {r.get('name')!r} gives {table}, but the case does not tune dose levels", path + (table,))
            for name, value in given.items():
                obj = next((o for o in objectives if o.name == name), None)
                bounds = getattr(obj, what, None) if obj else None
                if bounds is None or not bounds[0] <= float(value) <= bounds[1]:
                    raise CaseError(f"reference plan {r.get('name')!r}: {table} of {name} = {value} needs an objective with "
                                    f"a {what} that holds it", path + (table,))
            levels[table] = {k: float(v) for k, v in given.items()}
        weights = {k: float(v) for k, v in r["weights"].items()}
        references.append((str(r["name"]), join_plan(weights, levels.get("dose_gy"), levels.get("volume_pct")),
                           str(r.get("source", ""))))
    case = CaseSpec(
        name=data["name"],
        description=data.get("description", ""),
        phantom=_phantom(data["phantom"], Path(manifest).parent if manifest else Path.cwd(), structures),
        prescription_gy=rx,
        fractions=int(rx_table["fractions"]),
        target=target,
        conformity_isodose=float(rx_table.get("conformity_isodose", 1.0)),
        structures=tuple(structures),
        objectives=tuple(objectives),
        goals=tuple(goals),
        plan=plan,
        tiebreak_structures=tuple(scoring.get("tiebreak_structures", ())),
        tiebreak_weight=float(scoring.get("tiebreak_weight", 0.1)),
        weight_max=float(scoring.get("weight_max", 1e5)),
        reference_plans=tuple(references),
        manifest=manifest,
        normalize=normalize,
        normalize_source=str(rx_table.get("normalize_source", "")),
    )
    if case.tunes_dose_levels and not any(case.tunable()):
        raise CaseError('tune includes "dose_levels" but no objective gives a dose_range or volume_range to move it in',
                        ("plan", "tune"))
    return case


def case_path(name: str) -> Path:
    """The manifest of a case: a file path (``.toml``, or any name with a folder in it), else ``targets/cases/<name>.toml``."""
    given = Path(str(name)).expanduser()
    if given.suffix == ".toml" or len(given.parts) > 1:
        if not given.is_file():
            raise ValueError(f"case file {given} does not exist")
        return given.resolve()
    path = cases_dir() / f"{name}.toml"
    if not path.is_file():
        raise ValueError(f"unknown case {name!r}; valid cases: {', '.join(list_cases()) or '(none found in ' + str(cases_dir()) + ')'}")
    return path


def load_case(name: str, fast: bool = False, **overrides) -> CaseSpec:
    """The case ``name`` (a built-in name or a case file anywhere); ValueError lists valid names, and
    says the file, line and key of a manifest error.

    Paths inside a case file (``[phantom] dicom``, ``matrad``) are read against the file's folder."""
    path = case_path(name)
    try:
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: invalid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: cannot read the case file: {exc}") from None
    try:
        return parse_case(data, fast=fast, manifest=str(path), **overrides)
    except CaseError as exc:
        line = line_of(key_lines(text), exc.path)
        where = f"{path}, line {line}" if line else str(path)
        raise CaseError(f"{where}: {dotted(exc.path) + ': ' if exc.path else ''}{exc.message}", exc.path) from None


def _phantom(table: dict, base: Path, structures: list) -> dict:
    """The phantom table with patient paths made absolute and the patient's content hash added
    (it is part of the influence-matrix cache key: a changed export is never mistaken for the old one)."""
    phantom = dict(table)
    for key in ("dicom", "matrad"):
        if key in phantom:
            phantom[key] = str((base / Path(str(phantom[key])).expanduser()).resolve())
    if "dicom" in phantom:
        from .patient import check_patient, content_digest

        _, series, _, rtstruct, _ = check_patient(phantom, [s.roi or s.name for s in structures])
        phantom["content_sha256"] = content_digest(list(series["files"]) + [rtstruct["path"]])
    elif "matrad" in phantom:
        from .patient import PatientError, content_digest

        if not Path(phantom["matrad"]).is_file():
            raise PatientError(f"matRad file {phantom['matrad']} does not exist")
        phantom["content_sha256"] = content_digest([Path(phantom["matrad"])])
    return phantom


def replace_plan(case: CaseSpec, **changes) -> CaseSpec:
    return replace(case, plan=replace(case.plan, **changes))
