"""The pump's behaviour through its API, on the sim board, in virtual time."""

import pytest

from firmware import alarms, eventlog, table
from firmware.dosing import MS_PER_DAY, UG_RATE_Q
from firmware.pump import Pump
from hal.sim import SimBoard
from protocol import reasons

HOUR = 3600000
MIN = 60000


def make_pump(fill_nl=20000000, concentration=500, basal=None, wall_ms=0, board=None, **model):
    board = board or SimBoard(reservoir_capacity_nl=40000000, stroke_charge_nah=100)
    board.reservoir.refill(fill_nl, concentration)
    pump = Pump(board, model or None, wall_ms=wall_ms)
    events = []
    pump.log.listener = lambda seq, t, code, args: events.append((t, eventlog.EVENTS[code][0], args))
    pump.boot()
    assert pump.refill(fill_nl, concentration) == reasons.OK
    if basal is not None:
        assert pump.program_continuous(basal) == reasons.OK
    return pump, board, events


def names(events, name):
    return [e for e in events if e[1] == name]


# -- dosing accuracy -------------------------------------------------------------------------

@pytest.mark.parametrize("basal, concentration, stroke_nl", [
    (450, 2000, 1000),      # adult, concentrated
    (333, 500, 1000),       # volume per day not a whole number of strokes
    (97, 50, 250),          # screening-strength drug, small strokes
    (700, 1000, 1700),      # a stroke volume that divides nothing evenly
])
@pytest.mark.req("SR-23", "SR-01")
def test_a_year_of_continuous_dosing_is_within_one_stroke_of_ideal(basal, concentration, stroke_nl):
    pump, board, _ = make_pump(fill_nl=40000000, concentration=concentration,
                               stroke_nl=stroke_nl, reservoir_capacity_nl=40000000)
    board.motor.stroke_nl = stroke_nl
    assert pump.program_continuous(basal, confirm=True) == reasons.OK
    # Keep the reservoir full: this test is about the stroke engine, not refills (after the
    # program: starting therapy re-arms the watch).
    pump.doser.watch_level(None)
    year_ms = 365 * MS_PER_DAY
    pump.sched.run_until(year_ms)
    ideal_nl = basal * 1000000 * year_ms // (concentration * MS_PER_DAY)
    delivered_nl = pump.doser.strokes * stroke_nl
    assert 0 <= ideal_nl - delivered_nl < stroke_nl


@pytest.mark.req("SR-23")
def test_stroke_interval_is_exact_for_a_simple_rate():
    # 500 ug/day at 2000 ug/mL = 250 uL/day = 250 strokes of 1 uL: one every 345.6 s.
    pump, board, _ = make_pump(concentration=2000, basal=500)
    pump.sched.run_until(MS_PER_DAY)
    assert pump.doser.strokes == 250


@pytest.mark.req("SR-23")
def test_rate_change_carries_the_partial_stroke():
    pump, board, _ = make_pump(concentration=2000, basal=500)
    pump.sched.run_until(HOUR + 7 * MIN)
    assert pump.program_continuous(600, confirm=True) == reasons.OK
    pump.sched.run_until(2 * MS_PER_DAY)
    ideal = (500 * (HOUR + 7 * MIN) + 600 * (2 * MS_PER_DAY - HOUR - 7 * MIN)) * 1000000 \
        // (2000 * MS_PER_DAY)
    assert 0 <= ideal - pump.doser.strokes * 1000 < 1000


def test_clinician_bolus_delivers_its_dose_then_returns_to_basal():
    pump, board, events = make_pump(concentration=500, basal=0)
    assert pump.clinician_bolus(50, 30 * MIN) == reasons.OK
    assert pump.state() == table.BOLUS
    pump.sched.run_until(31 * MIN)
    assert pump.state() == table.INFUSING
    # 50 ug at 500 ug/mL = 100 uL = 100 strokes, all within the 30 minutes.
    assert pump.doser.strokes == 100
    assert names(events, "bolus_end")[-1][2] == (0, 100000, 1)


