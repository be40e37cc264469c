"""TGD vs random search vs Optuna TPE on treatment plans, same plan-evaluation budget.

Every method runs through the same optimize() loop, PlanObjective and budget; prints goals met
and the score (lower is better) at the start and for the best plan, per case.

    python benchmarks/plan_methods.py [--cases tg119,prostate] [--budget 9] [--proposals 2] [--fast]
    python benchmarks/plan_methods.py --protocol paper [--fast]   # the TextGrad paper's protocol and table

With ``--protocol paper``: every method runs under the paper's protocol (weights start at 100; TGD
stops when all goals are met or after 10 steps, the case's reference plans in its prompt; TPE has
50 evaluations in [100, 400]); prints the paper's table (start, each method's best, the reference
plans), the evaluations each method needed to meet all goals, and its wall time.
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
    parser.add_argument("--protocol", default=None, help="paper: the TextGrad paper's radiotherapy protocol")
    args = parser.parse_args()
    if args.protocol:
        return paper(args)

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


def paper(args) -> None:
    from tgsci import Engine, build_objective, optimize
    from tgsci.domains import get_domain
    from tgsci.presets import protocol_budget
    from tgsci.record import RunRecord
    from tgsci.tables import csv_text

    domain = get_domain("plan")
    methods = [m for m in args.methods.split(",") if m != "random"]
    out = Path(args.out) / f"protocol-{args.protocol}"
    for case in args.cases.split(","):
        objective = build_objective({"kind": "plan", "case": case, "fast": args.fast, "protocol": args.protocol})
        rows, lines = [], []
        for method in methods:
            engine = Engine(args.model, temperature=0.8) if method == "tgd" else None
            run_dir = out / f"{case}-{method}"
            t0 = time.perf_counter()
            result = optimize(objective, objective.start_value(), method=method, engine=engine, run_dir=run_dir, seed=0,
                              **protocol_budget(args.protocol, method))
            wall = time.perf_counter() - t0
            record = RunRecord.load(run_dir)
            table = domain.comparison_rows(record, f"{method} best", context=not rows)
            rows += table
            best = next(r for r in table if r["plan"] == f"{method} best")
            lines.append(f"{method:6s} stop {result.stop_reason:14s} evaluations {best['evaluations used']:3d}, to all goals "
                         f"{best['evaluations to all goals'] or 'never'}, LLM calls {result.usage.calls}, wall {wall:.0f} s")
        objective.close()
        print(f"\n{case} ({'fast' if args.fast else 'clinical'} settings), protocol {args.protocol}")
        print(csv_text(rows).rstrip())
        print("\n".join(lines))


if __name__ == "__main__":
    main()
