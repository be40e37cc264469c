"""TGD vs random mutation vs Graph GA on one PPARA design from benzene, same docking budget.

Every method runs through the same optimize() loop, objective (Vina + 10*(1-QED), exhaustiveness 8)
and evaluation budget; prints top-1, top-10 and PMO top-10 AUC (lower is better) beside the
approved PPARA drugs docked the same way.

    python benchmarks/molecule_methods.py [--budget 24] [--proposals 3] [--model local/smollm2-135m]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--target", default="PPARA")
    parser.add_argument("--start", default="c1ccccc1")
    parser.add_argument("--budget", type=int, default=24, help="docked candidates per method, start included")
    parser.add_argument("--proposals", type=int, default=3)
    parser.add_argument("--model", default="local/smollm2-135m")
    parser.add_argument("--exhaustiveness", type=int, default=8)
    parser.add_argument("--methods", default="tgd,random,graph-ga")
    parser.add_argument("--out", default=str(ROOT / "runs" / "bench-molecule-methods"))
    args = parser.parse_args()

    from tgsci import Engine, build_objective, optimize
    from tgsci.metrics import run_figures

    rows = []
    objective = build_objective({"kind": "molecule", "target": args.target, "docking": {"exhaustiveness": args.exhaustiveness}})
    for method in args.methods.split(","):
        engine = Engine(args.model, temperature=0.8) if method == "tgd" else None
        t0 = time.perf_counter()
        result = optimize(
            objective, args.start, method=method, engine=engine, max_steps=10 * args.budget, n_proposals=args.proposals,
            max_evaluations=args.budget, patience=None, run_dir=Path(args.out) / method, seed=0,
        )
        wall = time.perf_counter() - t0
        figures = run_figures(result.evaluations, k=10, budget=args.budget)
        rows.append((method, figures, result, wall))
        print(f"{method}: {figures} stop={result.stop_reason} wall={wall:.0f}s", flush=True)
    refs = objective.references()
    objective.close()

    print(f"\n{args.target} from {args.start}: budget {args.budget} docked candidates, {args.proposals} per step, "
          f"score = {objective.score_formula()} (lower is better)")
    print(f"{'method':10s}{'top-1':>8s}{'top-10':>8s}{'AUC10':>8s}{'evals':>7s}{'LLM calls':>11s}{'wall s':>8s}  best molecule (Vina, QED)")
    for method, f, result, wall in rows:
        best = result.best
        print(f"{method:10s}{f['top1']:8.2f}{f['top10']:8.2f}{f['top10_auc']:8.2f}{f['evaluations']:7d}{result.usage.calls:11d}{wall:8.0f}  "
              f"{best.value} ({best.metrics.get('vina', float('nan')):.1f}, {best.metrics.get('qed', float('nan')):.2f})")
    for name, ev in refs:
        if ev.valid:
            print(f"{name + ' (drug)':26s}{ev.score:8.2f}{'':>27s}{ev.metrics['vina']:.1f} kcal/mol, QED {ev.metrics['qed']:.2f}")


if __name__ == "__main__":
    main()
