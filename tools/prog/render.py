"""`vpump prog`'s words: a command's result as lines of text or as JSON, a refusal or failure as
one line naming the command, the field and its allowed range (and what to do about it), and the
shell's status line.  Exit statuses too: 1 for a link failure, 2 for a refusal or bad input.
"""

import time

from protocol.client_errors import KeyFileError, LinkFailure, OutcomeUnknown, Refused
from tools.prog.actions import ACTIONS, MS_PER_MIN, NL_PER_ML


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


def text(action, result, args):
    """The result of `action` as lines for a person."""
    return getattr(_Text, action.name.replace("-", "_"))(result, args)


def status_line(fields):
    """'[infusing | reservoir 18.500 mL (reservoir_ok) | alarms: none]'."""
    alarms = ", ".join(fields.get("alarms") or []) or "none"
    return "[%s | reservoir %s (%s) | alarms: %s]" % (
        fields.get("therapy"), ml(fields.get("reservoir_nl", 0)), fields.get("reservoir"), alarms)


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
        text = "refused: " + text
        hint = _hint(exc, role)
        if hint:
            text += "; " + hint
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
