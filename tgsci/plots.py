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


def plot_front(evaluations: list, members: list, axes: list, path: Path, references=(), knee=None, title: str = "",
               reference_label: str = "references") -> Path:
    """The Pareto front: every valid candidate faded, the front's members solid and joined, the knee
    circled, references (approved drugs, reference plans: ``reference_label``) as black stars. Two metrics: one scatter; three: the three
    pairwise panels; more: the first metric against each other one (a member of a front in more than two
    metrics may look dominated in one panel: the figure says so)."""
    from itertools import combinations

    pairs = list(combinations(range(len(axes)), 2)) if len(axes) <= 3 else [(0, j) for j in range(1, len(axes))]
    fig = new_figure((4.4 * len(pairs), 4.0))
    panels = fig.subplots(1, len(pairs), squeeze=False)[0]
    on_front = {m.value for m in members}
    valid = [e for e in evaluations if e.valid and all(e.metrics.get(a.metric) is not None for a in axes)]
    for ax, (i, j) in zip(panels, pairs):
        xi, yj = axes[i], axes[j]
        rest = [e for e in valid if e.value not in on_front]
        ax.scatter([e.metrics[xi.metric] for e in rest], [e.metrics[yj.metric] for e in rest], s=14, color="tab:blue",
                   alpha=0.25, label="dominated")
        front_pts = sorted((m.metrics[xi.metric], m.metrics[yj.metric]) for m in members)
        style = "o-" if len(axes) == 2 else "o"  # a front of more metrics is not a line in one panel
        ax.plot([p[0] for p in front_pts], [p[1] for p in front_pts], style, color="tab:red", ms=5, lw=1, label="Pareto front")
        if knee is not None and knee.valid:
            ax.scatter([knee.metrics[xi.metric]], [knee.metrics[yj.metric]], s=140, facecolors="none", edgecolors="black",
                       linewidths=1.5, label="knee", zorder=5)
        refs = [(n, e) for n, e in references if e.valid and all(e.metrics.get(a.metric) is not None for a in (xi, yj))]
        if refs:
            ax.scatter([e.metrics[xi.metric] for _, e in refs], [e.metrics[yj.metric] for _, e in refs], marker="*", s=110,
                       color="black", label=reference_label, zorder=4)
            for n, e in refs:
                ax.annotate(n, (e.metrics[xi.metric], e.metrics[yj.metric]), fontsize=7, xytext=(3, 3), textcoords="offset points")
        for a, setter in ((xi, ax.set_xlabel), (yj, ax.set_ylabel)):
            setter(f"{a.label}{' (' + a.unit + ')' if a.unit else ''}, {'lower' if a.direction == 'min' else 'higher'} is better")
        ax.grid(alpha=0.3)
    panels[0].legend(fontsize=7, loc="best")
    note = f"front of all {len(axes)} metrics: in one panel a member can look dominated" if len(axes) > 2 else ""
    if title or note:
        fig.suptitle("\n".join(t for t in (title, note) if t), fontsize=10 if not note else 9)
    return save_figure(fig, path)


def plot_hypervolume(curves: dict, path: Path, reference: str = "", title: str = "") -> Path:
    """Hypervolume after each step, one line per run or method ({label: [hv per step]})."""
    fig = new_figure((5.2, 3.8))
    ax = fig.subplots()
    for label, curve in curves.items():
        ax.plot(range(len(curve)), curve, marker="o", ms=3, label=label)
    ax.set_xlabel("step")
    ax.set_ylabel("hypervolume (higher is better)")
    if reference:
        ax.set_title(f"reference point: {reference}", fontsize=8)
    if len(curves) > 1:
        ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)
