"""The dose engine on TG119 with the fast plan settings: disk cache, batching, and our fluence
optimizer against pyRadPlan's own ``fluence_optimization`` for the same weights.

The influence matrix is built once per session (a few seconds) into this module's own
temporary cache directory, so the "fresh build" below is one.
"""

import shutil
import time

import numpy as np
import pytest

from simulators.dose import BUILD_COUNTS, DoseEngine, cache_path, load_case
from simulators.dose import matrix as matrix_mod
from simulators.dose.reference import pyradplan_fluence

START = {"OuterTarget": 1000.0, "Core": 300.0, "BODY": 100.0}
OTHER = {"OuterTarget": 1000.0, "Core": 1500.0, "BODY": 30.0}


@pytest.fixture(scope="module")
def dose_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("dose-engine-cache")  # empty: nothing to load, everything built here


@pytest.fixture(scope="module")
def tg119(dose_cache):
    """(engine, pyRadPlan objects, build seconds, builds before) for TG119 fast, built fresh."""
    case = load_case("tg119", fast=True)
    builds = BUILD_COUNTS["tg119"]
    t0 = time.perf_counter()
    engine = DoseEngine(case, cache_dir=dose_cache)
    seconds = time.perf_counter() - t0
    return engine, engine.pyradplan, seconds, builds


def test_fresh_build_is_cached_atomically_on_disk(tg119, dose_cache):
    engine, raw, _, builds = tg119
    assert engine.data.source == "built" and raw is not None and BUILD_COUNTS["tg119"] == builds + 1
    path = cache_path(engine.case, dose_cache)
    assert path.is_file() and engine.data.path == path
    assert not list(dose_cache.glob(".*.tmp"))  # no temporary file left behind
    d = engine.describe()
    assert d["matrix_shape"][1] == engine.optimizer.n_bixels > 500
    assert engine.data.matrix.dtype == np.float32 and engine.data.matrix.indices.dtype == np.int32


def test_second_engine_loads_from_disk_without_recomputing(tg119, dose_cache):
    engine, _, build_seconds, _ = tg119
    builds = BUILD_COUNTS["tg119"]
    t0 = time.perf_counter()
    again = DoseEngine(load_case("tg119", fast=True), cache_dir=dose_cache)
    seconds = time.perf_counter() - t0
    assert again.data.source == "cache" and again.pyradplan is None
    assert BUILD_COUNTS["tg119"] == builds
    assert seconds < build_seconds
    a, b = engine.data.matrix, again.data.matrix
    assert a.shape == b.shape and np.array_equal(a.indptr, b.indptr) and np.array_equal(a.data, b.data)
    for name in engine.data.masks:
        assert np.array_equal(engine.data.masks[name], again.data.masks[name])


def test_a_cache_file_from_other_settings_is_rebuilt_not_reused(tg119, dose_cache):
    engine = tg119[0]
    changed = load_case("tg119", fast=True, gantry_angles=[0.0, 120.0, 240.0], dose_grid_mm=9.0, bixel_width_mm=15.0)
    target = cache_path(changed, dose_cache)
    assert target != engine.data.path
    shutil.copyfile(engine.data.path, target)  # a stale/foreign file where the new one belongs
    builds = BUILD_COUNTS["tg119"]
    rebuilt = DoseEngine(changed, cache_dir=dose_cache)
    assert BUILD_COUNTS["tg119"] == builds + 1 and rebuilt.data.source == "built"
    assert rebuilt.data.grid_spacing == (9.0, 9.0, 9.0) and rebuilt.optimizer.n_bixels < engine.optimizer.n_bixels
    assert DoseEngine(changed, cache_dir=dose_cache).data.source == "cache"  # the rewritten file now fits


def test_the_simulator_optimizes_each_canonical_vector_once(tg119, dose_cache):
    from simulators.dose import DoseSimulator

    sim = DoseSimulator(tg119[0].case, cache_dir=dose_cache)
    rounded = {"OuterTarget": 1000.00004, "Core": 300.0, "BODY": 100.0}  # the same vector at 4 significant digits
    first, repeat, other = sim.evaluate([START, rounded, OTHER])
    assert sim.optimized == 2 and not first.cached and repeat.cached and not other.cached
    assert repeat.metrics == first.metrics and repeat.candidate == first.candidate == '{"BODY": 100, "Core": 300, "OuterTarget": 1000}'
    fresh = DoseSimulator(tg119[0].case, cache_dir=dose_cache)  # another process: the SQLite table answers
    again = fresh.evaluate([OTHER])[0]
    assert fresh.optimized == 0 and again.cached and again.metrics == other.metrics
    assert fresh.fluence(OTHER) is not None and fresh.optimized == 0  # a fluence is re-optimized, not counted as a new plan
    bad = sim.evaluate([{"OuterTarget": -1.0, "Core": 1.0, "BODY": 1.0}])[0]
    assert bad.error and "finite and >= 0" in bad.error and sim.optimized == 2


