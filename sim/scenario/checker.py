"""Checking one value of a scenario file, and the words for what was wrong with it.

Every mistake raises ScenarioError with "{source}: [{table}] {key} = {value}: {what is allowed}"
(the value as it is written in TOML, so a user finds it in the file).  The field specs
(sim/scenario/fields.py) call these checks; the same words describe each field in the JSON
Schema.
"""

import datetime
import difflib
import json
import re

from sim.errors import ScenarioError

REQUIRED = object()         # a field's default when the file must give it
TIME_PATTERN = r"^([01][0-9]|2[0-3]):([0-5][0-9])$"
TIME_ALLOWED = ("must be a time of day \"HH:MM\" (24-hour, two digits each) from \"00:00\" to "
                "\"23:59\"")
_TIME_RE = re.compile(TIME_PATTERN)


class Checker:
    def __init__(self, source):
        self.source = source

    def fail(self, table, key, value, allowed):
        raise ScenarioError("%s: [%s] %s = %s: %s" % (self.source, table, key, toml_value(value),
                                                       allowed),
                            source=self.source, table=table, key=key, value=value,
                            allowed=allowed)

    def missing(self, table, key, allowed):
        raise ScenarioError("%s: [%s] %s is missing: required; %s"
                            % (self.source, table, key, allowed),
                            source=self.source, table=table, key=key, allowed=allowed)

    def table(self, name, value, kind="table"):
        if not isinstance(value, dict):
            raise ScenarioError("%s: [%s] = %s: must be a %s" % (self.source, name,
                                                               toml_value(value), kind),
                                source=self.source, table=name, value=value,
                                allowed="a " + kind)
        return value

    def array_of_tables(self, name, value, each):
        if not isinstance(value, list) or not all(isinstance(e, dict) for e in value):
            raise ScenarioError("%s: [%s] = %s: must be an array of tables ([[%s]] entries, "
                                "each with %s)" % (self.source, name, toml_value(value), name,
                                                   each),
                                source=self.source, table=name, value=value)

    def keys(self, table, data, allowed, why=""):
        for key in data:
            if key not in allowed:
                close = difflib.get_close_matches(key, list(allowed), n=1, cutoff=0.6)
                hint = "did you mean %s? " % toml_value(close[0]) if close else ""
                self.fail(table, key, data[key], "unknown key%s; %sallowed: %s"
                          % (why, hint, ", ".join(allowed) if allowed else "(none)"))

    def get(self, table, data, key, default, allowed):
        if key in data:
            return data[key], True
        if default is REQUIRED:
            self.missing(table, key, allowed)
        return default, False

    def int(self, table, data, key, lo, hi=None, default=REQUIRED, unit="", note=""):
        allowed = int_allowed(lo, hi, unit) + note
        value, given = self.get(table, data, key, default, allowed)
        if not given:
            return value
        if isinstance(value, bool):
            self.fail(table, key, value, allowed + " (got true/false, not a number)")
        if isinstance(value, float):
            self.fail(table, key, value, allowed + " (got a float: no decimal point)")
        if not isinstance(value, int):
            self.fail(table, key, value, allowed + " (got %s)" % kind_of(value))
        if value < lo or (hi is not None and value > hi):
            self.fail(table, key, value, allowed)
        return value

    def choice(self, table, data, key, values, default=REQUIRED, note=""):
        allowed = "must be one of %s%s" % (", ".join(toml_value(v) for v in values), note)
        value, given = self.get(table, data, key, default, allowed)
        if given and (isinstance(value, bool) or value not in values):
            self.fail(table, key, value, allowed)
        return value

    def bool(self, table, data, key, default=False):
        value, given = self.get(table, data, key, default, "must be true or false")
        if given and not isinstance(value, bool):
            self.fail(table, key, value, "must be true or false")
        return value

    def str(self, table, data, key, default=REQUIRED, nonempty=False):
        allowed = "must be a non-empty string" if nonempty else "must be a string"
        value, given = self.get(table, data, key, default, allowed)
        if given and (not isinstance(value, str) or (nonempty and not value.strip())):
            self.fail(table, key, value, allowed)
        return value

    def time_of_day(self, table, key, value, what=""):
        """'HH:MM' (or a TOML local time with zero seconds) -> minutes after midnight."""
        minutes = minutes_of_day(value)
        if minutes is None:
            self.fail(table, key, value, what + TIME_ALLOWED)
        return minutes

    def opt_time(self, table, data, key, default):
        value = data.get(key, default)
        return self.time_of_day(table, key, value)

    def number(self, table, data, key, lo, hi, allowed, lo_exclusive=False):
        """A number (whole or decimal) from lo (or above it) to hi, as given."""
        value = data[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value \
                or not (lo < value if lo_exclusive else lo <= value) or value > hi:
            self.fail(table, key, value, allowed)
        return value

    def pct_ppm(self, table, data, key, lo, hi, note=""):
        """A percentage (whole or decimal) from lo to hi -> integer parts per million (0 if
        absent)."""
        allowed = pct_allowed(lo, hi, note)
        value, given = self.get(table, data, key, 0, allowed)
        if not given:
            return 0
        return int(round(self.number(table, data, key, lo, hi, allowed) * 10000))

    def scaled(self, table, data, key, lo, hi, scale, unit, note=""):
        """A number (whole or decimal) from lo to hi -> round(value * scale), or None if absent."""
        if key not in data:
            return None
        value = self.number(table, data, key, lo, hi, scaled_allowed(lo, hi, unit, note))
        return int(round(value * scale))


def toml_value(value):
    """A value as it would be written in the TOML file (messages quote the user's own text)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, list):
        return "[%s]" % ", ".join(toml_value(v) for v in value)
    if isinstance(value, dict):
        return "{%s}" % ", ".join("%s = %s" % (k, toml_value(v)) for k, v in value.items())
    return repr(value)


def int_allowed(lo, hi, unit):
    unit = " " + unit if unit else ""
    if hi is None:
        return "must be a whole number%s >= %d" % (unit, lo)
    return "must be a whole number%s from %d to %d" % (unit, lo, hi)


def pct_allowed(lo, hi, note=""):
    return "must be a number of percent from %s to %s%s" % (lo, hi, note)


def scaled_allowed(lo, hi, unit, note=""):
    return "must be a number%s from %s to %s%s" % (unit, lo, hi, note)


def kind_of(value):
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    return "a %s" % type(value).__name__


def minutes_of_day(value):
    if isinstance(value, datetime.time) and not isinstance(value, datetime.datetime):
        if value.second or value.microsecond or value.tzinfo is not None:
            return None
        return value.hour * 60 + value.minute
    if not isinstance(value, str):
        return None
    match = _TIME_RE.match(value)
    if not match:
        return None
    return int(match.group(1)) * 60 + int(match.group(2))


def hhmm(minutes):
    return "%02d:%02d" % divmod(minutes, 60)
