"""Sweep scaling: the same small sweep on a LocalCluster with 1 and with 2 workers.

Each configuration gets a fresh docking cache, so every docking is real. Printed per
configuration: wall time of run_sweep() (cluster start and stop included), the sum of the
runs' own optimize() wall times, their docking time, and the scheduling overhead per run:

    overhead per run = (wall x workers - sum of optimize() wall times) / runs

i.e. worker-seconds not spent inside optimize() (cluster start/stop, task shipping, the
per-task objective construction and idle workers at the end), per run, also as % of a run's
docking time. "in-cluster" is the same figure over the span from the first task start to the
last task end (cluster start/stop excluded).

    nice -n 5 python benchmarks/sweep_scaling.py [--targets 4] [--wait-quiet 20]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

TARGETS = ["PPARA", "JAK2", "PTGS2", "ESR1", "ACHE", "DRD2", "EGFR", "AR"]


def spec(targets: list[str], exhaustiveness: int, steps: int, proposals: int) -> dict:
    return {
        "sweep": {"name": "scaling", "kind": "molecule", "targets": targets, "starts": ["CC(=O)Nc1ccccc1"],
                  "seeds": [0], "method": "random"},
        "budget": {"max_steps": steps, "n_proposals": proposals, "patience": 0},
        "docking": {"exhaustiveness": exhaustiveness, "cpu": 1},
        "objective": {"compare_references": False},
    }


def measure(n_workers: int, sweep: dict, root: Path) -> dict:
    from simulators.files import read_json
    from tgsci.record import RunRecord
    from tgsci.sweep import run_sweep

    cache = root / f"cache-{n_workers}"
    out = root / f"out-{n_workers}"
    os.environ["TGSCI_CACHE_DIR"] = str(cache)  # fresh: every docking is real
    t0 = time.perf_counter()
    result = run_sweep(sweep, out, n_workers=n_workers)
    wall = time.perf_counter() - t0
    assert result.ok, result.status
    optimize_s, docking_s, starts, ends, dockings, evaluations = [], [], [], [], 0, 0
    for name in result.runs:
        (attempt,) = read_json(out / name / "sweep_run.json")["attempts"]
        optimize_s.append(attempt["optimize_s"])
        starts.append(attempt["started"])
        ends.append(attempt["ended"])
        dockings += attempt["simulations"]
        secs = 0.0
        for rec in RunRecord.load(out / name).steps:
            for c in rec.candidates:
                evaluations += 1
                if not c.cached:
                    secs += c.seconds
        docking_s.append(secs)
    n = len(result.runs)
    span = max(ends) - min(starts)
    return {
        "workers": n_workers, "runs": n, "wall_s": wall, "span_s": span, "sum_optimize_s": sum(optimize_s),
        "mean_optimize_s": statistics.mean(optimize_s), "mean_docking_s": statistics.mean(docking_s),
        "dockings": dockings, "evaluations": evaluations,
        "overhead_per_run_s": (wall * n_workers - sum(optimize_s)) / n,
        "incluster_overhead_per_run_s": (span * n_workers - sum(optimize_s)) / n,
    }


def wait_quiet(minutes: float, threshold: float = 1.5) -> float:
    deadline = time.monotonic() + minutes * 60
    load = os.getloadavg()[0]
    while load >= threshold and time.monotonic() < deadline:
        time.sleep(15)
        load = os.getloadavg()[0]
    return load


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--targets", type=int, default=4)
    p.add_argument("--exhaustiveness", type=int, default=2)
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--proposals", type=int, default=2)
    p.add_argument("--workers", default="1,2")
    p.add_argument("--wait-quiet", type=float, default=0.0, help="wait up to this many minutes for load < 1.5")
    p.add_argument("--json", default=None, help="also write the figures to this file")
    args = p.parse_args(argv)

    load = wait_quiet(args.wait_quiet) if args.wait_quiet else os.getloadavg()[0]
    sweep = spec(TARGETS[: args.targets], args.exhaustiveness, args.steps, args.proposals)
    print(f"sweep: {args.targets} targets x 1 start, method random, exhaustiveness {args.exhaustiveness}, "
          f"{args.steps} steps x {args.proposals} proposals; {os.cpu_count()} CPUs; load average at start {load:.2f}")
    root = Path(tempfile.mkdtemp(prefix="tgsci-sweep-bench-"))
    rows = []
    try:
        for n in [int(x) for x in args.workers.split(",")]:
            r = measure(n, sweep, root)
            rows.append(r)
            print(
                f"workers={r['workers']}: wall {r['wall_s']:.1f} s for {r['runs']} runs ({r['dockings']} dockings, "
                f"{r['evaluations']} evaluations); task span {r['span_s']:.1f} s; sum of optimize() {r['sum_optimize_s']:.1f} s "
                f"(mean {r['mean_optimize_s']:.2f} s/run, of which docking {r['mean_docking_s']:.2f} s)"
            )
            print(
                f"  overhead per run: {r['overhead_per_run_s']:.2f} s = {100 * r['overhead_per_run_s'] / r['mean_docking_s']:.1f} % "
                f"of a run's docking time (cluster start/stop included); in-cluster {r['incluster_overhead_per_run_s']:.3f} s = "
                f"{100 * r['incluster_overhead_per_run_s'] / r['mean_docking_s']:.2f} %"
            )
        if len(rows) >= 2:
            print(f"speed-up wall(1 worker) / wall(2 workers) = {rows[0]['wall_s'] / rows[1]['wall_s']:.2f}; "
                  f"task span ratio {rows[0]['span_s'] / rows[1]['span_s']:.2f}")
        print(f"load average at end {os.getloadavg()[0]:.2f}")
        if args.json:
            Path(args.json).write_text(json.dumps({"load_start": load, "rows": rows}, indent=2))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
