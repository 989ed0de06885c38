# Telemetry commands: codes, the registry, and the codecs of their payloads (docs/protocol.md,
# "Commands").  The payloads here are the command payloads proper: for authenticated commands
# protocol/session.py wraps them in the counter and MAC.
#
#   COMMANDS[code] -> Command: .code .name ("program_continuous") .auth .patient (the patient
#                     role may use it) .request .response (codecs; .max_size in bytes)
#   by_name(name) -> code                      ("program_continuous", "PROGRAM-CONTINUOUS" too)
#   encode_request(cmd, fields) -> bytes       decode_request(cmd, body) -> fields
#   (by_name, encode_request and decode_response are the programmer's: host only, from
#   protocol/commands_host.py, see the end of this file)
#   encode_ack(cmd, fields) -> bytes           status 00 + the response fields
#   encode_nak(reason, field=None, value=0, lo=0, hi=0) -> bytes
#   decode_response(cmd, body) -> (0, fields) or (reason, {"reason", "reason_name", "field",
#                                  "value", "lo", "hi"}); field is a name or None (id 0)
#
# Errors raise ProtocolError: bad_length (wrong size; the pump NAKs with it), unknown_command,
# out_of_range (with the field's name and allowed range).  Encoding checks every value against
# its wire type (MicroPython's struct would truncate silently); keys a command does not use are
# ignored, so a caller may pass a larger dict.
#
# Field dicts: integers in the pump's units, named as in the doc (snake_case), plus:
#   bool        confirm, bridge, enabled, therapy_on, old_enabled (u8 0/1; other bytes refused)
#   str         model, serial (16 bytes NUL-padded, printable ASCII); firmware_version
#               "major.minor.patch" (encode also takes a 3-tuple/list); therapy, reservoir,
#               battery and mode: state names (encode also takes the index)
#   bytes       cn, pn, proof (16 bytes)
#   role        1 clinician, 2 patient (encode also takes the name)
#   alarms      list of alarm names, ALARMS order (encode also takes alarm_bits, the u16)
#
#   IDENTIFY          -> model, serial, firmware_version, protocol_version
#   SESSION_OPEN      role, cn -> pn, session_id
#   SESSION_AUTH      session_id, proof -> proof (the pump's)
#   INTERROGATE       -> therapy, reservoir, battery, therapy_on, mode, basal_ug_per_day,
#                        reservoir_nl, concentration_ug_per_ml, low_reservoir_alarm_nl,
#                        hours_to_alarm, hours_to_empty, battery_remaining_nah, battery_mv,
#                        days_to_replacement, alarms, lockout_until_ms, delivered_ug, wall_ms,
#                        boot_count (decode adds alarm_bits)
#   READ_LOG          start_seq, max_entries (1..32) -> next_seq, entries: [{seq, t_ms, code,
#                        args: 4 ints}] (the count byte is len(entries); args padded with 0)
#   READ_LIMITS       -> LIMITS (7 keys below)
#   SET_LIMITS        LIMITS (concentration_ug_per_ml may be left out: 0) -> old, new (dicts)
#   PROGRAM_CONTINUOUS basal_ug_per_day, confirm -> old_daily_ug, new_daily_ug
#   PROGRAM_FLEX      confirm, steps: 7 lists (Monday first) of 1..13 [start_minute, ug_per_day]
#                        -> old_daily_ug, new_daily_ug
#   CLINICIAN_BOLUS   dose_ug, duration_ms, confirm -> dose_ug, duration_ms
#   PATIENT_BOLUS     -> dose_ug, lockout_until_ms
#   SET_PATIENT_BOLUS enabled, dose_ug, duration_ms, lockout_ms, max_per_24h, confirm
#                        -> old_enabled, old_dose_ug
#   REFILL            volume_nl, concentration_ug_per_ml, bridge -> old_estimate_nl,
#                        new_estimate_nl
#   SET_CLOCK         wall_ms -> old_wall_ms
#   SILENCE_ALARMS    minutes -> silenced
#   SET_LOW_RESERVOIR_ALARM volume_nl -> old_volume_nl
#   SESSION_CLOSE, STOP, START, CLEAR_ALARM, ALARM_TEST: empty both ways
# confirm and bridge default to False when left out.

import struct

from protocol import reasons
from protocol.errors import ProtocolError
from protocol.fields import field_id
from protocol.frame import MAX_PAYLOAD

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

