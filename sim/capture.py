"""Link captures as pcapng (`vpump serve --capture FILE`, `vpump prog --capture FILE`).

Every frame that crosses the link, in both directions, is one packet of a pcapng file
(docs/captures.md).  Wireshark opens it; the dissector tools/wireshark/vpump.lua decodes
it.  Host only (scapy writes and reads the pcapng).

    link type    147 (LINKTYPE_USER0, Wireshark's encapsulation "USER0"): the packet data is
                 exactly the bytes on the wire, from the sync A5 5A to the CRC
    direction    the enhanced packet block's flags: inbound or outbound as seen from the side
                 that captured (the pump's: requests are inbound; the programmer's: requests
                 are outbound); the dissector tells requests from responses by CMD bit 7
    timestamp    link time: this host's clock (UTC, microseconds) when the last byte of the
                 packet was read from or written to the link
    comment      the pump's clock at that moment (`vpump serve`: the pump's own wall clock,
                 which runs at --speed and may have been set or drift; `vpump prog`: the clock
                 the pump last reported, INTERROGATE's wall_ms, carried forward by link time,
                 and no comment before the first report)

Frames are delimited by the capturing side's own decoder (protocol/frame.py Decoder; on the
pump's side with the pump's inter-byte timeout for a link of `baud`, or a socket's), one per
direction.  Bytes it discards are captured too, as their own packets, so malformed data is
visible: a run of garbage, or a frame whose CRC failed (a complete frame inside the garbage
gets a packet of its own), a partial frame the pump's inter-byte timeout dropped, and whatever
partial frame is still pending when the capture ends.

    Capture(path, side, interface=None, clock_us=None, pump_clock=None, baud=None)
        .inbound(data) / .outbound(data)    bytes as they cross (any chunking; b"" from an
                                            empty read ends a run of garbage after 100 ms)
        .close()                            flushes the pending partials; safe twice
    CaptureLink(link, capture)              a Link that captures what passes through it
    read_capture(path) -> [CapturedPacket]  direction ("inbound"/"outbound"), time_us, data,
                                            comments, interface
    decode_packet(data) -> dict             what protocol/ makes of one packet's bytes

The pcapng writing and reading is scapy's (RawPcapNgWriter / RawPcapNgReader).
"""

import decimal
import json
import struct
import time

from hal.base import Link
from protocol import commands as C
from protocol import frame, reasons, session
from protocol.errors import ProtocolError
from sim.errors import SimError
from sim.events import iso_ms

LINKTYPE_USER0 = 147            # DLT_USER0; Wireshark's wtap encapsulation 45 (USER0)
INBOUND = 1                     # pcapng epb_flags direction bits
OUTBOUND = 2
DIRECTIONS = {INBOUND: "inbound", OUTBOUND: "outbound"}
SIDES = ("pump", "programmer")

# Reasons a pump sends without the session's counter and MAC (docs/protocol.md, "Which NAKs
# carry a MAC"): everything below 16 but role_not_allowed.
_BARE_REASONS = tuple(r for r in range(1, 16) if r != reasons.ROLE_NOT_ALLOWED)
_MIN_FRAME = 9                  # sync 2, LEN 2, VER, SEQ, CMD, CRC 2
_MAX_LEN = frame.MAX_PAYLOAD + 3
_MAX_PACKET = 4096


class CaptureError(SimError):
    """A capture file that cannot be written or read (the message names it)."""


def _now_us():
    return time.time_ns() // 1000


PUMP_STATE_PREFIX = "pump state "


def pump_clock_comment(wall_ms, note=""):
    return "pump clock %s (wall_ms %d)%s" % (iso_ms(wall_ms), wall_ms, note)


# ------------------------------------------------------------------------------ splitting

