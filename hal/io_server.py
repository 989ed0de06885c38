# Bench I/O server: runs on a bench board and lends its hardware parts to a host over a byte
# link (docs/bench-io.md, protocol/bench_io.py).  The host's `serial` HAL backend
# (hal/serial_io.py) is the client: the firmware runs on the host and its motor, battery and
# annunciator calls travel here.
#
#   server = IOServer(link, motor=..., battery=..., annunciator=..., name="pico-bench")
#   while True:                       # or server.run(idle)
#       if not server.poll():
#           time.sleep_ms(1)
#
# The parts are any hal.base Motor / Battery / Annunciator objects (the machine backend's on a
# board, hal.sim's in tests); a part left out is answered with status no_part.  The link is a
# hal.base Link (read() never blocks).  Every good request frame gets exactly one response; the
# last request and its response are kept, and the very same request again (a host retrying
# after a lost response) gets the same response without the part being touched again: a
# stroke is never driven twice.  Damaged frames get bad_crc (with the SEQ and CMD read from
# them) so the host resends at once; noise between frames is skipped by the decoder.
#
# MicroPython: no threads, no typing, no dataclasses; struct and the frame layer only.  Part
# errors become data: any exception from a part is answered with part_failed and its message
# (the server on a bench board must keep answering), never raised out of poll().

from hal.base import Part
from protocol import bench_io as P
from protocol import frame

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

_READ_CHUNK = const(64)
_FRAME_OK = const(0)
_TONE_KINDS = (1, 2)            # hal.base TONE_SINGLE, TONE_TWO


class IOServer(Part):

    def __init__(self, link, motor=None, battery=None, annunciator=None, name="bench"):
        self.link = link
        self.motor = motor
        self.battery = battery
        self.annunciator = annunciator
        self.name = name
        parts = 0
        if motor is not None:
            parts |= P.PART_MOTOR
        if battery is not None:
            parts |= P.PART_BATTERY
        if annunciator is not None:
            parts |= P.PART_ANNUNCIATOR
        self.parts = parts
        self._decoder = frame.Decoder(P.MAX_REQUEST_PAYLOAD)    # longer frames are noise here
        self._last_key = None           # (seq, cmd, payload) of the last good request
        self._last_response = None      # and the frame sent for it
        # Counters, for a bench console and tests.
        self.requests = 0               # good request frames answered (repeats included)
        self.repeats = 0                # answered from the cache, part not touched
        self.bad_frames = 0             # damaged frames answered with bad_crc
        self.strokes = 0
        self.stalls = 0
        self.tones = 0
        self.errors = 0                 # responses with a status other than ok
        Part.__init__(self)

    # -- link -----------------------------------------------------------------------------

    def poll(self):
        # Answers every complete frame the link has; returns how many.  Never blocks.
        handled = 0
        link = self.link
        data = link.read(_READ_CHUNK)
        while data:
            for item in self._decoder.feed(data):
                link.write(self.handle(item))
                handled += 1
            if len(data) < _READ_CHUNK:
                break
            data = link.read(_READ_CHUNK)
        return handled

    def run(self, idle=None):
        # poll() in a loop; idle() is called whenever nothing came (e.g. a 1 ms sleep, or the
        # link's wait); the loop ends when idle() returns False.
        while True:
            if not self.poll() and idle is not None:
                if idle() is False:
                    return

    def _close_internal(self):
        # Part.close(): once, however often it is called; parts are context managers.
        self.link.close()

    # -- requests -------------------------------------------------------------------------

    def handle(self, item):
        # item: (status, version, seq, cmd, payload) from frame.Decoder; returns the response
        # frame (bytes).
        status, version, seq, cmd, payload = item
        reply = (cmd | frame.RESPONSE) & 0xFF
        if status != _FRAME_OK:
            self.bad_frames += 1
            return frame.encode(seq, reply, P.encode_error(P.BAD_CRC, "damaged frame; resend"))
        key = (seq, cmd, bytes(payload))
        if key == self._last_key:
            self.requests += 1
            self.repeats += 1
            return self._last_response
        if version != frame.VERSION:
            body = P.encode_error(P.BAD_VERSION, "frame version %d; this server speaks %d"
                                  % (version, frame.VERSION))
        else:
            body = self._run(cmd, payload)
        if body[0] != P.OK:
            self.errors += 1
        response = frame.encode(seq, reply, body)
        self.requests += 1
        self._last_key = key
        self._last_response = response
        return response

    def _run(self, cmd, payload):
        size = P.REQUEST_SIZE.get(cmd)
        if size is None:
            return P.encode_error(P.UNKNOWN_COMMAND, "command 0x%02X is not a bench I/O "
                                  "command (0x40..0x43)" % cmd)
        if len(payload) != size:
            return P.encode_error(P.BAD_LENGTH, "%s takes %d payload bytes, got %d"
                                  % (P.NAMES[cmd], size, len(payload)))
        if cmd == P.IDENTIFY:
            return P.encode_identify(self.name, self.parts)
        if cmd == P.MOTOR_STROKE:
            if self.motor is None:
                return self._no_part("motor")
            try:
                stalled = self.motor.stroke()
            except Exception as exc:        # reported to the host, see the top
                return self._failed("motor", exc)
            if stalled:
                self.stalls += 1
                return P.encode_stroke(P.RESULT_STALL)
            self.strokes += 1
            return P.encode_stroke(P.RESULT_OK)
        if cmd == P.BATTERY_READ_MV:
            if self.battery is None:
                return self._no_part("battery")
            try:
                mv = self.battery.read_mv()
            except Exception as exc:
                return self._failed("battery", exc)
            if not 0 <= mv <= P.MAX_MV:
                return P.encode_error(P.PART_FAILED, "battery read %d mV, outside 0..%d"
                                      % (mv, P.MAX_MV))
            return P.encode_mv(mv)
        # TONE
        if self.annunciator is None:
            return self._no_part("annunciator")
        kind, duration_ms = P.decode_tone(payload)
        if kind not in _TONE_KINDS:
            return P.encode_error(P.OUT_OF_RANGE, "tone kind %d unknown: 1 (single) or 2 "
                                  "(two-tone)" % kind)
        if duration_ms < 1:
            return P.encode_error(P.OUT_OF_RANGE, "tone duration 0 ms: give 1 ms or more")
        try:
            self.annunciator.tone(kind, duration_ms)
        except Exception as exc:
            return self._failed("annunciator", exc)
        self.tones += 1
        return P.encode_ok()

    def _no_part(self, what):
        return P.encode_error(P.NO_PART, "board %s has no %s" % (self.name, what))

    def _failed(self, what, exc):
        return P.encode_error(P.PART_FAILED, "%s: %s: %s" % (what, type(exc).__name__, exc))
