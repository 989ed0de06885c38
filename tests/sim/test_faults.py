"""Physical models and the fault timeline: the firmware's observable response to each fault, and
what the pump cannot see shown to be invisible to it (sim/replay.py, [models] and [[faults]])."""

import json

import pytest

from firmware.dosing import MS_PER_DAY
from sim import scenario
from sim.errors import ScenarioError
from sim.physical import FAULT_KINDS
from sim.replay import Replay
from simtest import (  # tests/sim/simtest.py
    base_config,
    MONDAY_0800,
    MS_PER_HOUR,
    doc,
    load_text,
    pump_events,
    rel,
    run,
    sim_events)

# 400 ug/day of 500 ug/mL = 800 uL/day = 800 strokes of 1000 nL: one every 108 s.
STROKE_INTERVAL_MS = MS_PER_DAY // 800


def config(faults=None, models=None, **overrides):
    return base_config(name="faults", faults=faults, models=models, **overrides)


def fault(kind, day, hours=None, hour=1, number=1, **options):
    t = day * MS_PER_DAY + hour * MS_PER_HOUR
    entry = {"t_ms": t, "duration_ms": None if hours is None else hours * MS_PER_HOUR,
             "kind": kind, "number": number}
    entry.update(options)
    return entry


def ul(text):
    return float(text)


# ------------------------------------------------------------------------------ off by default

def test_without_models_or_faults_the_board_is_nominal():
    r = Replay(config())
    assert r.board.motor.volume_fn is None
    r.run()
    m = r.board.motor
    assert m.csf_nl == m.delivered_nl == m.strokes * 1000


def test_fault_records_mark_start_and_end_beside_the_pump_events():
    _, _, events, _ = run(config([fault("motor_stall", 1, hours=2)]))
    starts, ends = sim_events(events, "fault_start"), sim_events(events, "fault_end")
    assert [(rel(e), e["kind"], e["fault"]) for e in starts] == [(MS_PER_DAY + MS_PER_HOUR, "motor_stall", 1)]
    assert [(rel(e), e["kind"]) for e in ends] == [(MS_PER_DAY + 3 * MS_PER_HOUR, "motor_stall")]
    times = [e["t_ms"] for e in events]
    assert times == sorted(times)


# ------------------------------------------------------------------------------ motor stall

@pytest.mark.req("SR-07")
def test_motor_stall_raises_the_alarm_within_one_stroke_interval_and_halts():
    r, summary, events, rows = run(config([fault("motor_stall", 1, hours=2)]))
    start = MS_PER_DAY + MS_PER_HOUR
    alarms = [e for e in pump_events(events, "alarm_raised", start) if e["alarm"] == "motor_stall"]
    assert alarms and rel(alarms[0]) - start <= STROKE_INTERVAL_MS
    states = [e for e in pump_events(events, "state", start) if e["region"] == "therapy"]
    assert states[0]["to"] == "motor_stall"
    # The alarm latches after the stall ends: delivery stays halted until a clinician clears it.
    assert summary["final_state"]["therapy"] == "motor_stall"
    assert "motor_stall" in summary["active_alarms"]
    assert summary["tones"]["two_tone"] > 0
    assert r.board.motor.stalls >= 1


def test_cleared_motor_stall_resumes_delivery():
    clear = {"t_ms": MS_PER_DAY + 4 * MS_PER_HOUR, "action": "clear_alarm"}
    _, summary, events, _ = run(config([fault("motor_stall", 1, hours=2)], timeline=[clear]))
    assert summary["final_state"]["therapy"] == "infusing"
    assert pump_events(events, "alarm_cleared", MS_PER_DAY)


# ------------------------------------------------------------------------------ power loss

