"""`vpump prog`: the handheld programmer on the command line (protocol/client.py underneath).

    vpump prog URL COMMAND [ARGS] [--role clinician|patient] [--key-file F] [--json] [--spy]
    vpump prog URL                  an interactive programmer shell

URL is what `vpump serve` printed on its `link:` line (a pty path, socket://HOST:PORT) or any
serial device / pyserial URL.  Units on the command line are a person's (mL, minutes, ug,
ug/day, an ISO date); they are converted to the pump's (nL, ms) here.  Exit status: 0 done,
1 the link failed or the pump did not answer, 2 bad input or a request the pump refused (the
message says why in words, with the field and its allowed range).  docs/programmer.md is the
user's guide.
"""

import argparse
import calendar
import cmd
import datetime
import decimal
import json
import os
import shlex
import sys
import time

from protocol.client_errors import KeyFileError, LinkFailure, ProgrammerError, Refused
from sim.errors import SimError

MS_PER_MIN = 60000
NL_PER_ML = 1000000
U8, U16, U32 = 0xFF, 0xFFFF, 0xFFFFFFFF
HISTORY_FILE = os.path.join(os.path.expanduser("~"), ".vpump_history")


class ProgUsage(Exception):
    """Bad input to a prog command (exit 2); the message names the argument and what is allowed."""


# ------------------------------------------------------------------------------ argument types

def _whole(lo, hi, unit=""):
    unit = " " + unit if unit else ""

    def parse(text):
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or not lo <= value <= hi:
            raise argparse.ArgumentTypeError(
                "got %s, must be a whole number%s from %d to %d" % (text, unit, lo, hi))
        return value
    return parse


def _scaled(scale, lo, hi, unit, places):
    # "18.5" mL -> 18500000 nL: decimal, exact, at most `places` decimals.
    def parse(text):
        try:
            number = decimal.Decimal(text.strip())
        except decimal.InvalidOperation:
            number = None
        if number is not None and number.is_finite():
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


_ml = _scaled(NL_PER_ML, 0, U32, "mL", 6)
_minutes_ms = _scaled(MS_PER_MIN, 0, U32, "minutes", 3)


def _wall_ms(text):
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


