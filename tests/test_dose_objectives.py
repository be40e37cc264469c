"""The objective kinds of the fluence optimizer (mean dose, EUD, min/max DVH beside the squared
three) against pyRadPlan 0.5's own implementation: per kind on the same doses, through pyRadPlan's
planning problem on TG119, and a whole plan; per-plan dose levels in one block."""

import tomllib

import numpy as np
import pytest

from simulators.dose import DoseEngine
from simulators.dose.cases import CaseError, ObjectiveSpec, cases_dir, parse_case
from simulators.dose.objectives import KINDS, linear_quantile, value_and_gradient
from simulators.dose.optimizer import FluenceOptimizer, Term
from simulators.dose.reference import pyradplan_fluence, pyradplan_objective, pyradplan_objective_and_gradient

PARAMS = {  # (dose level, volume %, exponent) per kind, as an OAR or target would use them
    "squared_deviation": (50.0, None, None), "squared_overdose": (53.0, None, None), "squared_underdose": (49.0, None, None),
    "mean_dose": (5.0, None, None), "eud": (8.0, None, 8.0), "min_dvh": (50.0, 95.0, None), "max_dvh": (15.0, 10.0, None),
}
NEW = ("mean_dose", "eud", "min_dvh", "max_dvh")


def _spec(kind: str, linear: bool = False) -> ObjectiveSpec:
    dose, volume, exponent = PARAMS[kind]
    return ObjectiveSpec(kind, "X", kind, dose, 1.0, volume_pct=volume, exponent=exponent, linear=linear)


@pytest.mark.parametrize("kind, linear", [(k, False) for k in NEW] + [("mean_dose", True), ("eud", True)])
@pytest.mark.parametrize("n_empty", [0, 37])
def test_each_kind_is_pyradplans_objective_on_the_same_doses(kind, linear, n_empty):
    """f and df/dd of ``objectives.value_and_gradient`` equal pyRadPlan's ``compute_objective`` and
    ``compute_gradient`` (on the VOI's doses, the empty rows' zeros included) to 1e-9 relative."""
    rng = np.random.default_rng(7)
    d = np.concatenate([rng.uniform(40, 56, 400), rng.uniform(0, 30, 300)]).astype(np.float32)  # target-like and OAR-like
    spec = _spec(kind, linear)
    ours_f, ours_g = value_and_gradient(kind, d, d.size + n_empty, n_empty, spec.dose_gy, spec.volume_pct or np.nan,
                                        spec.exponent or 1.0, linear)
    ref = pyradplan_objective(spec, 1.0)
    values = np.concatenate([d.astype(np.float64), np.zeros(n_empty)])
    ref_f = float(ref.compute_objective(values))
    ref_g = np.asarray(ref.compute_gradient(values))
    assert ref_f > 0 and np.any(ref_g[:d.size] != 0)  # the objective is active at these doses
    assert ours_f == pytest.approx(ref_f, rel=1e-9)
    np.testing.assert_allclose(ours_g, ref_g[:d.size], rtol=1e-9, atol=1e-12 * np.abs(ref_g).max())


def test_linear_quantile_is_numpys_with_the_zeros_of_empty_rows():
    rng = np.random.default_rng(1)
    for n, zeros in ((10, 0), (10, 3), (101, 0), (7, 20), (1, 0)):
        d = rng.uniform(0, 60, n)
        full = np.concatenate([d, np.zeros(zeros)])
        for p in (0.0, 0.05, 0.1, 0.5, 0.9, 0.95, 1.0, 1.0 / 3.0):
            assert linear_quantile(d, zeros, p) == pytest.approx(float(np.quantile(full, p, method="linear")), rel=1e-12)


def test_eud_at_zero_dose_has_a_zero_gradient_where_pyradplans_is_nan():
    f, g = value_and_gradient("eud", np.zeros(50, dtype=np.float32), 50, 0, 0.0, exponent=8.0)
    assert f == 0.0 and np.all(g == 0.0)
    with np.errstate(all="ignore"):
        assert np.isnan(np.asarray(pyradplan_objective(_spec("eud"), 1.0).compute_gradient(np.zeros(50)))).all()