def test_flex_schedule_follows_weekday_and_time_of_day():
    monday_0000 = 1767571200000                # 2026-01-05 is a Monday
    night, day = 100, 400
    weekday = [[0, night], [7 * 60, day], [22 * 60, night]]
    weekend = [[0, night]]
    steps = [weekday] * 5 + [weekend] * 2
    pump, board, events = make_pump(concentration=500, wall_ms=monday_0000)
    assert pump.program_flex(steps) == reasons.OK
    pump.sched.run_until(6 * HOUR)
    assert pump.therapy.current_basal_ug_per_day == night
    pump.sched.run_until(7 * HOUR + 1)
    assert pump.therapy.current_basal_ug_per_day == day
    pump.sched.run_until(5 * MS_PER_DAY + 12 * HOUR)      # Saturday noon
    assert pump.therapy.current_basal_ug_per_day == night
    week_ug = 5 * (night * 9 + day * 15) // 24 + 2 * night
    pump.sched.run_until(7 * MS_PER_DAY)
    delivered_ug = pump.reservoir.delivered_ng() // 1000
    assert abs(delivered_ug - week_ug) <= 1


def test_flex_with_more_than_13_steps_is_refused_with_the_range():
    steps = [[[i * 60, 100] for i in range(14)]] * 7
    pump, _, _ = make_pump()
    assert pump.program_flex(steps) == reasons.OUT_OF_RANGE
    assert pump.refusal[1:] == ("flex_steps_per_day", 14, 1, 13)


# -- patient bolus -------------------------------------------------------------------------------

@pytest.mark.req("SR-11", "SR-12")
def test_patient_bolus_lockout_and_max_activations_per_24h():
    pump, board, events = make_pump(concentration=500, basal=200)
    assert pump.set_patient_bolus(20, 10 * MIN, 3 * HOUR, 3) == reasons.OK
    assert pump.patient_bolus() == reasons.OK
    assert pump.state() == table.BOLUS
    assert pump.patient_bolus() == reasons.BOLUS_IN_PROGRESS
    pump.sched.run_until(20 * MIN)
    assert pump.state() == table.LOCKOUT
    assert pump.patient_bolus() == reasons.LOCKOUT_ACTIVE
    pump.sched.run_until(3 * HOUR + 1)
    assert pump.state() == table.INFUSING
    assert pump.patient_bolus() == reasons.OK
    pump.sched.run_until(7 * HOUR)
    assert pump.patient_bolus() == reasons.OK
    pump.sched.run_until(11 * HOUR)
    # Three in the last 24 h: the fourth waits for the first to age out.
    assert pump.patient_bolus() == reasons.MAX_ACTIVATIONS
    pump.sched.run_until(24 * HOUR)
    assert pump.patient_bolus() == reasons.OK
    refused = [e[2][0] for e in names(events, "refused")]
    assert refused == [reasons.BOLUS_IN_PROGRESS, reasons.LOCKOUT_ACTIVE, reasons.MAX_ACTIVATIONS]


@pytest.mark.req("SR-13")
def test_patient_bolus_refused_when_not_enabled_or_therapy_stopped():
    pump, _, _ = make_pump(basal=200)
    assert pump.patient_bolus() == reasons.PATIENT_BOLUS_DISABLED
    assert pump.set_patient_bolus(20, 10 * MIN, 3 * HOUR, 3) == reasons.OK
    assert pump.stop() == reasons.OK
    assert pump.patient_bolus() == reasons.THERAPY_STOPPED


@pytest.mark.parametrize("field, args", [
    ("lockout_ms", (20, 10 * MIN, 0, 3)),                  # a lockout is never 0
    ("lockout_ms", (20, 10 * MIN, 25 * HOUR, 3)),
    ("max_per_24h", (20, 10 * MIN, 3 * HOUR, 0)),
    ("patient_bolus_duration_ms", (20, 0, 3 * HOUR, 3)),
])
def test_patient_bolus_settings_out_of_range(field, args):
    pump, _, _ = make_pump()
    assert pump.set_patient_bolus(*args) == reasons.OUT_OF_RANGE
    assert pump.refusal[1] == field
    assert pump.bolus.settings is None


@pytest.mark.req("SR-11")
def test_clinician_bolus_during_lockout_returns_to_lockout():
    pump, _, _ = make_pump(concentration=500, basal=200)
    pump.set_patient_bolus(20, 10 * MIN, 4 * HOUR, 4)
    pump.patient_bolus()
    pump.sched.run_until(HOUR)
    assert pump.state() == table.LOCKOUT
    assert pump.clinician_bolus(30, 20 * MIN) == reasons.OK
    pump.sched.run_until(HOUR + 21 * MIN)
    assert pump.state() == table.LOCKOUT
    pump.sched.run_until(4 * HOUR + 1)
    assert pump.state() == table.INFUSING


