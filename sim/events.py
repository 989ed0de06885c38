"""Turn firmware log entries (seq, t_ms, code, args) into readable dicts for events.jsonl."""

import time

from firmware import alarms, eventlog
from firmware.table import REGION_NAMES as _REGIONS, STATES as _STATES, TRIGGERS as _TRIGGERS
from protocol import reasons


def iso_ms(wall_ms):
    """ms since 1970 (pump local time) -> '2026-01-05T08:00:00.000'."""
    seconds, ms = divmod(wall_ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + ".%03d" % ms


def _decode_arg(event, name, value):
    if event == "state":
        return None
    if name == "alarm":
        return alarms.NAMES[value] if 0 <= value < len(alarms.NAMES) else value
    if name == "reason":
        return reasons.name(value)
    if name == "request":
        return eventlog.REQUESTS[value] if 0 <= value < len(eventlog.REQUESTS) else value
    if name == "kind":
        return eventlog.BOLUS_KINDS[value] if 0 <= value < len(eventlog.BOLUS_KINDS) else value
    if name == "mode":
        return eventlog.MODES[value] if 0 <= value < len(eventlog.MODES) else value
    if name == "role":
        return eventlog.ROLES[value] if 0 < value < len(eventlog.ROLES) else value
    if name == "cause" and event == "session_end":
        return eventlog.END_CAUSES[value] if 0 <= value < len(eventlog.END_CAUSES) else value
    if name == "result" and event == "auth":
        return eventlog.AUTH_RESULTS[value] if 0 <= value < len(eventlog.AUTH_RESULTS) else value
    if name in ("restored", "confirmed", "bridge", "completed"):
        return bool(value)
    return value


def decode(seq, t_ms, code, args):
    name, arg_names = eventlog.EVENTS.get(code, ("code_%d" % code, ()))
    # seq 0: an entry the pump could not store (failing memory): in no log, so no seq.
    out = {"seq": seq or None, "t_ms": t_ms, "time": iso_ms(t_ms), "src": "pump", "event": name}
    if name == "state":
        region = _REGIONS[args[0]]
        out["region"] = region
        out["from"] = _STATES[region][args[1]]
        out["to"] = _STATES[region][args[2]]
        out["trigger"] = _TRIGGERS[args[3]]
        return out
    for i in range(len(args)):
        key = arg_names[i] if i < len(arg_names) else "arg%d" % i
        out[key] = _decode_arg(name, key, args[i])
    return out
