"""The `serial` HAL backend: the firmware on the host, its parts on a bench board.

The motor, battery and annunciator live on a bench board running the bench I/O server
(hal/io_server.py) and are driven over a serial link with the bench I/O protocol
(protocol/bench_io.py, docs/bench-io.md); the clock, storage and rng stay on the host (hal.sim
parts by default: virtual time, so a day of therapy takes as long as its strokes' round trips).

    board = SerialIOBoard("/dev/ttyACM0")            # or hal.open_board("serial", url=...)
    pump = Pump(board)                               # unchanged firmware

    SerialIOBoard(url=None, clock=None, storage=None, rng=None, link=None, baudrate=115200,
                  timeout_s=1.0, retries=3, seed=1, storage_size=32768)
        url       a device path or pyserial URL (hal.serial_link.SerialLink opens it), or
        link      an open hal.base Link instead (the board owns it: close() closes it)
        clock, storage, rng   local parts (default VirtualClock(), SimStorage(storage_size),
                  SimRng(seed))
    .motor, .battery, .annunciator   SerialMotor, SerialBattery, SerialAnnunciator
    .io       the IOClient they share; .identity the board's IDENTIFY answer
              ({"name", "io_version", "parts": [...]})

Reliability: one request in flight; a request unanswered within timeout_s is resent, the very
same frame (same SEQ), up to `retries` times; the server answers a repeated frame from its cache
without touching the part, so a lost response to MOTOR_STROKE never becomes a second stroke.
The client's first request is IDENTIFY, which replaces whatever an earlier client left in the
server's cache.  Still no answer: LinkError saying what to check.  A refusal by the board
(no_part, part_failed, ...) is BoardRefused, a HalError quoting the board's message.

Host only: waits with the link's wait() and time.monotonic; pyserial is imported only when a
url is opened, so `import hal` (and this module) work without it.
"""

import time

from hal.base import Annunciator, Battery, Motor, Part, STROKE_OK, STROKE_STALL
from hal.errors import HalError, LinkError
from hal.sim import SimRng, VirtualClock
from hal.sim_storage import SimStorage
from protocol import bench_io as P
from protocol import frame, reasons
from protocol.errors import ProtocolError

DEFAULT_TIMEOUT_S = 1.0
DEFAULT_RETRIES = 3
_READ_CHUNK = 256
_IDLE_S = 0.001         # a link without wait(): how long to sleep between reads
_NEEDED = (P.PART_MOTOR, P.PART_BATTERY, P.PART_ANNUNCIATOR)
_SERVER_HINT = ("run the bench I/O server on the board (hal/io_server.py); without a board, "
                "`python -m sim.io_board` serves simulated parts on a pty and prints its path")


class BoardRefused(HalError):
    """The bench board answered with a status other than ok (status: protocol.bench_io's code),
    e.g. no_part when its I/O server has no battery, part_failed when the part raised."""

    def __init__(self, status, message):
        HalError.__init__(self, message)
        self.status = status


