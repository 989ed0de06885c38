"""[[faults]]: what goes wrong, when (day and time, or at random rate_per_year between from_day
and to_day) and for how long, with each kind's own options (sim/physical.py FAULT_KINDS;
docs/scenarios.md).  Also link_noise() for `vpump serve --noise`, which takes a link_noise
fault's options."""

from sim.physical import FAULT_KINDS
from sim.scenario.checker import REQUIRED, Checker, toml_value
from sim.scenario.fields import Choice, Int, Number, Percent, Time
from sim.scenario.timeline import DEFAULT_TIMELINE_TIME, MAX_DAYS, MS_PER_DAY, moment

MAX_FAULT_HOURS = MAX_DAYS * 24
MAX_FAULT_RATE_PER_YEAR = 8760      # one an hour: random faults are drawn hour by hour
# Kinds that happen at one instant: no duration_hours.
INSTANT_FAULTS = ("power_loss", "bit_flip")

# An MRI's recovery lag: after the scan the rotor stays stalled this long (docs/clinical.md:
# recovery can lag 2-24 h).  Default: the shortest lag cited; at most the longest.
MRI_RECOVERY_DEFAULT_HOURS = 2
MRI_RECOVERY_MAX_HOURS = 24
# Storage and supply faults (sim/physical.py; docs/scenarios.md, docs/persistence.md).
BIT_FLIP_REGIONS = ("any", "snapshot", "snapshots", "log")
POWER_LOSS_DURING = ("now", "commit", "log")
MAX_BIT_FLIPS = 4096
# link_noise: frames of the telemetry link dropped, corrupted or delayed.
LINK_DIRECTIONS = ("both", "to_pump", "from_pump")
MAX_LINK_DELAY_MS = 60000

_DAYS = "of days after the start"
FIELDS = {
    "day": Int(0, MAX_DAYS, unit=_DAYS, note=" (or rate_per_year for random faults)",
               default=None, doc="when the fault starts"),
    "time": Time(DEFAULT_TIMELINE_TIME, doc="the time of day it starts"),
    "rate_per_year": Number(0, MAX_FAULT_RATE_PER_YEAR, "must be a number of faults per year "
                            "above 0, at most %d (drawn hour by hour, seeded)"
                            % MAX_FAULT_RATE_PER_YEAR, lo_exclusive=True,
                            doc="a random fault instead of day and time"),
    "from_day": Int(0, MAX_DAYS, unit=_DAYS, default=0, doc="a random fault's window opens"),
    "to_day": Int(0, MAX_DAYS, unit=_DAYS, note=" (at or after from_day)", default=None,
                  doc="a random fault's window closes (default: the end of the run)"),
    "kind": Choice(FAULT_KINDS, doc="what goes wrong"),
    "duration_hours": Number(0, MAX_FAULT_HOURS, "must be a number of hours above 0, at most %d "
                             "(leave it out: the fault lasts to the end of the run)"
                             % MAX_FAULT_HOURS, scale=3600000, lo_exclusive=True),
}

_LINK_PCT = " (of the frames, each drawn at random, seeded)"
# Each kind's own options: key -> (the config field it sets, its spec).
OPTIONS = {
    "motor_stall": {}, "occlusion": {}, "dislodgement": {}, "storage_fail": {},
    "mri": {"recovery_hours": ("recover_ms", Number(
        0, MRI_RECOVERY_MAX_HOURS, "must be a number of hours from 0 to %d: how long the rotor "
        "stays stalled after the scan (docs/clinical.md: recovery can lag 2-24 h; 0: it turns "
        "as soon as the scan ends)" % MRI_RECOVERY_MAX_HOURS, scale=3600000))},
    "bit_flip": {
        "bits": ("bits", Int(1, MAX_BIT_FLIPS, unit="of bits",
                             note=" (each at a seeded place in region)")),
        "region": ("region", Choice(BIT_FLIP_REGIONS, note=" (snapshot: the newest committed "
                                    "snapshot; snapshots: either slot's; log: a written log "
                                    "record; any: anywhere in the storage)"))},
    "power_loss": {
        "during": ("during", Choice(POWER_LOSS_DURING, note=" (now: at that moment; commit: "
                                    "midway through the next write to the snapshot slots; log: "
                                    "midway through the next log record)"))},
    "brown_out": {},
    "link_noise": {
        "drop_pct": ("drop_ppm", Percent(0, 100, _LINK_PCT)),
        "corrupt_pct": ("corrupt_ppm", Percent(0, 100, _LINK_PCT)),
        "corrupt_bits": ("corrupt_bits", Int(1, 64, unit="of bits",
                                             note=" (flipped in a corrupted frame)")),
        "delay_ms": ("delay_ms", Int(0, MAX_LINK_DELAY_MS, unit="of ms",
                                     note=" (added to a frame's trip)")),
        "delay_pct": ("delay_ppm", Percent(0, 100, _LINK_PCT)),
        "direction": ("direction", Choice(LINK_DIRECTIONS, note=" (to_pump: the programmer's "
                                          "frames; from_pump: the pump's answers)")),
    },
}
# Config fields a kind's entry gets when its option is not given.
DEFAULTS = {"mri": {"recover_ms": MRI_RECOVERY_DEFAULT_HOURS * 3600000},
            "bit_flip": {"bits": 1, "region": "any"}}


