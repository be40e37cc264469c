"""Matplotlib figures with labeled axes and units, readable at notebook size."""

from __future__ import annotations

from pathlib import Path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_molecule_trajectory(steps: list[dict], references, path: Path, title: str = "") -> Path:
    """Score, Vina and QED per step: every candidate as a dot, best so far as a line, approved drugs dashed."""
    plt = _pyplot()
    panels = [("score", "score (lower is better)"), ("vina", "Vina (kcal/mol)"), ("qed", "QED")]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for ax, (key, label) in zip(axes, panels):
        xs, ys, best_x, best_y = [], [], [], []
        for rec in steps:
            for c in rec["candidates"]:
                value = c.get("score") if key == "score" else (c.get("metrics") or {}).get(key)
                if value is not None and c.get("score") is not None:
                    xs.append(rec["step"])
                    ys.append(value)
            best = rec.get("best") or {}
            value = best.get("score") if key == "score" else (best.get("metrics") or {}).get(key)
            if value is not None:
                best_x.append(rec["step"])
                best_y.append(value)
        ax.scatter(xs, ys, s=14, alpha=0.5, color="tab:blue", label="candidates")
        ax.plot(best_x, best_y, color="tab:red", lw=2, label="best so far")
        for i, (name, ev) in enumerate(references or []):
            value = ev.score if key == "score" else ev.metrics.get(key)
            if ev.valid and value is not None:
                ax.axhline(value, ls="--", lw=1, color=f"C{(i + 2) % 10}", label=name)
        ax.set_xlabel("step")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, loc="best")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path, dpi=110)


def save_figure(fig, path: Path, dpi: int = 110) -> Path:
    """Save atomically (temporary file, then rename) and close the figure."""
    plt = _pyplot()
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=dpi)
    plt.close(fig)
    tmp.replace(path)
    return path