class IOClient(Part):
    """Request/response with the bench I/O server over one link (hal.base Link with a
    non-blocking read(); wait(timeout_s) is used when the link has it).

    request(cmd, payload=b"") -> the response fields (protocol.bench_io.decode_response).
    Counters: requests (new ones), resends, stale (frames ignored: old SEQ, other CMD,
    damaged)."""

    def __init__(self, link, timeout_s=DEFAULT_TIMEOUT_S, retries=DEFAULT_RETRIES,
                 monotonic=time.monotonic):
        if not (isinstance(timeout_s, (int, float)) and timeout_s > 0):
            raise HalError("timeout_s=%r: must be a number of seconds > 0 (default %g)"
                           % (timeout_s, DEFAULT_TIMEOUT_S))
        if not (isinstance(retries, int) and 0 <= retries <= 100):
            raise HalError("retries=%r: must be a whole number from 0 to 100 (default %d)"
                           % (retries, DEFAULT_RETRIES))
        self.link = link
        self.url = getattr(link, "url", None) or type(link).__name__
        self.timeout_s = timeout_s
        self.retries = retries
        self._monotonic = monotonic
        self._wait = getattr(link, "wait", None)
        self._decoder = frame.Decoder(P.MAX_RESPONSE_PAYLOAD)
        self._seq = 0
        self.requests = 0
        self.resends = 0
        self.stale = 0
        Part.__init__(self)

    def _close_internal(self):
        # Part.close(): once, however often it is called; parts are context managers.
        self.link.close()

    def request(self, cmd, payload=b""):
        if self._closed:
            raise HalError("the bench I/O client for %s is closed; open a new board" % self.url)
        name = P.NAMES.get(cmd, "0x%02X" % cmd)
        self._seq = seq = (self._seq + 1) & 0xFF
        data = frame.encode(seq, cmd, payload)
        self.requests += 1
        damaged = 0
        for attempt in range(1 + self.retries):
            if attempt:
                self.resends += 1
            self.link.write(data)
            body = self._await(seq, cmd)
            if body is None:
                # Nothing in time: resend the same frame.  A partial frame held now is stale
                # (or its LEN was damaged): forget it, or it would swallow the answer.
                self._decoder.reset()
                continue
            if body is _DAMAGED or (len(body) and body[0] == P.BAD_CRC):
                damaged += 1
                continue            # our request or its answer was damaged: resend at once
            if len(body) and body[0] != P.OK:
                status, message = P.decode_error(body)
                raise BoardRefused(status, "bench board at %s refused %s: %s: %s"
                                   % (self.url, name, P.status_name(status), message))
            try:
                if not len(body):
                    raise ProtocolError(P.BAD_LENGTH, "an empty response")
                return P.decode_response(cmd, body)
            except ProtocolError as exc:
                raise HalError("bench board at %s sent a malformed %s response (%s): is it "
                               "running a bench I/O server of this version (io_version %d)?"
                               % (self.url, name, exc, P.IO_VERSION)) from None
        tries = 1 + self.retries
        outcome = ("; the stroke may or may not have happened" if cmd == P.MOTOR_STROKE
                   else "")
        if damaged:
            raise LinkError(
                "bench board at %s: %s failed %d times, %d of them damaged on the line%s: "
                "check the cable, the baud rate and the ground"
                % (self.url, name, tries, damaged, outcome))
        raise LinkError(
            "bench board at %s did not answer %s (%d tries, %g s each)%s: is the bench I/O "
            "server still running on it, and is this its port? %s"
            % (self.url, name, tries, self.timeout_s, outcome, _SERVER_HINT))

    def _await(self, seq, cmd):
        # The body of the response to (seq, cmd), _DAMAGED for a damaged frame that claims to
        # be it, or None when timeout_s passes first.
        reply = (cmd | frame.RESPONSE) & 0xFF
        link = self.link
        wait = self._wait
        deadline = self._monotonic() + self.timeout_s
        while True:
            # Wait first: just after a write the answer cannot be there yet.
            left = deadline - self._monotonic()
            if wait is not None:
                if not wait(max(0.0, left)):
                    if left <= 0:
                        return None
                    continue
            elif left <= 0:
                return None
            data = link.read(_READ_CHUNK)
            if not data:
                if wait is None:
                    time.sleep(min(max(0.0, left), _IDLE_S))
                continue
            found = None
            for status, version, s, c, payload in self._decoder.feed(data):
                if s == seq and c == reply and found is None:
                    found = payload if status == reasons.OK else _DAMAGED
                else:
                    self.stale += 1
            if found is not None:
                return found

    def identify(self):
        """The board's IDENTIFY answer: {"name", "io_version", "parts": [names]}; HalError if
        whatever answers is not a bench I/O server."""
        try:
            fields = self.request(P.IDENTIFY)
        except LinkError as exc:
            raise LinkError("no bench I/O server answered at %s: %s" % (self.url, exc)) from None
        except BoardRefused as exc:
            if exc.status == P.UNKNOWN_COMMAND:
                raise HalError(
                    "%s is not a bench I/O server: it does not know IDENTIFY 0x40 (a pump's "
                    "telemetry link?); %s" % (self.url, _SERVER_HINT)) from None
            raise
        if fields["io_version"] != P.IO_VERSION:
            raise HalError("bench board at %s speaks bench I/O version %d; this host speaks %d: "
                           "flash the matching I/O server" % (self.url, fields["io_version"],
                                                              P.IO_VERSION))
        fields["parts"] = P.part_names(fields["parts"])
        return fields


