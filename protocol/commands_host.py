# The programmer's half of the command codecs (protocol/commands.py): encode a request, decode
# a response (an ACK's fields or a NAK's reason), look a command up by name.  The pump only
# decodes requests and encodes responses, so this module is host-facing: protocol/commands.py
# imports it under an ImportError guard and a board's .mpy bundle leaves it out
# (tools/flash.py).  Callers use it through protocol.commands (commands.encode_request, ...):
# it also gives the host's commands.COMMANDS its dict iteration and puts the table's names lists
# in commands as tuples (THERAPY_STATES, ..., ALARMS, ROLE_NAMES, LIMITS), which the pump reads
# straight off its table.  It runs unchanged on MicroPython all the same (the tests' programmer
# does).

import struct

from protocol import commands as C
from protocol import reasons
from protocol.errors import ProtocolError
from protocol.fields import field_name

# The value kinds only responses carry: protocol/commands.py's _TEXT, _VERSION, _ENUM, _BITS
# (MicroPython keeps no _-named const in a module, so they are restated here;
# tests/protocol/test_commands.py holds them equal).
TEXT_KIND = 3
VERSION_KIND = 4
ENUM_KIND = 5
BITS_KIND = 6


# The host keeps what the pump reads again on every use (its heap is what the board lacks):
# each command, each codec and each field of the table parsed once.  A programmer, `vpump serve`
# and the benchmarks answer thousands of frames a second through these; nothing cached changes
# after it is made, so threads may share it.
_COMMANDS = {}
_CODECS = {}
_FIELDS = {}
_pump_codec = C._codec
_pump_field = C._field


def _codec(at, part):
    codec = _CODECS.get((at, part))
    if codec is None:
        codec = _CODECS[(at, part)] = _pump_codec(at, part)
    return codec


def _field(t, pos, end, f=None):
    if t is not C._TABLE:
        return _pump_field(t, pos, end, f)
    hit = _FIELDS.get((pos, end))
    if hit is None:
        g = [None] * 7
        after = _pump_field(t, pos, end, g)
        hit = _FIELDS[(pos, end)] = (tuple(g), after)
    if not f:
        return hit[0][2]
    f[:] = hit[0]
    return hit[1]


class _Commands(C._Commands):
    # The host's COMMANDS: the pump's (lookups, kept once made), iterable as a dict too, in the
    # table's order.
    def get(self, code, default=None):
        if not isinstance(code, int):
            return C._Commands.get(self, code, default)
        c = _COMMANDS.get(code)
        if c is None:
            c = C._Commands.get(self, code)
            if c is None:
                return default
            _COMMANDS[code] = c
        return c

    def keys(self):
        out = []
        pos = C._TABLE.find("\n")
        while pos >= 0:
            out.append(int(C._TABLE[pos + 1:pos + 3], 16))
            pos = C._TABLE.find("\n", pos + 1)
        return out

    def __iter__(self):
        return iter(self.keys())

    def __len__(self):
        return len(self.keys())

    def __contains__(self, code):
        return self.get(code) is not None

    def values(self):
        return [self[code] for code in self.keys()]

    def items(self):
        return [(code, self[code]) for code in self.keys()]


_BY_NAME = {}      # name -> code, filled on first use (the host may keep what it likes)


def by_name(name):
    if not _BY_NAME:
        for code, c in C.COMMANDS.items():
            _BY_NAME[c.name] = code
    code = _BY_NAME.get(name.lower().replace("-", "_")) if isinstance(name, str) else None
    if code is None:
        raise ProtocolError(reasons.UNKNOWN_COMMAND,
                            "unknown command %r; known: %s" % (name, ", ".join(sorted(_BY_NAME))),
                            None, name)
    return code


def layout_fields(layout):
    # [(key, format, kind, extra, default)] of a fixed layout's fields (a C._Layout), in wire
    # order: extra is an integer's narrower (lo, hi), or the names (a tuple) an enum's index,
    # a bit set's bits or a role's byte stand for.
    out = []
    f = [None] * 7
    t = layout.text
    pos = layout.start
    while pos < layout.end:
        pos = C._field(t, pos, layout.end, f)
        extra = tuple(t[f[4]:f[6]].split("/")) if f[6] else f[4]
        out.append((f[0], f[1], f[3], extra, f[5]))
    return out


