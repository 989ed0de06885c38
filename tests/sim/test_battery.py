"""The true battery cell (sim/battery.py, [models] battery keys): its physics (voltage curve,
sag under load, self-discharge, seeded capacity spread, session charge), and the firmware's
observable response when the cell and its coulomb count disagree (ERI and EOS: when, why, the
state, the log), down to the shipped battery-end-of-service scenario."""

import pytest

from firmware import alarms, eventlog, table
from firmware.dosing import MS_PER_DAY
from firmware.pump import MODEL
from hal.sim import SimBattery, VirtualClock
from sim import scenario
from sim.battery import CHEMISTRIES, MS_PER_YEAR, PrimaryCell, draw_capacity_nah, interpolate
from sim.errors import ScenarioError
from sim.events import decode
from sim.replay import Replay
from sim.runner import Run
from simtest import MONDAY_0800, MS_PER_HOUR, doc, load_text  # tests/sim/simtest.py


# A small cell, so ERI and EOS come within weeks: 30 mAh nominal, the firmware's coulomb ERI at
# 4 % left and EOS at 0.3 %, its voltage thresholds the pump model's (2800 / 2600 mV).
SMALL = {"battery_capacity_nah": 30000000, "eri_remaining_nah": 1200000,
         "eos_remaining_nah": 100000}


def config(models=None, model=None, **overrides):
    base = {
        "name": "battery", "description": "", "days": 60, "seed": 7,
        "start_wall_ms": MONDAY_0800, "model": dict(SMALL if model is None else model),
        "drug": "baclofen", "concentration_ug_per_ml": 500, "fill_nl": 20000000,
        "therapy": {"mode": "continuous", "basal_ug_per_day": 200}, "confirm": False,
        "low_reservoir_alarm_nl": 2000000, "limits": {}, "patient_bolus": None,
        "patient_requests_per_day": 0,
        "refills": {"first_ms": 30 * MS_PER_DAY, "every_ms": 30 * MS_PER_DAY,
                    "volume_nl": 20000000, "concentration_ug_per_ml": 500, "bridge": False},
        "timeline": [],
    }
    if models is not None:
        base["models"] = models
    base.update(overrides)
    return base


def cell_models(**keys):
    m = {"motor_bias_ppm": 0, "motor_noise_ppm": 0, "refill_error_ppm": 0,
         "battery": "li-cfx-svo"}
    m.update(keys)
    return m


class Watch:
    """A replay that records, at each battery alarm and hourly, the firmware's count and the
    cell's true state, in true time."""

    def __init__(self, cfg):
        self.alarms = {}
        self.states = []
        self.r = None
        self.r = Replay(cfg, on_log=self.on_log)

    def on_log(self, seq, t_ms, code, args):
        r = self.r
        if r is None or r.pump is None:
            return          # the first boot, inside Replay()
        if code == eventlog.ALARM_RAISED and args[0] not in self.alarms:
            m = r.model
            self.alarms[args[0]] = {
                "t_ms": r.board.clock.true_ms,
                "count_left_nah": m["battery_capacity_nah"] - r.pump.battery.used_nah(),
                "loaded_mv": r.board.battery.loaded_mv(),
                "rest_mv": r.board.battery.rest_mv(),
                "depth_ppm": r.board.battery.depth_ppm(),
                "strokes": r.board.motor.strokes}
        elif code == eventlog.STATE:
            self.states.append((r.board.clock.true_ms, args))

    def run(self):
        self.r.run()
        return self


# ------------------------------------------------------------------------------ physics

@pytest.mark.parametrize("chemistry", sorted(CHEMISTRIES))
def test_the_voltage_curve_falls_and_the_resistance_rises_with_depth(chemistry):
    spec = CHEMISTRIES[chemistry]
    ocv = [interpolate(spec["ocv_mv"], d) for d in range(0, 1001)]
    r = [interpolate(spec["resistance_mohm"], d) for d in range(0, 1001)]
    assert all(a >= b for a, b in zip(ocv, ocv[1:]))
    assert all(a <= b for a, b in zip(r, r[1:]))
    assert ocv[0] > 3100 and ocv[-1] < 2600 and r[-1] > 3 * r[0]
    assert interpolate(spec["ocv_mv"], -5) == ocv[0] and interpolate(spec["ocv_mv"], 2000) == ocv[-1]


