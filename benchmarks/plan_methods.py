"""TGD vs random search vs Optuna TPE on treatment plans, same plan-evaluation budget.

Every method runs through the same optimize() loop, PlanObjective and budget; prints goals met
and the score (lower is better) at the start and for the best plan, per case.

    python benchmarks/plan_methods.py [--cases tg119,prostate] [--budget 9] [--proposals 2] [--fast]
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
    parser.add_argument("--cases", default="tg119,prostate")
    parser.add_argument("--budget", type=int, default=9, help="plan evaluations per method, start included")
    parser.add_argument("--proposals", type=int, default=2)
    parser.add_argument("--fast", action="store_true", help="the cases' coarse settings")
    parser.add_argument("--model", default="local/smollm2-135m")
    parser.add_argument("--methods", default="tgd,random,tpe")
    parser.add_argument("--out", default=str(ROOT / "runs" / "bench-plan-methods"))
    args = parser.parse_args()

    from tgsci import Engine, build_objective, optimize

    lines = []
    for case in args.cases.split(","):
        objective = build_objective({"kind": "plan", "case": case, "fast": args.fast})
        start = objective.start_value()
        for method in args.methods.split(","):
            engine = Engine(args.model, temperature=0.8) if method == "tgd" else None
            t0 = time.perf_counter()
            result = optimize(objective, start, method=method, engine=engine, max_steps=10 * args.budget,
                              n_proposals=args.proposals, max_evaluations=args.budget, patience=None,
                              run_dir=Path(args.out) / f"{case}-{method}", seed=0)
            wall = time.perf_counter() - t0
            s, b = result.start, result.best
            lines.append(f"{case:9s}{method:8s}{s.metrics['goals_met']}/{s.metrics['goals_total']:<5d}{s.score:9.3f}   "
                         f"{b.metrics['goals_met']}/{b.metrics['goals_total']:<5d}{b.score:9.3f}{result.usage.calls:7d}{wall:8.0f}  {b.value}")
            print(lines[-1], flush=True)
        objective.close()
    print(f"\nbudget {args.budget} plan evaluations per method (start included), {args.proposals} per step, "
          f"{'fast' if args.fast else 'clinical'} settings; score lower is better")
    print(f"{'case':9s}{'method':8s}{'start goals':12s}{'score':>6s}   {'best goals':11s}{'score':>6s}{'LLM':>7s}{'wall s':>8s}  best weights")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
