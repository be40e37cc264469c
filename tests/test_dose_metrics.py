"""DVH metrics on hand-computed dose arrays, goals, case manifests and the synthetic phantom (no pyRadPlan runs)."""

import math

import numpy as np
import pytest

from simulators.dose import metrics as M
from simulators.dose.cases import GoalSpec, list_cases, load_case, parse_case
from simulators.dose.phantoms import grid_axes, rasterize, synthetic_masks

RAMP = np.arange(1000) * 0.1  # 0.0, 0.1, ..., 99.9 Gy, one voxel each


def test_uniform_dose_every_metric_is_the_dose():
    d = np.full(500, 42.0)
    m = M.structure_metrics(d, "S", d_levels=[10], v_levels=[42.0, 42.1, 10.0])
    for key in ("S.Dmean", "S.Dmax", "S.D2", "S.D10", "S.D50", "S.D95", "S.D98"):
        assert m[key] == pytest.approx(42.0)
    assert m["S.V42Gy"] == 100.0 and m["S.V10Gy"] == 100.0 and m["S.V42.1Gy"] == 0.0
    assert M.homogeneity_index(d) == 0.0


def test_linear_ramp_by_hand():
    # sorted high to low, d(k) = 100 - 0.1 k; Dx = d(ceil(10 x)): D95 = d(950) = 5.0 etc.
    assert M.dose_at_volume(RAMP, 95) == pytest.approx(5.0)
    assert M.dose_at_volume(RAMP, 98) == pytest.approx(2.0)
    assert M.dose_at_volume(RAMP, 50) == pytest.approx(50.0)
    assert M.dose_at_volume(RAMP, 2) == pytest.approx(98.0)
    assert M.dose_at_volume(RAMP, 0) == pytest.approx(99.9)
    assert M.volume_at_dose(RAMP, 5.0) == pytest.approx(95.0)
    assert M.volume_at_dose(RAMP, 50.0) == pytest.approx(50.0)
    assert M.volume_at_dose(RAMP, 100.0) == 0.0
    m = M.structure_metrics(RAMP, "PTV", v_levels=[70])
    assert m["PTV.Dmean"] == pytest.approx(49.95)
    assert m["PTV.Dmax"] == pytest.approx(99.9)
    assert m["PTV.D95"] == pytest.approx(5.0)
    assert m["PTV.V70Gy"] == pytest.approx(30.0)
    assert M.homogeneity_index(RAMP) == pytest.approx((98.0 - 2.0) / 50.0)


def test_dx_and_vx_are_consistent_and_order_free():
    rng = np.random.default_rng(1)
    d = rng.gamma(4.0, 10.0, size=777)
    for x in (2, 10, 50, 95, 98):
        dx = M.dose_at_volume(d, x)
        assert M.volume_at_dose(d, dx) >= x - 1e-9  # at least x % receive D_x
        assert M.volume_at_dose(d, np.nextafter(dx, np.inf)) < x  # and it is the largest such dose
        assert M.dose_at_volume(rng.permutation(d), x) == dx


def test_dvh_curve_matches_volume_at_dose_and_is_monotone():
    levels = np.linspace(0, 100, 201)
    curve = M.dvh_curve(RAMP, levels)
    assert np.all(np.diff(curve) <= 0)
    assert curve[0] == 100.0 and curve[-1] == 0.0
    for lev, c in zip(levels[::20], curve[::20]):
        assert c == pytest.approx(M.volume_at_dose(RAMP, lev))


def test_paddick_ci_by_hand():
    dose = np.zeros(100)
    target = np.arange(10)
    dose[:8] = 60.0  # 8 of 10 target voxels covered
    dose[50:54] = 60.0  # 4 voxels outside the target inside the isodose
    # TV_PIV^2 / (TV * PIV) = 8^2 / (10 * 12)
    assert M.paddick_ci(dose, target, 50.0) == pytest.approx(64 / 120)
    dose[50:54] = 0.0
    dose[:10] = 60.0
    assert M.paddick_ci(dose, target, 50.0) == pytest.approx(1.0)


def test_metric_names_parse_and_bad_ones_are_rejected():
    assert M.parse_metric("D95") == ("D", 95.0)
    assert M.parse_metric("V70Gy") == ("V", 70.0)
    assert M.parse_metric("Dmean") == ("Dmean", None)
    for bad in ("D", "V70", "D120", "mean", "v70gy"):
        with pytest.raises(ValueError):
            M.parse_metric(bad)
    with pytest.raises(ValueError):
        M.dose_at_volume([], 50)


def test_goal_violation_in_percent_of_the_goal():
    d95 = GoalSpec("PTV", "D95", ">=", 50.0, "src")
    assert d95.violation_pct(47.5) == pytest.approx(5.0)
    assert d95.violation_pct(50.0) == 0.0 and d95.met(51.0)
    v70 = GoalSpec("Rectum", "V70Gy", "<=", 20.0, "src", unit="%")
    assert v70.violation_pct(25.0) == pytest.approx(25.0)
    assert v70.met(19.9) and not v70.met(20.1)
    assert math.isinf(d95.violation_pct(float("nan")))