IDENTIFY = const(0x01)
SESSION_OPEN = const(0x02)
SESSION_AUTH = const(0x03)
SESSION_CLOSE = const(0x04)
INTERROGATE = const(0x10)
READ_LOG = const(0x11)
READ_LIMITS = const(0x12)
SET_LIMITS = const(0x13)
PROGRAM_CONTINUOUS = const(0x20)
PROGRAM_FLEX = const(0x21)
CLINICIAN_BOLUS = const(0x22)
PATIENT_BOLUS = const(0x23)
SET_PATIENT_BOLUS = const(0x24)
REFILL = const(0x25)
STOP = const(0x26)
START = const(0x27)
SET_CLOCK = const(0x28)
SILENCE_ALARMS = const(0x29)
CLEAR_ALARM = const(0x2A)
ALARM_TEST = const(0x2B)
SET_LOW_RESERVOIR_ALARM = const(0x2C)

# Wire indices: a test checks these against firmware/table.py and firmware/alarms.py.
THERAPY_STATES = ("idle", "infusing", "bolus", "lockout", "reservoir_empty", "motor_stall",
                  "battery_depleted", "fault")
RESERVOIR_STATES = ("reservoir_ok", "low_reservoir")
BATTERY_STATES = ("battery_ok", "elective_replacement")
ALARMS = ("low_reservoir", "elective_replacement", "reservoir_empty", "motor_stall",
          "end_of_service", "memory_fault", "low_battery_reset")
MODES = ("none", "continuous", "flex")
ROLE_NAMES = ("", "clinician", "patient")        # index = role byte (protocol/session.py)

LIMITS = ("daily_dose_soft_ug", "daily_dose_hard_ug", "bolus_soft_ug", "bolus_hard_ug",
          "rate_increase_soft_pct", "rate_increase_hard_pct", "concentration_ug_per_ml")

READ_LOG_MAX_ENTRIES = const(32)
FLEX_DAYS = const(7)
FLEX_MAX_STEPS = const(13)
NAK_SIZE = const(26)
# What an authenticated payload carries besides the command's: counter u32 + MAC 8.
SESSION_OVERHEAD = const(12)

_pack = struct.pack
_unpack = struct.unpack
_unpack_from = struct.unpack_from

# Value kinds of a field.
_INT = const(0)
_BOOL = const(1)
_BYTES = const(2)       # exactly as many bytes as the format says
_TEXT = const(3)        # NUL-padded printable ASCII
_VERSION = const(4)     # three u8 <-> "major.minor.patch"
_ENUM = const(5)        # u8 index <-> name
_BITS = const(6)        # u16 bit set <-> list of names
_ROLE = const(7)        # u8 1..2; encode takes the name too

_RANGES = {
    "B": (0, 0xFF),
    "H": (0, 0xFFFF),
    "I": (0, 0xFFFFFFFF),
    "Q": (0, 0xFFFFFFFFFFFFFFFF),
    "i": (-0x80000000, 0x7FFFFFFF),
    "q": (-0x8000000000000000, 0x7FFFFFFFFFFFFFFF),
}
_I64_MIN = -0x8000000000000000
_I64_MAX = 0x7FFFFFFFFFFFFFFF


def _bad_length(what, got, expected):
    # expected: the size, or a text when it depends on the content (then lo/hi stay None).
    size = expected if _is_int(expected) else None
    return ProtocolError(reasons.BAD_LENGTH,
                         "%s: %d bytes; a %s has %s bytes" % (what, got, what, expected),
                         None, got, size, size)


def _out_of_range(what, key, value, lo, hi, allowed=None):
    if allowed is None:
        allowed = "%d..%d" % (lo, hi)
    return ProtocolError(reasons.OUT_OF_RANGE,
                         "%s: %s %r is out of range; allowed: %s" % (what, key, value, allowed),
                         key, value, lo, hi)


def _is_int(v):
    # bool is an int on CPython but not on MicroPython: refuse it alike on both.
    return isinstance(v, int) and not isinstance(v, bool)


def _check_int(what, key, v, lo, hi):
    if not _is_int(v) or v < lo or v > hi:
        raise _out_of_range(what, key, v, lo, hi)
    return v


