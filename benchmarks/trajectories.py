"""Same seeds, same trajectories: a refactor must not change what a run proposes, simulates and scores.

Runs a fixed panel of short loops with the tgsci of a git ref (in a temporary worktree) and with
this tree, each side in its own process with fresh docking and dose caches and the LLM cache off,
and compares every step's candidates (value, score, error) side by side:

- molecules, QED only (RDKit, no docking): TGD on the embedded model, random search, Graph GA;
- molecules, DOCKSTRING score on PPARA (real Vina, exhaustiveness 2): random search (docking agreement);
- the TG119 plan with the case's fast settings (real pyRadPlan dose): TGD, random search, TPE.

Prints a table (best score before / after, candidates compared, identical or the first step that
differs) and saves it to benchmarks/results/trajectories.txt.

    python benchmarks/trajectories.py --before REF [--after REF]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
QED = {"kind": "molecule", "target": "PPARA", "aggregation": "qed", "compare_references": False, "confirm_seeds": 1}
VINA = {"kind": "molecule", "target": "PPARA", "compare_references": False, "confirm_seeds": 1, "docking": {"exhaustiveness": 2}}
TG119 = {"kind": "plan", "case": "tg119", "fast": True}
# name -> (spec, method, steps, proposals per step)
PANEL = {
    "molecule-qed-tgd": (QED, "tgd", 3, 3),
    "molecule-qed-random": (QED, "random", 3, 3),
    "molecule-qed-graph-ga": (QED, "graph-ga", 3, 3),
    "molecule-vina-random": (VINA, "random", 2, 2),
    "plan-tg119-tgd": (TG119, "tgd", 2, 2),
    "plan-tg119-random": (TG119, "random", 2, 2),
    "plan-tg119-tpe": (TG119, "tpe", 4, 1),
}


def child(side_root: str, out: str) -> None:
    """Run the panel with the tgsci at ``side_root``; write each run's steps as JSON."""
    sys.path.insert(0, side_root)
    from tgsci.domains import build_objective
    from tgsci.engine import Engine
    from tgsci.loop import optimize

    work = Path(tempfile.mkdtemp(prefix="tgsci-trajectories-"))
    engine = Engine("local/smollm2-135m", cache=False, temperature=0.8)
    runs = {}
    for name, (spec, method, steps, proposals) in PANEL.items():
        spec = {**spec, "cache_dir": str(work / name)}
        objective = build_objective(spec)
        start = "c1ccccc1" if spec["kind"] == "molecule" else objective.start_value()
        t0 = time.perf_counter()
        try:
            result = optimize(objective, start, method=method, engine=engine, max_steps=steps, n_proposals=proposals,
                              patience=None, seed=0)
        finally:
            objective.close()
        runs[name] = {"seconds": time.perf_counter() - t0, "best": [result.best.value, result.best.score],
                      "steps": [[s.step, [[c.value, c.score, c.error] for c in s.candidates]] for s in result.steps]}
        print(f"  {name}: {len(result.steps) - 1} steps, best {result.best.score}", file=sys.stderr, flush=True)
    Path(out).write_text(json.dumps(runs))


def run_side(label: str, root: Path) -> dict:
    out = Path(tempfile.mkstemp(suffix=".json")[1])
    print(f"[{label}] {root}", file=sys.stderr, flush=True)
    subprocess.run([sys.executable, str(Path(__file__)), "--child", str(root), str(out)], check=True, cwd=str(root))
    return json.loads(out.read_text())


def first_difference(a: dict, b: dict) -> str:
    for (step_a, cands_a), (step_b, cands_b) in zip(a["steps"], b["steps"]):
        if step_a != step_b or cands_a != cands_b:
            return f"differs at step {step_a}"
    return "identical" if len(a["steps"]) == len(b["steps"]) else "different length"


def report(before: dict, after: dict, before_ref: str, after_ref: str) -> str:
    lines = [f"Trajectories, same seeds: before = {before_ref}, after = {after_ref} (embedded SmolLM2-135M, LLM cache off)", "",
             f"  {'run':24s} {'candidates':>10s} {'best before':>12s} {'best after':>12s} {'s before':>9s} {'s after':>8s}  result"]
    for name in PANEL:
        a, b = before[name], after[name]
        n = sum(len(c) for _, c in b["steps"])
        lines.append(f"  {name:24s} {n:10d} {a['best'][1]:12.4f} {b['best'][1]:12.4f} {a['seconds']:9.1f} {b['seconds']:8.1f}  "
                     f"{first_difference(a, b)}")
    same = sum(first_difference(before[n], after[n]) == "identical" for n in PANEL)
    lines += ["", f"  {same}/{len(PANEL)} runs identical (every candidate's value, score and error at every step)"]
    return "\n".join(lines) + "\n"


def _worktree(ref: str) -> Path:
    path = Path(tempfile.mkdtemp(prefix="tgsci-side-"))
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(path), ref], check=True, stdout=subprocess.DEVNULL)
    return path


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="the git ref to compare with")
    parser.add_argument("--after", default=None, help="a git ref for the after side (default: this tree)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "trajectories.txt"))
    args = parser.parse_args()
    sides = {"before": _worktree(args.before), "after": _worktree(args.after) if args.after else ROOT}
    try:
        results = {label: run_side(label, root) for label, root in sides.items()}
    finally:
        for root in sides.values():
            if root != ROOT:
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(root)], check=False)
    text = report(results["before"], results["after"], args.before, args.after or "this tree")
    print(text, end="")
    Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
