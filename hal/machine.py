# The machine backend: the HAL parts on a real MicroPython board, through MicroPython's
# `machine` module.  Raspberry Pi Pico (RP2040) is the default pin map, ESP32 the second; pin
# numbers and the bench build's electrical facts are data (PIN_MAPS, SETTINGS), wiring in
# docs/bench-testing.md.
#
#   part          hardware                           how
#   clock         time.ticks_ms                      wraps at the port's ticks period (2**30 on
#                                                    rp2 and esp32: 32-bit small ints); unwrapped
#                                                    by hal.base.Clock with the bits measured here
#   motor         stepper driver (A4988 / DRV8825)   /ENABLE, DIR, then steps_per_stroke pulses on
#                                                    STEP; a stall switch read after the stroke
#   battery       ADC behind a resistor divider      averaged samples -> mV at the battery
#   annunciator   piezo on a PWM pin                 non-blocking: tone() starts it, service()
#                                                    (the main loop) alternates and ends it
#   storage       a pre-sized file on the flash      seek/write/flush per write (littlefs commits
#                 file system                        a flushed write atomically)
#   link          UART to a USB-serial adapter       non-blocking: uart.any() then uart.read()
#   rng           os.urandom                         the port's hardware random source
#
# Runs on MicroPython 1.27 and (with a stand-in `machine` module, tests/board/) on CPython.
# `machine` is imported here only: hal/__init__.py registers this module lazily, so
# `import hal` works on a host that has no `machine`.

import os
import time

import machine

from hal.base import (
    Clock, Motor, Battery, Annunciator, Link, Rng, STROKE_OK, STROKE_STALL, TONE_TWO,
)
from hal.errors import HalError, LinkError
from hal.file_storage import FileStorage

# GPIO numbers per board ("LED" names the on-board LED on a Pico and a Pico W alike).
#   adc_read   "u16": read_u16() scaled by adc_vref_mv (rp2: 12-bit SAR, 3.3 V reference);
#              "uv": read_uv(), calibrated microvolts (esp32, with adc_atten)
#   adc_atten  None, or the name of the machine.ADC attenuation constant to set
PIN_MAPS = {
    "rp2": {
        "step": 2, "dir": 3, "enable": 4, "stall": 5,   # GP2..GP5: stepper driver, stall switch
        "piezo": 15,                                    # GP15: PWM slice 7 B
        "battery_adc": 26,                              # GP26: ADC0
        "uart": 0, "tx": 0, "rx": 1,                    # UART0 on GP0 / GP1
        "led": "LED",
        "adc_read": "u16", "adc_atten": None,
    },
    "esp32": {                                          # ESP32-DevKitC (WROOM-32)
        "step": 25, "dir": 26, "enable": 27, "stall": 32,
        "piezo": 13,                                    # any output pin drives LEDC PWM
        "battery_adc": 34,                              # ADC1 (works with Wi-Fi on); input-only pin
        "uart": 2, "tx": 17, "rx": 16,                  # UART2: UART0 is the USB REPL
        "led": 2,
        "adc_read": "uv", "adc_atten": "ATTN_11DB",     # 11 dB: about 0.15-2.45 V calibrated
    },
}

# The bench build: what the parts are, not where they are.  Every key can be overridden as a
# keyword of MachineBoard (or "settings" in the board's board.json, see board/main.py).
SETTINGS = {
    "steps_per_stroke": 200,        # one turn of a 1.8 degree motor in full steps = one stroke
    "step_pulse_us": 500,           # STEP high time and low time: 1 kHz, a 0.2 s stroke
    "dir_forward": 1,               # DIR level that pumps forward
    "enable_active": 0,             # A4988 / DRV8825 /ENABLE is active low
    "stall_active": 0,              # stall switch to GND on a pulled-up input
    "stall_pull": "up",             # "up", "down" or None: the stall input's internal pull
    "battery_r_top_ohm": 100000,    # divider: battery - r_top - ADC pin - r_bottom - GND
    "battery_r_bottom_ohm": 100000,
    "adc_vref_mv": 3300,            # full scale of read_u16() ("u16" boards)
    "adc_samples": 8,               # averaged per reading
    "battery_fixed_mv": 3300,       # reported when the pin map has "battery_adc": None
    "tone_high_hz": 2400,           # critical alarm: high and low alternate ...
    "tone_low_hz": 1600,
    "tone_alternate_ms": 250,       # ... every 250 ms
    "tone_single_hz": 2400,         # non-critical alarm: one steady tone
    "tone_duty_u16": 32768,         # 50 %: loudest square wave for a piezo
    "tone_queue": 4,                # tones waiting while one sounds (more are dropped)
    "baudrate": 115200,             # vpump prog's SerialLink default
    "uart_rxbuf": 1024,
    "storage_path": "vpump.dat",    # on the board's file system (relative: the root on a board)
    "storage_size": 32768,          # 2 snapshot slots of 2 KiB + 896 log records
    "sleep_slice_ms": 10,           # longest sleep without looking at the UART
    "light_sleep": False,           # machine.lightsleep instead of time.sleep_ms (see MachineClock)
}