def _index(what, key, v, names):
    if isinstance(v, str):
        for i in range(len(names)):
            if names[i] == v:
                return i
    elif _is_int(v) and 0 <= v < len(names):
        return v
    raise _out_of_range(what, key, v, 0, len(names) - 1, ", ".join(names))


def _text_bytes(what, key, v, size):
    if not isinstance(v, str) or len(v) > size:
        raise _out_of_range(what, key, v, 0, size,
                            "printable ASCII text of at most %d characters" % size)
    raw = v.encode()
    for b in raw:
        if b < 0x20 or b > 0x7E:
            raise _out_of_range(what, key, v, 0, size,
                                "printable ASCII text of at most %d characters" % size)
    return raw


def _version_parts(what, key, v):
    parts = v.split(".") if isinstance(v, str) else v
    try:
        ok = len(parts) == 3
        if ok:
            parts = [int(p) for p in parts]
            ok = 0 <= parts[0] <= 255 and 0 <= parts[1] <= 255 and 0 <= parts[2] <= 255
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise _out_of_range(what, key, v, 0, 255, "\"major.minor.patch\", each 0..255")
    return parts


class _Layout:
    # A fixed layout: items of (key, struct format, kind, extra, default).  extra is the
    # (lo, hi) range for _INT (None: the wire type's), the names for _ENUM/_BITS.
    def __init__(self, *items):
        self.items = items
        fmt = ">"
        for item in items:
            fmt += item[1]
        self.fmt = fmt
        self.size = struct.calcsize(fmt)
        self.max_size = self.size
        self.keys = tuple(item[0] for item in items)
        # Per item, what encode() needs without lookups: the int range, or an enum's
        # name -> index table (every response of every frame goes through here).
        plan = []
        for key, fmt, kind, extra, default in items:
            if kind == _INT:
                extra = extra or _RANGES[fmt]
            elif kind == _ENUM:
                index = {}
                for i in range(len(extra)):
                    index[extra[i]] = i
                extra = (extra, index)
            plan.append((key, fmt, kind, extra, default))
        self._plan = plan

    def encode(self, fields, what):
        values = []
        if not fields:
            fields = {}
        for key, fmt, kind, extra, default in self._plan:
            v = fields.get(key, default)
            if v is None:
                if kind == _BITS and fields and "alarm_bits" in fields:
                    v = fields["alarm_bits"]
                else:
                    raise ProtocolError(reasons.OUT_OF_RANGE,
                                        "%s: %s is missing; give all of %s"
                                        % (what, key, ", ".join(self.keys)), key)
            if kind == _INT:
                # _check_int inlined: type() is int refuses bool.
                if type(v) is not int or v < extra[0] or v > extra[1]:
                    _check_int(what, key, v, extra[0], extra[1])
                values.append(v)
            elif kind == _BOOL:
                if v is True or v is False or (_is_int(v) and 0 <= v <= 1):
                    values.append(1 if v else 0)
                else:
                    raise _out_of_range(what, key, v, 0, 1, "true or false")
            elif kind == _BYTES:
                size = self._size_of(fmt)
                if not isinstance(v, (bytes, bytearray, memoryview)) or len(v) != size:
                    raise _out_of_range(what, key, v, size, size, "%d bytes" % size)
                values.append(bytes(v))
            elif kind == _TEXT:
                values.append(_text_bytes(what, key, v, self._size_of(fmt)))
            elif kind == _VERSION:
                values.extend(_version_parts(what, key, v))
            elif kind == _ENUM:
                i = extra[1].get(v) if isinstance(v, str) else None
                values.append(i if i is not None else _index(what, key, v, extra[0]))
            elif kind == _BITS:
                values.append(self._bits(what, key, v, extra))
            else:  # _ROLE
                if isinstance(v, str):
                    v = _index(what, key, v, ROLE_NAMES)
                values.append(_check_int(what, key, v, 1, 2))
        return _pack(self.fmt, *values)

    @staticmethod
    def _size_of(fmt):
        return int(fmt[:-1])

    @staticmethod
    def _bits(what, key, v, names):
        if _is_int(v):
            return _check_int(what, key, v, 0, 0xFFFF)
        bits = 0
        try:
            for name in v:
                bits |= 1 << _index(what, key, name, names)
        except TypeError:
            raise _out_of_range(what, key, v, 0, len(names) - 1, ", ".join(names))
        return bits

    def decode(self, body, what, more=None):
        # more(kind, key, extra, v, values, j, out, what) -> (value, next j): decodes the kinds
        # only responses carry (_TEXT, _VERSION, _ENUM, _BITS).  Only the programmer decodes a
        # response, so it lives with the programmer's half (protocol/commands_host.py); the
        # pump decodes requests, which carry none of them.
        if len(body) != self.size:
            raise _bad_length(what, len(body), self.size)
        values = _unpack(self.fmt, body)
        out = {}
        j = 0
        for key, fmt, kind, extra, default in self.items:
            v = values[j]
            j += 1
            if kind == _INT:
                if extra and not extra[0] <= v <= extra[1]:
                    raise _out_of_range(what, key, v, extra[0], extra[1])
            elif kind == _BOOL:
                if v > 1:
                    raise _out_of_range(what, key, v, 0, 1, "0 or 1")
                v = v == 1
            elif kind == _ROLE:
                if not 1 <= v <= 2:
                    raise _out_of_range(what, key, v, 1, 2, "1 (clinician) or 2 (patient)")
            elif kind != _BYTES:
                v, j = more(kind, key, extra, v, values, j, out, what)
            out[key] = v
        return out


