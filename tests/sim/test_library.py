"""The scenario library's stories: the MRI fault, screening boluses, a pump waiting for its
programmer, and the shipped scenarios catheter-kink, over-infusing-runs-dry, mri-scan and
titration-after-screening, each run and checked against what its header says it shows."""

import pytest

from firmware.dosing import MS_PER_DAY
from sim import scenario
from sim.errors import ScenarioError
from sim.replay import Replay
from simtest import (  # tests/sim/simtest.py
    base_config,
    MONDAY_0800,
    MS_PER_HOUR,
    doc,
    load_text,
    pump_events,
    rel,
    row_at,
    run,
    run_shipped,
    sim_events)

# 400 ug/day of 500 ug/mL = 800 uL/day = 800 strokes of 1000 nL: one every 108 s.
STROKE_INTERVAL_MS = MS_PER_DAY // 800


def config(faults=None, timeline=(), **overrides):
    return base_config(name="library", faults=faults, timeline=list(timeline), **overrides)


def mri(day, hour, scan_hours, recovery_hours=None, number=1):
    entry = {"t_ms": day * MS_PER_DAY + hour * MS_PER_HOUR, "kind": "mri", "number": number,
             "duration_ms": scan_hours * MS_PER_HOUR}
    if recovery_hours is not None:
        entry["recover_ms"] = recovery_hours * MS_PER_HOUR
    return entry


def clear_at(day, hour):
    return {"t_ms": day * MS_PER_DAY + hour * MS_PER_HOUR, "action": "clear_alarm"}


def alarms(events, name, event="alarm_raised"):
    return [rel(e) for e in pump_events(events, event) if e["alarm"] == name]


def therapy_at(rows, t_ms):
    return [x for x in rows if x["t_ms"] - MONDAY_0800 == t_ms][0]["therapy"]


def num(text):
    return float(text)


# ------------------------------------------------------------------------------ the mri fault

def test_mri_alarms_within_one_stroke_interval_and_halts_through_the_scan_and_the_lag():
    # A 1 h scan on day 1 at 10:00 with a 6 h lag, nobody interrogating: the pump stays halted.
    r, summary, events, rows = run(config([mri(1, 2, 1, 6)]))
    start = MS_PER_DAY + 2 * MS_PER_HOUR
    raised = alarms(events, "motor_stall")
    assert len(raised) == 1 and 0 <= raised[0] - start <= STROKE_INTERVAL_MS
    for hour in range(3, 12):
        assert therapy_at(rows, MS_PER_DAY + hour * MS_PER_HOUR) == "motor_stall"
    # The rotor recovered at 09:00 on day 1 + 9 h, but the pump does not resume by itself
    # (docs/clinical.md: it waits to be interrogated).
    assert [rel(e) for e in sim_events(events, "fault_recovered")] == [start + 7 * MS_PER_HOUR]
    assert not r.board.motor.stalled
    assert summary["final_state"]["therapy"] == "motor_stall"
    assert summary["active_alarms"] == ["motor_stall"]


def test_mri_clear_during_the_lag_is_refused_and_a_clear_after_it_resumes_therapy():
    start = MS_PER_DAY + 2 * MS_PER_HOUR
    cfg = config([mri(1, 2, 1, 6)], timeline=[clear_at(1, 4), clear_at(1, 10)])
    _, summary, events, rows = run(cfg)
    # 11:00 (day 1 + 4 h): scan over, rotor still lagging: the pump tries the owed stroke, it
    # stalls, and the clear is refused with motor_still_stalled; the alarm stays up.
    refused = pump_events(events, "refused")
    assert [(rel(e), e["request"], e["reason"]) for e in refused] == [
        (start + 2 * MS_PER_HOUR, "clear_alarm", "motor_still_stalled")]
    assert alarms(events, "motor_stall", "alarm_cleared") == [start + 8 * MS_PER_HOUR]
    assert len(alarms(events, "motor_stall")) == 1
    assert therapy_at(rows, MS_PER_DAY + 9 * MS_PER_HOUR) == "motor_stall"
    assert therapy_at(rows, MS_PER_DAY + 11 * MS_PER_HOUR) == "infusing"
    assert summary["final_state"]["therapy"] == "infusing" and summary["active_alarms"] == []
    # 8 h without delivery (10:00 to 18:00 of the run's hours 2 to 10 on day 1): 400 ug/day x 8 h
    missed = summary["programmed_ug"] - summary["delivered_true_ug"]
    assert 400 * 8 // 24 - 2 <= missed <= 400 * 8 // 24 + 2
    assert summary["delivered_ug"] == summary["delivered_true_ug"]     # nothing silent here


