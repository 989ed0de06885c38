"""[therapy] (the program the pump starts with, and flex schedules, which timeline entries and
the programmer's flex files share), [limits] (the drug library's limits) and [patient_bolus]."""

import difflib

from firmware import limits as fw_limits
from sim.scenario.checker import REQUIRED, Checker, hhmm, minutes_of_day, toml_value
from sim.scenario.drug import volume_ul
from sim.scenario.fields import Bool, Choice, Custom, Int, TIME_SCHEMA_PATTERN, table_schema

MS_PER_MIN = 60000
MAX_UG = fw_limits.MAX_UG
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")     # Monday first, as the firmware
MODES = ("continuous", "flex", "stopped")


def flex_schema(doc):
    """[[therapy.flex]]-style entries: each weekday once, 1 to 13 steps a day."""
    step = {"type": "array", "minItems": 2, "maxItems": 2, "items": False,
            "prefixItems": [{"type": "string", "pattern": TIME_SCHEMA_PATTERN,
                             "description": "when the rate starts, \"HH:MM\""},
                            {"type": "integer", "minimum": 0, "maximum": MAX_UG,
                             "description": "the rate from then on, ug/day"}]}
    entry = {"type": "object", "additionalProperties": False, "required": ["days", "steps"],
             "properties": {
                 "days": {"type": "array", "minItems": 1, "uniqueItems": True,
                          "items": {"enum": list(WEEKDAYS) + ["all"]},
                          "description": "the weekdays these steps apply to, or [\"all\"]; "
                                         "every weekday covered exactly once"},
                 "steps": {"type": "array", "minItems": 1,
                           "maxItems": fw_limits.MAX_FLEX_STEPS, "items": step,
                           "description": "[\"HH:MM\", ug_per_day] pairs, the first at "
                                          "\"00:00\", times strictly increasing (up to %d "
                                          "a day)" % fw_limits.MAX_FLEX_STEPS}}}
    return {"type": "array", "minItems": 1, "items": entry, "description": doc}


def _no_check(c, T, t, key):
    raise AssertionError("checked by its table")


FIELDS = {
    "mode": Choice(MODES, doc="continuous: one daily dose; flex: rates by time of day and "
                   "weekday; stopped: filled, not programmed"),
    "basal_ug_per_day": Int(0, MAX_UG, unit="of ug/day", doc="the daily dose (mode = "
                            "\"continuous\")"),
    "flex": Custom(_no_check, flex_schema("the flex schedule (mode = \"flex\"): "
                                          "[[therapy.flex]] tables"), default=None),
    "low_reservoir_alarm_ul": volume_ul(
        note=" (the reservoir's capacity; the maker recommends 2000: docs/clinical.md)",
        default=None, doc="the low-reservoir alarm volume"),
    "confirm": Bool(doc="program over a soft limit (as a clinician confirming it)"),
}
# Keys each mode takes (in the order error messages list them), and the one it needs.
MODE_KEYS = {
    "stopped": ("mode", "low_reservoir_alarm_ul", "confirm"),
    "continuous": ("mode", "basal_ug_per_day", "low_reservoir_alarm_ul", "confirm"),
    "flex": ("mode", "flex", "low_reservoir_alarm_ul", "confirm"),
}
MODE_NEEDS = {"stopped": (), "continuous": ("basal_ug_per_day",), "flex": ("flex",)}

LIMITS_FIELDS = dict((key, Int(1, MAX_UG, default=None, doc="the drug library's %s for this "
                               "pump (firmware/limits.py)" % key))
                     for key in fw_limits.LIMIT_KEYS)

LOCKOUT_NOTE = " (PCA practice: 15 min to 24 h, never 0; docs/clinical.md)"
PATIENT_BOLUS_FIELDS = {
    "dose_ug": Int(1, MAX_UG, unit="of ug", doc="dose per press"),
    "duration_min": Int(1, 60, unit="of minutes", scale=MS_PER_MIN, doc="each bolus given over"),
    "lockout_min": Int(15, 1440, unit="of minutes", note=LOCKOUT_NOTE, scale=MS_PER_MIN,
                       doc="no other bolus for this long after one"),
    "max_per_24h": Int(1, 24, doc="at most this many boluses in any 24 hours"),
    "requests_per_day": Int(0, 48, default=0, doc="presses a day the simulated patient makes"),
}