class _Pair:
    # Two dicts of one layout, one after the other (SET_LIMITS: old limits, then new).
    def __init__(self, layout, first, second):
        self.layout = layout
        self.keys = (first, second)
        self.max_size = 2 * layout.size

    def encode(self, fields, what):
        a, b = self.keys
        return (self.layout.encode(_sub(fields, a, what), what + " " + a)
                + self.layout.encode(_sub(fields, b, what), what + " " + b))



def _sub(fields, key, what):
    v = fields.get(key) if fields else None
    if not isinstance(v, dict):
        raise ProtocolError(reasons.OUT_OF_RANGE, "%s: %s must be a dict of %s"
                            % (what, key, ", ".join(LIMITS)), key)
    return v


class _FlexRequest:
    # confirm u8, then 7 days of: steps u8 (1..13), steps x (start_minute u16, ug_per_day u32)
    keys = ("confirm", "steps")
    max_size = 1 + FLEX_DAYS * (1 + FLEX_MAX_STEPS * 6)

    def decode(self, body, what):
        n = len(body)
        if n < 1:
            raise _bad_length(what, n, "1 + 7 x (1 + 6 x steps)")
        confirm = _CONFIRM_ONLY.decode(body[:1], what)["confirm"]
        pos = 1
        days = []
        for _ in range(FLEX_DAYS):
            if pos >= n:
                raise _bad_length(what, n, "1 + 7 x (1 + 6 x steps)")
            k = body[pos]
            if not 1 <= k <= FLEX_MAX_STEPS:
                raise _out_of_range(what, "flex_steps_per_day", k, 1, FLEX_MAX_STEPS)
            pos += 1
            if pos + 6 * k > n:
                raise _bad_length(what, n, "1 + 7 x (1 + 6 x steps)")
            day = []
            for _ in range(k):
                minute, ug = _unpack_from(">HI", body, pos)
                day.append([minute, ug])
                pos += 6
            days.append(day)
        if pos != n:
            raise _bad_length(what, n, "%d (1 + 7 x (1 + 6 x steps))" % pos)
        return {"confirm": confirm, "steps": days}


class _LogResponse:
    # count u8, next_seq u32, then count x (seq u32, t_ms u64, code u8, 4 x i32)
    keys = ("next_seq", "entries")
    _ENTRY = ">IQBiiii"
    _ENTRY_SIZE = 29
    max_size = 5 + READ_LOG_MAX_ENTRIES * 29

    def encode(self, fields, what):
        next_seq = _check_int(what, "next_seq", fields.get("next_seq") if fields else None,
                              0, 0xFFFFFFFF)
        entries = fields.get("entries")
        if not isinstance(entries, (list, tuple)) or len(entries) > READ_LOG_MAX_ENTRIES:
            raise _out_of_range(what, "entries", len(entries) if isinstance(entries, (list, tuple))
                                else entries, 0, READ_LOG_MAX_ENTRIES,
                                "a list of at most %d entries" % READ_LOG_MAX_ENTRIES)
        parts = [_pack(">BI", len(entries), next_seq)]
        for e in entries:
            if not isinstance(e, dict):
                raise _out_of_range(what, "entries", e, 0, 0, "dicts of seq, t_ms, code, args")
            args = e.get("args", ())
            if not isinstance(args, (list, tuple)) or len(args) > 4:
                raise _out_of_range(what, "args", args, 0, 4, "a list of at most 4 integers")
            a = [0, 0, 0, 0]
            for i in range(len(args)):
                a[i] = _check_int(what, "args", args[i], -0x80000000, 0x7FFFFFFF)
            parts.append(_pack(self._ENTRY,
                               _check_int(what, "seq", e.get("seq"), 0, 0xFFFFFFFF),
                               _check_int(what, "t_ms", e.get("t_ms"), 0, 0xFFFFFFFFFFFFFFFF),
                               _check_int(what, "code", e.get("code"), 0, 0xFF),
                               a[0], a[1], a[2], a[3]))
        return b"".join(parts)