def iso(wall_ms):
    """Pump wall-clock ms -> '2026-01-05 08:00:00 UTC'."""
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(wall_ms // 1000))
    except (OverflowError, OSError, ValueError):
        return "%d ms after 1970 (beyond the calendar)" % wall_ms


def ml(nl):
    return "%.3f mL" % (nl / NL_PER_ML)


def _minutes_text(ms):
    minutes = ms / MS_PER_MIN
    return ("%d" % minutes if minutes == int(minutes) else "%.3g" % minutes) + " min"


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


# ------------------------------------------------------------------------------ the commands

class Action:
    """One programmer command: its arguments, what it asks the pump, and how it reads back."""

    def __init__(self, name, help, setup=None, session=True, patient=False):
        self.name = name
        self.help = help
        self.setup = setup
        self.session = session          # needs an authenticated session (all but identify)
        self.patient = patient          # the patient role may use it

    def run(self, prog, args):
        return getattr(_Handlers, self.name.replace("-", "_"))(prog, args)

    def text(self, result, args):
        return getattr(_Text, self.name.replace("-", "_"))(result, args)


def _confirm(p):
    p.add_argument("--confirm", action="store_true",
                   help="accept a value over a soft limit (the pump refuses it otherwise)")


def _setup_log(p):
    p.add_argument("--from", dest="start", type=_whole(1, U32), default=1, metavar="N",
                   help="first entry's sequence number (default 1)")
    p.add_argument("--count", type=_whole(1, 100000), metavar="N",
                   help="at most N entries (default: all, read 32 at a time)")


_LIMIT_OPTIONS = (
    ("--daily-soft", "daily_dose_soft_ug", "ug/day", "daily dose soft limit"),
    ("--daily-hard", "daily_dose_hard_ug", "ug/day", "daily dose hard limit"),
    ("--bolus-soft", "bolus_soft_ug", "ug", "bolus soft limit"),
    ("--bolus-hard", "bolus_hard_ug", "ug", "bolus hard limit"),
    ("--rate-soft", "rate_increase_soft_pct", "%", "rate increase per 24 h, soft limit"),
    ("--rate-hard", "rate_increase_hard_pct", "%", "rate increase per 24 h, hard limit"),
)


def _setup_set_limits(p):
    for option, dest, unit, what in _LIMIT_OPTIONS:
        p.add_argument(option, dest=dest, type=_whole(0, U32, unit), metavar="N",
                       help="%s (%s)" % (what, unit))


def _setup_program(p):
    p.add_argument("ug_per_day", metavar="UG_PER_DAY", type=_whole(0, U32, "ug/day"),
                   help="continuous daily dose, ug/day")
    _confirm(p)


def _setup_program_flex(p):
    p.add_argument("spec", metavar="FILE|STEPS",
                   help="a .toml or .json file of [[flex]] tables (days, steps), or steps for "
                        "every day inline: 00:00=190,06:00=170")
    _confirm(p)


def _setup_bolus(p):
    p.add_argument("dose_ug", metavar="UG", type=_whole(0, U32, "ug"), help="dose, ug")
    p.add_argument("--minutes", dest="duration_ms", type=_minutes_ms, required=True,
                   metavar="M", help="given over M minutes")
    _confirm(p)


def _setup_patient_bolus_settings(p):
    p.add_argument("--dose", dest="dose_ug", type=_whole(0, U32, "ug"), metavar="UG",
                   help="dose per press, ug")
    p.add_argument("--minutes", dest="duration_ms", type=_minutes_ms, metavar="M",
                   help="each bolus given over M minutes")
    p.add_argument("--lockout-min", dest="lockout_ms", type=_minutes_ms, metavar="M",
                   help="no other bolus for M minutes after one")
    p.add_argument("--max-per-24h", dest="max_per_24h", type=_whole(0, U8), metavar="N",
                   help="at most N boluses in any 24 hours")
    p.add_argument("--disable", action="store_true", help="turn patient bolus off")
    _confirm(p)


def _setup_refill(p):
    p.add_argument("volume_nl", metavar="ML", type=_ml, help="volume filled, mL")
    p.add_argument("--concentration", dest="concentration", type=_whole(0, U32, "ug/mL"),
                   required=True, metavar="UG_PER_ML", help="the drug's concentration, ug/mL")
    p.add_argument("--bridge", action="store_true",
                   help="give a bridge bolus: the old drug still in the tubing goes at the old "
                        "rate first")


def _setup_set_clock(p):
    p.add_argument("wall_ms", metavar="ISO|now", nargs="?", default="now", type=_wall_ms,
                   help="the time to set: now (the default) or an ISO date and time, UTC "
                        "unless it names a zone")


def _setup_silence(p):
    p.add_argument("minutes", metavar="MINUTES", type=_whole(0, U16, "minutes"),
                   help="silence non-critical alarms for MINUTES")


def _setup_low_reservoir_alarm(p):
    p.add_argument("volume_nl", metavar="ML", type=_ml, help="alarm when the reservoir is "
                                                               "down to ML mL")


ACTIONS = [
    Action("identify", "model, serial and firmware of the pump (no key needed)", session=False,
           patient=True),
    Action("status", "interrogate: therapy, reservoir, battery, alarms", patient=True),
    Action("log", "read the pump's event log", _setup_log),
    Action("limits", "show the drug-library limits in effect"),
    Action("set-limits", "change drug-library limits (within the library's hard limits)",
           _setup_set_limits),
    Action("program", "program a continuous daily dose", _setup_program),
    Action("program-flex", "program a flex schedule (rates by time of day, per weekday)",
           _setup_program_flex),
    Action("bolus", "give a clinician bolus", _setup_bolus),
    Action("patient-bolus", "give the patient's bolus (as the patient's remote does)",
           patient=True),
    Action("patient-bolus-settings", "set up or disable the patient bolus",
           _setup_patient_bolus_settings),
    Action("refill", "record a refill (volume and concentration)", _setup_refill),
    Action("stop", "stop therapy"),
    Action("start", "start therapy"),
    Action("set-clock", "set the pump's clock", _setup_set_clock),
    Action("silence", "silence non-critical alarms for a while", _setup_silence, patient=True),
    Action("clear", "clear a critical alarm (after its cause is fixed)"),
    Action("alarm-test", "sound the two alarm tones"),
    Action("low-reservoir-alarm", "set the low-reservoir alarm volume",
           _setup_low_reservoir_alarm),
]
ACTION_NAMES = [a.name for a in ACTIONS]
_BY_NAME = {a.name: a for a in ACTIONS}


class _Handlers:
    # name -> what the programmer is asked; returns a result dict (JSON-able).

    @staticmethod
    def identify(prog, args):
        return prog.identify()

    @staticmethod
    def status(prog, args):
        return status_fields(prog.interrogate())

    @staticmethod
    def log(prog, args):
        from sim.events import decode
        entries = prog.read_all_log(args.start, limit=args.count)
        decoded = []
        for e in entries:
            args_ = list(e["args"])
            event = decode(e["seq"], e["t_ms"], e["code"], _trim_args(e["code"], args_))
            event.pop("src", None)
            decoded.append(event)
        return {"entries": decoded}

    @staticmethod
    def limits(prog, args):
        return _limits_only(prog.read_limits())

    @staticmethod
    def set_limits(prog, args):
        given = {dest: getattr(args, dest) for _, dest, _, _ in _LIMIT_OPTIONS
                 if getattr(args, dest) is not None}
        if not given:
            raise ProgUsage("set-limits: give at least one of %s"
                            % ", ".join(o[0] for o in _LIMIT_OPTIONS))
        result = prog.set_limits(**given)
        return {"old": _limits_only(result["old"]), "new": _limits_only(result["new"])}

    @staticmethod
    def program(prog, args):
        return prog.program_continuous(args.ug_per_day, confirm=args.confirm)

    @staticmethod
    def program_flex(prog, args):
        steps = args.steps if getattr(args, "steps", None) else load_flex(args.spec)
        result = dict(prog.program_flex(steps, confirm=args.confirm))
        result["steps"] = steps
        return result

    @staticmethod
    def bolus(prog, args):
        return prog.clinician_bolus(args.dose_ug, args.duration_ms, confirm=args.confirm)

    @staticmethod
    def patient_bolus(prog, args):
        return prog.patient_bolus()

    @staticmethod
    def patient_bolus_settings(prog, args):
        values = (args.dose_ug, args.duration_ms, args.lockout_ms, args.max_per_24h)
        if args.disable:
            if any(v is not None for v in values) or args.confirm:
                raise ProgUsage("patient-bolus-settings: --disable takes no other option")
            result = dict(prog.set_patient_bolus(False))
            result["enabled"] = False
            return result
        missing = [name for name, v in zip(("--dose", "--minutes", "--lockout-min",
                                            "--max-per-24h"), values) if v is None]
        if missing:
            raise ProgUsage("patient-bolus-settings: missing %s: give --dose, --minutes, "
                            "--lockout-min and --max-per-24h, or --disable" % ", ".join(missing))
        result = dict(prog.set_patient_bolus(True, args.dose_ug, args.duration_ms,
                                             args.lockout_ms, args.max_per_24h,
                                             confirm=args.confirm))
        result.update(enabled=True, dose_ug=args.dose_ug, duration_ms=args.duration_ms,
                      lockout_ms=args.lockout_ms, max_per_24h=args.max_per_24h)
        return result

    @staticmethod
    def refill(prog, args):
        result = dict(prog.refill(args.volume_nl, args.concentration, bridge=args.bridge))
        result.update(volume_nl=args.volume_nl, concentration_ug_per_ml=args.concentration,
                      bridge=args.bridge)
        return result

    @staticmethod
    def stop(prog, args):
        return prog.stop()

    @staticmethod
    def start(prog, args):
        return prog.start()

    @staticmethod
    def set_clock(prog, args):
        result = dict(prog.set_clock(args.wall_ms))
        result["new_wall_ms"] = args.wall_ms
        return result

    @staticmethod
    def silence(prog, args):
        result = dict(prog.silence_alarms(args.minutes))
        result["minutes"] = args.minutes
        return result

    @staticmethod
    def clear(prog, args):
        return prog.clear_alarm()

    @staticmethod
    def alarm_test(prog, args):
        return prog.alarm_test()

    @staticmethod
    def low_reservoir_alarm(prog, args):
        result = dict(prog.set_low_reservoir_alarm(args.volume_nl))
        result["new_volume_nl"] = args.volume_nl
        return result


def _trim_args(code, args):
    # READ_LOG pads every entry to 4 args; the event's own arg names say how many it has.
    from firmware import eventlog
    names = eventlog.EVENTS.get(code, (None, args))[1]
    return tuple(args[:len(names)]) if len(names) <= len(args) else tuple(args)


def _limits_only(fields):
    from firmware import limits
    return {key: fields[key] for key in limits.LIMIT_KEYS if key in fields}


def status_fields(fields):
    """Interrogate fields, with alarm names and the mode in words added."""
    from firmware import alarms
    out = dict(fields)
    if "alarms" not in out or not isinstance(out["alarms"], list):
        bits = out.get("alarm_bits", out.get("alarms", 0)) or 0
        out["alarms"] = [alarms.NAMES[i] for i in range(len(alarms.NAMES)) if bits >> i & 1]
    mode = out.get("mode")
    if isinstance(mode, int):
        out["mode"] = {0: "none", 1: "continuous", 2: "flex"}.get(mode, mode)
    return out


def _hours(h):
    if h is None or h < 0:
        return "never at this use"
    if h < 48:
        return "in %d h" % h
    return "in %d days" % (h // 24)


class _Text:
    # name -> human-readable lines for a result.

    @staticmethod
    def identify(r, args):
        return ["%s, serial %s, firmware %s, protocol %s"
                % (r.get("model"), r.get("serial"), r.get("firmware_version"),
                   r.get("protocol_version"))]

    @staticmethod
    def status(r, args):
        mode = r.get("mode")
        therapy = "%s (therapy %s)" % (r.get("therapy"), "on" if r.get("therapy_on") else "off")
        if mode in ("continuous", "flex"):
            therapy += ", %s, %d ug/day now" % (mode, r.get("basal_ug_per_day", 0))
        else:
            therapy += ", no program"
        lockout = r.get("lockout_until_ms") or 0
        replacement = r.get("days_to_replacement", -1)
        return [
            "therapy     %s" % therapy,
            "reservoir   %s of %d ug/mL (%s); alarm at %s, %s; empty %s" % (
                ml(r.get("reservoir_nl", 0)), r.get("concentration_ug_per_ml", 0),
                r.get("reservoir"), ml(r.get("low_reservoir_alarm_nl", 0)),
                _hours(r.get("hours_to_alarm")), _hours(r.get("hours_to_empty"))),
            "battery     %s, %d mV, %.1f mAh left; replacement %s" % (
                r.get("battery"), r.get("battery_mv", 0), r.get("battery_remaining_nah", 0) / 1e6,
                "due" if replacement == 0 else "unknown" if replacement is None or replacement < 0
                else "in %d days" % replacement),
            "alarms      %s" % (", ".join(r.get("alarms") or []) or "none"),
            "lockout     %s" % ("until " + iso(lockout) if lockout else "none"),
            "delivered   %s ug since implant" % "{:,}".format(r.get("delivered_ug", 0)),
            "clock       %s (boot %d)" % (iso(r.get("wall_ms", 0)), r.get("boot_count", 0)),
        ]

    @staticmethod
    def log(r, args):
        lines = []
        for e in r["entries"]:
            rest = " ".join("%s=%s" % (k, v) for k, v in e.items()
                            if k not in ("seq", "t_ms", "time", "event"))
            lines.append("%6d  %s  %-18s %s" % (e["seq"], e["time"][:19].replace("T", " "),
                                                e["event"], rest))
        return lines or ["(no entries)"]

    @staticmethod
    def limits(r, args):
        return ["%-24s %s" % (key, value) for key, value in r.items()]

    @staticmethod
    def set_limits(r, args):
        lines = []
        for key in r["new"]:
            old, new = r["old"].get(key), r["new"][key]
            mark = "   (changed)" if old != new else ""
            lines.append(("%-24s %8s -> %-8s%s" % (key, old, new, mark)).rstrip())
        return lines

    @staticmethod
    def program(r, args):
        return ["continuous: daily dose %d -> %d ug/day" % (r["old_daily_ug"], r["new_daily_ug"])]

    @staticmethod
    def program_flex(r, args):
        return ["flex: average daily dose %d -> %d ug/day" % (r["old_daily_ug"],
                                                                r["new_daily_ug"])]

    @staticmethod
    def bolus(r, args):
        return ["bolus started: %d ug over %s" % (r["dose_ug"], _minutes_text(r["duration_ms"]))]

    @staticmethod
    def patient_bolus(r, args):
        until = r.get("lockout_until_ms") or 0
        return ["patient bolus started: %d ug; next one possible %s"
                % (r["dose_ug"], "from " + iso(until) if until else "now")]

    @staticmethod
    def patient_bolus_settings(r, args):
        old = "enabled, %d ug" % r["old_dose_ug"] if r.get("old_enabled") else "disabled"
        if not r.get("enabled"):
            return ["patient bolus: %s -> disabled" % old]
        return ["patient bolus: %s -> enabled, %d ug over %s, lockout %s, at most %d in 24 h"
                % (old, r["dose_ug"], _minutes_text(r["duration_ms"]),
                   _minutes_text(r["lockout_ms"]), r["max_per_24h"])]

    @staticmethod
    def refill(r, args):
        return ["refill: reservoir estimate %s -> %s at %d ug/mL%s"
                % (ml(r["old_estimate_nl"]), ml(r["new_estimate_nl"]),
                   r["concentration_ug_per_ml"], "; bridge bolus started" if r["bridge"] else "")]

    @staticmethod
    def stop(r, args):
        return ["therapy stopped"]

    @staticmethod
    def start(r, args):
        return ["therapy started"]

    @staticmethod
    def set_clock(r, args):
        return ["clock: %s -> %s" % (iso(r["old_wall_ms"]), iso(r["new_wall_ms"]))]

    @staticmethod
    def silence(r, args):
        return ["silenced %d alarm(s) for %d min" % (r.get("silenced", 0), r["minutes"])]

    @staticmethod
    def clear(r, args):
        return ["clear: accepted"]

    @staticmethod
    def alarm_test(r, args):
        return ["alarm test: the two-tone, then the single tone"]

    @staticmethod
    def low_reservoir_alarm(r, args):
        return ["low-reservoir alarm: %s -> %s" % (ml(r["old_volume_nl"]),
                                                    ml(r["new_volume_nl"]))]


def _hint(exc, role):
    # One more clause for refusals a person can act on.
    name = exc.reason_name
    if name == "soft_limit_needs_confirm":
        return "this is over a soft limit: check it, then repeat the command with --confirm"
    if name == "over_hard_limit":
        return "a hard limit is never exceeded, not even with --confirm"
    if name == "bad_mac" and exc.command == "SESSION_AUTH":
        return "wrong key for the %s role? check --key-file and --role" % role
    if name == "auth_locked_out":
        minutes = (exc.hi + MS_PER_MIN - 1) // MS_PER_MIN if exc.hi else 10
        return "authentication is locked for about %d more minute(s) of pump time" % minutes
    if name == "role_not_allowed":
        return "the patient role may use only %s" % ", ".join(
            a.name for a in ACTIONS if a.patient)
    return None


# ------------------------------------------------------------------------------ parsers

def _add_common(parser, suppress):
    # The same options before and after COMMAND: the action parsers' copies default to
    # SUPPRESS so they do not overwrite a value given before the command.
    def default(value):
        return argparse.SUPPRESS if suppress else value
    group = parser.add_argument_group("programmer options")
    group.add_argument("--role", choices=("clinician", "patient"), default=default("clinician"),
                       help="whose key to use: clinician (every command, the default) or "
                            "patient (status, patient-bolus, silence)")
    group.add_argument("--key-file", metavar="FILE", default=default(None),
                       help="the key file `vpump serve` wrote (its `keys:` line); needed for "
                            "every command but identify")
    group.add_argument("--json", action="store_true", default=default(False),
                       help="machine-readable output: one JSON object per command")
    group.add_argument("--spy", action="store_true", default=default(False),
                       help="print every frame sent and received, decoded, on stderr")
    group.add_argument("--timeout", type=_timeout, default=default(1.0), metavar="S",
                       help="seconds to wait for each answer before resending (default 1; "
                            "3 resends, then a link failure)")


def _timeout(text):
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not 0.01 <= value <= 600:
        raise argparse.ArgumentTypeError("got %s, must be a number of seconds from 0.01 to 600"
                                         % text)
    return value


def _add_actions(subparsers, suppress_common):
    # suppress_common None: the shell's parsers (no programmer options, the command's own name
    # as its prog).
    for action in ACTIONS:
        extra = {"prog": action.name} if suppress_common is None else {}
        p = subparsers.add_parser(action.name, help=action.help,
                                  description=action.help[0].upper() + action.help[1:] + ".",
                                  **extra)
        if action.setup is not None:
            action.setup(p)
        if suppress_common is not None:
            _add_common(p, suppress_common)


def add_parser(commands):
    """Add `prog` to the vpump command parser (tools/cli.py)."""
    prog = commands.add_parser(
        "prog", help="a handheld programmer: talk to a pump that `vpump serve` runs",
        description="Talk to a pump over its link: URL is the `link:` line `vpump serve` "
                    "printed (a pty path, socket://HOST:PORT) or a serial device.  With a "
                    "COMMAND, run it and exit; without one, an interactive programmer shell.  "
                    "Exit status: 0 done, 1 link failure or no answer, 2 bad input or a request "
                    "the pump refused.",
        epilog="Units: mL, minutes, ug, ug/day, ug/mL; times in UTC.  See docs/programmer.md.")
    prog.add_argument("url", metavar="URL", help="the pump's link: /dev/pts/N, socket://HOST:PORT, "
                                                  "a serial port or pyserial URL")
    _add_common(prog, False)
    actions = prog.add_subparsers(dest="action", metavar="COMMAND", parser_class=type(prog),
                                  title="commands (none: the interactive shell)")
    actions.required = False
    _add_actions(actions, True)
    return prog


class _ShellParserError(Exception):
    pass


class _ShellParser(argparse.ArgumentParser):
    # Errors become exceptions (the shell carries on); --help prints and raises SystemExit(0).
    def error(self, message):
        raise _ShellParserError("%s: %s" % (self.prog, message))


def _shell_parsers():
    root = _ShellParser(prog="", add_help=False)
    subs = root.add_subparsers(dest="action", parser_class=_ShellParser)
    _add_actions(subs, None)
    return subs.choices


# ------------------------------------------------------------------------------ running

class _Session:
    """Builds the Programmer from the command line's options (reading the key file first)."""

    def __init__(self, args, stderr):
        self.args = args
        self.stderr = stderr
        self.key = None
        if args.key_file:
            from protocol.client import load_key_file
            self.key = load_key_file(args.key_file, args.role)

    def open(self):
        from protocol.client import Programmer
        spy = self._spy if self.args.spy else None
        return Programmer(self.args.url, role=self.args.role, key=self.key,
                          timeout_s=self.args.timeout, spy=spy)

    def _spy(self, direction, text):
        self.stderr.write("spy %s %s\n" % (direction, text))
        self.stderr.flush()


def _prepare(action, args):
    # Checks that need no pump, done before the link is opened.
    if action.session and not args.key_file:
        raise KeyFileError("%s needs an authenticated session: give --key-file FILE (the key "
                           "file `vpump serve` printed as `keys: FILE`)" % action.name)
    if action.name == "program-flex":
        args.steps = load_flex(args.spec)


def _error_line(action_name, exc, role):
    text = str(exc)
    if isinstance(exc, Refused):
        text = "refused: " + text
        hint = _hint(exc, role)
        if hint:
            text += "; " + hint
    return "vpump prog: %s: %s" % (action_name, text)


def _error_json(action_name, exc):
    if isinstance(exc, Refused):
        kind = "refused"
    elif isinstance(exc, LinkFailure):
        kind = "link_failure"
    elif isinstance(exc, KeyFileError):
        kind = "key_file"
    else:
        kind = "usage"          # ProgUsage, a bad flex file, a value that does not fit
    error = {"kind": kind, "message": str(exc)}
    if isinstance(exc, Refused):
        error.update(exc.as_dict())
    return {"command": action_name, "ok": False, "error": error}


def exit_status(exc):
    """1 for a link failure, 2 for a refusal or bad input."""
    return 1 if isinstance(exc, LinkFailure) else 2


def _jsonable(value):
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).hex()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def run_action(prog, action, args):
    """Run one action on an open Programmer: its result dict (ProgrammerError / ProgUsage)."""
    # A patient asking for a clinician command is not stopped here: the pump decides
    # (role_not_allowed), as it must for any programmer.
    return action.run(prog, args)


def run(args, stdout, stderr, stdin=None):
    """`vpump prog`: one command, or the shell when none is given.  Returns the exit status."""
    if args.action is None:
        return _run_shell(args, stdout, stderr, stdin or sys.stdin)
    action = _BY_NAME[args.action]
    try:
        _prepare(action, args)
        session = _Session(args, stderr)
        with session.open() as prog:
            result = run_action(prog, action, args)
    except (ProgrammerError, ProgUsage, SimError) as exc:
        if args.json:
            stdout.write(json.dumps(_error_json(action.name, exc)) + "\n")
        stderr.write(_error_line(action.name, exc, args.role) + "\n")
        return exit_status(exc)
    if args.json:
        stdout.write(json.dumps({"command": action.name, "ok": True,
                                 "result": _jsonable(result)}) + "\n")
    else:
        stdout.write("\n".join(action.text(result, args)) + "\n")
    return 0


# ------------------------------------------------------------------------------ the shell

def status_line(fields):
    """'[infusing | reservoir 18.500 mL (reservoir_ok) | alarms: none]'."""
    alarms = ", ".join(fields.get("alarms") or []) or "none"
    return "[%s | reservoir %s (%s) | alarms: %s]" % (
        fields.get("therapy"), ml(fields.get("reservoir_nl", 0)), fields.get("reservoir"), alarms)


class Shell(cmd.Cmd):
    """The interactive programmer: every `vpump prog` command, one per line."""

    identchars = cmd.Cmd.identchars + "-"
    doc_header = "commands (help COMMAND for its options)"

    def __init__(self, prog, args, stdin, stdout, stderr, interactive):
        cmd.Cmd.__init__(self, stdin=stdin, stdout=stdout)
        self.prog = prog
        self.args = args
        self.stderr = stderr
        self.interactive = interactive
        self.use_rawinput = interactive
        self.prompt = "vpump> " if interactive else ""
        self.parsers = _shell_parsers()
        self.failures = 0

    # -- cmd.Cmd plumbing

    def emptyline(self):
        return False

    def precmd(self, line):
        if not self.interactive:
            self.stdout.write("vpump> %s\n" % line.rstrip("\n"))
        return line

    # Completions end with a space, as a finished word does (readline adds none itself).

    def completenames(self, text, *ignored):
        names = ACTION_NAMES + ["help", "quit", "exit"]
        return [n + " " for n in names if n.startswith(text)]

    def completedefault(self, text, line, begidx, endidx):
        name = line.split()[0] if line.split() else ""
        parser = self.parsers.get(name)
        if parser is None:
            return []
        options = [o for a in parser._actions for o in a.option_strings]
        return [o + " " for o in options if o.startswith(text)]

    def complete_help(self, text, *ignored):
        return [n + " " for n in ACTION_NAMES if n.startswith(text)]

    def do_help(self, arg):
        """help [COMMAND]: the commands, or one command's options."""
        arg = arg.strip()
        if arg in self.parsers:
            self.stdout.write(self.parsers[arg].format_help())
            return False
        if arg:
            self.stdout.write("no command %s; commands: %s\n" % (arg, ", ".join(ACTION_NAMES)))
            return False
        width = max(len(n) for n in ACTION_NAMES)
        self.stdout.write("commands (help COMMAND for its options):\n")
        for action in ACTIONS:
            self.stdout.write("  %-*s  %s\n" % (width, action.name, action.help))
        self.stdout.write("  %-*s  %s\n" % (width, "quit", "leave (also exit, or Ctrl-D)"))
        return False

    def do_quit(self, arg):
        """quit: leave the programmer."""
        return True

    do_exit = do_quit

    def do_EOF(self, arg):
        if self.interactive:
            self.stdout.write("\n")
        return True

    def default(self, line):
        try:
            words = shlex.split(line)
        except ValueError as exc:
            self._error("vpump prog: cannot read %r: %s" % (line, exc))
            self.failures += 1
            return False
        name = words[0]
        parser = self.parsers.get(name)
        if parser is None:
            import difflib
            close = difflib.get_close_matches(name, ACTION_NAMES, n=1)
            self._error("vpump prog: unknown command %s;%s type help for the list"
                        % (name, " did you mean %s?" % close[0] if close else ""))
            self.failures += 1
            return False
        try:
            args = parser.parse_args(words[1:])
        except _ShellParserError as exc:
            self._error("vpump prog: %s" % str(exc).strip())
            self.failures += 1
            return False
        except SystemExit:          # --help printed its text
            return False
        for key in ("role", "key_file", "json", "spy", "timeout", "url"):
            setattr(args, key, getattr(self.args, key))
        self._run(_BY_NAME[name], args)
        return False

    def _run(self, action, args):
        try:
            _prepare(action, args)
            result = run_action(self.prog, action, args)
        except (ProgrammerError, ProgUsage, SimError) as exc:
            self.failures += 1
            if self.args.json:
                self.stdout.write(json.dumps(_error_json(action.name, exc)) + "\n")
            self._error(_error_line(action.name, exc, self.args.role))
            if isinstance(exc, LinkFailure):
                return
        else:
            if self.args.json:
                self.stdout.write(json.dumps({"command": action.name, "ok": True,
                                              "result": _jsonable(result)}) + "\n")
            else:
                self.stdout.write("\n".join(action.text(result, args)) + "\n")
        self._status_line()

    def _error(self, text):
        # Errors go to stderr; stdout first, so a terminal shows them in order.
        self.stdout.flush()
        self.stderr.write(text + "\n")
        self.stderr.flush()

    def _status_line(self):
        if not self.prog.key or self.args.json:
            return
        try:
            fields = status_fields(self.prog.interrogate())
        except ProgrammerError as exc:
            self.stdout.write("[status unavailable: %s]\n" % exc)
            return
        self.stdout.write(status_line(fields) + "\n")

    def postcmd(self, stop, line):
        self.stdout.flush()
        return stop


def _readline_setup(interactive):
    # readline gives line editing, history and tab completion on a terminal.
    if not interactive:
        return None
    try:
        import readline
    except ImportError:
        return None
    try:
        readline.read_history_file(HISTORY_FILE)
    except OSError:
        pass
    readline.set_history_length(1000)
    # Command names and options contain dashes: complete them as one word.
    readline.set_completer_delims(readline.get_completer_delims().replace("-", ""))
    return readline


def _run_shell(args, stdout, stderr, stdin):
    interactive = hasattr(stdin, "isatty") and stdin.isatty() and stdin is sys.stdin
    try:
        session = _Session(args, stderr)
        prog = session.open()
    except ProgrammerError as exc:
        stderr.write("vpump prog: %s\n" % exc)
        return exit_status(exc)
    readline = _readline_setup(interactive)
    with prog:
        try:
            ident = prog.identify()
            if prog.key:
                prog.open_session()
        except ProgrammerError as exc:
            stderr.write(_error_line("connect", exc, args.role) + "\n")
            return exit_status(exc)
        stdout.write("vpump programmer: %s as %s. Type help for the commands, quit to leave.\n"
                     % (_Text.identify(ident, args)[0], args.role))
        if not prog.key:
            stdout.write("no --key-file: only identify works; every other command needs the "
                         "key file `vpump serve` wrote\n")
        shell = Shell(prog, args, stdin, stdout, stderr, interactive)
        if prog.key and not args.json:
            shell._status_line()
        try:
            shell.cmdloop()
        except KeyboardInterrupt:
            stdout.write("\n")
        finally:
            if readline is not None:
                try:
                    readline.write_history_file(HISTORY_FILE)
                except OSError:
                    pass
    return 0