def test_power_loss_reboots_and_recovers_from_storage():
    _, summary, events, _ = run(config([fault("power_loss", 1, hour=5)]))
    t = MS_PER_DAY + 5 * MS_PER_HOUR
    resets = sim_events(events, "reset")
    assert [(rel(e), e["cause"]) for e in resets] == [(t, "power_loss")]
    boots = pump_events(events, "boot")
    assert len(boots) == 2 and rel(boots[1]) == t
    assert boots[1]["restored"] is True and boots[1]["boot_count"] == 2
    assert summary["resets"] == 1
    assert summary["final_state"]["therapy"] == "infusing"
    assert not summary["active_alarms"]
    # Strokes since the last commit are assumed delivered: the estimate stays within that.
    assert abs(summary["delivered_ug"] - summary["delivered_true_ug"]) <= 2 + boots[1]["lost_nl"] // 2000


# ------------------------------------------------------------------------------ storage failure

@pytest.mark.req("SR-08")
def test_storage_failure_raises_memory_fault_and_logs_commit_failed():
    _, summary, events, _ = run(config([fault("storage_fail", 1, hours=6)]))
    start = MS_PER_DAY + MS_PER_HOUR
    failed = pump_events(events, "commit_failed", start)
    assert failed and rel(failed[0]) - start <= MS_PER_HOUR      # commit_interval_ms
    alarms = [e for e in pump_events(events, "alarm_raised", start) if e["alarm"] == "memory_fault"]
    assert alarms and rel(alarms[0]) == rel(failed[0])
    assert "memory_fault" in summary["active_alarms"]
    assert pump_events(events, "state", start)[0]["to"] == "fault"


# ------------------------------------------------------------------------------ dislodgement

def test_dislodgement_is_invisible_to_the_pump_while_the_csf_gets_nothing():
    day = 1
    faulted = config([fault("dislodgement", day)], days=6)
    r, summary, events, rows = run(faulted)
    _, clean, clean_events, clean_rows = run(config(days=6))
    start = day * MS_PER_DAY + MS_PER_HOUR
    # The pump cannot tell: same firmware log, same alarms (none), estimate == true reservoir.
    strip = lambda evs: [e for e in evs if e["src"] == "pump"]
    assert strip(events) == strip(clean_events)
    assert summary["alarms_raised"] == {} and summary["active_alarms"] == []
    assert summary["reservoir_estimate_ul"] == clean["reservoir_estimate_ul"]
    assert abs(summary["reservoir_estimate_ul"] - summary["reservoir_true_ul"]) <= 1
    # The drug leaves the pump ...
    assert summary["delivered_true_ug"] == clean["delivered_true_ug"]
    # ... but the CSF's dose stops at the fault and stays flat.
    at_fault = [x for x in rows if x["t_ms"] - MONDAY_0800 <= start][-1]["delivered_csf_ug"]
    after = [x["delivered_csf_ug"] for x in rows if x["t_ms"] - MONDAY_0800 >= start + MS_PER_HOUR]
    assert after and all(ul(v) <= ul(at_fault) + 1 for v in after)
    assert after[0] == after[-1]
    assert summary["delivered_to_csf_ug"] < clean["delivered_to_csf_ug"] * 0.4
    assert clean["delivered_to_csf_ug"] == clean["delivered_true_ug"]


def test_dislodgement_with_a_duration_restores_flow_to_the_csf():
    _, summary, _, rows = run(config([fault("dislodgement", 1, hours=24)], days=4))
    lost = summary["delivered_true_ug"] - summary["delivered_to_csf_ug"]
    assert 395 <= lost <= 405          # one day of 400 ug/day
    assert rows[-1]["delivered_csf_ug"] != rows[-25]["delivered_csf_ug"]


# ------------------------------------------------------------------------------ occlusion

def test_occlusion_is_silent_the_true_reservoir_stays_while_the_estimate_falls():
    _, summary, events, rows = run(config([fault("occlusion", 1)], days=4))
    start = MS_PER_DAY + MS_PER_HOUR
    assert summary["alarms_raised"] == {}
    before = [x for x in rows if x["t_ms"] - MONDAY_0800 <= start][-1]
    last = rows[-1]
    assert ul(last["reservoir_true_ul"]) == ul(before["reservoir_true_ul"])
    assert ul(last["reservoir_estimate_ul"]) < ul(before["reservoir_estimate_ul"]) - 1000
    assert last["delivered_csf_ug"] == before["delivered_csf_ug"]
    assert last["delivered_true_ug"] == before["delivered_true_ug"]


