"""`vpump prog`'s words: a command's result as lines of text or as JSON, a refusal or failure as
one line naming the command, the field and its allowed range (and what to do about it), and the
shell's status line.  Exit statuses too: 1 for a link failure, 2 for a refusal or bad input.
"""

import time

from protocol.client_errors import KeyFileError, LinkFailure, OutcomeUnknown, Refused
from tools.prog.actions import ACTIONS
from tools.prog.units import MS_PER_MIN, NL_PER_ML


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
        bolus = r.get("bolus_cancelled")
        if not bolus:
            return ["therapy stopped"]
        return ["therapy stopped; the %s bolus in progress was cancelled: %s of %d ug given "
                "(%s of %s)" % (bolus["kind"], _number(bolus["delivered_ug"]), bolus["dose_ug"],
                                ml(bolus["delivered_nl"]), ml(bolus["volume_nl"]))]

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
        if r.get("cleared"):
            return ["cleared: %s%s" % (", ".join(r["cleared"]), "; still active: %s"
                                       % ", ".join(r["still_active"]) if r.get("still_active")
                                       else "")]
        if r.get("critical_before"):
            return ["clear: accepted, but %s is still active" % ", ".join(r["critical_before"])]
        return ["clear: no critical alarm was active; nothing to clear%s"
                % ("" if not r.get("still_active") else " (active: %s, which clears by itself "
                   "when its cause goes)" % ", ".join(r["still_active"]))]

    @staticmethod
    def alarm_test(r, args):
        return ["alarm test: the two-tone, then the single tone"]

    @staticmethod
    def low_reservoir_alarm(r, args):
        return ["low-reservoir alarm: %s -> %s" % (ml(r["old_volume_nl"]),
                                                    ml(r["new_volume_nl"]))]


def text(action, result, args):
    """The result of `action` as lines for a person."""
    return getattr(_Text, action.name.replace("-", "_"))(result, args)


def status_line(fields):
    """'[infusing | reservoir 18.500 mL (reservoir_ok) | alarms: none]'."""
    alarms = ", ".join(fields.get("alarms") or []) or "none"
    return "[%s | reservoir %s (%s) | alarms: %s]" % (
        fields.get("therapy"), ml(fields.get("reservoir_nl", 0)), fields.get("reservoir"), alarms)


# A NAK's field in the words and units the person typed: field -> (name, unit, scale), the
# value on the wire being scale x the unit (nL per mL, ms per minute).
_PERSON = {
    "basal_ug_per_day": ("daily dose", "ug/day", 1),
    "daily_dose_ug": ("daily dose", "ug/day", 1),
    "flex_ug_per_day": ("a step's daily dose", "ug/day", 1),
    "bolus_dose_ug": ("bolus dose", "ug", 1),
    "patient_bolus_dose_ug": ("--dose", "ug", 1),
    "bolus_duration_ms": ("--minutes", "min", MS_PER_MIN),
    "patient_bolus_duration_ms": ("--minutes", "min", MS_PER_MIN),
    "lockout_ms": ("--lockout-min", "min", MS_PER_MIN),
    "silence_ms": ("MINUTES", "min", MS_PER_MIN),
    "max_per_24h": ("--max-per-24h", "boluses in 24 h", 1),
    "volume_nl": ("volume", "mL", NL_PER_ML),
    "low_reservoir_alarm_nl": ("alarm volume", "mL", NL_PER_ML),
    "concentration_ug_per_ml": ("--concentration", "ug/mL", 1),
    "daily_dose_soft_ug": ("--daily-soft", "ug/day", 1),
    "daily_dose_hard_ug": ("--daily-hard", "ug/day", 1),
    "bolus_soft_ug": ("--bolus-soft", "ug", 1),
    "bolus_hard_ug": ("--bolus-hard", "ug", 1),
    "rate_increase_soft_pct": ("--rate-soft", "%", 1),
    "rate_increase_hard_pct": ("--rate-hard", "%", 1),
    "flex_start_minute": ("a step's start", "min after midnight", 1),
    "flex_steps_per_day": ("steps in a day", "steps", 1),
    "flex_days": ("days in the schedule", "days", 1),
}
_ROLE_NAMES = {1: "clinician", 2: "patient"}


def _number(value, scale=1):
    number = value / scale if scale != 1 else value
    if isinstance(number, float) and number != int(number):
        return ("%.3f" % number).rstrip("0").rstrip(".")
    return "{:,}".format(int(number))


def _amount(value, unit, scale):
    return "%s %s" % (_number(value, scale), unit)


