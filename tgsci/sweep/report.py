"""``report_sweep(out_dir)``: one table and one figure for a whole sweep, from the run records.

Writes into ``out_dir``:
- ``summary.csv``: one row per run (finished, failed, interrupted or pending). A failed run
  (an exception ``max_attempts`` times, or optimize() stopped on LLM errors: ``engine_error``)
  is listed as failed with its error and no best values: it is not a result.
- ``targets.csv`` (molecules; ``cases.csv`` for plans): per subject, the best design of the
  finished runs against the best reference design (approved drugs) recorded by the runs.
- ``references.csv``: the reference designs each subject's runs recorded.
- ``summary.png``: the domain's panels (molecules: best Vina with the reference drug, QED)
  and the top-10 AUC per method.

It reads and computes only: nothing is docked or planned here (a run records the references
it evaluated; a sweep with ``compare_references = false`` has none to show). Columns and
panels come from the sweep's domain (``tgsci.domains``).

Top-10 AUC follows PMO (Gao et al., NeurIPS 2022): after each evaluation n = 1..B take the
mean of the 10 best scores seen so far (fewer while fewer exist), carry the last value to the
budget B when a run stops early, and average over B (area under the curve / B). tgsci scores
are minimized, so this AUC is in score units and lower is better. B is the run's
``max_evaluations`` or, without one, 1 + max_steps x n_proposals.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from simulators.files import read_json, write_text_atomic

from ..domains import DEFAULT_KIND, Domain, get_domain
from ..metrics import top_k_auc
from ..plots import new_figure, save_figure
from ..record import RunDirError, run_state
from ..run_report import ReportError  # one error type for run and sweep reports
from ..tables import csv_text
from .task import RUN_FILE


@dataclass
class SweepReport:
    rows: list[dict]
    subjects: list[dict] = field(default_factory=list)
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


def _ref_metric(domain: Domain) -> str:
    """The metric that picks the best reference and is compared with the runs' best ("score" if none)."""
    return domain.reference_metrics[0] if domain.reference_metrics else "score"


def _value(ev, metric: str):
    return ev.score if metric == "score" else ev.metrics.get(metric)


def run_columns(domain: Domain) -> list[str]:
    return ["name", "kind", domain.subject, "start", "seed", "method", "status", "best_score", domain.value_column,
            *domain.summary_columns, "steps", "evaluations", "stop_reason", "prompt_tokens", "completion_tokens", "tokens",
            "llm_calls", "llm_retries", "rate_limited", "rate_wait_s", "cost_usd", "wall_s", "simulations", "attempts", "failures", "auc_top10", "auc_top5",
            "auc_top5_vs_ref", "hypervolume", f"ref_best_{_ref_metric(domain)}", "confirmed_repeats", "single_best_stays_best", "error"]


def subject_columns(domain: Domain) -> list[str]:
    metric = _ref_metric(domain)
    refs = [f"ref_{m}" for m in domain.reference_metrics] or ["ref_score"]
    return [domain.subject, "runs", "finished", "failed", "best_score", domain.value_column, *domain.summary_columns,
            "best_method", "ref_name", *refs, f"delta_{metric}"]


def _attempts(run_dir: Path) -> list[dict]:
    try:
        return read_json(run_dir / RUN_FILE).get("attempts", [])
    except (OSError, ValueError, AttributeError):
        return []


