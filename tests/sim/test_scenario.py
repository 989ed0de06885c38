"""Scenario files: the shipped examples load, units convert, and every mistake is named.

Each error test checks the message names the [table], the key, the bad value and what is
allowed, so a user can fix the file from the message alone.
"""

import copy
import datetime
import json
import os

import pytest

from sim import scenario
from sim.errors import ScenarioError

MS_PER_MIN = 60000
MS_PER_HOUR = 3600000
MS_PER_DAY = 86400000
MONDAY_0800 = 1767600000000          # 2026-01-05T08:00:00, the default start
SHIPPED = ("adult-sci-continuous", "child-cp-flex", "late-refill-empty")
DROP = object()                      # doc(): remove this key

MINIMAL_TOML = """\
[scenario]
name = "minimal"
days = 10

[drug]
concentration_ug_per_ml = 2000

[therapy]
mode = "continuous"
basal_ug_per_day = 400
"""

MINIMAL = {
    "scenario": {"name": "minimal", "days": 10},
    "drug": {"concentration_ug_per_ml": 2000},
    "therapy": {"mode": "continuous", "basal_ug_per_day": 400},
}
ALL_WEEK = [{"days": ["all"], "steps": [["00:00", 100]]}]
FLEX = {"mode": "flex", "basal_ug_per_day": DROP, "flex": ALL_WEEK}
PATIENT_BOLUS = {"dose_ug": 25, "duration_min": 10, "lockout_min": 180, "max_per_24h": 4}


def doc(**tables):
    """MINIMAL with tables changed: a dict merges into the table (DROP removes a key), None
    removes the table, anything else replaces it."""
    raw = copy.deepcopy(MINIMAL)
    for name, table in tables.items():
        if table is None:
            raw.pop(name, None)
        elif isinstance(table, dict) and isinstance(raw.get(name), dict):
            for key, value in table.items():
                if value is DROP:
                    raw[name].pop(key, None)
                else:
                    raw[name][key] = value
        else:
            raw[name] = table
    return raw


def flex_doc(flex):
    return doc(therapy=dict(FLEX, flex=flex))


def error_of(raw):
    with pytest.raises(ScenarioError) as info:
        scenario.validate(raw, source="bad.toml")
    return str(info.value)


def write(tmp_path, text, name="s.toml"):
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return str(path)


def load_error(path):
    with pytest.raises(ScenarioError) as info:
        scenario.load(path)
    return info.value


# ------------------------------------------------------------------------------ shipped scenarios

def test_available_lists_the_three_shipped_scenarios():
    assert set(SHIPPED) <= set(scenario.available())


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_scenario_is_found_by_name_and_loads(name):
    path = scenario.find(name)
    assert os.path.basename(path) == name + ".toml"
    assert os.path.basename(os.path.dirname(path)) == "scenarios"
    config = scenario.load(path)
    assert config["name"] == name
    assert config["drug"] == "baclofen"
    json.dumps(config)                       # plain data, for the MicroPython port too


