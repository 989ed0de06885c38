# Telemetry commands: codes, the registry, and the codecs of their payloads (docs/protocol.md,
# "Commands").  The payloads here are the command payloads proper: for authenticated commands
# protocol/session.py wraps them in the counter and MAC.
#
#   COMMANDS[code] -> Command: .code .name ("program_continuous") .auth .patient (the patient
#                     role may use it) .request .response (codecs; .max_size in bytes);
#                     COMMANDS.get(code) too, and on the host a dict's iteration (in, len,
#                     keys, values, items: protocol/commands_host.py)
#   by_name(name) -> code                      ("program_continuous", "PROGRAM-CONTINUOUS" too)
#   encode_request(cmd, fields) -> bytes       decode_request(cmd, body) -> fields
#   (by_name, encode_request and decode_response are the programmer's: host only, from
#   protocol/commands_host.py, see the end of this file)
#   encode_ack(cmd, fields) -> bytes           status 00 + the response fields
#   encode_nak(reason, field=None, value=0, lo=0, hi=0) -> bytes
#   decode_response(cmd, body) -> (0, fields) or (reason, {"reason", "reason_name", "field",
#                                  "value", "lo", "hi"}); field is a name or None (id 0)
#
# Every command is a line of _TABLE below, a constant string: a board's heap holds its bytes,
# nothing else.  COMMANDS builds a small Command from its line when it is looked up, and the
# codecs read their layout from the line as they go: no object per command, field or name is
# kept (a lookup leaves ~100 bytes of garbage, INTERROGATE's answer ~1.3 KB).  The names an
# index or a bit stands for are in the table too; protocol/commands_host.py gives the host them
# as tuples (THERAPY_STATES, RESERVOIR_STATES, BATTERY_STATES, MODES, ALARMS, ROLE_NAMES) and
# LIMITS, READ_LIMITS' keys.
#
# Errors raise ProtocolError: bad_length (wrong size; the pump NAKs with it), unknown_command,
# out_of_range (with the field's name and allowed range).  Encoding checks every value against
# its wire type (MicroPython's struct would truncate silently); keys a command does not use are
# ignored, so a caller may pass a larger dict.
#
# Field dicts: integers in the pump's units, named as in the doc (snake_case); a bool is a u8
# 0/1 (other bytes refused); model and serial are 16 bytes of NUL-padded printable ASCII;
# firmware_version "major.minor.patch" (encode also takes a 3-tuple/list); therapy, reservoir,
# battery, mode and role are names (encode also takes the index or byte); alarms is a list of
# names (encode also takes alarm_bits, the u16, which decode adds).  READ_LOG's entries are
# [{seq, t_ms, code, args: 4 ints}] (the count byte is len(entries); args padded with 0);
# SET_LIMITS answers old and new, each a dict of the LIMITS keys.

import struct

from protocol import reasons
from protocol.errors import ProtocolError
from protocol.fields import field_id

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

READ_LOG_MAX_ENTRIES = const(32)
FLEX_DAYS = const(7)
FLEX_MAX_STEPS = const(13)
NAK_SIZE = const(26)
# What an authenticated payload carries besides the command's: counter u32 + MAC 8.
SESSION_OVERHEAD = const(12)