# ------------------------------------------------------------------------------ motor models

def test_motor_bias_shows_as_the_true_reservoir_diverging_by_the_bias():
    for bias_pct in (10, -8):
        _, summary, _, _ = run(config(models={"motor_bias_ppm": bias_pct * 10000,
                                              "motor_noise_ppm": 0}, days=10))
        used_true = 20000 - summary["reservoir_true_ul"]
        used_estimate = 20000 - summary["reservoir_estimate_ul"]
        assert used_true / used_estimate == pytest.approx(1 + bias_pct / 100.0, abs=0.002)
        assert summary["alarms_raised"] == {}


def test_motor_noise_is_seeded_and_averages_out():
    models = {"motor_bias_ppm": 0, "motor_noise_ppm": 50000}
    a = run(config(models=models, days=10))
    b = run(config(models=models, days=10))
    assert a[2] == b[2] and a[3] == b[3]                     # same seed, same events and rows
    other = run(config(models=models, days=10, seed=8))
    assert other[1]["reservoir_true_ul"] != a[1]["reservoir_true_ul"] or \
        other[0].board.motor.delivered_nl != a[0].board.motor.delivered_nl
    used_true = 20000 - a[1]["reservoir_true_ul"]
    used_estimate = 20000 - a[1]["reservoir_estimate_ul"]
    assert used_true / used_estimate == pytest.approx(1.0, abs=0.01)


def test_same_seed_same_events_with_every_fault():
    faults = [fault("occlusion", 0, hours=3), fault("motor_stall", 1, hours=1),
              fault("storage_fail", 2, hours=2), fault("power_loss", 2, hour=10),
              fault("dislodgement", 3)]
    models = {"motor_bias_ppm": 30000, "motor_noise_ppm": 20000}
    a = run(config(faults, models, days=5))
    b = run(config(faults, models, days=5))
    assert json.dumps(a[2]) == json.dumps(b[2]) and a[3] == b[3]
    assert len(sim_events(a[2], "fault_start")) == 5 and len(sim_events(a[2], "fault_end")) == 3


# ------------------------------------------------------------------------------ scenario files


def test_models_and_faults_tables_convert_to_firmware_units(tmp_path):
    c = load_text(tmp_path, doc(
        '[models]\nmotor_bias_pct = 2.5\nmotor_noise_pct = 1\n'
        '[[faults]]\nday = 2\ntime = "12:30"\nkind = "occlusion"\nduration_hours = 1.5\n'
        '[[faults]]\nday = 1\nkind = "power_loss"\n'))
    assert c["models"] == {"motor_bias_ppm": 25000, "motor_noise_ppm": 10000,
                           "refill_error_ppm": 0}
    assert c["faults"] == [
        {"t_ms": MS_PER_DAY + 3600000, "duration_ms": None, "kind": "power_loss", "number": 2},
        {"t_ms": 2 * MS_PER_DAY + 270 * 60000, "duration_ms": 90 * 60000,
         "kind": "occlusion", "number": 1}]


def test_scenarios_without_the_new_tables_have_no_new_keys(tmp_path):
    c = load_text(tmp_path, doc(""))
    assert "models" not in c and "faults" not in c


def test_random_bias_is_seeded_and_within_the_accuracy_class(tmp_path):
    a = load_text(tmp_path, doc('[models]\nmotor_bias_pct = "random"\n'))
    b = load_text(tmp_path, doc('[models]\nmotor_bias_pct = "random"\n'))
    assert a["models"] == b["models"]
    assert -145000 <= a["models"]["motor_bias_ppm"] <= 145000


