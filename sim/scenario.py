"""Scenario files: TOML in, a plain validated config out (docs/scenarios.md is the format).

    find(name_or_path) -> path      a file, or a bare name looked up in the repo's scenarios/
    load(path) -> config            read the TOML and validate it
    validate(raw, source) -> config check a parsed TOML document, convert to firmware units

The config is plain data (dicts, lists, ints, strings, bools; JSON-serialisable) in firmware units
(nL, ms, ug, ug/day, ug/mL) so the MicroPython port can consume it too.  Every mistake raises
ScenarioError with "{source}: [{table}] {key} = {value!r}: {what is allowed}".  Unknown tables and
keys are errors (they are usually typos).  Clinical limits are not checked here: the firmware's
drug library does that, and a scenario may deliberately program something the pump must refuse.
"""

import calendar
import datetime
import difflib
import json
import os
import re
import sys

from firmware import limits as fw_limits
from firmware.pump import MODEL
from sim.errors import ScenarioError
from sim.replay import FAULT_KINDS

try:
    import tomllib
except ImportError:         # Python 3.10
    try:
        import tomli as tomllib
    except ImportError:
        tomllib = None

MS_PER_MIN = 60000
MS_PER_DAY = 86400000
MAX_DAYS = 3650
MAX_SEED = 4294967295
MAX_UG = fw_limits.MAX_UG
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")     # Monday first, as the firmware
DEFAULT_START = "2026-01-05T08:00:00"                              # a Monday
DEFAULT_TIMELINE_TIME = "09:00"
DEFAULT_REFILL_TIME = "10:00"
RESERVOIR_SIZES_ML = (20, 40)       # SynchroMed II 8637-20/-40, Prometra 20/40 mL (docs/clinical.md)

TABLES = ("scenario", "pump", "drug", "therapy", "limits", "patient_bolus", "refills", "timeline",
          "models", "faults", "link")
REQUIRED_TABLES = ("scenario", "drug", "therapy")

# What each timeline action takes besides day, time and action (required ones marked True).
ACTIONS = {
    "program": {"basal_ug_per_day": True, "confirm": False},
    "program_flex": {"flex": True, "confirm": False},
    "clinician_bolus": {"dose_ug": True, "duration_min": True, "confirm": False},
    "refill": {"volume_ul": False, "concentration_ug_per_ml": False, "bridge": False},
    "start": {},
    "stop": {},
    "clear_alarm": {},
    "silence_alarms": {"minutes": True},
    "set_low_reservoir_alarm": {"volume_ul": True},
    "set_patient_bolus": {"dose_ug": True, "duration_min": True, "lockout_min": True,
                          "max_per_24h": True, "confirm": False},
    "reset": {},
    # A screening bolus by lumbar puncture (Lioresal label): into the CSF, bypassing the pump.
    "screening_bolus": {"dose_ug": True},
}

# [[faults]] kinds (sim/replay.py FAULT_KINDS; docs/scenarios.md) and the largest duration.
MAX_FAULT_HOURS = MAX_DAYS * 24
ACCURACY_CLASS_PPM = 145000         # flow accuracy within +-14.5 % (docs/clinical.md)
_BIAS_SEED_XOR = 0x0B1A5EED

# [pump] ranges (lo, hi, note): 0 in some would crash or hang a run, and huge values overflow the
# event log's 32-bit fields.  Keys not listed allow 0 to 10**9.
_MS_PER_YEAR = 365 * MS_PER_DAY
_PUMP_RANGES = {
    "reservoir_capacity_nl": (1000000, 100000000, " (1 to 100 mL)"),
    "battery_capacity_nah": (1, 10 ** 13, " (the runner divides by it)"),
    "eri_remaining_nah": (0, 10 ** 13, ""),
    "eos_remaining_nah": (0, 10 ** 13, ""),
    "max_rate_nl_per_hour": (1, 10 ** 9, " (the firmware divides by it)"),
    "critical_repeat_ms": (1000, MS_PER_DAY, " (0 re-arms the alarm tone at one instant forever)"),
    "noncritical_repeat_ms": (1000, MS_PER_DAY,
                              " (0 re-arms the alarm tone at one instant forever)"),
    "commit_interval_ms": (MS_PER_MIN, MS_PER_DAY,
                           " (housekeeping must read the clock at least daily: tick wrap)"),
    "eos_after_eri_ms": (0, 20 * _MS_PER_YEAR, ""),
    "max_service_ms": (MS_PER_DAY, 20 * _MS_PER_YEAR, ""),
    "max_silence_ms": (0, 7 * MS_PER_DAY, ""),
    # Two slots and one 32-byte log record must fit the sim board's 32768-byte storage.
    "storage_slot_bytes": (12, 16368, " (two slots and the event log fit 32768 bytes)"),
}
_PUMP_DEFAULT_RANGE = (0, 10 ** 9, "")

_REQUIRED = object()
_TIME_RE = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$")
_START_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2}))?$")
_LINE_RE = re.compile(r"at line (\d+)(?:, column (\d+))?")


# -------------------------------------------------------------------------------- finding files

def repo_root():
    """The repository holding the sim package (its parent directory)."""
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def scenario_dirs():
    """Where bare names are looked up: the repo's scenarios/, then an installed copy's."""
    dirs = [os.path.join(repo_root(), "scenarios"),
            os.path.join(sys.prefix, "share", "vpump", "scenarios")]
    return [d for d in dirs if os.path.isdir(d)]