@pytest.mark.parametrize("name", SHIPPED)
def test_find_accepts_a_bare_name_with_toml_suffix_from_any_directory(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert scenario.find(name + ".toml") == scenario.find(name)


def test_adult_scenario_converts_to_firmware_units():
    c = scenario.load(scenario.find("adult-sci-continuous"))
    assert c["start_wall_ms"] == MONDAY_0800
    assert c["days"] == 180 and c["seed"] == 1
    assert c["model"] == {"reservoir_capacity_nl": 40000000}          # reservoir_ml = 40
    assert c["fill_nl"] == 40000 * 1000                                # fill_ul x 1000
    assert c["concentration_ug_per_ml"] == 2000
    assert c["therapy"] == {"mode": "continuous", "basal_ug_per_day": 400}
    assert c["low_reservoir_alarm_nl"] == 2000 * 1000
    assert c["patient_bolus"] == {"dose_ug": 25, "duration_ms": 10 * MS_PER_MIN,
                                  "lockout_ms": 180 * MS_PER_MIN, "max_per_24h": 4}
    assert c["patient_requests_per_day"] == 2


def test_adult_scenario_refills_and_timeline_are_relative_to_the_start():
    c = scenario.load(scenario.find("adult-sci-continuous"))
    # Every 91 days at 10:30; the start is 08:00, so the first is 91 days and 2.5 h in.
    assert c["refills"] == {"every_ms": 91 * MS_PER_DAY,
                            "first_ms": 91 * MS_PER_DAY + 150 * MS_PER_MIN,
                            "volume_nl": 40000000, "concentration_ug_per_ml": 2000,
                            "bridge": False}
    # day 42 at 11:00, 3 h after the 08:00 start.
    assert c["timeline"] == [{"t_ms": 42 * MS_PER_DAY + 3 * MS_PER_HOUR, "action": "program",
                              "basal_ug_per_day": 440, "confirm": False}]


def test_child_scenario_flex_week_is_seven_lists_monday_first_of_minute_and_ug():
    c = scenario.load(scenario.find("child-cp-flex"))
    assert c["start_wall_ms"] == MONDAY_0800 + 56 * MS_PER_DAY + MS_PER_HOUR    # 2026-03-02 09:00
    flex = c["timeline"][-1]
    assert flex["action"] == "program_flex"
    assert flex["t_ms"] == 14 * MS_PER_DAY + MS_PER_HOUR                       # day 14, 10:00
    week = flex["steps"]
    assert len(week) == 7
    weekday = [[0, 190], [360, 170], [540, 150], [1200, 190]]
    weekend = [[0, 190], [480, 150], [1260, 190]]
    assert week == [weekday] * 5 + [weekend] * 2


def test_child_scenario_titration_steps_are_a_day_apart():
    c = scenario.load(scenario.find("child-cp-flex"))
    programs = [(e["t_ms"], e["basal_ug_per_day"]) for e in c["timeline"]
                if e["action"] == "program"]
    assert programs == [(d * MS_PER_DAY + MS_PER_HOUR, ug)
                        for d, ug in zip(range(1, 6), (110, 121, 133, 146, 160))]
    assert c["patient_bolus"] is None and c["patient_requests_per_day"] == 0


def test_late_refill_scenario_has_no_periodic_refills_and_a_bridged_late_refill():
    c = scenario.load(scenario.find("late-refill-empty"))
    assert c["start_wall_ms"] == MONDAY_0800 + 28 * MS_PER_DAY              # 2026-02-02 08:00
    assert c["refills"] is None
    assert c["fill_nl"] == 15000000
    assert [e["action"] for e in c["timeline"]] == [
        "silence_alarms", "silence_alarms", "refill", "start"]
    assert c["timeline"][0] == {"t_ms": 53 * MS_PER_DAY, "action": "silence_alarms",
                                "silence_ms": 1440 * MS_PER_MIN}
    assert c["timeline"][2] == {"t_ms": 70 * MS_PER_DAY + 6 * MS_PER_HOUR, "action": "refill",
                                "volume_nl": 20000000, "concentration_ug_per_ml": 2000,
                                "bridge": True}
    assert c["timeline"][3]["t_ms"] == 70 * MS_PER_DAY + 6 * MS_PER_HOUR + 5 * MS_PER_MIN


# ------------------------------------------------------------------------------ defaults, units

def test_minimal_toml_file_loads_with_documented_defaults(tmp_path):
    c = scenario.load(write(tmp_path, MINIMAL_TOML))
    assert c == {
        "name": "minimal", "description": "", "days": 10, "seed": 1,
        "start_wall_ms": MONDAY_0800, "model": {}, "drug": "baclofen",
        "concentration_ug_per_ml": 2000, "fill_nl": 20000000,
        "therapy": {"mode": "continuous", "basal_ug_per_day": 400}, "confirm": False,
        "low_reservoir_alarm_nl": 2000000, "limits": {}, "patient_bolus": None,
        "patient_requests_per_day": 0, "refills": None, "timeline": [],
    }


def test_fill_defaults_to_the_reservoir_capacity():
    assert scenario.validate(doc(pump={"reservoir_ml": 40}))["fill_nl"] == 40000000
    assert scenario.validate(doc(drug={"fill_ul": 0}))["fill_nl"] == 0


@pytest.mark.parametrize("start, wall_ms", [
    ("2026-01-05T08:00:00", MONDAY_0800),
    ("2026-01-05T08:00", MONDAY_0800),
    ("2026-01-05 08:00", MONDAY_0800),
    (datetime.datetime(2026, 1, 5, 8, 0), MONDAY_0800),
    (datetime.date(2026, 1, 5), MONDAY_0800 - 8 * MS_PER_HOUR),
    ("1970-01-01T00:00", 0),
])
def test_start_forms_give_ms_since_1970_local(start, wall_ms):
    assert scenario.validate(doc(scenario={"start": start}))["start_wall_ms"] == wall_ms


def test_toml_local_date_time_start_keeps_milliseconds(tmp_path):
    text = MINIMAL_TOML.replace("days = 10", "days = 10\nstart = 2026-01-05T08:00:00.250")
    assert scenario.load(write(tmp_path, text))["start_wall_ms"] == MONDAY_0800 + 250


@pytest.mark.parametrize("day, time, t_ms", [
    (0, "08:00", 0),                                  # the start moment itself
    (0, "09:30", 90 * MS_PER_MIN),
    (1, "07:00", 23 * MS_PER_HOUR),                   # day 1 is the next calendar day
    (2, "00:00", 2 * MS_PER_DAY - 8 * MS_PER_HOUR),
])
def test_timeline_day_and_time_count_from_the_start_calendar_day(day, time, t_ms):
    c = scenario.validate(doc(timeline=[{"day": day, "time": time, "action": "stop"}]))
    assert c["timeline"] == [{"t_ms": t_ms, "action": "stop"}]


def test_timeline_time_defaults_to_0900():
    c = scenario.validate(doc(timeline=[{"day": 1, "action": "start"}]))
    assert c["timeline"][0]["t_ms"] == MS_PER_DAY + MS_PER_HOUR


def test_timeline_actions_convert_their_fields():
    entries = [
        {"day": 1, "action": "clinician_bolus", "dose_ug": 50, "duration_min": 30,
         "confirm": True},
        {"day": 1, "action": "set_patient_bolus", "dose_ug": 20, "duration_min": 5,
         "lockout_min": 60, "max_per_24h": 3},
        {"day": 1, "action": "refill"},
        {"day": 1, "action": "silence_alarms", "minutes": 30},
        {"day": 1, "action": "set_low_reservoir_alarm", "volume_ul": 4000},
        {"day": 1, "action": "reset"},
    ]
    c = scenario.validate(doc(drug={"concentration_ug_per_ml": 500}, timeline=entries))
    t = MS_PER_DAY + MS_PER_HOUR
    assert c["timeline"] == [
        {"t_ms": t, "action": "clinician_bolus", "dose_ug": 50, "duration_ms": 30 * MS_PER_MIN,
         "confirm": True},
        {"t_ms": t, "action": "set_patient_bolus", "dose_ug": 20, "duration_ms": 5 * MS_PER_MIN,
         "lockout_ms": 60 * MS_PER_MIN, "max_per_24h": 3, "confirm": False},
        {"t_ms": t, "action": "refill", "volume_nl": 20000000, "concentration_ug_per_ml": 500,
         "bridge": False},
        {"t_ms": t, "action": "silence_alarms", "silence_ms": 30 * MS_PER_MIN},
        {"t_ms": t, "action": "set_low_reservoir_alarm", "volume_nl": 4000000},
        {"t_ms": t, "action": "reset"},
    ]


def test_refills_default_to_start_day_every_days_at_1000_with_the_fill_concentration():
    c = scenario.validate(doc(drug={"concentration_ug_per_ml": 1000},
                              refills={"every_days": 60}))
    assert c["refills"] == {"every_ms": 60 * MS_PER_DAY,
                            "first_ms": 60 * MS_PER_DAY + 2 * MS_PER_HOUR,
                            "volume_nl": 20000000, "concentration_ug_per_ml": 1000,
                            "bridge": False}


def test_refills_start_day_and_time_place_the_first_refill():
    c = scenario.validate(doc(refills={"every_days": 30, "start_day": 3, "time": "08:30",
                                       "bridge": True, "volume_ul": 15000}))
    assert c["refills"]["first_ms"] == 3 * MS_PER_DAY + 30 * MS_PER_MIN
    assert c["refills"]["every_ms"] == 30 * MS_PER_DAY
    assert c["refills"]["volume_nl"] == 15000000 and c["refills"]["bridge"] is True


def test_flex_days_map_monday_first_and_all_covers_the_week():
    c = scenario.validate(flex_doc([
        {"days": ["sun"], "steps": [["00:00", 7]]},
        {"days": ["mon", "tue", "wed", "thu", "fri", "sat"], "steps": [["00:00", 1],
                                                                      ["12:30", 2]]},
    ]))
    assert c["therapy"]["mode"] == "flex"
    assert c["therapy"]["steps"] == [[[0, 1], [750, 2]]] * 6 + [[[0, 7]]]
    week = scenario.validate(flex_doc(ALL_WEEK))["therapy"]["steps"]
    assert week == [[[0, 100]]] * 7


def test_flex_accepts_13_steps_and_toml_local_times(tmp_path):
    steps = [["%02d:00" % h, h] for h in range(13)]
    assert len(scenario.validate(flex_doc([{"days": ["all"], "steps": steps}]))
               ["therapy"]["steps"][0]) == 13
    text = MINIMAL_TOML.replace('mode = "continuous"\nbasal_ug_per_day = 400',
                                'mode = "flex"\n\n[[therapy.flex]]\ndays = ["all"]\n'
                                'steps = [[00:00:00, 90], [06:15:00, 120]]')
    week = scenario.load(write(tmp_path, text))["therapy"]["steps"]
    assert week == [[[0, 90], [375, 120]]] * 7


def test_patient_bolus_requests_per_day_defaults_to_zero():
    c = scenario.validate(doc(patient_bolus=PATIENT_BOLUS))
    assert c["patient_requests_per_day"] == 0
    assert c["patient_bolus"]["lockout_ms"] == 180 * MS_PER_MIN


def test_limits_are_passed_through_only_when_given():
    c = scenario.validate(doc(limits={"daily_dose_soft_ug": 600, "rate_increase_soft_pct": 15}))
    assert c["limits"] == {"daily_dose_soft_ug": 600, "rate_increase_soft_pct": 15}


def test_pump_keys_pass_through_as_model_overrides():
    c = scenario.validate(doc(pump={"stroke_nl": 500, "catheter_nl": 30000,
                                    "critical_repeat_ms": 1000}))
    assert c["model"] == {"stroke_nl": 500, "catheter_nl": 30000, "critical_repeat_ms": 1000}


def test_clinical_limits_are_not_checked_when_loading():
    # 50,000 ug/day is far over the hard limit: the pump must refuse it, not the loader.
    c = scenario.validate(doc(therapy={"basal_ug_per_day": 50000}))
    assert c["therapy"]["basal_ug_per_day"] == 50000


# ------------------------------------------------------------------------------ timeline order

def test_timeline_sort_is_by_time_and_stable_for_equal_times():
    entries = [
        {"day": 2, "action": "stop"},
        {"day": 1, "time": "12:00", "action": "start"},
        {"day": 2, "action": "clear_alarm"},
        {"day": 1, "time": "12:00", "action": "reset"},
        {"day": 2, "time": "09:00", "action": "start"},
        {"day": 0, "time": "23:59", "action": "stop"},
    ]
    c = scenario.validate(doc(timeline=entries))
    assert [(e["t_ms"], e["action"]) for e in c["timeline"]] == [
        (16 * MS_PER_HOUR - MS_PER_MIN, "stop"),
        (MS_PER_DAY + 4 * MS_PER_HOUR, "start"),
        (MS_PER_DAY + 4 * MS_PER_HOUR, "reset"),
        (2 * MS_PER_DAY + MS_PER_HOUR, "stop"),
        (2 * MS_PER_DAY + MS_PER_HOUR, "clear_alarm"),
        (2 * MS_PER_DAY + MS_PER_HOUR, "start"),
    ]


# ------------------------------------------------------------------------------ validation errors

BAD = [
    # --- tables
    ("missing-drug-table", doc(drug=None),
     ["[drug] is missing", "every scenario needs the tables [scenario], [drug], [therapy]"]),
    ("missing-scenario-table", doc(scenario=None), ["[scenario] is missing"]),
    ("missing-therapy-table", doc(therapy=None), ["[therapy] is missing"]),
    ("unknown-table-typo", doc(therapie={"mode": "continuous"}),
     ["[therapie]: unknown table", "did you mean [therapy]?",
      "allowed tables: [scenario], [pump], [drug], [therapy], [limits], [patient_bolus], "
      "[refills], [timeline]"]),
    ("unknown-table-no-hint", doc(xyzzy={}), ["[xyzzy]: unknown table", "allowed tables:"]),
    ("key-outside-tables", doc(days=5), ["[days]: a key outside any table", "allowed tables:"]),
    ("table-not-a-table", doc(pump=[{"stroke_nl": 100}]),
     ["[pump] = [{stroke_nl = 100}]", "must be a table"]),
    # --- [scenario]
    ("unknown-key-suggestion", doc(scenario={"seeed": 3}),
     ["[scenario] seeed = 3", "unknown key", 'did you mean "seed"?',
      "allowed: name, description, days, seed, start"]),
    ("name-missing", doc(scenario={"name": DROP}),
     ["[scenario] name is missing", "required", "must be a non-empty string"]),
    ("name-blank", doc(scenario={"name": "  "}),
     ['[scenario] name = "  "', "must be a non-empty string"]),
    ("description-not-string", doc(scenario={"description": 5}),
     ["[scenario] description = 5", "must be a string"]),
    ("days-zero", doc(scenario={"days": 0}),
     ["[scenario] days = 0", "must be a whole number of days from 1 to 3650"]),
    ("days-too-many", doc(scenario={"days": 99999}),
     ["[scenario] days = 99999", "from 1 to 3650"]),
    ("days-float", doc(scenario={"days": 10.5}),
     ["[scenario] days = 10.5", "from 1 to 3650", "got a float: no decimal point"]),
    ("days-bool", doc(scenario={"days": True}),
     ["[scenario] days = true", "from 1 to 3650", "got true/false, not a number"]),
    ("days-string", doc(scenario={"days": "10"}),
     ['[scenario] days = "10"', "from 1 to 3650", "(got a string)"]),
    ("days-missing", doc(scenario={"days": DROP}),
     ["[scenario] days is missing", "from 1 to 3650"]),
    ("seed-negative", doc(scenario={"seed": -1}),
     ["[scenario] seed = -1", "from 0 to 4294967295"]),
    ("seed-too-big", doc(scenario={"seed": 2 ** 32}),
     ["[scenario] seed = 4294967296", "from 0 to 4294967295"]),
    ("start-bad-string", doc(scenario={"start": "5 Jan 2026"}),
     ['[scenario] start = "5 Jan 2026"', "must be a local date and time without a UTC offset",
      "from 1970-01-01T00:00 to 9999-12-31T23:59"]),
    ("start-string-with-offset", doc(scenario={"start": "2026-01-05T08:00:00+01:00"}),
     ['[scenario] start = "2026-01-05T08:00:00+01:00"', "without a UTC offset"]),
    ("start-string-with-z", doc(scenario={"start": "2026-01-05T08:00:00Z"}),
     ['[scenario] start = "2026-01-05T08:00:00Z"', "without a UTC offset"]),
    ("start-impossible-date", doc(scenario={"start": "2026-02-30T08:00"}),
     ['[scenario] start = "2026-02-30T08:00"', "without a UTC offset",
      "day is out of range for month"]),
    ("start-before-1970", doc(scenario={"start": "1969-12-31T23:59"}),
     ['[scenario] start = "1969-12-31T23:59"', "from 1970-01-01T00:00"]),
    ("start-number", doc(scenario={"start": 20260105}),
     ["[scenario] start = 20260105", "local date and time"]),
    # --- [pump]
    ("reservoir-30-ml", doc(pump={"reservoir_ml": 30}),
     ["[pump] reservoir_ml = 30", "must be 20 or 40", "SynchroMed II 8637-20/-40"]),
    ("reservoir-ml-float", doc(pump={"reservoir_ml": 20.0}),
     ["[pump] reservoir_ml = 20.0", "must be 20 or 40"]),
    ("reservoir-ml-and-nl", doc(pump={"reservoir_ml": 20, "reservoir_capacity_nl": 20000000}),
     ["[pump] reservoir_ml = 20", "give reservoir_ml or reservoir_capacity_nl, not both"]),
    ("pump-unknown-key", doc(pump={"stroke": 500}),
     ["[pump] stroke = 500", "unknown key (pump-model parameters: firmware/pump.py MODEL)",
      'did you mean "stroke_nl"?', "allowed: reservoir_capacity_nl, stroke_nl"]),
    ("pump-name-not-overridable", doc(pump={"name": "x"}),
     ['[pump] name = "x"', "unknown key"]),
    ("stroke-too-small", doc(pump={"stroke_nl": 20}),
     ["[pump] stroke_nl = 20", "must be a whole number of nL from 50 to 10000"]),
    ("pump-negative", doc(pump={"tubing_nl": -1}),
     ["[pump] tubing_nl = -1", "must be a whole number from 0 to 1000000000"]),
    ("battery-capacity-zero", doc(pump={"battery_capacity_nah": 0}),
     ["[pump] battery_capacity_nah = 0", "must be a whole number from 1 to 10000000000000"]),
    ("max-rate-zero", doc(pump={"max_rate_nl_per_hour": 0}),
     ["[pump] max_rate_nl_per_hour = 0", "must be a whole number from 1 to 1000000000"]),
    ("critical-repeat-zero", doc(pump={"critical_repeat_ms": 0}),
     ["[pump] critical_repeat_ms = 0", "must be a whole number from 1000 to 86400000"]),
    ("noncritical-repeat-too-short", doc(pump={"noncritical_repeat_ms": 999}),
     ["[pump] noncritical_repeat_ms = 999", "must be a whole number from 1000 to 86400000"]),
    ("pump-value-too-big", doc(pump={"tubing_nl": 10 ** 12}),
     ["[pump] tubing_nl = 1000000000000", "from 0 to 1000000000"]),
    ("commit-interval-too-long", doc(pump={"commit_interval_ms": 86400001}),
     ["[pump] commit_interval_ms = 86400001", "from 60000 to 86400000", "tick wrap"]),
    ("reservoir-capacity-zero", doc(pump={"reservoir_capacity_nl": 0}),
     ["[pump] reservoir_capacity_nl = 0", "from 1000000 to 100000000"]),
    ("default-alarm-over-small-reservoir", doc(pump={"reservoir_capacity_nl": 1500000},
                                               drug={"concentration_ug_per_ml": 2000,
                                                     "fill_ul": 1000}),
     ["[therapy] low_reservoir_alarm_ul is missing", "default 2000 uL does not fit",
      "from 0 to 1500"]),
    ("storage-slot-too-big", doc(pump={"storage_slot_bytes": 16369}),
     ["[pump] storage_slot_bytes = 16369", "from 12 to 16368"]),
    # --- [drug]
    ("drug-not-in-library", doc(drug={"name": "morphine"}),
     ['[drug] name = "morphine"', 'must be one of "baclofen"', "drug library"]),
    ("concentration-not-in-library", doc(drug={"concentration_ug_per_ml": 3000}),
     ["[drug] concentration_ug_per_ml = 3000", "must be one of 50, 500, 1000, 2000 ug/mL"]),
    ("concentration-float", doc(drug={"concentration_ug_per_ml": 2000.0}),
     ["[drug] concentration_ug_per_ml = 2000.0", "must be one of 50, 500, 1000, 2000 ug/mL",
      "got a float"]),
    ("concentration-missing", doc(drug={"concentration_ug_per_ml": DROP}),
     ["[drug] concentration_ug_per_ml is missing", "must be one of 50, 500, 1000, 2000"]),
    ("fill-over-20-ml", doc(drug={"fill_ul": 20001}),
     ["[drug] fill_ul = 20001", "must be a whole number of uL from 0 to 20000",
      "the reservoir's capacity"]),
    ("fill-over-40-ml", doc(pump={"reservoir_ml": 40}, drug={"fill_ul": 40001}),
     ["[drug] fill_ul = 40001", "from 0 to 40000"]),
    ("fill-negative", doc(drug={"fill_ul": -1}), ["[drug] fill_ul = -1", "from 0 to 20000"]),
    # --- [therapy]
    ("mode-unknown", doc(therapy={"mode": "bolus"}),
     ['[therapy] mode = "bolus"', 'must be one of "continuous", "flex"']),
    ("mode-missing", doc(therapy={"mode": DROP}),
     ["[therapy] mode is missing", 'must be one of "continuous", "flex"']),
    ("basal-negative", doc(therapy={"basal_ug_per_day": -5}),
     ["[therapy] basal_ug_per_day = -5", "must be a whole number of ug/day from 0 to 1000000"]),
    ("basal-missing", doc(therapy={"basal_ug_per_day": DROP}),
     ["[therapy] basal_ug_per_day is missing", "from 0 to 1000000"]),
    ("therapy-unknown-key", doc(therapy={"basal_ug_perday": 400}),
     ["[therapy] basal_ug_perday = 400", 'unknown key for mode = "continuous"',
      'did you mean "basal_ug_per_day"?',
      "allowed: mode, basal_ug_per_day, low_reservoir_alarm_ul, confirm"]),
    ("therapy-unknown-key-no-hint", doc(therapy={"basal": 400}),
     ["[therapy] basal = 400", 'unknown key for mode = "continuous"; allowed: mode, ']),
    ("flex-with-basal", doc(therapy={"mode": "flex", "flex": ALL_WEEK}),
     ["[therapy] basal_ug_per_day = 400", 'unknown key for mode = "flex"',
      "allowed: mode, flex, low_reservoir_alarm_ul, confirm"]),
    ("continuous-with-flex", doc(therapy={"flex": ALL_WEEK}),
     ["[therapy] flex = [", 'unknown key for mode = "continuous"']),
    ("flex-missing", doc(therapy=dict(FLEX, flex=DROP)),
     ["[therapy] flex is missing", "needs one or more [[therapy.flex]] tables"]),
    ("flex-not-tables", flex_doc("all"),
     ['[therapy] flex = "all"', "must be one or more tables"]),
    ("alarm-over-capacity", doc(therapy={"low_reservoir_alarm_ul": 20001}),
     ["[therapy] low_reservoir_alarm_ul = 20001", "from 0 to 20000"]),
    ("confirm-not-bool", doc(therapy={"confirm": "yes"}),
     ['[therapy] confirm = "yes"', "must be true or false"]),
    # --- [[therapy.flex]]
    ("flex-weekday-not-covered", flex_doc([{"days": ["mon"], "steps": [["00:00", 1]]}]),
     ['[therapy.flex] days = [["mon"]]', "every weekday must be covered exactly once",
      "not covered: tue, wed, thu, fri, sat, sun"]),
    ("flex-weekday-covered-twice", flex_doc(ALL_WEEK + [{"days": ["mon"],
                                                          "steps": [["00:00", 1]]}]),
     ['[therapy.flex #2] days = ["mon"]', '"mon" is already covered by [therapy.flex #1]',
      "every weekday must be covered exactly once"]),
    ("flex-weekday-listed-twice", flex_doc([{"days": ["all", "mon"],
                                             "steps": [["00:00", 1]]}]),
     ['[therapy.flex #1] days = ["all", "mon"]', '"mon" is listed twice',
      "must be a non-empty list of weekdays"]),
    ("flex-bad-weekday", flex_doc([{"days": ["Monday"], "steps": [["00:00", 1]]}]),
     ['[therapy.flex #1] days = ["Monday"]', '"Monday" is not one (did you mean "mon"?)',
      'weekdays from "mon", "tue", "wed", "thu", "fri", "sat", "sun", or ["all"]']),
    ("flex-days-empty", flex_doc([{"days": [], "steps": [["00:00", 1]]}]),
     ["[therapy.flex #1] days = []", "must be a non-empty list of weekdays"]),
    ("flex-days-missing", flex_doc([{"steps": [["00:00", 1]]}]),
     ["[therapy.flex #1] days is missing", "must be a non-empty list of weekdays"]),
    ("flex-unknown-key", flex_doc([{"day": ["all"], "steps": [["00:00", 1]]}]),
     ['[therapy.flex #1] day = ["all"]', "unknown key", 'did you mean "days"?',
      "allowed: days, steps"]),
    ("flex-first-step-not-midnight", flex_doc([{"days": ["all"], "steps": [["01:00", 100]]}]),
     ['[therapy.flex #1] steps = ["01:00", 100]', 'the first step must start at "00:00"']),
    ("flex-times-not-increasing", flex_doc([{"days": ["all"], "steps": [
        ["00:00", 100], ["06:00", 1], ["05:00", 2]]}]),
     ['[therapy.flex #1] steps = ["05:00", 2]',
      "step 3 must start after the step before (06:00): times strictly increasing"]),
    ("flex-equal-times", flex_doc([{"days": ["all"], "steps": [
        ["00:00", 100], ["06:00", 1], ["06:00", 2]]}]),
     ['[therapy.flex #1] steps = ["06:00", 2]', "step 3 must start after the step before"]),
    ("flex-14-steps", flex_doc([{"days": ["all"],
                                 "steps": [["%02d:00" % h, 1] for h in range(14)]}]),
     ['[therapy.flex #1] steps = [["00:00", 1], ["01:00", 1]', "must be a list of 1 to 13 steps",
      "(got 14 steps)"]),
    ("flex-no-steps", flex_doc([{"days": ["all"], "steps": []}]),
     ["[therapy.flex #1] steps = []", "must be a list of 1 to 13 steps", "(got 0 steps)"]),
    ("flex-time-one-digit-hour", flex_doc([{"days": ["all"], "steps": [
        ["00:00", 100], ["6:00", 1]]}]),
     ['[therapy.flex #1] steps = ["6:00", 1]',
      'step 2: the time must be "HH:MM" (24-hour, two digits each) from "00:00" to "23:59"']),
    ("flex-time-24-00", flex_doc([{"days": ["all"], "steps": [["00:00", 1], ["24:00", 1]]}]),
     ['[therapy.flex #1] steps = ["24:00", 1]', 'the time must be "HH:MM"']),
    ("flex-step-not-a-pair", flex_doc([{"days": ["all"], "steps": [["00:00"]]}]),
     ['[therapy.flex #1] steps = ["00:00"]', 'step 1 must be a pair ["HH:MM", ug_per_day]']),
    ("flex-rate-float", flex_doc([{"days": ["all"], "steps": [["00:00", 100.5]]}]),
     ['[therapy.flex #1] steps = ["00:00", 100.5]',
      "step 1: the rate must be a whole number of ug/day from 0 to 1000000", "got a float"]),
    ("flex-rate-negative", flex_doc([{"days": ["all"], "steps": [["00:00", -1]]}]),
     ['[therapy.flex #1] steps = ["00:00", -1]', "from 0 to 1000000"]),
    # --- [limits]
    ("limits-unknown-key", doc(limits={"daily_soft_ug": 600}),
     ["[limits] daily_soft_ug = 600", "unknown key (the drug library's limits",
      'did you mean "daily_dose_soft_ug"?', "allowed: daily_dose_soft_ug, daily_dose_hard_ug"]),
    ("limits-zero", doc(limits={"bolus_hard_ug": 0}),
     ["[limits] bolus_hard_ug = 0", "must be a whole number from 1 to 1000000"]),
    # --- [patient_bolus]
    ("lockout-zero", doc(patient_bolus=dict(PATIENT_BOLUS, lockout_min=0)),
     ["[patient_bolus] lockout_min = 0", "must be a whole number of minutes from 15 to 1440",
      "never 0"]),
    ("lockout-14", doc(patient_bolus=dict(PATIENT_BOLUS, lockout_min=14)),
     ["[patient_bolus] lockout_min = 14", "from 15 to 1440"]),
    ("patient-duration-61", doc(patient_bolus=dict(PATIENT_BOLUS, duration_min=61)),
     ["[patient_bolus] duration_min = 61", "from 1 to 60"]),
    ("patient-dose-zero", doc(patient_bolus=dict(PATIENT_BOLUS, dose_ug=0)),
     ["[patient_bolus] dose_ug = 0", "must be a whole number of ug from 1 to 1000000"]),
    ("patient-max-25", doc(patient_bolus=dict(PATIENT_BOLUS, max_per_24h=25)),
     ["[patient_bolus] max_per_24h = 25", "from 1 to 24"]),
    ("patient-requests-49", doc(patient_bolus=dict(PATIENT_BOLUS, requests_per_day=49)),
     ["[patient_bolus] requests_per_day = 49", "from 0 to 48"]),
    ("patient-dose-missing", doc(patient_bolus={"duration_min": 10}),
     ["[patient_bolus] dose_ug is missing", "from 1 to 1000000"]),
    ("patient-unknown-key", doc(patient_bolus=dict(PATIENT_BOLUS, lockout=60)),
     ["[patient_bolus] lockout = 60", "unknown key", 'did you mean "lockout_min"?']),
    # --- [refills]
    ("refills-every-zero", doc(refills={"every_days": 0}),
     ["[refills] every_days = 0", "must be a whole number of days from 1 to 365"]),
    ("refills-every-366", doc(refills={"every_days": 366}),
     ["[refills] every_days = 366", "from 1 to 365"]),
    ("refills-every-missing", doc(refills={"volume_ul": 1000}),
     ["[refills] every_days is missing", "from 1 to 365"]),
    ("refills-before-start", doc(refills={"every_days": 30, "start_day": 0, "time": "07:00"}),
     ["[refills] start_day = 0", "day 0 at 07:00 is before the scenario starts (day 0 at 08:00)",
      "must be at or after the start"]),
    ("refills-bad-time", doc(refills={"every_days": 30, "time": "10.30"}),
     ['[refills] time = "10.30"', 'must be a time of day "HH:MM"']),
    ("refills-bad-concentration", doc(refills={"every_days": 30,
                                               "concentration_ug_per_ml": 750}),
     ["[refills] concentration_ug_per_ml = 750", "must be one of 50, 500, 1000, 2000 ug/mL"]),
    ("refills-volume-over-capacity", doc(refills={"every_days": 30, "volume_ul": 20001}),
     ["[refills] volume_ul = 20001", "from 0 to 20000"]),
    ("refills-bridge-not-bool", doc(refills={"every_days": 30, "bridge": 1}),
     ["[refills] bridge = 1", "must be true or false"]),
    # --- [[timeline]]
    ("timeline-unknown-action", doc(timeline=[{"day": 1, "action": "explode"}]),
     ['[timeline #1] action = "explode"',
      'must be one of "program", "program_flex", "clinician_bolus", "refill", "start", "stop", '
      '"clear_alarm", "silence_alarms", "set_low_reservoir_alarm", "set_patient_bolus", '
      '"reset"']),
    ("timeline-action-missing", doc(timeline=[{"day": 1}]),
     ["[timeline #1] action is missing", 'must be one of "program"']),
    ("timeline-field-of-other-action", doc(timeline=[{"day": 1, "action": "start",
                                                      "basal_ug_per_day": 300}]),
     ["[timeline #1] basal_ug_per_day = 300", 'not a field of action "start"',
      "its fields: none", "every entry also takes day, time, action"]),
    ("timeline-field-not-of-program", doc(timeline=[{"day": 1, "action": "program",
                                                     "basal_ug_per_day": 300, "minutes": 5}]),
     ["[timeline #1] minutes = 5", 'not a field of action "program"',
      "its fields: basal_ug_per_day, confirm"]),
    ("timeline-before-start", doc(timeline=[{"day": 0, "time": "07:59", "action": "start"}]),
     ["[timeline #1] day = 0", "day 0 at 07:59 is before the scenario starts (day 0 at 08:00)",
      "must be at or after the start"]),
    ("timeline-default-time-before-late-start",
     doc(scenario={"start": "2026-01-05T10:00"}, timeline=[{"day": 0, "action": "start"}]),
     ["[timeline #1] day = 0", "day 0 at 09:00 is before the scenario starts (day 0 at 10:00)"]),
    ("timeline-day-missing", doc(timeline=[{"action": "start"}]),
     ["[timeline #1] day is missing", "days after the start from 0 to 3650"]),
    ("timeline-day-negative", doc(timeline=[{"day": -1, "action": "start"}]),
     ["[timeline #1] day = -1", "from 0 to 3650"]),
    ("timeline-bad-time", doc(timeline=[{"day": 1, "time": "9:00", "action": "start"}]),
     ['[timeline #1] time = "9:00"',
      'must be a time of day "HH:MM" (24-hour, two digits each) from "00:00" to "23:59"']),
    ("timeline-second-entry-numbered", doc(timeline=[
        {"day": 1, "action": "start"}, {"day": 2, "action": "silence_alarms", "minutes": 1441}]),
     ["[timeline #2] minutes = 1441", "must be a whole number of minutes from 1 to 1440"]),
    ("timeline-silence-minutes-missing", doc(timeline=[{"day": 1,
                                                        "action": "silence_alarms"}]),
     ["[timeline #1] minutes is missing", "from 1 to 1440"]),
    ("timeline-program-basal-missing", doc(timeline=[{"day": 1, "action": "program"}]),
     ["[timeline #1] basal_ug_per_day is missing", "from 0 to 1000000"]),
    ("timeline-clinician-bolus-too-long", doc(timeline=[{
        "day": 1, "action": "clinician_bolus", "dose_ug": 50, "duration_min": 1441}]),
     ["[timeline #1] duration_min = 1441", "from 1 to 1440"]),
    ("timeline-set-patient-bolus-lockout-zero", doc(timeline=[dict(
        PATIENT_BOLUS, day=1, action="set_patient_bolus", lockout_min=0)]),
     ["[timeline #1] lockout_min = 0", "from 15 to 1440", "never 0"]),
    ("timeline-refill-concentration", doc(timeline=[{
        "day": 1, "action": "refill", "concentration_ug_per_ml": 100}]),
     ["[timeline #1] concentration_ug_per_ml = 100", "must be one of 50, 500, 1000, 2000"]),
    ("timeline-alarm-volume-missing", doc(timeline=[{"day": 1,
                                                     "action": "set_low_reservoir_alarm"}]),
     ["[timeline #1] volume_ul is missing", "from 0 to 20000"]),
    ("timeline-program-flex-missing", doc(timeline=[{"day": 1, "action": "program_flex"}]),
     ["[timeline #1] flex is missing", "program_flex needs flex = "]),
    ("timeline-program-flex-not-covered", doc(timeline=[{
        "day": 1, "action": "program_flex",
        "flex": [{"days": ["sat", "sun"], "steps": [["00:00", 1]]}]}]),
     ['[timeline #1 flex] days = [["sat", "sun"]]', "not covered: mon, tue, wed, thu, fri"]),
    ("timeline-confirm-not-bool", doc(timeline=[{"day": 1, "action": "program",
                                                 "basal_ug_per_day": 1, "confirm": "no"}]),
     ['[timeline #1] confirm = "no"', "must be true or false"]),
    ("timeline-single-table", doc(timeline={"day": 1, "action": "start"}),
     ['[timeline] = {day = 1, action = "start"}', "must be an array of tables ([[timeline]]"]),
]


@pytest.mark.parametrize("raw, fragments", [case[1:] for case in BAD],
                         ids=[case[0] for case in BAD])
def test_bad_scenario_message_names_table_key_value_and_what_is_allowed(raw, fragments):
    message = error_of(raw)
    assert message.startswith("bad.toml: ")
    for fragment in fragments:
        assert fragment in message, "%r not in %r" % (fragment, message)


def test_error_keeps_its_parts_as_attributes():
    with pytest.raises(ScenarioError) as info:
        scenario.validate(doc(scenario={"days": 0}), source="a.toml")
    error = info.value
    assert (error.source, error.table, error.key, error.value) == ("a.toml", "scenario", "days", 0)
    assert error.allowed == "must be a whole number of days from 1 to 3650"
    assert str(error) == ("a.toml: [scenario] days = 0: "
                          "must be a whole number of days from 1 to 3650")


def test_validate_refuses_a_document_that_is_not_tables():
    with pytest.raises(ScenarioError, match="must be a TOML document of tables, got a list"):
        scenario.validate([], source="x.toml")


# ------------------------------------------------------------------------------ TOML-level errors

TOML_BAD = [
    ("start-offset-date-time",
     MINIMAL_TOML.replace("days = 10", "days = 10\nstart = 2026-01-05T08:00:00+01:00"),
     ["[scenario] start = 2026-01-05T08:00:00+01:00",
      "without a UTC offset", "(got an offset date-time)"]),
    ("start-local-time-only",
     MINIMAL_TOML.replace("days = 10", "days = 10\nstart = 08:00:00"),
     ["[scenario] start = 08:00:00", "local date and time"]),
    ("days-toml-float", MINIMAL_TOML.replace("days = 10", "days = 10.0"),
     ["[scenario] days = 10.0", "from 1 to 3650", "got a float"]),
    ("days-toml-bool", MINIMAL_TOML.replace("days = 10", "days = true"),
     ["[scenario] days = true", "got true/false, not a number"]),
    ("flex-time-with-seconds",
     MINIMAL_TOML.replace('mode = "continuous"\nbasal_ug_per_day = 400',
                          'mode = "flex"\n[[therapy.flex]]\ndays = ["all"]\n'
                          'steps = [[00:00:30, 90]]'),
     ["[therapy.flex #1] steps = [00:00:30, 90]", 'the time must be "HH:MM"']),
    ("timeline-as-single-table", MINIMAL_TOML + '\n[timeline]\nday = 1\naction = "start"\n',
     ["[timeline] = {", "must be an array of tables"]),
]


@pytest.mark.parametrize("text, fragments", [case[1:] for case in TOML_BAD],
                         ids=[case[0] for case in TOML_BAD])
def test_bad_toml_value_message_names_table_key_value_and_what_is_allowed(tmp_path, text,
                                                                         fragments):
    path = write(tmp_path, text)
    message = str(load_error(path))
    assert message.startswith(path + ": ")
    for fragment in fragments:
        assert fragment in message, "%r not in %r" % (fragment, message)


def test_toml_syntax_error_reports_the_line_number_and_text(tmp_path):
    path = write(tmp_path, MINIMAL_TOML.replace("days = 10", "days = "))
    error = load_error(path)
    assert error.line == 3
    assert str(error).startswith(path + ": line 3: TOML syntax error: ")
    assert "the line reads: days =" in str(error)


def test_duplicate_key_is_a_syntax_error_on_its_line(tmp_path):
    path = write(tmp_path, MINIMAL_TOML.replace("days = 10", "days = 10\ndays = 11"))
    error = load_error(path)
    assert error.line == 4
    assert "line 4: TOML syntax error" in str(error) and "days = 11" in str(error)


def test_non_utf8_file_reports_the_line(tmp_path):
    path = write(tmp_path, MINIMAL_TOML.encode("ascii").replace(
        b'name = "minimal"', b'name = "caf\xe9"'))
    error = load_error(path)
    assert error.line == 2
    assert str(error) == "%s: line 2: not UTF-8 text (TOML files are UTF-8)" % path


def test_load_of_a_missing_file(tmp_path):
    path = str(tmp_path / "nope.toml")
    assert str(load_error(path)) == "%s: no such scenario file" % path


def test_load_of_a_directory(tmp_path):
    message = str(load_error(str(tmp_path)))
    assert message.startswith("%s: cannot read: " % tmp_path)


# ------------------------------------------------------------------------------ find()

def test_find_returns_an_existing_file_path_unchanged(tmp_path):
    path = write(tmp_path, MINIMAL_TOML, name="mine.toml")
    assert scenario.find(path) == path


def test_find_unknown_bare_name_hints_the_closest_and_lists_the_available():
    with pytest.raises(ScenarioError) as info:
        scenario.find("adult-sci")
    message = str(info.value)
    assert 'scenario "adult-sci": no such file, and no scenario of that name in scenarios/' \
        in message
    assert 'did you mean "adult-sci-continuous"?' in message
    # The library grows: every shipped name, sorted.
    assert "available: " + ", ".join(scenario.available()) in message
    assert {"adult-sci-continuous", "child-cp-flex", "late-refill-empty"} <= set(
        scenario.available())


def test_find_unknown_name_with_toml_suffix_still_hints():
    with pytest.raises(ScenarioError, match='did you mean "child-cp-flex"'):
        scenario.find("child-cp-flx.toml")


def test_find_unrelated_name_gives_no_hint():
    with pytest.raises(ScenarioError) as info:
        scenario.find("zzzzzz")
    assert "did you mean" not in str(info.value)
    assert "available: " in str(info.value)


def test_find_missing_path_is_not_looked_up_in_scenarios(tmp_path):
    missing = str(tmp_path / "adult-sci-continuous.toml")
    with pytest.raises(ScenarioError, match="no such file"):
        scenario.find(missing)


def test_find_directory_is_refused(tmp_path):
    with pytest.raises(ScenarioError) as info:
        scenario.find(str(tmp_path))
    assert str(info.value) == "%s: is a directory, not a scenario file" % tmp_path


# ------------------------------------------------------------------------------ docs/scenarios.md

DOC_PATH = os.path.join(scenario.repo_root(), "docs", "scenarios.md")


def doc_text():
    with open(DOC_PATH, encoding="utf-8") as f:
        return f.read()


def doc_toml_blocks():
    text = doc_text()
    blocks = []
    for part in text.split("```toml\n")[1:]:
        blocks.append(part.split("```", 1)[0])
    return blocks


def test_every_complete_example_in_the_docs_loads(tmp_path):
    complete = [b for b in doc_toml_blocks() if "[scenario]" in b]
    assert len(complete) >= 2
    for number, block in enumerate(complete):
        config = scenario.load(write(tmp_path, block, name="doc%d.toml" % number))
        assert config["name"] and config["days"] >= 1


def test_docs_name_every_table_action_pump_key_and_limit():
    from firmware import limits
    from firmware.pump import MODEL
    from sim.runner import TIMESERIES_COLUMNS

    text = doc_text()
    names = (["## [%s]" % t for t in scenario.TABLES if t not in ("timeline", "faults")]
             + ["## [[timeline]]", "## [[faults]]"]
             + ["`%s`" % a for a in scenario.ACTIONS]
             + ["`%s`" % k for k in MODEL if k != "name"]
             + ["`%s`" % k for k in limits.LIMIT_KEYS]
             + ["`%s`" % c for c in TIMESERIES_COLUMNS])
    missing = [name for name in names if name not in text]
    assert not missing