@pytest.mark.parametrize("extra, fragments", [
    ('[models]\nmotor_bias_pct = 60\n', ["[models] motor_bias_pct = 60", "from -50 to 50"]),
    ('[models]\nmotor_bias_pct = "big"\n', ["motor_bias_pct", '"random"']),
    ('[models]\nmotor_noise_pct = -1\n', ["[models] motor_noise_pct = -1", "from 0 to 50"]),
    ('[models]\nmotor_drift = 1\n', ["[models] motor_drift", "unknown key"]),
    ('[[faults]]\nday = 1\nkind = "kink"\n', ["[faults #1] kind = \"kink\"", "occlusion"]),
    ('[[faults]]\nkind = "occlusion"\n', ["[faults #1] day is missing"]),
    ('[[faults]]\nday = 1\nkind = "power_loss"\nduration_hours = 2\n',
     ["[faults #1] duration_hours = 2", "power_loss"]),
    ('[[faults]]\nday = 1\nkind = "occlusion"\nduration_hours = 0\n',
     ["[faults #1] duration_hours = 0", "above 0"]),
    ('[[faults]]\nday = 1\nkind = "occlusion"\nuntil = 3\n', ["[faults #1] until", "unknown key"]),
    ('[[faults]]\nday = 0\ntime = "07:00"\nkind = "occlusion"\n',
     ["[faults #1] day = 0", "before the scenario starts"]),
    ('[faults]\nday = 1\n', ["[faults]", "array of tables"]),
    ('[[faults]]\nrate_per_year = 0\nkind = "motor_stall"\n',
     ["[faults #1] rate_per_year = 0", "above 0, at most 8760"]),
    ('[[faults]]\nrate_per_year = 2\nday = 3\nkind = "motor_stall"\n',
     ["[faults #1] day = 3", "not a field of a random fault"]),
    ('[[faults]]\nday = 3\nto_day = 4\nkind = "motor_stall"\n',
     ["[faults #1] to_day = 4", "only a field of a random fault"]),
    ('[[faults]]\nrate_per_year = 2\nfrom_day = 3\nto_day = 2\nkind = "motor_stall"\n',
     ["[faults #1] to_day = 2", "at or after from_day"]),
])
def test_bad_models_and_faults_name_table_key_value_and_what_is_allowed(tmp_path, extra, fragments):
    with pytest.raises(ScenarioError) as info:
        load_text(tmp_path, doc(extra))
    for fragment in fragments:
        assert fragment in str(info.value)


def test_fault_kinds_are_documented():
    import os
    text = open(os.path.join(scenario.repo_root(), "docs", "scenarios.md"), encoding="utf-8").read()
    assert "## [[faults]]" in text and "## [models]" in text
    for kind in FAULT_KINDS:
        assert "`%s`" % kind in text


def test_shipped_dislodgement_scenario_shows_silent_under_delivery():
    c = scenario.load(scenario.find("catheter-dislodgement"))
    assert [f["kind"] for f in c["faults"]] == ["dislodgement"]
    _, summary, events, _ = run(c)
    assert summary["alarms_raised"] == {}                 # the pump never notices
    assert summary["delivered_to_csf_ug"] < summary["delivered_true_ug"]
    assert sim_events(events, "fault_start")[0]["kind"] == "dislodgement"


# ------------------------------------------------------------------------------ fill error

def test_underfill_empties_the_true_reservoir_before_the_pump_expects_it():
    # 4 mL entered, 25 % less really in: at 400 ug/day of 500 ug/mL (0.8 mL/day) the 3 mL run
    # out after 3.75 days, while the pump counts 5 days' worth: its reservoir_empty alarm comes
    # over a day after the patient stopped getting any drug.
    models = {"motor_bias_ppm": 0, "motor_noise_ppm": 0, "refill_error_ppm": -250000}
    r, summary, events, rows = run(config(models=models, fill_nl=4000000, days=9))
    fills = sim_events(events, "fill_error")
    assert [(e["entered_nl"], e["true_nl"]) for e in fills] == [(4000000, 3000000)]
    empty = [x for x in rows if ul(x["reservoir_true_ul"]) == 0]
    assert empty and 3.6 <= float(empty[0]["day"]) <= 3.8
    assert float(empty[0]["reservoir_estimate_ul"]) >= 1000
    alarm = [e for e in pump_events(events, "alarm_raised") if e["alarm"] == "reservoir_empty"]
    assert alarm and rel(alarm[0]) >= 5 * MS_PER_DAY - 2 * STROKE_INTERVAL_MS
    assert rel(alarm[0]) - (empty[0]["t_ms"] - MONDAY_0800) > MS_PER_DAY