def _run_row(out: Path, run: dict, status_entry: dict, domain: Domain) -> tuple[dict, list]:
    """One summary row of a run, and the references its record holds."""
    run_dir = out / run["name"]
    try:
        state, record = run_state(run_dir)
    except RunDirError as exc:
        state, record = "unreadable", None
        status_entry = {**status_entry, "errors": [str(exc)]}
    attempts = _attempts(run_dir)
    wall = 0.0
    for a in attempts:
        if a.get("optimize_s") is not None:
            wall += float(a["optimize_s"])
        elif a.get("started") and a.get("updated"):  # an attempt that was killed: up to its last step
            wall += float(a["updated"]) - float(a["started"])
    recorded = status_entry.get("status")
    if state == "finished":
        status = "finished"
    elif state in ("engine_error", "unreadable") or recorded == "failed":
        status = "failed"
    else:
        status = "interrupted" if state == "interrupted" else "pending"
    error = ""
    if status == "failed":
        if state == "engine_error":
            error = record.summary.stop_reason
        errors = status_entry.get("errors") or []
        if errors and not error:
            error = str(errors[-1]).strip().splitlines()[0] if str(errors[-1]).strip() else ""
    usage = record.usage() if record is not None else None
    subject = run.get("subject") or run.get(domain.subject)
    row = {
        "name": run["name"], "kind": run["kind"], domain.subject: subject, "start": run["start"], "seed": run["seed"],
        "method": run["method"], "status": status, "best_score": None, domain.value_column: None,
        **{c: None for c in domain.summary_columns},
        "steps": max((r.step for r in record.steps), default=None) if record else None,
        "evaluations": record.evaluations() if record and record.steps else None,
        "stop_reason": record.summary.stop_reason if record and record.summary else None,
        "prompt_tokens": usage.prompt_tokens if usage else 0, "completion_tokens": usage.completion_tokens if usage else 0,
        "tokens": (usage.prompt_tokens + usage.completion_tokens) if usage else 0,
        "llm_calls": usage.calls if usage else 0, "llm_retries": usage.failed_calls if usage else 0,
        "rate_limited": usage.rate_limited if usage else 0, "rate_wait_s": round(usage.wait_seconds, 2) if usage else 0.0,
        "cost_usd": round(usage.cost_usd, 6) if usage else 0.0,
        "wall_s": round(wall, 2) if attempts else None,
        "simulations": sum(int(a.get("simulations") or 0) for a in attempts) if attempts else None,
        "attempts": max(int(status_entry.get("attempts", 0)), len(attempts)), "failures": status_entry.get("failures", 0),
        "auc_top10": None, "auc_top5": None, "auc_top5_vs_ref": None, "hypervolume": None, f"ref_best_{_ref_metric(domain)}": None, "confirmed_repeats": None, "single_best_stays_best": None,
        "error": error,
    }
    references = record.references if record is not None else []
    if status == "finished":
        best, references = record.summary.compared  # the confirmed numbers when the run has them
        confirmed = record.summary.confirmed
        if confirmed is not None:
            row.update(confirmed_repeats=confirmed.repeats, single_best_stays_best=confirmed.stays_best)
        row.update(best_score=best.score, steps=record.summary.steps, evaluations=record.summary.evaluations,
                   **{domain.value_column: best.value}, **domain.summary_values(best))
        scores = [c.score for r in record.steps for c in r.candidates if c.simulated]
        auc = top_k_auc(scores, _budget_size(run["budget"]))
        row["auc_top10"] = round(auc, 4) if auc is not None else None
        auc5 = top_k_auc(scores, _budget_size(run["budget"]), k=5)
        row["auc_top5"] = round(auc5, 4) if auc5 is not None else None
        if record.summary.pareto:
            row["hypervolume"] = round(record.summary.pareto["hypervolume"], 6)
        ref_scores = [e.score for _, e in references if e.valid]
        start = record.summary.start.score if record.summary.start.valid else None
        if auc5 is not None and ref_scores and start is not None and start > min(ref_scores):
            # scaled from the start (0) to the best reference (1): the share of the way to the drug, on average over the run
            row["auc_top5_vs_ref"] = round((start - auc5) / (start - min(ref_scores)), 4)
    return row, references


