"""Matplotlib figures with labeled axes and units, readable at notebook size."""

from __future__ import annotations

from pathlib import Path

SCORE_PANELS = [("score", "score (lower is better)")]


def new_figure(figsize: tuple[float, float]):
    """A Figure outside pyplot: no global backend switch (notebooks keep their inline plots)."""
    from matplotlib.figure import Figure

    return Figure(figsize=figsize)


def _value(ev, key: str):
    return ev.score if key == "score" else ev.metrics.get(key)


def plot_trajectory(steps: list, path: Path, panels=SCORE_PANELS, references=(), title: str = "") -> Path:
    """One panel per (metric, label) of the run's StepRecords: every valid candidate as a dot,
    best so far as a line.

    ``references``: (name, Evaluation) pairs drawn as dashed lines (approved drugs).
    """
    fig = new_figure((4.4 * len(panels), 3.8))
    axes = fig.subplots(1, len(panels), squeeze=False)
    axes = axes[0]
    for ax, (key, label) in zip(axes, panels):
        xs, ys, best_x, best_y = [], [], [], []
        for rec in steps:
            for c in rec.candidates:
                value = _value(c, key)
                if value is not None and c.valid:
                    xs.append(rec.step)
                    ys.append(value)
            value = _value(rec.best, key) if rec.best.valid else None
            if value is not None:
                best_x.append(rec.step)
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
        if key == "goals_met":
            ax.yaxis.get_major_locator().set_params(integer=True)
    axes[0].legend(fontsize=7, loc="best")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path, dpi=110)


def save_figure(fig, path: Path, dpi: int = 110) -> Path:
    """Save as PNG with the one atomic writer (temporary file, fsync, rename)."""
    from simulators.files import atomic_writer

    with atomic_writer(path) as handle:
        fig.savefig(handle, dpi=dpi, format="png")
    return Path(path)