def _names(code, part, key):
    # The names of a field of the table (its ENUM, BITS or ROLE names), as a tuple.
    for f in layout_fields(getattr(C.COMMANDS[code], part)):
        if f[0] == key:
            return f[3]


def encode_request(cmd, fields=None):
    c = C._lookup(cmd)
    what = C._what(c, "request")
    if isinstance(c.request, C._FlexRequest):
        return _encode_flex(fields or {}, what)
    return c.request.encode(fields or {}, what)


def decode_response(cmd, body):
    # cmd: the request's code or the response's (bit 7 set); a NAK decodes without knowing it.
    n = len(body)
    if n == 0:
        raise C._bad_length("response", 0, "at least 1 (the status)")
    status = body[0]
    if status:
        if n != C.NAK_SIZE:
            raise C._bad_length("NAK", n, C.NAK_SIZE)
        reason, fid, value, lo, hi = struct.unpack(">BBqqq", body)
        return reason, {"reason": reason, "reason_name": reasons.name(reason),
                        "field": field_name(fid) if fid else None,
                        "value": value, "lo": lo, "hi": hi}
    c = C._lookup(cmd & 0x7F)
    what = C._what(c, "response")
    codec = c.response
    if isinstance(codec, LogResponse):
        return 0, _decode_log(codec, body[1:], what)
    if isinstance(codec, C._Pair):
        return 0, _decode_pair(codec, body[1:], what)
    return 0, codec.decode(body[1:], what, _decode_kind)


def _decode_kind(kind, key, names, v, out, what):
    # For _Layout.decode: a value of a kind only responses carry -> its value.
    if kind == TEXT_KIND:
        end = v.find(b"\x00")
        if end >= 0:
            v = v[:end]
        for b in v:
            if b < 0x20 or b > 0x7E:
                raise C._out_of_range(what, key, v, 0, 0, "printable ASCII")
        return v.decode()
    if kind == VERSION_KIND:
        return "%d.%d.%d" % (v[0], v[1], v[2])
    names = names.split("/")
    if kind == ENUM_KIND:
        # A newer pump may report a state this programmer does not know: name it.
        return names[v] if v < len(names) else "%s_%d" % (key, v)
    if kind == BITS_KIND:
        out["alarm_bits"] = v
        got = []
        for i in range(16):
            if v & (1 << i):
                got.append(names[i] if i < len(names) else "alarm_%d" % i)
        return got
    raise C._out_of_range(what, key, v, 0, 0, "a known value kind")


_CONFIRM = C._Layout("confirm B bool =0", 0, 17)     # PROGRAM_FLEX's first byte


def _encode_flex(fields, what):
    # confirm u8, then 7 days of: steps u8 (1..13), steps x (start_minute u16, ug_per_day u32)
    out_of_range = C._out_of_range
    check_int = C._check_int
    pack = struct.pack
    days_n = C.FLEX_DAYS
    steps_max = C.FLEX_MAX_STEPS
    confirm = _CONFIRM.encode(fields, what)
    days = fields.get("steps") if fields else None
    if not isinstance(days, (list, tuple)) or len(days) != days_n:
        raise out_of_range(what, "flex_days", len(days) if isinstance(days, (list, tuple))
                           else days, days_n, days_n, "7 days, Monday first")
    parts = [confirm]
    for day in days:
        if not isinstance(day, (list, tuple)) or not 1 <= len(day) <= steps_max:
            raise out_of_range(what, "flex_steps_per_day",
                               len(day) if isinstance(day, (list, tuple)) else day,
                               1, steps_max)
        parts.append(pack(">B", len(day)))
        for step in day:
            if not isinstance(step, (list, tuple)) or len(step) != 2:
                raise out_of_range(what, "flex_start_minute", step, 0, 0xFFFF,
                                   "[start_minute, ug_per_day] pairs")
            parts.append(pack(">HI",
                              check_int(what, "flex_start_minute", step[0], 0, 0xFFFF),
                              check_int(what, "flex_ug_per_day", step[1], 0, 0xFFFFFFFF)))
    return b"".join(parts)


_U64_MAX = 0xFFFFFFFFFFFFFFFF


