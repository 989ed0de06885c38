"""`vpump prog`'s units: the argument types that turn what a person types (mL, minutes, ug,
ug/day, ug/mL, an ISO date) into the pump's units (nL, ms), checked against the pump's own
ranges before anything is sent, and flex schedules from a file or the command line."""

import argparse
import calendar
import datetime
import decimal
import json
import os
import time

from firmware import limits as _limits
from tools.argtypes import whole_number

MS_PER_MIN = 60000
MS_PER_DAY = 86400000
NL_PER_ML = 1000000
U8, U16, U32 = 0xFF, 0xFFFF, 0xFFFFFFFF
# The pump's own ranges, in the units a person types (firmware/limits.py, firmware/pump.py): the
# command line checks these before anything is sent; the pump checks its limits (a hard limit, its
# reservoir's size) and its refusal is shown in the same units (tools/prog/render.py).
MAX_UG = _limits.MAX_UG
LARGEST_RESERVOIR_ML = 40           # 20 or 40 mL reservoirs (docs/clinical.md)
CONCENTRATIONS = _limits.BACLOFEN["concentrations_ug_per_ml"]


class ProgUsage(Exception):
    """Bad input to a prog command (exit 2); the message names the argument and what is allowed."""


# ------------------------------------------------------------------------------ argument types

whole_arg = whole_number


def _scaled(scale, lo, hi, unit, places):
    # "18.5" mL -> 18500000 nL: decimal, exact, at most `places` decimals.
    def parse(text):
        try:
            number = decimal.Decimal(text.strip())
        except decimal.InvalidOperation:
            number = None
        if number is not None and number.is_finite() and \
                number.normalize().as_tuple().exponent >= -places:
            scaled = number * scale
            if scaled == scaled.to_integral_value() and lo <= scaled <= hi:
                return int(scaled)
        raise argparse.ArgumentTypeError(
            "got %s, must be a number of %s from %s to %s (at most %d decimals)"
            % (text, unit, _plain_number(decimal.Decimal(lo) / scale),
               _plain_number(decimal.Decimal(hi) / scale), places))
    return parse


def _plain_number(number):
    return format(number.normalize(), "f")


ml_arg = _scaled(NL_PER_ML, 0, LARGEST_RESERVOIR_ML * NL_PER_ML, "mL", 3)


def minutes_arg(lo, hi):
    return _scaled(MS_PER_MIN, lo * MS_PER_MIN, hi * MS_PER_MIN, "minutes", 3)


def concentration_arg(text):
    try:
        value = int(text)
    except ValueError:
        value = None
    if value not in CONCENTRATIONS:
        raise argparse.ArgumentTypeError(
            "got %s, must be one of %s ug/mL (the drug library's concentrations)"
            % (text, ", ".join(str(c) for c in CONCENTRATIONS)))
    return value


def wall_ms_arg(text):
    # "now", or an ISO date-time; without a zone it is UTC (the pump's clock is UTC).
    if text == "now":
        return int(time.time() * 1000)
    try:
        when = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            "got %s, must be now or an ISO date and time such as 2026-01-05T08:00 (UTC unless "
            "it carries a zone, e.g. +01:00)" % text) from None
    if when.tzinfo is not None:
        when = when.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    ms = calendar.timegm(when.timetuple()) * 1000 + when.microsecond // 1000
    if ms < 0:
        raise argparse.ArgumentTypeError("got %s, must not be before 1970-01-01 (UTC)" % text)
    return ms


# ------------------------------------------------------------------------------ flex schedules

def load_flex(spec):
    """A flex schedule: 7 lists (Monday first) of [start_minute, ug_per_day].

    spec is a .toml or .json file with [[flex]] tables as in a scenario (days = ["mon", ...]
    or ["all"], steps = [["00:00", 190], ["06:00", 170]]), or inline steps for every day:
    "00:00=190,06:00=170"."""
    from sim import scenario as S
    if os.path.isfile(spec):
        return S.flex_week(spec, _read_flex_file(spec))
    if "=" not in spec:
        raise ProgUsage("program-flex %s: no such file, and not inline steps such as "
                        "00:00=190,06:00=170 (every day)" % spec)
    steps = []
    for part in spec.split(","):
        time_text, _, rate = part.strip().partition("=")
        try:
            rate = int(rate)
        except ValueError:
            raise ProgUsage("program-flex %s: step %s: the rate after = must be a whole number "
                            "of ug/day" % (spec, part.strip())) from None
        steps.append([time_text.strip(), rate])
    return S.flex_week(spec, [{"days": ["all"], "steps": steps}], label="inline flex")


def _read_flex_file(path):
    from sim import scenario as S
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise ProgUsage("program-flex %s: cannot read: %s" % (path, exc.strerror or exc)) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ProgUsage("program-flex %s: not UTF-8 text" % path) from None
    if path.endswith(".json"):
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise ProgUsage("program-flex %s: not valid JSON: %s" % (path, exc)) from None
    else:
        if S.tomllib is None:
            raise ProgUsage("program-flex %s: reading TOML needs Python 3.11+ (or tomli); "
                            "give a .json file" % path)
        try:
            doc = S.tomllib.loads(text)
        except S.tomllib.TOMLDecodeError as exc:
            raise ProgUsage("program-flex %s: TOML syntax error: %s" % (path, exc)) from None
    if isinstance(doc, list):
        doc = {"flex": doc}
    if not isinstance(doc, dict) or set(doc) != {"flex"}:
        keys = ", ".join(sorted(doc)) if isinstance(doc, dict) else type(doc).__name__
        raise ProgUsage("program-flex %s: must hold only flex = a list of {days, steps} tables "
                        "([[flex]] in TOML); found: %s" % (path, keys or "nothing"))
    return doc["flex"]