def _state_entry(source, dest, trigger):
    # A therapy-region "state" log entry's args (firmware/pump.py on_state_change).
    states = table.STATES["therapy"]
    return (table.REGION_NAMES.index("therapy"), states.index(source), states.index(dest),
            table.TRIGGERS.index(trigger))


def _bolus_with_therapy_stopped(kind, concentration=2000, basal=400):
    # Therapy stopped after an hour, then a bolus the table allows from idle: a clinician bolus
    # or a refill's bridge bolus.
    pump, board, events = make_pump(concentration=concentration, basal=basal)
    pump.sched.run_until(HOUR)
    assert pump.stop() == reasons.OK
    if kind == "clinician":
        assert pump.clinician_bolus(50, 10 * MIN, True) == reasons.OK
    else:
        assert pump.refill(20000000, concentration, bridge=True) == reasons.OK
    assert pump.state() == table.BOLUS and not pump.therapy.on
    return pump, board, events


@pytest.mark.req("SR-33")
@pytest.mark.parametrize("kind", ["clinician", "bridge"])
@pytest.mark.parametrize("request_", ["start", "program"])
def test_start_or_program_during_a_bolus_given_with_therapy_stopped_starts_therapy(kind, request_):
    # Accepted from idle, START (and a program) start therapy; accepted during a bolus given
    # from idle, they did nothing, and the pump went back to idle when the bolus ended.
    pump, board, events = _bolus_with_therapy_stopped(kind)
    bolus_kind, bolus_rate_q = pump.bolus.current[0], pump.bolus.current[5]
    assert pump.doser.rate_q == bolus_rate_q        # the bolus alone: therapy is off
    del events[:]
    if request_ == "start":
        assert pump.start() == reasons.OK
        basal = 400
    else:
        assert pump.program_continuous(300) == reasons.OK
        basal = 300
        assert [e[2] for e in names(events, "program")] == [(0, 300, 0)]
    assert pump.therapy.on and pump.state() == table.BOLUS
    # Logged as from idle: a state entry naming the request (here bolus -> bolus).
    assert [e[2] for e in names(events, "state")] == [
        _state_entry(table.BOLUS, table.BOLUS, request_)]
    # The basal runs alongside a clinician bolus at once; a bridge bolus replaces it until the
    # old drug has left the catheter.
    basal_q = 0 if bolus_kind == 2 else basal * UG_RATE_Q
    assert pump.doser.rate_q == basal_q + bolus_rate_q
    # Asked again with therapy on: nothing more happens, as in infusing.
    del events[:]
    assert pump.start() == reasons.OK
    assert events == [] and pump.state() == table.BOLUS
    pump.sched.run_until(2 * MS_PER_DAY)
    assert pump.state() == table.INFUSING and pump.therapy.on
    assert _state_entry(table.BOLUS, table.INFUSING, "bolus_done") in \
        [e[2] for e in names(events, "state")]
    assert pump.doser.rate_q == basal * UG_RATE_Q


def test_start_during_a_bolus_without_a_program_is_refused_as_from_idle():
    pump, board, events = make_pump(concentration=500)
    assert pump.start() == reasons.NO_PROGRAM
    assert pump.clinician_bolus(20, 10 * MIN) == reasons.OK
    assert pump.state() == table.BOLUS
    del events[:]
    assert pump.start() == reasons.NO_PROGRAM
    assert [e[1:] for e in events] == [
        ("refused", (reasons.NO_PROGRAM, eventlog.REQUESTS.index("start"), 0, 0))]
    assert pump.state() == table.BOLUS and not pump.therapy.on
    pump.sched.run_until(HOUR)
    assert pump.state() == table.IDLE


def test_a_program_during_a_bolus_with_therapy_on_logs_no_state_change():
    pump, board, events = make_pump(concentration=500, basal=200)
    assert pump.clinician_bolus(20, 10 * MIN) == reasons.OK
    del events[:]
    assert pump.program_continuous(250) == reasons.OK
    assert [e[1] for e in events] == ["program"]
    assert pump.state() == table.BOLUS and pump.therapy.on


# -- limits ----------------------------------------------------------------------------------------