class LogResponse:
    # READ_LOG's answer (the pump writes it itself: firmware/answers.py log_page).
    # count u8, next_seq u32, then count x (seq u32, t_ms u64, code u8, 4 x i32)
    keys = ("next_seq", "entries")
    _ENTRY = ">IQBiiii"
    _ENTRY_SIZE = 29
    max_size = 5 + C.READ_LOG_MAX_ENTRIES * 29

    def encode(self, fields, what):
        next_seq = C._check_int(what, "next_seq",
                                fields.get("next_seq") if fields else None, 0, 0xFFFFFFFF)
        entries = fields.get("entries")
        if not isinstance(entries, (list, tuple)) or len(entries) > C.READ_LOG_MAX_ENTRIES:
            raise C._out_of_range(what, "entries",
                                  len(entries) if isinstance(entries, (list, tuple)) else entries,
                                  0, C.READ_LOG_MAX_ENTRIES,
                                  "a list of at most %d entries" % C.READ_LOG_MAX_ENTRIES)
        parts = [struct.pack(">BI", len(entries), next_seq)]
        for e in entries:
            if not isinstance(e, dict):
                raise C._out_of_range(what, "entries", e, 0, 0,
                                      "dicts of seq, t_ms, code, args")
            args = e.get("args", ())
            if not isinstance(args, (list, tuple)) or len(args) > 4:
                raise C._out_of_range(what, "args", args, 0, 4,
                                      "a list of at most 4 integers")
            a = [0, 0, 0, 0]
            for i in range(len(args)):
                a[i] = C._check_int(what, "args", args[i], -0x80000000, 0x7FFFFFFF)
            parts.append(struct.pack(self._ENTRY,
                                     C._check_int(what, "seq", e.get("seq"), 0, 0xFFFFFFFF),
                                     C._check_int(what, "t_ms", e.get("t_ms"), 0, _U64_MAX),
                                     C._check_int(what, "code", e.get("code"), 0, 0xFF),
                                     a[0], a[1], a[2], a[3]))
        return b"".join(parts)


def _decode_log(codec, body, what):
    # count u8, next_seq u32, then count x (seq u32, t_ms u64, code u8, 4 x i32)
    n = len(body)
    if n < 5:
        raise C._bad_length(what, n, "5 + 29 x count")
    count, next_seq = struct.unpack_from(">BI", body, 0)
    size = codec._ENTRY_SIZE
    if n != 5 + count * size:
        raise C._bad_length(what, n, "5 + 29 x %d = %d" % (count, 5 + count * size))
    entries = []
    pos = 5
    for _ in range(count):
        seq, t_ms, code, a0, a1, a2, a3 = struct.unpack_from(codec._ENTRY, body, pos)
        entries.append({"seq": seq, "t_ms": t_ms, "code": code, "args": [a0, a1, a2, a3]})
        pos += size
    return {"next_seq": next_seq, "entries": entries}


def _decode_pair(codec, body, what):
    # Two dicts of one layout, one after the other (SET_LIMITS: old limits, then new).
    n = codec.layout.size
    if len(body) != 2 * n:
        raise C._bad_length(what, len(body), 2 * n)
    a, b = codec.keys
    return {a: codec.layout.decode(body[:n], what + " " + a, _decode_kind),
            b: codec.layout.decode(body[n:], what + " " + b, _decode_kind)}


# Imported before protocol.commands had finished loading (someone imported this module
# first)?  Then commands could not take these names at its end: hand them over now.
C.COMMANDS = _Commands()
C._codec = _codec
C._field = _field
C._LogResponse = LogResponse
# The table's names lists as the tuples host code indexes (the pump reads them off its table):
# wire indices, checked by tests against firmware/table.py and firmware/alarms.py.
C.THERAPY_STATES = _names(C.INTERROGATE, "response", "therapy")
C.RESERVOIR_STATES = _names(C.INTERROGATE, "response", "reservoir")
C.BATTERY_STATES = _names(C.INTERROGATE, "response", "battery")
C.MODES = _names(C.INTERROGATE, "response", "mode")
C.ALARMS = _names(C.INTERROGATE, "response", "alarms")
C.ROLE_NAMES = _names(C.SESSION_OPEN, "request", "role")    # index = role byte (session.py)
# The drug library's limits in wire order (READ_LIMITS' answer).
C.LIMITS = tuple(f[0] for f in layout_fields(C.COMMANDS[C.READ_LIMITS].response))
C.by_name = by_name
C.encode_request = encode_request
C.decode_response = decode_response
