"""``report_sweep(out_dir)``: one table and one figure for a whole sweep.

Writes into ``out_dir``:
- ``summary.csv``: one row per run (finished, failed, interrupted or pending). A failed run
  (an exception ``max_attempts`` times, or optimize() stopped on LLM errors: ``engine_error``)
  is listed as failed with its error and no best values: it is not a result.
- ``targets.csv`` (molecule sweeps): per target, the best molecule of the finished runs
  against the best approved reference drug docked with the same settings.
- ``references.csv``: the reference drugs' Vina and QED per target.
- ``summary.png``: (a) best Vina per target with the reference drug, (b) QED per target,
  (c) top-10 AUC per method.

Top-10 AUC follows PMO (Gao et al., NeurIPS 2022): after each evaluation n = 1..B take the
mean of the 10 best scores seen so far (fewer while fewer exist), carry the last value to the
budget B when a run stops early, and average over B (area under the curve / B). tgsci scores
are minimized, so this AUC is in score units and lower is better. B is the run's
``max_evaluations`` or, without one, 1 + max_steps x n_proposals.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .metrics import top_k_auc
from .plots import new_figure, save_figure
from .run_report import ReportError  # one error type for run and sweep reports
from .rundir import csv_text, finite_float, read_csv, read_json, read_jsonl, write_text_atomic

RUN_COLUMNS = [
    "name", "kind", "target", "start", "seed", "method", "status", "best_score", "best_vina", "best_qed",
    "best_smiles", "steps", "evaluations", "stop_reason", "prompt_tokens", "completion_tokens", "tokens",
    "llm_calls", "cost_usd", "wall_s", "dockings", "attempts", "failures", "auc_top10", "ref_best_vina", "error",
]
TARGET_COLUMNS = [
    "target", "runs", "finished", "failed", "best_score", "best_smiles", "best_vina", "best_qed", "best_method",
    "ref_name", "ref_vina", "ref_qed", "delta_vina",
]


@dataclass
class SweepReport:
    rows: list[dict]
    targets: list[dict] = field(default_factory=list)
    references: list[dict] = field(default_factory=list)
    paths: dict[str, Path] = field(default_factory=dict)

    def by_status(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.rows:
            out[r["status"]] = out.get(r["status"], 0) + 1
        return out


def _budget_size(budget: dict) -> int:
    if budget.get("max_evaluations"):
        return int(budget["max_evaluations"])
    return 1 + int(budget.get("max_steps", 0)) * int(budget.get("n_proposals", 1))


def _run_row(out: Path, run: dict, status_entry: dict) -> tuple[dict, list[dict]]:
    from .sweep import RUN_FILE, run_status

    run_dir = out / run["name"]
    state, summary = run_status(run_dir)
    records = list(read_jsonl(run_dir / "trajectory.jsonl"))
    try:
        run_file = read_json(run_dir / RUN_FILE)
    except (OSError, ValueError):
        run_file = {"attempts": []}
    attempts = run_file.get("attempts", [])
    wall = 0.0
    for a in attempts:
        if a.get("optimize_s") is not None:
            wall += float(a["optimize_s"])
        elif a.get("started") and a.get("updated"):  # an attempt that was killed: up to its last step
            wall += float(a["updated"]) - float(a["started"])
    usage: dict = {}
    if summary:
        usage = summary.get("usage", {})
    else:
        for rec in records:
            for k, v in (rec.get("usage") or {}).items():
                usage[k] = usage.get(k, 0) + v
    recorded = status_entry.get("status")
    if state == "finished":
        status = "finished"
    elif state == "engine_error" or recorded == "failed":
        status = "failed"
    elif state == "interrupted":
        status = "interrupted"
    else:
        status = "pending"
    error = ""
    if status == "failed":
        if state == "engine_error":
            error = summary.get("stop_reason", "")
        errors = status_entry.get("errors") or []
        if errors and not error:
            error = str(errors[-1]).strip().splitlines()[0] if str(errors[-1]).strip() else ""
    row = {
        "name": run["name"], "kind": run["kind"], "target": run.get("target") or run.get("case"),
        "start": run["start"], "seed": run["seed"], "method": run["method"], "status": status,
        "best_score": None, "best_vina": None, "best_qed": None, "best_smiles": None,
        "steps": max((r["step"] for r in records), default=None) if records else None,
        "evaluations": sum(1 for r in records for c in r.get("candidates", []) if c.get("simulated", True)) if records else None,
        "stop_reason": (summary or {}).get("stop_reason"),
        "prompt_tokens": usage.get("prompt_tokens", 0), "completion_tokens": usage.get("completion_tokens", 0),
        "tokens": usage.get("prompt_tokens", 0) + usage.get("completion_tokens", 0),
        "llm_calls": usage.get("calls", 0), "cost_usd": round(float(usage.get("cost_usd", 0.0)), 6),
        "wall_s": round(wall, 2) if attempts else None,
        "dockings": sum(int(a.get("dockings") or 0) for a in attempts) if attempts else None,
        "attempts": max(int(status_entry.get("attempts", 0)), len(attempts)), "failures": status_entry.get("failures", 0),
        "auc_top10": None, "ref_best_vina": None, "error": error,
    }
    if status == "finished":
        best = summary.get("best") or {}
        metrics = best.get("metrics") or {}
        row.update(
            best_score=best.get("score"), best_vina=metrics.get("vina"), best_qed=metrics.get("qed"),
            best_smiles=best.get("value"), steps=summary.get("steps"), evaluations=summary.get("evaluations"),
        )
        scores = [c.get("score") for r in records for c in r.get("candidates", []) if c.get("simulated", True)]
        auc = top_k_auc(scores, _budget_size(run["budget"]))
        row["auc_top10"] = round(auc, 4) if auc is not None else None
    refs = read_csv(run_dir / "references.csv")
    return row, refs


def _dock_references(run: dict) -> list[dict]:
    """Reference drugs of the run's target docked with the run's settings (cached: cheap when repeated)."""
    from .sweep import build_objective

    objective = build_objective({**run, "objective": {**run.get("objective", {}), "compare_references": True}})
    try:
        return [
            {"name": n, "smiles": e.value, "score": e.score, "vina": e.metrics.get("vina"), "qed": e.metrics.get("qed"), "error": e.error}
            for n, e in objective.references()
        ]
    finally:
        objective.close()


def report_sweep(out_dir, dock_references: bool = True, plot: bool = True) -> SweepReport:
    """Write summary.csv, targets.csv, references.csv and summary.png for the sweep in ``out_dir``.

    Reference drugs are read from the runs' references.csv when they docked them
    (objective.compare_references), else docked here when ``dock_references`` (with the same
    settings as the runs; the shared cache makes a repeat cost nothing).
    """
    out = Path(out_dir)
    try:
        sweep = read_json(out / "sweep.json")
    except FileNotFoundError:
        raise ReportError(f"{out} is not a sweep directory (no sweep.json); run the sweep first") from None
    try:
        status = read_json(out / "status.json").get("runs", {})
    except (OSError, ValueError):
        status = {}
    rows, refs_by_target, first_run = [], {}, {}
    for run in sweep["runs"]:
        row, refs = _run_row(out, run, status.get(run["name"], {}))
        rows.append(row)
        if run["kind"] == "molecule":
            first_run.setdefault(row["target"], run)
            if refs and row["target"] not in refs_by_target:
                refs_by_target[row["target"]] = [{**r, "source": f"{run['name']}/references.csv"} for r in refs]
    if dock_references:
        for target, run in first_run.items():
            if target not in refs_by_target:
                refs_by_target[target] = [{**r, "source": "docked by report_sweep"} for r in _dock_references(run)]
    references = [{"target": t, **r} for t, rs in refs_by_target.items() for r in rs]
    best_ref = {}
    for t, rs in refs_by_target.items():
        valid = [r for r in rs if finite_float(r.get("vina")) is not None]
        if valid:
            best_ref[t] = min(valid, key=lambda r: finite_float(r["vina"]))
    for row in rows:
        ref = best_ref.get(row["target"])
        row["ref_best_vina"] = finite_float(ref["vina"]) if ref else None
    targets = _target_rows(rows, best_ref) if sweep.get("kind", "molecule") == "molecule" else []

    report = SweepReport(rows, targets, references)
    columns = RUN_COLUMNS if sweep.get("kind", "molecule") == "molecule" else [
        c if c != "best_smiles" else "best_value" for c in RUN_COLUMNS if c not in ("best_vina", "best_qed", "ref_best_vina")
    ]
    if sweep.get("kind", "molecule") != "molecule":
        for row in rows:
            row["best_value"] = row.pop("best_smiles")
    report.paths["summary.csv"] = out / "summary.csv"
    write_text_atomic(out / "summary.csv", csv_text(rows, columns))
    if targets:
        report.paths["targets.csv"] = out / "targets.csv"
        write_text_atomic(out / "targets.csv", csv_text(targets, TARGET_COLUMNS))
    if references:
        report.paths["references.csv"] = out / "references.csv"
        write_text_atomic(out / "references.csv", csv_text(references, ["target", "name", "smiles", "vina", "qed", "score", "error", "source"]))
    if plot:
        report.paths["summary.png"] = plot_sweep(rows, best_ref, out / "summary.png", title=sweep.get("name") or out.name)
    return report


def _target_rows(rows: list[dict], best_ref: dict) -> list[dict]:
    out = []
    for target in dict.fromkeys(r["target"] for r in rows):
        mine = [r for r in rows if r["target"] == target]
        done = [r for r in mine if r["status"] == "finished" and r["best_score"] is not None]
        best = min(done, key=lambda r: r["best_score"]) if done else None
        best_vina = min((r["best_vina"] for r in done if r["best_vina"] is not None), default=None)
        ref = best_ref.get(target)
        ref_vina = finite_float(ref["vina"]) if ref else None
        out.append({
            "target": target, "runs": len(mine), "finished": len(done),
            "failed": sum(1 for r in mine if r["status"] == "failed"),
            "best_score": best["best_score"] if best else None, "best_smiles": best["best_smiles"] if best else None,
            "best_vina": best_vina, "best_qed": best["best_qed"] if best else None, "best_method": best["method"] if best else None,
            "ref_name": ref["name"] if ref else None, "ref_vina": ref_vina, "ref_qed": finite_float(ref["qed"]) if ref else None,
            "delta_vina": round(best_vina - ref_vina, 3) if best_vina is not None and ref_vina is not None else None,
        })
    return out


def plot_sweep(rows: list[dict], best_ref: dict, path: Path, title: str = "") -> Path:
    """Paper-style panels; failed runs are counted under the x labels, never plotted as values."""
    from matplotlib import rc_context

    with rc_context({"font.size": 9, "axes.spines.top": False, "axes.spines.right": False}):
        return _plot_sweep(rows, best_ref, path, title)


def _plot_sweep(rows: list[dict], best_ref: dict, path: Path, title: str) -> Path:
    molecule = any(r["kind"] == "molecule" for r in rows)
    subjects = list(dict.fromkeys(r["target"] for r in rows))
    methods = sorted(dict.fromkeys(r["method"] for r in rows))
    colors = {m: c for m, c in zip(methods, ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"])}
    failed = {s: sum(1 for r in rows if r["target"] == s and r["status"] == "failed") for s in subjects}
    labels = [f"{s}\n({failed[s]} failed)" if failed[s] else s for s in subjects]
    done = [r for r in rows if r["status"] == "finished"]

    panels = [("best_vina", "best Vina (kcal/mol)\nlower is better"), ("best_qed", "QED of the best molecule\nhigher is better")] if molecule \
        else [("best_score", "best score\nlower is better")]
    width = max(4.0, 0.45 * len(subjects) + 1.5)
    fig = new_figure((width * len(panels) + 3.5, 3.6))
    axes = fig.subplots(1, len(panels) + 1, gridspec_kw={"width_ratios": [width] * len(panels) + [3.0]})
    n_methods = max(1, len(methods))
    for ax, (key, ylabel), letter in zip(axes, panels, "abc"):
        for j, m in enumerate(methods):
            xs, ys = [], []
            for r in done:
                if r["method"] == m and r[key] is not None:
                    xs.append(subjects.index(r["target"]) + (j - (n_methods - 1) / 2) * 0.18)
                    ys.append(r[key])
            if xs:  # failed methods get no legend entry: they have no values
                ax.scatter(xs, ys, s=16, color=colors[m], alpha=0.8, label=m, zorder=3, edgecolors="none")
        ref_key = "vina" if key == "best_vina" else "qed"
        ref_x = [i for i, s in enumerate(subjects) if s in best_ref and finite_float(best_ref[s].get(ref_key)) is not None]
        if key != "best_score" and ref_x:
            ax.scatter(ref_x, [finite_float(best_ref[subjects[i]][ref_key]) for i in ref_x], marker="_", s=260, color="black",
                       linewidths=2, label="reference drug (best Vina)", zorder=4)
        ax.set_xticks(range(len(subjects)))
        ax.set_xticklabels(labels, rotation=60 if len(subjects) > 6 else 0, ha="right" if len(subjects) > 6 else "center", fontsize=8)
        ax.set_xlim(-0.6, len(subjects) - 0.4)
        ax.set_ylabel(ylabel)
        ax.grid(axis="y", alpha=0.3)
        ax.set_title(f"({letter})", loc="left", fontweight="bold")
        if key == "best_qed":
            ax.set_ylim(0, 1)
    ax = axes[-1]
    data = [[r["auc_top10"] for r in done if r["method"] == m and r["auc_top10"] is not None] for m in methods]
    present = [(m, d) for m, d in zip(methods, data) if d]
    if present:
        ax.boxplot([d for _, d in present], positions=range(len(present)), widths=0.5, showfliers=False,
                   medianprops={"color": "black"})
        for i, (m, d) in enumerate(present):
            ax.scatter([i + (k % 5 - 2) * 0.04 for k in range(len(d))], d, s=12, color=colors[m], zorder=3, edgecolors="none")
        ax.set_xticks(range(len(present)))
        ax.set_xticklabels([m for m, _ in present])
    else:
        ax.text(0.5, 0.5, "no finished runs", ha="center", va="center", transform=ax.transAxes)
    ax.set_ylabel("top-10 AUC of score\n(PMO, per evaluation budget; lower is better)")
    ax.set_title(f"({'abc'[len(panels)]})", loc="left", fontweight="bold")
    ax.grid(axis="y", alpha=0.3)
    handles, names = axes[0].get_legend_handles_labels()
    if handles:
        axes[0].legend(handles, names, fontsize=7, frameon=False, loc="best")
    n_failed = sum(1 for r in rows if r["status"] == "failed")
    n_other = sum(1 for r in rows if r["status"] not in ("finished", "failed"))
    suptitle = f"{title}: {len(done)} finished, {n_failed} failed" + (f", {n_other} not finished" if n_other else "")
    fig.suptitle(suptitle, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path, dpi=150)