def test_mri_default_recovery_and_zero_recovery():
    # Without recover_ms in the config the rotor turns as soon as the scan ends; with the loader's
    # default (2 h) it lags: a clear 1 h after the scan is refused.
    clear = [clear_at(1, 4)]
    _, no_lag, events, _ = run(config([mri(1, 2, 1)], timeline=clear))
    assert no_lag["final_state"]["therapy"] == "infusing"
    assert len(alarms(events, "motor_stall")) == 1
    _, lag, events, _ = run(config([mri(1, 2, 1, 2)], timeline=clear))
    assert lag["final_state"]["therapy"] == "motor_stall"
    assert lag["refusals"] == {"clear_alarm: motor_still_stalled": {
        "count": 1, "first": "2026-01-06T12:00:00.000", "value": 0, "limit": 0}}


def test_a_long_mri_halt_raises_the_withdrawal_flag():
    long_ = run(config([mri(1, 2, 1, 12)], timeline=[clear_at(1, 16)]))[1]
    clean = run(config())[1]
    assert clean["patient"]["withdrawal_risk_hours"] == 0
    assert long_["patient"]["withdrawal_risk_hours"] >= 6


def test_motor_stall_ending_does_not_free_a_rotor_the_mri_still_holds():
    stall = {"t_ms": MS_PER_DAY, "kind": "motor_stall", "number": 1, "duration_ms": 3 * MS_PER_HOUR}
    r = Replay(config([stall, mri(1, 2, 1, 6, number=2)]))
    r.start()
    r.run_to(MS_PER_DAY + 4 * MS_PER_HOUR)          # the stall ended at +3 h, the scan at +3 h
    assert r.board.motor.stalled
    r.run_to(MS_PER_DAY + 9 * MS_PER_HOUR)          # the lag ends at +9 h
    assert not r.board.motor.stalled


def test_overlapping_scans_keep_the_rotor_stalled_until_the_last_recovers():
    r = Replay(config([mri(1, 2, 1, 2), mri(1, 3, 1, 6, number=2)]))
    r.start()
    r.run_to(MS_PER_DAY + 5 * MS_PER_HOUR + 1)      # the first recovered at +5 h
    assert r.board.motor.stalled
    r.run_to(MS_PER_DAY + 10 * MS_PER_HOUR)         # the second recovers at +10 h
    assert not r.board.motor.stalled


# ------------------------------------------------------------------------------ loading


def test_mri_recovery_hours_loads_with_a_default_of_two_hours(tmp_path):
    c = load_text(tmp_path, doc('[[faults]]\nday = 1\nkind = "mri"\nduration_hours = 0.5\n'
                                '[[faults]]\nday = 2\nkind = "mri"\nduration_hours = 1\n'
                                'recovery_hours = 12.5\n'))
    assert [(f["duration_ms"], f["recover_ms"]) for f in c["faults"]] == [
        (30 * 60000, 2 * MS_PER_HOUR), (MS_PER_HOUR, 12 * MS_PER_HOUR + 30 * 60000)]


@pytest.mark.parametrize("value", ["25", "-1", "true", '"6"'])
def test_bad_mri_recovery_hours_name_the_key_and_the_cited_range(tmp_path, value):
    with pytest.raises(ScenarioError) as info:
        load_text(tmp_path, doc('[[faults]]\nday = 1\nkind = "mri"\nduration_hours = 1\n'
                                'recovery_hours = %s\n' % value))
    text = str(info.value)
    assert "[faults #1] recovery_hours" in text and "0 to 24" in text and "2-24 h" in text


def test_recovery_hours_is_only_a_field_of_mri(tmp_path):
    with pytest.raises(ScenarioError) as info:
        load_text(tmp_path, doc('[[faults]]\nday = 1\nkind = "motor_stall"\nrecovery_hours = 2\n'))
    assert "recovery_hours" in str(info.value)


def test_screening_bolus_and_stopped_therapy_load(tmp_path):
    c = load_text(tmp_path, doc(
        '[[timeline]]\nday = 1\ntime = "09:00"\naction = "screening_bolus"\ndose_ug = 75\n',
        therapy='[therapy]\nmode = "stopped"\nlow_reservoir_alarm_ul = 3000\n'))
    assert c["therapy"] is None and c["low_reservoir_alarm_nl"] == 3000000
    assert c["timeline"] == [{"t_ms": 25 * MS_PER_HOUR, "action": "screening_bolus",
                              "dose_ug": 75}]
    with pytest.raises(ScenarioError) as info:
        load_text(tmp_path, doc('', therapy='[therapy]\nmode = "stopped"\n'
                                            'basal_ug_per_day = 400\n'))
    assert "basal_ug_per_day" in str(info.value)
    with pytest.raises(ScenarioError) as info:
        load_text(tmp_path, doc('[[timeline]]\nday = 1\naction = "screening_bolus"\n'))
    assert "dose_ug" in str(info.value)


