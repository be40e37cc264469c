"""A small slice of the paper's molecule study, measured: targets x the protocol's 3 fragment starts x
methods, every run at the same docking budget, in Pareto mode (Vina, QED, SA), best molecules and
drugs confirmed with 3 seeds. Prints per method the hypervolume, the top-5 AUC scaled by the best
drug, how often the best molecule matches or beats the best drug on both Vina and QED, how often the
single-seed best stays the best after confirmation, and the measured costs; then projects the full
study (every target with a drug x 3 starts x 3 methods, and DOCKSTRING's 58 targets for oracle
efficiency) to one 32-core node from those costs.

    python benchmarks/molecule_study.py [--targets PPARA,ADRB1,CA2] [--budget 10] [--out runs/bench-molecule-study]

Writes the sweep (its report: summary.csv, drug_table.csv, hypervolume.png, each run's front.png)
under --out and the figures to benchmarks/results/molecule_study.txt.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--targets", default="PPARA,ADRB1,CA2")
    parser.add_argument("--methods", default="tgd,random,graph-ga")
    parser.add_argument("--budget", type=int, default=10, help="docked molecules per run, the start included")
    parser.add_argument("--proposals", type=int, default=3)
    parser.add_argument("--model", default="local/smollm2-135m")
    parser.add_argument("--out", default=str(ROOT / "runs" / "bench-molecule-study"))
    parser.add_argument("--results", default=str(ROOT / "benchmarks" / "results" / "molecule_study.txt"))
    parser.add_argument("--report-only", action="store_true", help="report the runs --out holds (finished or not), run nothing")
    args = parser.parse_args()

    from simulators.targets import get_target, target_names
    from tgsci.presets import protocol
    from tgsci.record import RunRecord
    from tgsci.sweep import run_sweep
    from tgsci.sweep.report import report_sweep

    preset = protocol("paper", "molecule")
    targets, methods = args.targets.split(","), args.methods.split(",")
    spec = {
        "sweep": {"name": "molecule-study-slice", "kind": "molecule", "targets": targets, "starts": preset["starts"],
                  "methods": methods, "seeds": [0]},
        "objective": {"objectives": ["vina", "qed", "sa"], "confirm_seeds": 3, "confirm_top": 3},
        "budget": {"max_steps": 10 * args.budget, "n_proposals": args.proposals, "max_evaluations": args.budget, "patience": 0},
        "engine": {"model": args.model, "temperature": 0.8},
        "resources": {"llm_concurrency": 1},
    }
    t0 = time.perf_counter()
    if not args.report_only:
        run_sweep(spec, args.out, n_workers=1, dashboard=False)
    wall = time.perf_counter() - t0
    report = report_sweep(args.out)
    finished = [r for r in report.rows if r["status"] == "finished"]
    wall = sum(r["wall_s"] or 0.0 for r in finished) if args.report_only else wall

    docking_s, dockings, llm_s, llm_calls, run_walls = [], 0, 0.0, 0, []
    stays, flagged, confirmed_n = [], 0, 0
    for row in finished:
        run = RunRecord.load(Path(args.out) / row["name"])
        for rec in run.steps:
            for c in rec.candidates:
                if c.simulated and not c.cached and c.seconds > 0:
                    docking_s.append(c.seconds)
            llm_s += rec.usage.seconds
            llm_calls += rec.usage.calls
        dockings += row["simulations"] or 0
        run_walls.append(row["wall_s"] or 0.0)
        confirmed = run.summary.confirmed
        if confirmed is not None:
            stays.append(confirmed.stays_best)
            flagged += len(confirmed.disagree)
            confirmed_n += len(confirmed.candidates) + len(confirmed.references)

    lines = [f"molecule study slice: {len(targets)} targets ({', '.join(targets)}) x {len(preset['starts'])} starts "
             f"({', '.join(preset['starts'])}) x {len(methods)} methods, {args.budget} dockings per run, Pareto mode "
             f"(Vina, QED, SA; reference point Vina 0, QED 0, SA 10), exhaustiveness 8, model {args.model}",
             f"wall {wall:.0f} s on this machine ({'sum of the finished runs' if args.report_only else 'the sweep'}); "
             f"{len(finished)} of {len(report.rows)} runs finished", ""]
    lines.append(f"{'method':10s}{'runs':>6s}{'hypervolume':>13s}{'auc_top5':>10s}{'auc5/drug':>10s}{'best Vina':>11s}{'best QED':>10s}")
    for method in methods:
        mine = [r for r in report.rows if r["method"] == method and r["status"] == "finished"]

        def mean(key):
            values = [r[key] for r in mine if r.get(key) is not None]
            return statistics.mean(values) if values else float("nan")

        lines.append(f"{method:10s}{len(mine):6d}{mean('hypervolume'):13.2f}{mean('auc_top5'):10.2f}{mean('auc_top5_vs_ref'):10.2f}"
                     f"{mean('best_vina'):11.2f}{mean('best_qed'):10.2f}")
    summary_file = Path(args.out) / "drug_table_summary.csv"
    if summary_file.is_file():
        lines += ["", "matches or beats the best approved drug on both Vina and QED (confirmed numbers, best of each method's runs per target):",
                  summary_file.read_text().strip()]
    kept = [s for s in stays if s is not None]
    lines += ["", f"confirmation (3 seeds): the single-seed best stayed the best in {sum(kept)} of {len(kept)} runs; "
                  f"{flagged} of {confirmed_n} confirmed molecules had seeds more than 1 kcal/mol apart"]

    per_dock = statistics.mean(docking_s) if docking_s else float("nan")
    per_call = llm_s / llm_calls if llm_calls else float("nan")
    with_drugs = [n for n in target_names() if get_target(n).references]
    budget_full = preset["budget"]["max_evaluations"]
    lines += ["", f"measured: {len(docking_s)} dockings, {per_dock:.1f} s each on average (2 cores, Vina on 2 threads); "
                  f"{llm_calls} LLM calls ({args.model}), {per_call:.1f} s each; mean run wall {statistics.mean(run_walls):.0f} s"]
    # Projection: on a 32-core node a LocalCluster gives each of 32 runs one core (simulators.docking.docking_layout);
    # a docking on 1 thread costs about 1.7x one on 2 threads (benchmarks/results/docking_batch.txt).
    one_core = per_dock * 1.7
    per_run_confirm = 2 * confirmed_n / max(1, len(finished))  # the 2 extra seeds of each confirmed molecule (drugs: once per target)
    lines.append(f"confirmation: {per_run_confirm:.0f} extra dockings per run at most (2 more seeds of each confirmed molecule)")
    for label, n_targets in ((f"paper comparison: {len(with_drugs)} targets with drugs", len(with_drugs)),
                             ("oracle efficiency: all 58 DOCKSTRING targets", 58)):
        runs = n_targets * 3 * len(methods)
        total = runs * (budget_full + per_run_confirm) * one_core  # core-seconds of docking, the budget fully spent (an upper bound)
        lines.append(f"projection, {label} x 3 starts x {len(methods)} methods = {runs} runs x <= {budget_full} dockings: "
                     f"{total / 3600:.0f} core-hours of docking = {total / 32 / 3600:.1f} h on one 32-core node "
                     f"(plus LLM time: a hosted model's calls overlap the dockings of other runs)")
    text = "\n".join(lines)
    print(text)
    Path(args.results).write_text(text + "\n")


if __name__ == "__main__":
    main()
