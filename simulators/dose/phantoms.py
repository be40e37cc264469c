"""Phantoms as pyRadPlan (CT, StructureSet) pairs: TG119 from pyRadPlan, synthetic ones from shapes.

A synthetic phantom is described entirely by its manifest's ``[phantom]`` table (grid, HU,
and one analytic shape per structure, in mm, LPS patient coordinates: +x left, +y posterior,
+z superior; the isocenter is the origin). This module only rasterizes those shapes: a voxel
belongs to a shape when its center lies inside it. Shapes:

- ``ellipsoid``: ``center = [x, y, z]``, ``radii = [rx, ry, rz]``
- ``elliptic_cylinder`` (axis along z): ``center = [x, y]``, ``radii = [rx, ry]``,
  ``z_range = [z_min, z_max]`` (omit for the full grid length)

``clip_to`` (a structure name) intersects a shape with an earlier one (e.g. organs with BODY);
``union`` (a list of shapes) adds more shapes to it (paired organs such as seminal vesicles);
``subtract`` (a list of structure names) removes earlier structures from it (a lower-dose PTV
drawn without the boost PTV, as simultaneous-integrated-boost plans are contoured).
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)


def grid_axes(phantom: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Voxel-center coordinates (x, y, z) in mm of a synthetic phantom's CT grid."""
    spacing = np.asarray(phantom["voxel_mm"], dtype=float)
    size = np.asarray(phantom["size_mm"], dtype=float)
    center = np.asarray(phantom.get("grid_center_mm", [0.0, 0.0, 0.0]), dtype=float)
    dims = np.maximum(1, np.round(size / spacing).astype(int))
    axes = []
    for i in range(3):
        n = dims[i]
        axes.append(center[i] + (np.arange(n) - (n - 1) / 2.0) * spacing[i])
    return axes[0], axes[1], axes[2]


def rasterize(shape: dict, axes) -> np.ndarray:
    """Boolean mask in numpy (z, y, x) order for one shape description."""
    x, y, z = axes
    zz, yy, xx = np.meshgrid(z, y, x, indexing="ij")
    kind = shape["shape"]
    if kind == "ellipsoid":
        cx, cy, cz = shape["center"]
        rx, ry, rz = shape["radii"]
        return ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 + ((zz - cz) / rz) ** 2 <= 1.0
    if kind == "elliptic_cylinder":
        cx, cy = shape["center"][:2]
        rx, ry = shape["radii"][:2]
        inside = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1.0
        if "z_range" in shape:
            z0, z1 = shape["z_range"]
            inside &= (zz >= z0) & (zz <= z1)
        return inside
    raise ValueError(f"unknown phantom shape {kind!r}; use ellipsoid or elliptic_cylinder")


def synthetic_masks(phantom: dict) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Masks (name -> bool array, z/y/x) and the HU cube of a synthetic phantom."""
    axes = grid_axes(phantom)
    masks: dict[str, np.ndarray] = {}
    for shape in phantom["shapes"]:
        mask = rasterize(shape, axes)
        for part in shape.get("union", []):
            mask |= rasterize(part, axes)
        if "clip_to" in shape:
            mask &= masks[shape["clip_to"]]
        for other in shape.get("subtract", []):
            mask &= ~masks[other]
        if not mask.any():
            raise ValueError(f"phantom structure {shape['name']!r} has no voxel on the grid")
        masks[shape["name"]] = mask
    hu = np.full(masks[next(iter(masks))].shape, float(phantom.get("hu_outside", -1000.0)), dtype=np.float64)
    body = phantom.get("body", "BODY")
    hu[masks[body]] = float(phantom.get("hu_body", 0.0))
    for shape in phantom["shapes"]:
        if "hu" in shape:
            hu[masks[shape["name"]]] = float(shape["hu"])
    return masks, hu


def build_synthetic(phantom: dict, structures: list[dict[str, Any]]):
    """pyRadPlan CT and StructureSet of a synthetic phantom (structures give types and priorities)."""
    import SimpleITK as sitk
    from pyRadPlan.ct import validate_ct
    from pyRadPlan.cst import validate_cst, validate_voi

    masks, hu = synthetic_masks(phantom)
    x, y, z = grid_axes(phantom)
    spacing = tuple(float(s) for s in phantom["voxel_mm"])
    origin = (float(x[0]), float(y[0]), float(z[0]))
    image = sitk.GetImageFromArray(hu)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    ct = validate_ct(cube_hu=image)
    vois = []
    for spec in structures:
        if spec["name"] not in masks:
            raise ValueError(f"structure {spec['name']!r} has no shape in the phantom table")
        mask = sitk.GetImageFromArray(masks[spec["name"]].astype(np.uint8))
        mask.CopyInformation(image)
        voi = validate_voi(name=spec["name"], voi_type=spec["type"], mask=mask, ct_image=ct)
        if "overlap_priority" in spec:
            voi = voi.model_copy(update={"overlap_priority": int(spec["overlap_priority"])})
        vois.append(voi)
    return ct, validate_cst(vois, ct)


def phantom_source(phantom: dict) -> str:
    """"dicom", "matrad", "pyradplan:TG119" or "synthetic"."""
    if "dicom" in phantom:
        return "dicom"
    if "matrad" in phantom:
        return "matrad"
    return phantom.get("source", "synthetic")


def load_phantom(phantom: dict, structures: list[dict[str, Any]]):
    """(CT, StructureSet, info) for a case's phantom table; ``info`` says where a patient came from."""
    source = phantom_source(phantom)
    if source == "dicom":
        from .patient import load_dicom

        return load_dicom(phantom, structures)
    if source == "matrad":
        from .patient import load_matrad

        return load_matrad(phantom, structures)
    if source == "pyradplan:TG119":
        from pyRadPlan import load_tg119

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ct, cst = load_tg119()
        names = [v.name for v in cst.vois]
        missing = [s["name"] for s in structures if s["name"] not in names]
        if missing:
            raise ValueError(f"TG119 has no structure(s) {missing}; it has {names}")
        return ct, cst, {"phantom": "pyRadPlan TG119"}
    if source == "synthetic":
        ct, cst = build_synthetic(phantom, structures)
        return ct, cst, {"phantom": "synthetic"}
    raise ValueError(f"unknown phantom source {source!r}; use dicom = \"DIR\", matrad = \"FILE.mat\", "
                     f"source = \"pyradplan:TG119\" or source = \"synthetic\"")