@pytest.mark.parametrize("kind, dose, volume, exponent, reason", [
    ("max_dvh", 70.0, None, None, "needs volume_pct"),
    ("min_dvh", 70.0, 120.0, None, r"within \[0, 100\]"),
    ("eud", 10.0, None, 0.0, "> 0"),
    ("eud", 10.0, None, -4.0, "> 0"),
    ("eud", 10.0, None, 0.5, ">= 1"),
    ("eud", 10.0, None, None, "needs exponent"),
    ("mean_dose", -1.0, None, None, ">= 0"),
    ("squared_overdose", 30.0, 20.0, None, "volume_pct applies to min_dvh and max_dvh"),
    ("minimum_dvh", 30.0, 20.0, None, "kind must be one of"),
])
def test_a_term_with_bad_parameters_is_refused(kind, dose, volume, exponent, reason):
    with pytest.raises(ValueError, match=reason):
        Term("X", kind, dose, np.arange(3), 3, volume=volume, exponent=exponent)


# ---------------------------------------------------------------------------------- on TG119
def _case_with_every_kind():
    """TG119 (fast settings) with objectives of all seven kinds."""
    path = cases_dir() / "tg119.toml"
    data = tomllib.loads(path.read_text())
    st = {s["name"]: s for s in data["structures"]}
    st["OuterTarget"]["objectives"] = [
        {"name": "OT_min", "kind": "min_dvh", "dose_gy": 50.0, "volume_pct": 95.0, "weight": 1000.0},
        {"name": "OT_dev", "kind": "squared_deviation", "dose_gy": 50.0, "weight": 30.0},
        {"name": "OT_under", "kind": "squared_underdose", "dose_gy": 47.0, "weight": 100.0},
        {"name": "OT_hot", "kind": "squared_overdose", "dose_gy": 53.0, "weight": 300.0}]
    st["Core"]["objectives"] = [
        {"name": "Core_dvh", "kind": "max_dvh", "dose_gy": 15.0, "volume_pct": 10.0, "weight": 300.0},
        {"name": "Core_mean", "kind": "mean_dose", "dose_gy": 0.0, "weight": 10.0},
        {"name": "Core_eud", "kind": "eud", "dose_gy": 0.0, "exponent": 8.0, "weight": 3.0}]
    data["reference_plans"] = []
    return parse_case(data, fast=True, manifest=str(path))


@pytest.fixture(scope="module")
def every_kind(tmp_path_factory):
    """(engine, pyRadPlan objects, a plan's fluence) for TG119 fast with every kind, built fresh."""
    case = _case_with_every_kind()
    engine = DoseEngine(case, cache_dir=tmp_path_factory.mktemp("every-kind"))
    x0 = np.full(engine.optimizer.n_bixels, 0.5)
    plan = engine.evaluate([case.start_weights()], x0=x0)[0]
    assert plan.error is None
    return engine, engine.pyradplan, plan.fluence, x0


@pytest.mark.parametrize("kind", KINDS)
def test_f_and_gradient_match_pyradplans_on_tg119(every_kind, kind):
    """Per kind, at a TG119 plan's fluence: f and the gradient w.r.t. the fluence from our block
    evaluation against (a) pyRadPlan's objective class on the same voxel doses, chained through the
    same matrix in float64: 1e-6 relative; (b) pyRadPlan's own planning problem, which computes in
    float32 (its own rounding is ~1e-6): 1e-5 relative."""
    engine, raw, x, _ = every_kind
    opt, case = engine.optimizer, engine.case
    obj = next(o for o in case.objectives if o.kind == kind)
    term = opt.terms[opt.names.index(obj.name)]
    only = {n: (obj.weight if n == obj.name else 0.0) for n in opt.names}
    f, G = opt.evaluate_block(x[:, None], opt.weight_matrix([only]))
    f, g = float(f[0]), G[:, 0]
    # (a) the objective as pyRadPlan defines it, on the doses our products give
    A = opt.A.astype(np.float64)
    d = A @ x.astype(np.float32).astype(np.float64)
    values = np.concatenate([d[term.rows], np.zeros(term.n_empty)])
    ref = pyradplan_objective(obj, obj.weight)
    ref_f = obj.weight * float(ref.compute_objective(values))
    ref_g = A[term.rows].T @ (obj.weight * np.asarray(ref.compute_gradient(values))[:term.rows.size])
    assert ref_f > 0 and np.linalg.norm(ref_g) > 0, "the objective must be active at this plan"
    assert f == pytest.approx(ref_f, rel=1e-6)
    # min DVH: its few active voxels sit just below D, where a float32 dose keeps ~1e-5 of d - D
    assert np.linalg.norm(g - ref_g) <= (5e-6 if kind == "min_dvh" else 1e-6) * np.linalg.norm(ref_g)
    # (b) pyRadPlan's planning problem end to end
    pf, pg = pyradplan_objective_and_gradient(raw, case, only, x)
    assert f == pytest.approx(pf, rel=1e-5)
    assert np.linalg.norm(g - pg) <= 1e-5 * np.linalg.norm(pg)


