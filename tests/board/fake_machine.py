# FAKE `machine` MODULE: a minimal RECORDING STAND-IN for MicroPython's `machine`, for tests.
# There is no hardware here.  It only records what the code under test does to pins, the ADC,
# PWM and the UART, and plays back the levels, readings and bytes a test sets.  It models no
# physics: a "stalled motor" is a test setting the stall pin's level.
#
# Runs on CPython and MicroPython alike.  Install it before importing hal.machine:
#
#     import sys
#     import fake_machine
#     sys.modules["machine"] = fake_machine
#     import hal.machine
#     hal.machine.time = fake_machine.FakeTime()      # ticks_ms the test controls
#
# fake_machine.reset_state() forgets every pin, ADC, PWM and UART (a new test); files written
# by FileStorage stay (they are the "flash").

PINS = {}       # pin id -> the last Pin made on it
WRITES = []     # (pin id, level) for every Pin.value(x) write, all pins, in order
ADCS = {}       # pin id -> ADC
PWMS = {}       # pin id -> PWM
UARTS = {}      # uart id -> UART
WDTS = []
RESETS = []     # one entry per machine.reset() call
LIGHTSLEEPS = []
CLOCK = [None]  # the FakeTime that lightsleep() advances, if any


class Stop(BaseException):
    # Raised by FakeTime when a test's time budget is used up: ends the board's endless loop
    # the way Ctrl-C does (board code catches Exception, never BaseException).
    pass


class Reset(BaseException):
    # machine.reset() on a board never returns; here it raises this.
    pass


def reset_state():
    PINS.clear()
    WRITES.clear()
    ADCS.clear()
    PWMS.clear()
    UARTS.clear()
    WDTS.clear()
    RESETS.clear()
    LIGHTSLEEPS.clear()


class Pin:
    IN = 0
    OUT = 1
    OPEN_DRAIN = 2
    PULL_UP = 1
    PULL_DOWN = 2

    def __init__(self, id, mode=-1, pull=None, value=None):
        self.id = id
        self.mode = mode
        self.pull = pull
        # An input reads its pull's level until a test sets .level.
        if value is not None:
            self.level = 1 if value else 0
        else:
            self.level = 1 if pull == Pin.PULL_UP else 0
        self.writes = []        # every level written, in order
        PINS[id] = self

    def value(self, v=None):
        if v is None:
            return self.level
        self.level = 1 if v else 0
        self.writes.append(self.level)
        WRITES.append((self.id, self.level))
        return None

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)

    def rising_edges(self):
        n = 0
        before = 0
        for level in self.writes:
            if level and not before:
                n += 1
            before = level
        return n


class ADC:
    ATTN_0DB = 0
    ATTN_2_5DB = 1
    ATTN_6DB = 2
    ATTN_11DB = 3

    def __init__(self, pin, atten=None):
        self.pin = pin
        self.u16 = 0            # what read_u16() returns (a test sets it)
        self.uv = 0             # what read_uv() returns
        self.attenuation = atten
        self.reads = 0
        ADCS[pin.id if isinstance(pin, Pin) else pin] = self

    def atten(self, value):
        self.attenuation = value

    def read_u16(self):
        self.reads += 1
        return self.u16

    def read_uv(self):
        self.reads += 1
        return self.uv


class PWM:
    def __init__(self, pin, freq=None, duty_u16=None):
        self.pin = pin
        self.hz = 0
        self.duty = 0
        self.events = []        # ("freq", hz) and ("duty", duty_u16) in call order, with the
        self.times = []         # FakeTime ticks of each (None without a FakeTime)
        PWMS[pin.id if isinstance(pin, Pin) else pin] = self
        if freq is not None:
            self.freq(freq)
        if duty_u16 is not None:
            self.duty_u16(duty_u16)

    def _record(self, what, value):
        self.events.append((what, value))
        clock = CLOCK[0]
        self.times.append(None if clock is None else clock.now_ms)

    def freq(self, hz=None):
        if hz is None:
            return self.hz
        self.hz = hz
        self._record("freq", hz)

    def duty_u16(self, duty=None):
        if duty is None:
            return self.duty
        self.duty = duty
        self._record("duty", duty)

    def deinit(self):
        self.duty_u16(0)

    def sounding(self):
        # The frequencies heard, in order: each freq() while the duty is on, and each time the
        # duty turns on; 0 for a silence.
        heard = []
        duty = 0
        hz = 0
        for what, value in self.events:
            if what == "freq":
                hz = value
                if duty:
                    heard.append(hz)
            else:
                if value and not duty:
                    heard.append(hz)
                elif not value and duty:
                    heard.append(0)
                duty = value
        return heard


