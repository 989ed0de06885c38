"""Campaign specs: TOML in, a checked Spec and its variants out (docs/campaigns.md is the format).

    load(path) -> Spec            read the TOML, check every field, load every base scenario
    expand(spec) -> [variant]     every run: base scenario x grid point x seed, in id order

A field may hold one value (every run), a list (a grid axis: every value is run) or a table
{min, max} (each run draws its own value, seeded).  Every mistake raises CampaignError with
"{spec}: [{table}] {key} = {value}: {what is allowed}", as scenario files do.

Determinism: a variant's seed and drawn values come from a hash of the spec's seed and the
variant's place (base, grid point, seed number), so the same spec expands to the same variants
on any machine, whatever order they are later run in.
"""

import copy
import difflib
import hashlib
import itertools
import json
import os
import random

from firmware import limits as fw_limits
from firmware.pump import MODEL
from sim import scenario as scenario_module
from sim.errors import CampaignError, ScenarioError
from sim.patient import PARAMS as PATIENT_PARAMS
from sim.physical import FAULT_KINDS

try:
    import tomllib
except ImportError:         # Python 3.10
    import tomli as tomllib

TABLES = ("campaign", "vary", "faults")
MAX_SEEDS = 100000
MAX_VARIANTS = 1000000
MAX_CLINIC_HOURS = 720

# [vary] keys: (lo, hi, whole numbers only, what it changes).  basal and bolus ranges are the
# drug library's hard limits (firmware/limits.py), so a campaign stays within the library.
_LIB = fw_limits.BACLOFEN
VARY = {
    "motor_bias_pct": (-50, 50, False, "[models] motor_bias_pct: the pump's flow error"),
    "motor_noise_pct": (0, 50, False, "[models] motor_noise_pct: stroke-to-stroke variation"),
    "refill_error_pct": (-50, 50, False, "[models] refill_error_pct: true vs entered volume"),
    "refill_every_days": (1, 365, True, "[refills] every_days: periodic full refills"),
    "basal_ug_per_day": (0, _LIB["daily_dose_hard_ug"], True,
                         "[therapy] a continuous program at this rate (confirmed)"),
    "patient_bolus_dose_ug": (1, _LIB["bolus_hard_ug"], True, "[patient_bolus] dose_ug"),
    "lockout_min": (15, 1440, True, "[patient_bolus] lockout_min"),
    "max_per_24h": (1, 24, True, "[patient_bolus] max_per_24h"),
    "patient_requests_per_day": (0, 48, True, "[patient_bolus] requests_per_day"),
}
# Keys that only apply to a scenario with a [patient_bolus] table.
PATIENT_BOLUS_KEYS = {"patient_bolus_dose_ug": "dose_ug", "lockout_min": "lockout_min",
                      "max_per_24h": "max_per_24h",
                      "patient_requests_per_day": "requests_per_day"}
MODEL_KEYS = ("motor_bias_pct", "motor_noise_pct", "refill_error_pct")

# [[faults]] keys the campaign handles itself; the rest go to the scenario's [[faults]] entry.
FAULT_RATE = (0.0, 8760.0)          # exclusive low: faults per year (drawn hour by hour)
FAULT_HOURS = (0.0, 3650 * 24.0)    # exclusive low
INSTANT_FAULTS = ("power_loss", "bit_flip")


class Spec:
    """A checked campaign spec: plain attributes, see load()."""

    def __init__(self, path, name, description, seed, seeds, days, clinic_hours, bases, grid,
                 draws, fixed, patient_grid, patient_draws, patient_fixed, faults):
        self.path = path
        self.name = name
        self.description = description
        self.seed = seed
        self.seeds = seeds
        self.days = days
        self.clinic_hours = clinic_hours
        self.bases = bases              # [{"name", "path", "raw", "config"}]
        self.grid = grid                # [(key, [values])]: grid axes, in file order
        self.draws = draws              # {key: (lo, hi)}: drawn per run
        self.fixed = fixed              # {key: value}
        self.patient_grid = patient_grid
        self.patient_draws = patient_draws
        self.patient_fixed = patient_fixed
        self.faults = faults            # [{"number", "kind", "rate", "hours", "options"}]

    def variant_count(self):
        n = len(self.bases) * self.seeds
        for _key, values in self.grid + self.patient_grid:
            n *= len(values)
        for fault in self.faults:
            for part in ("rate", "hours"):
                if fault[part][0] == "grid":
                    n *= len(fault[part][1])
        return n