# The commands, one a line:   \nCODE NAME [WHO]|REQUEST|RESPONSE
#   CODE    the command byte in hex (the response's is CODE | 0x80)
#   WHO     open: no session needed, anyone may send it; patient: in a session of either role;
#           left out: in a clinician's session only
#   REQUEST, RESPONSE: "-" (empty), "*flex" (PROGRAM_FLEX's week), "*log" (READ_LOG's entries),
#           "*pair" (READ_LIMITS' answer twice, old then new) or the fields in wire order,
#           separated by ", ", each:   KEY FORMAT [KIND [NAMES]] [LO..HI] [=DEFAULT]
#     FORMAT  struct's: B H I Q (u8 u16 u32 u64), i q (i32 i64), big-endian; 16s; 3B (three u8)
#     KIND    (none: an integer) bool, bytes, text, version; enum, bits and role are followed
#             by the names their index, bits or byte stand for, "/"-separated, index 0 first
#             (a role's byte starts at 1: its name 0 is empty)
#     LO..HI  an integer's allowed range when narrower than its wire type's
#     DEFAULT the value encode uses when the fields leave KEY out (else KEY is required)
_TABLE = (
    "\n01 identify open|-|model 16s text, serial 16s text, firmware_version 3B version,"
    " protocol_version B =1"
    "\n02 session_open open|role B role /clinician/patient, cn 16s bytes"
    "|pn 16s bytes, session_id I"
    "\n03 session_auth open|session_id I, proof 16s bytes|proof 16s bytes"
    "\n04 session_close patient|-|-"
    "\n10 interrogate patient|-|therapy B enum idle/infusing/bolus/lockout/"
    "reservoir_empty/motor_stall/battery_depleted/fault,"
    " reservoir B enum reservoir_ok/low_reservoir,"
    " battery B enum battery_ok/elective_replacement,"
    " therapy_on B bool, mode B enum none/continuous/flex,"
    " basal_ug_per_day I, reservoir_nl I, concentration_ug_per_ml I, low_reservoir_alarm_nl I,"
    " hours_to_alarm i, hours_to_empty i, battery_remaining_nah Q, battery_mv H,"
    " days_to_replacement i,"
    " alarms H bits low_reservoir/elective_replacement/reservoir_empty/motor_stall/"
    "end_of_service/memory_fault/low_battery_reset,"
    " lockout_until_ms Q, delivered_ug Q, wall_ms Q, boot_count H"
    "\n11 read_log|start_seq I, max_entries B 1..32|*log"
    "\n12 read_limits|-|daily_dose_soft_ug I, daily_dose_hard_ug I, bolus_soft_ug I,"
    " bolus_hard_ug I, rate_increase_soft_pct I, rate_increase_hard_pct I,"
    " concentration_ug_per_ml I"
    "\n13 set_limits|daily_dose_soft_ug I, daily_dose_hard_ug I, bolus_soft_ug I,"
    " bolus_hard_ug I, rate_increase_soft_pct I, rate_increase_hard_pct I,"
    " concentration_ug_per_ml I =0|*pair"
    "\n20 program_continuous|basal_ug_per_day I, confirm B bool =0"
    "|old_daily_ug I, new_daily_ug I"
    "\n21 program_flex|*flex|old_daily_ug I, new_daily_ug I"
    "\n22 clinician_bolus|dose_ug I, duration_ms I, confirm B bool =0|dose_ug I, duration_ms I"
    "\n23 patient_bolus patient|-|dose_ug I, lockout_until_ms Q"
    "\n24 set_patient_bolus|enabled B bool, dose_ug I, duration_ms I, lockout_ms I,"
    " max_per_24h B, confirm B bool =0|old_enabled B bool, old_dose_ug I"
    "\n25 refill|volume_nl I, concentration_ug_per_ml I, bridge B bool =0"
    "|old_estimate_nl I, new_estimate_nl I"
    "\n26 stop|-|-"
    "\n27 start|-|-"
    "\n28 set_clock|wall_ms Q|old_wall_ms Q"
    "\n29 silence_alarms patient|minutes H|silenced B"
    "\n2A clear_alarm|-|-"
    "\n2B alarm_test|-|-"
    "\n2C set_low_reservoir_alarm|volume_nl I|old_volume_nl I"
)

# Value kinds of a field: their index in _KINDS is the KIND word's place in the table.
_INT = const(0)
_BOOL = const(1)
_BYTES = const(2)       # exactly as many bytes as the format says
_TEXT = const(3)        # NUL-padded printable ASCII
_VERSION = const(4)     # three u8 <-> "major.minor.patch"
_ENUM = const(5)        # u8 index <-> name
_BITS = const(6)        # u16 bit set <-> list of names
_ROLE = const(7)        # u8 1..2; encode takes the name too
_KINDS = ("", "bool", "bytes", "text", "version", "enum", "bits", "role")

# An integer's format character -> its big-endian struct format.
_BIG = {"B": ">B", "H": ">H", "I": ">I", "Q": ">Q", "i": ">i", "q": ">q"}


def _wire_range(fmt, n):
    # (lo, hi) of n-byte B H I Q (unsigned), i q (signed): made when a message needs them.
    bits = 8 * n
    if fmt < "a":
        return 0, (1 << bits) - 1
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


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