def test_case_manifests_load_with_sources_and_fast_variants():
    assert {"tg119", "prostate"} <= set(list_cases())
    tg = load_case("tg119")
    assert tg.objective_names == ["OuterTarget", "Core", "BODY"]
    assert tg.start_weights() == {"OuterTarget": 1000.0, "Core": 300.0, "BODY": 100.0}
    assert [g.label for g in tg.goals] == ["OuterTarget D95 >= 50 Gy", "OuterTarget D10 <= 55 Gy", "Core D10 <= 25 Gy"]
    assert all("TG-119" in g.source for g in tg.goals)
    assert tg.plan.bixel_width_mm == 5.0 and tg.plan.dose_grid_mm == 5.0 and len(tg.plan.gantry_angles) == 9
    fast = load_case("tg119", fast=True)
    assert (fast.plan.bixel_width_mm, fast.plan.dose_grid_mm, fast.plan.max_iter) == (10.0, 6.0, 50)
    pr = load_case("prostate")
    assert pr.prescription_gy == 78.0 and pr.target == "PTV"
    goals = {g.key: g for g in pr.goals}
    assert goals["PTV.D98"].value == 78.0 and goals["PTV.D98"].op == ">=" and pr.normalize == "D98"  # RTOG 0126
    assert goals["PTV.D2"].value == pytest.approx(83.46) and goals["PTV.D2"].acceptable == pytest.approx(85.8)
    assert goals["CTV.Dmin"].value == 78.0 and goals["CTV.Dmin"].acceptable == pytest.approx(74.1)
    assert "NOT CHECKED" in goals["CTV.Dmin"].source and "RTOG 0126" in goals["PTV.D2"].source
    assert goals["Rectum.V70Gy"].value == 20.0 and "QUANTEC" in goals["Rectum.V70Gy"].source
    assert goals["Bladder.V65Gy"].value == 50.0
    assert goals["BODY.Dmax"].value == pytest.approx(85.8)
    assert goals["FemHead_L.Dmax"].value == 50.0 and goals["FemHead_R.Dmax"].value == 50.0
    assert all(g.source for g in pr.goals)


def test_unknown_case_and_bad_override_are_explained():
    with pytest.raises(ValueError, match="valid cases: .*prostate.*tg119"):
        load_case("lung")
    with pytest.raises(ValueError, match="unknown plan setting"):
        load_case("tg119", fast=True, beam_energy=6)


def test_changed_settings_change_the_matrix_key_but_max_iter_does_not():
    from simulators.dose.matrix import cache_key

    a = load_case("tg119", fast=True)
    assert cache_key(a) == cache_key(load_case("tg119", fast=True))
    assert cache_key(a) != cache_key(load_case("tg119", fast=True, dose_grid_mm=7.0))
    assert cache_key(a) != cache_key(load_case("tg119", fast=True, gantry_angles=[0.0, 120.0, 240.0]))
    assert cache_key(a) == cache_key(load_case("tg119", fast=True, max_iter=20))


def test_ellipsoid_rasterizes_to_its_analytic_volume():
    phantom = {"voxel_mm": [2.0, 2.0, 2.0], "size_mm": [100.0, 100.0, 100.0]}
    axes = grid_axes(phantom)
    mask = rasterize({"shape": "ellipsoid", "center": [0, 0, 0], "radii": [30.0, 20.0, 25.0]}, axes)
    assert mask.sum() * 8.0 == pytest.approx(4 / 3 * math.pi * 30 * 20 * 25, rel=0.03)
    cyl = rasterize({"shape": "elliptic_cylinder", "center": [0, 0], "radii": [20.0, 10.0], "z_range": [-20, 20]}, axes)
    assert cyl.sum() * 8.0 == pytest.approx(math.pi * 20 * 10 * 40, rel=0.05)


def test_synthetic_prostate_geometry_and_hu():
    case = load_case("prostate", fast=True)
    masks, hu = synthetic_masks(case.phantom)
    assert set(masks) == {"BODY", "CTV", "PTV", "Rectum", "Bladder", "FemHead_L", "FemHead_R"}
    voxel_cc = 27.0 / 1000
    ptv_cc = masks["PTV"].sum() * voxel_cc
    assert ptv_cc == pytest.approx(4 / 3 * math.pi * 27 * 24 * 25 / 1000, rel=0.05)
    for organ in ("PTV", "Rectum", "Bladder", "FemHead_L", "FemHead_R"):
        assert not (masks[organ] & ~masks["BODY"]).any()  # every organ inside the body
    assert (masks["PTV"] & masks["Rectum"]).any()  # rectum wall overlaps the PTV, as clinically
    assert not (masks["FemHead_L"] & masks["PTV"]).any()
    assert not (masks["CTV"] & ~masks["PTV"]).any() and masks["CTV"].sum() < 0.5 * masks["PTV"].sum()  # CTV + 7 mm = PTV
    assert set(np.unique(hu[masks["BODY"]])) == {0.0} and set(np.unique(hu[~masks["BODY"]])) == {-1000.0}