def available():
    """Names (without .toml) of the scenarios find() knows, sorted."""
    names = set()
    for d in scenario_dirs():
        for entry in os.listdir(d):
            if entry.endswith(".toml"):
                names.add(entry[:-5])
    return sorted(names)


def find(name_or_path):
    """A scenario's path: name_or_path itself if it is a file, else NAME(.toml) in scenarios/."""
    text = str(name_or_path)
    if os.path.isfile(text):
        return text
    if os.path.isdir(text):
        raise ScenarioError("%s: is a directory, not a scenario file" % text, source=text)
    bare = os.path.basename(text) == text and text not in ("", ".", "..")
    if bare:
        filename = text if text.endswith(".toml") else text + ".toml"
        for d in scenario_dirs():
            path = os.path.join(d, filename)
            if os.path.isfile(path):
                return path
    names = available()
    hint = ""
    close = difflib.get_close_matches(text[:-5] if text.endswith(".toml") else text, names, n=1)
    if close:
        hint = "did you mean %s? " % toml_value(close[0])
    raise ScenarioError(
        "scenario %s: no such file, and no scenario of that name in scenarios/; %savailable: %s"
        % (toml_value(text), hint, ", ".join(names) if names else "(none)"), source=text)


# -------------------------------------------------------------------------------- reading