def _index(what, key, v, t, a, b):
    # v (a name, or already an index) -> its index among the "/"-separated names t[a:b].
    n = t.count("/", a, b) + 1
    if isinstance(v, str):
        pos = a
        for i in range(n):
            stop = t.find("/", pos, b)
            if stop < 0:
                stop = b
            if stop - pos == len(v) and t.startswith(v, pos):
                return i
            pos = stop + 1
    elif _is_int(v) and 0 <= v < n:
        return v
    raise _out_of_range(what, key, v, 0, n - 1, t[a:b].replace("/", ", "))


def _text_bytes(what, key, v, size):
    # A text that is not a short enough str is refused as its stand-in b"\0" (not printable).
    raw = v.encode() if isinstance(v, str) and len(v) <= size else b"\0"
    for b in raw:
        if b < 0x20 or b > 0x7E:
            raise _out_of_range(what, key, v, 0, size,
                                "printable ASCII text of at most %d characters" % size)
    return raw


def _version_bytes(what, key, v):
    parts = v.split(".") if isinstance(v, str) else v
    try:
        if len(parts) == 3:
            a, b, c = parts
            a, b, c = int(a), int(b), int(c)
            if 0 <= a <= 255 and 0 <= b <= 255 and 0 <= c <= 255:
                return bytes((a, b, c))
    except (TypeError, ValueError):
        pass
    raise _out_of_range(what, key, v, 0, 255, "\"major.minor.patch\", each 0..255")


def _bits(what, key, v, t, a, b):
    # v (a list of names among t[a:b], or already the bits) -> the bits.
    if _is_int(v):
        return _check_int(what, key, v, 0, 0xFFFF)
    bits = 0
    try:
        for name in v:
            bits |= 1 << _index(what, key, name, t, a, b)
    except TypeError:
        raise _out_of_range(what, key, v, 0, t.count("/", a, b), t[a:b].replace("/", ", "))
    return bits


def _field(t, pos, end, f=None):
    # Reads the field at t[pos:] (its layout ends at end) into the list f: [key, format, size,
    # kind, extra, default, names_end], where extra is an _INT's narrower (lo, hi), or where
    # the names of an _ENUM, _BITS or _ROLE start (they end at names_end), else None.  Returns
    # where the next field starts, and its size when there is no f.  f is the caller's, reused
    # field after field: reading a layout allocates only its keys (a one-character format is
    # interned by MicroPython).
    stop = t.find(", ", pos, end)
    if stop < 0:
        stop = end
    at = t.find(" ", pos, stop)
    if f:
        f[0] = t[pos:at]
        f[3] = _INT
        f[4] = f[5] = f[6] = None
    pos = at + 1
    at = t.find(" ", pos, stop)
    if at < 0:
        at = stop
    fmt = t[pos] if at == pos + 1 else t[pos:at]
    if not f:
        return struct.calcsize(fmt)
    f[1] = fmt
    f[2] = struct.calcsize(fmt)
    while at < stop:
        pos = at + 1
        at = t.find(" ", pos, stop)
        if at < 0:
            at = stop
        c = t[pos]
        if c == "=":
            f[5] = int(t[pos + 1:at])
        elif "0" <= c <= "9":
            c = t.find("..", pos, at)
            f[4] = (int(t[pos:c]), int(t[c + 2:at]))
        elif f[3] >= _ENUM:
            f[4] = pos
            f[6] = at
        else:
            f[3] = _KINDS.index(t[pos:at])
    return stop + 2


