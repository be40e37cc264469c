"""``report_run(run_dir)``: one self-contained HTML page for a single optimization run.

Everything is inline (CSS, figures as PNG data URIs, molecules as RDKit SVG data URIs), so the
page opens offline, can be mailed or archived, and loads nothing from the network: no script,
no external URL. It is built from the run directory alone (``config.json``,
``trajectory.jsonl``, ``summary.json`` and the objective's files), so it also works for a run
that is still going or was interrupted. The helpers (``load_run``, ``feedback_rows``,
``goal_rows``, ``html_table``, ``molecule_image``) are what the notebooks display too.
"""

from __future__ import annotations

import base64
import html
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional

from .plots import MOLECULE_PANELS, PLAN_PANELS, SCORE_PANELS, plot_trajectory
from .rundir import finite_float, read_csv, read_json, read_jsonl, write_text_atomic

MAX_CANDIDATE_ROWS = 60


class ReportError(RuntimeError):
    """The directory is not a run directory (run reports) or not a sweep directory (sweep reports)."""


@dataclass
class RunRecord:
    """What a run directory holds; ``summary`` is empty while the run has not finished."""

    path: Path
    config: dict
    summary: dict
    steps: list[dict]

    @property
    def kind(self) -> str:
        return (self.config.get("objective") or {}).get("kind", "objective")

    @property
    def finished(self) -> bool:
        return bool(self.summary.get("finished"))

    @property
    def start(self) -> dict:
        return self.summary.get("start") or (self.steps[0].get("best") if self.steps else {}) or {}

    @property
    def best(self) -> dict:
        return self.summary.get("best") or (self.steps[-1].get("best") if self.steps else {}) or {}

    def candidates(self) -> list[dict]:
        """Every evaluated candidate once (first step it appeared), with its step number."""
        seen, out = set(), []
        for rec in self.steps:
            for c in rec.get("candidates") or []:
                if c.get("value") in seen:
                    continue
                seen.add(c.get("value"))
                out.append({**c, "step": rec["step"]})
        return out

    def usage(self) -> dict:
        return self.summary.get("usage") or self._sum_over_steps("usage")

    def timings(self) -> dict:
        return self._sum_over_steps("timings")

    def _sum_over_steps(self, key: str) -> dict:
        """Per-field totals of the numeric fields of ``rec[key]`` over all steps."""
        total: dict = {}
        for rec in self.steps:
            for k, v in (rec.get(key) or {}).items():
                if isinstance(v, (int, float)):
                    total[k] = total.get(k, 0) + v
        return total


def load_run(run_dir) -> RunRecord:
    path = Path(run_dir)
    if not (path / "config.json").is_file():
        raise ReportError(f"{path} is not a run directory (no config.json)")
    summary = read_json(path / "summary.json") if (path / "summary.json").is_file() else {}
    return RunRecord(path, read_json(path / "config.json"), summary, list(read_jsonl(path / "trajectory.jsonl")))


# ---------------------------------------------------------------------------- tables for people
def feedback_rows(run: RunRecord, steps: Optional[Iterable[int]] = None) -> list[dict]:
    """Per step: the loss text the LLM read, its feedback (the textual gradient), rejected proposals."""
    wanted = set(steps) if steps is not None else None
    rows = []
    for rec in run.steps:
        if rec["step"] == 0 or (wanted is not None and rec["step"] not in wanted):
            continue
        failures = "; ".join(f"{f.get('text', '')[:80]} -> {f.get('reason', '')}" for f in rec.get("failures") or [])
        rows.append({"step": rec["step"], "loss": rec.get("loss") or "", "feedback": rec.get("feedback") or "",
                     "rejected": failures, "error": rec.get("error") or ""})
    return rows


def goal_rows(run: RunRecord) -> list[dict]:
    """Plans: per step, the step's best plan checked against every clinical goal of the case."""
    from simulators.dose.cases import GoalSpec

    labels = (run.config.get("objective") or {}).get("goals") or []
    goals = [GoalSpec.from_label(label) for label in labels]
    rows = []
    for rec in run.steps:
        valid = [c for c in rec.get("candidates") or [] if c.get("score") is not None]
        if not valid:
            rows.append({"step": rec["step"], "score": None, "goals met": "no new valid plan"})
            continue
        c = min(valid, key=lambda c: c["score"])
        m = c.get("metrics") or {}
        row = {"step": rec["step"], "score": round(c["score"], 3), "goals met": f"{m.get('goals_met', '?')}/{m.get('goals_total', len(goals))}"}
        for g in goals:
            value = m.get(g.key)
            if value is None:
                row[g.label] = "-"
            else:
                unit = "%" if g.unit == "%" else " Gy"
                row[g.label] = f"{value:.1f}{unit} {'met' if g.met(value) else 'MISSED'}"
        rows.append(row)
    return rows