class _Check:
    def __init__(self, source):
        self.source = source

    def fail(self, table, key, value, allowed):
        raise CampaignError("%s: [%s] %s = %s: %s" % (self.source, table, key,
                                                       scenario_module.toml_value(value),
                                                       allowed))

    def missing(self, table, key, allowed):
        raise CampaignError("%s: [%s] %s is missing: required; %s" % (self.source, table, key,
                                                                      allowed))

    def keys(self, table, data, allowed):
        for key in data:
            if key not in allowed:
                close = difflib.get_close_matches(key, list(allowed), n=1, cutoff=0.6)
                hint = "did you mean %s? " % scenario_module.toml_value(close[0]) if close else ""
                self.fail(table, key, data[key], "unknown key; %sallowed: %s"
                          % (hint, ", ".join(allowed)))

    def int(self, table, data, key, lo, hi, default):
        allowed = "must be a whole number from %d to %d" % (lo, hi)
        if key not in data:
            if default is None:
                self.missing(table, key, allowed)
            return default
        value = data[key]
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            extra = " (got a float: no decimal point)" if isinstance(value, float) else ""
            self.fail(table, key, value, allowed + extra)
        return value

    def number(self, table, key, value, lo, hi, whole, note="", lo_open=False):
        """One value of a varied field: a number in range (whole if asked)."""
        kind = "whole number" if whole else "number"
        if lo_open:
            allowed = "must be a %s above %s, at most %s%s" % (kind, _num(lo), _num(hi), note)
        else:
            allowed = "must be a %s from %s to %s%s" % (kind, _num(lo), _num(hi), note)
        ok = not isinstance(value, bool) and isinstance(value, (int, float)) and value == value
        if ok and whole and not isinstance(value, int):
            ok = False
        if ok and (value < lo or value > hi or (lo_open and value <= lo)):
            ok = False
        if not ok:
            self.fail(table, key, value, allowed)
        return value

    def varied(self, table, key, value, lo, hi, whole, note="", lo_open=False, extra=()):
        """A value, a list of values (grid) or {min, max} (drawn): ("fixed"|"grid"|"draw", v)."""
        shape = ("; give one value, a list of values (every one is run) or {min = .., max = ..} "
                 "(each run draws its own)")
        if isinstance(value, list):
            if not value:
                self.fail(table, key, value, "an empty list runs nothing" + shape)
            return "grid", [v if v in extra else
                            self.number(table, key, v, lo, hi, whole, note + shape, lo_open)
                            for v in value]
        if isinstance(value, dict):
            self.keys("%s.%s" % (table, key), value, ("min", "max"))
            for bound in ("min", "max"):
                if bound not in value:
                    self.missing("%s.%s" % (table, key), bound, "a drawn range needs min and max")
            lo_v = self.number("%s.%s" % (table, key), "min", value["min"], lo, hi, whole, note,
                               lo_open)
            hi_v = self.number("%s.%s" % (table, key), "max", value["max"], lo, hi, whole, note,
                               lo_open)
            if hi_v < lo_v:
                self.fail("%s.%s" % (table, key), "max", hi_v, "must be at or above min (%s)"
                          % _num(lo_v))
            return "draw", (lo_v, hi_v)
        if value in extra:
            return "fixed", value
        return "fixed", self.number(table, key, value, lo, hi, whole, note + shape, lo_open)


def _num(x):
    return ("%d" % x) if float(x).is_integer() else ("%g" % x)


