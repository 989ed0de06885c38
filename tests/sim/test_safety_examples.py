"""The safety rules issue 11 found broken, each as a run that shows it (docs/safety.md).

Each test runs the real firmware through the simulator with the invariant monitor on, then checks
the firmware's own record (what a clinician would read) and that the monitor found nothing."""

import pytest

from simtest import MS_PER_DAY, MS_PER_HOUR, base_config, load_text, pump_events, rel, run

MS_PER_MIN = 60000


def action(t_ms, name, **fields):
    entry = {"t_ms": t_ms, "action": name}
    entry.update(fields)
    return entry


def fault(kind, t_ms, duration_ms=None, number=1, **options):
    entry = {"t_ms": t_ms, "duration_ms": duration_ms, "kind": kind, "number": number}
    entry.update(options)
    return entry


def violations(summary):
    return [(v["req"], v["message"]) for v in summary["violations"]]


PATIENT_BOLUS = {"dose_ug": 25, "duration_ms": 10 * MS_PER_MIN, "lockout_ms": 3 * MS_PER_HOUR,
                 "max_per_24h": 4}


@pytest.mark.req("SR-13", "SR-02")
def test_no_patient_bolus_after_stop_during_a_lockout_and_a_clinician_bolus():
    # 01:00 a patient bolus (lockout to 04:10); 01:30 the clinician stops therapy; 02:00 a
    # clinician bolus.  When it ends the pump must stay stopped (idle), not go back into the
    # lockout and from there into "infusing" with therapy off, where later presses were given.
    timeline = [action(MS_PER_HOUR, "patient_bolus"),
                action(90 * MS_PER_MIN, "stop"),
                action(2 * MS_PER_HOUR, "clinician_bolus", dose_ug=10, duration_ms=10 * MS_PER_MIN),
                action(5 * MS_PER_HOUR, "patient_bolus"),
                action(9 * MS_PER_HOUR, "patient_bolus")]
    r, summary, events, _ = run(base_config(days=1, patient_bolus=PATIENT_BOLUS, timeline=timeline))
    starts = [e for e in pump_events(events, "bolus_start") if e["kind"] == "patient"]
    assert [rel(e) for e in starts] == [MS_PER_HOUR]
    refused = [e["reason"] for e in pump_events(events, "refused", after=4 * MS_PER_HOUR)]
    assert refused == ["therapy_stopped", "therapy_stopped"]
    assert r.pump.state() == "idle" and not r.pump.therapy.on
    assert violations(summary) == []


@pytest.mark.req("SR-06", "SR-03")
def test_clearing_a_motor_stall_with_an_empty_reservoir_does_not_resume_infusion():
    # 1 mL at 400 ug/day of 500 ug/mL (800 uL/day) is empty after 30 h: therapy halts to the
    # minimum rate.  A stall from 31 h to 40 h catches a minimum-rate stroke; clearing the
    # stall at 41 h must leave the pump halted by the empty reservoir, not infusing from it.
    cfg = base_config(days=3, fill_nl=1000000, low_reservoir_alarm_nl=0,
                      faults=[fault("motor_stall", 31 * MS_PER_HOUR, 9 * MS_PER_HOUR)],
                      timeline=[action(41 * MS_PER_HOUR, "clear_alarm")])
    r, summary, events, _ = run(cfg)
    raised = [e["alarm"] for e in pump_events(events, "alarm_raised")]
    assert "reservoir_empty" in raised and "motor_stall" in raised
    assert r.pump.state() == "reservoir_empty"
    assert "reservoir_empty" in r.pump.status()["alarms"]
    # 1000 strokes emptied it; after that only the minimum rate (6 uL/day: a few strokes), not
    # another day of infusion (800 strokes).
    assert r.board.motor.strokes <= 1000 + 20
    assert violations(summary) == []


@pytest.mark.req("SR-15")
def test_log_sequence_numbers_are_never_handed_out_twice_after_a_storage_failure_and_reset():
    # Non-volatile memory fails from 10:00 to 14:00: the log records of that time cannot be
    # stored.  A reset at 12:00 (while it fails) and one at 15:00 (after): no seq may appear
    # twice in the pump's record, and seqs only increase.
    cfg = base_config(days=1, patient_bolus=PATIENT_BOLUS, timeline=[
        action(2 * MS_PER_HOUR + 5 * MS_PER_MIN, "program", basal_ug_per_day=420),
        action(2 * MS_PER_HOUR + 10 * MS_PER_MIN, "patient_bolus"),
        action(4 * MS_PER_HOUR, "reset"),
        action(7 * MS_PER_HOUR, "reset")],
        faults=[fault("storage_fail", 2 * MS_PER_HOUR, 4 * MS_PER_HOUR)])
    r, summary, events, _ = run(cfg)
    seqs = [e["seq"] for e in events if e["src"] == "pump" and e["seq"] is not None]
    assert len(seqs) == len(set(seqs))
    assert seqs == sorted(seqs)
    assert pump_events(events, "commit_failed")
    assert violations(summary) == []


@pytest.mark.req("SR-19")
def test_two_clinician_actions_in_one_minute_over_a_link_with_a_drifting_crystal(tmp_path):
    # Over a [link] a programmer session takes virtual time (seconds at 9600 baud); the second
    # action of the same minute is due before the first session ends.  With a drifting crystal
    # the simulator used to try to move true time back and crashed.
    cfg = load_text(tmp_path, """
[scenario]
name = "two-in-a-minute"
days = 2
seed = 1
[drug]
concentration_ug_per_ml = 2000
[therapy]
mode = "continuous"
basal_ug_per_day = 400
[models]
clock_drift_ppm = 20
[link]
clinician = "telemetry"
[[timeline]]
day = 1
time = "10:00"
action = "program"
basal_ug_per_day = 420
[[timeline]]
day = 1
time = "10:00"
action = "stop"
""")
    r, summary, events, _ = run(cfg)
    sessions = [e for e in events if e["event"] == "programmer_session"]
    assert [(s["action"], s["outcome"]) for s in sessions] == [("program", "ok"), ("stop", "ok")]
    assert sessions[1]["t_ms"] > sessions[0]["t_ms"]
    assert r.pump.state() == "idle"
    assert violations(summary) == []


@pytest.mark.req("SR-10", "SR-17")
def test_a_boot_at_or_below_the_low_reservoir_volume_raises_the_alarm():
    # 2.01 mL in the pump, the alarm at 2 mL, 800 uL/day: ten strokes above the alarm.  The
    # supply sags at 00:10 (six strokes given) for 30 min.  The boot assumes every stroke the
    # 40 min since the last commit could hold was given (22): the estimate is below the alarm
    # volume, and the restored state says "reservoir_ok".  The boot must re-derive the alarm.
    cfg = base_config(days=1, fill_nl=2010000, low_reservoir_alarm_nl=2000000,
                      faults=[fault("brown_out", 10 * MS_PER_MIN, 30 * MS_PER_MIN)])
    r, summary, events, _ = run(cfg)
    boot = pump_events(events, "boot")[-1]
    assert rel(boot) == 40 * MS_PER_MIN
    low = [e for e in pump_events(events, "alarm_raised") if e["alarm"] == "low_reservoir"]
    assert low and rel(low[0]) == rel(boot)
    assert violations(summary) == []
