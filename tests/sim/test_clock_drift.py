"""The pump's clock crystal (sim/crystal.py, [models] clock_* keys): the firmware's time runs at
true time x (1 + drift) while the simulator's plan stays in true time; deadlines are never
reached early; the flex schedule follows the pump's own (drifted) wall clock."""

import pytest

from firmware import eventlog
from firmware.dosing import MS_PER_DAY
from hal.sim import VirtualClock
from sim import scenario
from sim.crystal import DriftingClock, MS_PER_YEAR, temperature_ppb
from sim.errors import ScenarioError
from sim.replay import Replay
from simtest import base_config, MONDAY_0800, doc, load_text, run  # tests/sim/simtest.py

MONDAY_0000 = MONDAY_0800 - 8 * 3600000


def config(models=None, **overrides):
    overrides.setdefault("days", 10)
    return base_config(name="drift", models=models, **overrides)


def drift_models(ppb, aging_ppb_per_year=0):
    m = {"motor_bias_ppm": 0, "motor_noise_ppm": 0, "refill_error_ppm": 0,
         "clock_drift_ppb": ppb}
    if aging_ppb_per_year:
        m["clock_aging_ppb_per_year"] = aging_ppb_per_year
    return m


# ------------------------------------------------------------------------------ the crystal

@pytest.mark.parametrize("ppb, aging", [(-100000, 0), (250000, 0), (-4896, 3000),
                                        (20000, -5000), (0, 0)])
def test_pump_time_is_true_time_times_one_plus_drift(ppb, aging):
    clock = DriftingClock(ppb, aging)
    for t in (0, 1, 999, MS_PER_DAY, 100 * MS_PER_DAY, 7 * MS_PER_YEAR):
        exact = t + (ppb * t * 2 * MS_PER_YEAR + aging * t * t) / (2 * MS_PER_YEAR * 10 ** 9)
        assert clock.pump_ms_at(t) == pytest.approx(exact, abs=1)
    # 100 ppm slow: 8.64 s a day behind, exactly (floored to whole ms).
    assert DriftingClock(-100000).pump_ms_at(MS_PER_DAY) == MS_PER_DAY - 8640


@pytest.mark.parametrize("ppb, aging", [(-100000, 0), (250000, 0), (-4896, 3000), (7, 0)])
def test_sleep_lands_on_the_first_true_ms_that_reaches_the_deadline(ppb, aging):
    clock = DriftingClock(ppb, aging)
    deadline = 0
    for step in (1, 7, 1000, 3599999, MS_PER_DAY, 12345, 1, 1, 40 * MS_PER_DAY):
        deadline += step
        now = clock.sleep_until(deadline)
        assert now >= deadline                       # never early
        assert clock.now_ms() == now == clock.pump_ms_at(clock.true_ms)
        # a true ms sooner and the pump would not have reached it yet
        assert clock.pump_ms_at(clock.true_ms - 1) < deadline


def test_a_wrapping_drifting_clock_unwraps_like_a_virtual_one():
    clock = DriftingClock(150000, wrap_bits=16, start_raw=65000)
    for _ in range(200):
        clock.sleep_until(clock.now_ms() + 20000)   # under half the 65.5 s wrap period
    assert clock.now_ms() == clock.pump_ms_at(clock.true_ms)


def test_body_temperature_makes_a_watch_crystal_slow():
    assert temperature_ppb(25) == 0
    assert temperature_ppb(37) == -34 * 144 == -4896      # -4.9 ppm: 0.42 s a day


def test_a_drifting_clock_is_not_direct_and_an_ideal_one_still_is():
    assert Replay(config()).board.clock.direct
    r = Replay(config(drift_models(-100000)))
    assert isinstance(r.board.clock, VirtualClock) and not r.board.clock.direct
    assert r.board.battery.clock is r.board.clock


# ------------------------------------------------------------------------------ in a run


