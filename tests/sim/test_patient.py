"""The educational patient model (sim/patient.py): exact one-compartment CSF kinetics, effect
timing against the label, risk flags and parameter validation."""

import math

import pytest

from sim.patient import EDUCATIONAL_LABEL, PARAMS, PatientModel, bolus_timing, run

H = 3600000          # ms per hour
MIN = 60000
TYPICAL_UG_PER_DAY = 400.0


def infuse(model, ug_per_day, hours, dt_ms=H):
    samples = []
    n = int(hours * H // dt_ms)
    for _ in range(n):
        samples.append(model.step(dt_ms, ug_per_day / 24.0 * dt_ms / H))
    return samples


def test_defaults_are_consistent_and_labelled():
    m = PatientModel()
    p = m.params
    # V = CL * t1/2 / ln 2 and the overdose threshold is the steady state of 800 ug/day
    assert p["csf_volume_ml"] == pytest.approx(30.0 * 3.0 / math.log(2))
    assert p["overdose_ng_per_ml"] == pytest.approx(800.0 / 24 / 30.0 * 1000)
    assert m.sample()["label"] == EDUCATIONAL_LABEL
    assert "not clinical advice" in EDUCATIONAL_LABEL
    import sim.patient
    assert "NOT CLINICAL ADVICE" in sim.patient.__doc__
    for name, (_d, _lo, _hi, source) in PARAMS.items():
        assert "docs/clinical.md" in source or "UNSOURCED" in source or "derived" in source, name


def test_steady_state_is_rate_over_clearance():
    m = PatientModel()
    rate_ug_per_h = TYPICAL_UG_PER_DAY / 24.0
    k = math.log(2) / 3.0
    css = rate_ug_per_h / 30.0 * 1000.0            # ng/mL
    for i, s in enumerate(infuse(m, TYPICAL_UG_PER_DAY, 120), 1):
        assert s["csf_ng_per_ml"] == pytest.approx(css * (1 - math.exp(-k * i)), rel=1e-12)
    assert s["csf_ng_per_ml"] == pytest.approx(css, rel=1e-9)
    assert s["csf_ug"] == pytest.approx(rate_ug_per_h / k, rel=1e-9)


@pytest.mark.parametrize("half_life_h", [0.9, 3.0, 5.0])
def test_after_stopping_the_level_halves_every_half_life(half_life_h):
    m = PatientModel({"half_life_h": half_life_h})
    infuse(m, TYPICAL_UG_PER_DAY, 10 * 24)
    c0 = m.sample()["csf_ng_per_ml"]
    for n in range(1, 6):
        s = m.step(half_life_h * H, 0.0)
        assert s["csf_ng_per_ml"] == pytest.approx(c0 / 2 ** n, rel=1e-12)


def test_exact_integration_does_not_depend_on_step_size():
    # piecewise-constant over hours: ramp up, bolus hour, stop, resume
    per_hour = [TYPICAL_UG_PER_DAY / 24.0] * 30 + [100.0] + [0.0] * 10 + [30.0] * 20
    fine, coarse = PatientModel(), PatientModel()
    keys = ("csf_ug", "csf_ng_per_ml", "effect_ng_per_ml", "ref_ng_per_ml", "effect",
            "tone_score")
    for ug in per_hour:
        for _ in range(60):
            a = fine.step(MIN, ug / 60.0)
        b = coarse.step(H, ug)
        assert a["t_ms"] == b["t_ms"]
        for key in keys:
            assert a[key] == pytest.approx(b[key], rel=1e-9, abs=1e-9), key
        assert (a["overdose"], a["withdrawal_risk"]) == (b["overdose"], b["withdrawal_risk"])


def test_instantaneous_bolus_equals_the_limit_of_a_short_infusion():
    a, b = PatientModel(), PatientModel()
    a.step(0, 50.0)
    a.step(H, 0.0)
    b.step(1, 50.0)              # 50 ug over 1 ms
    b.step(H - 1, 0.0)
    assert a.sample()["csf_ng_per_ml"] == pytest.approx(b.sample()["csf_ng_per_ml"], rel=1e-6)
    assert a.sample()["effect"] == pytest.approx(b.sample()["effect"], rel=1e-6)


def test_bolus_onset_and_peak_match_the_label():
    # docs/clinical.md: bolus onset 0.5-1 h, peak about 4 h
    for dose in (50.0, 75.0, 100.0):         # the screening boluses (line 33)
        t = bolus_timing(dose_ug=dose)
        assert 0.5 <= t["onset_h"] <= 1.0, t
        assert t["peak_h"] == pytest.approx(4.0, abs=0.05), t
        assert t["peak_effect"] > 0
    # the peak time follows the parameter, whatever the half-life
    t = bolus_timing({"half_life_h": 0.9, "effect_peak_h": 2.5})
    assert t["peak_h"] == pytest.approx(2.5, abs=0.05)


def test_tone_falls_with_dose_and_stays_in_range():
    m = PatientModel({"baseline_tone": 4.0})
    assert m.sample()["tone_score"] == 4.0
    prev = 4.0
    for s in infuse(m, TYPICAL_UG_PER_DAY, 48):
        assert 0.0 <= s["tone_score"] <= prev + 1e-12
        prev = s["tone_score"]
    assert prev < 2.0
    none = PatientModel({"emax": 0.0})
    assert infuse(none, TYPICAL_UG_PER_DAY, 24)[-1]["tone_score"] == 3.0


def test_overdose_flag_under_a_large_dose_not_at_a_typical_one():
    typical = infuse(PatientModel(), TYPICAL_UG_PER_DAY, 10 * 24, dt_ms=10 * MIN)
    assert not any(s["overdose"] for s in typical)
    high = infuse(PatientModel(), 2400.0, 48)     # docs/clinical.md: up to 2400 ug/24 h
    assert high[-1]["overdose"]
    first = next(i for i, s in enumerate(high) if s["overdose"]) + 1
    assert first <= 6                                 # crosses within hours
    m = PatientModel()
    assert not m.step(0, 100.0)["overdose"]           # largest screening bolus
    assert m.step(0, 1000.0)["overdose"]              # a gross bolus
    # the threshold is configurable
    assert PatientModel({"overdose_ng_per_ml": 100.0}).step(0, 50.0)["overdose"]


def test_withdrawal_flag_after_an_abrupt_stop_not_under_steady_dosing():
    m = PatientModel()
    # steady dosing as discrete strokes: 0.5 ug every 2 min (1 uL of 500 ug/mL), minute steps
    steady = []
    for i in range(5 * 24 * 60):
        steady.append(m.step(MIN, 0.5 if i % 2 == 0 else 0.0))
    assert not any(s["withdrawal_risk"] for s in steady)
    assert not any(s["overdose"] for s in steady)
    # halving the dose (a flex night rate) is not flagged as withdrawal
    half = [m.step(MIN, 0.5 if i % 4 == 0 else 0.0) for i in range(8 * 60)]
    assert not any(s["withdrawal_risk"] for s in half)
    steady = [m.step(MIN, 0.5 if i % 2 == 0 else 0.0) for i in range(3 * 24 * 60)]
    assert not steady[-1]["withdrawal_risk"]
    # abrupt stop (pump empty, catheter dislodged): flagged within 2 h and stays flagged
    stopped = [m.step(MIN, 0.0) for _ in range(24 * 60)]
    first = next(i for i, s in enumerate(stopped) if s["withdrawal_risk"]) + 1
    assert first <= 120
    assert all(s["withdrawal_risk"] for s in stopped[first:])


def test_no_withdrawal_flag_for_a_patient_never_on_drug_or_after_a_single_bolus():
    m = PatientModel()
    assert not any(s["withdrawal_risk"] for s in infuse(m, 0.0, 48))
    m.step(0, 50.0)
    assert not any(s["withdrawal_risk"] for s in infuse(m, 0.0, 48, dt_ms=10 * MIN))


def test_run_takes_cumulative_delivery():
    series = [(5 * H, 10.0)]
    for h in range(1, 49):
        series.append((5 * H + h * H, 10.0 + h * TYPICAL_UG_PER_DAY / 24.0))
    samples = run(series)
    assert len(samples) == len(series)
    assert samples[0]["t_ms"] == 5 * H and samples[0]["csf_ug"] == 0.0
    m = PatientModel()
    ref = infuse(m, TYPICAL_UG_PER_DAY, 48)
    assert samples[-1]["csf_ng_per_ml"] == pytest.approx(ref[-1]["csf_ng_per_ml"], rel=1e-12)
    assert samples[-1]["t_ms"] == 53 * H
    assert all(s["label"] == EDUCATIONAL_LABEL for s in samples)
    # repeated time = instantaneous dose
    s = run([(0, 0.0), (0, 50.0)])
    assert s[-1]["csf_ug"] == 50.0


def test_volume_or_clearance_may_be_given():
    m = PatientModel({"csf_volume_ml": 150.0})
    assert m.params["clearance_ml_per_h"] == pytest.approx(math.log(2) / 3.0 * 150.0)
    m = PatientModel({"csf_volume_ml": 150.0, "half_life_h": 2.0,
                      "clearance_ml_per_h": math.log(2) / 2.0 * 150.0})
    assert m.volume_ml == 150.0


@pytest.mark.parametrize("params, field", [
    ({"half_life_h": -1}, "half_life_h"),
    ({"half_life_h": 0}, "half_life_h"),
    ({"clearance_ml_per_h": float("nan")}, "clearance_ml_per_h"),
    ({"baseline_tone": 5}, "baseline_tone"),
    ({"emax": 1.5}, "emax"),
    ({"withdrawal_fraction": 1.0}, "withdrawal_fraction"),
    ({"ec50_ng_per_ml": "300"}, "ec50_ng_per_ml"),
    ({"hill": True}, "hill"),
    ({"overdose_ng_per_ml": 0}, "overdose_ng_per_ml"),
    ({"csf_volume_ml": 100.0, "clearance_ml_per_h": 30.0}, "clearance_ml_per_h"),
    ({"half_life": 3.0}, "half_life"),
])
def test_bad_parameters_raise_naming_field_value_and_range(params, field):
    with pytest.raises(ValueError) as e:
        PatientModel(params)
    msg = str(e.value)
    assert field in msg
    if field in PARAMS and len(params) == 1:
        _d, lo, hi, _s = PARAMS[field]
        assert repr(params[field]) in msg
        assert "from %g to %g" % (lo, hi) in msg


def test_bad_steps_and_series_raise():
    m = PatientModel()
    with pytest.raises(ValueError, match="dt_ms = -1"):
        m.step(-1, 0.0)
    with pytest.raises(ValueError, match="delivered_ug = -0.5"):
        m.step(MIN, -0.5)
    with pytest.raises(ValueError, match="delivered_ug = inf"):
        m.step(MIN, float("inf"))
    with pytest.raises(ValueError, match=r"series\[1\] t_ms"):
        run([(H, 0.0), (0, 1.0)])
    with pytest.raises(ValueError, match=r"series\[2\] cumulative_ug"):
        run([(0, 0.0), (H, 5.0), (2 * H, 4.0)])
    with pytest.raises(ValueError, match=r"series\[0\]"):
        run([(0,)])


def test_advance_is_step_without_the_sample():
    a, b = PatientModel(), PatientModel()
    for i in range(500):
        dose = 0.5 if i % 3 == 0 else 0.0
        a.step(MIN if i % 7 else 5 * MIN, dose)
        b.advance(MIN if i % 7 else 5 * MIN, dose)
    assert a.sample() == b.sample()