def faults_schema():
    options = {}
    for kind in FAULT_KINDS:
        for key, (_, spec) in OPTIONS[kind].items():
            options[key] = spec.schema()
            options[key]["description"] = "(%s) %s" % (kind, options[key].get("description", ""))
    properties = dict((key, spec.schema()) for key, spec in FIELDS.items())
    properties.update(options)
    rules = [{"anyOf": [{"required": ["day"]}, {"required": ["rate_per_year"]}]}]
    for kind in FAULT_KINDS:
        others = dict((key, False) for key in options if key not in OPTIONS[kind])
        if kind in INSTANT_FAULTS:
            others["duration_hours"] = False
        rules.append({"if": {"properties": {"kind": {"const": kind}}, "required": ["kind"]},
                      "then": {"properties": others}})
    entry = {"type": "object", "properties": properties, "required": ["kind"],
             "additionalProperties": False, "allOf": rules,
             "dependentSchemas": {"rate_per_year": {"properties": {"day": False,
                                                                   "time": False}}},
             "dependentRequired": {"from_day": ["rate_per_year"], "to_day": ["rate_per_year"]}}
    return {"type": "array", "items": entry,
            "description": "faults: [[faults]] entries, each with day (and time) or "
                           "rate_per_year, and kind"}


def _options(c, T, t, kind, entry):
    for key, (field, spec) in OPTIONS.get(kind, {}).items():
        if key in t:
            entry[field] = spec.check(c, T, t, key)


def validate(c, value, config):
    c.array_of_tables("faults", value, "day, time and kind")
    out = []
    for number, t in enumerate(value, 1):
        T = "faults #%d" % number
        kind = FIELDS["kind"].check(c, T, t, "kind")
        c.keys(T, t, tuple(FIELDS) + tuple(OPTIONS.get(kind, {})))
        entry = {"kind": kind, "number": number}
        if "rate_per_year" in t:
            for key in ("day", "time"):
                if key in t:
                    c.fail(T, key, t[key], "not a field of a random fault (rate_per_year); use "
                           "from_day and to_day for its window, or drop rate_per_year")
            rate = FIELDS["rate_per_year"]
            entry["rate_milli_per_year"] = int(round(
                c.number(T, t, "rate_per_year", rate.lo, rate.hi, rate.words, True) * 1000)) or 1
            from_day = FIELDS["from_day"].check(c, T, t, "from_day")
            entry["from_ms"] = from_day * MS_PER_DAY
            if "to_day" in t:
                entry["to_ms"] = FIELDS["to_day"].check(c, T, t, "to_day", lo=from_day) \
                    * MS_PER_DAY
        else:
            for key in ("from_day", "to_day"):
                if key in t:
                    c.fail(T, key, t[key], "only a field of a random fault (with rate_per_year)")
            day = FIELDS["day"].check(c, T, t, "day", default=REQUIRED)
            minutes = FIELDS["time"].check(c, T, t, "time")
            entry["t_ms"] = moment(c, T, "day", day, minutes, config["start_wall_ms"], day)
        entry["duration_ms"] = None
        if "duration_hours" in t:
            if kind in INSTANT_FAULTS:
                c.fail(T, "duration_hours", t["duration_hours"], "not a field of kind %s (it "
                       "happens at one instant); leave it out" % toml_value(kind))
            entry["duration_ms"] = FIELDS["duration_hours"].check(c, T, t, "duration_hours")
        _options(c, T, t, kind, entry)
        for key, default in DEFAULTS.get(kind, {}).items():
            entry.setdefault(key, default)
        out.append(entry)
    out.sort(key=lambda item: item.get("t_ms", -1))   # stable: equal times keep file order
    return out


def link_noise(spec, source="--noise"):
    """A link_noise fault's options from a dict of raw values (e.g. `vpump serve --noise`), in
    the scenario's units (drop_ppm, corrupt_ppm, ...); ScenarioError names the key, the value
    and what is allowed, as for a [[faults]] entry."""
    c = Checker(source)
    T = "link_noise"
    options = OPTIONS["link_noise"]
    c.keys(T, spec, tuple(options))
    out = {"kind": "link_noise", "direction": "both", "corrupt_bits": 1}
    for key in spec:
        field, option = options[key]
        out[field] = option.check(c, T, spec, key)
    if not (out.get("drop_ppm") or out.get("corrupt_ppm") or out.get("delay_ms")):
        c.fail(T, "drop_pct", spec.get("drop_pct", 0), "the noise does nothing: give "
               "drop_pct, corrupt_pct or delay_ms above 0")
    return out


def check_link_faults(c, config):
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