def ticks_period():
    # MicroPython's ticks_ms() wraps at the same period as ticks_add/ticks_diff work in:
    # ticks_add(0, -1) is the largest tick value.
    return time.ticks_add(0, -1) + 1


def wrap_bits():
    period = ticks_period()
    bits = 0
    while (1 << bits) < period:
        bits += 1
    if (1 << bits) != period:
        raise HalError("ticks period %d is not a power of two; hal.base.Clock cannot unwrap it"
                       % period)
    return bits


class MachineClock(Clock):
    # time.ticks_ms(), unwrapped by hal.base.Clock (masking the difference to the port's wrap
    # bits: the same as time.ticks_diff() for a forward count).  The firmware reads the clock
    # at least hourly, far within half a period (2**29 ms = 6.2 days on rp2 / esp32).
    #
    # Sleeping: in slices of at most slice_ms, returning early as soon as wake() is true (the
    # board sets it to "UART has bytes"), so the programmer is answered within a slice.  The
    # default is time.sleep_ms, which keeps interrupts running (rp2: WFE, the UART IRQ fills the
    # rx buffer).  light_sleep=True uses machine.lightsleep, which saves more power but stops
    # clocks: on rp2 bytes that arrive meanwhile are lost, so use it only with a port/UART that
    # wakes the chip.
    def __init__(self, slice_ms=10, light_sleep=False, wake=None):
        self.slice_ms = slice_ms
        self.light_sleep = light_sleep
        self.wake = wake
        Clock.__init__(self, wrap_bits())

    def _ticks_internal(self):
        return time.ticks_ms()

    def _sleep_internal(self, delay_ms):
        # Elapsed time is summed slice by slice: one ticks_diff() over the whole delay would
        # wrap for a delay past half the ticks period.
        last = time.ticks_ms()
        left = delay_ms
        while True:
            wake = self.wake
            if wake is not None and wake():
                return
            now = time.ticks_ms()
            left -= time.ticks_diff(now, last)
            last = now
            if left <= 0:
                return
            n = left if left < self.slice_ms else self.slice_ms
            if self.light_sleep:
                machine.lightsleep(n)
            else:
                time.sleep_ms(n)


class StepperMotor(Motor):
    # One stroke: enable the driver, set DIR, steps_per_stroke pulses on STEP (pulse_us high,
    # pulse_us low), read the stall input, disable the driver (no holding current between
    # strokes).  Blocking for steps * 2 * pulse_us (0.2 s by default): a stroke is short and the
    # scheduler's deadlines are absolute, so nothing drifts.
    def __init__(self, step, direction, enable, stall, steps, pulse_us, forward=1,
                 enable_active=0, stall_active=0):
        Motor.__init__(self)
        if steps < 1 or pulse_us < 1:
            raise HalError("steps_per_stroke %r, step_pulse_us %r: both must be >= 1"
                           % (steps, pulse_us))
        self._step = step
        self._dir = direction
        self._enable = enable
        self._stall = stall
        self.steps = steps
        self.pulse_us = pulse_us
        self._forward = forward
        self._on = enable_active
        self._stall_on = stall_active
        self.strokes = 0
        self.stalls = 0
        step.value(0)
        enable.value(1 - enable_active)

    def _stroke_internal(self):
        step = self._step
        sleep_us = time.sleep_us
        us = self.pulse_us
        self._enable.value(self._on)
        self._dir.value(self._forward)
        sleep_us(us)                    # driver wake-up and DIR set-up time
        for _ in range(self.steps):
            step.value(1)
            sleep_us(us)
            step.value(0)
            sleep_us(us)
        stalled = self._stall is not None and self._stall.value() == self._stall_on
        self._enable.value(1 - self._on)
        if stalled:
            self.stalls += 1
            return STROKE_STALL
        self.strokes += 1
        return STROKE_OK

    def _close_internal(self):
        self._step.value(0)
        self._enable.value(1 - self._on)


def _gcd(a, b):
    while b:
        a, b = b, a % b
    return a


