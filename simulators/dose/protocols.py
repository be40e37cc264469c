"""``tgsci case init``: a starting case file from a patient's RTSTRUCT and a protocol.

A protocol (``targets/protocols/<name>.toml``, data) lists roles with the ROI names that fill
them (TG-263 names first, then common synonyms; matching ignores case, spaces, dashes and
underscores; ``*`` matches anything), each role's objectives and start weights, and the clinical
goals with their sources. ``init_case`` maps the patient's ROIs to roles and writes a case
manifest (the schema of ``targets/cases/prostate.toml``) whose ``[phantom]`` is the DICOM folder;
ROIs no role claims are listed as comments (the generic protocol makes them organs at risk).
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import tomllib
from pathlib import Path
from typing import Optional

from .cases import cases_dir
from .patient import PatientError, choose_series, scan_dicom, structure_set_for


def protocols_dir() -> Path:
    return cases_dir().parent / "protocols"


def list_protocols() -> list[str]:
    return sorted(p.stem for p in protocols_dir().glob("*.toml"))


def load_protocol(name: str) -> dict:
    path = protocols_dir() / f"{name}.toml"
    if not path.is_file():
        raise ValueError(f"unknown protocol {name!r}; protocols: {', '.join(list_protocols())}")
    with open(path, "rb") as handle:
        return tomllib.load(handle)


def _norm(text: str) -> str:
    return re.sub(r"[\s_\-]+", "", text).lower()


def _number(name: str) -> float:
    """The dose level in an ROI name (PTV_7800 -> 7800), to prefer the highest-dose PTV."""
    found = re.findall(r"\d+(?:\.\d+)?", name)
    return float(found[-1]) if found else -1.0


def map_rois(protocol: dict, rois: list[str]) -> tuple[dict[str, str], list[str]]:
    """({role: ROI name}, ROIs not mapped). A role's first pattern that matches wins; among several
    matches of one pattern the highest dose level in the name (then the first) is taken."""
    mapped: dict[str, str] = {}
    taken: set[str] = set()
    for role in protocol["roles"]:
        for pattern in role["names"]:
            hits = [r for r in rois if r not in taken and fnmatch.fnmatchcase(_norm(r), _norm(pattern).replace("\\*", "*"))]
            if hits:
                best = max(hits, key=lambda r: (_number(r), -rois.index(r)))
                mapped[role["role"]] = best
                taken.add(best)
                break
    missing = [r["role"] for r in protocol["roles"] if r.get("required") and r["role"] not in mapped]
    if missing:
        raise PatientError(f"no ROI for the required role(s) {', '.join(missing)} of protocol {protocol['name']}; "
                           f"ROIs found: {', '.join(rois)}. Rename the ROI or write the case by hand")
    return mapped, [r for r in rois if r not in taken]


def init_case(dicom: str | Path, protocol_name: str, out: str | Path, series_uid: Optional[str] = None,
              prescription_gy: Optional[float] = None, fractions: Optional[int] = None, name: Optional[str] = None) -> dict:
    """Write a case manifest for the patient in ``dicom`` under ``protocol_name``; returns what was mapped."""
    protocol = load_protocol(protocol_name)
    scan = scan_dicom(dicom)
    series = choose_series(scan, series_uid)
    rtstruct = structure_set_for(scan, series)
    rois = [r for r in rtstruct["roi_names"] if r not in rtstruct["empty_rois"]]
    mapped, unmapped = map_rois(protocol, rois)
    rx = float(prescription_gy or protocol["prescription"]["dose_gy"])
    fx = int(fractions or protocol["prescription"]["fractions"])
    out = Path(out).expanduser().resolve()
    folder = Path(dicom).expanduser().resolve()
    relative = Path(os.path.relpath(folder, out.parent))
    case_name = name or re.sub(r"[^A-Za-z0-9_\-]+", "_", folder.name) or "patient"

    lines = [
        f"# Case written by `tgsci case init --protocol {protocol_name}` from {folder}",
        f"# CT series {series['uid']} ({len(series['files'])} slices); RTSTRUCT {rtstruct['path'].name}.",
        f"# Protocol: {protocol['description']}",
        "# Check every number before you plan: the prescription, the objectives' doses and start weights, the goals.",
        "",
        f"name = {json.dumps(case_name)}",
        f"description = {json.dumps(protocol['description'] + ' (patient from DICOM)')}",
        "",
        "[phantom]",
        f"dicom = {json.dumps(relative.as_posix())}  # relative to this file",
        f"series_uid = {json.dumps(series['uid'])}",
        "",
        "[prescription]",
        f"dose_gy = {rx:g}",
        f"fractions = {fx}",
        f"target = \"{_role(protocol, 'TARGET')}\"",
        "conformity_isodose = 1.0",
        f"normalize = {json.dumps(protocol['prescription'].get('normalize', 'none'))}",
    ]
    if protocol["prescription"].get("normalize_source"):
        lines.append(f"normalize_source = {json.dumps(protocol['prescription']['normalize_source'])}")
    lines.append("")
    roles = {r["role"]: r for r in protocol["roles"]}
    for role_name, roi in mapped.items():
        lines += _structure(role_name, roi, roles[role_name], rx)
    other = protocol.get("other_rois")
    fill = []
    if other:
        for roi in unmapped:
            safe = re.sub(r"[^A-Za-z0-9_]+", "_", roi)
            lines += _structure(safe, roi, {**other, "role": safe}, rx)
            fill.append(safe)
        unmapped_note = []
    else:
        unmapped_note = unmapped
    for goal in protocol.get("goals", []):
        if goal["role"] not in mapped:
            continue
        lines += ["[[goals]]", f"structure = {json.dumps(goal['role'])}", f"metric = {json.dumps(goal['metric'])}",
                  f"op = {json.dumps(goal['op'])}"]
        lines.append(f"value_rx = {goal['value_rx']:g}" if "value_rx" in goal else f"value = {goal['value']:g}")
        if "acceptable_rx" in goal or "acceptable" in goal:
            lines.append(f"acceptable_rx = {goal['acceptable_rx']:g}" if "acceptable_rx" in goal else f"acceptable = {goal['acceptable']:g}")
        lines += [f"source = {json.dumps(goal['source'])}", ""]
    for structure in fill:
        for metric in other.get("goals_to_fill", []):
            lines += ["# [[goals]]   # FILL IN the limit, then remove the leading '# ' of these 6 lines",
                      f"# structure = {json.dumps(structure)}", f"# metric = {json.dumps(metric)}", "# op = \"<=\"",
                      "# value = FILL_IN", "# source = \"your protocol\"", ""]
    tiebreak = [r for r in protocol.get("scoring", {}).get("tiebreak_roles", []) if r in mapped] + fill
    lines += ["[scoring]", f"tiebreak_structures = {json.dumps(tiebreak)}", "tiebreak_weight = 0.1", "weight_max = 100000.0", ""]
    plan = protocol["plan"]
    n = len(plan["gantry_angles"])
    lines += ["[plan]", f"machine = {json.dumps(plan['machine'])}", f"gantry_angles = {json.dumps(plan['gantry_angles'])}",
              f"couch_angles = {json.dumps([0.0] * n)}", f"bixel_width_mm = {plan['bixel_width_mm']:g}",
              f"dose_grid_mm = {plan['dose_grid_mm']:g}", f"max_iter = {plan['max_iter']}"]
    lines += [f"{k} = {json.dumps(plan[k])}" for k in ("judge_grid", "tune") if k in plan]
    lines += ["", "[plan.fast]"]
    lines += [f"{k} = {v:g}" if isinstance(v, float) else f"{k} = {json.dumps(v)}" for k, v in plan["fast"].items()]
    if unmapped_note:
        lines += ["", "# ROIs of the RTSTRUCT no role of this protocol claims (not in the plan):"]
        lines += [f"#   {json.dumps(r)}" for r in unmapped_note]
    empty = rtstruct["empty_rois"]
    if empty:
        lines += ["", "# ROIs without any contour (left out):"] + [f"#   {json.dumps(r)}" for r in empty]
    out.parent.mkdir(parents=True, exist_ok=True)
    from ..files import write_text_atomic

    text = "\n".join(lines) + "\n"
    tomllib.loads(text)  # what we write must read back
    write_text_atomic(out, text)
    return {"case": str(out), "mapped": mapped, "unmapped": unmapped, "as_oars": fill, "empty": empty, "series": series["uid"]}


def _role(protocol: dict, kind: str) -> str:
    return next(r["role"] for r in protocol["roles"] if r["type"] == kind)


def _structure(name: str, roi: str, role: dict, rx: float) -> list[str]:
    lines = ["[[structures]]", f"name = {json.dumps(name)}"]
    if roi != name:
        lines.append(f"roi = {json.dumps(roi)}  # the ROI name in the RTSTRUCT")
    lines += [f"type = {json.dumps(role['type'])}", f"overlap_priority = {role['overlap_priority']}"]
    if role.get("v_levels"):
        lines.append(f"v_levels = {json.dumps(role['v_levels'])}")
    for i, obj in enumerate(role["objectives"]):
        suffix = obj.get("suffix") or ("" if i == 0 else str(i + 1))
        lines += ["  [[structures.objectives]]", f"  name = {json.dumps(f'{name}_{suffix}' if suffix else name)}",
                  f"  kind = {json.dumps(obj['kind'])}", f"  dose_gy = {_gy(obj, 'dose_gy', 'dose_rx', rx):g}"]
        lines += [f"  {key} = {obj[key]:g}" for key in ("volume_pct", "exponent") if key in obj]
        lines.append(f"  weight = {obj['weight']:g}")
        if "dose_range" in obj or "dose_range_rx" in obj:
            lines.append(f"  dose_range = {json.dumps([round(v, 2) for v in _gy(obj, 'dose_range', 'dose_range_rx', rx)])}")
        if "volume_range" in obj:
            lines.append(f"  volume_range = {json.dumps(obj['volume_range'])}")
    return lines + [""]


def _gy(obj: dict, key: str, rx_key: str, rx: float):
    """A protocol number in Gy: ``key`` as given, or ``rx_key`` (a fraction) times the prescription."""
    if key in obj:
        return obj[key]
    value = obj[rx_key]
    return [round(v * rx, 2) for v in value] if isinstance(value, list) else round(value * rx, 2)
