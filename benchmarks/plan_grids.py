"""Where to judge a plan: the dose grid, the CT grid (the RTDOSE export's interpolation), or a dose grid
as fine as the CT. Per case and dose grid: the matrix, the seconds per evaluated plan (inner
optimization, and the CT-grid judging on top), and how far the two grids read the same plan apart
on the goals' dose metrics (start weights, normalized as the case says).

    python benchmarks/plan_grids.py [--cases prostate,tg119] [--grids 5,3]

Writes nothing but stdout (``benchmarks/results/plan_grids.txt`` is a copy of one run).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from simulators.dose import DoseEngine, load_case  # noqa: E402
from simulators.dose.matrix import available_memory_gb  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", default="prostate,tg119")
    ap.add_argument("--grids", default="5,3", help="dose grids (mm) to try per case")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    print(f"{available_memory_gb():.1f} GB available; times are the best of {args.repeat}")
    print(f"{'case':10s} {'dose grid':>9s} {'nnz M':>6s} {'build s':>7s} {'plan s':>7s} {'CT judge s':>10s} "
          f"{'judge/plan':>10s} {'max |CT - dose| Gy':>18s}  worst goal metric (dose grid -> CT grid), goals met on CT")
    for name in args.cases.split(","):
        for grid in (float(g) for g in args.grids.split(",")):
            case = load_case(name, dose_grid_mm=grid, judge_grid="ct", memory_gb=1.0)
            t0 = time.perf_counter()
            engine = DoseEngine(case, check_memory=False)
            build = time.perf_counter() - t0
            weights = case.start_weights()
            res = engine.evaluate([weights])[0]  # warm-up: kernels, CT grid
            plan = min(_timed(lambda: engine.optimizer.optimize([weights])) for _ in range(args.repeat))
            dose = engine.dose_grid_dose(res.fluence)
            judge = min(_timed(lambda: engine.judge(dose)) for _ in range(args.repeat))
            ct = engine.metrics_from_dose(dose, "ct")
            dg = engine.metrics_from_dose(dose, "dose")
            gaps = {g.key: ct[g.key] - dg[g.key] for g in case.goals if g.unit == "Gy"}
            worst = max(gaps, key=lambda k: abs(gaps[k]))
            met = sum(g.met(res.metrics[g.key]) for g in case.goals)
            print(f"{name:10s} {grid:7g}mm {engine.data.matrix.nnz / 1e6:6.1f} {build:7.1f} {plan:7.2f} {judge:10.3f} "
                  f"{judge / plan:10.3f} {abs(gaps[worst]):18.2f}  {worst} {dg[worst]:.2f} -> {ct[worst]:.2f}, {met}/{len(case.goals)}")
            engine.optimizer.close()


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


if __name__ == "__main__":
    main()