class AdcBattery(Battery):
    # mV at the battery = mV at the pin * (r_top + r_bottom) / r_bottom, the ratio reduced
    # once so readings stay small ints.  mode "u16": pin mV = read_u16() * vref_mv / 65535;
    # mode "uv": pin mV = read_uv() / 1000 (calibrated on esp32).
    def __init__(self, adc, r_top_ohm, r_bottom_ohm, mode="u16", vref_mv=3300, samples=8):
        Battery.__init__(self)
        if mode != "u16" and mode != "uv":
            raise HalError("adc_read %r unknown; use 'u16' or 'uv'" % (mode,))
        if r_bottom_ohm <= 0 or r_top_ohm < 0:
            raise HalError("battery divider %r / %r ohm: r_bottom must be > 0, r_top >= 0"
                           % (r_top_ohm, r_bottom_ohm))
        if samples < 1:
            raise HalError("adc_samples %r: must be >= 1" % (samples,))
        g = _gcd(r_top_ohm + r_bottom_ohm, r_bottom_ohm)
        self._num = (r_top_ohm + r_bottom_ohm) // g
        self._den = r_bottom_ohm // g
        self._adc = adc
        self._uv = mode == "uv"
        self.vref_mv = vref_mv
        self.samples = samples

    def _read_mv_internal(self):
        adc = self._adc
        total = 0
        if self._uv:
            for _ in range(self.samples):
                total += adc.read_uv()
            pin_mv = total // self.samples // 1000
        else:
            for _ in range(self.samples):
                total += adc.read_u16()
            pin_mv = total // self.samples * self.vref_mv // 65535
        return pin_mv * self._num // self._den


class FixedBattery(Battery):
    # No battery sense wired (pin map "battery_adc": None): a constant, stated voltage.
    def __init__(self, mv):
        Battery.__init__(self)
        self.mv = mv

    def _read_mv_internal(self):
        return self.mv


class PwmAnnunciator(Annunciator):
    # A piezo on a PWM pin.  Non-blocking: a 3 s two-tone must not stop strokes or telemetry,
    # so tone() only starts the sound and records when it changes; service() (called by the
    # main loop, board/main.py) alternates the two-tone and ends each tone on time, and returns
    # when it next needs a call.  A tone asked for while one sounds waits in a short queue (the
    # alarm test plays both tones back to back; two alarms may be raised in one event).
    def __init__(self, pwm, clock, high_hz=2400, low_hz=1600, alternate_ms=250, single_hz=2400,
                 duty_u16=32768, queue=4):
        Annunciator.__init__(self)
        if alternate_ms < 1:
            raise HalError("tone_alternate_ms %r: must be >= 1" % (alternate_ms,))
        self._pwm = pwm
        self._clock = clock
        self.high_hz = high_hz
        self.low_hz = low_hz
        self.alternate_ms = alternate_ms
        self.single_hz = single_hz
        self.duty_u16 = duty_u16
        self._queue = []
        self._queue_max = queue
        self.kind = 0               # sounding now: TONE_TWO, TONE_SINGLE, or 0 (silent)
        self.hz = 0
        self.until_ms = 0
        self._switch_ms = 0
        self.counts = {1: 0, 2: 0}
        self.dropped = 0
        pwm.duty_u16(0)

    def _tone_internal(self, kind, duration_ms):
        self.counts[kind] += 1
        if self.kind:
            if len(self._queue) < self._queue_max:
                self._queue.append((kind, duration_ms))
            else:
                self.dropped += 1
            return
        self._start(kind, duration_ms, self._clock.now_ms())

    def _start(self, kind, duration_ms, now):
        self.kind = kind
        self.until_ms = now + duration_ms
        if kind == TONE_TWO:
            self._switch_ms = now + self.alternate_ms
            self._sound(self.high_hz)
        else:
            self._switch_ms = self.until_ms
            self._sound(self.single_hz)

    def _sound(self, hz):
        self.hz = hz
        self._pwm.freq(hz)
        self._pwm.duty_u16(self.duty_u16)

    def _silence(self):
        self.kind = 0
        self.hz = 0
        self._pwm.duty_u16(0)

    def service(self):
        # Returns the clock time at which service() is next needed, or None when silent.
        if not self.kind:
            return None
        now = self._clock.now_ms()
        while self.kind and now >= self.until_ms:
            self._silence()
            if self._queue:
                kind, duration_ms = self._queue.pop(0)
                self._start(kind, duration_ms, now)
        if not self.kind:
            return None
        if now >= self._switch_ms:
            while self._switch_ms <= now:
                self._switch_ms += self.alternate_ms
            self._sound(self.low_hz if self.hz == self.high_hz else self.high_hz)
        return self._switch_ms if self._switch_ms < self.until_ms else self.until_ms

    def _close_internal(self):
        self._queue = []
        self._silence()


