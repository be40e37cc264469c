"""Plan figures: DVH of start vs best with the goals, and the dose on a slice with contours."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from simulators.dose import metrics as dvh

from ...plots import save_figure


def plot_dvh(engine, path: Path, start_dose: Optional[np.ndarray], best_dose: np.ndarray) -> Path:
    """DVH of every structure, best (solid) vs start (dashed), with the clinical goals as triangles."""
    case = engine.case
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9.5, 5.5), dpi=110)
    ax = fig.add_subplot(111)
    top = float(max(best_dose.max(), start_dose.max() if start_dose is not None else 0.0)) * 1.02
    levels = np.linspace(0.0, max(top, 1.0), 400)
    colors = _colors(len(case.structures))
    grid = case.plan.judge_grid  # the DVH the goals are judged on
    for s, color in zip(case.structures, colors):
        d = engine.structure_dose(best_dose, s.name, grid)
        ax.plot(levels, dvh.dvh_curve(d, levels), color=color, lw=1.8, label=f"{s.name} (best)")
        if start_dose is not None:
            d0 = engine.structure_dose(start_dose, s.name, grid)
            ax.plot(levels, dvh.dvh_curve(d0, levels), color=color, lw=1.2, ls="--", label=f"{s.name} (start)")
    for g in case.goals:
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
    ax.set_title(f"{case.name}: DVH, best (solid) vs start (dashed); {engine.grid_label(grid)}; triangles = goals", fontsize=9)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    fig.tight_layout()
    return save_figure(fig, path, dpi=100)

def plot_dose_slice(engine, path: Path, dose: np.ndarray) -> Path:
    """The dose on the target's central axial slice over the CT, with every structure's contour."""
    case = engine.case
    from matplotlib.figure import Figure

    data = engine.data
    nx, ny, nz = data.grid_dims
    cube = dose.reshape(nz, ny, nx)
    target = data.masks[case.target]
    zc = int(np.median(np.unravel_index(target, (nz, ny, nx))[0]))
    ox, oy, oz = data.grid_origin
    sx, sy, sz = data.grid_spacing
    extent = (ox - sx / 2, ox + (nx - 0.5) * sx, oy + (ny - 0.5) * sy, oy - sy / 2)
    fig = Figure(figsize=(7.5, 6.5), dpi=110)
    ax = fig.add_subplot(111)
    ax.imshow(data.ct_hu[zc], cmap="gray", vmin=-1000, vmax=1000, extent=extent, interpolation="nearest")
    rx = case.prescription_gy
    shown = np.ma.masked_less(cube[zc], 0.05 * rx)
    im = ax.imshow(shown, cmap="jet", alpha=0.45, vmin=0, vmax=1.1 * rx, extent=extent, interpolation="nearest")
    colors = _colors(len(case.structures))
    xs = ox + np.arange(nx) * sx
    ys = oy + np.arange(ny) * sy
    handles = []
    for s, color in zip(case.structures, colors):
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
    for s in case.structures:
        union[data.masks[s.name]] = True
    ys_, xs_ = np.nonzero(union.reshape(nz, ny, nx).any(axis=0))
    if xs_.size:
        ax.set_xlim(ox + (xs_.min() - 2) * sx, ox + (xs_.max() + 2) * sx)
        ax.set_ylim(oy + (ys_.max() + 2) * sy, oy + (ys_.min() - 2) * sy)
    cb = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    cb.set_label("Dose (Gy)")
    ax.set_xlabel("x (mm)")
    ax.set_ylabel("y (mm)")
    ax.set_title(f"{case.name}: best plan, axial slice z = {oz + zc * sz:.0f} mm (dose grid {case.plan.dose_grid_mm:g} mm)", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path, dpi=100)


def _colors(n: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return [cmap(i % 10) for i in range(n)]