def test_a_plan_with_the_new_kinds_is_pyradplans_plan(every_kind):
    """The same objectives optimized by pyRadPlan (scipy L-BFGS-B) and by us, from the same start
    (pyRadPlan's EUD cannot start at zero fluence): goal metrics within 0.5 Gy."""
    engine, raw, _, x0 = every_kind
    case = engine.case
    weights = case.start_weights()
    ours = engine.evaluate([weights], x0=x0)[0]
    x_ref, info = pyradplan_fluence(raw, case, weights, x0=x0)
    assert info["nit"] == ours.optimizer["nit"] == case.plan.max_iter
    ref = engine.metrics_from_dose(engine.dose_grid_dose(x_ref))
    keys = ["OuterTarget.D95", "OuterTarget.D10", "OuterTarget.Dmean", "Core.D10", "Core.Dmean", "BODY.Dmean"]
    diffs = {k: abs(ours.metrics[k] - ref[k]) for k in keys}
    assert max(diffs.values()) < 0.5, diffs
    # and the new kinds steer the plan: without the core's max DVH, mean and EUD its dose rises clearly
    free = engine.evaluate([{**weights, "Core_dvh": 0.0, "Core_mean": 0.0, "Core_eud": 0.0}], x0=x0)[0]
    assert free.metrics["Core.Dmean"] > ours.metrics["Core.Dmean"] + 2.0


def test_rows_of_unscreenable_kinds_are_always_computed_and_screening_changes_no_bit(every_kind):
    engine, _, _, x0 = every_kind
    opt = engine.optimizer
    vectors = [engine.case.start_weights(), {**engine.case.start_weights(), "Core_dvh": 30.0, "OT_hot": 3000.0}]
    runs = {}
    for screening in (False, True):
        opt.screening, opt.stats = screening, type(opt.stats)()
        runs[screening] = (opt.optimize(vectors, x0=x0), opt.stats)
    opt.screening = True
    (plain, _), (screened, s1) = runs[False], runs[True]
    assert all(np.array_equal(a.x, b.x) and a.fun == b.fun for a, b in zip(plain, screened))
    assert s1.forward_rows < s1.evaluations * opt.n_rows  # the body's overdose rows are still screened


def test_per_plan_dose_levels_in_one_block_equal_single_runs(every_kind):
    """Each column of a block may carry its own dose levels and volumes; a batch gives each plan
    exactly what it gets alone, and the levels matter."""
    engine, _, _, x0 = every_kind
    opt = engine.optimizer
    w = engine.case.start_weights()
    doses = [{}, {"OT_min": 52.0, "Core_dvh": 12.0}, {"OT_hot": 51.0, "Core_eud": 2.0}]
    volumes = [{}, {"OT_min": 98.0}, {"Core_dvh": 30.0}]
    batch = opt.optimize([w] * 3, x0=x0, doses=doses, volumes=volumes)
    for j in range(3):
        single = opt.optimize([w], x0=x0, doses=[doses[j]], volumes=[volumes[j]])[0]
        assert np.array_equal(single.x, batch[j].x) and single.fun == batch[j].fun
    assert not np.array_equal(batch[0].x, batch[1].x) and not np.array_equal(batch[0].x, batch[2].x)
    with pytest.raises(ValueError, match="volume_pct must be within"):
        opt.optimize([w], doses=[{}], volumes=[{"Core_dvh": 150.0}])
    with pytest.raises(ValueError, match="unknown objective"):
        opt.optimize([w], doses=[{"Lung": 3.0}])