def test_batch_of_k_equals_k_single_runs(tg119):
    engine = tg119[0]
    vectors = [START, OTHER, {"OuterTarget": 300.0, "Core": 100.0, "BODY": 400.0}]
    batch = engine.evaluate(vectors)
    for w, b in zip(vectors, batch):
        single = engine.evaluate([w])[0]
        assert b.error is None and single.error is None
        assert np.array_equal(b.fluence, single.fluence)
        assert b.metrics == single.metrics
    assert batch[0].metrics != batch[1].metrics  # different weights, different plans


def test_results_do_not_depend_on_the_thread_count(tg119, dose_cache):
    engine = tg119[0]
    one = DoseEngine(engine.case, cache_dir=dose_cache, threads=1).evaluate([OTHER])[0]
    two = DoseEngine(engine.case, cache_dir=dose_cache, threads=2).evaluate([OTHER])[0]
    assert np.array_equal(one.fluence, two.fluence) and one.metrics == two.metrics


@pytest.mark.parametrize("weights", [START, OTHER], ids=["start", "other"])
def test_our_optimizer_matches_pyradplan_within_half_a_gray(tg119, weights):
    engine, raw, _, _ = tg119
    ours = engine.evaluate([weights])[0]
    x_ref, info = pyradplan_fluence(raw, engine.case, weights)
    assert info["nit"] == ours.optimizer["nit"] == engine.case.plan.max_iter
    ref = engine.metrics_from_dose(engine.dose_grid_dose(x_ref))
    keys = ["OuterTarget.D95", "OuterTarget.Dmean", "OuterTarget.D10", "Core.Dmean", "Core.D10", "BODY.Dmean"]
    diffs = {k: abs(ours.metrics[k] - ref[k]) for k in keys}
    assert max(diffs.values()) < 0.5, diffs
    # and the weights matter: the two vectors give clearly different core doses
    assert abs(ref["Core.Dmean"] - engine.evaluate([START if weights is OTHER else OTHER])[0].metrics["Core.Dmean"]) > 0.5


def test_bad_vectors_get_errors_and_the_others_go_on(tg119):
    engine = tg119[0]
    res = engine.evaluate([{"OuterTarget": 1.0}, START, {"OuterTarget": 0.0, "Core": 0.0, "BODY": 0.0},
                           {"OuterTarget": -1.0, "Core": 1.0, "BODY": 1.0}])
    assert "missing" in res[0].error and res[1].error is None and "zero" in res[2].error and ">= 0" in res[3].error
    assert res[1].metrics["OuterTarget.D95"] > 40


def test_a_failed_inner_optimization_only_fails_its_own_vector(tg119, monkeypatch):
    engine = tg119[0]
    opt = engine.optimizer
    original = opt.evaluate_block
    poisoned = opt.names.index("BODY")

    def flaky(X, P, **kw):
        f, G = original(X, P, **kw)
        f = f.copy()
        f[P.weights[poisoned] == 7.0] = np.nan  # the vector with BODY = 7 "diverges"
        return f, G

    monkeypatch.setattr(opt, "evaluate_block", flaky)
    res = engine.evaluate([START, {**START, "BODY": 7.0}, OTHER])
    assert res[0].error is None and res[2].error is None
    assert res[1].error and "inner optimization" in res[1].error and res[1].metrics == {}


def test_metrics_are_on_the_dose_grid_and_complete(tg119):
    engine = tg119[0]
    m = engine.evaluate([START])[0].metrics
    assert m["dose_grid_mm"] == 6.0
    for s in ("OuterTarget", "Core", "BODY"):
        for q in ("Dmean", "Dmax", "D2", "D50", "D95", "D98"):
            assert np.isfinite(m[f"{s}.{q}"])
        assert m[f"{s}.Dmax"] >= m[f"{s}.D2"] >= m[f"{s}.D50"] >= m[f"{s}.D95"] >= m[f"{s}.D98"]
    assert 0 < m["OuterTarget.CI"] <= 1 and m["OuterTarget.HI"] >= 0
    assert 45 < m["OuterTarget.Dmean"] < 55  # the 50 Gy objective is honoured


def test_not_enough_memory_fails_with_a_clear_message(dose_cache, monkeypatch):
    monkeypatch.setattr(matrix_mod, "available_memory_gb", lambda: 0.05)
    with pytest.raises(MemoryError, match=r"needs about .* GB of free memory.*fast"):
        DoseEngine(load_case("tg119", fast=True, dose_grid_mm=11.0), cache_dir=dose_cache)