class _Splitter:
    """One direction's bytes -> packets, delimited by protocol.frame.Decoder.

    The decoder says which frames it found (re-encoding one gives back its exact bytes, and it
    is the first valid frame at or after the bytes not yet accounted for) and how many bytes it
    still holds undecided; everything else it skipped.  Skipped bytes gather into one run until
    a frame comes, the link is quiet for GAP_US, or the capture ends: then the run becomes
    garbage packets (and bad_crc ones for the complete frames in it), however it was chunked.

    feed(data, now_us) -> [(kind, raw bytes, time_us)]; feed(b"", now) only ends a quiet run."""

    GAP_US = frame.SOCKET_GAP_MS * 1000

    def __init__(self, side="pump", baud=None):
        # The capturing side's decoder: the pump's has its inter-byte timeout
        # (firmware/telemetry.py), in link time, so a partial frame the pump drops after a
        # silence is dropped here too; the programmer's (protocol/client.py) has none.
        gap_ms, char_us = 0, 0
        if side == "pump":
            gap_ms, char_us = frame.link_timing(baud) if baud else (frame.SOCKET_GAP_MS, 0)
        self._decoder = frame.Decoder(frame.MAX_PAYLOAD, gap_ms, char_us)
        self._pending = b""         # bytes fed and not yet accounted for
        self._skipped = b""         # the current run of skipped bytes
        self._skipped_us = 0        # when its last byte was decided

    def feed(self, data, now_us):
        out = []
        now_ms = now_us // 1000
        timeouts = self._decoder.timeouts
        if not data:
            self._decoder.idle(now_ms)
            self._timed_out(timeouts, now_us, out)
            if self._skipped and now_us - self._skipped_us >= self.GAP_US:
                self._end_run(out)
            return out
        items = self._decoder.feed(data, now_ms)
        self._timed_out(timeouts, now_us, out)
        src = self._pending + bytes(data)
        pos = 0
        for status, version, seq, cmd, payload in items:
            if status != reasons.OK:
                continue            # a bad-CRC frame: its bytes are in the skipped run
            raw = frame.encode(seq, cmd, payload, version)
            at = src.find(raw, pos)
            if at < 0:              # cannot happen (see above); never lose bytes if it does
                continue
            self._skip(src[pos:at], now_us)
            self._end_run(out)
            out.append(("frame", raw, now_us))
            pos = at + len(raw)
        decided = len(src) - self._decoder.buffered
        if decided > pos:
            self._skip(src[pos:decided], now_us)
            pos = decided
            if len(self._skipped) >= _MAX_PACKET:
                self._end_run(out)
        self._pending = src[pos:]
        return out

    def _timed_out(self, timeouts, now_us, out):
        # The decoder dropped the partial frame it held (the inter-byte timeout): a packet of
        # its own, after the skipped bytes before it.
        if self._decoder.timeouts != timeouts and self._pending:
            self._end_run(out)
            out.append(("partial", self._pending, now_us))
            self._pending = b""

    def _skip(self, data, now_us):
        if data:
            self._skipped += data
            self._skipped_us = now_us

    def end_run(self):
        out = []
        self._end_run(out)
        return out

    def _end_run(self, out):
        if self._skipped:
            for kind, raw in _garbage_packets(self._skipped):
                out.append((kind, raw, self._skipped_us))
            self._skipped = b""

    def flush(self, now_us):
        """The skipped run and the pending partial frame (at the end of a capture)."""
        out = []
        self._end_run(out)
        if self._pending:
            out.append(("partial", self._pending, now_us))
        self._pending = b""
        self._decoder.reset()
        return out


def _garbage_packets(data):
    # Bytes the decoder skipped.  A complete frame among them (sync, a LEN in range, all its
    # bytes there) failed its CRC: it becomes a packet of its own, so the dissector shows it
    # as a frame with a bad CRC; the bytes around it are garbage packets.
    out = []
    start = 0
    i = data.find(frame.SYNC)
    while 0 <= i <= len(data) - 4:
        length = (data[i + 2] << 8) | data[i + 3]
        end = i + length + 6
        if 3 <= length <= _MAX_LEN and end <= len(data):
            if i > start:
                out.append(("garbage", data[start:i]))
            out.append(("bad_crc", data[i:end]))
            start = end
            i = data.find(frame.SYNC, end)
        else:
            i = data.find(frame.SYNC, i + 1)
    if start < len(data):
        out.append(("garbage", data[start:]))
    return _bounded(out)


def _bounded(packets):
    # A long run of garbage in pieces a reader takes whole (scapy reads up to 64 KiB a packet).
    out = []
    for kind, raw in packets:
        while len(raw) > _MAX_PACKET:
            out.append((kind, raw[:_MAX_PACKET]))
            raw = raw[_MAX_PACKET:]
        out.append((kind, raw))
    return out


# ------------------------------------------------------------------------------ writing