@pytest.mark.req("SR-14")
def test_source_article_weight_based_rate_is_refused_by_the_hard_limit():
    # "0.5 ug/kg/min" for 70 kg is 50,400 ug/day: some 60x the usual maximum.
    pump, _, events = make_pump(basal=400)
    assert pump.program_continuous(50400) == reasons.OVER_HARD_LIMIT
    assert pump.refusal == (reasons.OVER_HARD_LIMIT, "daily_dose_ug", 50400, 0, 2000)
    assert pump.therapy.program["basal_ug_per_day"] == 400          # nothing changed
    assert pump.program_continuous(50400, confirm=True) == reasons.OVER_HARD_LIMIT
    assert names(events, "refused")[-1][2][0] == reasons.OVER_HARD_LIMIT


@pytest.mark.req("SR-20")
def test_soft_limit_needs_confirm():
    pump, _, _ = make_pump(basal=700)
    pump.sched.run_until(2 * MS_PER_DAY)
    assert pump.program_continuous(850) == reasons.SOFT_LIMIT_NEEDS_CONFIRM
    assert pump.refusal[1] == "daily_dose_ug"
    assert pump.program_continuous(850, confirm=True) == reasons.OK


@pytest.mark.req("SR-14", "SR-20")
def test_rate_increase_per_24h_is_limited_against_the_lowest_dose_of_the_day():
    pump, _, _ = make_pump(basal=300)
    pump.sched.run_until(2 * MS_PER_DAY)
    assert pump.program_continuous(400) == reasons.SOFT_LIMIT_NEEDS_CONFIRM   # +33 %
    # The refusal names the increase: +100 ug/day asked, +90 (30 % of 300) allowed.
    assert pump.refusal[1:] == ("rate_increase_24h_ug", 100, 0, 90)
    assert pump.program_continuous(390) == reasons.OK                          # +30 %
    pump.sched.run_until(2 * MS_PER_DAY + HOUR)
    # Stepping up again the same day is judged against 300, not 390.
    assert pump.program_continuous(500) == reasons.SOFT_LIMIT_NEEDS_CONFIRM
    assert pump.program_continuous(650, confirm=True) == reasons.OVER_HARD_LIMIT  # > +100 %
    pump.sched.run_until(3 * MS_PER_DAY + 2 * HOUR)
    assert pump.program_continuous(500) == reasons.OK                          # +28 % on 390


@pytest.mark.req("SR-14", "SR-26")
def test_bolus_limits_and_motor_speed():
    pump, _, _ = make_pump(concentration=50, basal=100)
    assert pump.clinician_bolus(150, 60 * MIN) == reasons.SOFT_LIMIT_NEEDS_CONFIRM
    assert pump.clinician_bolus(250, 60 * MIN, confirm=True) == reasons.OVER_HARD_LIMIT
    # 100 ug at 50 ug/mL is 2 mL: at most 1 mL/h, so it needs 2 hours.
    assert pump.clinician_bolus(100, 60 * MIN) == reasons.OUT_OF_RANGE
    assert pump.refusal[1:4] == ("bolus_duration_ms", 60 * MIN, 2 * HOUR)


@pytest.mark.req("SR-25")
def test_refill_checks_concentration_and_capacity():
    pump, _, _ = make_pump()
    assert pump.refill(10000000, 750) == reasons.OUT_OF_RANGE
    assert pump.refusal[1] == "concentration_ug_per_ml"
    assert pump.refill(50000000, 500) == reasons.OUT_OF_RANGE
    assert pump.refusal[1] == "volume_nl"


@pytest.mark.req("SR-14")
def test_clinician_limits_cannot_exceed_the_library_hard_limits():
    pump, _, _ = make_pump()
    assert pump.set_limits({"daily_dose_hard_ug": 5000}) == reasons.OVER_HARD_LIMIT
    assert pump.set_limits({"daily_dose_soft_ug": 1500, "daily_dose_hard_ug": 1000}) == reasons.OUT_OF_RANGE
    assert pump.set_limits({"daily_dose_soft_ug": 500}) == reasons.OK
    assert pump.program_continuous(600) == reasons.SOFT_LIMIT_NEEDS_CONFIRM


# -- reservoir and alarms ---------------------------------------------------------------------------