def test_a_reading_under_a_strokes_load_sags_more_late_in_life():
    clock = VirtualClock()
    cell = PrimaryCell(clock, "li-cfx-svo", 1000000, stroke_load_ua=2000)
    sags = []
    for used in (0, 500000, 900000, 950000, 980000):
        cell.used_nah = used
        assert cell.loaded_mv() < cell.rest_mv() <= cell.ocv_mv()
        assert cell.loaded_mv() == cell.ocv_mv() - 2000 * cell.resistance_mohm() // 1000000
        sags.append(cell.rest_mv() - cell.loaded_mv())
    assert sags == sorted(sags) and sags[-1] > 3 * sags[0]
    cell.read = "loaded"
    assert cell.read_mv() == cell.loaded_mv()
    cell.read = "rest"
    assert cell.read_mv() == cell.rest_mv()


def test_self_discharge_takes_its_share_of_the_capacity_per_year_of_true_time():
    clock = VirtualClock()
    cell = PrimaryCell(clock, "li-cfx-svo", 1500000000, self_discharge_ppm_per_year=20000)
    clock.advance_to(MS_PER_YEAR)
    assert cell.self_discharged_nah() == 30000000              # 2 % of 1.5 Ah
    assert cell.remaining_nah() == 1470000000
    clock.advance_to(5 * MS_PER_YEAR)
    assert cell.remaining_nah() == 1350000000
    default = PrimaryCell(clock, "li-svo", 1000000)             # the chemistry's 1 %/year
    assert default.self_discharged_nah() == 50000


def test_quiescent_current_and_sessions_draw_the_cell():
    clock = VirtualClock()
    cell = PrimaryCell(clock, "li-cfx-svo", 10000000, quiescent_na=20000, session_nah=50000,
                       self_discharge_ppm_per_year=0)
    clock.advance_to(10 * MS_PER_HOUR)
    cell.session()
    cell.session()
    assert cell.sessions == 2
    assert cell.remaining_nah() == 10000000 - 200000 - 100000
    cell.used_nah = 10 ** 9
    assert cell.remaining_nah() == 0 and cell.depth_ppm() == 1000000
    assert cell.loaded_mv() >= 0