# A damaged frame that claims to be the response (distinct from any body).
_DAMAGED = object()


class SerialMotor(Motor):
    """A motor on the bench board.  strokes and stalls count what the board reported."""

    def __init__(self, client):
        Motor.__init__(self)
        self.io = client
        self.strokes = 0
        self.stalls = 0

    def _stroke_internal(self):
        result = self.io.request(P.MOTOR_STROKE)["result"]
        if result == P.RESULT_OK:
            self.strokes += 1
            return STROKE_OK
        if result == P.RESULT_STALL:
            self.stalls += 1
            return STROKE_STALL
        raise HalError("bench board at %s reported stroke result %d: expected 0 (ok) or 1 "
                       "(stall)" % (self.io.url, result))


class SerialBattery(Battery):
    """The bench board's battery (or supply) voltage; last_mv is the latest reading."""

    def __init__(self, client):
        Battery.__init__(self)
        self.io = client
        self.last_mv = None

    def _read_mv_internal(self):
        self.last_mv = self.io.request(P.BATTERY_READ_MV)["mv"]
        return self.last_mv


class SerialAnnunciator(Annunciator):
    """The bench board's annunciator.  counts (by kind) and last, as hal.sim's."""

    def __init__(self, client):
        Annunciator.__init__(self)
        self.io = client
        self.counts = {1: 0, 2: 0}
        self.last = None

    def _tone_internal(self, kind, duration_ms):
        if duration_ms > P.MAX_TONE_MS:
            raise HalError("tone duration %d ms: the bench link carries at most %d ms"
                           % (duration_ms, P.MAX_TONE_MS))
        self.io.request(P.TONE, P.encode_tone(kind, duration_ms))
        self.counts[kind] += 1
        self.last = (kind, duration_ms)


class SerialIOBoard:
    """Remote motor, battery and annunciator on a bench board; local clock, storage, rng.
    See the module docstring."""

    def __init__(self, url=None, clock=None, storage=None, rng=None, link=None,
                 baudrate=115200, timeout_s=DEFAULT_TIMEOUT_S, retries=DEFAULT_RETRIES,
                 seed=1, storage_size=32768):
        if link is None:
            if not isinstance(url, str) or not url:
                raise HalError("serial backend: url=%r: give the bench board's serial port "
                               "(/dev/ttyACM0, /dev/pts/N, socket://HOST:PORT) or link=" % (url,))
            from hal.serial_link import SerialLink      # pyserial: host only, on first use
            link = SerialLink(url, baudrate=baudrate)
        self.url = url or getattr(link, "url", None)
        self.io = IOClient(link, timeout_s, retries)
        try:
            self.identity = self.io.identify()
            missing = [name for bit, name in P.PART_NAMES
                       if bit in _NEEDED and name not in self.identity["parts"]]
            if missing:
                raise HalError(
                    "bench board %r at %s has no %s (it has: %s); the pump needs a motor, a "
                    "battery and an annunciator: give the I/O server those parts"
                    % (self.identity["name"], self.io.url, " or ".join(missing),
                       ", ".join(self.identity["parts"]) or "none"))
        except BaseException:
            self.io.close()
            raise
        self.clock = clock if clock is not None else VirtualClock()
        self.storage = storage if storage is not None else SimStorage(storage_size)
        self.rng = rng if rng is not None else SimRng(seed)
        self.motor = SerialMotor(self.io)
        self.battery = SerialBattery(self.io)
        self.annunciator = SerialAnnunciator(self.io)
        self.link = None            # the telemetry link is not the bench link

    def close(self):
        for part in (self.motor, self.battery, self.annunciator, self.clock, self.storage,
                     self.rng):
            part.close()
        self.io.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