@pytest.mark.req("SR-10")
def test_low_reservoir_alarm_on_the_stroke_that_crosses_the_threshold():
    # 3 mL at 2000 ug/mL and 500 ug/day (250 uL/day): 1 mL above the 2 mL alarm = 1000 strokes.
    pump, board, events = make_pump(fill_nl=3000000, concentration=2000, basal=500)
    raised = []
    board.annunciator.listener = lambda kind, ms: raised.append((board.clock.true_ms, kind))
    pump.sched.run_until(5 * MS_PER_DAY)
    low = [e for e in names(events, "alarm_raised") if e[2] == (alarms.LOW_RESERVOIR,)]
    stroke_1000_ms = (1000 * 1000 * 2000 * MS_PER_DAY + 500 * 1000000 - 1) // (500 * 1000000)
    assert low[0][0] == stroke_1000_ms
    assert raised[0] == (stroke_1000_ms, 1)         # single tone, at once
    assert pump.state("reservoir") == table.LOW_RESERVOIR
    assert pump.state() == table.INFUSING            # non-critical: therapy goes on


@pytest.mark.req("SR-24")
def test_low_reservoir_alarm_repeats_and_can_be_silenced():
    pump, board, _ = make_pump(fill_nl=2000000, concentration=2000, basal=500)
    assert pump.state("reservoir") == table.LOW_RESERVOIR
    before = board.annunciator.counts[1]
    pump.sched.run_until(3 * HOUR + 1)
    assert board.annunciator.counts[1] == before + 3           # hourly
    assert pump.silence_alarms(2 * HOUR) == reasons.OK
    pump.sched.run_until(5 * HOUR + 1)
    assert board.annunciator.counts[1] == before + 3
    pump.sched.run_until(6 * HOUR + 1)
    assert board.annunciator.counts[1] == before + 4


@pytest.mark.req("SR-29")
def test_non_halting_alarm_keeps_a_bolus_in_progress_and_the_lockout():
    # Just above the alarm volume: the patient bolus itself crosses it.
    pump, board, events = make_pump(fill_nl=2010000, concentration=500, basal=100)
    pump.set_patient_bolus(20, 10 * MIN, 2 * HOUR, 4)
    assert pump.patient_bolus() == reasons.OK
    pump.sched.run_until(5 * MIN)
    assert pump.state("reservoir") == table.LOW_RESERVOIR
    assert pump.state() == table.BOLUS
    pump.sched.run_until(11 * MIN)
    assert names(events, "bolus_end")[-1][2][2] == 1        # completed
    assert pump.state() == table.LOCKOUT
    pump.sched.run_until(2 * HOUR + 1)
    assert pump.state() == table.INFUSING


@pytest.mark.req("SR-06", "SR-03")
def test_empty_reservoir_halts_to_minimum_rate_with_a_critical_alarm_until_refilled():
    pump, board, events = make_pump(fill_nl=1000000, concentration=2000, basal=500)
    pump.sched.run_until(5 * MS_PER_DAY)
    assert pump.state() == table.RESERVOIR_EMPTY
    assert alarms.RESERVOIR_EMPTY in pump.alarms.active
    assert pump.patient_bolus() == reasons.THERAPY_HALTED
    assert pump.clear_alarm() == reasons.REFILL_FIRST
    strokes = pump.doser.strokes
    pump.sched.run_until(6 * MS_PER_DAY)
    assert pump.doser.strokes - strokes == 6                  # 6 uL/day minimum rate
    assert board.annunciator.counts[2] >= 24 * 6               # two-tone every 10 min
    board.reservoir.refill(20000000, 2000)
    assert pump.refill(20000000, 2000) == reasons.OK
    assert pump.state() == table.INFUSING
    assert not pump.alarms.active