def load(path):
    """Read a TOML scenario file and validate it: the plain config (see validate)."""
    source = str(path)
    if tomllib is None:
        raise ScenarioError("%s: reading TOML needs Python 3.11+ (tomllib); install tomli on "
                            "Python 3.10" % source, source=source)
    try:
        with open(source, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise ScenarioError("%s: no such scenario file" % source, source=source) from None
    except OSError as exc:
        raise ScenarioError("%s: cannot read: %s" % (source, exc.strerror or exc),
                            source=source) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise ScenarioError("%s: line %d: not UTF-8 text (TOML files are UTF-8)" % (source, line),
                            source=source, line=line) from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        match = _LINE_RE.search(message)
        line = int(match.group(1)) if match else getattr(exc, "lineno", None)
        where = ""
        if line is not None:
            where = "line %d: " % line
            snippet = _line_text(text, line)
            if snippet:
                message += "; the line reads: %s" % snippet
        raise ScenarioError("%s: %sTOML syntax error: %s" % (source, where, message),
                            source=source, line=line) from None
    return validate(raw, source=source)


def _line_text(text, line):
    lines = text.splitlines()
    if 1 <= line <= len(lines):
        snippet = lines[line - 1].strip()
        return snippet if len(snippet) <= 80 else snippet[:77] + "..."
    return ""


# -------------------------------------------------------------------------------- checking values

class _Checker:
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
        if default is _REQUIRED:
            self.missing(table, key, allowed)
        return default, False

    def int(self, table, data, key, lo, hi=None, default=_REQUIRED, unit="", note=""):
        allowed = _int_allowed(lo, hi, unit) + note
        value, given = self.get(table, data, key, default, allowed)
        if not given:
            return value
        if isinstance(value, bool):
            self.fail(table, key, value, allowed + " (got true/false, not a number)")
        if isinstance(value, float):
            self.fail(table, key, value, allowed + " (got a float: no decimal point)")
        if not isinstance(value, int):
            self.fail(table, key, value, allowed + " (got %s)" % _kind(value))
        if value < lo or (hi is not None and value > hi):
            self.fail(table, key, value, allowed)
        return value

    def choice(self, table, data, key, values, default=_REQUIRED, note=""):
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

    def str(self, table, data, key, default=_REQUIRED, nonempty=False):
        allowed = "must be a non-empty string" if nonempty else "must be a string"
        value, given = self.get(table, data, key, default, allowed)
        if given and (not isinstance(value, str) or (nonempty and not value.strip())):
            self.fail(table, key, value, allowed)
        return value

    def time_of_day(self, table, key, value, what=""):
        """'HH:MM' (or a TOML local time with zero seconds) -> minutes after midnight."""
        minutes = _minutes(value)
        if minutes is None:
            self.fail(table, key, value, what + "must be a time of day \"HH:MM\" (24-hour, "
                      "two digits each) from \"00:00\" to \"23:59\"")
        return minutes

    def opt_time(self, table, data, key, default):
        value = data.get(key, default)
        return self.time_of_day(table, key, value)


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


def _int_allowed(lo, hi, unit):
    unit = " " + unit if unit else ""
    if hi is None:
        return "must be a whole number%s >= %d" % (unit, lo)
    return "must be a whole number%s from %d to %d" % (unit, lo, hi)


def _kind(value):
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    return "a %s" % type(value).__name__


def _minutes(value):
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


def _hhmm(minutes):
    return "%02d:%02d" % divmod(minutes, 60)


# -------------------------------------------------------------------------------- validation

def validate(raw, source="<scenario>"):
    """Check a parsed scenario document; return the plain config in firmware units.

    {"name", "description", "days", "seed", "start_wall_ms", "model", "drug",
     "concentration_ug_per_ml", "fill_nl", "therapy", "confirm", "low_reservoir_alarm_nl",
     "limits", "patient_bolus", "patient_requests_per_day", "refills", "timeline"}, plus
    "models" and "faults" only when the file has those tables
    (docs/scenarios.md describes each).
    """
    c = _Checker(source)
    if not isinstance(raw, dict):
        raise ScenarioError("%s: must be a TOML document of tables, got %s" % (source, _kind(raw)),
                            source=source)
    for name in raw:
        if name not in TABLES:
            close = difflib.get_close_matches(name, list(TABLES), n=1, cutoff=0.6)
            hint = "did you mean [%s]? " % close[0] if close else ""
            what = "unknown table" if isinstance(raw[name], (dict, list)) else \
                "a key outside any table (or an unknown table)"
            raise ScenarioError("%s: [%s]: %s; %sallowed tables: %s"
                                % (source, name, what, hint,
                                   ", ".join("[%s]" % t for t in TABLES)),
                                source=source, table=name, allowed=", ".join(TABLES))
    for name in REQUIRED_TABLES:
        if name not in raw:
            raise ScenarioError("%s: [%s] is missing: every scenario needs the tables %s"
                                % (source, name, ", ".join("[%s]" % t for t in REQUIRED_TABLES)),
                                source=source, table=name)
    config = {}
    _scenario(c, c.table("scenario", raw["scenario"]), config)
    model = _pump(c, c.table("pump", raw.get("pump", {})))
    config["model"] = model
    capacity_nl = model.get("reservoir_capacity_nl", MODEL["reservoir_capacity_nl"])
    capacity_ul = capacity_nl // 1000
    default_alarm_nl = model.get("low_reservoir_alarm_nl", MODEL["low_reservoir_alarm_nl"])
    entry = _drug(c, c.table("drug", raw["drug"]), config, capacity_ul)
    _therapy(c, c.table("therapy", raw["therapy"]), config, capacity_ul, default_alarm_nl)
    config["limits"] = _limits(c, c.table("limits", raw.get("limits", {})))
    _patient_bolus(c, raw.get("patient_bolus"), config)
    config["refills"] = _refills(c, raw.get("refills"), config, entry, capacity_ul)
    config["timeline"] = _timeline(c, raw.get("timeline", []), config, entry, capacity_ul)
    if "models" in raw:
        config["models"] = _models(c, c.table("models", raw["models"]), config)
    if "faults" in raw:
        config["faults"] = _faults(c, raw["faults"], config)
    if "link" in raw:
        config["link"] = _link(c, c.table("link", raw["link"]))
    _check_link_faults(c, config)
    return config


def _pct_ppm(c, table, t, key, lo, hi, note=""):
    """A percentage (whole or decimal) from lo to hi -> integer parts per million (0 if absent)."""
    allowed = "must be a number of percent from %s to %s%s" % (lo, hi, note)
    value, given = c.get(table, t, key, 0, allowed)
    if not given:
        return 0
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value \
            or not lo <= value <= hi:
        c.fail(table, key, value, allowed)
    return int(round(value * 10000))


def _models(c, t, config):
    T = "models"
    c.keys(T, t, ("motor_bias_pct", "motor_noise_pct", "refill_error_pct") + BATTERY_KEYS
           + CLOCK_KEYS)
    cell_and_crystal = _battery_and_clock(c, T, t)
    if t.get("motor_bias_pct") == "random":
        # One pump of the accuracy class: a bias drawn from the seed, uniform in +-14.5 %.
        from hal.sim import SimRng
        draw = SimRng(config["seed"] ^ _BIAS_SEED_XOR).next_u32()
        bias = draw % (2 * ACCURACY_CLASS_PPM + 1) - ACCURACY_CLASS_PPM
    else:
        bias = _pct_ppm(c, T, t, "motor_bias_pct", -50, 50,
                        ', or "random" (a seeded draw within the +-14.5 % accuracy class: '
                        "docs/clinical.md)")
    noise = _pct_ppm(c, T, t, "motor_noise_pct", 0, 50,
                     " (each stroke varies uniformly within +-this)")
    fill = _pct_ppm(c, T, t, "refill_error_pct", -50, 50,
                    " (the true volume of every fill and refill vs what the clinician enters)")
    models = {"motor_bias_ppm": bias, "motor_noise_ppm": noise, "refill_error_ppm": fill}
    models.update(cell_and_crystal)
    return models


# [models] keys of the true battery cell and the clock crystal (sim/battery.py, sim/crystal.py;
# docs/battery-and-clock.md says where each default comes from).  Absent: no key in the config,
# so a scenario without them replays exactly as before.
BATTERY_CHEMISTRIES = ("li-cfx-svo", "li-svo")
BATTERY_KEYS = ("battery", "battery_capacity_error_pct", "battery_capacity_spread_pct",
                "battery_self_discharge_pct_per_year", "battery_stroke_load_ua", "battery_read",
                "telemetry_sessions_per_day")
CLOCK_KEYS = ("clock_drift_ppm", "clock_temperature_c", "clock_tempco_ppm_per_c2",
              "clock_aging_ppm_per_year")
CLOCK_TEMPCO_PPM_PER_C2 = -0.034       # tuning-fork watch crystal (docs/battery-and-clock.md)
CLOCK_TURNOVER_C = 25


def _scaled(c, T, t, key, lo, hi, scale, unit, note=""):
    """A number (whole or decimal) from lo to hi -> round(value * scale), or None if absent."""
    allowed = "must be a number%s from %s to %s%s" % (unit, lo, hi, note)
    if key not in t:
        return None
    value = t[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value \
            or not lo <= value <= hi:
        c.fail(T, key, value, allowed)
    return int(round(value * scale))


def _battery_and_clock(c, T, t):
    out = {}
    chemistry = t.get("battery")
    if "battery" in t:
        c.choice(T, t, "battery", BATTERY_CHEMISTRIES,
                 note=" (the true cell's chemistry: docs/battery-and-clock.md)")
        out["battery"] = chemistry
    for key in BATTERY_KEYS[1:]:
        if key in t and chemistry is None:
            c.fail(T, key, t[key], 'needs battery = "li-cfx-svo" or "li-svo" in [models] (the '
                   "true cell it describes)")
    error = _pct_ppm(c, T, t, "battery_capacity_error_pct", -50, 50,
                     " (this cell's true capacity vs the nominal battery_capacity_nah)")
    if error:
        out["battery_capacity_error_ppm"] = error
    spread = _pct_ppm(c, T, t, "battery_capacity_spread_pct", 0, 50,
                      " (the true capacity is drawn uniformly within +-this, seeded)")
    if spread:
        out["battery_capacity_spread_ppm"] = spread
    if "battery_self_discharge_pct_per_year" in t:
        out["battery_self_discharge_ppm_per_year"] = _pct_ppm(
            c, T, t, "battery_self_discharge_pct_per_year", 0, 20, " of the capacity")
    if "battery_stroke_load_ua" in t:
        out["battery_stroke_load_ua"] = c.int(T, t, "battery_stroke_load_ua", 0, 100000,
                                              unit="uA", note=" (current during a stroke)")
    if "battery_read" in t:
        out["battery_read"] = c.choice(T, t, "battery_read", ("loaded", "rest"),
                                       note=" (the firmware's reading under a stroke's load, "
                                       "or at rest)")
    if "telemetry_sessions_per_day" in t:
        out["telemetry_sessions_per_day"] = c.int(T, t, "telemetry_sessions_per_day", 0, 96,
                                                  note=" (routine read-outs, evenly spaced)")
    if any(key in t for key in CLOCK_KEYS):
        drift = _scaled(c, T, t, "clock_drift_ppm", -200, 200, 1000, " of ppm",
                        " (the crystal's frequency error at 25 degC; + runs fast)") or 0
        tempco = _scaled(c, T, t, "clock_tempco_ppm_per_c2", -0.1, 0, 10 ** 6, " of ppm/degC^2")
        if tempco is None:
            tempco = int(round(CLOCK_TEMPCO_PPM_PER_C2 * 10 ** 6))     # ppb per 1000 degC^2
        temperature_mc = _scaled(c, T, t, "clock_temperature_c", 20, 45, 1000, " of degC",
                                 " (where the crystal sits: 37 in the body)")
        if temperature_mc is not None:
            d_mc = temperature_mc - CLOCK_TURNOVER_C * 1000
            # tempco here is ppb/degC^2 x 1000; d_mc^2 is (milli-degC)^2: divide by 10^9.
            drift += tempco * d_mc * d_mc // 10 ** 9
        out["clock_drift_ppb"] = drift
        aging = _scaled(c, T, t, "clock_aging_ppm_per_year", -10, 10, 1000, " of ppm")
        if aging:
            out["clock_aging_ppb_per_year"] = aging
    return out


# An MRI's recovery lag: after the scan the rotor stays stalled this long (docs/clinical.md: recovery
# can lag 2-24 h).  Default: the shortest lag cited; at most the longest.
MRI_RECOVERY_DEFAULT_HOURS = 2
MRI_RECOVERY_MAX_HOURS = 24


def _mri_recovery(c, T, t, key):
    hours = t[key]
    if isinstance(hours, bool) or not isinstance(hours, (int, float)) or hours != hours \
            or not 0 <= hours <= MRI_RECOVERY_MAX_HOURS:
        c.fail(T, key, hours, "must be a number of hours from 0 to %d: how long the rotor stays "
               "stalled after the scan (docs/clinical.md: recovery can lag 2-24 h; 0: it turns as "
               "soon as the scan ends)" % MRI_RECOVERY_MAX_HOURS)
    return {"recover_ms": int(round(hours * 3600000))}


# What a [[faults]] entry may carry beside day/time (or rate_per_year/from_day/to_day), kind and
# duration_hours, per kind: key -> parser(c, T, t, key) returning the config fields it sets.
FAULT_OPTIONS = {
    "motor_stall": {}, "occlusion": {}, "dislodgement": {}, "storage_fail": {}, "power_loss": {},
    "mri": {"recovery_hours": _mri_recovery},
}
# Config fields a kind's entry gets when its option is not given.
FAULT_DEFAULTS = {"mri": {"recover_ms": MRI_RECOVERY_DEFAULT_HOURS * 3600000}}
# Kinds that happen at one instant: no duration_hours.
INSTANT_FAULTS = ("power_loss", "bit_flip")
MAX_FAULT_RATE_PER_YEAR = 8760      # one an hour: random faults are drawn hour by hour

# [link]: how the simulated clinician (and patient) reach the pump (sim/telemetry_link.py).
LINK_MODES = ("direct", "telemetry")
LINK_DIRECTIONS = ("both", "to_pump", "from_pump")
MAX_LINK_DELAY_MS = 60000


def _link(c, t):
    T = "link"
    c.keys(T, t, ("clinician", "patient", "baud", "timeout_ms", "retries", "connect_attempts"))
    return {
        "clinician": c.choice(T, t, "clinician", LINK_MODES, default="direct",
                              note=" (telemetry: each clinician action is a programmer session "
                              "over the link)"),
        "patient": c.choice(T, t, "patient", LINK_MODES, default="direct",
                            note=" (telemetry: each bolus press goes through the patient's "
                            "remote)"),
        "baud": c.int(T, t, "baud", 300, 4000000, default=9600, unit="of bit/s",
                      note=" (8N1: 10 bits a byte)"),
        "timeout_ms": c.int(T, t, "timeout_ms", 10, 600000, default=1000, unit="of ms",
                            note=" (the programmer's wait for an answer before it resends)"),
        "retries": c.int(T, t, "retries", 0, 10, default=3,
                         note=" (resends of the same frame before a link failure)"),
        "connect_attempts": c.int(T, t, "connect_attempts", 1, 10, default=3,
                                  note=" (times the programmer tries to open a session)"),
    }


def _link_pct(field):
    def parse(c, T, t, key):
        ppm = _pct_ppm(c, T, t, key, 0, 100, " (of the frames, each drawn at random, seeded)")
        return {field: ppm}
    return parse


def _link_int(field, lo, hi, unit, note):
    def parse(c, T, t, key):
        return {field: c.int(T, t, key, lo, hi, unit=unit, note=note)}
    return parse


def _link_direction(c, T, t, key):
    return {"direction": c.choice(T, t, key, LINK_DIRECTIONS,
                                  note=" (to_pump: the programmer's frames; from_pump: the "
                                  "pump's answers)")}


# Storage and supply faults (sim/replay.py; docs/scenarios.md, docs/persistence.md).
BIT_FLIP_REGIONS = ("any", "snapshot", "snapshots", "log")
POWER_LOSS_DURING = ("now", "commit", "log")
MAX_BIT_FLIPS = 4096


def _bit_flip_bits(c, T, t, key):
    return {"bits": c.int(T, t, key, 1, MAX_BIT_FLIPS, unit="of bits",
                          note=" (each at a seeded place in region)")}


def _bit_flip_region(c, T, t, key):
    return {"region": c.choice(T, t, key, BIT_FLIP_REGIONS,
                               note=" (snapshot: the newest committed snapshot; snapshots: "
                               "either slot's; log: a written log record; any: anywhere in "
                               "the storage)")}


def _power_loss_during(c, T, t, key):
    return {"during": c.choice(T, t, key, POWER_LOSS_DURING,
                               note=" (now: at that moment; commit: midway through the next "
                               "write to the snapshot slots; log: midway through the next log "
                               "record)")}


FAULT_OPTIONS["bit_flip"] = {"bits": _bit_flip_bits, "region": _bit_flip_region}
FAULT_OPTIONS["power_loss"] = {"during": _power_loss_during}
FAULT_OPTIONS["brown_out"] = {}
FAULT_DEFAULTS["bit_flip"] = {"bits": 1, "region": "any"}


FAULT_OPTIONS["link_noise"] = {
    "drop_pct": _link_pct("drop_ppm"),
    "corrupt_pct": _link_pct("corrupt_ppm"),
    "corrupt_bits": _link_int("corrupt_bits", 1, 64, "of bits", " (flipped in a corrupted "
                              "frame)"),
    "delay_ms": _link_int("delay_ms", 0, MAX_LINK_DELAY_MS, "of ms", " (added to a frame's "
                          "trip)"),
    "delay_pct": _link_pct("delay_ppm"),
    "direction": _link_direction,
}


def link_noise(spec, source="--noise"):
    """A link_noise fault's options from a dict of raw values (e.g. `vpump serve --noise`), in
    the scenario's units (drop_ppm, corrupt_ppm, ...); ScenarioError names the key, the value
    and what is allowed, as for a [[faults]] entry."""
    c = _Checker(source)
    T = "link_noise"
    options = FAULT_OPTIONS["link_noise"]
    c.keys(T, spec, tuple(options))
    out = {"kind": "link_noise", "direction": "both", "corrupt_bits": 1}
    for key in spec:
        out.update(options[key](c, T, spec, key))
    if not (out.get("drop_ppm") or out.get("corrupt_ppm") or out.get("delay_ms")):
        c.fail(T, "drop_pct", spec.get("drop_pct", 0), "the noise does nothing: give "
               "drop_pct, corrupt_pct or delay_ms above 0")
    return out


def _check_link_faults(c, config):
    # A link_noise fault needs a link to act on, and must do something.
    link = config.get("link") or {}
    over_link = "telemetry" in (link.get("clinician"), link.get("patient"))
    for fault in config.get("faults") or ():
        if fault["kind"] != "link_noise":
            continue
        T = "faults #%d" % fault["number"]
        if not over_link:
            c.fail(T, "kind", "link_noise", "needs a link: add [link] with clinician = "
                   "\"telemetry\" (or patient = \"telemetry\"); without it the simulator "
                   "calls the pump directly and no frame could be hit")
        if not (fault.get("drop_ppm") or fault.get("corrupt_ppm") or fault.get("delay_ms")):
            c.fail(T, "kind", "link_noise", "does nothing: give drop_pct, corrupt_pct or "
                   "delay_ms (above 0)")


def _hours_ms(c, T, t, key, allowed, lo_exclusive=True):
    hours = t[key]
    if isinstance(hours, bool) or not isinstance(hours, (int, float)) or hours != hours \
            or not (0 < hours if lo_exclusive else 0 <= hours) or hours > MAX_FAULT_HOURS:
        c.fail(T, key, hours, allowed)
    ms = int(round(hours * 3600000))
    if lo_exclusive and ms < 1:
        c.fail(T, key, hours, allowed)
    return ms


def _faults(c, value, config):
    c.array_of_tables("faults", value, "day, time and kind")
    out = []
    for number, t in enumerate(value, 1):
        T = "faults #%d" % number
        kind = c.choice(T, t, "kind", FAULT_KINDS)
        options = FAULT_OPTIONS.get(kind, {})
        c.keys(T, t, ("day", "time", "rate_per_year", "from_day", "to_day", "kind",
                      "duration_hours") + tuple(options))
        entry = {"kind": kind, "number": number}
        if "rate_per_year" in t:
            for key in ("day", "time"):
                if key in t:
                    c.fail(T, key, t[key], "not a field of a random fault (rate_per_year); use "
                           "from_day and to_day for its window, or drop rate_per_year")
            rate = t["rate_per_year"]
            allowed = ("must be a number of faults per year above 0, at most %d (drawn hour by "
                       "hour, seeded)" % MAX_FAULT_RATE_PER_YEAR)
            if isinstance(rate, bool) or not isinstance(rate, (int, float)) or rate != rate \
                    or not 0 < rate <= MAX_FAULT_RATE_PER_YEAR:
                c.fail(T, "rate_per_year", rate, allowed)
            entry["rate_milli_per_year"] = int(round(rate * 1000)) or 1
            from_day = c.int(T, t, "from_day", 0, MAX_DAYS, default=0,
                             unit="of days after the start")
            entry["from_ms"] = from_day * MS_PER_DAY
            if "to_day" in t:
                to_day = c.int(T, t, "to_day", from_day, MAX_DAYS,
                               unit="of days after the start", note=" (at or after from_day)")
                entry["to_ms"] = to_day * MS_PER_DAY
        else:
            for key in ("from_day", "to_day"):
                if key in t:
                    c.fail(T, key, t[key], "only a field of a random fault (with rate_per_year)")
            day = c.int(T, t, "day", 0, MAX_DAYS, unit="of days after the start",
                        note=" (or rate_per_year for random faults)")
            minutes = c.opt_time(T, t, "time", DEFAULT_TIMELINE_TIME)
            entry["t_ms"] = _moment(c, T, "day", day, minutes, config["start_wall_ms"], day)
        entry["duration_ms"] = None
        if "duration_hours" in t:
            if kind in INSTANT_FAULTS:
                c.fail(T, "duration_hours", t["duration_hours"], "not a field of kind %s (it "
                       "happens at one instant); leave it out" % toml_value(kind))
            entry["duration_ms"] = _hours_ms(
                c, T, t, "duration_hours", "must be a number of hours above 0, at most %d "
                "(leave it out: the fault lasts to the end of the run)" % MAX_FAULT_HOURS)
        for key in options:
            if key in t:
                entry.update(options[key](c, T, t, key))
        for key, default in FAULT_DEFAULTS.get(kind, {}).items():
            entry.setdefault(key, default)
        out.append(entry)
    out.sort(key=lambda item: item.get("t_ms", -1))   # stable: equal times keep file order
    return out


def _scenario(c, t, config):
    T = "scenario"
    c.keys(T, t, ("name", "description", "days", "seed", "start"))
    config["name"] = c.str(T, t, "name", nonempty=True)
    config["description"] = c.str(T, t, "description", default="")
    config["days"] = c.int(T, t, "days", 1, MAX_DAYS, unit="of days")
    config["seed"] = c.int(T, t, "seed", 0, MAX_SEED, default=1)
    config["start_wall_ms"] = _start(c, t.get("start", DEFAULT_START))


def _start(c, value):
    allowed = ("must be a local date and time without a UTC offset, from 1970-01-01T00:00 to "
               "9999-12-31T23:59, as a TOML local date-time (2026-01-05T08:00:00) or a string "
               "\"2026-01-05T08:00:00\"")
    if isinstance(value, datetime.datetime):
        if value.tzinfo is not None:
            c.fail("scenario", "start", value, allowed + " (got an offset date-time)")
        moment = value
    elif isinstance(value, datetime.date):
        moment = datetime.datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        match = _START_RE.match(value.strip())
        if not match:
            c.fail("scenario", "start", value, allowed)
        try:
            moment = datetime.datetime(*[int(g or 0) for g in match.groups()])
        except ValueError as exc:
            c.fail("scenario", "start", value, allowed + " (%s)" % exc)
    else:
        c.fail("scenario", "start", value, allowed)
    if moment.year < 1970:
        c.fail("scenario", "start", value, allowed)
    return calendar.timegm(moment.timetuple()) * 1000 + moment.microsecond // 1000


def _pump(c, t):
    T = "pump"
    keys = tuple(k for k in MODEL if k != "name") + ("reservoir_ml",)
    c.keys(T, t, keys, why=" (pump-model parameters: firmware/pump.py MODEL)")
    model = {}
    for key in t:
        if key == "reservoir_ml":
            if "reservoir_capacity_nl" in t:
                c.fail(T, key, t[key], "give reservoir_ml or reservoir_capacity_nl, not both")
            ml = t[key]
            if isinstance(ml, bool) or not isinstance(ml, int) or ml not in RESERVOIR_SIZES_ML:
                c.fail(T, key, ml, "must be 20 or 40 (the real reservoir sizes: SynchroMed II "
                       "8637-20/-40, Prometra 20/40 mL; docs/clinical.md)")
            model["reservoir_capacity_nl"] = ml * 1000000
        elif key == "stroke_nl":
            model[key] = c.int(T, t, key, 50, 10000, unit="of nL")
        else:
            lo, hi, note = _PUMP_RANGES.get(key, _PUMP_DEFAULT_RANGE)
            model[key] = c.int(T, t, key, lo, hi, note=note)
    return model


def _drug(c, t, config, capacity_ul):
    T = "drug"
    c.keys(T, t, ("name", "concentration_ug_per_ml", "fill_ul"))
    names = sorted(fw_limits.LIBRARY)
    drug = c.choice(T, t, "name", names, default="baclofen",
                    note=" (the drug library: firmware/limits.py)")
    entry = fw_limits.library_entry(drug)
    config["drug"] = drug
    config["concentration_ug_per_ml"] = _concentration(c, T, t, "concentration_ug_per_ml", entry)
    config["fill_nl"] = c.int(T, t, "fill_ul", 0, capacity_ul, default=capacity_ul,
                              unit="of uL", note=" (the reservoir's capacity)") * 1000
    return entry


def _concentration(c, table, t, key, entry, default=_REQUIRED):
    allowed = entry["concentrations_ug_per_ml"]
    note = "must be one of %s ug/mL (%s concentrations in the drug library; docs/clinical.md)" % (
        ", ".join(str(a) for a in allowed), entry["drug"])
    value, given = c.get(table, t, key, default, note)
    if not given:
        return value
    if isinstance(value, bool) or not isinstance(value, int) or value not in allowed:
        if isinstance(value, float):
            note += " (got a float: no decimal point)"
        c.fail(table, key, value, note)
    return value


def _therapy(c, t, config, capacity_ul, default_alarm_nl):
    T = "therapy"
    mode = c.choice(T, t, "mode", ("continuous", "flex", "stopped"))
    if mode == "stopped":
        # Filled but not programmed (e.g. before implant, while screening): therapy idle until
        # a timeline program or program_flex (docs/clinical.md therapy modes: stopped).
        c.keys(T, t, ("mode", "low_reservoir_alarm_ul", "confirm"), why=' for mode = "stopped"')
        config["therapy"] = None
    elif mode == "continuous":
        c.keys(T, t, ("mode", "basal_ug_per_day", "low_reservoir_alarm_ul", "confirm"),
               why=' for mode = "continuous"')
        basal = c.int(T, t, "basal_ug_per_day", 0, MAX_UG, unit="of ug/day")
        config["therapy"] = {"mode": "continuous", "basal_ug_per_day": basal}
    else:
        c.keys(T, t, ("mode", "flex", "low_reservoir_alarm_ul", "confirm"),
               why=' for mode = "flex"')
        if "flex" not in t:
            c.missing(T, "flex", 'mode = "flex" needs one or more [[therapy.flex]] tables '
                      "with days and steps")
        config["therapy"] = {"mode": "flex", "steps": _flex(c, T, "therapy.flex", t["flex"])}
    config["confirm"] = c.bool(T, t, "confirm")
    if "low_reservoir_alarm_ul" not in t and default_alarm_nl > capacity_ul * 1000:
        c.missing(T, "low_reservoir_alarm_ul", "the default %d uL does not fit a reservoir of "
                  "%d uL: give a value from 0 to %d" % (default_alarm_nl // 1000, capacity_ul,
                                                        capacity_ul))
    config["low_reservoir_alarm_nl"] = c.int(
        T, t, "low_reservoir_alarm_ul", 0, capacity_ul, default=default_alarm_nl // 1000,
        unit="of uL", note=" (the reservoir's capacity; the maker recommends 2000: docs/clinical.md)"
    ) * 1000


def flex_week(source, entries, label="flex"):
    """[[flex]]-style entries ({days, steps} dicts) from any source (a scenario, a programmer's
    flex file, the command line) -> 7 lists (Monday first) of [minute, ug_per_day].  Mistakes
    raise ScenarioError naming source, label, key, value and what is allowed."""
    return _flex(_Checker(source), label, label, entries)


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
    value, _ = c.get(T, entry, "days", _REQUIRED, allowed)
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
    value, _ = c.get(T, entry, "steps", _REQUIRED, allowed)
    if not isinstance(value, list) or not 1 <= len(value) <= n:
        count = " (got %d steps)" % len(value) if isinstance(value, list) else ""
        c.fail(T, "steps", value, allowed + count)
    steps = []
    previous = -1
    for number, step in enumerate(value, 1):
        if not isinstance(step, list) or len(step) != 2:
            c.fail(T, "steps", step, "step %d must be a pair [\"HH:MM\", ug_per_day]" % number)
        minute = _minutes(step[0])
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
                   "strictly increasing" % (number, _hhmm(previous)))
        previous = minute
        steps.append([minute, rate])
    return steps


def _limits(c, t):
    T = "limits"
    c.keys(T, t, fw_limits.LIMIT_KEYS, why=" (the drug library's limits: firmware/limits.py)")
    out = {}
    for key in fw_limits.LIMIT_KEYS:
        if key in t:
            out[key] = c.int(T, t, key, 1, MAX_UG)
    return out


def _patient_bolus(c, value, config):
    config["patient_bolus"] = None
    config["patient_requests_per_day"] = 0
    if value is None:
        return
    T = "patient_bolus"
    t = c.table(T, value)
    c.keys(T, t, ("dose_ug", "duration_min", "lockout_min", "max_per_24h", "requests_per_day"))
    config["patient_bolus"] = {
        "dose_ug": c.int(T, t, "dose_ug", 1, MAX_UG, unit="of ug"),
        "duration_ms": c.int(T, t, "duration_min", 1, 60, unit="of minutes") * MS_PER_MIN,
        "lockout_ms": c.int(T, t, "lockout_min", 15, 1440, unit="of minutes",
                            note=" (PCA practice: 15 min to 24 h, never 0; docs/clinical.md)")
        * MS_PER_MIN,
        "max_per_24h": c.int(T, t, "max_per_24h", 1, 24),
    }
    config["patient_requests_per_day"] = c.int(T, t, "requests_per_day", 0, 48, default=0)


def _moment(c, table, day_key, day, minutes, start_wall_ms, value):
    """ms after the start moment of `day` days after the start's calendar day, at `minutes`."""
    t_ms = day * MS_PER_DAY + minutes * MS_PER_MIN - start_wall_ms % MS_PER_DAY
    if t_ms < 0:
        start_min = (start_wall_ms % MS_PER_DAY) // MS_PER_MIN
        c.fail(table, day_key, value, "day %d at %s is before the scenario starts (day 0 at %s); "
               "must be at or after the start: use a later day or time"
               % (day, _hhmm(minutes), _hhmm(start_min)))
    return t_ms


def _refills(c, value, config, entry, capacity_ul):
    if value is None:
        return None
    T = "refills"
    t = c.table(T, value)
    c.keys(T, t, ("every_days", "volume_ul", "concentration_ug_per_ml", "time", "bridge",
                  "start_day"))
    every = c.int(T, t, "every_days", 1, 365, unit="of days",
                  note=" (refills are usually every 2-6 months: docs/clinical.md)")
    volume_nl = c.int(T, t, "volume_ul", 0, capacity_ul, default=capacity_ul, unit="of uL",
                      note=" (the reservoir's capacity)") * 1000
    concentration = _concentration(c, T, t, "concentration_ug_per_ml", entry,
                                   default=config["concentration_ug_per_ml"])
    minutes = c.opt_time(T, t, "time", DEFAULT_REFILL_TIME)
    bridge = c.bool(T, t, "bridge")
    start_day = c.int(T, t, "start_day", 0, MAX_DAYS, default=every, unit="of days")
    first_ms = _moment(c, T, "start_day", start_day, minutes, config["start_wall_ms"], start_day)
    return {"every_ms": every * MS_PER_DAY, "first_ms": first_ms, "volume_nl": volume_nl,
            "concentration_ug_per_ml": concentration, "bridge": bridge}


def _timeline(c, value, config, entry, capacity_ul):
    c.array_of_tables("timeline", value, "day, time and action")
    out = []
    for number, t in enumerate(value, 1):
        T = "timeline #%d" % number
        action = c.choice(T, t, "action", tuple(ACTIONS))
        fields = ACTIONS[action]
        for key in t:
            if key not in ("day", "time", "action") and key not in fields:
                own = ", ".join(fields) if fields else "none"
                c.fail(T, key, t[key], "not a field of action %s (its fields: %s; every entry "
                       "also takes day, time, action)" % (toml_value(action), own))
        day = c.int(T, t, "day", 0, MAX_DAYS, unit="of days after the start")
        minutes = c.opt_time(T, t, "time", DEFAULT_TIMELINE_TIME)
        item = {"t_ms": _moment(c, T, "day", day, minutes, config["start_wall_ms"], day),
                "action": action}
        if action == "program":
            item["basal_ug_per_day"] = c.int(T, t, "basal_ug_per_day", 0, MAX_UG,
                                             unit="of ug/day")
        elif action == "program_flex":
            if "flex" not in t:
                c.missing(T, "flex", "program_flex needs flex = [{days = [...], steps = "
                          "[[\"HH:MM\", ug_per_day], ...]}, ...]")
            item["steps"] = _flex(c, T, T + " flex", t["flex"])
        elif action in ("clinician_bolus", "set_patient_bolus"):
            item["dose_ug"] = c.int(T, t, "dose_ug", 1, MAX_UG, unit="of ug")
            if action == "clinician_bolus":
                item["duration_ms"] = c.int(T, t, "duration_min", 1, 1440,
                                            unit="of minutes") * MS_PER_MIN
            else:
                item["duration_ms"] = c.int(T, t, "duration_min", 1, 60,
                                            unit="of minutes") * MS_PER_MIN
                item["lockout_ms"] = c.int(
                    T, t, "lockout_min", 15, 1440, unit="of minutes",
                    note=" (PCA practice: 15 min to 24 h, never 0; docs/clinical.md)") * MS_PER_MIN
                item["max_per_24h"] = c.int(T, t, "max_per_24h", 1, 24)
        elif action == "refill":
            item["volume_nl"] = c.int(T, t, "volume_ul", 0, capacity_ul, default=capacity_ul,
                                      unit="of uL", note=" (the reservoir's capacity)") * 1000
            item["concentration_ug_per_ml"] = _concentration(
                c, T, t, "concentration_ug_per_ml", entry,
                default=config["concentration_ug_per_ml"])
            item["bridge"] = c.bool(T, t, "bridge")
        elif action == "screening_bolus":
            item["dose_ug"] = c.int(T, t, "dose_ug", 1, MAX_UG, unit="of ug",
                                    note=" (label screening doses: 50, 75, 100 ug)")
        elif action == "silence_alarms":
            item["silence_ms"] = c.int(T, t, "minutes", 1, 1440, unit="of minutes") * MS_PER_MIN
        elif action == "set_low_reservoir_alarm":
            item["volume_nl"] = c.int(T, t, "volume_ul", 0, capacity_ul, unit="of uL",
                                      note=" (the reservoir's capacity)") * 1000
        if "confirm" in fields:
            item["confirm"] = c.bool(T, t, "confirm")
        out.append(item)
    out.sort(key=lambda item: item["t_ms"])       # stable: equal times keep file order
    return out
