"""The scenario document: its tables, the [scenario] table, and validate(), which checks each
section with its own module and converts it to the plain config in firmware units."""

import calendar
import datetime
import difflib
import re

from sim.errors import ScenarioError
from sim.scenario import drug, faults, link, models, pump, therapy, timeline
from sim.scenario.checker import Checker, kind_of
from sim.scenario.fields import Custom, Int, Str

MAX_DAYS = timeline.MAX_DAYS
MAX_SEED = 4294967295
DEFAULT_START = "2026-01-05T08:00:00"                              # a Monday

TABLES = ("scenario", "pump", "drug", "therapy", "limits", "patient_bolus", "refills", "timeline",
          "models", "faults", "link")
REQUIRED_TABLES = ("scenario", "drug", "therapy")

_START_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2}))?$")
START_ALLOWED = ("must be a local date and time without a UTC offset, from 1970-01-01T00:00 to "
                 "9999-12-31T23:59, as a TOML local date-time (2026-01-05T08:00:00) or a string "
                 "\"2026-01-05T08:00:00\"")


def _start(c, value):
    allowed = START_ALLOWED
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


# A TOML local date-time reaches a JSON Schema as its ISO text (a local date alone is allowed
# too: midnight).
_START_SCHEMA = {
    "type": "string",
    "pattern": r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?$",
    "description": "when day 0 begins, pump time: " + START_ALLOWED.replace("must be ", "", 1),
    "default": DEFAULT_START,
}

FIELDS = {
    "name": Str(nonempty=True, doc="the scenario's name (summaries and reports show it)"),
    "description": Str(default="", doc="what the scenario shows, in a sentence"),
    "days": Int(1, MAX_DAYS, unit="of days", doc="how long the run lasts"),
    "seed": Int(0, MAX_SEED, default=1, doc="the seed of every random draw of the run"),
    "start": Custom(lambda c, T, t, key: _start(c, t.get(key, DEFAULT_START)), _START_SCHEMA,
                    default=DEFAULT_START),
}


def _scenario(c, t, config):
    T = "scenario"
    c.keys(T, t, tuple(FIELDS))
    config["name"] = FIELDS["name"].check(c, T, t, "name")
    config["description"] = FIELDS["description"].check(c, T, t, "description")
    config["days"] = FIELDS["days"].check(c, T, t, "days")
    config["seed"] = FIELDS["seed"].check(c, T, t, "seed")
    config["start_wall_ms"] = FIELDS["start"].check(c, T, t, "start")


def validate(raw, source="<scenario>"):
    """Check a parsed scenario document; return the plain config in firmware units.

    {"name", "description", "days", "seed", "start_wall_ms", "model", "drug",
     "concentration_ug_per_ml", "fill_nl", "therapy", "confirm", "low_reservoir_alarm_nl",
     "limits", "patient_bolus", "patient_requests_per_day", "refills", "timeline"}, plus
    "models", "faults" and "link" only when the file has those tables
    (docs/scenarios.md describes each).
    """
    c = Checker(source)
    if not isinstance(raw, dict):
        raise ScenarioError("%s: must be a TOML document of tables, got %s"
                            % (source, kind_of(raw)), source=source)
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
    model = pump.validate(c, c.table("pump", raw.get("pump", {})))
    config["model"] = model
    capacity_ul = pump.capacity_nl(model) // 1000
    default_alarm_nl = pump.low_reservoir_alarm_nl(model)
    entry = drug.validate(c, c.table("drug", raw["drug"]), config, capacity_ul)
    therapy.validate(c, c.table("therapy", raw["therapy"]), config, capacity_ul,
                     default_alarm_nl)
    config["limits"] = therapy.limits(c, c.table("limits", raw.get("limits", {})))
    therapy.patient_bolus(c, raw.get("patient_bolus"), config)
    config["refills"] = timeline.refills(c, raw.get("refills"), config, entry, capacity_ul)
    config["timeline"] = timeline.validate(c, raw.get("timeline", []), config, entry,
                                           capacity_ul)
    if "models" in raw:
        config["models"] = models.validate(c, c.table("models", raw["models"]), config)
    if "faults" in raw:
        config["faults"] = faults.validate(c, raw["faults"], config)
    if "link" in raw:
        config["link"] = link.validate(c, c.table("link", raw["link"]))
    faults.check_link_faults(c, config)
    return config