class UART:
    def __init__(self, id, baudrate=9600, tx=None, rx=None, rxbuf=256, **kw):
        self.id = id
        self.baudrate = baudrate
        self.tx = tx
        self.rx = rx
        self.rxbuf = rxbuf
        self.rx_data = bytearray()      # bytes "on the wire" towards the board (feed())
        self.sent = bytearray()         # everything the board wrote
        self.closed = False
        UARTS[id] = self

    def feed(self, data):
        self.rx_data += data

    def any(self):
        return len(self.rx_data)

    def read(self, n=-1):
        if not self.rx_data:
            return None
        if n is None or n < 0:
            n = len(self.rx_data)
        data = bytes(self.rx_data[:n])
        self.rx_data = self.rx_data[n:]
        return data

    def write(self, data):
        self.sent += data
        return len(data)

    def take_sent(self):
        data = bytes(self.sent)
        self.sent = bytearray()
        return data

    def deinit(self):
        self.closed = True


class WDT:
    def __init__(self, id=0, timeout=5000):
        self.timeout = timeout
        self.feeds = 0
        WDTS.append(self)

    def feed(self):
        self.feeds += 1


def reset():
    RESETS.append(1)
    raise Reset("machine.reset()")


def lightsleep(ms=None):
    LIGHTSLEEPS.append(ms)
    if CLOCK[0] is not None and ms:
        CLOCK[0].sleep_ms(ms)


def unique_id():
    return b"\xe6\x61\x00\x00\x00\x00\x00\x01"


def freq(hz=None):
    return 125000000


class FakeTime:
    # FAKE `time` for hal.machine: ticks_ms/ticks_add/ticks_diff with MicroPython's semantics on
    # a 32-bit port (period 2**30 unless period_bits says otherwise), and sleeps that only move
    # the fake counter.  now_ms is the unwrapped truth; ticks_ms() returns it masked.
    #   at(ms, fn)        run fn() once the fake time reaches ms (UART bytes arriving, say)
    #   stop_at_ms        a sleep_ms/sleep_us that would reach it raises Stop
    #   sleeps            sleep_ms calls so far; stop_after_sleeps: raise Stop at that many
    def __init__(self, start_ms=0, period_bits=30):
        self.period = 1 << period_bits
        self._us = start_ms * 1000
        self.now_ms = start_ms
        self.sleeps = 0
        self.slept_ms = 0
        self.stop_at_ms = None
        self.stop_after_sleeps = None
        self._actions = []
        CLOCK[0] = self

    def ticks_ms(self):
        return self.now_ms & (self.period - 1)

    def ticks_us(self):
        return self._us & (self.period - 1)

    def ticks_add(self, ticks, delta):
        return (ticks + delta) & (self.period - 1)

    def ticks_diff(self, a, b):
        half = self.period >> 1
        return ((a - b + half) & (self.period - 1)) - half

    def at(self, ms, fn):
        self._actions.append((ms, fn))

    def _advance_us(self, us):
        target = self._us + us
        if self.stop_at_ms is not None and target >= self.stop_at_ms * 1000:
            self._us = self.stop_at_ms * 1000
            self.now_ms = self.stop_at_ms
            self.stop_at_ms = None
            raise Stop("fake time reached its stop")
        self._us = target
        self.now_ms = target // 1000
        self._run_actions()

    def _run_actions(self):
        if not self._actions:
            return
        due = [a for a in self._actions if a[0] <= self.now_ms]
        if due:
            self._actions = [a for a in self._actions if a[0] > self.now_ms]
            for ms, fn in due:
                fn()

    def advance_ms(self, ms):
        self._advance_us(ms * 1000)

    def sleep_ms(self, ms):
        self.sleeps += 1
        if self.stop_after_sleeps is not None and self.sleeps >= self.stop_after_sleeps:
            self.stop_after_sleeps = None
            raise Stop("fake time: sleep budget used up")
        self.slept_ms += ms
        self._advance_us(ms * 1000)

    def sleep_us(self, us):
        self._advance_us(us)

    def sleep(self, s):
        self.sleep_ms(int(s * 1000))
