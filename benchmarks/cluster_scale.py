"""The paper's molecule study on SLURM, measured on a slice and projected to a 32-core node and 4 nodes.

Runs a slice of the study at the paper protocol's budget (<= 61 dockings per run, early stop after
5 steps without a better molecule, best molecules confirmed with 3 seeds) through `tgsci sweep
--cluster slurm`'s code path (``run_sweep_on_slurm``) on a real single-node SLURM (tests/slurm_node.py;
or the cluster SLURM_CONF names with --use-existing), one single-threaded worker per core as on a
node. Measures worker start-up through SLURM, Dask's per-task overhead, per-docking and per-LLM-call
costs and how many dockings early stopping leaves per run; then projects the full studies.

    python benchmarks/cluster_scale.py [--targets PPARA] [--starts 3] [--jobs 2] [--hosted-call-s 4]

Figures go to benchmarks/results/cluster_scale.txt.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def overheads(settings) -> tuple[float, float]:
    """(seconds from submitting the jobs to every worker connected, Dask's round trip per no-op task)."""
    from distributed import Client

    from tgsci.sweep.slurm import check_settings, start_cluster

    check_settings(settings)
    cluster = start_cluster(settings)
    try:
        t0 = time.perf_counter()
        cluster.scale(jobs=settings.jobs)
        with Client(cluster) as client:
            client.wait_for_workers(settings.jobs * settings.cores_per_job, timeout=300)
            startup = time.perf_counter() - t0
            client.gather(client.map(lambda i: i, range(20), pure=False))  # warm
            t1 = time.perf_counter()
            n = 400
            client.gather(client.map(lambda i: i, range(n), pure=False))
            per_task = (time.perf_counter() - t1) / n
    finally:
        cluster.close()
    return startup, per_task


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--targets", default="PPARA")
    parser.add_argument("--starts", type=int, default=3, help="how many of the protocol's fragment starts")
    parser.add_argument("--methods", default="tgd,random,graph-ga")
    parser.add_argument("--jobs", type=int, default=2, help="SLURM jobs of one core each")
    parser.add_argument("--model", default="local/smollm2-135m")
    parser.add_argument("--hosted-call-s", type=float, default=4.0, help="assumed latency of a hosted model's call")
    parser.add_argument("--use-existing", action="store_true", help="use the SLURM that SLURM_CONF names")
    parser.add_argument("--out", default=str(ROOT / "runs" / "bench-cluster-scale"))
    parser.add_argument("--results", default=str(ROOT / "benchmarks" / "results" / "cluster_scale.txt"))
    args = parser.parse_args()

    from simulators.targets import get_target, target_names
    from tgsci.presets import protocol
    from tgsci.record import RunRecord
    from tgsci.sweep.report import report_sweep
    from tgsci.sweep.slurm import SlurmSettings, run_sweep_on_slurm

    node = None
    if not args.use_existing:
        from slurm_node import SlurmNode

        node = SlurmNode(Path(tempfile.mkdtemp(prefix="tgsci-slurm-"))).start()
        os.environ.update(node.env, TGSCI_SCHEDULER_HOST="127.0.0.1")
    cache = tempfile.mkdtemp(prefix="tgsci-bench-cache-")  # cold: every docking is real
    settings = SlurmSettings(jobs=args.jobs, cores_per_job=1, memory="3GB", walltime="00:29:00",
                             log_dir=Path(args.out) / "slurm-logs", cache_dir=cache)
    preset = protocol("paper", "molecule")
    targets, methods, starts = args.targets.split(","), args.methods.split(","), preset["starts"][: args.starts]
    spec = {
        "sweep": {"name": "cluster-scale", "kind": "molecule", "targets": targets, "starts": starts, "methods": methods,
                  "seeds": [0], "protocol": "paper"},
        "objective": dict(preset["objective"]),
        "engine": {"model": args.model, "temperature": 0.8},
    }
    try:
        startup, per_task = overheads(settings)
        t0 = time.perf_counter()
        result = run_sweep_on_slurm(spec, args.out, settings, dashboard=False)
        wall = time.perf_counter() - t0
    finally:
        if node is not None:
            node.stop()
    report = report_sweep(args.out)

    dock_s, per_method, llm_calls, llm_s, run_s = [], {}, 0, 0.0, []
    for row in report.rows:
        if row["status"] != "finished":
            continue
        run = RunRecord.load(Path(args.out) / row["name"])
        for rec in run.steps:
            dock_s += [c.seconds for c in rec.candidates if c.simulated and not c.cached and c.seconds > 0]
            llm_calls += rec.usage.calls - rec.usage.cached_calls
            llm_s += rec.usage.seconds
        per_method.setdefault(row["method"], []).append((row["simulations"] or 0, row["evaluations"] or 0,
                                                         row["steps"] or 0, row["wall_s"] or 0.0, row["llm_calls"] or 0))
        run_s.append(row["wall_s"] or 0.0)
    t_dock = statistics.mean(dock_s)
    t_call = llm_s / llm_calls if llm_calls else 0.0
    lines = [f"cluster scale: the paper's molecule protocol (<= {preset['budget']['max_evaluations']} dockings per run, "
             f"patience {preset['budget']['patience']}, 3-seed confirmation) on SLURM (slurm-wlm 22.05, single node, "
             f"{args.jobs} jobs x 1 core, one single-threaded Dask worker each), model {args.model}",
             f"slice: {len(targets)} target(s) ({', '.join(targets)}) x {len(starts)} starts x {len(methods)} methods = "
             f"{len(result.runs)} runs; {len(result.finished)} finished; sweep wall {wall:.0f} s", "",
             f"worker start-up through SLURM (sbatch to {args.jobs} workers connected): {startup:.1f} s",
             f"Dask per-task overhead (no-op round trip): {per_task * 1e3:.2f} ms",
             f"docking: {len(dock_s)} dockings on 1 thread, {t_dock:.1f} s each (median {statistics.median(dock_s):.1f} s)",
             f"LLM: {llm_calls} calls, {t_call:.1f} s each on 1 thread ({args.model})", "",
             f"{'method':10s}{'runs':>5s}{'dockings/run':>14s}{'molecules/run':>15s}{'steps':>7s}{'LLM calls':>11s}{'run wall s':>12s}"]
    for method, rows in per_method.items():
        m = lambda i: statistics.mean(r[i] for r in rows)  # noqa: E731
        lines.append(f"{method:10s}{len(rows):5d}{m(0):14.1f}{m(1):15.1f}{m(2):7.1f}{m(4):11.1f}{m(3):12.0f}")

    # Projection. A run on a 32-core node gets one core (TGSCI_DOCKING_CORES=1, docking_layout: one
    # Vina thread per docking when cores <= runs); its work is its dockings plus, for TGD, its LLM calls
    # (a hosted model's call holds the worker while it waits; the embedded model's call is CPU on it).
    dock_per_run = {m: statistics.mean(r[0] for r in rows) for m, rows in per_method.items()}
    calls_per_run = {m: statistics.mean(r[4] for r in rows) for m, rows in per_method.items()}
    longest = max(run_s)
    with_drugs = len([n for n in target_names() if get_target(n).references])
    lines += ["", f"projection (work per run = dockings x {t_dock:.1f} s + LLM calls x call time; wall = work / workers "
                  f"+ the longest run {longest:.0f} s + start-up {startup:.0f} s):"]
    for label, n_targets in ((f"paper comparison, {with_drugs} targets with drugs", with_drugs), ("oracle efficiency, 58 targets", 58)):
        for model_label, call_s in ((f"hosted model ({args.hosted_call_s:.0f} s per call, assumed)", args.hosted_call_s),
                                    (f"embedded model ({t_call:.1f} s per call)", t_call)):
            work = sum(n_targets * 3 * (dock_per_run[m] * t_dock + calls_per_run[m] * call_s) for m in per_method)
            runs = n_targets * 3 * len(per_method)
            for nodes in (1, 4):
                hours = (work / (32 * nodes) + longest + startup) / 3600
                lines.append(f"  {label} x 3 starts x {len(per_method)} methods = {runs} runs, {model_label}, "
                             f"{nodes} x 32 cores: {hours:.1f} h")
    tgd_rate = 32 * (calls_per_run.get("tgd", 0) / max(1e-9, statistics.mean(r[3] for r in per_method.get("tgd", [(0, 0, 0, 1, 0)]))))
    lines.append(f"LLM request rate at full load on one node if every worker ran TGD: ~{tgd_rate * 60:.0f} requests/minute "
                 f"at this machine's pace (set [engine] requests_per_minute to the provider's limit: the sweep keeps it)")
    text = "\n".join(lines)
    print(text)
    Path(args.results).write_text(text + "\n")


if __name__ == "__main__":
    main()