class Capture:
    """A pcapng capture of one link, seen from `side` ("pump" or "programmer").

    clock_us() gives link time (default: this host's clock, microseconds since 1970 UTC);
    pump_clock() the pump's wall ms (the pump's side), or None to take it from the frames
    (the programmer's side).  Packets are flushed as they are written, so a capture can be
    opened while it grows and survives a crash up to the last packet."""

    def __init__(self, path, side, interface=None, clock_us=None, pump_clock=None, baud=None):
        if side not in SIDES:
            raise CaptureError("side %r: give one of %s" % (side, ", ".join(SIDES)))
        try:
            from scapy.utils import RawPcapNgWriter
        except ImportError:
            raise CaptureError("--capture needs scapy (pip install 'vpump[capture]', which "
                               "`make install` does)") from None
        try:
            self._writer = RawPcapNgWriter(path)
        except OSError as exc:
            raise CaptureError("--capture %s: cannot write: %s" % (path, exc.strerror or exc)) \
                from None
        self._writer.linktype = LINKTYPE_USER0
        self._writer.write_header(None)
        self.path = path
        self.side = side
        self.interface = interface or "vpump %s" % side
        self.packets = 0
        self._clock_us = clock_us or _now_us
        self.pump_clock = pump_clock
        # pump_state(): None, or a JSON-able dict written as a second comment on the pump's
        # responses ("pump state {...}": `vpump serve` gives its state and new log entries).
        self.pump_state = None
        # The programmer's side: (pump wall ms, link time us) of the last report.
        self._reported = None
        self._splitters = {INBOUND: _Splitter(side, baud), OUTBOUND: _Splitter(side, baud)}
        self._closed = False

    # The pump receives requests; a programmer sends them.
    def inbound(self, data):
        self._feed(INBOUND, data)

    def outbound(self, data):
        self._feed(OUTBOUND, data)

    def _feed(self, direction, data):
        if self._closed:
            return
        now = self._clock_us()
        packets = self._splitters[direction].feed(data, now)
        if packets:
            # The other side's garbage first: what this side sends may answer it (a bad_crc
            # NAK after a damaged frame), and the file stays in the order things happened.
            other = OUTBOUND if direction == INBOUND else INBOUND
            for kind, raw, when_us in self._splitters[other].end_run():
                self._write(other, raw, when_us)
        for kind, raw, when_us in packets:
            self._write(direction, raw, when_us)

    def _write(self, direction, raw, now_us):
        from scapy.packet import Raw
        packet = Raw(load=raw)
        packet.direction = direction
        packet.sniffed_on = self.interface
        comment = self._comment(raw, now_us)
        comments = [comment] if comment else []
        if self.pump_state is not None and direction == OUTBOUND and len(raw) > 6 and \
                raw[6] & frame.RESPONSE:
            # The pump's side: its state and new log entries after it answered (what
            # `vpump replay` compares; tools/replay_visit.py).
            state = self.pump_state()
            if state is not None:
                comments.append(PUMP_STATE_PREFIX + json.dumps(state, separators=(",", ":"),
                                                               sort_keys=True))
        if comments:
            packet.comments = [c.encode("utf-8") for c in comments]
        # A Decimal keeps the microseconds exact (a float of today's epoch in us is not).
        self._writer.write_packet(packet, sec=decimal.Decimal(now_us) / 1000000)
        self._writer.flush()
        self.packets += 1

    def _comment(self, raw, now_us):
        if self.pump_clock is not None:
            return pump_clock_comment(self.pump_clock())
        reported = _reported_wall_ms(raw)
        if reported is not None:
            self._reported = (reported, now_us)
            return pump_clock_comment(reported, ", as this frame reports it")
        if self._reported is None:
            return None
        wall_ms, at_us = self._reported
        return pump_clock_comment(wall_ms + (now_us - at_us) // 1000,
                                  ", estimated: the last report plus link time since")

    def close(self):
        if self._closed:
            return
        now = self._clock_us()
        try:
            for direction in (OUTBOUND, INBOUND):
                for kind, raw, when_us in self._splitters[direction].flush(now):
                    self._write(direction, raw, when_us)
        finally:
            self._closed = True
            self._writer.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def _reported_wall_ms(raw):
    # The pump's clock, when this frame is an accepted INTERROGATE response (MAC not checked:
    # a capture only reads).
    d = decode_packet(raw)
    if d.get("command") == "interrogate" and d.get("response") and d.get("status") == 0:
        return d["fields"]["wall_ms"]
    return None


class CaptureLink(Link):
    """A link that captures everything read from it (inbound) and written to it (outbound):
    the pump's side of `vpump serve --capture`.  Closing it closes the inner link, not the
    capture."""

    def __init__(self, link, capture):
        self._link = link
        self.capture = capture
        self.url = getattr(link, "url", None)
        self.baud = getattr(link, "baud", None)       # the pump's inter-byte timeout reads it
        Link.__init__(self)

    def _read_internal(self, max_bytes):
        data = self._link.read(max_bytes)
        self.capture.inbound(data)          # b"" too: a quiet link ends a run of garbage
        return data

    def _write_internal(self, data):
        n = self._link.write(data)
        self.capture.outbound(data)
        return n

    def wait(self, timeout_s):
        wait = getattr(self._link, "wait", None)
        if wait is None:
            time.sleep(timeout_s)
            return True
        return wait(timeout_s)

    def _close_internal(self):
        self._link.close()


