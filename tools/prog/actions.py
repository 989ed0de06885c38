"""`vpump prog`'s commands: the action table (each command's arguments, what it asks the
programmer, and the result it returns) and the session a command runs in.  The argument types
(a person's units in, the pump's out) and flex schedules are in tools/prog/units.py.

The words a result is shown in live in tools/prog/render.py; the interactive shell in
tools/prog/shell.py; the `vpump prog` command itself in tools/prog/__init__.py.
"""

from firmware import limits as _limits
from protocol.client_errors import KeyFileError, Refused
from tools.prog.units import (CONCENTRATIONS, MAX_UG, MS_PER_DAY, MS_PER_MIN, U32,
                              ProgUsage, concentration_arg, load_flex, minutes_arg, ml_arg,
                              wall_ms_arg, whole_arg)

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
    p.add_argument("--from", dest="start", type=whole_arg(1, U32), default=1, metavar="N",
                   help="first entry's sequence number (default 1)")
    p.add_argument("--count", type=whole_arg(1, 100000), metavar="N",
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
        p.add_argument(option, dest=dest, type=whole_arg(1, MAX_UG, unit), metavar="N",
                       help="%s (%s)" % (what, unit.replace("%", "%%")))


def _setup_program(p):
    p.add_argument("ug_per_day", metavar="UG_PER_DAY", type=whole_arg(0, MAX_UG, "ug/day"),
                   help="continuous daily dose, ug/day (the drug library's limits apply)")
    _confirm(p)


def _setup_program_flex(p):
    p.add_argument("spec", metavar="FILE|STEPS",
                   help="a .toml or .json file of [[flex]] tables (days, steps), or steps for "
                        "every day inline: 00:00=190,06:00=170")
    _confirm(p)


def _setup_bolus(p):
    p.add_argument("dose_ug", metavar="UG", type=whole_arg(1, MAX_UG, "ug"), help="dose, ug")
    p.add_argument("--minutes", dest="duration_ms", type=minutes_arg(1, 1440), required=True,
                   metavar="M", help="given over M minutes (1 to 1440)")
    _confirm(p)


def _setup_patient_bolus_settings(p):
    p.add_argument("--dose", dest="dose_ug", type=whole_arg(1, MAX_UG, "ug"), metavar="UG",
                   help="dose per press, ug")
    p.add_argument("--minutes", dest="duration_ms", type=minutes_arg(1, 60), metavar="M",
                   help="each bolus given over M minutes (1 to 60)")
    p.add_argument("--lockout-min", dest="lockout_ms",
                   type=minutes_arg(_limits.MIN_LOCKOUT_MS // MS_PER_MIN,
                                 _limits.MAX_LOCKOUT_MS // MS_PER_MIN), metavar="M",
                   help="no other bolus for M minutes after one (15 to 1440, never 0)")
    p.add_argument("--max-per-24h", dest="max_per_24h", type=whole_arg(1, 24), metavar="N",
                   help="at most N boluses in any 24 hours (1 to 24)")
    p.add_argument("--disable", action="store_true", help="turn patient bolus off")
    _confirm(p)


def _setup_refill(p):
    p.add_argument("volume_nl", metavar="ML", type=ml_arg,
                   help="volume filled, mL (up to the reservoir's 20 or 40 mL)")
    p.add_argument("--concentration", dest="concentration", type=concentration_arg,
                   required=True, metavar="UG_PER_ML",
                   help="the drug's concentration, ug/mL: %s"
                        % ", ".join(str(c) for c in CONCENTRATIONS))
    p.add_argument("--bridge", action="store_true",
                   help="give a bridge bolus: the old drug still in the tubing goes at the old "
                        "rate first")


def _setup_set_clock(p):
    p.add_argument("wall_ms", metavar="ISO|now", nargs="?", default="now", type=wall_ms_arg,
                   help="the time to set: now (the default) or an ISO date and time, UTC "
                        "unless it names a zone")


def _setup_silence(p):
    p.add_argument("minutes", metavar="MINUTES", type=whole_arg(1, 1440, "minutes"),
                   help="silence non-critical alarms for MINUTES (1 to 1440)")


def _setup_low_reservoir_alarm(p):
    p.add_argument("volume_nl", metavar="ML", type=ml_arg, help="alarm when the reservoir is "
                                                               "down to ML mL (0 to the "
                                                               "reservoir's size)")


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
        result = prog.set_limits(**given)
        return {"old": _limits_only(result["old"]), "new": _limits_only(result["new"])}

    @staticmethod
    def program(prog, args):
        with _rate_increase_told(prog, args.ug_per_day):
            return prog.program_continuous(args.ug_per_day, confirm=args.confirm)

    @staticmethod
    def program_flex(prog, args):
        steps = args.steps if getattr(args, "steps", None) else load_flex(args.spec)
        from firmware.limits import flex_daily_ug
        with _rate_increase_told(prog, max(flex_daily_ug(day) for day in steps)):
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
        # A stop during a bolus cancels it: say so, and how much of it was given (the pump's
        # log: bolus_end with completed = 0 and the volume delivered).
        before = prog.interrogate().get("therapy")
        result = dict(prog.stop())
        if before == "bolus":
            result["bolus_cancelled"] = _last_bolus(prog)
        return result

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
        # Say what was cleared: the critical alarms active before and not after.
        from firmware import alarms
        before = status_fields(prog.interrogate())["alarms"]
        result = dict(prog.clear_alarm())
        after = status_fields(prog.interrogate())["alarms"]
        critical = set(alarms.NAMES[i] for i, c in enumerate(alarms.CRITICAL) if c)
        result["cleared"] = [a for a in before if a not in after]
        result["still_active"] = after
        result["critical_before"] = [a for a in before if a in critical]
        return result

    @staticmethod
    def alarm_test(prog, args):
        return prog.alarm_test()

    @staticmethod
    def low_reservoir_alarm(prog, args):
        result = dict(prog.set_low_reservoir_alarm(args.volume_nl))
        result["new_volume_nl"] = args.volume_nl
        return result


class _rate_increase_told:
    """Around a program command: a rate_increase_24h_ug refusal (its value the increase asked,
    its hi the increase allowed now, over the lowest daily dose in effect in the last 24 h) gets
    the rule's numbers from the pump: that lowest dose, the percent allowed (its limits), and
    when the asked dose becomes possible (its log of programmed doses)."""

    def __init__(self, prog, asked_ug):
        self.prog = prog
        self.asked_ug = asked_ug

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        if kind is not None and issubclass(kind, Refused) and exc.field == "rate_increase_24h_ug":
            try:
                explain_rate_increase(self.prog, exc, self.asked_ug)
            except Exception:       # the refusal stands as it is: the numbers are a courtesy
                pass
        return False


def explain_rate_increase(prog, exc, asked_ug):
    """Sets exc.baseline_ug, exc.limit_pct and exc.possible_from_ms (None: not by waiting, the
    dose in effect now is the one too low)."""
    hard = exc.reason_name == "over_hard_limit"
    exc.baseline_ug = asked_ug - exc.value
    exc.limit_pct = prog.read_limits()["rate_increase_hard_pct" if hard else
                                      "rate_increase_soft_pct"]
    exc.possible_from_ms = None
    now = prog.interrogate()["wall_ms"]
    history = [(e["t_ms"], e["args"][1]) for e in log_tail(prog, now - 2 * MS_PER_DAY)
               if e["code"] == _eventlog().PROGRAM]
    # The asked dose is allowed once every dose too low for it is out of the 24 h window:
    # 24 h after the last such dose was replaced.
    too_low = [i for i, (t, dose) in enumerate(history)
               if asked_ug > dose * (100 + exc.limit_pct) // 100]
    if too_low and too_low[-1] + 1 < len(history):
        exc.possible_from_ms = history[too_low[-1] + 1][0] + MS_PER_DAY


def _eventlog():
    from firmware import eventlog
    return eventlog


def last_log_seq(prog):
    """The pump's newest log entry's seq (0: empty), by doubling then halving single-entry
    reads: a handful of frames however long the log."""
    def exists(seq):
        return bool(prog.read_log(seq, 1)["entries"])
    if not exists(1):
        return 0
    hi = 2
    while exists(hi):
        hi *= 2
    lo = hi // 2                  # exists(lo), not exists(hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if exists(mid):
            lo = mid
        else:
            hi = mid
    return lo


def log_tail(prog, since_ms, page=32):
    """The log's entries from the newest back to the first older than since_ms (oldest
    first)."""
    end = last_log_seq(prog)
    out = []
    start = end + 1
    while start > 1:
        start = max(1, start - page)
        got = prog.read_log(start, min(page, end + 1 - start))["entries"]
        out = got + out
        end = start - 1
        if not got or got[0]["t_ms"] < since_ms:
            break
    return out


def _last_bolus(prog):
    """The bolus a stop cancelled: {"kind", "dose_ug", "volume_nl", "delivered_nl",
    "delivered_ug"} from the log's last bolus_start and bolus_end."""
    ev = _eventlog()
    start = end = None
    for e in reversed(log_tail(prog, 0, page=8)[-16:]):
        if e["code"] == ev.BOLUS_END and end is None:
            end = e
        elif e["code"] == ev.BOLUS_START and start is None:
            start = e
        if start and end:
            break
    if start is None or end is None:
        return None
    dose_ug, volume_nl = start["args"][1], start["args"][2]
    delivered_nl = end["args"][1]
    return {"kind": ev.BOLUS_KINDS[start["args"][0]] if start["args"][0] < len(ev.BOLUS_KINDS)
            else start["args"][0], "dose_ug": dose_ug, "volume_nl": volume_nl,
            "delivered_nl": delivered_nl,
            "delivered_ug": round(dose_ug * delivered_nl / volume_nl, 1) if volume_nl else 0}


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
        # The shell's parsers are named by the command alone; vpump prog's "vpump prog COMMAND"
        # (argparse would put the positional URL's name in between).
        extra = {"prog": action.name if add_common is None else "vpump prog " + action.name}
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
            # adaptive: resends follow the link's measured round trip (--timeout the longest
            # wait), so a pump served at a high --speed keeps its session (protocol/client.py).
            return Programmer(self.args.url, role=self.args.role, key=self.key,
                              timeout_s=self.args.timeout, spy=spy, capture=self.capture,
                              adaptive=True)
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
    if action.name == "set-limits" and all(getattr(args, dest) is None
                                           for _, dest, _, _ in _LIMIT_OPTIONS):
        raise ProgUsage("give at least one of %s" % ", ".join(o[0] for o in _LIMIT_OPTIONS))
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