def test_screening_bolus_reaches_the_csf_and_never_touches_the_pump():
    bolus = {"t_ms": MS_PER_HOUR, "action": "screening_bolus", "dose_ug": 50}
    _, with_bolus, events, rows = run(config(timeline=[bolus], days=2))
    _, without, clean_events, _ = run(config(days=2))
    strip = lambda evs: [e for e in evs if e["src"] == "pump"]
    assert strip(events) == strip(clean_events)
    assert [(rel(e), e["dose_ug"]) for e in sim_events(events, "screening_bolus")] == [
        (MS_PER_HOUR, 50)]
    assert with_bolus["delivered_to_csf_ug"] == without["delivered_to_csf_ug"] + 50
    assert with_bolus["injected_to_csf_ug"] == 50 and without["injected_to_csf_ug"] == 0
    assert with_bolus["delivered_true_ug"] == without["delivered_true_ug"]
    assert num(row_at(rows, 2 * MS_PER_HOUR)["csf_ng_per_ml"]) > \
        num(row_at(rows, 0)["csf_ng_per_ml"]) + 100


def test_a_stopped_pump_waits_idle_until_programmed():
    program = {"t_ms": MS_PER_DAY, "action": "program", "basal_ug_per_day": 200}
    _, summary, events, rows = run(config(therapy=None, timeline=[program], days=2))
    assert therapy_at(rows, MS_PER_DAY - MS_PER_HOUR) == "idle"
    assert therapy_at(rows, MS_PER_DAY + MS_PER_HOUR) == "infusing"
    assert 198 <= summary["delivered_true_ug"] <= 200 and summary["alarms_raised"] == {}


# ------------------------------------------------------------------------------ shipped scenarios

def test_shipped_mri_scan_alarms_refuses_the_early_interrogation_and_resumes():
    r, summary, events, rows = run_shipped("mri-scan")
    scan = 3 * MS_PER_DAY + 2 * MS_PER_HOUR                  # day 3 at 10:00
    stroke_ms = MS_PER_DAY // 200                            # 400 ug/day of 2000 ug/mL
    raised = alarms(events, "motor_stall")
    assert len(raised) == 1 and 0 <= raised[0] - scan <= stroke_ms
    # The clear at 11:30, in the lag: the owed stroke stalls again, the clear is refused.
    assert summary["refusals"]["clear_alarm: motor_still_stalled"]["first"] == \
        "2026-01-08T11:30:00.000"
    assert alarms(events, "motor_stall", "alarm_cleared") == [scan + 8 * MS_PER_HOUR]
    assert [rel(e) for e in sim_events(events, "fault_recovered")] == [scan + 7 * MS_PER_HOUR]
    for hour in range(1, 8):
        assert therapy_at(rows, scan + hour * MS_PER_HOUR) == "motor_stall"
    assert therapy_at(rows, scan + 9 * MS_PER_HOUR) == "infusing"
    assert summary["final_state"]["therapy"] == "infusing" and summary["active_alarms"] == []
    missed = summary["programmed_ug"] - summary["delivered_true_ug"]
    assert 130 <= missed <= 136                              # 8 h of 400 ug/day
    assert summary["tones"]["two_tone"] > 0
    assert summary["patient"]["withdrawal_risk_hours"] > 4


def test_shipped_catheter_kink_is_silent_and_found_at_refill():
    r, summary, events, rows = run_shipped("catheter-kink")
    kink = 6 * MS_PER_DAY + 14 * MS_PER_HOUR                 # day 6 at 22:00
    refill = 10 * MS_PER_DAY + 2 * MS_PER_HOUR               # day 10 at 10:00
    relieved = kink + 112 * MS_PER_HOUR                      # day 11 at 14:00
    assert summary["alarms_raised"] == {} and summary["refused_requests"] == 0
    # While kinked: the true reservoir stays, the estimate falls, nothing reaches the CSF.
    before, during = row_at(rows, kink), row_at(rows, refill - MS_PER_HOUR)
    assert num(during["reservoir_true_ul"]) == num(before["reservoir_true_ul"])
    assert num(before["reservoir_estimate_ul"]) - num(during["reservoir_estimate_ul"]) > 2500
    assert during["delivered_csf_ug"] == before["delivered_csf_ug"]
    assert during["delivered_true_ug"] == before["delivered_true_ug"]
    assert num(during["delivered_ug"]) > num(before["delivered_ug"]) + 1200
    assert num(during["csf_ng_per_ml"]) < 1.0
    # The refill aspirates some 2.8 mL more than the pump expected.
    (record,) = sim_events(events, "refill")
    assert rel(record) == refill
    excess = record["residual_true_nl"] - record["residual_estimate_nl"]
    assert 2700000 <= excess <= 2900000
    # The patient model flags withdrawal within hours of the kink.
    flagged = [x for x in rows if x["withdrawal_risk"] == 1]
    assert flagged and kink < flagged[0]["t_ms"] - MONDAY_0800 <= kink + 12 * MS_PER_HOUR
    assert summary["patient"]["withdrawal_risk_hours"] >= 48
    # Relieved: drug reaches the CSF again; the estimate is behind by the last day of the kink.
    after = row_at(rows, relieved + 24 * MS_PER_HOUR)
    assert num(after["delivered_csf_ug"]) > num(during["delivered_csf_ug"]) + 300
    assert num(after["csf_ng_per_ml"]) > 400
    lag = summary["reservoir_true_ul"] - summary["reservoir_estimate_ul"]
    assert 900 <= lag <= 960                                 # 28 h of 0.8 mL/day since the refill


