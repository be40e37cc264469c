"""Pareto mode: trade-offs between several metrics laid out instead of one weighted score.

An objective in Pareto mode names its ``Axis`` list (metric, direction, label) and a reference
point. Everything here is kind-agnostic and works on ``Evaluation.metrics``:

- ``front``: the non-dominated valid evaluations (one per value);
- ``hypervolume``: the volume dominated by a set and bounded by the reference point, with Optuna's
  exact algorithm (2-D sweep, 3-D O(N^2), WFG above), each axis turned into a loss first;
- ``knee``: the front point closest to the ideal point, each axis scaled from the front's best to
  the reference point (a pick for a chemist who wants no single metric to dominate);
- ``placement`` and ``largest_gap``: the words TGD reads (where a candidate sits relative to the
  front, and where the front is thinnest).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Optional, Sequence

from .objectives.base import Evaluation


@dataclass(frozen=True)
class Axis:
    metric: str
    direction: str  # "min" or "max"
    label: str
    unit: str = ""
    fmt: str = ".2f"

    def loss(self, value: float) -> float:
        """The value as a loss (lower is better), for dominance and hypervolume."""
        return value if self.direction == "min" else -value

    def text(self, value: float) -> str:
        return f"{self.label} {format(value, self.fmt)}{(' ' + self.unit) if self.unit else ''}"


def _point(ev: Evaluation, axes: Sequence[Axis]) -> Optional[tuple[float, ...]]:
    if not ev.valid:
        return None
    values = [ev.metrics.get(a.metric) for a in axes]
    if any(v is None or not isinstance(v, (int, float)) or not math.isfinite(v) for v in values):
        return None
    return tuple(a.loss(float(v)) for a, v in zip(axes, values))


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """Loss vector ``a`` is no worse than ``b`` everywhere and better somewhere."""
    return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))


def front(evaluations: Iterable[Evaluation], axes: Sequence[Axis]) -> list[Evaluation]:
    """The non-dominated valid evaluations, one per value, in the order first seen."""
    seen: dict[str, tuple[Evaluation, tuple[float, ...]]] = {}
    for ev in evaluations:
        p = _point(ev, axes)
        if p is not None and ev.value not in seen:
            seen[ev.value] = (ev, p)
    items = list(seen.values())
    return [ev for ev, p in items if not any(dominates(q, p) for _, q in items)]


def hypervolume(evaluations: Iterable[Evaluation], axes: Sequence[Axis], reference: Sequence[float]) -> float:
    """Hypervolume of the evaluations' points against ``reference`` (given in the metrics' own
    units and directions); points not better than the reference on every axis add nothing."""
    import numpy as np
    from optuna._hypervolume import compute_hypervolume

    ref = np.array([a.loss(r) for a, r in zip(axes, reference)], dtype=float)
    points = [p for p in (_point(ev, axes) for ev in evaluations) if p is not None and all(x < r for x, r in zip(p, ref))]
    if not points:
        return 0.0
    return float(compute_hypervolume(np.array(points, dtype=float), ref))


def _scaled(p: Sequence[float], ideal: Sequence[float], ref: Sequence[float]) -> list[float]:
    return [(x - i) / (r - i) if r > i else 0.0 for x, i, r in zip(p, ideal, ref)]


def knee(members: Sequence[Evaluation], axes: Sequence[Axis], reference: Sequence[float]) -> Optional[Evaluation]:
    """The front member closest to the ideal point (each axis scaled between the front's best value and the reference)."""
    points = [(ev, _point(ev, axes)) for ev in members]
    points = [(ev, p) for ev, p in points if p is not None]
    if not points:
        return None
    ref = [a.loss(r) for a, r in zip(axes, reference)]
    ideal = [min(p[i] for _, p in points) for i in range(len(axes))]
    return min(points, key=lambda ep: math.dist(_scaled(ep[1], ideal, ref), [0.0] * len(axes)))[0]


def placement(ev: Evaluation, members: Sequence[Evaluation], axes: Sequence[Axis], name=lambda e: e.value) -> str:
    """Where ``ev`` sits: "dominated by X (better on A and B)" or "on the front, between X and Y on A"."""
    p = _point(ev, axes)
    if p is None:
        return ""
    others = [(m, _point(m, axes)) for m in members if m.value != ev.value]
    others = [(m, q) for m, q in others if q is not None]
    better = [(m, q) for m, q in others if dominates(q, p)]
    if better:
        m, q = min(better, key=lambda mq: sum(y - x for x, y in zip(mq[1], p)))  # the nearest dominating point
        where = [a.label for a, x, y in zip(axes, q, p) if x < y]
        return f"dominated by {name(m)} ({' and '.join(where)} better there: {', '.join(a.text(m.metrics[a.metric]) for a in axes)})"
    first = axes[0]
    lower = [(m, q) for m, q in others if q[0] < p[0]]
    upper = [(m, q) for m, q in others if q[0] > p[0]]
    left = max(lower, key=lambda mq: mq[1][0])[0] if lower else None
    right = min(upper, key=lambda mq: mq[1][0])[0] if upper else None
    if left is None and right is None:
        return "on the front (alone)"
    if left is None or right is None:
        end = "best" if left is None else "worst"
        return f"on the front, its {end} point on {first.label} (next: {name(left or right)})"
    return f"on the front, between {name(left)} and {name(right)} on {first.label}"


def largest_gap(members: Sequence[Evaluation], axes: Sequence[Axis], reference: Sequence[float]) -> Optional[tuple[Evaluation, Evaluation]]:
    """The two neighbours on the front (sorted by the first axis) farthest apart, axes scaled as in ``knee``."""
    points = sorted(((ev, _point(ev, axes)) for ev in members), key=lambda ep: ep[1][0] if ep[1] else math.inf)
    points = [(ev, p) for ev, p in points if p is not None]
    if len(points) < 2:
        return None
    ref = [a.loss(r) for a, r in zip(axes, reference)]
    ideal = [min(p[i] for _, p in points) for i in range(len(axes))]
    pairs = zip(points, points[1:])
    (a, pa), (b, pb) = max(pairs, key=lambda pair: math.dist(_scaled(pair[0][1], ideal, ref), _scaled(pair[1][1], ideal, ref)))
    return a, b


def trade_off_text(ev: Evaluation, members: Sequence[Evaluation], axes: Sequence[Axis], reference: Sequence[float], brief: bool,
                   what: str = "candidates") -> str:
    """The lines a loss gets in Pareto mode: the candidate's place on the front and the front's largest gap."""
    if not ev.valid or not members:
        return ""
    names = ", ".join(a.label for a in axes)
    where = placement(ev, members, axes)
    gap = largest_gap(members, axes, reference)

    def point(m: Evaluation) -> str:
        return f"{m.value} ({', '.join(a.text(m.metrics[a.metric]) for a in axes)})"

    lines = [f"Trade-off on {names} (Pareto front of {len(members)} {what}): this one is {where}."]
    if gap is not None:
        if brief:
            lines.append(f"Largest gap of the front: between {gap[0].value} and {gap[1].value}.")
        else:
            lines.append(f"The front's largest gap lies between {point(gap[0])} and {point(gap[1])}: a candidate between "
                         "them, or one better than both, widens the front the most.")
    return "\n".join(lines)


class ParetoTracker:
    """The loop's view of a Pareto-mode run: after each step the front, its hypervolume (what
    "improved" means: patience counts steps without a larger hypervolume) and the knee, which the
    loop records as the run's best. The objective is shown the front (``see_front``) for its words."""

    def __init__(self, objective) -> None:
        self.objective = objective
        self.axes = objective.pareto_axes()
        self.reference = objective.reference_point()
        self.hv = 0.0

    def update(self, evaluations: Sequence[Evaluation]) -> tuple[Optional[Evaluation], float]:
        members = front(evaluations, self.axes)
        self.objective.see_front(members)
        self.hv = hypervolume(members, self.axes, self.reference)
        return knee(members, self.axes, self.reference), self.hv

    def curve(self, steps) -> list[float]:
        """Hypervolume after each recorded step (steps: the run record's, in order)."""
        return hypervolume_curve(steps, self.axes, self.reference)

    def summary(self, evaluations: Sequence[Evaluation]) -> dict:
        """What the run summary keeps: the axes, the reference point, the hypervolume, the front and its knee."""
        members = front(evaluations, self.axes)
        best = knee(members, self.axes, self.reference)
        return {"axes": [{"metric": a.metric, "direction": a.direction, "label": a.label} for a in self.axes],
                "reference": list(self.reference), "hypervolume": hypervolume(members, self.axes, self.reference),
                "front": [m.value for m in members], "knee": best.value if best else None}


def hypervolume_curve(steps, axes: Sequence[Axis], reference: Sequence[float]) -> list[float]:
    """Hypervolume after each step record (the loop's own numbers), in order."""
    seen: list[Evaluation] = []
    out = []
    for rec in steps:
        seen += rec.candidates
        out.append(hypervolume(front(seen, axes), axes, reference))
    return out


def axes_of(summary_pareto: dict) -> list[Axis]:
    """The axes a run summary recorded (``ParetoTracker.summary``)."""
    return [Axis(a["metric"], a["direction"], a.get("label", a["metric"])) for a in summary_pareto["axes"]]


def write_front_files(objective, run_dir, result, reference_label: str = "references", point_name=lambda m: m.value) -> list[str]:
    """front.csv (the front's members, the knee flagged), front.png and hypervolume.png of a finished
    Pareto-mode run. The front and its figure use the confirmed numbers where the run has them
    (``Confirmation``); the hypervolume curve is the loop's own."""
    from pathlib import Path

    from simulators.files import write_text_atomic

    from .plots import plot_front, plot_hypervolume
    from .tables import csv_text

    run_dir = Path(run_dir)
    axes, reference = objective.pareto_axes(), objective.reference_point()
    confirmed = {c.value: c for c in result.confirmed.candidates} if result.confirmed is not None else {}
    evaluations = [confirmed.get(e.value, e) for e in result.evaluations]
    members = front(evaluations, axes)
    best = knee(members, axes, reference)
    extra = [k for k in ("vina_single", "vina_spread") if any(k in m.metrics for m in members)]
    rows = [{"value": point_name(m), **{a.metric: m.metrics.get(a.metric) for a in axes}, "score": m.score,
             "knee": best is not None and m.value == best.value, "confirmed": m.value in confirmed,
             **{k: m.metrics.get(k) for k in extra}} for m in members]
    write_text_atomic(run_dir / "front.csv", csv_text(rows, ["value", *(a.metric for a in axes), "score", "knee", "confirmed", *extra]))
    refs = result.confirmed.references if result.confirmed is not None and result.confirmed.references else result.references
    reference_text = ", ".join(f"{a.label} {r:g}" for a, r in zip(axes, reference))
    plot_front(evaluations, members, axes, run_dir / "front.png", refs, best, title=objective.describe_short(),
               reference_label=reference_label)
    plot_hypervolume({"this run": hypervolume_curve(result.steps, axes, reference)}, run_dir / "hypervolume.png", reference_text)
    return ["front.csv", "front.png", "hypervolume.png"]


class ParetoMode:
    """The ``objectives.base.Pareto`` capability for a domain objective: its axes and reference point
    (none: the run optimizes the one score), the last front the loop showed it, and what it adds to
    the loss and to the run's files in that mode."""

    _axes: list = []
    _reference: list = []
    _front: list = []

    def set_pareto(self, axes: Sequence[Axis], reference: Sequence[float]) -> None:
        self._axes, self._reference, self._front = list(axes), list(reference), []

    def pareto_axes(self) -> list:
        """The axes of Pareto mode; [] when the run optimizes the one score."""
        return list(self._axes)

    def reference_point(self) -> list[float]:
        return list(self._reference)

    def see_front(self, members: list[Evaluation]) -> None:
        self._front = list(members)

    def trade_off(self, ev: Evaluation, brief: bool, what: str) -> str:
        """The trade-off lines of the loss ('' outside Pareto mode)."""
        return trade_off_text(ev, self._front, self._axes, self._reference, brief, what) if self._axes else ""

    def front_files(self, run_dir, result, reference_label: str) -> list[str]:
        """front.csv, front.png, hypervolume.png in Pareto mode ([] outside it)."""
        return write_front_files(self, run_dir, result, reference_label) if self._axes else []
