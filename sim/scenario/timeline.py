"""[[timeline]] (what the clinician, or the patient, does and when: each action with its own
fields) and [refills] (periodic refills)."""

from firmware import limits as fw_limits
from sim.scenario.checker import REQUIRED, hhmm, toml_value
from sim.scenario.drug import Concentration, volume_ul
from sim.scenario.fields import CAPACITY, Bool, Choice, Custom, Int, Time, table_schema
from sim.scenario.therapy import LOCKOUT_NOTE, flex_schema, _flex

MS_PER_MIN = 60000
MS_PER_DAY = 86400000
MAX_DAYS = 3650
MAX_UG = fw_limits.MAX_UG
DEFAULT_TIMELINE_TIME = "09:00"
DEFAULT_REFILL_TIME = "10:00"
_DAYS = "of days after the start"


def _no_check(c, T, t, key):
    raise AssertionError("checked by its entry")


def _confirm():
    return Bool(doc="accept a value over a soft limit")


def _bolus_minutes(hi):
    return Int(1, hi, unit="of minutes", scale=MS_PER_MIN, doc="given over")


# What each action takes besides day, time and action, in the order they are checked.
ACTIONS = {
    "program": {"basal_ug_per_day": Int(0, MAX_UG, unit="of ug/day", doc="continuous daily dose"),
                "confirm": _confirm()},
    "program_flex": {"flex": Custom(_no_check, flex_schema("the flex schedule: {days, steps} "
                                                           "tables"), default=REQUIRED),
                     "confirm": _confirm()},
    "clinician_bolus": {"dose_ug": Int(1, MAX_UG, unit="of ug", doc="the bolus"),
                        "duration_min": _bolus_minutes(1440), "confirm": _confirm()},
    "refill": {"volume_ul": volume_ul(doc="volume filled (default: the reservoir's capacity)"),
               "concentration_ug_per_ml": Concentration(
                   default=None, doc="the new drug's concentration (default: [drug]'s)"),
               "bridge": Bool(doc="give the old drug still in the tubing at the old rate first")},
    "start": {},
    "stop": {},
    "clear_alarm": {},
    "silence_alarms": {"minutes": Int(1, 1440, unit="of minutes", scale=MS_PER_MIN,
                                      doc="silence non-critical alarms for")},
    "set_low_reservoir_alarm": {"volume_ul": volume_ul(default=REQUIRED,
                                                       doc="the low-reservoir alarm volume")},
    "set_patient_bolus": {"dose_ug": Int(1, MAX_UG, unit="of ug", doc="dose per press"),
                          "duration_min": _bolus_minutes(60),
                          "lockout_min": Int(15, 1440, unit="of minutes", note=LOCKOUT_NOTE,
                                             scale=MS_PER_MIN, doc="no other bolus for"),
                          "max_per_24h": Int(1, 24, doc="at most this many in any 24 hours"),
                          "confirm": _confirm()},
    "reset": {},
    # A screening bolus by lumbar puncture (Lioresal label): into the CSF, bypassing the pump.
    "screening_bolus": {"dose_ug": Int(1, MAX_UG, unit="of ug",
                                       note=" (label screening doses: 50, 75, 100 ug)")},
}
# The config's name of a field where it is not the file's (units converted).
CONFIG_NAMES = {"duration_min": "duration_ms", "lockout_min": "lockout_ms",
                "volume_ul": "volume_nl", "minutes": "silence_ms", "flex": "steps"}

ENTRY_FIELDS = {
    "day": Int(0, MAX_DAYS, unit=_DAYS, doc="days after the start's calendar day"),
    "time": Time(DEFAULT_TIMELINE_TIME, doc="the time of day"),
    "action": Choice(tuple(ACTIONS), doc="what is done"),
}

REFILLS_FIELDS = {
    "every_days": Int(1, 365, unit="of days",
                      note=" (refills are usually every 2-6 months: docs/clinical.md)",
                      doc="a refill this often"),
    "volume_ul": volume_ul(doc="volume filled (default: the reservoir's capacity)"),
    "concentration_ug_per_ml": Concentration(default=None,
                                             doc="the concentration (default: [drug]'s)"),
    "time": Time(DEFAULT_REFILL_TIME, doc="the time of day of each refill"),
    "bridge": Bool(doc="give a bridge bolus with each refill"),
    "start_day": Int(0, MAX_DAYS, unit="of days", default=None,
                     doc="the first refill's day (default: every_days)"),
}