def test_manifest_validation_catches_errors():
    base = {
        "name": "x", "phantom": {}, "prescription": {"dose_gy": 60, "fractions": 30, "target": "T"},
        "structures": [{"name": "T", "type": "TARGET", "objectives": [{"kind": "squared_deviation", "dose_gy": 60, "weight": 1}]}],
        "plan": {"gantry_angles": [0], "bixel_width_mm": 5, "dose_grid_mm": 5, "max_iter": 10},
    }
    assert parse_case(base).objective_names == ["T"]
    bad_kind = {**base, "structures": [{"name": "T", "type": "TARGET", "objectives": [{"kind": "gEUD", "dose_gy": 60, "weight": 1}]}]}
    with pytest.raises(ValueError, match="kind"):
        parse_case(bad_kind)
    with pytest.raises(ValueError, match="unknown structure"):
        parse_case({**base, "goals": [{"structure": "Lung", "metric": "Dmean", "op": "<=", "value": 20}]})
    with pytest.raises(ValueError, match="unknown metric"):
        parse_case({**base, "goals": [{"structure": "T", "metric": "D95%", "op": ">=", "value": 20}]})


def test_two_level_goals_say_which_level_a_plan_reaches():
    from simulators.dose.cases import ACCEPTABLE, PER_PROTOCOL, UNACCEPTABLE, plan_level

    base = {
        "name": "x", "phantom": {}, "prescription": {"dose_gy": 78, "fractions": 39, "target": "PTV"},
        "structures": [{"name": "PTV", "type": "TARGET", "objectives": [{"kind": "squared_deviation", "dose_gy": 78, "weight": 1}]}],
        "plan": {"gantry_angles": [0], "bixel_width_mm": 5, "dose_grid_mm": 5, "max_iter": 10},
        "goals": [{"structure": "PTV", "metric": "D2", "op": "<=", "value_rx": 1.07, "acceptable_rx": 1.10, "source": "RTOG 0126"},
                  {"structure": "PTV", "metric": "D98", "op": ">=", "value": 78.0, "acceptable": 74.1, "source": "s"}],
    }
    d2, d98 = parse_case(base).goals
    assert (d2.value, d2.acceptable) == (pytest.approx(83.46), pytest.approx(85.8))
    assert d2.label == "PTV D2 <= 83.46 Gy (acceptable <= 85.8 Gy)"
    assert [d2.level(v) for v in (83.0, 83.46, 84.0, 85.8, 86.0)] == [PER_PROTOCOL, PER_PROTOCOL, ACCEPTABLE, ACCEPTABLE, UNACCEPTABLE]
    assert d2.violation_pct(84.0) > 0 and not d2.met(84.0)  # an acceptable variation is still a miss
    assert [d98.level(v) for v in (78.0, 75.0, 74.0)] == [PER_PROTOCOL, ACCEPTABLE, UNACCEPTABLE]
    goals = (d2, d98)
    assert plan_level(goals, {"PTV.D2": 83.0, "PTV.D98": 78.0}) == PER_PROTOCOL
    assert plan_level(goals, {"PTV.D2": 85.0, "PTV.D98": 78.0}) == ACCEPTABLE
    assert plan_level(goals, {"PTV.D2": 85.0, "PTV.D98": 70.0}) == UNACCEPTABLE
    assert "acceptable" not in d2.__class__(**{k: v for k, v in d2.as_data().items() if k != "acceptable"}).as_data()


@pytest.mark.parametrize("goal, message", [
    ({"op": "<=", "value_rx": 1.10, "acceptable_rx": 1.07}, "levels are inverted: acceptable must be at or above"),
    ({"op": ">=", "value": 78.0, "acceptable": 80.0}, "levels are inverted: acceptable must be at or below"),
    ({"op": ">=", "value": 78.0, "acceptable": float("nan")}, "acceptable must be a finite number"),
    ({"op": ">=", "value": 78.0, "accept": 70.0}, "unknown goal key 'accept'"),
    ({"op": ">=", "source": "s"}, "a goal needs value"),
])
def test_a_bad_two_level_goal_is_named(goal, message):
    base = {
        "name": "x", "phantom": {}, "prescription": {"dose_gy": 78, "fractions": 39, "target": "PTV"},
        "structures": [{"name": "PTV", "type": "TARGET", "objectives": [{"kind": "squared_deviation", "dose_gy": 78, "weight": 1}]}],
        "plan": {"gantry_angles": [0], "bixel_width_mm": 5, "dose_grid_mm": 5, "max_iter": 10},
        "goals": [{"structure": "PTV", "metric": "D2", **goal}],
    }
    with pytest.raises(ValueError, match=message):
        parse_case(base)
