# HAL part interfaces: one small base class per hardware part.
#
# Runs unchanged on CPython and MicroPython, so: no abc (abstractmethod does nothing on
# MicroPython), no typing at run time; abstract bodies raise NotImplementedError themselves.
# Public methods check arguments and state, then call a small _..._internal() that each
# backend overrides (python-can's BusABC template method); in the base class each is one
# shared function, _missing, that raises a bare NotImplementedError (the traceback's caller
# line names the method a backend is missing: no message text or per-method function to carry
# in a board's heap).

from hal.errors import HalError, StorageError

# Tone kinds for the annunciator.  Two-tone (3 s) marks a critical alarm, single tone (1 s)
# a non-critical one (Medtronic product advisories, see docs/clinical.md).
TONE_TWO = 2
TONE_SINGLE = 1

# Motor stroke outcomes.
STROKE_OK = 0
STROKE_STALL = 1


def _missing(self, *args):
    # What a backend must override (the ..._internal methods below): a bare error, so a board's
    # bundle carries no message text; the traceback's caller line names the method.
    raise NotImplementedError


class Part:
    # close() is safe to call twice; parts are context managers.
    _closed = True

    def __init__(self):
        self._closed = False

    def close(self):
        if not self._closed:
            self._closed = True
            self._close_internal()

    def _close_internal(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def _check_open(self):
        if self._closed:
            raise HalError("%s is closed; open a new one" % type(self).__name__)


class Clock(Part):
    # Raw counter of milliseconds that may wrap (MicroPython's ticks_ms wraps at 2**30 on many
    # ports).  now_ms() unwraps it into a count that never goes backwards, as long as it is read
    # at least once per half period; the firmware's housekeeping guarantees that (hourly).
    # wrap_bits=0 means the raw counter never wraps.
    # True for a clock whose time is the attribute true_ms, an unwrapped count that moves only
    # when sleep_until() (or the simulator) moves it: the scheduler then reads and jumps it
    # directly instead of calling now_ms() and sleep_until() for every event.
    direct = False

    def __init__(self, wrap_bits=30):
        Part.__init__(self)
        self._mask = (1 << wrap_bits) - 1 if wrap_bits else 0
        self._last_raw = self._ticks_internal()
        self._now_ms = 0

    def now_ms(self):
        raw = self._ticks_internal()
        if self._mask:
            elapsed = (raw - self._last_raw) & self._mask
        else:
            elapsed = raw - self._last_raw
        self._last_raw = raw
        self._now_ms += elapsed
        return self._now_ms

    def sleep_until(self, deadline_ms):
        # Wait until now_ms() >= deadline_ms.  Virtual clocks jump; real ones sleep.  May return
        # early (e.g. link input arrived): returns now_ms() after the wait, for the caller to
        # re-check.
        self._check_open()
        now = self.now_ms()
        if deadline_ms > now:
            self._sleep_internal(deadline_ms - now)
            now = self.now_ms()
        return now

    # _ticks_internal(): the raw tick counter (ms; it may wrap at 2**wrap_bits).
    _ticks_internal = _missing

    # _sleep_internal(delay_ms): wait delay_ms.
    _sleep_internal = _missing


class Motor(Part):
    # One stroke of the peristaltic pump moves one pump-model stroke volume (if nothing is wrong).
    def stroke(self):
        self._check_open()
        return self._stroke_internal()

    # _stroke_internal(): drive one stroke; return STROKE_OK or STROKE_STALL.
    _stroke_internal = _missing


class Battery(Part):
    # Terminal voltage in millivolts; the firmware also counts charge used (coulomb counting).
    def read_mv(self):
        self._check_open()
        return self._read_mv_internal()

    # _read_mv_internal(): the cell voltage in mV.
    _read_mv_internal = _missing


class Storage(Part):
    # Byte-addressable non-volatile memory (FRAM/EEPROM-like).  A write may be cut short by a
    # power loss at any byte: the firmware's persistence layer is built to survive that.
    size = 0

    def read(self, addr, n):
        self._check_open()
        self._check_range(addr, n)
        return self._read_internal(addr, n)

    def readinto(self, addr, buf):
        # read() into the caller's buffer: a board reading its log page allocates nothing.
        self._check_open()
        self._check_range(addr, len(buf))
        self._readinto_internal(addr, buf)

    def write(self, addr, data):
        self._check_open()
        self._check_range(addr, len(data))
        self._write_internal(addr, data)

    def _check_range(self, addr, n):
        if addr < 0 or n < 0 or addr + n > self.size:
            raise StorageError("storage access %d+%d outside 0..%d" % (addr, n, self.size))

    # _read_internal(addr, n): n bytes at addr; _readinto_internal(addr, buf): as many into
    # buf, allocating nothing (the pump's log reads); _write_internal(addr, data).
    _read_internal = _readinto_internal = _write_internal = _missing


class Annunciator(Part):
    # The pump's audible alarm (implanted: a piezo the patient hears).
    def tone(self, kind, duration_ms):
        self._check_open()
        if kind != TONE_TWO and kind != TONE_SINGLE:
            raise HalError("tone kind %r unknown; use TONE_TWO or TONE_SINGLE" % (kind,))
        if duration_ms <= 0:
            raise HalError("tone duration %r ms must be > 0" % (duration_ms,))
        self._tone_internal(kind, duration_ms)

    # _tone_internal(kind, duration_ms): sound (start) a tone of that kind; never block for
    # its duration.
    _tone_internal = _missing


class Link(Part):
    # A byte pipe to the programmer (telemetry).  read() never blocks: it returns what is there.
    def write(self, data):
        self._check_open()
        return self._write_internal(data)

    def read(self, max_bytes=256):
        self._check_open()
        return self._read_internal(max_bytes)

    # _write_internal(data): send the bytes; _read_internal(max_bytes): the bytes received, at
    # most max_bytes; b'' if none (never block).
    _write_internal = _read_internal = _missing


class Rng(Part):
    # Random bytes for session challenges.  Sim backends are seeded (deterministic runs).
    def random_bytes(self, n):
        self._check_open()
        if n < 0:
            raise HalError("random_bytes(%r): n must be >= 0" % (n,))
        return self._random_bytes_internal(n)

    # _random_bytes_internal(n): n random bytes.
    _random_bytes_internal = _missing