def _in_person(exc, action_name, role):
    """A Refused in the user's names and units, or None when its field has no words here."""
    name = exc.reason_name
    field = exc.field
    if field == "role":
        return "the %s role may not use %s; the %s role may use only %s" % (
            _ROLE_NAMES.get(exc.value, role), action_name, _ROLE_NAMES.get(exc.value, role),
            ", ".join(a.name for a in ACTIONS if a.patient))
    if field == "rate_increase_24h_ug":
        return rate_increase_words(exc)
    if field == "concentration_ug_per_ml" and name == "out_of_range":
        from firmware.limits import BACLOFEN
        return "--concentration %s is not in the pump's drug library: %s ug/mL" % (
            _amount(exc.value, "ug/mL", 1),
            ", ".join(str(c) for c in BACLOFEN["concentrations_ug_per_ml"]))
    if field not in _PERSON:
        return None
    label, unit, scale = _PERSON[field]
    given = "%s %s" % (label, _amount(exc.value, unit, scale))
    if name == "out_of_range":
        return "%s is outside the allowed %s to %s" % (given, _number(exc.lo, scale),
                                                       _amount(exc.hi, unit, scale))
    if name == "over_hard_limit":
        return "%s is over the hard limit of %s; a hard limit is never exceeded, not even with " \
               "--confirm" % (given, _amount(exc.hi, unit, scale))
    if name == "soft_limit_needs_confirm":
        return "%s is over the soft limit of %s: check it, then repeat the command with " \
               "--confirm" % (given, _amount(exc.hi, unit, scale))
    return None


def rate_increase_words(exc):
    """The 24 h rate-increase rule, the increase asked and allowed, and when it becomes possible
    (exc.baseline_ug, exc.possible_from_ms, exc.limit_pct when tools/prog/actions.py found them
    in the pump's limits and log)."""
    asked, allowed = exc.value, exc.hi
    baseline = getattr(exc, "baseline_ug", None)
    pct = getattr(exc, "limit_pct", None)
    hard = exc.reason_name == "over_hard_limit"
    rule = "a daily dose may rise at most %s within 24 h of the lowest dose in effect in that " \
           "time%s" % ("%d %%" % pct if pct is not None else "the rate-increase limit",
                       " (%d ug/day)" % baseline if baseline is not None else "")
    text = "%s; this asks +%s ug/day%s, at most +%s ug/day is allowed now%s" % (
        rule, "{:,}".format(asked),
        " (to %s ug/day)" % "{:,}".format(baseline + asked) if baseline is not None else "",
        "{:,}".format(allowed),
        " (up to %s ug/day)" % "{:,}".format(baseline + allowed) if baseline is not None else "")
    when = getattr(exc, "possible_from_ms", None)
    if when:
        text += "; possible from %s, 24 h after the lower dose was replaced" % iso(when)
    elif baseline is not None and hasattr(exc, "possible_from_ms"):
        text += ("; waiting does not help while the dose in effect is that low: program at most "
                 "%s ug/day now, and more 24 h later" % "{:,}".format(baseline + allowed))
    if not hard:
        text += "; or check it and repeat the command with --confirm (a soft limit)"
    else:
        text += " (a hard limit: --confirm does not pass it)"
    return text


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


def error_line(action_name, exc, role):
    text = str(exc)
    if isinstance(exc, Refused):
        words = _in_person(exc, action_name, role)
        if words is not None:
            text = "refused (%s): %s" % (exc.reason_name, words)
        else:
            text = "refused: " + text
            hint = _hint(exc, role)
            if hint:
                text += "; " + hint
    elif text.startswith(action_name + ": "):
        # The message already names the command ("set-limits: give at least one of ...").
        text = text[len(action_name) + 2:]
    return "vpump prog: %s: %s" % (action_name, text)


def error_json(action_name, exc):
    if isinstance(exc, Refused):
        kind = "refused"
    elif isinstance(exc, OutcomeUnknown):
        kind = "outcome_unknown"
    elif isinstance(exc, LinkFailure):
        kind = "link_failure"
    elif isinstance(exc, KeyFileError):
        kind = "key_file"
    else:
        kind = "usage"          # ProgUsage, a bad flex file, a value that does not fit
    error = {"kind": kind, "message": str(exc)}
    if isinstance(exc, Refused):
        error.update(exc.as_dict())
        words = _in_person(exc, action_name, None)
        if words is not None:
            error["in_words"] = words
    return {"command": action_name, "ok": False, "error": error}


def exit_status(exc):
    """1 for a link failure, 2 for a refusal or bad input."""
    return 1 if isinstance(exc, LinkFailure) else 2


def jsonable(value):
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).hex()
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value
