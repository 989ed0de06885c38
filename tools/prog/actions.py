"""`vpump prog`'s commands: the action table (each command's arguments, what it asks the
programmer, and the result it returns), the argument types that turn a person's units into the
pump's, flex schedules, and the session a command runs in.

The words a result is shown in live in tools/prog/render.py; the interactive shell in
tools/prog/shell.py; the `vpump prog` command itself in tools/prog/__init__.py.
"""

import argparse
import calendar
import datetime
import decimal
import json
import os
import time

from protocol.client_errors import KeyFileError

MS_PER_MIN = 60000
NL_PER_ML = 1000000
U8, U16, U32 = 0xFF, 0xFFFF, 0xFFFFFFFF


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
BY_NAME = {a.name: a for a in ACTIONS}


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


def add_actions(subparsers, add_common=None):
    """A parser per action.  add_common(parser) adds the programmer options to each; None: the
    shell's parsers (no programmer options, the command's own name as its prog)."""
    for action in ACTIONS:
        extra = {"prog": action.name} if add_common is None else {}
        p = subparsers.add_parser(action.name, help=action.help,
                                  description=action.help[0].upper() + action.help[1:] + ".",
                                  **extra)
        if action.setup is not None:
            action.setup(p)
        if add_common is not None:
            add_common(p)


# ------------------------------------------------------------------------------ running one

class Session:
    """Builds the Programmer from the command line's options (reading the key file first)."""

    def __init__(self, args, stderr):
        self.args = args
        self.stderr = stderr
        self.key = None
        if args.key_file:
            from protocol.client import load_key_file
            self.key = load_key_file(args.key_file, args.role)

        self.capture = None

    def open(self):
        from protocol.client import Programmer
        spy = self._spy if self.args.spy else None
        if getattr(self.args, "capture", None):
            from sim.capture import Capture
            self.capture = Capture(self.args.capture, "programmer",
                                   interface="vpump prog %s" % self.args.url)
        try:
            return Programmer(self.args.url, role=self.args.role, key=self.key,
                              timeout_s=self.args.timeout, spy=spy, capture=self.capture)
        except BaseException:
            self.close()
            raise

    def close(self):
        """Close the capture file (after the programmer: its SESSION_CLOSE is captured too)."""
        if self.capture is not None:
            self.capture.close()
            self.stderr.write("capture: %d packets in %s\n"
                              % (self.capture.packets, self.capture.path))
            self.stderr.flush()
            self.capture = None

    def _spy(self, direction, text):
        self.stderr.write("spy %s %s\n" % (direction, text))
        self.stderr.flush()


def prepare(action, args):
    # Checks that need no pump, done before the link is opened.
    if action.session and not args.key_file:
        raise KeyFileError("%s needs an authenticated session: give --key-file FILE (the key "
                           "file `vpump serve` printed as `keys: FILE`)" % action.name)
    if action.name == "program-flex":
        args.steps = load_flex(args.spec)


def run_action(prog, action, args):
    """Run one action on an open Programmer: its result dict (ProgrammerError / ProgUsage)."""
    # A patient asking for a clinician command is not stopped here: the pump decides
    # (role_not_allowed), as it must for any programmer.
    return action.run(prog, args)
