# Bench I/O protocol (docs/bench-io.md): a host drives the hardware parts of a bench board
# (motor, battery, annunciator) over the telemetry frame layer (protocol/frame.py: sync, LEN,
# VER 1, SEQ, CMD, payload, CRC-16/CCITT-FALSE).  Its own command codes, 0x40 to 0x4F, so a
# pump and an I/O server tell each other apart: each answers the other's commands with
# unknown_command.
#
#   request  CMD               payload                  response payload (status 00 first)
#   IDENTIFY         0x40      -                        00 | io_version u8 | parts u8 | name
#   MOTOR_STROKE     0x41      -                        00 | result u8 (0 ok, 1 stall)
#   BATTERY_READ_MV  0x42      -                        00 | mv u16
#   TONE             0x43      kind u8 | duration_ms u32   00
#   an error, any command      -                        status u8 (not 0) | message (ASCII)
#
# The response has the request's SEQ and CMD | 0x80.  The server keeps its last request and
# response: the very same request (SEQ, CMD, payload) again is answered from that cache
# without touching the part, so a host that lost a response to MOTOR_STROKE retries without a
# second stroke.  A client's first request on a link is IDENTIFY (it replaces whatever the
# server had cached from an earlier client).
#
# Runs on MicroPython: struct only, no typing, no dataclasses.

import struct

from protocol import reasons
from protocol.errors import ProtocolError

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

IO_VERSION = const(1)

IDENTIFY = const(0x40)
MOTOR_STROKE = const(0x41)
BATTERY_READ_MV = const(0x42)
TONE = const(0x43)

# Request payload sizes.
REQUEST_SIZE = {IDENTIFY: 0, MOTOR_STROKE: 0, BATTERY_READ_MV: 0, TONE: 5}
NAMES = {IDENTIFY: "IDENTIFY", MOTOR_STROKE: "MOTOR_STROKE",
         BATTERY_READ_MV: "BATTERY_READ_MV", TONE: "TONE"}

# Response status.  1 to 4 and 16 mean what the reasons of the same number mean in telemetry.
OK = const(0)
BAD_CRC = const(1)              # the request arrived damaged; resend it
BAD_LENGTH = const(2)           # the payload has the wrong size for the command
UNKNOWN_COMMAND = const(3)      # not a bench I/O command
BAD_VERSION = const(4)          # frame VER other than 1
OUT_OF_RANGE = const(16)        # a field is outside its allowed range (tone kind, duration)
NO_PART = const(64)             # the board has no such part
PART_FAILED = const(65)         # the part raised an error; the message says which

STATUS_NAMES = {
    OK: "ok", BAD_CRC: "bad_crc", BAD_LENGTH: "bad_length",
    UNKNOWN_COMMAND: "unknown_command", BAD_VERSION: "bad_version",
    OUT_OF_RANGE: "out_of_range", NO_PART: "no_part", PART_FAILED: "part_failed",
}

# IDENTIFY's parts bits.
PART_MOTOR = const(1)
PART_BATTERY = const(2)
PART_ANNUNCIATOR = const(4)
PART_NAMES = ((PART_MOTOR, "motor"), (PART_BATTERY, "battery"),
              (PART_ANNUNCIATOR, "annunciator"))

# Motor stroke results (hal.base STROKE_OK, STROKE_STALL).
RESULT_OK = const(0)
RESULT_STALL = const(1)

MAX_NAME = const(32)
MAX_MESSAGE = const(80)
# Longest payloads, for the decoders: a small limit means a frame whose LEN was damaged on the
# line swallows at most a few bytes of what follows before its CRC fails.
MAX_REQUEST_PAYLOAD = const(5)
MAX_RESPONSE_PAYLOAD = const(81)        # status + MAX_MESSAGE
MAX_MV = const(0xFFFF)
MAX_TONE_MS = const(0xFFFFFFFF)

_ACK = b"\x00"


def status_name(status):
    return STATUS_NAMES.get(status, "status_%d" % status)


def part_names(parts):
    out = []
    for bit, name in PART_NAMES:
        if parts & bit:
            out.append(name)
    return out


def _ascii(text, limit):
    # Printable ASCII, at most limit bytes: what a name or a message may carry.
    out = bytearray()
    for ch in str(text):
        code = ord(ch)
        out.append(code if 32 <= code < 127 else 63)        # "?"
        if len(out) >= limit:
            break
    return bytes(out)


# -- requests -------------------------------------------------------------------------------

def encode_tone(kind, duration_ms):
    if not 0 <= kind <= 255:
        raise ProtocolError(reasons.OUT_OF_RANGE, "tone kind %d is out of range: give 0..255"
                            % kind, None, kind, 0, 255)
    if not 0 <= duration_ms <= MAX_TONE_MS:
        raise ProtocolError(reasons.OUT_OF_RANGE, "tone duration %d ms is out of range: give "
                            "0..%d" % (duration_ms, MAX_TONE_MS), None, duration_ms, 0,
                            MAX_TONE_MS)
    return struct.pack(">BI", kind, duration_ms)


def decode_tone(payload):
    return struct.unpack(">BI", payload)


# -- responses ------------------------------------------------------------------------------

def encode_error(status, message=""):
    return bytes((status,)) + _ascii(message, MAX_MESSAGE)


def encode_identify(name, parts):
    return _ACK + bytes((IO_VERSION, parts & 0xFF)) + _ascii(name, MAX_NAME)


def encode_stroke(result):
    return _ACK + bytes((result,))


def encode_mv(mv):
    return _ACK + struct.pack(">H", mv)


def encode_ok():
    return _ACK


def _text(data):
    out = []
    for b in data:
        out.append(chr(b) if 32 <= b < 127 else "?")
    return "".join(out)


def decode_error(body):
    # (status, message) of a response whose first byte is not 0.
    text = body[1:]
    for b in text:
        if not 32 <= b < 127:
            # Not an I/O server's message (a pump's 26-byte NAK, say): do not show the bytes.
            return body[0], "(%d bytes of binary, not a bench I/O server's message)" % len(text)
    return body[0], _text(text)


def decode_response(cmd, body):
    # The fields of an OK response (body[0] == 0) to request cmd; ProtocolError(bad_length)
    # when the body does not have the command's size.
    n = len(body)
    if cmd == IDENTIFY:
        if n < 3 or n > 3 + MAX_NAME:
            _bad_size(cmd, n, "3..%d" % (3 + MAX_NAME))
        return {"io_version": body[1], "parts": body[2], "name": _text(body[3:])}
    if cmd == MOTOR_STROKE:
        if n != 2:
            _bad_size(cmd, n, "2")
        return {"result": body[1]}
    if cmd == BATTERY_READ_MV:
        if n != 3:
            _bad_size(cmd, n, "3")
        return {"mv": (body[1] << 8) | body[2]}
    if n != 1:
        _bad_size(cmd, n, "1")
    return {}


def _bad_size(cmd, n, allowed):
    raise ProtocolError(reasons.BAD_LENGTH, "%s response of %d bytes: expected %s"
                        % (NAMES.get(cmd, "0x%02X" % cmd), n, allowed), None, n)