def report_sweep(out_dir, plot: bool = True) -> SweepReport:
    """Write summary.csv, <subjects>.csv, references.csv and summary.png for the sweep in ``out_dir``."""
    out = Path(out_dir)
    try:
        sweep = read_json(out / "sweep.json")
    except FileNotFoundError:
        raise ReportError(f"{out} is not a sweep directory (no sweep.json); run the sweep first") from None
    try:
        status = read_json(out / "status.json").get("runs", {})
    except (OSError, ValueError):
        status = {}
    domain = get_domain(sweep.get("kind", DEFAULT_KIND))
    metric = _ref_metric(domain)
    rows, refs = [], {}
    for run in sweep["runs"]:
        row, references = _run_row(out, run, status.get(run["name"], {}), domain)
        rows.append(row)
        if references and row[domain.subject] not in refs:
            refs[row[domain.subject]] = (run["name"], references)
    best_ref = {}
    for subject, (_, references) in refs.items():
        valid = [(n, e) for n, e in references if e.valid and _value(e, metric) is not None]
        if valid:
            best_ref[subject] = min(valid, key=lambda ne: _value(ne[1], metric))
    for row in rows:
        ref = best_ref.get(row[domain.subject])
        row[f"ref_best_{metric}"] = _value(ref[1], metric) if ref else None
    subjects = _subject_rows(rows, best_ref, domain)
    references = [{domain.subject: s, "name": n, "value": e.value, "score": e.score, **{m: e.metrics.get(m) for m in domain.reference_metrics},
                   "error": e.error, "source": f"{run_name}/summary.json"} for s, (run_name, rs) in refs.items() for n, e in rs]

    report = SweepReport(rows, subjects, references)
    report.paths["summary.csv"] = out / "summary.csv"
    write_text_atomic(out / "summary.csv", csv_text(rows, run_columns(domain)))
    name = f"{domain.subjects_key}.csv"
    report.paths[name] = out / name
    write_text_atomic(out / name, csv_text(subjects, subject_columns(domain)))
    if references:
        report.paths["references.csv"] = out / "references.csv"
        write_text_atomic(out / "references.csv", csv_text(references))
    comparison = _comparison_rows(out, sweep["runs"], domain)
    if comparison:
        report.paths[domain.comparison_file] = out / domain.comparison_file
        write_text_atomic(out / domain.comparison_file, csv_text(comparison))
        summary = domain.comparison_summary(comparison)
        if summary:
            name = domain.comparison_file.replace(".csv", "_summary.csv")
            report.paths[name] = out / name
            write_text_atomic(out / name, csv_text(summary))
    if plot:
        report.paths["summary.png"] = plot_sweep(rows, best_ref, domain, out / "summary.png", title=sweep.get("name") or out.name)
        curves = _hypervolume_curves(out, sweep["runs"], domain)
        if curves:
            from ..plots import plot_hypervolume

            report.paths["hypervolume.png"] = plot_hypervolume(curves, out / "hypervolume.png", title="mean hypervolume per step")
    return report


def _hypervolume_curves(out: Path, runs: list[dict], domain: Domain) -> dict[str, list[float]]:
    """Pareto-mode sweeps: per subject and method, the hypervolume after each step, averaged over
    starts and seeds (a run that stopped early keeps its last value)."""
    from ..pareto import axes_of, hypervolume_curve

    groups: dict[str, list[list[float]]] = {}
    for run in runs:
        try:
            state, record = run_state(out / run["name"])
        except RunDirError:
            continue
        if state != "finished" or not record.summary.pareto:
            continue
        pareto = record.summary.pareto
        label = f"{run.get('subject') or run.get(domain.subject)} {run['method']}"
        groups.setdefault(label, []).append(hypervolume_curve(record.steps, axes_of(pareto), pareto["reference"]))
    out_curves = {}
    for label, curves in groups.items():
        n = max(len(c) for c in curves)
        padded = [c + [c[-1]] * (n - len(c)) for c in curves]
        out_curves[label] = [sum(c[i] for c in padded) / len(padded) for i in range(n)]
    return out_curves


def _comparison_rows(out: Path, runs: list[dict], domain: Domain) -> list[dict]:
    """Per subject, the start and the reference designs once, and every finished run's best (plans: the paper's table)."""
    if not domain.comparison_file:
        return []
    rows, seen = [], set()
    for run in runs:
        try:
            state, record = run_state(out / run["name"])
        except RunDirError:
            continue
        if state != "finished":
            continue
        subject = run.get("subject") or run.get(domain.subject)
        rows += domain.comparison_rows(record, f"{run['method']} seed {run['seed']} start {run['start_index']}", context=subject not in seen)
        seen.add(subject)
    return rows