def test_clock_offset_after_n_days_is_drift_times_time():
    r, summary, events, rows = run(config(drift_models(-100000), days=30))
    for row in rows:
        true_ms = row["t_ms"] - MONDAY_0800
        expected_ms = -((100000 * true_ms + 10 ** 9 - 1) // 10 ** 9)     # floored pump time
        assert round(float(row["clock_offset_s"]) * 1000) == expected_ms
    assert rows[-1]["clock_offset_s"] == "-259.200"             # 30 days x 8.64 s
    assert summary["clock_offset_s"] == -259.2
    # The plan stays in true time: the sim's own records carry true wall time, the pump's own
    # records its (slow) wall clock.
    assert events[-1]["src"] == "sim" and events[-1]["t_ms"] == MONDAY_0800 + 30 * MS_PER_DAY


def test_without_clock_keys_the_offset_column_is_zero():
    _, summary, _, rows = run(config(days=2))
    assert {row["clock_offset_s"] for row in rows} == {"0.000"}
    assert summary["clock_offset_s"] == 0


def test_a_fast_crystal_delivers_more_per_true_day():
    # 1 % fast (far beyond a crystal's tolerance, to make the count plain): the firmware's
    # 800 strokes per pump day are 808 per true day.
    ideal = Replay(config(days=20))
    ideal.run()
    fast = Replay(config(drift_models(10000000), days=20))
    fast.run()
    assert ideal.board.motor.strokes == pytest.approx(20 * 800, abs=1)
    assert fast.board.motor.strokes == pytest.approx(20 * 808, abs=2)


def flex_config(models, days):
    # Every day: 400 ug/day from midnight, 440 from 08:00 (pump wall clock).
    day = [[0, 400], [480, 440]]
    return config(models, days=days, start_wall_ms=MONDAY_0000 + 3600000,
                  therapy={"mode": "flex", "steps": [day] * 7})


def flex_steps_true_ms(models, days):
    # (true ms since the start, ug_per_day) of every flex_step the firmware logs.
    r = Replay(flex_config(models, days))
    steps = []
    r.on_log = lambda seq, t_ms, code, args: steps.append(
        (r.board.clock.true_ms, args[0])) if code == eventlog.FLEX_STEP else None
    r.run()
    return r, steps


def test_the_flex_schedule_follows_the_drifted_pump_clock():
    # 200 ppm slow for 60 days: the pump's wall clock is 1036.8 s behind by then, so its 08:00
    # step comes that much later in true time.
    days = 60
    _, ideal = flex_steps_true_ms(None, days)
    r, slow = flex_steps_true_ms(drift_models(-200000), days)
    assert len(ideal) == len(slow) == 2 * days
    clock = r.board.clock
    for (t_ideal, ug_ideal), (t_slow, ug_slow) in zip(ideal, slow):
        assert ug_ideal == ug_slow
        # the true moment the pump's clock reads the ideal moment, to the ms, and never before
        assert t_slow == clock.true_ms_for(t_ideal)
        assert clock.pump_ms_at(t_slow) >= t_ideal > clock.pump_ms_at(t_slow - 1)
    last_ideal, last_slow = ideal[-1][0], slow[-1][0]
    lag_ms = last_slow - last_ideal
    # t_slow x (1 - 200 ppm) = t_ideal, so the lag is t_ideal x 200 ppm / (1 - 200 ppm)
    assert lag_ms == pytest.approx(last_ideal * 200000 // (10 ** 9 - 200000), abs=2)
    assert 1000000 < lag_ms                                            # over 16 minutes late


def test_drift_is_deterministic_and_survives_a_power_loss():
    faults = [{"t_ms": 3 * MS_PER_DAY + 5000, "duration_ms": None, "kind": "power_loss",
               "number": 1}]
    a = run(config(drift_models(-4896, 3000), days=6, faults=faults))
    b = run(config(drift_models(-4896, 3000), days=6, faults=faults))
    assert a[2] == b[2] and a[3] == b[3]
    assert a[1]["resets"] == 1
    r = a[0]
    assert r.pump.wall_ms() - MONDAY_0800 == r.board.clock.pump_ms_at(6 * MS_PER_DAY)


# ------------------------------------------------------------------------------ scenario keys


def test_clock_keys_convert_to_ppb(tmp_path):
    c = load_text(tmp_path, doc('[models]\nclock_drift_ppm = 12.5\nclock_temperature_c = 37\n'
                                'clock_aging_ppm_per_year = 1.5\n'))
    assert c["models"]["clock_drift_ppb"] == 12500 - 4896
    assert c["models"]["clock_aging_ppb_per_year"] == 1500
    c = load_text(tmp_path, doc('[models]\nclock_temperature_c = 35\n'
                                'clock_tempco_ppm_per_c2 = -0.04\n'))
    assert c["models"]["clock_drift_ppb"] == -4000
    c = load_text(tmp_path, doc('[models]\nmotor_noise_pct = 1\n'))
    assert "clock_drift_ppb" not in c["models"]


@pytest.mark.parametrize("extra, fragments", [
    ("clock_drift_ppm = 500", ["[models] clock_drift_ppm = 500", "from -200 to 200"]),
    ('clock_drift_ppm = "fast"', ['[models] clock_drift_ppm = "fast"', "must be a number"]),
    ("clock_temperature_c = 60", ["[models] clock_temperature_c = 60", "from 20 to 45"]),
    ("clock_tempco_ppm_per_c2 = 0.03", ["[models] clock_tempco_ppm_per_c2 = 0.03",
                                        "from -0.1 to 0"]),
    ("clock_aging_ppm_per_year = -11", ["[models] clock_aging_ppm_per_year = -11",
                                        "from -10 to 10"]),
    ("clock_aging_ppm_per_year = true", ["[models] clock_aging_ppm_per_year = true"]),
    ("clock_drift = 3", ["[models] clock_drift", "unknown key", "clock_drift_ppm"]),
])
def test_bad_clock_keys_name_table_key_value_and_range(tmp_path, extra, fragments):
    with pytest.raises(ScenarioError) as info:
        load_text(tmp_path, doc("[models]\n" + extra + "\n"))
    for fragment in fragments:
        assert fragment in str(info.value)