def test_synthetic_prostate_runs_through_pyradplan(dose_cache):
    case = load_case("prostate", fast=True)
    engine = DoseEngine(case, cache_dir=dose_cache)
    res = engine.evaluate([case.start_weights()])[0]
    assert res.error is None
    m = res.metrics
    assert 70 < m["PTV.Dmean"] < 85  # near the 78 Gy prescription
    assert m["Rectum.Dmean"] < m["PTV.Dmean"] and m["FemHead_L.Dmax"] < m["PTV.Dmax"]
    assert m["BODY.D50"] < 10


def test_openblas_is_single_threaded_only_while_optimizing():
    from simulators.dose._blas import _openblas_libs, single_threaded_blas

    libs = _openblas_libs()
    assert libs  # numpy's and scipy's wheels each bundle one
    before = [get() for _, get in libs]
    with single_threaded_blas():
        assert all(get() == 1 for _, get in libs)
        with single_threaded_blas():  # re-entrant
            assert all(get() == 1 for _, get in libs)
        assert all(get() == 1 for _, get in libs)
    assert [get() for _, get in libs] == before


def test_compiled_kernels_match_scipy_and_do_not_depend_on_threads_or_block_size():
    import scipy.sparse as sp

    from simulators.dose import kernels

    rng = np.random.default_rng(3)
    A = sp.random(3000, 400, density=0.05, format="csr", dtype=np.float32, random_state=rng)
    A = sp.csr_array((A.data, A.indices.astype(np.int32), A.indptr.astype(np.int32)), shape=A.shape)
    P = kernels.Prepared(A)
    X = rng.random((400, 6)).astype(np.float32)  # 6 columns: a pass of four and two single ones
    g = np.zeros((6, 3000), dtype=np.float32)
    rows = np.sort(rng.choice(3000, 700, replace=False))
    g[:, rows] = rng.standard_normal((6, rows.size))
    kernels.set_threads(1)
    d1, b1 = kernels.dose(P, X), kernels.backprop(P, g, rows)
    kernels.set_threads(2)
    d2, b2 = kernels.dose(P, X), kernels.backprop(P, g, rows)
    assert np.array_equal(d1, d2) and np.array_equal(b1, b2)  # fixed summation order
    np.testing.assert_allclose(d1, A.astype(np.float64) @ X.astype(np.float64), rtol=1e-9)
    np.testing.assert_allclose(b1, A.T.astype(np.float64) @ g.T.astype(np.float64), rtol=1e-9, atol=1e-9)
    # any column of a block is the single-column product, bit for bit
    for j in range(6):
        assert np.array_equal(kernels.dose(P, X[:, j:j + 1])[:, 0], d1[:, j])
    assert np.array_equal(kernels.backprop(P, g[:1], rows)[:, 0], b1[:, 0])
    g1 = g[:1].copy()
    g1[0, rows[::2]] = 0.0  # fewer active rows in this column than in the block: same sums for it
    block = np.concatenate([g1, g[1:]])
    assert np.array_equal(kernels.backprop(P, g1, rows[1::2])[:, 0], kernels.backprop(P, block, rows)[:, 0])


def test_compiled_residuals_are_the_numpy_ones_bit_for_bit():
    """Overlapping VOIs of all three kinds, screened and unscreened rows, NaN, -0.0 and a zero weight:
    f and the voxel gradients of the compiled pass equal numpy's, bit for bit."""
    import scipy.sparse as sp

    from simulators.dose.optimizer import FluenceOptimizer, Term

    rng = np.random.default_rng(11)
    A = sp.csr_array(sp.random(500, 60, density=0.2, format="csr", dtype=np.float32, random_state=rng))
    terms = [Term("PTV", "squared_deviation", 2.0, np.arange(0, 120), 130, n_empty=10),
             Term("PTV_min", "squared_underdose", 1.9, np.arange(0, 120), 120),
             Term("OAR", "squared_overdose", 1.0, np.arange(100, 300), 200),
             Term("BODY", "squared_overdose", 0.5, np.arange(0, 500), 510, n_empty=10)]
    opt = FluenceOptimizer(A, terms)
    assert opt.kernel == "numba"
    Dt = (rng.random((5, opt.n_rows)) * 3).astype(np.float32)  # 5 columns: any k
    Dt[0, :7] = np.nan
    Dt[1, 100:110] = -0.0
    Dt[2, 150:160] = np.float32(1.0)  # exactly at an overdose limit
    P = rng.random((4, 5)) * 100
    P[2, 3] = 0.0
    computed = rng.random(opt.n_rows) < 0.3
    computed[:7] = True  # the NaN doses are among the computed rows
    for mask in (None, computed):
        f, gt = opt._residuals(Dt, P, mask)
        f_np, gt_np = opt._residuals_numpy(Dt, P, mask)
        assert f.tobytes() == f_np.tobytes() and gt.tobytes() == gt_np.tobytes()
        assert np.isnan(f[0]) and np.isfinite(f[1:]).all() and np.any(gt != 0)