def _subject_rows(rows: list[dict], best_ref: dict, domain: Domain) -> list[dict]:
    metric = _ref_metric(domain)
    best_key = "best_score" if metric == "score" else f"best_{metric}"
    out = []
    for subject in dict.fromkeys(r[domain.subject] for r in rows):
        mine = [r for r in rows if r[domain.subject] == subject]
        done = [r for r in mine if r["status"] == "finished" and r["best_score"] is not None]
        best = min(done, key=lambda r: r["best_score"]) if done else None
        ref = best_ref.get(subject)
        row = {domain.subject: subject, "runs": len(mine), "finished": len(done), "failed": sum(1 for r in mine if r["status"] == "failed"),
               "best_method": best["method"] if best else None, "ref_name": ref[0] if ref else None}
        for key in ["best_score", domain.value_column, *domain.summary_columns]:
            row[key] = best[key] if best else None
        for m in domain.reference_metrics or ("score",):
            row[f"ref_{m}"] = _value(ref[1], m) if ref else None
        mine_value, ref_value = row.get(best_key), row.get(f"ref_{metric}")
        row[f"delta_{metric}"] = round(mine_value - ref_value, 3) if mine_value is not None and ref_value is not None else None
        out.append(row)
    return out


def plot_sweep(rows: list[dict], best_ref: dict, domain: Domain, path: Path, title: str = "") -> Path:
    """Paper-style panels; failed runs are counted under the x labels, never plotted as values."""
    from matplotlib import rc_context

    with rc_context({"font.size": 9, "axes.spines.top": False, "axes.spines.right": False}):
        return _plot_sweep(rows, best_ref, domain, path, title)


def _plot_sweep(rows: list[dict], best_ref: dict, domain: Domain, path: Path, title: str) -> Path:
    key_of = domain.subject
    subjects = list(dict.fromkeys(r[key_of] for r in rows))
    methods = sorted(dict.fromkeys(r["method"] for r in rows))
    colors = {m: c for m, c in zip(methods, ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"])}
    failed = {s: sum(1 for r in rows if r[key_of] == s and r["status"] == "failed") for s in subjects}
    labels = [f"{s}\n({failed[s]} failed)" if failed[s] else s for s in subjects]
    done = [r for r in rows if r["status"] == "finished"]

    panels = domain.summary_panels
    width = max(4.0, 0.45 * len(subjects) + 1.5)
    fig = new_figure((width * len(panels) + 3.5, 3.6))
    axes = fig.subplots(1, len(panels) + 1, gridspec_kw={"width_ratios": [width] * len(panels) + [3.0]})
    n_methods = max(1, len(methods))
    for ax, (key, ylabel, ref_key, ylim), letter in zip(axes, panels, "abcdef"):
        for j, m in enumerate(methods):
            xs, ys = [], []
            for r in done:
                if r["method"] == m and r[key] is not None:
                    xs.append(subjects.index(r[key_of]) + (j - (n_methods - 1) / 2) * 0.18)
                    ys.append(r[key])
            if xs:  # failed methods get no legend entry: they have no values
                ax.scatter(xs, ys, s=16, color=colors[m], alpha=0.8, label=m, zorder=3, edgecolors="none")
        ref_x = [i for i, s in enumerate(subjects) if ref_key and s in best_ref and _value(best_ref[s][1], ref_key) is not None]
        if ref_x:
            ax.scatter(ref_x, [_value(best_ref[subjects[i]][1], ref_key) for i in ref_x], marker="_", s=260, color="black",
                       linewidths=2, label=f"reference (best {_ref_metric(domain)})", zorder=4)
        ax.set_xticks(range(len(subjects)))
        ax.set_xticklabels(labels, rotation=60 if len(subjects) > 6 else 0, ha="right" if len(subjects) > 6 else "center", fontsize=8)
        ax.set_xlim(-0.6, len(subjects) - 0.4)
        ax.set_ylabel(ylabel)
        ax.grid(axis="y", alpha=0.3)
        ax.set_title(f"({letter})", loc="left", fontweight="bold")
        if ylim:
            ax.set_ylim(*ylim)
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
    ax.set_title(f"({'abcdefg'[len(panels)]})", loc="left", fontweight="bold")
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