def load(path):
    """Read and check a campaign spec; every base scenario is loaded (and checked) too."""
    source = str(path)
    try:
        with open(source, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise CampaignError("%s: no such campaign spec file" % source) from None
    except OSError as exc:
        raise CampaignError("%s: cannot read: %s" % (source, exc.strerror or exc)) from None
    try:
        raw = tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise CampaignError("%s: line %d: not UTF-8 text (TOML files are UTF-8)"
                            % (source, line)) from None
    except tomllib.TOMLDecodeError as exc:
        raise CampaignError("%s: TOML syntax error: %s" % (source, exc)) from None
    return check(raw, source)


def check(raw, source="<campaign>"):
    """Check a parsed spec document: a Spec (see load)."""
    c = _Check(source)
    for name in raw:
        if name not in TABLES:
            close = difflib.get_close_matches(name, list(TABLES), n=1, cutoff=0.6)
            hint = "did you mean [%s]? " % close[0] if close else ""
            raise CampaignError("%s: [%s]: unknown table; %sallowed tables: %s"
                                % (source, name, hint, ", ".join("[%s]" % t for t in TABLES)))
    if not isinstance(raw.get("campaign"), dict):
        raise CampaignError("%s: [campaign] is missing: every spec needs a [campaign] table with "
                            "name and scenarios" % source)
    t = raw["campaign"]
    T = "campaign"
    c.keys(T, t, ("name", "description", "seed", "seeds", "days", "scenarios",
                  "clinic_visit_after_hours"))
    name = t.get("name")
    if not isinstance(name, str) or not name.strip():
        if "name" not in t:
            c.missing(T, "name", "must be a non-empty string")
        c.fail(T, "name", name, "must be a non-empty string")
    description = t.get("description", "")
    if not isinstance(description, str):
        c.fail(T, "description", description, "must be a string")
    seed = c.int(T, t, "seed", 0, scenario_module.MAX_SEED, 1)
    seeds = c.int(T, t, "seeds", 1, MAX_SEEDS, 1)
    days = c.int(T, t, "days", 1, scenario_module.MAX_DAYS, 0) or None
    clinic = t.get("clinic_visit_after_hours", 24)
    c.number(T, "clinic_visit_after_hours", clinic, 0, MAX_CLINIC_HOURS, False,
             " (a clinic visit this long after each fault ends; 0: never)")
    bases = _bases(c, t, source)

    vary = raw.get("vary", {})
    if not isinstance(vary, dict):
        c.fail("vary", "vary", vary, "must be a table of fields to vary")
    c.keys("vary", vary, tuple(VARY) + ("patient",))
    grid, draws, fixed = [], {}, {}
    for key, value in vary.items():
        if key == "patient":
            continue
        lo, hi, whole, what = VARY[key]
        note = " (%s)" % what
        extra = ("random",) if key == "motor_bias_pct" else ()
        if extra:
            note = note[:-1] + '; or "random": a seeded draw within the +-14.5 % accuracy class)'
        shape, v = c.varied("vary", key, value, lo, hi, whole, note, extra=extra)
        _place(key, shape, v, grid, draws, fixed)
    patient = vary.get("patient", {})
    if not isinstance(patient, dict):
        c.fail("vary", "patient", patient, "must be a table of patient-model parameters")
    names = sorted(k for k in PATIENT_PARAMS)
    c.keys("vary.patient", patient, names)
    p_grid, p_draws, p_fixed = [], {}, {}
    for key, value in patient.items():
        _default, lo, hi, _src = PATIENT_PARAMS[key]
        shape, v = c.varied("vary.patient", key, value, lo, hi, False,
                            " (the educational patient model: sim/patient.py)")
        _place(key, shape, v, p_grid, p_draws, p_fixed)

    _probe_patient(c, patient, p_grid, p_draws, p_fixed)
    faults = _faults(c, raw.get("faults", []), source)
    spec = Spec(source, name, description, seed, seeds, days, clinic, bases, grid, draws, fixed,
                p_grid, p_draws, p_fixed, faults)
    count = spec.variant_count()
    if count > MAX_VARIANTS:
        c.fail(T, "seeds", seeds, "the spec asks for %d runs (scenarios x grid x seeds); at "
               "most %d" % (count, MAX_VARIANTS))
    return spec


def _probe_patient(c, given, grid, draws, fixed):
    # Parameters fine one by one can still clash (half-life, clearance and volume all given):
    # build the model once with the first value of each.
    from sim.patient import PatientModel
    params = dict(fixed)
    params.update({k: v[0] for k, v in grid})
    params.update({k: v[0] for k, v in draws.items()})
    try:
        PatientModel(params)
    except ValueError as exc:
        key = sorted(given)[-1] if given else "patient"
        c.fail("vary.patient", key, given.get(key), str(exc))


def check_variants(spec, variants):
    """Build the first variant of each base scenario: a varied value its scenario cannot take
    is a spec error before anything runs (CampaignError naming the scenario)."""
    from sim.campaign.variant import scenario_of
    seen = set()
    for v in variants:
        if v["base"] in seen:
            continue
        seen.add(v["base"])
        try:
            scenario_of(v)
        except ScenarioError as exc:
            raise CampaignError("%s: [campaign] scenarios = %s: with this spec's [vary] and "
                                "[[faults]]: %s" % (spec.path, scenario_module.toml_value(
                                    v["base"]), exc)) from None


def _place(key, shape, value, grid, draws, fixed):
    if shape == "grid":
        grid.append((key, value))
    elif shape == "draw":
        draws[key] = value
    else:
        fixed[key] = value


def _bases(c, t, source):
    T = "campaign"
    allowed = ('must be a list of scenario names (scenarios/) or files (relative to the spec), '
               'or ["all"] for the whole library')
    value = t.get("scenarios")
    if value is None:
        c.missing(T, "scenarios", allowed)
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        c.fail(T, "scenarios", value, allowed)
    entries = []
    for entry in value:
        if entry == "all":
            entries.extend(scenario_module.available())
        else:
            entries.append(entry)
    here = os.path.dirname(os.path.abspath(source))
    bases = []
    seen = set()
    for entry in entries:
        beside = os.path.join(here, entry)
        try:
            path = beside if os.path.isfile(beside) else scenario_module.find(entry)
            config = scenario_module.load(path)
        except ScenarioError as exc:
            c.fail(T, "scenarios", entry, str(exc))
        if config["name"] in seen:
            c.fail(T, "scenarios", entry, "scenario %r is listed twice" % config["name"])
        seen.add(config["name"])
        with open(path, "rb") as f:
            raw = tomllib.load(f)
        bases.append({"name": config["name"], "path": path, "raw": raw, "config": config})
    return bases


def _faults(c, value, source):
    if not isinstance(value, list) or not all(isinstance(e, dict) for e in value):
        c.fail("faults", "faults", value, "must be an array of tables ([[faults]] entries, each "
               "with kind and rate_per_year)")
    out = []
    for number, t in enumerate(value, 1):
        T = "faults #%d" % number
        if "kind" not in t:
            c.missing(T, "kind", "must be one of %s" % ", ".join(FAULT_KINDS))
        kind = t["kind"]
        if kind not in FAULT_KINDS:
            c.fail(T, "kind", kind, "must be one of %s" % ", ".join(FAULT_KINDS))
        for key in ("day", "time"):
            if key in t:
                c.fail(T, key, t[key], "campaign faults are random: give rate_per_year (and "
                       "from_day, to_day for a window), not a day and time")
        if "rate_per_year" not in t:
            c.missing(T, "rate_per_year", "faults per patient-year, above 0, at most 8760")
        rate = c.varied(T, "rate_per_year", t["rate_per_year"], FAULT_RATE[0], FAULT_RATE[1],
                        False, " faults a year (drawn hour by hour, seeded)", lo_open=True)
        hours = ("fixed", None)
        if "duration_hours" in t:
            if kind in INSTANT_FAULTS:
                c.fail(T, "duration_hours", t["duration_hours"], "not a field of kind %s (it "
                       "happens at one instant); leave it out" % kind)
            hours = c.varied(T, "duration_hours", t["duration_hours"], FAULT_HOURS[0],
                             FAULT_HOURS[1], False, " hours (leave it out: to the end of the "
                             "run)", lo_open=True)
        options = {k: v for k, v in t.items()
                   if k not in ("kind", "rate_per_year", "duration_hours")}
        out.append({"number": number, "kind": kind, "rate": rate, "hours": hours,
                    "options": options})
    # The options (and the fixed parts) are checked by the scenario validator itself, on a
    # probe scenario whose [[faults]] are these entries in order, so "[faults #n]" is the same
    # entry in both files.
    probe = {"scenario": {"name": "probe", "days": 1},
             "drug": {"name": "baclofen", "concentration_ug_per_ml": 500},
             "therapy": {"mode": "continuous", "basal_ug_per_day": 100},
             "link": {"clinician": "telemetry"},
             "faults": [_probe_entry(f) for f in out]}
    try:
        scenario_module.validate(probe, source=source)
    except ScenarioError as exc:
        raise CampaignError(str(exc)) from None
    return out


def _probe_entry(fault):
    entry = {"kind": fault["kind"], "rate_per_year": _first(fault["rate"])}
    hours = _first(fault["hours"])
    if hours is not None:
        entry["duration_hours"] = hours
    entry.update(fault["options"])
    return entry


def _first(varied):
    shape, value = varied
    if shape == "grid":
        return value[0]
    if shape == "draw":
        return value[0]
    return value


# -------------------------------------------------------------------------------- expansion

def _digest(*parts):
    text = ":".join(str(p) for p in parts)
    return hashlib.sha256(text.encode("utf-8")).digest()


def _draw(spec_seed, base, point, seed_no, key, lo, hi, whole):
    rng = random.Random(_digest("draw", spec_seed, base, point, seed_no, key))
    if whole:
        return rng.randint(int(lo), int(hi))
    # Three decimals: a value that reads the same in a row, a JSON file and a TOML file.
    return round(rng.uniform(lo, hi), 3)


def expand(spec):
    """Every run of the spec: [variant dict], in variant-id order (base, grid point, seed).

    A variant is plain picklable data: {"id", "campaign", "base", "point", "seed_no", "seed",
    "days", "params", "patient", "faults", "raw", "clinic_hours", "fingerprint"}; "raw" is the
    scenario document to run (the base's TOML with the variant's changes), before the clinic
    visits (sim/campaign/variant.py adds them once the fault times are known)."""
    axes = [(("vary", k), vals) for k, vals in spec.grid]
    axes += [(("patient", k), vals) for k, vals in spec.patient_grid]
    for fault in spec.faults:
        for part in ("rate", "hours"):
            if fault[part][0] == "grid":
                axes.append((("fault", fault["number"], part), fault[part][1]))
    points = list(itertools.product(*[vals for _axis, vals in axes])) or [()]
    variants = []
    index = 0
    for base in spec.bases:
        for point_no, point in enumerate(points):
            chosen = dict(zip([axis for axis, _vals in axes], point))
            for seed_no in range(spec.seeds):
                variants.append(_variant(spec, base, index, point_no, seed_no, chosen))
                index += 1
    return variants


def _variant(spec, base, index, point_no, seed_no, chosen):
    name = base["name"]
    seed = int.from_bytes(_digest("seed", spec.seed, name, point_no, seed_no)[:4], "big")
    params = {}
    for key in VARY:
        if ("vary", key) in chosen:
            params[key] = chosen[("vary", key)]
        elif key in spec.draws:
            lo, hi = spec.draws[key]
            params[key] = _draw(spec.seed, name, point_no, seed_no, key, lo, hi, VARY[key][2])
        elif key in spec.fixed:
            params[key] = spec.fixed[key]
    patient = {}
    for key in sorted(PATIENT_PARAMS):
        if ("patient", key) in chosen:
            patient[key] = chosen[("patient", key)]
        elif key in spec.patient_draws:
            lo, hi = spec.patient_draws[key]
            patient[key] = _draw(spec.seed, name, point_no, seed_no, "patient." + key, lo, hi,
                                 False)
        elif key in spec.patient_fixed:
            patient[key] = spec.patient_fixed[key]
    faults = []
    for fault in spec.faults:
        values = {}
        for part in ("rate", "hours"):
            shape, v = fault[part]
            if shape == "grid":
                values[part] = chosen[("fault", fault["number"], part)]
            elif shape == "draw":
                values[part] = _draw(spec.seed, name, point_no, seed_no,
                                     "fault%d.%s" % (fault["number"], part), v[0], v[1], False)
            else:
                values[part] = v
        faults.append({"number": fault["number"], "kind": fault["kind"],
                       "rate_per_year": values["rate"], "duration_hours": values["hours"],
                       "options": dict(fault["options"])})
    raw, applied, fault_numbers = apply(base["raw"], seed, spec.days, params, faults)
    for fault in faults:
        fault["applied"] = fault["number"] in fault_numbers
    variant = {
        "id": "%06d" % index, "campaign": spec.name, "base": name, "point": point_no,
        "seed_no": seed_no, "seed": seed, "days": raw["scenario"]["days"],
        "params": applied, "patient": patient, "faults": faults, "raw": raw,
        "clinic_hours": spec.clinic_hours,
    }
    variant["fingerprint"] = fingerprint(variant)
    return variant


_CODE = {}


def code_version():
    """A hash of the code a run executes (firmware, hal, protocol, sim): a result from other
    code is not the same run, so a rerun after a change runs it again."""
    if "hash" not in _CODE:
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        h = hashlib.sha256()
        for package in ("firmware", "hal", "protocol", "sim"):
            for folder, dirs, files in sorted(os.walk(os.path.join(root, package))):
                dirs.sort()
                for name in sorted(files):
                    if name.endswith(".py"):
                        path = os.path.join(folder, name)
                        h.update(os.path.relpath(path, root).encode("utf-8"))
                        with open(path, "rb") as f:
                            h.update(f.read())
        _CODE["hash"] = h.hexdigest()[:16]
    return _CODE["hash"]


def fingerprint(variant):
    """A short hash of everything that decides a variant's run (resume checks it): the
    scenario document, seed, patient, clinic visits and the code version."""
    keep = {k: variant[k] for k in ("base", "seed", "days", "patient", "raw", "clinic_hours")}
    keep["code"] = code_version()
    text = json.dumps(keep, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def apply(base_raw, seed, days, params, faults):
    """The base scenario document with a variant's changes: (raw, params as applied, numbers
    of the spec's faults added).

    A parameter that does not apply to this base (a patient-bolus key without [patient_bolus],
    a link_noise fault without a telemetry [link]) is left out and shows as None."""
    raw = copy.deepcopy(base_raw)
    raw["scenario"]["seed"] = seed
    if days:
        raw["scenario"]["days"] = days
    applied = {}
    for key in VARY:
        if key not in params:
            continue
        value = params[key]
        if key in MODEL_KEYS:
            raw.setdefault("models", {})[key] = value
        elif key == "refill_every_days":
            refills = raw.get("refills") or {}
            refills["every_days"] = value
            refills.pop("start_day", None)
            raw["refills"] = refills
        elif key == "basal_ug_per_day":
            therapy = {"mode": "continuous", "basal_ug_per_day": value, "confirm": True}
            if "low_reservoir_alarm_ul" in raw["therapy"]:
                therapy["low_reservoir_alarm_ul"] = raw["therapy"]["low_reservoir_alarm_ul"]
            raw["therapy"] = therapy
        elif key in PATIENT_BOLUS_KEYS:
            if "patient_bolus" not in raw:
                applied[key] = None
                continue
            raw["patient_bolus"][PATIENT_BOLUS_KEYS[key]] = value
        applied[key] = value
    link = raw.get("link") or {}
    over_link = "telemetry" in (link.get("clinician"), link.get("patient"))
    added = []
    numbers = []
    for fault in faults:
        if fault["kind"] == "link_noise" and not over_link:
            continue
        entry = {"kind": fault["kind"], "rate_per_year": fault["rate_per_year"]}
        if fault["duration_hours"] is not None:
            entry["duration_hours"] = fault["duration_hours"]
        entry.update(fault["options"])
        added.append(entry)
        numbers.append(fault["number"])
    if added:
        raw["faults"] = list(raw.get("faults") or []) + added
    return raw, applied, numbers


def capacity_ul(config):
    return config["model"].get("reservoir_capacity_nl", MODEL["reservoir_capacity_nl"]) // 1000