def therapy_schema():
    out = table_schema(FIELDS, "the program the pump starts with", required=["mode"])
    out["allOf"] = [
        {"if": {"properties": {"mode": {"const": mode}}, "required": ["mode"]},
         "then": {"required": list(MODE_NEEDS[mode]),
                  "properties": dict((key, False) for key in FIELDS
                                     if key not in MODE_KEYS[mode])}}
        for mode in MODES]
    return out


def validate(c, t, config, capacity_ul, default_alarm_nl):
    T = "therapy"
    mode = FIELDS["mode"].check(c, T, t, "mode")
    c.keys(T, t, MODE_KEYS[mode], why=' for mode = "%s"' % mode)
    if mode == "stopped":
        # Filled but not programmed (e.g. before implant, while screening): therapy idle until
        # a timeline program or program_flex (docs/clinical.md therapy modes: stopped).
        config["therapy"] = None
    elif mode == "continuous":
        basal = FIELDS["basal_ug_per_day"].check(c, T, t, "basal_ug_per_day")
        config["therapy"] = {"mode": "continuous", "basal_ug_per_day": basal}
    else:
        if "flex" not in t:
            c.missing(T, "flex", 'mode = "flex" needs one or more [[therapy.flex]] tables '
                      "with days and steps")
        config["therapy"] = {"mode": "flex", "steps": _flex(c, T, "therapy.flex", t["flex"])}
    config["confirm"] = FIELDS["confirm"].check(c, T, t, "confirm")
    if "low_reservoir_alarm_ul" not in t and default_alarm_nl > capacity_ul * 1000:
        c.missing(T, "low_reservoir_alarm_ul", "the default %d uL does not fit a reservoir of "
                  "%d uL: give a value from 0 to %d" % (default_alarm_nl // 1000, capacity_ul,
                                                        capacity_ul))
    config["low_reservoir_alarm_nl"] = FIELDS["low_reservoir_alarm_ul"].check(
        c, T, t, "low_reservoir_alarm_ul", hi=capacity_ul, default=default_alarm_nl // 1000)


def limits(c, t):
    T = "limits"
    c.keys(T, t, tuple(LIMITS_FIELDS), why=" (the drug library's limits: firmware/limits.py)")
    out = {}
    for key, spec in LIMITS_FIELDS.items():
        if key in t:
            out[key] = spec.check(c, T, t, key)
    return out


def patient_bolus(c, value, config):
    config["patient_bolus"] = None
    config["patient_requests_per_day"] = 0
    if value is None:
        return
    T = "patient_bolus"
    t = c.table(T, value)
    F = PATIENT_BOLUS_FIELDS
    c.keys(T, t, tuple(F))
    config["patient_bolus"] = {
        "dose_ug": F["dose_ug"].check(c, T, t, "dose_ug"),
        "duration_ms": F["duration_min"].check(c, T, t, "duration_min"),
        "lockout_ms": F["lockout_min"].check(c, T, t, "lockout_min"),
        "max_per_24h": F["max_per_24h"].check(c, T, t, "max_per_24h"),
    }
    config["patient_requests_per_day"] = F["requests_per_day"].check(c, T, t, "requests_per_day")


def flex_week(source, entries, label="flex"):
    """[[flex]]-style entries ({days, steps} dicts) from any source (a scenario, a programmer's
    flex file, the command line) -> 7 lists (Monday first) of [minute, ug_per_day].  Mistakes
    raise ScenarioError naming source, label, key, value and what is allowed."""
    return _flex(Checker(source), label, label, entries)


def _flex(c, table, label, entries):
    """[[therapy.flex]]-style list of {days, steps} -> 7 lists (Monday first) of [minute, ug].

    table: where the flex key lives; label: how its entries are named in messages."""
    if not isinstance(entries, list) or not entries or \
            not all(isinstance(e, dict) for e in entries):
        c.fail(table, "flex", entries, "must be one or more tables, each with days = [...] and "
               "steps = [[\"HH:MM\", ug_per_day], ...]")
    week = [None] * 7
    covered_by = [None] * 7
    for number, entry in enumerate(entries, 1):
        T = "%s #%d" % (label, number)
        c.keys(T, entry, ("days", "steps"))
        days = _flex_days(c, T, entry)
        steps = _flex_steps(c, T, entry)
        for day in days:
            i = WEEKDAYS.index(day)
            if week[i] is not None:
                c.fail(T, "days", entry["days"], "%s is already covered by [%s]; every weekday "
                       "must be covered exactly once" % (toml_value(day), covered_by[i]))
            week[i] = [list(step) for step in steps]
            covered_by[i] = T
    missing = [WEEKDAYS[i] for i in range(7) if week[i] is None]
    if missing:
        given = [e.get("days") for e in entries]
        c.fail(label, "days", given, "every weekday must be covered exactly once; not covered: %s"
               % ", ".join(missing))
    return week


def _flex_days(c, T, entry):
    allowed = "must be a non-empty list of weekdays from %s, or [\"all\"]" % ", ".join(
        '"%s"' % d for d in WEEKDAYS)
    value, _ = c.get(T, entry, "days", REQUIRED, allowed)
    if not isinstance(value, list) or not value:
        c.fail(T, "days", value, allowed)
    days = []
    for day in value:
        if day == "all":
            days.extend(WEEKDAYS)
        elif isinstance(day, str) and day in WEEKDAYS:
            days.append(day)
        else:
            close = difflib.get_close_matches(str(day).lower(), list(WEEKDAYS) + ["all"], n=1)
            hint = " (did you mean %s?)" % toml_value(close[0]) if close else ""
            c.fail(T, "days", value, allowed + "; %s is not one%s" % (toml_value(day), hint))
    for day in days:
        if days.count(day) > 1:
            c.fail(T, "days", value, allowed + "; %s is listed twice" % toml_value(day))
    return days


def _flex_steps(c, T, entry):
    n = fw_limits.MAX_FLEX_STEPS
    allowed = ("must be a list of 1 to %d steps [\"HH:MM\", ug_per_day], the first at \"00:00\", "
               "times strictly increasing (up to %d rate changes a day: SynchroMed flex, "
               "docs/clinical.md)" % (n, n))
    value, _ = c.get(T, entry, "steps", REQUIRED, allowed)
    if not isinstance(value, list) or not 1 <= len(value) <= n:
        count = " (got %d steps)" % len(value) if isinstance(value, list) else ""
        c.fail(T, "steps", value, allowed + count)
    steps = []
    previous = -1
    for number, step in enumerate(value, 1):
        if not isinstance(step, list) or len(step) != 2:
            c.fail(T, "steps", step, "step %d must be a pair [\"HH:MM\", ug_per_day]" % number)
        minute = minutes_of_day(step[0])
        if minute is None:
            c.fail(T, "steps", step, "step %d: the time must be \"HH:MM\" (24-hour, two digits "
                   "each) from \"00:00\" to \"23:59\"" % number)
        rate = step[1]
        if isinstance(rate, bool) or not isinstance(rate, int) or not 0 <= rate <= MAX_UG:
            extra = " (got a float: no decimal point)" if isinstance(rate, float) else ""
            c.fail(T, "steps", step, "step %d: the rate must be a whole number of ug/day from 0 "
                   "to %d%s" % (number, MAX_UG, extra))
        if number == 1 and minute != 0:
            c.fail(T, "steps", step, "the first step must start at \"00:00\" (it sets the rate "
                   "from midnight)")
        if number > 1 and minute <= previous:
            c.fail(T, "steps", step, "step %d must start after the step before (%s): times "
                   "strictly increasing" % (number, hhmm(previous)))
        previous = minute
        steps.append([minute, rate])
    return steps