def test_shipped_over_infusing_pump_runs_dry_before_its_low_reservoir_alarm():
    r, summary, events, rows = run_shipped("over-infusing-runs-dry")
    dry = [x for x in rows if num(x["reservoir_true_ul"]) == 0]
    assert dry
    first_dry = dry[0]
    # Empty while the pump still counts more than its 2 mL alarm volume and has not alarmed.
    assert num(first_dry["reservoir_estimate_ul"]) > 2000
    assert first_dry["reservoir_alarm"] == "reservoir_ok" and first_dry["alarms"] == ""
    dry_ms = first_dry["t_ms"] - MONDAY_0800
    assert 71 * MS_PER_DAY <= dry_ms <= 72 * MS_PER_DAY
    (low,) = alarms(events, "low_reservoir")
    assert low - dry_ms >= 10 * MS_PER_HOUR                  # the alarm comes well after empty
    assert summary["alarms_raised"] == {"low_reservoir": 1}  # no critical alarm at all
    # No drug left the pump between empty and the refill, while the pump counted on.
    (refill,) = sim_events(events, "refill")
    last_dry = row_at(rows, rel(refill) - MS_PER_HOUR)
    assert last_dry["delivered_true_ug"] == first_dry["delivered_true_ug"]
    assert num(last_dry["delivered_ug"]) > num(first_dry["delivered_ug"]) + 300
    assert refill["residual_true_nl"] == 0 and refill["residual_estimate_nl"] > 1500000
    # The patient model flags withdrawal before the pump's alarm.
    flagged = [x["t_ms"] - MONDAY_0800 for x in rows if x["withdrawal_risk"] == 1]
    assert flagged and dry_ms <= flagged[0] < low
    # +12 %: the pump delivered about 12 % more than programmed until it ran dry.
    assert summary["delivered_true_ug"] > summary["programmed_ug"] * 1.08


def test_shipped_titration_after_screening_follows_the_label():
    r, summary, events, rows = run_shipped("titration-after-screening")
    boluses = sim_events(events, "screening_bolus")
    assert [(rel(e) // MS_PER_DAY, e["dose_ug"]) for e in boluses] == [(0, 50), (1, 75), (2, 100)]
    implant = 4 * MS_PER_DAY + 6 * MS_PER_HOUR              # day 4 at 14:00
    assert {x["therapy"] for x in rows if x["t_ms"] - MONDAY_0800 < implant} == {"idle"}
    assert all(x["delivered_true_ug"] == "0.000" for x in rows
               if x["t_ms"] - MONDAY_0800 <= implant)
    programs = pump_events(events, "program")
    doses = [e["daily_ug"] for e in programs]
    assert doses == [200, 250, 300, 360, 400]
    assert doses[0] == 2 * boluses[-1]["dose_ug"]           # twice the effective screening dose
    times = [rel(e) for e in programs]
    assert times[0] == implant
    for before, after, t0, t1 in zip(doses, doses[1:], times, times[1:]):
        assert t1 - t0 >= MS_PER_DAY and 10 <= (after - before) * 100 // before <= 30
    assert summary["refused_requests"] == 0 and summary["alarms_raised"] == {}
    assert summary["final_state"]["therapy"] == "infusing"
    assert 300 <= doses[-1] <= 800                          # spinal maintenance range
    # The screening doses reached the CSF beside the pump's delivery.
    assert summary["injected_to_csf_ug"] == 225
    assert summary["delivered_to_csf_ug"] == summary["delivered_true_ug"] + 225
    # Each screening bolus lowers the model's tone score, the 100 ug one most.
    dips = []
    for b in boluses:
        t = rel(b)
        dips.append(min(num(x["tone_score"]) for x in rows
                        if t <= x["t_ms"] - MONDAY_0800 <= t + 8 * MS_PER_HOUR))
    assert dips[0] > dips[1] > dips[2] and dips[0] < 3.0
    assert summary["patient"]["overdose_hours"] == 0