def timeline_schema():
    properties = dict((key, spec.schema()) for key, spec in ENTRY_FIELDS.items())
    rules = []
    for action, fields in ACTIONS.items():
        for key, spec in fields.items():
            properties.setdefault(key, spec.schema())
        others = dict((key, False) for key in _all_fields() if key not in fields)
        rules.append({"if": {"properties": {"action": {"const": action}},
                             "required": ["action"]},
                      "then": {"required": [k for k, s in fields.items() if s.required],
                               "properties": dict(sorted(others.items()))}})
    entry = {"type": "object", "properties": properties, "required": ["day", "action"],
             "additionalProperties": False, "allOf": rules}
    return {"type": "array", "items": entry,
            "description": "what happens when: [[timeline]] entries, each with day, time and "
                           "action, and the action's own fields"}


def _all_fields():
    return set(key for fields in ACTIONS.values() for key in fields)


def refills_schema():
    return table_schema(REFILLS_FIELDS, "periodic refills", required=["every_days"])


def moment(c, table, day_key, day, minutes, start_wall_ms, value):
    """ms after the start moment of `day` days after the start's calendar day, at `minutes`."""
    t_ms = day * MS_PER_DAY + minutes * MS_PER_MIN - start_wall_ms % MS_PER_DAY
    if t_ms < 0:
        start_min = (start_wall_ms % MS_PER_DAY) // MS_PER_MIN
        c.fail(table, day_key, value, "day %d at %s is before the scenario starts (day 0 at %s); "
               "must be at or after the start: use a later day or time"
               % (day, hhmm(minutes), hhmm(start_min)))
    return t_ms


def refills(c, value, config, entry, capacity_ul):
    if value is None:
        return None
    T = "refills"
    t = c.table(T, value)
    F = REFILLS_FIELDS
    c.keys(T, t, tuple(F))
    every = F["every_days"].check(c, T, t, "every_days")
    volume_nl = F["volume_ul"].check(c, T, t, "volume_ul", hi=capacity_ul, default=capacity_ul)
    concentration = F["concentration_ug_per_ml"].check(
        c, T, t, "concentration_ug_per_ml", entry, default=config["concentration_ug_per_ml"])
    minutes = F["time"].check(c, T, t, "time")
    bridge = F["bridge"].check(c, T, t, "bridge")
    start_day = F["start_day"].check(c, T, t, "start_day", default=every)
    first_ms = moment(c, T, "start_day", start_day, minutes, config["start_wall_ms"], start_day)
    return {"every_ms": every * MS_PER_DAY, "first_ms": first_ms, "volume_nl": volume_nl,
            "concentration_ug_per_ml": concentration, "bridge": bridge}


def validate(c, value, config, entry, capacity_ul):
    c.array_of_tables("timeline", value, "day, time and action")
    out = []
    for number, t in enumerate(value, 1):
        T = "timeline #%d" % number
        action = ENTRY_FIELDS["action"].check(c, T, t, "action")
        fields = ACTIONS[action]
        for key in t:
            if key not in ENTRY_FIELDS and key not in fields:
                own = ", ".join(fields) if fields else "none"
                c.fail(T, key, t[key], "not a field of action %s (its fields: %s; every entry "
                       "also takes day, time, action)" % (toml_value(action), own))
        day = ENTRY_FIELDS["day"].check(c, T, t, "day")
        minutes = ENTRY_FIELDS["time"].check(c, T, t, "time")
        item = {"t_ms": moment(c, T, "day", day, minutes, config["start_wall_ms"], day),
                "action": action}
        for key, spec in fields.items():
            if key == "flex":
                if "flex" not in t:
                    c.missing(T, "flex", "program_flex needs flex = [{days = [...], steps = "
                              "[[\"HH:MM\", ug_per_day], ...]}, ...]")
                value = _flex(c, T, T + " flex", t["flex"])
            elif key == "volume_ul":
                default = capacity_ul if spec.default is CAPACITY else spec.default
                value = spec.check(c, T, t, key, hi=capacity_ul, default=default)
            elif key == "concentration_ug_per_ml":
                value = spec.check(c, T, t, key, entry,
                                   default=config["concentration_ug_per_ml"])
            else:
                value = spec.check(c, T, t, key)
            item[CONFIG_NAMES.get(key, key)] = value
        out.append(item)
    out.sort(key=lambda item: item["t_ms"])       # stable: equal times keep file order
    return out
