# Telemetry frames (docs/protocol.md, "Frame"):
#
#    byte 0      1      2     3     4       5       6       7 ... 6+N      7+N   8+N
#    +------+------+-----+-----+-------+-------+-------+-----------------+-----+-----+
#    | 0xA5 | 0x5A | LEN (u16) | VER   | SEQ   | CMD   | PAYLOAD (N)     | CRC (u16) |
#    +------+------+-----+-----+-------+-------+-------+-----------------+-----+-----+
#                 |<---------- CRC covers bytes 2 .. 6+N ------------------>|
#
#   LEN = N + 3 (VER, SEQ, CMD and PAYLOAD), big-endian; CRC-16/CCITT-FALSE (protocol/crc.py).
#
#   encode(seq, cmd, payload=b"", version=VERSION) -> the frame (bytes)
#   finish(buf) -> buf: a bytearray of VER SEQ CMD PAYLOAD at 4..len-2, framed in place
#   Decoder(max_payload=MAX_PAYLOAD, gap_ms=0, char_us=0)
#   .feed(data, now_ms=None) -> [(status, version, seq, cmd, payload), ...]
#       status reasons.OK: a good frame; reasons.BAD_CRC: a frame whose CRC failed (payload b"",
#       version/seq/cmd as read from the damaged header, not to be trusted).
#   .idle(now_ms)  the link had nothing new at now_ms (lets a partial frame time out)
#   link_timing(baud) -> (gap_ms, char_us) for a UART; SOCKET_GAP_MS for links without a baud
#
# Inter-byte timeout (docs/protocol.md, "Timing"), like Modbus RTU's 3.5 character times: with
# gap_ms > 0 and times given (in link time: the clock the bytes arrive by), a partial frame is
# dropped (counted in timeouts and dropped_bytes) when the line was silent for more than gap_ms
# inside it, or when it has been arriving for longer than gap_ms + its length in character
# times: a frame stalled behind a false start or trickled in by someone else is never run
# later, when whoever sent it has given up on it.
#
# The decoder never raises for any bytes.  It keeps only the bytes it cannot decide yet (the
# start of an incomplete frame: less than one maximum frame) between calls; everything else is
# either a frame or counted in dropped_bytes, so bytes fed == good frame bytes + dropped_bytes +
# buffered, always.

import struct

from protocol import reasons
from protocol.crc import crc16
from protocol.errors import ProtocolError

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

SYNC = b"\xa5\x5a"
VERSION = const(1)
MAX_PAYLOAD = const(1024)
RESPONSE = const(0x80)
OVERHEAD = const(9)             # sync 2 + LEN 2 + VER, SEQ, CMD + CRC 2

_SYNC0 = const(0xA5)
_MIN_LEN = const(3)
_OK = const(0)                  # reasons.OK, BAD_CRC as local consts for the hot loop
_BAD_CRC = const(1)

_pack = struct.pack

SOCKET_GAP_MS = const(100)      # the stated timeout of links without a baud rate (socket, pty)
_MIN_GAP_MS = const(5)          # tick resolution and UART FIFO latency: never less