def _f(key, fmt, kind=_INT, extra=None, default=None):
    return (key, fmt, kind, extra, default)


_EMPTY = _Layout()
_CONFIRM_ONLY = _Layout(_f("confirm", "B", _BOOL, None, False))
_LIMITS = _Layout(*[_f(key, "I") for key in LIMITS])
_SET_LIMITS = _Layout(*([_f(key, "I") for key in LIMITS[:-1]]
                        + [_f("concentration_ug_per_ml", "I", _INT, None, 0)]))
_DAILY_PAIR = _Layout(_f("old_daily_ug", "I"), _f("new_daily_ug", "I"))


class Command:
    def __init__(self, code, name, auth, patient, request, response):
        self.code = code
        self.name = name
        self.auth = auth
        self.patient = patient
        self.request = request
        self.response = response


COMMANDS = {}
_BY_NAME = {}


def _command(code, name, auth, patient, request, response):
    c = Command(code, name, auth, patient, request, response)
    COMMANDS[code] = c
    _BY_NAME[name] = code


# patient: the patient role may send it.  Every command without auth is open to anyone, and a
# patient may end its own session.
_command(IDENTIFY, "identify", False, True, _EMPTY,
         _Layout(_f("model", "16s", _TEXT), _f("serial", "16s", _TEXT),
                 _f("firmware_version", "BBB", _VERSION),
                 _f("protocol_version", "B", _INT, None, 1)))
_command(SESSION_OPEN, "session_open", False, True,
         _Layout(_f("role", "B", _ROLE), _f("cn", "16s", _BYTES)),
         _Layout(_f("pn", "16s", _BYTES), _f("session_id", "I")))
_command(SESSION_AUTH, "session_auth", False, True,
         _Layout(_f("session_id", "I"), _f("proof", "16s", _BYTES)),
         _Layout(_f("proof", "16s", _BYTES)))
_command(SESSION_CLOSE, "session_close", True, True, _EMPTY, _EMPTY)
_command(INTERROGATE, "interrogate", True, True, _EMPTY,
         _Layout(_f("therapy", "B", _ENUM, THERAPY_STATES),
                 _f("reservoir", "B", _ENUM, RESERVOIR_STATES),
                 _f("battery", "B", _ENUM, BATTERY_STATES),
                 _f("therapy_on", "B", _BOOL),
                 _f("mode", "B", _ENUM, MODES),
                 _f("basal_ug_per_day", "I"),
                 _f("reservoir_nl", "I"),
                 _f("concentration_ug_per_ml", "I"),
                 _f("low_reservoir_alarm_nl", "I"),
                 _f("hours_to_alarm", "i"),
                 _f("hours_to_empty", "i"),
                 _f("battery_remaining_nah", "Q"),
                 _f("battery_mv", "H"),
                 _f("days_to_replacement", "i"),
                 _f("alarms", "H", _BITS, ALARMS),
                 _f("lockout_until_ms", "Q"),
                 _f("delivered_ug", "Q"),
                 _f("wall_ms", "Q"),
                 _f("boot_count", "H")))
_command(READ_LOG, "read_log", True, False,
         _Layout(_f("start_seq", "I"), _f("max_entries", "B", _INT, (1, READ_LOG_MAX_ENTRIES))),
         _LogResponse())
