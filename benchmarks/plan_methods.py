"""TGD vs random search vs Optuna TPE on treatment plans, same plan-evaluation budget.

Every method runs through the same optimize() loop, PlanObjective and budget; prints goals met
and the score (lower is better) at the start and for the best plan, per case.

    python benchmarks/plan_methods.py [--cases tg119,prostate] [--budget 9] [--proposals 2] [--fast]
    python benchmarks/plan_methods.py --protocol paper [--fast]   # the TextGrad paper's protocol and table

With ``--protocol paper``: every method runs under the paper's protocol (weights start at 100; TGD
stops when all goals are met or after 10 steps, the case's reference plans in its prompt; TPE has
50 evaluations, weights in [100, 400], tuned dose levels within the case's ranges); prints the
paper's table (start, the reference plans, each method's best), the evaluations each method needed
to meet all goals, its wall time, and the verdict the paper's shape asks for: every goal met and the
rectum spared more (lower mean dose) than by every reference plan. ``tgd10`` is TGD under the same
protocol without the stop rule (10 steps): what the model does once the goals are met.
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
        c = objective.case
        context, rows, lines = [], [], []
        for method in methods:
            name = "tgd" if method == "tgd10" else method
            budget = protocol_budget(args.protocol, name, "plan")
            if method == "tgd10":
                budget = {**budget, "stop_when": None}
            engine = Engine(args.model, temperature=0.8) if name == "tgd" else None
            run_dir = out / f"{case}-{method}"
            t0 = time.perf_counter()
            result = optimize(objective, objective.start_value(), method=name, engine=engine, run_dir=run_dir, seed=0, **budget)
            wall = time.perf_counter() - t0
            record = RunRecord.load(run_dir)
            table = domain.comparison_rows(record, f"{method} best", context=True)
            if not context:
                context = [r for r in table if r["plan"] != f"{method} best"]
            best = next(r for r in table if r["plan"] == f"{method} best")
            rows.append(best)
            lines.append(f"{method:6s} stop {result.stop_reason:16s} evaluations {best['evaluations to stop']:3d}, to all goals "
                         f"{best['evaluations to all goals'] or 'never'}, LLM calls {result.usage.calls}, wall {wall:.0f} s"
                         + _verdict(best, [r for r in context if r["plan"].endswith("(reference)")]))
        objective.close()
        grid = "CT grid" if c.plan.judge_grid == "ct" else f"{c.plan.dose_grid_mm:g} mm dose grid"
        norm = "no normalization" if c.normalize == "none" else f"normalized to {c.target} {c.normalize} = {c.prescription_gy:g} Gy"
        print(f"\n{case} ({'fast' if args.fast else 'clinical'} settings: {c.plan.dose_grid_mm:g} mm dose grid, goals on the "
              f"{grid}, {norm}; tunes {' and '.join(c.plan.tune)}), protocol {args.protocol}")
        print(csv_text(context + rows).rstrip())
        print("\n".join(lines))


def _verdict(best: dict, references: list[dict]) -> str:
    """"; all goals met, rectum mean 15.2 Gy vs references 29.3-33.2: spares more" (the paper's shape)."""
    met = best["goals met"] and best["goals met"].split("/")[0] == best["goals met"].split("/")[1]
    text = f"; {'all goals met' if met else 'goals ' + str(best['goals met'])}"
    key = "Rectum mean (Gy)"
    if key in best and best[key] is not None and references:
        ref = [r[key] for r in references if r.get(key) is not None]
        spares = best[key] < min(ref)
        text += f", rectum mean {best[key]:.2f} Gy vs references {min(ref):.2f}-{max(ref):.2f}: {'spares more' if spares else 'does not spare more'}"
        text += " -> the paper's shape" if met and spares else ""
    return text


if __name__ == "__main__":
    main()