def test_overfill_spills_at_capacity_and_the_estimate_runs_low():
    models = {"motor_bias_ppm": 0, "motor_noise_ppm": 0, "refill_error_ppm": 100000}
    r, summary, events, _ = run(config(models=models, fill_nl=10000000, days=2))
    assert sim_events(events, "fill_error")[0]["true_nl"] == 11000000
    assert summary["reservoir_true_ul"] - summary["reservoir_estimate_ul"] in (999, 1000, 1001)
    r2, _, events2, _ = run(config(models=models, days=1))
    assert sim_events(events2, "fill_error")[0]["true_nl"] == 20000000     # capacity


def test_refill_error_pct_loads_as_ppm(tmp_path):
    c = load_text(tmp_path, doc('[models]\nrefill_error_pct = -12.5\n'))
    assert c["models"]["refill_error_ppm"] == -125000
    with pytest.raises(ScenarioError) as info:
        load_text(tmp_path, doc('[models]\nrefill_error_pct = true\n'))
    assert "[models] refill_error_pct = true" in str(info.value)


# ------------------------------------------------------------------------------ random faults

def test_random_faults_load_with_their_rate_and_window(tmp_path):
    c = load_text(tmp_path, doc('[[faults]]\nrate_per_year = 12.5\nfrom_day = 1\nto_day = 4\n'
                                'kind = "motor_stall"\nduration_hours = 0.5\n'))
    assert c["faults"] == [{"kind": "motor_stall", "number": 1, "rate_milli_per_year": 12500,
                            "from_ms": MS_PER_DAY, "to_ms": 4 * MS_PER_DAY,
                            "duration_ms": 30 * 60000}]


def random_stalls(rate, days, seed=7, **window):
    spec = {"kind": "motor_stall", "number": 1, "rate_milli_per_year": rate * 1000,
            "duration_ms": 10 * 60000}
    spec.update(window)
    # 2000 ug/mL: the reservoir lasts 100 days, and a stroke is due every 7.2 min.
    cfg = config([spec], days=days, seed=seed, concentration_ug_per_ml=2000,
                 timeline=[{"t_ms": d * MS_PER_DAY, "action": "clear_alarm"} for d in range(1, days)])
    _, summary, events, _ = run(cfg)
    return summary, events


def test_random_faults_come_at_about_their_rate_seeded_and_repeatable():
    summary, events = random_stalls(365, 60)          # one a day on average
    starts = sim_events(events, "fault_start")
    assert 40 <= len(starts) <= 80
    assert [e["occurrence"] for e in starts] == list(range(1, len(starts) + 1))
    assert len(sim_events(events, "fault_end")) == len(starts)
    # The pump sees each stall (it lasts 10 min; a stroke is due every 7.2 min) unless an earlier
    # one already halted it: the clinician clears the alarm once a day, so a day with stalls
    # raises one alarm (one more when a stall still runs at the clear).
    days_with_stalls = len(set(rel(e) // MS_PER_DAY for e in starts))
    assert days_with_stalls <= summary["alarms_raised"]["motor_stall"] <= days_with_stalls + 3
    again, events_again = random_stalls(365, 60)
    assert events_again == events
    _, other = random_stalls(365, 60, seed=8)
    assert [e["t_ms"] for e in sim_events(other, "fault_start")] != [e["t_ms"] for e in starts]


def test_random_faults_stay_inside_their_window():
    _, events = random_stalls(2000, 10, from_ms=3 * MS_PER_DAY, to_ms=5 * MS_PER_DAY)
    starts = [rel(e) for e in sim_events(events, "fault_start")]
    assert starts and all(3 * MS_PER_DAY <= t <= 5 * MS_PER_DAY for t in starts)