def link_timing(baud):
    # 3.5 characters of 10 bits (8N1), at least _MIN_GAP_MS; and one character's time in us.
    return max(_MIN_GAP_MS, (35000 + baud - 1) // baud), 10000000 // baud


def encode(seq, cmd, payload=b"", version=VERSION):
    n = len(payload)
    # struct on MicroPython truncates out-of-range values silently, so check here.
    if n > MAX_PAYLOAD or not (0 <= seq <= 255 and 0 <= cmd <= 255 and 0 <= version <= 255):
        _refuse(seq, cmd, n, version)
    body = _pack(">HBBB", n + 3, version, seq, cmd) + payload
    return SYNC + body + _pack(">H", crc16(body))


def finish(buf):
    # A frame built in place (a bytearray holding VER, SEQ, CMD and the payload at 4 .. len-2):
    # writes the sync, LEN and CRC around them, so a large answer is framed without a copy.
    n = len(buf)
    buf[0:2] = SYNC
    struct.pack_into(">H", buf, 2, n - 6)
    struct.pack_into(">H", buf, n - 2, crc16(memoryview(buf)[2:n - 2]))
    return buf


def _refuse(seq, cmd, n, version):
    if n > MAX_PAYLOAD:
        raise ProtocolError(reasons.BAD_LENGTH,
                            "payload of %d bytes is too long: at most %d bytes fit in a frame"
                            % (n, MAX_PAYLOAD), "payload", n, 0, MAX_PAYLOAD)
    for name, value in (("seq", seq), ("cmd", cmd), ("version", version)):
        if not 0 <= value <= 255:
            raise ProtocolError(reasons.OUT_OF_RANGE,
                                "%s %d is out of range: give 0..255" % (name, value),
                                name, value, 0, 255)


class Decoder:
    def __init__(self, max_payload=MAX_PAYLOAD, gap_ms=0, char_us=0):
        if not 0 <= max_payload <= 0xFFFF - _MIN_LEN:
            raise ProtocolError(reasons.OUT_OF_RANGE,
                                "max_payload %d is out of range: give 0..%d"
                                % (max_payload, 0xFFFF - _MIN_LEN),
                                "max_payload", max_payload, 0, 0xFFFF - _MIN_LEN)
        self.max_payload = max_payload
        self._max_len = max_payload + _MIN_LEN
        self.gap_ms = gap_ms
        # The longest a partial frame may keep arriving: a whole maximum frame's characters.
        self._span_ms = gap_ms + (self._max_len + 6) * char_us // 1000
        self._first_ms = self._last_ms = 0
        # The undecided tail; _need is how long it must grow before scanning can progress, so
        # a frame arriving a few bytes at a time is not rescanned for every piece.
        self._buf = bytearray()
        self._need = 0
        self.frames = 0
        self.crc_errors = 0
        self.length_errors = 0
        self.dropped_bytes = 0
        self.timeouts = 0

    @property
    def buffered(self):
        return len(self._buf)

    def reset(self):
        # Forget a partial frame (e.g. after a link gap): its bytes count as dropped.
        self.dropped_bytes += len(self._buf)
        self._buf = bytearray()
        self._need = 0

    def idle(self, now_ms):
        # Called when the link had nothing at now_ms: a partial frame that has been silent too
        # long (or arriving too long) is dropped.
        if self._buf and self.gap_ms and (now_ms - self._last_ms > self.gap_ms
                                          or now_ms - self._first_ms > self._span_ms):
            self.timeouts += 1
            self.reset()

    def feed(self, data, now_ms=None):
        if now_ms is not None and data:
            self.idle(now_ms)
            self._last_ms = now_ms
        buf = self._buf
        held = len(buf)
        if buf:
            buf += data
            if len(buf) < self._need:
                return []
            src = bytes(buf)
            # A new object rather than a resize: bytearray item deletion is missing on
            # MicroPython, and a resize would fail on CPython under a live memoryview.
            self._buf = bytearray()
        elif type(data) is bytes:
            src = data
        else:
            src = bytes(data)
        out = []
        if self._scan(src, out) >= held and now_ms is not None:
            self._first_ms = now_ms     # what is kept now began arriving in this data
        return out

    def _scan(self, src, out):
        n = len(src)
        pos = 0
        max_len = self._max_len
        find = src.find
        frames = 0
        crc_errors = 0
        length_errors = 0
        dropped = 0
        need = 0
        while True:
            i = find(SYNC, pos)
            if i < 0:
                # A trailing 0xA5 may be the first half of the next sync.
                keep = n - 1 if n > pos and src[n - 1] == _SYNC0 else n
                dropped += keep - pos
                need = 2
                break
            dropped += i - pos
            if n - i < 4:
                keep = i
                need = 4
                break
            length = (src[i + 2] << 8) | src[i + 3]
            if length < _MIN_LEN or length > max_len:
                length_errors += 1
                dropped += 1
                pos = i + 1
                continue
            end = i + length + 6
            if end > n:
                keep = i
                need = end - i
                break
            # Over LEN..CRC a good frame leaves a zero register (no reflection, no xorout):
            # one call, no need to unpack the received CRC.
            if crc16(src[i + 2:end]):
                crc_errors += 1
                out.append((_BAD_CRC, src[i + 4], src[i + 5], src[i + 6], b""))
                # Hunt again right after this sync: a good frame may hide inside.
                dropped += 1
                pos = i + 1
                continue
            frames += 1
            out.append((_OK, src[i + 4], src[i + 5], src[i + 6], src[i + 7:end - 2]))
            pos = end
        if keep < n:
            self._buf += src[keep:]
            self._need = need
        else:
            self._need = 0
        if frames:
            self.frames += frames
        if dropped:
            self.dropped_bytes += dropped
        if crc_errors:
            self.crc_errors += crc_errors
        if length_errors:
            self.length_errors += length_errors
        return keep
