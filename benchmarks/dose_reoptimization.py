"""Re-optimization speed and accuracy: pyRadPlan's ``fluence_optimization`` vs ours (simulators.dose).

    python benchmarks/dose_reoptimization.py                 # TG119, clinical settings (5 mm), ~2-3 min
    python benchmarks/dose_reoptimization.py --fast          # 10 mm bixels, 6 mm dose grid, seconds

Prints, for the same weight vector: wall time of pyRadPlan's optimizer (as a user calls it, and
with OpenBLAS limited to one thread as ours runs) and of ours (1 and 2 threads for the sparse
products), the DVH metrics side by side (dose grid) with the max abs difference in Gy; then
k = 4 weight vectors optimized together vs one; then the same plan's metrics on the CT grid;
then the objective kinds beyond the squared three (min DVH, max DVH, mean dose, EUD; plus a squared
overdose) on the same case against pyRadPlan on the same objectives. Both optimizers run scipy's
L-BFGS-B from x = 0 (the new kinds: from the same uniform fluence, since pyRadPlan's EUD gradient is
NaN at zero dose) for the case's max_iter iterations. Every time is the best of 3 runs, pyRadPlan's
as ours. Metrics are compared on the dose grid (the case is loaded with judge_grid = "dose").
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from simulators.dose import DoseEngine, load_case  # noqa: E402
from simulators.dose._blas import single_threaded_blas  # noqa: E402
from simulators.dose.matrix import available_memory_gb, build  # noqa: E402
from simulators.dose.reference import pyradplan_fluence  # noqa: E402


def _load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


REPEAT = 3  # the optimizer timings are the best of REPEAT runs (same results each time): a 2-vCPU VM jitters


def _best(fn):
    runs = [_timed(fn) for _ in range(REPEAT)]
    return runs[0][0], min(t for _, t in runs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--case", default="tg119")
    ap.add_argument("--fast", action="store_true", help="the manifest's fast settings instead of the clinical ones")
    ap.add_argument("--cache-dir", default=None, help="influence-matrix cache (default: a fresh temporary directory)")
    args = ap.parse_args()

    case = load_case(args.case, fast=args.fast, judge_grid="dose")  # the optimizers compared where they work
    s = case.plan
    print(f"case {case.name} ({s.variant}): {len(s.gantry_angles)} beams, bixel {s.bixel_width_mm:g} mm, "
          f"dose grid {s.dose_grid_mm:g} mm, {s.max_iter} L-BFGS-B iterations; load average {_load()}; "
          f"{os.cpu_count()} cores, {available_memory_gb():.1f} GB available")
    if args.cache_dir:
        run(case, Path(args.cache_dir))
    else:
        with tempfile.TemporaryDirectory(prefix="dose-bench-") as tmp:
            run(case, Path(tmp))


def run(case, cache_dir: Path) -> None:
    s = case.plan

    engine, t_build = _timed(lambda: DoseEngine(case, cache_dir=cache_dir, threads=1))
    d = engine.describe()
    print(f"influence matrix: {d['source']} in {t_build:.1f} s ({d['matrix_shape'][0]} non-empty voxel rows x "
          f"{d['matrix_shape'][1]} bixels, {d['nnz'] / 1e6:.1f} M non-zeros, {d['matrix_gb']:.2f} GB float32 CSR)")
    again, t_load = _timed(lambda: DoseEngine(case, cache_dir=cache_dir, threads=2))
    print(f"second engine: {again.data.source} in {t_load:.1f} s")
    del again
    raw = engine.pyradplan if engine.pyradplan is not None else build(case)[1]

    w0 = case.start_weights()
    names = case.objective_names
    print(f"\nweights: {w0}")

    # ---------------------------------------------------------------- one vector, k = 4, both kernels
    (x_ref, info), t_ref = _best(lambda: pyradplan_fluence(raw, case, w0))
    with single_threaded_blas():
        (x_ref1, info1), t_ref1 = _best(lambda: pyradplan_fluence(raw, case, w0))
    print(f"pyRadPlan fluence_optimization:              {t_ref:6.2f} s  ({info['nit']} it, {info['nfev']} f/g evals; default OpenBLAS threads)")
    print(f"pyRadPlan fluence_optimization (1 BLAS th.): {t_ref1:6.2f} s  ({info1['nit']} it, {info1['nfev']} f/g evals)")
    ref = engine.metrics_from_dose(engine.dose_grid_dose(x_ref))
    keys = [k for k in ref if k != "dose_grid_mm"]
    rng = np.random.default_rng(0)
    vectors = [w0] + [{n: float(w0[n] * np.exp(rng.normal(0, 0.7))) for n in names} for _ in range(3)]

    print("\nproducts: scipy (single-threaded CSR), numba (compiled, one matrix read per block), "
          "numba + screening (forward product skips rows that cannot reach their overdose limit; default)")
    print(f"{'products':17s} {'threads':>7s} {'k=1 s':>7s} {'vs pyRadPlan':>12s} {'k=4 s':>7s} {'k=4/k=1':>8s} "
          f"{'max |dD| Gy':>11s} {'batch==single':>13s}")
    plans = {}
    variants = (("scipy", {"TGSCI_DOSE_KERNEL": "scipy"}), ("numba", {"TGSCI_DOSE_SCREENING": "0"}),
                ("numba + screening", {}))
    for name, env in variants:
        os.environ.update(env)
        for threads in (1, 2):
            eng = DoseEngine(case, cache_dir=cache_dir, threads=threads)
            eng.evaluate([vectors[2]])  # warm-up: numba's compiled kernels load from their cache once per process
            one, t_one = _best(lambda: eng.evaluate([w0])[0])
            four, t_four = _best(lambda: eng.evaluate(vectors))
            diff = max(abs(ref[k] - one.metrics[k]) for k in keys if k.split(".")[-1].startswith("D"))
            plans[(name, threads)] = one
            print(f"{name:17s} {threads:7d} {t_one:7.2f} {t_ref / t_one:11.1f}x {t_four:7.2f} {t_four / t_one:8.2f} "
                  f"{diff:11.3f} {str(four[0].metrics == one.metrics):>13s}")
        for key in env:
            os.environ.pop(key)
    ours1 = plans[("numba + screening", 1)]

    print(f"\nDVH metrics on the {s.dose_grid_mm:g} mm dose grid (Gy; V in %, HI/CI unitless)")
    print(f"{'metric':22s} {'pyRadPlan':>10s} {'scipy 1th':>10s} {'screened 1th':>12s} {'screened 2th':>12s}")
    for k in keys:
        print(f"{k:22s} {ref[k]:10.3f} {plans[('scipy', 1)].metrics[k]:10.3f} {ours1.metrics[k]:12.3f} "
              f"{plans[('numba + screening', 2)].metrics[k]:12.3f}")

    # ---------------------------------------------------------------- grids
    ct = engine.ct_grid_metrics(ours1.fluence)
    print(f"\nsame plan (ours), dose grid ({s.dose_grid_mm:g} mm) vs CT grid (dose linearly interpolated):")
    worst = 0.0
    for k in keys:
        if k in ct:
            delta = ct[k] - ours1.metrics[k]
            if k.split(".")[-1].startswith("D"):
                worst = max(worst, abs(delta))
            print(f"{k:22s} {ours1.metrics[k]:10.3f} {ct[k]:10.3f} {delta:+10.3f}")
    print(f"max |dose grid - CT grid| over D-metrics (Gy): {worst:.3f}")
    new_kinds(case, cache_dir, raw)
    print(f"\nload average at the end: {_load()}")


NEW_KINDS = {  # TG119's structures with objectives of the kinds pyRadPlan adds to the squared three
    "OuterTarget": [{"name": "OT_min", "kind": "min_dvh", "dose_gy": 50.0, "volume_pct": 95.0, "weight": 1000.0},
                    {"name": "OT_hot", "kind": "squared_overdose", "dose_gy": 53.0, "weight": 300.0}],
    "Core": [{"name": "Core_dvh", "kind": "max_dvh", "dose_gy": 25.0, "volume_pct": 10.0, "weight": 300.0},
             {"name": "Core_mean", "kind": "mean_dose", "dose_gy": 0.0, "weight": 10.0},
             {"name": "Core_eud", "kind": "eud", "dose_gy": 0.0, "exponent": 8.0, "weight": 3.0}],
}


def new_kinds(case, cache_dir: Path, raw) -> None:
    """The new objective kinds against pyRadPlan on the same objectives (goal: >= 3x on one thread)."""
    import tomllib

    from simulators.dose.cases import parse_case

    data = tomllib.loads(Path(case.manifest).read_text())
    for st in data["structures"]:
        st["objectives"] = NEW_KINDS.get(st["name"], st.get("objectives", []))
    data["reference_plans"] = []
    overrides = {k: getattr(case.plan, k) for k in ("bixel_width_mm", "dose_grid_mm", "max_iter")}
    kinds = parse_case(data, fast=case.plan.variant.startswith("fast"), manifest=case.manifest, judge_grid="dose", **overrides)
    w = kinds.start_weights()
    print(f"\nnew kinds (min DVH, max DVH, mean dose, EUD a = 8, squared overdose), same objectives in both: {w}")
    engine = DoseEngine(kinds, cache_dir=cache_dir, threads=1)
    x0 = np.full(engine.optimizer.n_bixels, 0.5)
    with single_threaded_blas():
        (x_ref, info), t_ref = _best(lambda: pyradplan_fluence(raw, kinds, w, x0=x0))
    ref = engine.metrics_from_dose(engine.dose_grid_dose(x_ref))
    goal_keys = [g.key for g in kinds.goals] + [f"{kinds.target}.Dmean", "Core.Dmean"]
    print(f"pyRadPlan fluence_optimization (1 BLAS th.): {t_ref:6.2f} s  ({info['nit']} it, {info['nfev']} f/g evals)")
    print(f"{'ours':17s} {'threads':>7s} {'k=1 s':>7s} {'vs pyRadPlan':>12s}  {'max |dD| on goal metrics, Gy':>28s}")
    for threads in (1, 2):
        eng = DoseEngine(kinds, cache_dir=cache_dir, threads=threads)
        eng.evaluate([{k: v * 1.1 for k, v in w.items()}], x0=x0)  # warm-up (compiled kernels load once)
        one, t_one = _best(lambda: eng.evaluate([w], x0=x0)[0])
        diff = max(abs(ref[k] - one.metrics[k]) for k in goal_keys)
        print(f"{'numba + screening':17s} {threads:7d} {t_one:7.2f} {t_ref / t_one:11.1f}x  {diff:28.3f}")
    for k in goal_keys:
        print(f"  {k:20s} pyRadPlan {ref[k]:8.3f}  ours {one.metrics[k]:8.3f}")


if __name__ == "__main__":
    main()