class _Layout:
    # A fixed layout: the fields of text[start:end] (the grammar above _TABLE).
    def __init__(self, t, pos, end):
        self.text = t
        self.start = pos
        self.end = end
        n = 0
        while pos < end:
            n += _field(t, pos, end)
            pos = t.find(", ", pos, end)
            pos = end if pos < 0 else pos + 2
        self.size = self.max_size = n

    def names(self):
        # "key, key, ...": the keys it wants, for the messages that list them.
        out = []
        f = [None] * 7
        pos = self.start
        while pos < self.end:
            pos = _field(self.text, pos, self.end, f)
            out.append(f[0])
        return ", ".join(out)

    def encode(self, fields, what):
        if not fields:
            fields = {}
        t = self.text
        end = self.end
        pos = self.start
        buf = bytearray(self.size)
        f = [None] * 7
        p = 0
        while pos < end:
            pos = _field(t, pos, end, f)
            key, fmt, n, kind, extra, default, names_end = f
            v = fields.get(key, default)
            if v is None:
                if kind == _BITS and "alarm_bits" in fields:
                    v = fields["alarm_bits"]
                else:
                    raise ProtocolError(reasons.OUT_OF_RANGE, "%s: %s is missing; give all of %s"
                                        % (what, key, self.names()), key)
            if kind == _INT:
                if extra:
                    _check_int(what, key, v, extra[0], extra[1])
                else:
                    # Shifted right by its width, a value that fits leaves 0 (unsigned) or 0 or
                    # -1 (signed): no 64-bit bounds are held to compare it with.
                    top = v >> (8 * n if fmt < "a" else 8 * n - 1) if _is_int(v) else 1
                    if top != 0 and (top != -1 or fmt < "a"):
                        lo, hi = _wire_range(fmt, n)
                        raise _out_of_range(what, key, v, lo, hi)
            elif kind == _BOOL:
                if not (v is True or v is False or (_is_int(v) and 0 <= v <= 1)):
                    raise _out_of_range(what, key, v, 0, 1, "true or false")
                v = 1 if v else 0
            elif kind == _BYTES:
                if not isinstance(v, (bytes, bytearray, memoryview)) or len(v) != n:
                    raise _out_of_range(what, key, v, n, n, "%d bytes" % n)
            elif kind == _TEXT:
                v = _text_bytes(what, key, v, n)
            elif kind == _VERSION:
                v = _version_bytes(what, key, v)
            elif kind == _ENUM:
                v = _index(what, key, v, t, extra, names_end)
            elif kind == _BITS:
                v = _bits(what, key, v, t, extra, names_end)
            else:  # _ROLE
                if isinstance(v, str):
                    v = _index(what, key, v, t, extra, names_end)
                v = _check_int(what, key, v, 1, 2)
            if len(fmt) > 1:
                buf[p:p + len(v)] = v           # 16s, 3B (text: the rest stays NUL)
            else:
                struct.pack_into(_BIG[fmt], buf, p, v)
            p += n
        return bytes(buf)

    def decode(self, body, what, more=None):
        # more(kind, key, names, v, out, what) -> value decodes the kinds only responses carry
        # (_TEXT, _VERSION: v the raw bytes; _ENUM, _BITS: v the integer, names their text):
        # the programmer's half has it (commands_host.py); the pump decodes requests only.
        if len(body) != self.size:
            raise _bad_length(what, len(body), self.size)
        t = self.text
        end = self.end
        pos = self.start
        out = {}
        f = [None] * 7
        p = 0
        while pos < end:
            pos = _field(t, pos, end, f)
            key, fmt, n, kind, extra, default, names_end = f
            if len(fmt) > 1:
                v = bytes(body[p:p + n])        # 16s, 3B
            elif n == 1:
                v = body[p]
            else:
                v = struct.unpack_from(_BIG[fmt], body, p)[0]
            p += n
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
                v = more(kind, key, names_end and t[extra:names_end], v, out, what)
            out[key] = v
        return out


class _Pair:
    # Two dicts of one layout, one after the other (SET_LIMITS: old limits, then new).
    keys = ("old", "new")

    def __init__(self, layout):
        self.layout = layout
        self.max_size = 2 * layout.size

    def encode(self, fields, what):
        out = b""
        for key in self.keys:
            v = fields.get(key) if fields else None
            if not isinstance(v, dict):
                raise ProtocolError(reasons.OUT_OF_RANGE, "%s: %s must be a dict of %s"
                                    % (what, key, self.layout.names()), key)
            out += self.layout.encode(v, what + " " + key)
        return out


class _FlexRequest:
    # confirm u8, then 7 days of: steps u8 (1..13), steps x (start_minute u16, ug_per_day u32)
    max_size = 1 + FLEX_DAYS * (1 + FLEX_MAX_STEPS * 6)

    def decode(self, body, what):
        n = len(body)
        if n < 1:
            raise _bad_length(what, n, "1 + 7 x (1 + 6 x steps)")
        confirm = body[0]
        if confirm > 1:
            raise _out_of_range(what, "confirm", confirm, 0, 1, "0 or 1")
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
                minute, ug = struct.unpack_from(">HI", body, pos)
                day.append([minute, ug])
                pos += 6
            days.append(day)
        if pos != n:
            raise _bad_length(what, n, "%d (1 + 7 x (1 + 6 x steps))" % pos)
        return {"confirm": confirm == 1, "steps": days}


