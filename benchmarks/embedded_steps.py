"""The embedded model's steps, before and after a change: new valid candidates, duplicates, LLM seconds.

Run by ``benchmarks/llm_calls.py --embedded [--before REF]``: for each side (the tgsci of a git
ref checked out in a temporary worktree, and this tree) a child process runs the same loops with
the same seeds on the embedded model (SmolLM2-135M, temperature 0.8, LLM cache off):

- ``demo``: the README demo's objective (PPARA, DOCKSTRING score = Vina + 10 (1 - QED), real Vina
  docking with a fresh docking cache, start benzene, 3 proposals per step);
- ``tg119``: the TG119 plan objective with the case's fast settings, 2 proposals per step.

Per side and objective it reports: steps with at least one new valid candidate, of any origin and
from the LLM (a fallback candidate, made by the objective's mutation operator when a step's reply
held nothing new, is counted apart), proposals rejected as duplicates, LLM seconds per
step split into prompt processing and generation (llama.cpp's own timings, read from the run
record's usage), prompt tokens served from the KV cache, and the wall time split LLM / simulator
for the whole run and for its first 5 steps (= the README demo).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OBJECTIVES = {"demo": 3, "tg119": 2}  # objective -> proposals per step


def child(side_root: str, objective_name: str, steps: int, out: str) -> None:
    """Run one loop with the tgsci found at ``side_root``; write per-step figures as JSON."""
    sys.path.insert(0, side_root)
    from tgsci.domains import build_objective
    from tgsci.engine import Engine
    from tgsci.loop import optimize
    from tgsci.record import read_jsonl

    work = Path(tempfile.mkdtemp(prefix=f"tgsci-embedded-{objective_name}-"))
    if objective_name == "demo":
        spec, start = {"kind": "molecule", "target": "PPARA", "cache_dir": str(work / "dock")}, "c1ccccc1"
    else:
        spec, start = {"kind": "plan", "case": "tg119", "fast": True}, None
    objective = build_objective(spec)
    if start is None:
        start = objective.start_value()
    engine = Engine("local/smollm2-135m", cache=False, temperature=0.8)
    t0 = time.perf_counter()
    try:
        optimize(objective, start, engine=engine, max_steps=steps, n_proposals=OBJECTIVES[objective_name],
                 patience=None, seed=0, run_dir=work / "run")
    finally:
        if hasattr(objective, "close"):
            objective.close()
    wall = time.perf_counter() - t0
    rows, tried = [], set()
    for rec in read_jsonl(work / "run" / "trajectory.jsonl"):
        values = {c["value"] for c in rec.get("candidates") or []}
        new_valid = {c["value"] for c in rec.get("candidates") or [] if c.get("error") is None} - tried
        fallback = {c["value"] for c in rec.get("candidates") or [] if c.get("origin")}
        tried |= values
        usage = rec.get("usage") or {}
        rows.append({
            "step": rec["step"], "new_valid": len(new_valid) if rec["step"] else 0,
            "new_valid_llm": len(new_valid - fallback) if rec["step"] else 0, "fallback": len(fallback),
            "duplicates": sum("already tried" in f["reason"] for f in rec.get("failures") or []),
            "rejected": len(rec.get("failures") or []), "asked": OBJECTIVES[objective_name] if rec["step"] else 0,
            "calls": usage.get("calls", 0), "llm_s": usage.get("seconds", 0.0),
            "prompt_s": usage.get("prompt_seconds", 0.0), "generation_s": usage.get("generation_seconds", 0.0),
            "prompt_tokens": usage.get("prompt_tokens", 0), "cached_tokens": usage.get("cached_prompt_tokens", 0),
            "completion_tokens": usage.get("completion_tokens", 0),
            "simulate_s": sum(v for k, v in (rec.get("timings") or {}).items() if k != "llm_s"),
        })
    Path(out).write_text(json.dumps({"wall_s": wall, "steps": rows}))


def run_side(label: str, side_root: Path, objective: str, steps: int) -> dict:
    out = Path(tempfile.mkstemp(suffix=".json")[1])
    env = {k: v for k, v in os.environ.items() if k != "TGSCI_LOCAL_THREADS"}  # each side's own default
    print(f"[{label}] {objective}: {steps} steps ...", file=sys.stderr, flush=True)
    subprocess.run([sys.executable, str(Path(__file__)), "--child", str(side_root), objective, str(steps), str(out)],
                   check=True, env=env, cwd=str(side_root))
    return json.loads(out.read_text())


def summarize(data: dict, first: int | None = None) -> dict:
    steps = [r for r in data["steps"] if r["step"] >= 1 and (first is None or r["step"] <= first)]
    n = len(steps)
    total = lambda key: sum(r[key] for r in steps)  # noqa: E731
    return {
        "steps": n, "productive": sum(r["new_valid"] > 0 for r in steps), "new": total("new_valid"),
        "productive_llm": sum(r.get("new_valid_llm", r["new_valid"]) > 0 for r in steps),
        "new_llm": sum(r.get("new_valid_llm", r["new_valid"]) for r in steps), "fallback": sum(r.get("fallback", 0) for r in steps),
        "asked": total("asked"), "duplicates": total("duplicates"),
        "llm": total("llm_s"), "prompt": total("prompt_s"), "generation": total("generation_s"),
        "prompt_tokens": total("prompt_tokens"), "cached": total("cached_tokens"), "completion": total("completion_tokens"),
        "simulate": total("simulate_s") + sum(r["simulate_s"] for r in data["steps"] if r["step"] == 0),
    }


def report(results: dict, before_ref: str, steps: int) -> str:
    lines = [
        "The embedded model's steps, before -> after (same seeds, same objectives, LLM cache off, fresh docking cache)",
        f"before = tgsci at {before_ref}; after = the change; model local/smollm2-135m, temperature 0.8; {steps} steps",
        "fallback = candidates made by the objective's mutation operator when a step's LLM reply held nothing new (labelled in the record)",
        "",
    ]
    for objective in OBJECTIVES:
        if objective not in results.get("after", {}):
            continue
        b, a = summarize(results["before"][objective]), summarize(results["after"][objective])
        lines.append(f"{objective} ({OBJECTIVES[objective]} proposals/step)")
        rows = [
            ("steps with >= 1 new valid candidate (any origin)", f"{b['productive']}/{b['steps']}", f"{a['productive']}/{a['steps']}"),
            ("steps with >= 1 new valid LLM candidate", f"{b['productive_llm']}/{b['steps']}", f"{a['productive_llm']}/{a['steps']}"),
            ("new valid candidates: LLM + fallback / asked", f"{b['new_llm']} + {b['fallback']} / {b['asked']}",
             f"{a['new_llm']} + {a['fallback']} / {a['asked']}"),
            ("duplicate rate (rejected as already tried / asked)", f"{b['duplicates'] / max(1, b['asked']):.2f}",
             f"{a['duplicates'] / max(1, a['asked']):.2f}"),
            ("LLM s/step", f"{b['llm'] / b['steps']:.2f}", f"{a['llm'] / a['steps']:.2f}"),
            ("  prompt processing s/step", f"{b['prompt'] / b['steps']:.2f}", f"{a['prompt'] / a['steps']:.2f}"),
            ("  generation s/step", f"{b['generation'] / b['steps']:.2f}", f"{a['generation'] / a['steps']:.2f}"),
            ("prompt tokens/step (from KV cache)", f"{b['prompt_tokens'] / b['steps']:.0f} ({b['cached'] / b['steps']:.0f})",
             f"{a['prompt_tokens'] / a['steps']:.0f} ({a['cached'] / a['steps']:.0f})"),
            ("completion tokens/step", f"{b['completion'] / b['steps']:.0f}", f"{a['completion'] / a['steps']:.0f}"),
            ("run: LLM s / simulator s", f"{b['llm']:.0f} / {b['simulate']:.0f}", f"{a['llm']:.0f} / {a['simulate']:.0f}"),
        ]
        if objective == "demo":
            b5, a5 = summarize(results["before"][objective], 5), summarize(results["after"][objective], 5)
            rows.append(("README demo (first 5 steps): LLM s / simulator s", f"{b5['llm']:.0f} / {b5['simulate']:.0f}",
                         f"{a5['llm']:.0f} / {a5['simulate']:.0f}"))
            rows.append(("README demo: new valid candidates / asked", f"{b5['new']}/{b5['asked']}", f"{a5['new']}/{a5['asked']}"))
        width = max(len(r[0]) for r in rows)
        lines.append(f"  {'':{width}}  {'before':>14}  {'after':>14}")
        lines += [f"  {name:{width}}  {x:>14}  {y:>14}" for name, x, y in rows]
        lines.append(f"  LLM time per step after/before: {a['llm'] / a['steps'] / (b['llm'] / b['steps']):.2f}")
        lines.append("")
    return "\n".join(lines)


def _worktree(ref: str) -> Path:
    path = Path(tempfile.mkdtemp(prefix="tgsci-side-"))
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(path), ref], check=True, stdout=subprocess.DEVNULL)
    return path


def main(before_ref: str, steps: int, objectives: list[str], out: Path, after_ref: str | None = None) -> None:
    """``after_ref``: a git ref for the after side too (default: this tree as it is)."""
    sides = {"before": _worktree(before_ref), "after": _worktree(after_ref) if after_ref else ROOT}
    results: dict = {"before": {}, "after": {}}
    try:
        for objective in objectives:
            for label, root in sides.items():
                results[label][objective] = run_side(label, root, objective, steps)
    finally:
        for root in sides.values():
            if root != ROOT:
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(root)], check=False)
    text = report(results, before_ref, steps)
    print(text)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    (out.with_suffix(".json")).write_text(json.dumps(results))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5])
