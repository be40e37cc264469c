"""``report_run(run_dir)``: one self-contained HTML page for a single optimization run.

Everything is inline (CSS, figures as PNG data URIs, molecules as RDKit SVG data URIs), so the
page opens offline, can be mailed or archived, and loads nothing from the network: no script,
no external URL. It is built from the run record alone (``tgsci.record``) plus the figures the
objective wrote, so it also works for a run that is still going or was interrupted; the
domain of the run (``tgsci.domains``) adds its own sections. ``feedback_rows`` is what the
notebooks display too.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Iterable, Optional

from simulators.files import write_text_atomic

from .domains import domain_for
from .html import drawn_png, fmt, html_table, png_file
from .plots import plot_trajectory
from .record import RunDirError, RunRecord


class ReportError(RuntimeError):
    """The directory is not a run directory (run reports) or not a sweep directory (sweep reports)."""


def load_run(run_dir) -> RunRecord:
    """The run record of ``run_dir``; ReportError when it is not one (or of another format)."""
    try:
        return RunRecord.load(run_dir)
    except RunDirError as exc:
        raise ReportError(str(exc)) from None


def feedback_rows(run: RunRecord, steps: Optional[Iterable[int]] = None) -> list[dict]:
    """Per step: the loss text the LLM read, its feedback (the textual gradient), rejected proposals."""
    wanted = set(steps) if steps is not None else None
    rows = []
    for rec in run.steps:
        if rec.step == 0 or (wanted is not None and rec.step not in wanted):
            continue
        failures = "; ".join(f"{f.text[:80]} -> {f.reason}" for f in rec.failures)
        rows.append({"step": rec.step, "loss": rec.loss, "feedback": rec.feedback, "rejected": failures, "error": rec.error or ""})
    return rows


def _trajectory_png(run: RunRecord) -> str:
    """The run's own trajectory.png (it has the reference drugs); else drawn from the steps."""
    own = run.path / "trajectory.png"
    if own.is_file():
        return png_file(own, "trajectory")
    panels = domain_for(run.kind).trajectory_panels
    return drawn_png(lambda path: plot_trajectory(run.steps, path, panels, run.references), "trajectory")


def _overview(run: RunRecord) -> str:
    cfg, domain = run.config, domain_for(run.kind)
    rows = [("objective", domain.objective_text(cfg)), *domain.overview_rows(cfg), ("method", cfg.method.get("method", "?"))]
    for role in ("feedback_engine", "optimizer_engine"):
        if cfg.method.get(role):
            rows.append((role.replace("_", " "), cfg.method[role].get("model", "?")))
    start, best = run.start, run.best
    rows += [
        ("status", "finished" if run.finished else "not finished (resume with the same command)"),
        ("stop reason", run.summary.stop_reason if run.summary else "-"),
        ("steps", str(max((s.step for s in run.steps), default=0))),
        ("simulator evaluations", str(run.evaluations())),
        ("start", f"{start.value}  (score {fmt(start.score)})" if start else "-"),
        ("best", f"{best.value}  (score {fmt(best.score)})" if best else "-"),
        ("seed", str(cfg.seed)),
        ("tgsci version", cfg.tgsci_version),
    ]
    u, t = run.usage(), run.timings()
    rows.append(("LLM usage", u.text()))
    fallback = sum(1 for _, c in run.candidates() if c.origin)
    if fallback:
        rows.append(("candidates not proposed by the method", f"{fallback} (labelled in the tables below)"))
    if t:
        rows.append(("time", ", ".join(f"{k.removesuffix('_s')} {v:.1f} s" for k, v in sorted(t.items()))))
    return html_table([{"": k, "value": v} for k, v in rows], css_class="meta")


def _feedback_section(run: RunRecord) -> str:
    rows = feedback_rows(run)
    if not rows:
        return "<p>No optimization steps yet.</p>"
    parts = []
    for i, r in enumerate(rows):
        body = []
        for key, title in (("loss", "Loss: the simulator's numbers in words"), ("feedback", "Feedback (textual gradient)"),
                           ("rejected", "Rejected proposals"), ("error", "Error")):
            if r[key]:
                body.append(f"<h4>{title}</h4><pre>{html.escape(r[key])}</pre>")
        if not body:
            body.append("<p>No LLM text at this step (a baseline method, or nothing to report).</p>")
        parts.append(f"<details{' open' if i < 2 else ''}><summary>step {r['step']}</summary>{''.join(body)}</details>")
    return "".join(parts)


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px auto;max-width:1200px;color:#222;padding:0 12px}
h1{font-size:1.5em;margin-bottom:4px}h2{font-size:1.2em;border-bottom:1px solid #ddd;padding-bottom:3px;margin-top:28px}
h4{margin:10px 0 4px 0;font-size:.95em}
table{border-collapse:collapse;margin:8px 0;font-size:.9em}th,td{border:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:middle}
th{background:#f4f4f4}table.meta td:first-child{font-weight:600;white-space:nowrap}
td{max-width:520px;overflow-wrap:anywhere}img{max-width:100%;height:auto}
pre{white-space:pre-wrap;background:#f8f8f8;border:1px solid #eee;padding:8px;font-size:.85em;margin:0}
details{margin:6px 0;border:1px solid #e4e4e4;padding:4px 10px;border-radius:4px}summary{cursor:pointer;font-weight:600}
figure{display:inline-block;margin:6px 12px 6px 0;vertical-align:top}figcaption{font-size:.85em;color:#555;max-width:640px}
.note{color:#555;font-size:.9em}
"""


def render_run(run: RunRecord) -> str:
    """The HTML text of the report."""
    domain = domain_for(run.kind)
    sections = [("Summary", _overview(run)), ("Trajectory", _trajectory_png(run))] + domain.report_sections(run)
    sections.append(("Textual gradients, step by step", _feedback_section(run)))
    body = "".join(f"<section><h2>{html.escape(title)}</h2>{content}</section>" for title, content in sections)
    title = f"tgsci run {run.path.name}: {domain.objective_text(run.config)}"
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{html.escape(title)}</title>"
        f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>"
        f"<p class=\"note\">Scores: lower is better. Generated by tgsci from {html.escape(str(run.path.resolve()))}; "
        f"self-contained (no network needed).</p>{body}</body></html>\n"
    )


def report_run(run_dir, path=None) -> Path:
    """Write the report (default ``run_dir/report.html``) atomically, and the domain's comparison
    table as CSV beside it (plans: ``paper_table.csv``); returns the report's path."""
    from .tables import csv_text

    run = load_run(run_dir)
    out = Path(path) if path else run.path / "report.html"
    write_text_atomic(out, render_run(run))
    domain = domain_for(run.kind)
    rows = domain.comparison_rows(run, f"best ({run.config.method.get('method', 'best')})") if domain.comparison_file else []
    if rows:
        write_text_atomic(out.parent / domain.comparison_file, csv_text(rows))
    return out