# READ_LOG's answer codec is the host's (protocol/commands_host.py puts it here): the pump
# writes its pages straight from storage into the frame (firmware/answers.py).
_LogResponse = None


class Command:
    # One line of _TABLE (pos: its "\n"), read when COMMANDS is asked for it; .request and
    # .response (the codecs) are built when used: the pump asks .auth and .patient first.
    def __init__(self, code, pos):
        t = _TABLE
        at = self._at = t.find("|", pos)          # before the request
        who = t.find(" ", pos + 4, at)
        self.code = code
        self.name = t[pos + 4:at if who < 0 else who]
        self.auth = who < 0 or not t.startswith("open", who + 1)
        self.patient = who > 0

    @property
    def request(self):
        return _codec(self._at, 0)

    @property
    def response(self):
        return _codec(self._at, 1)


def _codec(at, part):
    # The codec of a command's request (part 0) or response (1); at: its line's first "|".
    t = _TABLE
    start = at + 1
    end = t.find("|", start)
    if part:
        start = end + 1
        end = t.find("\n", start)
        if end < 0:
            end = len(t)
    c = t[start]
    if c == "-":
        end = start
    elif c == "*":
        if t.startswith("*flex", start):
            return _FlexRequest()
        if t.startswith("*log", start):
            return _LogResponse()
        return _Pair(COMMANDS[READ_LIMITS].response)
    return _Layout(t, start, end)


class _Commands:
    # COMMANDS: _TABLE read as a dict code -> Command, each built when asked for.  The pump
    # only looks commands up; the host's COMMANDS (protocol/commands_host.py) also iterates.
    def get(self, code, default=None):
        pos = _TABLE.find("\n%02X " % code) if isinstance(code, int) else -1
        return default if pos < 0 else Command(code, pos)

    def __getitem__(self, code):
        c = self.get(code)
        if c is None:
            raise KeyError(code)
        return c


COMMANDS = _Commands()


def _lookup(cmd):
    c = COMMANDS.get(cmd)
    if c is None:
        names = _TABLE.split("\n")[1:]
        for i in range(len(names)):
            names[i] = names[i].split("|")[0].split(" ")[1]
        names.sort()
        raise ProtocolError(reasons.UNKNOWN_COMMAND,
                            "unknown command %r; known: %s" % (cmd, ", ".join(names)), None, cmd)
    return c


def _what(c, part):         # "INTERROGATE response": what an error message names
    return "%s %s" % (c.name.upper(), part)


def decode_request(cmd, body):
    c = _lookup(cmd)
    return c.request.decode(body, _what(c, "request"))


def encode_ack(cmd, fields=None):
    c = _lookup(cmd)
    return b"\x00" + c.response.encode(fields or {}, _what(c, "response"))


def _nak_int(v):
    # A NAK must always go out: a value that is not an integer becomes 0, one beyond an i64 is
    # clamped (one that fits leaves 0 or -1 shifted right by 63).
    if v is True or v is False:
        return 1 if v else 0
    if not isinstance(v, int):
        return 0
    if v >> 63 in (0, -1):
        return v
    lo, hi = _wire_range("q", 8)
    return hi if v > 0 else lo


def encode_nak(reason, field=None, value=0, lo=0, hi=0):
    if not _is_int(reason) or not 1 <= reason <= 255:
        raise _out_of_range("NAK", "reason", reason, 1, 255,
                            "1..255 (0 is an acknowledgement: use encode_ack)")
    if _is_int(field):
        fid = field if 0 <= field <= 255 else 0
    else:
        fid = field_id(field)
    return struct.pack(">BBqqq", reason, fid, _nak_int(value), _nak_int(lo), _nak_int(hi))


# The programmer's half (encode a request, decode a response, look a command up by name) is in
# protocol/commands_host.py: host-facing, so a board's .mpy bundle leaves it out (tools/flash.py
# skips imports guarded by ImportError) and the pump carries only what it runs.
try:
    from protocol.commands_host import by_name, encode_request, decode_response  # noqa: F401
except ImportError:
    pass