def test_refill_with_bridge_bolus_clears_the_tubing_at_the_old_rate():
    pump, board, events = make_pump(fill_nl=5000000, concentration=500, basal=400)
    pump.sched.run_until(MS_PER_DAY)
    assert pump.refill(20000000, 2000, bridge=True) == reasons.OK
    assert pump.state() == table.BOLUS
    start = names(events, "bolus_start")[-1]
    # 140 uL of the old 500 ug/mL drug at 400 ug/day: 0.8 mL/day -> 4.2 h.
    assert start[2] == (2, 70, 140000, 140 * 500 * 86400 // (400 * 1000))
    pump.sched.run_until(MS_PER_DAY + 5 * HOUR)
    assert pump.state() == table.INFUSING


def test_bridge_refill_of_an_empty_reservoir_clears_the_critical_alarm():
    pump, board, events = make_pump(fill_nl=1000000, concentration=2000, basal=500)
    pump.sched.run_until(5 * MS_PER_DAY)
    assert pump.state() == table.RESERVOIR_EMPTY
    board.reservoir.refill(20000000, 2000)
    assert pump.refill(20000000, 2000, bridge=True) == reasons.OK
    assert pump.state() == table.BOLUS
    assert not pump.alarms.active
    pump.sched.run_until(6 * MS_PER_DAY)
    assert pump.state() == table.INFUSING


@pytest.mark.req("SR-07", "SR-03")
def test_motor_stall_is_critical_and_cleared_by_the_clinician():
    pump, board, events = make_pump(concentration=2000, basal=500)
    pump.sched.run_until(HOUR)
    board.motor.stalled = True
    pump.sched.run_until(2 * HOUR)
    assert pump.state() == table.MOTOR_STALL
    assert alarms.MOTOR_STALL in pump.alarms.active
    assert pump.program_continuous(400) == reasons.THERAPY_HALTED
    # Cleared while the motor still does not turn: the owed stroke is tried, stalls, and the
    # clear is refused with the reason; nothing else changes.
    strokes, stalls = pump.doser.strokes, board.motor.stalls
    assert pump.clear_alarm() == reasons.MOTOR_STILL_STALLED
    assert pump.state() == table.MOTOR_STALL and alarms.MOTOR_STALL in pump.alarms.active
    assert pump.doser.strokes == strokes and board.motor.stalls == stalls + 1
    board.motor.stalled = False
    assert pump.clear_alarm() == reasons.OK
    assert pump.state() == table.INFUSING
    # The owed stroke went with the clear, and the schedule goes on from it: no dose lost,
    # none doubled.
    assert pump.doser.strokes == strokes + 1
    pump.sched.run_until(MS_PER_DAY + 2 * HOUR)
    assert pump.doser.strokes - strokes in (250, 251)


@pytest.mark.req("SR-09", "SR-04")
def test_battery_elective_replacement_then_end_of_service():
    board = SimBoard(reservoir_capacity_nl=40000000)
    pump, board, events = make_pump(board=board, fill_nl=40000000, concentration=2000, basal=500,
                                    reservoir_capacity_nl=40000000, battery_capacity_nah=100000000, quiescent_na=20000,
                                    eri_remaining_nah=60000000, eos_remaining_nah=1000000)
    pump.sched.run_until(100 * MS_PER_DAY)
    assert pump.state("battery") == table.ELECTIVE_REPLACEMENT
    assert pump.state() == table.INFUSING
    eri = [e for e in names(events, "alarm_raised") if e[2] == (alarms.ELECTIVE_REPLACEMENT,)]
    # 20 uA quiescent + 250 strokes/day at 100 nAh: 505 uAh/day; 40 mAh used after ~79 days.
    assert 78 * MS_PER_DAY < eri[0][0] < 80 * MS_PER_DAY
    pump.sched.run_until(200 * MS_PER_DAY)
    assert pump.state() == table.BATTERY_DEPLETED
    assert pump.program_continuous(400) == reasons.END_OF_SERVICE
    strokes = pump.doser.strokes
    pump.sched.run_until(201 * MS_PER_DAY)
    assert pump.doser.strokes == strokes


# -- persistence ------------------------------------------------------------------------------------

@pytest.mark.req("SR-17")
def test_pump_resumes_from_the_last_committed_state_after_a_reset():
    pump, board, _ = make_pump(concentration=2000, basal=500)
    pump.set_patient_bolus(20, 10 * MIN, 3 * HOUR, 4)
    pump.set_low_reservoir_alarm(3000000)
    pump.sched.run_until(10 * MS_PER_DAY + 30 * MIN)
    pump.patient_bolus()
    pump.sched.run_until(10 * MS_PER_DAY + 60 * MIN)
    before = pump.status()
    reborn = Pump(board)
    events = []
    reborn.log.listener = lambda seq, t, code, args: events.append((seq, eventlog.EVENTS[code][0], args))
    assert reborn.boot() is True
    after = reborn.status()
    for key in ("therapy", "program", "patient_bolus", "low_reservoir_alarm_nl",
                "concentration_ug_per_ml", "lockout_until_ms", "boot_count"):
        if key == "boot_count":
            assert after[key] == before[key] + 1
        else:
            assert after[key] == before[key], key
    # At most one commit interval of delivery is assumed lost: the estimate errs low.
    assert 0 <= before["reservoir_nl"] - after["reservoir_nl"] <= 11000
    assert events[0][1] == "boot" and events[0][0] > 1      # log sequence continues
    reborn.sched.run_until(10 * MS_PER_DAY + 3 * HOUR + 30 * MIN)
    assert reborn.state() == table.INFUSING


@pytest.mark.req("SR-17")
def test_a_bolus_cut_by_a_reset_is_not_resumed():
    pump, board, _ = make_pump(concentration=500, basal=100)
    assert pump.clinician_bolus(50, HOUR) == reasons.OK
    pump.sched.run_until(10 * MIN)
    reborn = Pump(board)
    events = []
    reborn.log.listener = lambda seq, t, code, args: events.append((eventlog.EVENTS[code][0], args))
    reborn.boot()
    assert reborn.state() == table.INFUSING
    assert ("bolus_end", (0, 0, 0)) in events


@pytest.mark.req("SR-17", "SR-27")
def test_a_corrupted_slot_falls_back_to_the_other():
    pump, board, _ = make_pump(concentration=2000, basal=500)
    pump.program_continuous(450)
    slot = pump.persist.slot
    start = slot * pump.model["storage_slot_bytes"]
    board.storage.mem[start + 12] ^= 0xFF          # inside the newest slot's payload
    reborn = Pump(board)
    assert reborn.boot() is True
    assert reborn.therapy.program["basal_ug_per_day"] in (450, 500)


def test_blank_storage_boots_factory_defaults():
    board = SimBoard()
    pump = Pump(board)
    assert pump.boot() is False
    assert pump.state() == table.IDLE
    assert pump.start() == reasons.NO_PROGRAM


@pytest.mark.req("SR-32")
def test_the_whole_pump_behaves_the_same_across_tick_counter_wraps():
    # 2**30 ms is 12.4 days: 40 days with patient boluses cross the wrap three times.
    def run(wrap_bits, start_raw):
        board = SimBoard(reservoir_capacity_nl=40000000, wrap_bits=wrap_bits, start_raw=start_raw)
        pump, board, events = make_pump(board=board, fill_nl=20000000, concentration=2000, basal=450)
        pump.set_patient_bolus(25, 10 * MIN, 3 * HOUR, 4)
        for day in range(40):
            pump.sched.run_until(day * MS_PER_DAY + 9 * HOUR)
            pump.patient_bolus()
            pump.sched.run_until(day * MS_PER_DAY + 10 * HOUR)
            pump.patient_bolus()
        pump.sched.run_until(40 * MS_PER_DAY)
        return events, pump.doser.strokes

    plain = run(0, 0)
    wrapped = run(30, (1 << 30) - 5 * MIN)
    assert wrapped == plain
    assert plain[1] > 9000


def test_housekeeping_commits_every_commit_interval():
    hourly, _, _ = make_pump(concentration=2000, basal=500)
    often, _, _ = make_pump(concentration=2000, basal=500, commit_interval_ms=10 * MIN)
    start_h, start_o = hourly.persist.commits, often.persist.commits
    hourly.sched.run_until(MS_PER_DAY)
    often.sched.run_until(MS_PER_DAY)
    assert hourly.persist.commits - start_h == 24
    assert often.persist.commits - start_o == 6 * 24


def test_standing_current_does_not_depend_on_the_commit_interval():
    hourly, _, _ = make_pump(concentration=2000)
    often, _, _ = make_pump(concentration=2000, commit_interval_ms=10 * MIN)
    hourly.sched.run_until(MS_PER_DAY)
    often.sched.run_until(MS_PER_DAY)
    assert hourly.battery.used_nah() == often.battery.used_nah() == 24 * 20000


def test_days_to_replacement_follows_the_daily_use():
    pump, board, _ = make_pump(concentration=2000)
    m = pump.model
    idle_days = pump.battery.days_to_replacement()
    left = m["battery_capacity_nah"] - pump.battery.used_nah() - m["eri_remaining_nah"]
    assert idle_days == left // (m["quiescent_na"] * 24)
    assert pump.program_continuous(500) == reasons.OK       # 250 strokes a day
    assert pump.battery.days_to_replacement() == left // (m["quiescent_na"] * 24 + 250 * m["stroke_charge_nah"])