def html_table(rows: list[dict], columns: Optional[list[str]] = None, raw: Iterable[str] = (), css_class: str = "") -> str:
    """An HTML table; every cell escaped except the ``raw`` columns (images)."""
    columns = columns or list(dict.fromkeys(k for r in rows for k in r))
    raw = set(raw)
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    body = []
    for r in rows:
        cells = []
        for c in columns:
            v = r.get(c)
            text = v if c in raw else html.escape(_fmt(v))
            cells.append(f"<td>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    cls = f' class="{css_class}"' if css_class else ""
    return f"<table{cls}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _fmt(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return "nan" if not math.isfinite(v) else f"{v:.3g}" if abs(v) < 1e-2 and v != 0 else f"{v:.2f}"
    return str(v)


# ---------------------------------------------------------------------------- images
def molecule_image(smiles: str, legend: str = "", size: tuple[int, int] = (240, 180)) -> str:
    """An ``<img>`` with the RDKit 2D drawing as an SVG data URI ('' if RDKit cannot parse it)."""
    from rdkit import Chem
    from rdkit.Chem.Draw import rdMolDraw2D

    mol = Chem.MolFromSmiles(smiles or "")
    if mol is None:
        return ""
    drawer = rdMolDraw2D.MolDraw2DSVG(*size)
    options = drawer.drawOptions()
    options.legendFontSize = 14
    options.fixedBondLength = 28  # small molecules are not blown up to fill the box
    drawer.DrawMolecule(mol, legend=legend)
    drawer.FinishDrawing()
    return _img("image/svg+xml", drawer.GetDrawingText().encode("utf-8"), alt=smiles, width=size[0])


def _img(mime: str, data: bytes, alt: str = "", width: Optional[int] = None) -> str:
    w = f' width="{width}"' if width else ""
    return f'<img src="data:{mime};base64,{base64.b64encode(data).decode("ascii")}" alt="{html.escape(alt)}"{w}>'


def _png_file(path: Path, alt: str) -> str:
    return _img("image/png", Path(path).read_bytes(), alt=alt) if Path(path).is_file() else ""


def _trajectory_png(run: RunRecord) -> str:
    """The run's own trajectory.png (it has the reference drugs); else drawn from the steps."""
    own = run.path / "trajectory.png"
    if own.is_file():
        return _png_file(own, "trajectory")
    panels = {"molecule": MOLECULE_PANELS, "plan": PLAN_PANELS}.get(run.kind, SCORE_PANELS)
    with tempfile.TemporaryDirectory() as tmp:
        path = plot_trajectory(run.steps, Path(tmp) / "trajectory.png", panels)
        return _png_file(path, "trajectory")


# ---------------------------------------------------------------------------- sections
def _overview(run: RunRecord) -> str:
    cfg, obj = run.config, run.config.get("objective") or {}
    method = cfg.get("method") or {}
    rows = [("objective", _objective_text(run)), ("method", method.get("method", "?"))]
    for role in ("feedback_engine", "optimizer_engine"):
        if method.get(role):
            rows.append((role.replace("_", " "), method[role].get("model", "?")))
    start, best = run.start, run.best
    rows += [
        ("status", "finished" if run.finished else "not finished (resume with the same command)"),
        ("stop reason", run.summary.get("stop_reason", "-")),
        ("steps", str(max((s["step"] for s in run.steps), default=0))),
        ("simulator evaluations", str(run.summary.get("evaluations", sum(1 for c in run.candidates() if c.get("simulated", True))))),
        ("start", f"{start.get('value', '')}  (score {_fmt(start.get('score'))})"),
        ("best", f"{best.get('value', '')}  (score {_fmt(best.get('score'))})"),
        ("seed", str(cfg.get("seed", "-"))),
        ("tgsci version", str(cfg.get("tgsci_version", "-"))),
    ]
    if obj.get("kind") == "plan":
        rows.insert(1, ("clinical goals", "; ".join(obj.get("goals") or [])))
    u, t = run.usage(), run.timings()
    rows.append(("LLM usage", f"{u.get('calls', 0)} calls ({u.get('cached_calls', 0)} cached, {u.get('failed_calls', 0)} failed), "
                              f"{u.get('prompt_tokens', 0)} prompt + {u.get('completion_tokens', 0)} completion tokens, "
                              f"${u.get('cost_usd', 0.0):.4f}, {u.get('seconds', 0.0):.1f} s"))
    if t:
        rows.append(("time", ", ".join(f"{k.removesuffix('_s')} {v:.1f} s" for k, v in sorted(t.items()))))
    return html_table([{"": k, "value": v} for k, v in rows], css_class="meta")


def _objective_text(run: RunRecord) -> str:
    obj = run.config.get("objective") or {}
    if obj.get("kind") == "molecule":
        targets = ", ".join(f"{t} (weight {w:g})" for t, w in (obj.get("targets") or {}).items())
        return f"molecule: {targets}; score {obj.get('aggregation', '?')} (lower is better)"
    if obj.get("kind") == "plan":
        plan = obj.get("plan") or {}
        return (f"IMRT plan weights, case {obj.get('case', '?')} ({plan.get('variant', '?')} settings, "
                f"{len(plan.get('gantry_angles') or [])} beams, {plan.get('dose_grid_mm', '?')} mm dose grid, "
                f"prescription {obj.get('prescription_gy', '?')} Gy)")
    return str(obj.get("kind", "objective"))


def _molecule_sections(run: RunRecord) -> list[tuple[str, str]]:
    sections = []
    start, best = run.start, run.best
    pair = [{"": label, "molecule": molecule_image(ev.get("value", ""), legend=label), **_mol_cols(ev)}
            for label, ev in (("start", start), ("best", best)) if ev]
    sections.append(("Start and best", html_table(pair, raw=["molecule"])))
    refs = read_csv(run.path / "references.csv")
    if refs:
        rows = [{"approved drug": r["name"], "molecule": molecule_image(r["smiles"], legend=r["name"]),
                 "score": finite_float(r.get("score")), "Vina (kcal/mol)": finite_float(r.get("vina")), "QED": finite_float(r.get("qed")),
                 "error": r.get("error") or ""} for r in refs]
        sections.append(("Approved drugs, docked with the same settings", html_table(rows, raw=["molecule"])))
    valid = sorted((c for c in run.candidates() if c.get("score") is not None), key=lambda c: c["score"])
    shown = valid[:MAX_CANDIDATE_ROWS]
    rows = [{"rank": i + 1, "molecule": molecule_image(c["value"], size=(200, 150)), "step": c["step"], **_mol_cols(c)}
            for i, c in enumerate(shown)]
    more = f"<p>{len(valid) - len(shown)} more in molecules.csv.</p>" if len(valid) > len(shown) else ""
    sections.append((f"Candidates ({len(valid)} valid, best first)", html_table(rows, raw=["molecule"], css_class="candidates") + more))
    if (run.path / "best.sdf").is_file():
        sections.append(("Best pose", "<p>The best docked pose is in <code>best.sdf</code> (open it with the receptor in "
                                      "PyMOL or ChimeraX; <code>notebooks/molecule_design.ipynb</code> shows it in 3D).</p>"))
    return sections


def _mol_cols(ev: dict) -> dict:
    m = ev.get("metrics") or {}
    return {"SMILES": ev.get("value", ""), "score": ev.get("score"), "Vina (kcal/mol)": m.get("vina"), "QED": m.get("qed"),
            "SA": m.get("sa"), "MW (g/mol)": m.get("mol_weight"), "error": ev.get("error") or ""}


def _plan_sections(run: RunRecord) -> list[tuple[str, str]]:
    import json

    sections = []
    figures = "".join(f"<figure>{_png_file(run.path / name, alt)}<figcaption>{html.escape(cap)}</figcaption></figure>"
                      for name, alt, cap in (("dvh.png", "DVH", "Dose-volume histograms, start (dashed) vs best (solid); dose in Gy, volume in %."),
                                             ("dose_slice.png", "dose slice", "Dose (Gy) of the best plan on the target's central slice, with contours."))
                      if (run.path / name).is_file())
    sections.append(("Dose", figures or "<p>DVH and dose slice are written when the run finishes.</p>"))
    sections.append(("Clinical goals per step (the step's best plan)", html_table(goal_rows(run))))
    weights = []
    for label, ev in (("start", run.start), ("best", run.best)):
        try:
            w = json.loads(ev.get("value") or "{}")
        except json.JSONDecodeError:
            w = {}
        weights.append({"": label, **{k: v for k, v in w.items()}, "score": ev.get("score")})
    sections.append(("Objective weights", html_table(weights)))
    rows = [{"step": c["step"], "weights": c["value"], "score": c.get("score"),
             "goals met": f"{(c.get('metrics') or {}).get('goals_met', '-')}/{(c.get('metrics') or {}).get('goals_total', '-')}",
             "error": c.get("error") or ""} for c in run.candidates()]
    sections.append((f"Plans evaluated ({len(rows)})", html_table(rows)))
    return sections


def _generic_sections(run: RunRecord) -> list[tuple[str, str]]:
    rows = [{"step": c["step"], "value": c["value"], "score": c.get("score"), "error": c.get("error") or ""} for c in run.candidates()]
    return [(f"Candidates ({len(rows)})", html_table(rows))]


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
    domain = {"molecule": _molecule_sections, "plan": _plan_sections}.get(run.kind, _generic_sections)(run)
    sections = [("Summary", _overview(run)), ("Trajectory", _trajectory_png(run))] + domain
    sections.append(("Textual gradients, step by step", _feedback_section(run)))
    body = "".join(f"<section><h2>{html.escape(title)}</h2>{content}</section>" for title, content in sections)
    title = f"tgsci run {run.path.name}: {_objective_text(run)}"
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{html.escape(title)}</title>"
        f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>"
        f"<p class=\"note\">Scores: lower is better. Generated by tgsci from {html.escape(str(run.path.resolve()))}; "
        f"self-contained (no network needed).</p>{body}</body></html>\n"
    )


def report_run(run_dir, path=None) -> Path:
    """Write the report (default ``run_dir/report.html``) atomically; returns its path."""
    run = load_run(run_dir)
    out = Path(path) if path else run.path / "report.html"
    write_text_atomic(out, render_run(run))
    return out