def test_compiled_and_numpy_passes_agree_bit_for_bit_with_every_kind():
    import scipy.sparse as sp

    rng = np.random.default_rng(12)
    A = sp.csr_array(sp.random(400, 50, density=0.2, format="csr", dtype=np.float32, random_state=rng))
    terms = [Term("T", "min_dvh", 1.5, np.arange(0, 100), 110, n_empty=10, volume=95.0),
             Term("T_hot", "squared_overdose", 1.7, np.arange(0, 100), 110, n_empty=10),
             Term("O", "max_dvh", 0.8, np.arange(100, 250), 150, volume=20.0),
             Term("O_mean", "mean_dose", 0.0, np.arange(100, 250), 150),
             Term("O_eud", "eud", 0.2, np.arange(120, 250), 130, exponent=6.0),
             Term("BODY", "squared_overdose", 1.0, np.arange(0, 400), 400)]
    opt = FluenceOptimizer(A, terms)
    Dt = (rng.random((5, opt.n_rows)) * 2.5).astype(np.float32)
    P = opt.params(rng.random((6, 5)) * 100)
    P.doses[0] = [1.5, 1.4, 1.6, 1.5, 1.45]
    for mask in (None, rng.random(opt.n_rows) < 0.5):
        f, gt = opt._residuals(Dt, P, mask)
        f_np, gt_np = opt._residuals_numpy(Dt, P, mask)
        assert f.tobytes() == f_np.tobytes() and gt.tobytes() == gt_np.tobytes()


@pytest.mark.parametrize("change, where, reason", [
    (lambda d: d["structures"][1]["objectives"][0].update(kind="maximum_dvh"), "structures[1].objectives[0].kind",
     "unknown kind 'maximum_dvh'"),
    (lambda d: d["structures"][1]["objectives"][0].update(kind="max_dvh"), "structures[1].objectives[0].kind",
     "needs volume_pct"),
    (lambda d: d["structures"][1]["objectives"][0].update(kind="eud", exponent=0), "structures[1].objectives[0].exponent",
     "must be a finite number > 0"),
    (lambda d: d["prescription"].update(normalize="D95", normalize_to="Core"), "prescription.normalize_to",
     "Core is an OAR, not a target"),
    (lambda d: d["prescription"].update(normalize="V95Gy"), "prescription.normalize", 'normalize must be "D95"'),
    (lambda d: d["structures"][0]["objectives"][0].update(dose_range=[55, 45]), "structures[0].objectives[0].dose_range",
     "the minimum exceeds the maximum"),
    (lambda d: d["structures"][0]["objectives"][0].update(dose_range=[40, 45]), "structures[0].objectives[0].dose_range",
     "dose level 50 Gy is outside its dose_range"),
    (lambda d: d["plan"].update(tune=["weights", "dose_levels"]), "plan.tune", "no objective gives a dose_range"),
])
def test_bad_case_files_name_the_line_and_key(tmp_path, change, where, reason):
    """Each manifest error is one message with the file, line and key path, before any dose work."""
    import re

    from simulators.dose.cases import load_case

    text = (cases_dir() / "tg119.toml").read_text()
    data = tomllib.loads(text)
    change(data)
    path = tmp_path / "case.toml"
    path.write_text(_toml(data))
    with pytest.raises(CaseError) as err:
        load_case(str(path))
    message = str(err.value)
    assert reason in message and str(path) in message
    key = where
    assert re.search(r"line \d+: " + re.escape(key), message), message
    line = int(re.search(r"line (\d+)", message).group(1))
    leaf = key.rsplit(".", 1)[-1]
    assert leaf in path.read_text().splitlines()[line - 1]  # the line holds that key


def _toml(data: dict) -> str:
    """A small TOML writer for the case schema (tables, arrays of tables, inline values)."""
    import json

    def value(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, dict):
            return "{" + ", ".join(f"{k} = {value(x)}" for k, x in v.items()) + "}"
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return json.dumps(v)

    out: list[str] = []

    def table(prefix: str, body: dict, array: bool = False):
        out.append(f"[[{prefix}]]" if array else f"[{prefix}]")
        nested = []
        for k, v in body.items():
            if isinstance(v, dict) and not (prefix.endswith("reference_plans") and k == "weights"):
                nested.append((f"{prefix}.{k}", v, False))
            elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
                nested += [(f"{prefix}.{k}", x, True) for x in v]
            else:
                out.append(f"{k} = {value(v)}")
        for p, b, a in nested:
            table(p, b, a)

    for k, v in data.items():
        if not isinstance(v, (dict, list)):
            out.append(f"{k} = {value(v)}")
    for k, v in data.items():
        if isinstance(v, dict):
            table(k, v)
        elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            for x in v:
                table(k, x, True)
    return "\n".join(out) + "\n"