class UartLink(Link):
    # The telemetry link on a UART.  read() never blocks: it takes what uart.any() says is
    # waiting (MicroPython's UART buffers input in rxbuf from its interrupt).
    def __init__(self, uart, baud=None):
        Link.__init__(self)
        self._uart = uart
        self.baud = baud            # sets the telemetry's inter-byte timeout
        self.bytes_in = 0
        self.bytes_out = 0

    def pending(self):
        return not self._closed and self._uart.any() > 0

    def _read_internal(self, max_bytes):
        n = self._uart.any()
        if n <= 0:
            return b""
        data = self._uart.read(n if n < max_bytes else max_bytes)
        if not data:
            return b""
        self.bytes_in += len(data)
        return data

    def _write_internal(self, data):
        try:
            done = self._uart.write(data)
        except OSError as e:
            raise LinkError("UART write of %d bytes failed: %s" % (len(data), e))
        if done is not None:
            self.bytes_out += done
        return done

    def _close_internal(self):
        deinit = getattr(self._uart, "deinit", None)
        if deinit is not None:
            deinit()


class UrandomRng(Rng):
    # os.urandom: the port's hardware source (rp2: ring oscillator; esp32: its RNG).
    def __init__(self, urandom=None):
        Rng.__init__(self)
        if urandom is None:
            urandom = getattr(os, "urandom", None)
        if urandom is None:
            raise HalError("os.urandom is missing on this port; pass urandom=FUNCTION(n) -> bytes")
        self._urandom = urandom

    def _random_bytes_internal(self, n):
        return self._urandom(n)


def _pull(name):
    if name is None:
        return None
    if name == "up":
        return machine.Pin.PULL_UP
    if name == "down":
        return machine.Pin.PULL_DOWN
    raise HalError("stall_pull %r unknown; use 'up', 'down' or None" % (name,))


class MachineBoard:
    # All parts of one board, wired as PIN_MAPS[pin_map] (entries replaced by `pins`) with the
    # SETTINGS (entries replaced by keywords).  urandom: None for os.urandom.
    def __init__(self, pin_map="rp2", pins=None, urandom=None, **settings):
        if pin_map not in PIN_MAPS:
            raise HalError("pin_map %r unknown; known: %s" % (pin_map, ", ".join(sorted(PIN_MAPS))))
        p = dict(PIN_MAPS[pin_map])
        for key in pins or {}:
            if key not in p:
                raise HalError("pin %r unknown; known: %s" % (key, ", ".join(sorted(p))))
            p[key] = pins[key]
        s = dict(SETTINGS)
        for key in settings:
            if key not in s:
                raise HalError("setting %r unknown; known: %s" % (key, ", ".join(sorted(s))))
            s[key] = settings[key]
        self.pin_map = pin_map
        self.pins = p
        self.settings = s
        Pin = machine.Pin
        self.clock = MachineClock(s["sleep_slice_ms"], s["light_sleep"])
        stall = None
        if p["stall"] is not None:
            pull = _pull(s["stall_pull"])
            if pull is None:
                stall = Pin(p["stall"], Pin.IN)
            else:
                stall = Pin(p["stall"], Pin.IN, pull)
        self.motor = StepperMotor(
            Pin(p["step"], Pin.OUT, value=0), Pin(p["dir"], Pin.OUT, value=s["dir_forward"]),
            Pin(p["enable"], Pin.OUT, value=1 - s["enable_active"]), stall,
            s["steps_per_stroke"], s["step_pulse_us"], s["dir_forward"], s["enable_active"],
            s["stall_active"])
        if p["battery_adc"] is None:
            self.battery = FixedBattery(s["battery_fixed_mv"])
        else:
            adc = machine.ADC(Pin(p["battery_adc"]))
            if p["adc_atten"]:
                adc.atten(getattr(machine.ADC, p["adc_atten"]))
            self.battery = AdcBattery(adc, s["battery_r_top_ohm"], s["battery_r_bottom_ohm"],
                                      p["adc_read"], s["adc_vref_mv"], s["adc_samples"])
        self.storage = FileStorage(s["storage_path"], s["storage_size"])
        self.annunciator = PwmAnnunciator(
            machine.PWM(Pin(p["piezo"])), self.clock, s["tone_high_hz"], s["tone_low_hz"],
            s["tone_alternate_ms"], s["tone_single_hz"], s["tone_duty_u16"], s["tone_queue"])
        self.link = UartLink(machine.UART(p["uart"], baudrate=s["baudrate"], tx=Pin(p["tx"]),
                                          rx=Pin(p["rx"]), rxbuf=s["uart_rxbuf"]),
                            s["baudrate"])
        self.clock.wake = self.link.pending
        self.rng = UrandomRng(urandom)
        self.led = None if p["led"] is None else Pin(p["led"], Pin.OUT, value=0)

    def service(self):
        # Between scheduler events (board/main.py): the annunciator's timing.  Returns the
        # clock time it is next needed, or None.
        return self.annunciator.service()

    def close(self):
        for part in (self.motor, self.annunciator, self.link, self.storage, self.battery,
                     self.rng, self.clock):
            part.close()
        if self.led is not None:
            self.led.value(0)
