"""Generated prostate patients: a seed in, a DICOM CT series + RTSTRUCT out (the ``case init`` path).

No patient can be downloaded here, so the paper's five patients are made: each seed draws an
anatomy within the ranges below (every one of them checked after rasterizing, so a patient outside
them is never written), the shapes are rasterized on a 3 mm CT grid, and pyRadPlan's DICOM exporter
writes it as a planning system's export would look. ``tgsci case init --protocol prostate`` then
makes the case, exactly as for a patient from a clinic.

Anatomy (LPS mm: +x patient left, +y posterior, +z superior; the prostate's center at the origin):

- CTV: the prostate (ellipsoid), with the seminal vesicles (two ellipsoids behind and above it) or
  without; PTV = CTV with each semi-axis grown by the margin (5-8 mm), PTV volume 40-150 cc.
- Rectum: an elliptic cylinder against the PTV's posterior face, moved so that 3-15 % of its volume
  lies inside the PTV (as drawn clinically: the anterior rectal wall inside the margin).
- Bladder: anterior-superior ellipsoid whose size follows the filling (empty to full), touching the PTV.
- Femoral heads: spheres 85-100 mm left and right of the midline; pelvis outline: an elliptic cylinder.
- HU: soft tissue 40, fat-free approximation of the pelvis; urine 10; rectal content -60 (gas and
  stool); femoral heads 450 (cancellous bone); air -1000 outside the body.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from .phantoms import synthetic_masks

#: the paper's radiotherapy study had five patients; these seeds are tgsci's five
PAPER_SEEDS = (11, 23, 37, 41, 59)
VOXEL_MM = 3.0
PTV_CC = (40.0, 150.0)
RECTUM_IN_PTV_PCT = (3.0, 15.0)
MARGIN_MM = (5.0, 8.0)
ROI_NAMES = {"CTV": "CTV", "PTV": "PTV", "Rectum": "Rectum", "Bladder": "Bladder", "FemHead_L": "Femur_Head_L",
             "FemHead_R": "Femur_Head_R", "BODY": "BODY"}


class GeneratorError(ValueError):
    """Generator parameters out of range, or an anatomy that misses its own ranges."""


@dataclass(frozen=True)
class Anatomy:
    """What a seed drew (mm, cc, %), recorded beside the DICOM files."""

    seed: int
    seminal_vesicles: bool
    margin_mm: float
    prostate_radii: tuple
    bladder_filling: float  # 0 empty ... 1 full
    rectum_in_ptv_pct: float  # the target the rectum's position was solved for
    ptv_cc: float = 0.0
    measured_rectum_in_ptv_pct: float = 0.0


def check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**31:
        raise GeneratorError(f"a patient seed is an integer in [0, 2^31), not {seed!r}")
    return seed


def prostate_phantom(seed: int) -> tuple[dict, Anatomy]:
    """The ``[phantom]`` table (synthetic shapes, as ``targets/cases/prostate.toml``'s) of patient ``seed``."""
    rng = random.Random(check_seed(seed))
    sv = rng.random() < 0.6
    margin = rng.uniform(*MARGIN_MM)
    # prostate semi-axes (left-right, antero-posterior, cranio-caudal): 30-55 cc glands
    radii = (rng.uniform(19.0, 25.0), rng.uniform(15.0, 20.0), rng.uniform(16.0, 22.0))
    filling = rng.random()
    rectum_pct = rng.uniform(4.0, 14.0)
    body = (rng.uniform(165.0, 200.0), rng.uniform(110.0, 135.0))
    body_cy = -rng.uniform(5.0, 20.0)
    femur_x = rng.uniform(85.0, 100.0)
    femur_r = rng.uniform(22.0, 26.0)

    ctv = {"name": "CTV", "shape": "ellipsoid", "center": [0.0, 0.0, 0.0], "radii": list(radii), "clip_to": "BODY"}
    ptv = {"name": "PTV", "shape": "ellipsoid", "center": [0.0, 0.0, 0.0], "radii": [r + margin for r in radii], "clip_to": "BODY"}
    if sv:  # two vesicles behind and above the gland, 1.5 cm each side of the midline
        vesicles = [{"shape": "ellipsoid", "center": [side * 15.0, radii[1] * 0.7, radii[2] * 0.9],
                     "radii": [12.0, 6.0, 9.0]} for side in (-1.0, 1.0)]
        ctv["union"] = vesicles
        ptv["union"] = [{**v, "radii": [r + margin for r in v["radii"]]} for v in vesicles]
    bladder_radii = [30.0 + 15.0 * filling, 22.0 + 13.0 * filling, 20.0 + 15.0 * filling]
    bladder_center = [0.0, -(radii[1] * 0.6 + bladder_radii[1] * 0.6), radii[2] + margin + bladder_radii[2] * 0.75]
    rectum_radii = [rng.uniform(15.0, 19.0), rng.uniform(13.0, 16.0)]
    z_half = rng.uniform(35.0, 50.0)
    phantom = {
        "source": "synthetic", "voxel_mm": [VOXEL_MM] * 3,
        "size_mm": [2 * body[0] + 30.0, 2 * body[1] + 30.0, 2 * z_half + 60.0],
        "grid_center_mm": [0.0, body_cy, 10.0], "hu_outside": -1000.0, "hu_body": 40.0, "body": "BODY",
        "shapes": [
            {"name": "BODY", "shape": "elliptic_cylinder", "center": [0.0, body_cy], "radii": list(body)},
            ctv, ptv,
            {"name": "Rectum", "shape": "elliptic_cylinder", "center": [0.0, 0.0], "radii": rectum_radii,
             "z_range": [-z_half, z_half * 0.8], "clip_to": "BODY", "hu": -60.0},
            {"name": "Bladder", "shape": "ellipsoid", "center": bladder_center, "radii": bladder_radii, "clip_to": "BODY",
             "subtract": ["PTV"], "hu": 10.0},
            {"name": "FemHead_L", "shape": "ellipsoid", "center": [femur_x, 0.0, 5.0], "radii": [femur_r] * 3,
             "clip_to": "BODY", "hu": 450.0},
            {"name": "FemHead_R", "shape": "ellipsoid", "center": [-femur_x, 0.0, 5.0], "radii": [femur_r] * 3,
             "clip_to": "BODY", "hu": 450.0},
        ],
    }
    _place_rectum(phantom, rectum_pct)
    masks, _ = synthetic_masks(phantom)
    voxel_cc = VOXEL_MM**3 / 1000.0
    ptv_cc = float(masks["PTV"].sum() * voxel_cc)
    inside = float(100.0 * (masks["Rectum"] & masks["PTV"]).sum() / masks["Rectum"].sum())
    anatomy = Anatomy(seed, sv, round(margin, 2), tuple(round(r, 2) for r in radii), round(filling, 3), round(rectum_pct, 2),
                      round(ptv_cc, 1), round(inside, 2))
    if not PTV_CC[0] <= ptv_cc <= PTV_CC[1]:
        raise GeneratorError(f"patient {seed}: PTV {ptv_cc:.0f} cc is outside {PTV_CC[0]:g}-{PTV_CC[1]:g} cc")
    if not RECTUM_IN_PTV_PCT[0] <= inside <= RECTUM_IN_PTV_PCT[1]:
        raise GeneratorError(f"patient {seed}: {inside:.1f} % of the rectum inside the PTV, outside "
                             f"{RECTUM_IN_PTV_PCT[0]:g}-{RECTUM_IN_PTV_PCT[1]:g} %")
    return phantom, anatomy


def _place_rectum(phantom: dict, percent: float) -> None:
    """Move the rectum along +y (posterior) until ``percent`` of it lies inside the PTV (bisection on
    the rasterized overlap, which falls as the rectum moves back)."""
    shapes = {s["name"]: s for s in phantom["shapes"]}
    rectum, ptv = shapes["Rectum"], shapes["PTV"]
    only = {**phantom, "shapes": [shapes["BODY"], ptv, rectum]}
    posterior = max([ptv["radii"][1]] + [u["center"][1] + u["radii"][1] for u in ptv.get("union", [])])  # the PTV's back
    lo, hi = 0.0, posterior + rectum["radii"][1]  # through the PTV's center ... just touching its back
    for _ in range(18):
        mid = 0.5 * (lo + hi)
        rectum["center"] = [0.0, mid]
        masks, _ = synthetic_masks(only)
        inside = 100.0 * (masks["Rectum"] & masks["PTV"]).sum() / masks["Rectum"].sum()
        lo, hi = (mid, hi) if inside > percent else (lo, mid)
    rectum["center"] = [0.0, round(0.5 * (lo + hi), 2)]


def write_patient(seed: int, folder: str | Path) -> Anatomy:
    """Patient ``seed`` as DICOM in ``folder`` (CT slices + one RTSTRUCT, ROIs named as TG-263 does), with
    ``anatomy.json`` beside them; returns what was drawn."""
    import json
    import warnings

    from pyRadPlan.io.dicom import DicomExporter

    from ..files import write_json_atomic
    from .phantoms import build_synthetic

    phantom, anatomy = prostate_phantom(seed)
    structures = [{"name": s["name"], "type": "TARGET" if s["name"] in ("PTV", "CTV") else "OAR"} for s in phantom["shapes"]]
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ct, cst = build_synthetic(phantom, structures)
        cst = cst.model_copy(update={"vois": [v.model_copy(update={"name": ROI_NAMES[v.name]}) for v in cst.vois]})
        DicomExporter(str(folder)).save(ct=ct, cst=cst)
    from dataclasses import asdict

    write_json_atomic(folder / "anatomy.json", {**asdict(anatomy), "phantom": json.loads(json.dumps(phantom))})
    return anatomy


def paper_patient_case(index: int, cache_dir: Optional[str | Path] = None, protocol: str = "prostate") -> Path:
    """The case file of the paper's patient ``index`` (1-5): generated into the cache on first use
    (DICOM, then ``case init`` with ``protocol``), reused after."""
    from ..cache import private_dir
    from .matrix import default_cache_dir
    from .protocols import init_case

    if isinstance(index, bool) or not isinstance(index, int) or not 1 <= index <= len(PAPER_SEEDS):
        raise GeneratorError(f"the paper's patients are 1-{len(PAPER_SEEDS)}, not {index!r}")
    seed = PAPER_SEEDS[index - 1]
    base = Path(cache_dir) if cache_dir else default_cache_dir().parent / "patients"
    folder = base / f"prostate-{seed}"
    case = base / f"patient{index}.toml"
    if not (folder / "anatomy.json").is_file():
        private_dir(base)
        write_patient(seed, folder)
    if not case.is_file():
        init_case(folder, protocol, case, name=f"patient{index}")
    return case