def test_screened_rows_change_no_bit_of_the_plans(tg119):
    """Rows whose dose bound stays under their overdose limit are skipped; an unsafe bound (or a
    skipped row that counted) would change f or g and so the L-BFGS-B path."""
    opt = tg119[0].optimizer
    assert opt.kernel == "numba" and opt.screening  # numba is a pinned dependency; screening is the default
    runs = {}
    vectors = [START, OTHER, {**START, "Core": 30.0}, {**OTHER, "BODY": 300.0}]  # a 4-column pass
    for screening in (False, True):
        opt.screening, opt.stats = screening, type(opt.stats)()
        runs[screening] = (opt.optimize(vectors), opt.stats)
    opt.screening = True
    (plain, s0), (screened, s1) = runs[False], runs[True]
    assert all(np.array_equal(a.x, b.x) and a.fun == b.fun and a.nit == b.nit for a, b in zip(plain, screened))
    assert s0.forward_rows == s0.evaluations * opt.n_rows
    assert s1.forward_rows < 0.4 * s1.evaluations * opt.n_rows and s1.full_forwards < s1.evaluations / 4


def test_group_sums_bound_every_rows_dose_from_above():
    import scipy.sparse as sp

    from simulators.dose import kernels

    rng = np.random.default_rng(5)
    A = sp.random(2000, 300, density=0.1, format="csr", dtype=np.float32, random_state=rng)
    P = kernels.Prepared(A)
    S = kernels.GroupSums(P, shift=3)
    x_ref = rng.random((300, 5)).astype(np.float32)  # 5 columns: a 4-column pass and a single one
    x = x_ref + rng.normal(0, 0.2, (300, 5)).astype(np.float32)
    exact = A.astype(np.float64) @ x.astype(np.float64)  # (rows, 2)
    dref = np.ascontiguousarray((A.astype(np.float64) @ x_ref.astype(np.float64)).T, dtype=np.float32)
    delta = np.maximum(x - x_ref, 0.0)
    for level in (np.median(exact), np.percentile(exact, 90)):
        limit = np.full(2000, level)
        need = np.zeros((5, 2000), dtype=bool)
        S.mark_needed(dref, delta, limit, need)
        assert np.all(need.T[exact > level])  # every row over the limit is flagged
        assert 0 < need.sum() < need.size  # and the bound is not trivial


def test_lock_step_solvers_take_the_iterates_of_scipys_minimize(tg119):
    """minimize_block drives scipy's L-BFGS-B core itself: same x, f, counts and message as
    ``minimize(method="L-BFGS-B")`` for a plan (stopped by maxiter) and a small bound-constrained
    quadratic (converged), several solvers at once."""
    from scipy.optimize import Bounds, minimize

    from simulators.dose.lbfgsb import minimize_block

    def reference(fg, x0, maxiter, tol):
        return minimize(fg, x0, jac=True, method="L-BFGS-B", bounds=Bounds(0.0, np.inf), tol=tol,
                        options={"maxiter": maxiter})

    def same(ours, ref):
        return (np.array_equal(ours.x, ref.x) and ours.fun == ref.fun and ours.nit == ref.nit
                and ours.nfev == ref.nfev and ours.message == ref.message and ours.success == ref.success)

    opt = tg119[0].optimizer
    P = opt.weight_matrix([START, OTHER])
    refs = [reference(lambda x, j=j: (lambda f, G: (float(f[0]), G[:, 0].copy()))(*opt.evaluate_block(x[:, None], P[:, [j]])),
                      np.zeros(opt.n_bixels), 25, opt.tol) for j in range(2)]
    ours = minimize_block(lambda X, ids: opt.evaluate_block(X, P[:, ids]), np.zeros((opt.n_bixels, 2)), opt.tol, 25)
    assert all(same(o, r) for o, r in zip(ours, refs)) and refs[0].nit == 25

    rng = np.random.default_rng(2)
    C = rng.normal(0, 1, (30, 3))  # minimum of sum (x - c)^2 on x >= 0: some bounds active
    W = rng.uniform(0.5, 5, (30, 3))
    refs = [reference(lambda x, j=j: (float(np.sum(W[:, j] * (x - C[:, j]) ** 2)), 2 * W[:, j] * (x - C[:, j])),
                      np.ones(30), 100, 1e-8) for j in range(3)]

    def quad(X, ids):  # column by column, as the references sum
        f = [float(np.sum(W[:, j] * (X[:, i] - C[:, j]) ** 2)) for i, j in enumerate(ids)]
        return np.array(f), 2 * W[:, ids] * (X - C[:, ids])

    ours = minimize_block(quad, np.ones((30, 3)), 1e-8, 100)
    assert all(same(o, r) for o, r in zip(ours, refs)) and all(r.success and r.nit < 100 for r in refs)
