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

from .metrics import parse_metric

OBJECTIVE_KINDS = ("squared_deviation", "squared_overdose", "squared_underdose")
GOAL_OPS = ("<=", ">=")


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
    name: str
    structure: str
    kind: str
    dose_gy: float
    weight: float


@dataclass(frozen=True)
class GoalSpec:
    structure: str
    metric: str
    op: str
    value: float
    source: str
    priority: float = 1.0
    unit: str = "Gy"

    @property
    def key(self) -> str:
        return f"{self.structure}.{self.metric}"

    @property
    def label(self) -> str:
        return f"{self.structure} {self.metric} {self.op} {self.value:g} {self.unit}".replace(" %", "%")

    def violation_pct(self, value: float) -> float:
        """How far ``value`` misses the goal, in percent of the goal value (0 when met)."""
        if value is None or not math.isfinite(value):
            return float("inf")
        scale = max(abs(self.value), 1e-9)
        miss = (self.value - value) if self.op == ">=" else (value - self.value)
        return max(0.0, 100.0 * miss / scale)

    def met(self, value: float) -> bool:
        return self.violation_pct(value) == 0.0


@dataclass(frozen=True)
class StructureSpec:
    name: str
    type: str
    overlap_priority: Optional[int] = None
    d_levels: tuple = ()
    v_levels: tuple = ()
    roi: Optional[str] = None  # the ROI name in the patient's RTSTRUCT when it differs from ``name``


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
    reference_plans: tuple = ()  # (name, {objective: weight}, source): worked examples for the TGD prompt
    manifest: str = ""
    extra: dict = field(default_factory=dict)

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
            "oars": [s.name for s in self.structures if s.type == "OAR" and not _is_body(s.name)],
            "goals": [asdict(g) for g in self.goals],  # as data: GoalSpec(**goal) rebuilds each
        }


def _is_body(name: str) -> bool:
    """The outline of the patient (External, BODY, ...): an OAR for the optimizer, not an organ in tables."""
    return name.strip().lower() in ("body", "external", "skin", "outline", "patient")


def _without_paths(phantom: dict) -> dict:
    """A patient's phantom is identified by its content hash, not by the folder it sits in."""
    return {k: v for k, v in phantom.items() if k not in ("dicom", "matrad")}


def _plan_settings(table: dict, fast: bool, overrides: dict) -> PlanSettings:
    base = {k: v for k, v in table.items() if not isinstance(v, dict)}
    variant = "clinical"
    if fast:
        if "fast" not in table:
            raise ValueError("this case has no [plan.fast] settings")
        base.update(table["fast"])
        variant = "fast"
    allowed = {"machine", "gantry_angles", "couch_angles", "bixel_width_mm", "dose_grid_mm", "max_iter", "memory_gb"}
    unknown = set(overrides) - allowed
    if unknown:
        raise ValueError(f"unknown plan setting(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
    if overrides:
        base.update(overrides)
        variant += "+" + ",".join(f"{k}={overrides[k]}" for k in sorted(overrides))
    gantry = tuple(float(a) for a in base["gantry_angles"])
    couch = tuple(float(a) for a in base.get("couch_angles", [0.0] * len(gantry)))
    if "gantry_angles" in overrides and "couch_angles" not in overrides:
        couch = (0.0,) * len(gantry)
    if len(couch) != len(gantry):
        raise ValueError("gantry_angles and couch_angles differ in length")
    settings = PlanSettings(
        machine=str(base.get("machine", "Generic")),
        gantry_angles=gantry,
        couch_angles=couch,
        bixel_width_mm=float(base["bixel_width_mm"]),
        dose_grid_mm=float(base["dose_grid_mm"]),
        max_iter=int(base["max_iter"]),
        memory_gb=float(base.get("memory_gb", 2.0)),
        variant=variant,
    )
    if settings.bixel_width_mm <= 0 or settings.dose_grid_mm <= 0 or settings.max_iter < 1:
        raise ValueError("bixel_width_mm, dose_grid_mm and max_iter must be positive")
    return settings


def parse_case(data: dict, fast: bool = False, manifest: str = "", **overrides) -> CaseSpec:
    structures, objectives = [], []
    for s in data["structures"]:
        structures.append(
            StructureSpec(
                name=s["name"], type=s["type"].upper(), overlap_priority=s.get("overlap_priority"),
                d_levels=tuple(float(x) for x in s.get("d_levels", [])),
                v_levels=tuple(float(x) for x in s.get("v_levels", [])), roi=s.get("roi"),
            )
        )
        for o in s.get("objectives", []):
            if o["kind"] not in OBJECTIVE_KINDS:
                raise ValueError(f"objective {o.get('name')}: kind must be one of {OBJECTIVE_KINDS}")
            objectives.append(
                ObjectiveSpec(
                    name=o.get("name", s["name"]), structure=s["name"], kind=o["kind"],
                    dose_gy=float(o["dose_gy"]), weight=float(o["weight"]),
                )
            )
    names = [o.name for o in objectives]
    if len(set(names)) != len(names):
        raise ValueError(f"objective names must be unique, got {names}")
    rx = data["prescription"]
    known = {s.name for s in structures}
    goals = []
    for g in data.get("goals", []):
        if g["structure"] not in known:
            raise ValueError(f"goal on unknown structure {g['structure']!r}")
        if g["op"] not in GOAL_OPS:
            raise ValueError(f"goal op must be one of {GOAL_OPS}")
        kind, _ = parse_metric(g["metric"])
        value = float(g["value"]) if "value" in g else float(g["value_rx"]) * float(rx["dose_gy"])
        unit = "%" if kind == "V" else ("" if kind in ("HI", "CI") else "Gy")
        goals.append(GoalSpec(g["structure"], g["metric"], g["op"], value, g.get("source", ""), float(g.get("priority", 1.0)), unit))
    scoring = data.get("scoring", {})
    references = []
    for r in data.get("reference_plans", []):
        if set(r.get("weights", {})) != set(names):
            raise ValueError(f"reference plan {r.get('name')!r}: weights must name exactly the objectives {names}")
        references.append((str(r["name"]), {k: float(v) for k, v in r["weights"].items()}, str(r.get("source", ""))))
    return CaseSpec(
        name=data["name"],
        description=data.get("description", ""),
        phantom=_phantom(data["phantom"], Path(manifest).parent if manifest else Path.cwd(), structures),
        prescription_gy=float(rx["dose_gy"]),
        fractions=int(rx["fractions"]),
        target=rx["target"],
        conformity_isodose=float(rx.get("conformity_isodose", 1.0)),
        structures=tuple(structures),
        objectives=tuple(objectives),
        goals=tuple(goals),
        plan=_plan_settings(data["plan"], fast, overrides),
        tiebreak_structures=tuple(scoring.get("tiebreak_structures", ())),
        tiebreak_weight=float(scoring.get("tiebreak_weight", 0.1)),
        weight_max=float(scoring.get("weight_max", 1e5)),
        reference_plans=tuple(references),
        manifest=manifest,
    )


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
    """The case ``name`` (a built-in name or a case file anywhere); ValueError lists valid names.

    Paths inside a case file (``[phantom] dicom``, ``matrad``) are read against the file's folder."""
    path = case_path(name)
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: invalid TOML: {exc}") from None
    for key in ("name", "phantom", "prescription", "structures", "plan"):
        if key not in data:
            raise ValueError(f"{path}: missing [{key}] (see targets/cases/prostate.toml for the schema)")
    return parse_case(data, fast=fast, manifest=str(path), **overrides)


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