# ------------------------------------------------------------------------------ reading

class CapturedPacket:
    __slots__ = ("number", "direction", "time_us", "data", "comments", "interface")

    def __init__(self, number, direction, time_us, data, comments, interface):
        self.number = number
        self.direction = direction
        self.time_us = time_us
        self.data = data
        self.comments = comments
        self.interface = interface

    def __repr__(self):
        return "<CapturedPacket %d %s %d bytes>" % (self.number, self.direction, len(self.data))


def read_capture(path):
    """The packets of a vpump capture, in order.  Raises CaptureError for a file that is not
    a pcapng capture of link type 147."""
    try:
        from scapy.utils import RawPcapNgReader
        from scapy.error import Scapy_Exception
    except ImportError:
        raise CaptureError("reading captures needs scapy (pip install 'vpump[capture]')") \
            from None
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
    except OSError as exc:
        raise CaptureError("%s: cannot read: %s" % (path, exc.strerror or exc)) from None
    if magic != b"\x0a\x0d\x0d\x0a":
        raise CaptureError("%s: not a pcapng capture (it starts with %s)" % (path, magic.hex()))
    packets = []
    try:
        with RawPcapNgReader(path) as reader:
            for data, meta in reader:
                if meta.linktype != LINKTYPE_USER0:
                    raise CaptureError("%s: packet %d has link type %d, not %d (a vpump "
                                       "capture)" % (path, len(packets) + 1, meta.linktype,
                                                     LINKTYPE_USER0))
                time_us = ((meta.tshigh << 32) | meta.tslow) * 1000000 // meta.tsresol
                comments = [c.decode("utf-8", "replace") if isinstance(c, bytes) else str(c)
                            for c in (meta.comments or [])]
                ifname = meta.ifname
                if isinstance(ifname, bytes):
                    ifname = ifname.decode("utf-8", "replace")
                packets.append(CapturedPacket(len(packets) + 1,
                                              DIRECTIONS.get(meta.direction, "unknown"),
                                              time_us, bytes(data), comments, ifname))
    except Scapy_Exception as exc:
        raise CaptureError("%s: not a usable pcapng capture: %s" % (path, exc)) from None
    except (struct.error, ValueError) as exc:
        raise CaptureError("%s: damaged capture: %s" % (path, exc)) from None
    return packets


# ------------------------------------------------------------------------------ decoding

def decode_packet(data):
    """What protocol/ makes of one captured packet (the reference the dissector is tested
    against).  A dict with kind: "frame" (the decoder accepts it), "bad_crc" (complete, CRC
    wrong) or "malformed" (garbage, a partial frame); for frames version, seq, cmd, command
    (name or None), response (bool); for commands of a session counter and mac (None for a
    bare NAK); status (responses), then fields (accepted) or nak (refused), or error when
    the payload does not decode."""
    data = bytes(data)
    out = {"kind": "malformed", "length": len(data)}
    if len(data) < _MIN_FRAME or data[:2] != frame.SYNC:
        return out
    length = (data[2] << 8) | data[3]
    if length + 6 != len(data) or not 3 <= length <= _MAX_LEN:
        return out
    version, seq, cmd = data[4], data[5], data[6]
    code = cmd & 0x7F
    spec = C.COMMANDS.get(code)
    response = bool(cmd & frame.RESPONSE)
    out.update(version=version, seq=seq, cmd=cmd, response=response,
               command=spec.name if spec else None)
    decoded = frame.Decoder().feed(data)
    if not decoded or decoded[0][0] != reasons.OK:
        out["kind"] = "bad_crc"     # the header as read: not to be trusted
        return out
    out["kind"] = "frame"
    payload = decoded[0][4]
    if spec is None:
        if response:
            _decode_response(out, code, payload)
        return out
    body = payload
    if spec.auth:
        bare = (response and len(payload) == C.NAK_SIZE and payload[0] in _BARE_REASONS)
        if not bare:
            parts = session.unwrap(payload)
            if parts is None:
                out["error"] = "shorter than the counter and MAC of a session (12 bytes)"
                return out
            out["counter"], body, mac = parts
            out["mac"] = bytes(mac)
    if response:
        _decode_response(out, code, body)
    else:
        try:
            out["fields"] = C.decode_request(code, body)
        except ProtocolError as exc:
            out["error"] = str(exc)
    return out


def _decode_response(out, code, body):
    try:
        status, fields = C.decode_response(code, body)
    except ProtocolError as exc:
        out["status"] = body[0] if body else None
        out["error"] = str(exc)
        return
    out["status"] = status
    if status:
        out["nak"] = fields
    else:
        out["fields"] = fields