_command(READ_LIMITS, "read_limits", True, False, _EMPTY, _LIMITS)
_command(SET_LIMITS, "set_limits", True, False, _SET_LIMITS, _Pair(_LIMITS, "old", "new"))
_command(PROGRAM_CONTINUOUS, "program_continuous", True, False,
         _Layout(_f("basal_ug_per_day", "I"), _f("confirm", "B", _BOOL, None, False)),
         _DAILY_PAIR)
_command(PROGRAM_FLEX, "program_flex", True, False, _FlexRequest(), _DAILY_PAIR)
_command(CLINICIAN_BOLUS, "clinician_bolus", True, False,
         _Layout(_f("dose_ug", "I"), _f("duration_ms", "I"),
                 _f("confirm", "B", _BOOL, None, False)),
         _Layout(_f("dose_ug", "I"), _f("duration_ms", "I")))
_command(PATIENT_BOLUS, "patient_bolus", True, True, _EMPTY,
         _Layout(_f("dose_ug", "I"), _f("lockout_until_ms", "Q")))
_command(SET_PATIENT_BOLUS, "set_patient_bolus", True, False,
         _Layout(_f("enabled", "B", _BOOL), _f("dose_ug", "I"), _f("duration_ms", "I"),
                 _f("lockout_ms", "I"), _f("max_per_24h", "B"),
                 _f("confirm", "B", _BOOL, None, False)),
         _Layout(_f("old_enabled", "B", _BOOL), _f("old_dose_ug", "I")))
_command(REFILL, "refill", True, False,
         _Layout(_f("volume_nl", "I"), _f("concentration_ug_per_ml", "I"),
                 _f("bridge", "B", _BOOL, None, False)),
         _Layout(_f("old_estimate_nl", "I"), _f("new_estimate_nl", "I")))
_command(STOP, "stop", True, False, _EMPTY, _EMPTY)
_command(START, "start", True, False, _EMPTY, _EMPTY)
_command(SET_CLOCK, "set_clock", True, False, _Layout(_f("wall_ms", "Q")),
         _Layout(_f("old_wall_ms", "Q")))
_command(SILENCE_ALARMS, "silence_alarms", True, True, _Layout(_f("minutes", "H")),
         _Layout(_f("silenced", "B")))
_command(CLEAR_ALARM, "clear_alarm", True, False, _EMPTY, _EMPTY)
_command(ALARM_TEST, "alarm_test", True, False, _EMPTY, _EMPTY)
_command(SET_LOW_RESERVOIR_ALARM, "set_low_reservoir_alarm", True, False,
         _Layout(_f("volume_nl", "I")), _Layout(_f("old_volume_nl", "I")))


def _lookup(cmd):
    c = COMMANDS.get(cmd)
    if c is None:
        raise ProtocolError(reasons.UNKNOWN_COMMAND,
                            "unknown command %r; known: %s"
                            % (cmd, ", ".join(sorted(_BY_NAME))), None, cmd)
    return c


def _what(c, part):
    return "%s %s" % (c.name.upper(), part)


def decode_request(cmd, body):
    c = _lookup(cmd)
    return c.request.decode(body, _what(c, "request"))


def encode_ack(cmd, fields=None):
    c = _lookup(cmd)
    return b"\x00" + c.response.encode(fields or {}, _what(c, "response"))


def _nak_int(v):
    # A NAK must always go out: a value that is not an integer becomes 0, a huge one is clamped.
    if v is True or v is False:
        return 1 if v else 0
    if not isinstance(v, int):
        return 0
    if v < _I64_MIN:
        return _I64_MIN
    if v > _I64_MAX:
        return _I64_MAX
    return v


def encode_nak(reason, field=None, value=0, lo=0, hi=0):
    if not _is_int(reason) or not 1 <= reason <= 255:
        raise _out_of_range("NAK", "reason", reason, 1, 255,
                            "1..255 (0 is an acknowledgement: use encode_ack)")
    if _is_int(field):
        fid = field if 0 <= field <= 255 else 0
    else:
        fid = field_id(field)
    return _pack(">BBqqq", reason, fid, _nak_int(value), _nak_int(lo), _nak_int(hi))


# The programmer's half (encode a request, decode a response, look a command up by name) is in
# protocol/commands_host.py: host-facing, so a board's .mpy bundle leaves it out (tools/flash.py
# skips imports guarded by ImportError) and the pump carries only what it runs.
try:
    from protocol.commands_host import by_name, encode_request, decode_response  # noqa: F401
except ImportError:
    pass