def test_the_true_capacity_is_seeded_and_within_the_spread():
    nominal = 1500000000
    drawn = [draw_capacity_nah(nominal, 0, 50000, seed) for seed in range(200)]
    assert drawn == [draw_capacity_nah(nominal, 0, 50000, seed) for seed in range(200)]
    assert all(nominal * 95 // 100 <= c <= nominal * 105 // 100 for c in drawn)
    assert len(set(drawn)) > 150
    assert min(drawn) < nominal * 96 // 100 and max(drawn) > nominal * 104 // 100
    assert draw_capacity_nah(nominal, -80000, 0, 1) == nominal * 92 // 100
    assert draw_capacity_nah(nominal, 0, 0, 99) == nominal


def test_unknown_chemistry_or_read_mode_is_refused():
    with pytest.raises(ValueError, match="li-cfx-svo"):
        PrimaryCell(VirtualClock(), "zinc-air", 1000)
    with pytest.raises(ValueError, match="loaded"):
        PrimaryCell(VirtualClock(), "li-svo", 1000, read="sometimes")


# ------------------------------------------------------------------------------ on the board

def test_without_battery_keys_the_board_keeps_its_simple_battery():
    r = Replay(config(models={"motor_bias_ppm": 0, "motor_noise_ppm": 0,
                              "refill_error_ppm": 0}))
    assert type(r.board.battery) is SimBattery and r.cell is None
    r = Replay(config())
    assert type(r.board.battery) is SimBattery


def test_the_cell_replaces_the_boards_battery_everywhere():
    r = Replay(config(cell_models(battery_capacity_error_ppm=-100000)))
    cell = r.board.battery
    assert isinstance(cell, PrimaryCell) and r.cell is cell and r.board.motor.battery is cell
    assert cell.capacity_nah == 27000000 and cell.nominal_capacity_nah == 30000000
    before = cell.used_nah
    r.run_to(MS_PER_DAY)
    strokes = r.board.motor.strokes
    assert strokes > 0
    assert cell.used_nah - before == strokes * MODEL["stroke_charge_nah"]


def test_a_weak_cell_reaches_eri_by_voltage_while_the_count_says_plenty():
    # 10 % below nominal: the loaded voltage crosses eri_mv at some 93 % of the TRUE capacity,
    # when the firmware's count (against the nominal one) still shows over 4 mAh.
    w = Watch(config(cell_models(battery_capacity_error_ppm=-100000))).run()
    eri = w.alarms[alarms.ELECTIVE_REPLACEMENT]
    eos = w.alarms[alarms.END_OF_SERVICE]
    assert eri["loaded_mv"] <= MODEL["eri_mv"] < eri["rest_mv"]
    assert eri["count_left_nah"] > 3 * SMALL["eri_remaining_nah"]
    assert 900000 < eri["depth_ppm"] < 950000
    # The reading is hourly (housekeeping): ERI within the hour the loaded voltage crossed.
    assert 30 * MS_PER_DAY < eri["t_ms"] < eos["t_ms"]
    assert eri["t_ms"] % MS_PER_HOUR == 0
    # EOS by voltage too, well within 90 days of ERI: therapy halts.
    assert eos["loaded_mv"] <= MODEL["eos_mv"]
    assert eos["count_left_nah"] > SMALL["eos_remaining_nah"]
    assert eos["t_ms"] - eri["t_ms"] < 20 * MS_PER_DAY
    p = w.r.pump
    assert p.state() == table.BATTERY_DEPLETED
    assert p.state("battery") == table.ELECTIVE_REPLACEMENT
    assert {alarms.ELECTIVE_REPLACEMENT, alarms.END_OF_SERVICE} <= set(p.alarms.active)
    # Therapy halted: after EOS at most the model's minimum rate (6 uL/day), not 400 uL/day.
    days_after = (w.r.end_ms - eos["t_ms"]) // MS_PER_DAY
    assert days_after > 5
    strokes_after = w.r.board.motor.strokes - eos["strokes"]
    assert strokes_after <= (days_after + 1) * MODEL["min_rate_nl_per_day"] // 1000


def test_a_strong_cell_reaches_eri_by_the_count_first():
    w = Watch(config(cell_models(battery_capacity_error_ppm=100000))).run()
    eri = w.alarms[alarms.ELECTIVE_REPLACEMENT]
    assert eri["count_left_nah"] <= SMALL["eri_remaining_nah"]
    assert eri["loaded_mv"] > MODEL["eri_mv"]
    eos = w.alarms[alarms.END_OF_SERVICE]
    assert eos["count_left_nah"] <= SMALL["eos_remaining_nah"]
    assert w.r.pump.state() == table.BATTERY_DEPLETED


def test_a_rest_reading_reaches_eri_later_than_a_loaded_one():
    weak = cell_models(battery_capacity_error_ppm=-100000)
    loaded = Watch(config(weak)).run().alarms[alarms.ELECTIVE_REPLACEMENT]
    rest = Watch(config(dict(weak, battery_read="rest"))).run().alarms[alarms.ELECTIVE_REPLACEMENT]
    assert rest["t_ms"] > loaded["t_ms"] + 2 * MS_PER_DAY
    assert rest["rest_mv"] <= MODEL["eri_mv"] < loaded["rest_mv"]


def test_an_svo_cell_with_the_default_thresholds_raises_eri_at_middle_of_life():
    # Li/SVO's second plateau sits near 2.6 V: a pump built for 2800 mV calls it ERI at about
    # 40-50 % depth (the GEM II/III note's warning: thresholds must match the chemistry).
    w = Watch(config(cell_models(battery="li-svo"))).run()
    eri = w.alarms[alarms.ELECTIVE_REPLACEMENT]
    assert 350000 < eri["depth_ppm"] < 550000


def test_self_discharge_brings_eri_forward():
    slow = Watch(config(cell_models(battery_self_discharge_ppm_per_year=0))).run()
    fast = Watch(config(cell_models(battery_self_discharge_ppm_per_year=200000))).run()
    a = slow.alarms[alarms.ELECTIVE_REPLACEMENT]["t_ms"]
    b = fast.alarms[alarms.ELECTIVE_REPLACEMENT]["t_ms"]
    assert b < a - MS_PER_DAY


def test_requests_and_read_outs_are_telemetry_sessions_counted_by_both():
    cfg = config(cell_models(telemetry_sessions_per_day=24), days=2,
                 timeline=[{"t_ms": MS_PER_HOUR, "action": "stop"},
                           {"t_ms": 2 * MS_PER_HOUR, "action": "start"}])
    r = Replay(cfg)
    r.run()
    cell = r.cell
    assert r.counts["interrogations"] == 48
    assert cell.sessions == 50
    # The firmware's count includes the same sessions at its nominal charge (and quiescent and
    # strokes); the cell's used_nah is strokes plus sessions.
    strokes = r.board.motor.strokes
    nominal = MODEL["telemetry_session_nah"]
    assert cell.used_nah == strokes * MODEL["stroke_charge_nah"] + 50 * nominal
    quiescent = 2 * 24 * MODEL["quiescent_na"]
    assert r.pump.battery.used_nah() == cell.used_nah + quiescent
    # A session the firmware opens itself (firmware/telemetry.py over a link) reaches the cell
    # through the same wrapper, also after a reboot.
    r._reboot("test")
    r.pump.telemetry_session()
    assert cell.sessions == 51


def test_without_the_cell_requests_cost_no_session():
    cfg = config(days=1, timeline=[{"t_ms": MS_PER_HOUR, "action": "stop"}])
    r = Replay(cfg)
    r.run()
    assert r.pump.battery.used_nah() == (r.board.motor.strokes * MODEL["stroke_charge_nah"]
                                         + 24 * MODEL["quiescent_na"])


# ------------------------------------------------------------------------------ the summary

def test_the_summary_and_rows_show_the_count_and_the_true_cell():
    rows = []
    r = Run(config(cell_models(battery_capacity_error_ppm=-100000)), sample=rows.append)
    summary = r.run()
    b = summary["battery"]
    assert b["chemistry"] == "li-cfx-svo"
    assert b["true_capacity_nah"] == 27000000 and b["nominal_capacity_nah"] == 30000000
    assert b["eri"]["years"] < b["eos"]["years"] < 1
    assert b["eri"]["loaded_mv"] <= 2800 and b["eri"]["firmware_remaining_nah"] > 3000000
    assert summary["final_state"]["therapy"] == "battery_depleted"
    first = rows[0]
    assert first["battery_remaining_pct"] == first["battery_true_remaining_pct"] == "100.000"
    mid = rows[24 * 30]
    assert float(mid["battery_true_remaining_pct"]) < float(mid["battery_remaining_pct"])


# ------------------------------------------------------------------------------ the scenario

def test_shipped_battery_scenario_tells_its_story():
    # The portable replay (what the golden traces and MicroPython run), decoded as events.jsonl
    # has it; the summary's battery block is checked above on a small cell.
    c = scenario.load(scenario.find("battery-end-of-service"))
    assert c["models"]["battery"] == "li-cfx-svo" and 365 < c["days"] <= 3650
    w = Watch(c)
    events = []
    log = w.on_log

    def on_log(seq, t_ms, code, args):
        log(seq, t_ms, code, args)
        events.append((w.r.board.clock.true_ms if w.r else 0, decode(seq, t_ms, code, args)))
    w.r.on_log = on_log
    w.r.days = 1080
    w.r.end_ms = 1080 * MS_PER_DAY
    w.run()
    r = w.r
    nominal = r.model["battery_capacity_nah"]
    assert r.cell.capacity_nah < nominal                        # the seed drew a weak cell
    eri = w.alarms[alarms.ELECTIVE_REPLACEMENT]
    eos = w.alarms[alarms.END_OF_SERVICE]
    # ERI in a few years, by the loaded voltage, with the firmware's count still showing over
    # 10 % of the nominal capacity; EOS by the voltage too, within 90 days of ERI and well
    # before the 7-year shut-off.
    assert 2.0 * MS_PER_YEAR < eri["t_ms"] < 3.5 * MS_PER_YEAR
    assert eri["loaded_mv"] <= 2800 < eri["rest_mv"]
    assert eri["count_left_nah"] > nominal // 10
    assert eri["t_ms"] < eos["t_ms"] < eri["t_ms"] + 90 * MS_PER_DAY
    assert eos["loaded_mv"] <= 2600 and eos["count_left_nah"] > r.model["eos_remaining_nah"]
    assert r.pump.state() == table.BATTERY_DEPLETED
    names = [e["event"] for _, e in events]
    assert names.count("alarm_raised") >= 2
    battery_states = [e for _, e in events if e["event"] == "state" and e["region"] == "battery"]
    assert [(e["from"], e["to"]) for e in battery_states] == [("battery_ok",
                                                               "elective_replacement")]
    halted = [(t, e) for t, e in events if e["event"] == "state" and e["to"] == "battery_depleted"]
    assert len(halted) == 1 and halted[0][1]["trigger"] == "battery_eos"
    assert halted[0][0] == eos["t_ms"]
    refused = [e for t, e in events if e["event"] == "refused" and t > eos["t_ms"]]
    assert refused and {e["reason"] for e in refused} == {"end_of_service"}
    assert r.board.annunciator.counts[2] > 0                    # two-tone: critical
    assert r.cell.sessions > 12 * 1000
    # The implanted crystal runs 1.9 ppm slow: about three minutes behind after 1080 days.
    assert c["models"]["clock_drift_ppb"] == 3000 - 4896
    assert r.drifting_clock.offset_ms() == pytest.approx(-1896e-9 * r.end_ms, abs=2)


# ------------------------------------------------------------------------------ scenario keys


def test_battery_keys_convert_to_integer_units(tmp_path):
    c = load_text(tmp_path, doc(
        '[models]\nbattery = "li-svo"\nbattery_capacity_error_pct = -2.5\n'
        'battery_capacity_spread_pct = 5\nbattery_self_discharge_pct_per_year = 1.5\n'
        'battery_stroke_load_ua = 3000\nbattery_read = "rest"\ntelemetry_sessions_per_day = 6\n'))
    assert c["models"] == {"motor_bias_ppm": 0, "motor_noise_ppm": 0, "refill_error_ppm": 0,
                           "battery": "li-svo", "battery_capacity_error_ppm": -25000,
                           "battery_capacity_spread_ppm": 50000,
                           "battery_self_discharge_ppm_per_year": 15000,
                           "battery_stroke_load_ua": 3000, "battery_read": "rest",
                           "telemetry_sessions_per_day": 6}
    c = load_text(tmp_path, doc('[models]\nbattery = "li-cfx-svo"\n'))
    assert c["models"]["battery"] == "li-cfx-svo"
    assert "battery_self_discharge_ppm_per_year" not in c["models"]     # the chemistry's own


@pytest.mark.parametrize("extra, fragments", [
    ('battery = "alkaline"', ['[models] battery = "alkaline"', '"li-cfx-svo", "li-svo"']),
    ("battery = 1", ["[models] battery = 1", "must be one of"]),
    ("battery_capacity_spread_pct = 5", ["[models] battery_capacity_spread_pct = 5",
                                         'needs battery = "li-cfx-svo"']),
    ("telemetry_sessions_per_day = 4", ["[models] telemetry_sessions_per_day = 4",
                                        "needs battery"]),
    ('battery = "li-svo"\nbattery_capacity_spread_pct = 60',
     ["[models] battery_capacity_spread_pct = 60", "from 0 to 50"]),
    ('battery = "li-svo"\nbattery_capacity_error_pct = -51',
     ["[models] battery_capacity_error_pct = -51", "from -50 to 50"]),
    ('battery = "li-svo"\nbattery_self_discharge_pct_per_year = 25',
     ["[models] battery_self_discharge_pct_per_year = 25", "from 0 to 20"]),
    ('battery = "li-svo"\nbattery_stroke_load_ua = 2.5',
     ["[models] battery_stroke_load_ua = 2.5", "from 0 to 100000", "no decimal point"]),
    ('battery = "li-svo"\nbattery_read = "sometimes"',
     ['[models] battery_read = "sometimes"', '"loaded", "rest"']),
    ('battery = "li-svo"\ntelemetry_sessions_per_day = 100',
     ["[models] telemetry_sessions_per_day = 100", "from 0 to 96"]),
    ("battery_capacity = 1", ["[models] battery_capacity", "unknown key"]),
])
def test_bad_battery_keys_name_table_key_value_and_range(tmp_path, extra, fragments):
    with pytest.raises(ScenarioError) as info:
        load_text(tmp_path, doc("[models]\n" + extra + "\n"))
    for fragment in fragments:
        assert fragment in str(info.value)
