"""The protocol's registries as tables: what the Wireshark dissector is generated from
(tools/wireshark/generate.py) and what docs/protocol.md's tables are checked against
(tests/test_protocol_doc.py).  Everything here is read from protocol/ and firmware/; nothing
is restated by hand but the units of a name, which follow the project's naming rule (the
pump's language: reservoir_nl, basal_ug_per_day, lockout_ms).

    unit_of(name) -> "ug/day", "nL", ... or ""        the unit a field's name says
    command_rows() -> [{code, name, auth, patient, request, response}]
        request/response: a list of items {key, type, size, unit, names, wall, range}, or a special
        layout: {"special": "flex"} (PROGRAM_FLEX), {"special": "log"} (READ_LOG), or
        {"pair": ("old", "new"), "items": [...]} (SET_LIMITS' answer)
    reason_rows() -> [(code, name, description)]
    field_rows() -> [(id, name, unit)]
    event_rows() -> [(code, name, [(arg name, unit or the names it indexes)])]
"""

from firmware import alarms, eventlog
from firmware.table import REGION_NAMES, STATES, TRIGGERS
from protocol import commands as C
from protocol.commands_host import layout_fields
from protocol import fields, reasons

_SUFFIX_UNITS = (
    ("_ug_per_day", "ug/day"), ("_ug_per_ml", "ug/mL"), ("_nl", "nL"), ("_ul", "uL"),
    ("_ug", "ug"), ("_nah", "nAh"), ("_mv", "mV"), ("_pct", "%"), ("_ms", "ms"), ("_s", "s"),
    ("_min", "min"),
)
# Names whose unit is not a suffix.
_NAME_UNITS = {
    "hours_to_alarm": "h", "hours_to_empty": "h", "days_to_replacement": "days",
    "minutes": "min", "max_per_24h": "per 24 h", "start_minute": "min after midnight",
    "ug_per_day": "ug/day", "flex_start_minute": "min after midnight", "delta_s": "s",
}
# u64 fields that are wall-clock times (ms since 1970 UTC): shown as a date too.
WALL_KEYS = ("wall_ms", "old_wall_ms", "lockout_until_ms", "t_ms")

_TYPES = {"B": "u8", "H": "u16", "I": "u32", "Q": "u64", "i": "i32", "q": "i64"}
_KIND_NAMES = {
    C._INT: None, C._BOOL: "bool", C._BYTES: "bytes", C._TEXT: "text", C._VERSION: "version",
    C._ENUM: "enum", C._BITS: "bits", C._ROLE: "role",
}


def unit_of(name):
    if name in _NAME_UNITS:
        return _NAME_UNITS[name]
    if "daily" in name and name.endswith("_ug"):
        return "ug/day"         # daily_dose_ug, old_daily_ug: a daily dose
    for suffix, unit in _SUFFIX_UNITS:
        if name.endswith(suffix):
            return unit
    return ""


def _items(layout):
    out = []
    for key, fmt, kind, extra, default in layout_fields(layout):
        kind_name = _KIND_NAMES[kind]
        item = {"key": key, "unit": unit_of(key), "wall": key in WALL_KEYS, "names": None,
                "range": None}
        if kind_name is None:
            item["type"], item["size"] = _TYPES[fmt], _size(fmt)
            if extra:
                item["range"] = tuple(extra)        # narrower than the wire type
        else:
            item["type"], item["size"] = kind_name, _size(fmt)
            if kind in (C._ENUM, C._BITS, C._ROLE):
                item["names"] = tuple(extra)
        out.append(item)
    return out


def _size(fmt):
    import struct
    return struct.calcsize(">" + fmt)


def _codec(codec):
    if isinstance(codec, C._Layout):
        return _items(codec)
    if isinstance(codec, C._Pair):
        return {"pair": codec.keys, "items": _items(codec.layout)}
    if isinstance(codec, C._FlexRequest):
        return {"special": "flex"}
    if isinstance(codec, C._LogResponse):
        return {"special": "log"}
    raise TypeError("no table for the codec %r" % (codec,))


def command_rows():
    rows = []
    for code in sorted(C.COMMANDS):
        c = C.COMMANDS[code]
        rows.append({"code": code, "name": c.name, "auth": c.auth, "patient": c.patient,
                     "request": _codec(c.request), "response": _codec(c.response)})
    return rows


def reason_rows():
    return [(code, reasons.TEXT[code], reasons.describe(code)) for code in sorted(reasons.TEXT)]


def field_rows():
    return [(i, fields.FIELDS[i], unit_of(fields.FIELDS[i])) for i in range(len(fields.FIELDS))]


# Event args that index a list: the names they index.
def _arg_names():
    regions, states, triggers = REGION_NAMES, STATES, TRIGGERS
    return {
        "alarm": alarms.NAMES, "reason": None, "request": eventlog.REQUESTS,
        "kind": eventlog.BOLUS_KINDS, "mode": eventlog.MODES, "role": eventlog.ROLES,
        "result": eventlog.AUTH_RESULTS, "region": regions, "trigger": triggers,
        "cause": eventlog.END_CAUSES,
    }


EVENT_FLAGS = ("restored", "confirmed", "bridge", "completed")


def event_arg_unit(name):
    """What one event argument is: its unit, "0/1", or what it indexes."""
    if name in EVENT_FLAGS:
        return "0/1"
    if name == "alarm":
        return "alarm index"
    if name == "reason":
        return "reason code"
    if name in ("request", "kind", "mode", "role", "result", "region", "trigger", "cause"):
        return "%s index" % name
    if name in ("from", "to"):
        return "state index in the region"
    if name in ("slots", "log_records", "boot_count", "max_per_24h", "count"):
        return "count"
    if name in ("restored_seq", "damaged_seq"):
        return "seq"
    if name == "value":
        return "the request's value, in its units"
    if name == "limit":
        return "the limit, in the value's units"
    return unit_of(name)


def event_rows():
    rows = []
    for code in sorted(eventlog.EVENTS):
        name, args = eventlog.EVENTS[code]
        rows.append((code, name, [(arg, event_arg_unit(arg)) for arg in args]))
    return rows


def arg_index_names():
    return _arg_names()
