# vpump on a MicroPython board: boots the firmware on hal.machine.MachineBoard and runs it.
#
# `vpump flash` compiles this module to vpump_main.mpy and puts board/main.py beside it, the
# two lines MicroPython runs after every reset (import vpump_main; vpump_main.run()).  Files on
# the board (paths relative to its root, where main.py runs):
#
#   board.json   {"board": "rp2"|"esp32", "pins": {...}, "settings": {...},
#                 "factory_wall_ms": N, "watchdog_ms": N}; all optional, `vpump flash` writes
#                 it.  pins / settings replace entries of hal.machine.PIN_MAPS / SETTINGS.
#                 factory_wall_ms: the pump's calendar time on a first boot (the flash time)
#                 until a programmer sets the clock.  watchdog_ms: 0 (default) for none.
#   keys.json    the pump's keys (protocol/keys.py: serial, clinician and patient keys).
#                There is no default key: without a usable keys file the pump still runs its
#                therapy but refuses telemetry (it answers nothing on the UART), says why on the
#                console every LOG_REFUSAL_MS and blinks the LED fast.
#   vpump.dat    the pump's storage (hal.machine.FileStorage), made on the first boot.
#
# The loop (App.step): run the scheduler events that are due, let telemetry answer what the
# UART holds, collect garbage if either did something (a collection never lands mid-stroke, and
# the heap holds the live objects plus one wake's garbage: tests/mp/test_board_memory.py),
# service the annunciator and the LED, feed the watchdog, then sleep until the earliest of the
# next deadline, the next tone or LED change and MAX_SLEEP_MS, waking early when UART bytes
# arrive (hal.machine.MachineClock).
#
# Errors: an exception from the firmware is logged with its traceback and the pump is rebuilt
# from its last commit, as after a reset (therapy resumes as committed; a bolus cut short is
# logged as interrupted).  More than MAX_FAULTS faults within FAULT_WINDOW_MS: machine.reset().
# KeyboardInterrupt (Ctrl-C, mpremote) is not caught: run() silences the piezo, disables the
# stepper driver and closes the storage file, then returns to the REPL.

import gc
import json
import sys

import machine

from firmware.pump import Pump
from firmware.telemetry import Telemetry, FIRMWARE_VERSION
from hal.machine import MachineBoard, PIN_MAPS
from protocol.keys import parse_keys

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

CONFIG_PATH = "board.json"
KEYS_PATH = "keys.json"
MAX_SLEEP_MS = const(1000)
MAX_EVENTS_PER_STEP = const(32)     # then telemetry gets a turn
MAX_FAULTS = const(3)
FAULT_WINDOW_MS = const(60000)
LOG_REFUSAL_MS = const(30000)
_HEARTBEAT_ON_MS = const(50)
_HEARTBEAT_MS = const(2000)
_BLINK_MS = const(125)
_CONFIG_KEYS = ("board", "pins", "settings", "factory_wall_ms", "watchdog_ms")


def log(text):
    print("vpump: " + text)


def _print_exception(exc):
    pe = getattr(sys, "print_exception", None)
    if pe is not None:
        pe(exc)
    else:                           # CPython (tests)
        import traceback
        traceback.print_exception(type(exc), exc, exc.__traceback__)


def load_config(path=CONFIG_PATH):
    # board.json as a dict with every key; missing file: the pin map named by sys.platform.
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        text = None
    config = {"board": sys.platform if sys.platform in PIN_MAPS else "rp2", "pins": {},
              "settings": {}, "factory_wall_ms": 0, "watchdog_ms": 0}
    if text is None:
        return config
    try:
        data = json.loads(text)
    except ValueError as e:
        raise ValueError("%s: not JSON (%s); expected {\"board\": \"rp2\", ...}" % (path, e))
    if not isinstance(data, dict):
        raise ValueError("%s: expected a JSON object" % path)
    for key in data:
        if key not in _CONFIG_KEYS:
            raise ValueError("%s: key %r unknown; known: %s" % (path, key, ", ".join(_CONFIG_KEYS)))
        config[key] = data[key]
    if config["board"] not in PIN_MAPS:
        raise ValueError("%s: board %r unknown; known: %s"
                         % (path, config["board"], ", ".join(sorted(PIN_MAPS))))
    return config


def load_keys(path=KEYS_PATH):
    # (keys, None) or (None, why not).
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return None, "no keys file %s (copy one with `vpump flash --port PORT --keys FILE`)" % path
    try:
        return parse_keys(text), None
    except ValueError as e:
        return None, "keys file %s unusable: %s" % (path, e)


class App:
    def __init__(self, config_path=CONFIG_PATH, keys_path=KEYS_PATH):
        config = load_config(config_path)
        self.config = config
        self.board = MachineBoard(config["board"], config["pins"], **config["settings"])
        self.clock = self.board.clock
        self.keys, self.keys_problem = load_keys(keys_path)
        self.pump = None
        self.telemetry = None
        self.faults = 0
        self._fault_times = []
        self._refusal_logged_ms = None
        self.refused_bytes = 0
        self._led_on = False
        self._led_next_ms = 0
        self.wdt = None
        if config["watchdog_ms"]:
            self.wdt = machine.WDT(timeout=config["watchdog_ms"])
        log("firmware %s on %s (%s pin map)" % (FIRMWARE_VERSION, sys.platform, config["board"]))
        if self.keys is None:
            log("telemetry refused: " + self.keys_problem)
        self._start_pump()

    def _start_pump(self):
        self.pump = None
        self.telemetry = None
        gc.collect()
        pump = Pump(self.board, wall_ms=self.config["factory_wall_ms"])
        resumed = pump.boot()
        self.pump = pump
        if self.keys is not None:
            self.telemetry = Telemetry(pump, self.board.link, self.keys)
        gc.collect()
        log("boot %d: %s, therapy %s" % (pump.boot_count, "resumed from storage" if resumed
                                          else "factory state", pump.state()))

    def step(self):
        # One loop iteration; returns the clock time it slept until.
        if self.pump is None:
            self._start_pump()
        sched = self.pump.sched
        ran = 0
        while ran < MAX_EVENTS_PER_STEP and sched.step():
            ran += 1
        if self.telemetry is not None:
            handled = self.telemetry.poll()
        else:
            handled = self._refuse_link()
        if ran or handled:
            # Collect while idle: what a wake allocated goes now, not in the middle of a stroke,
            # and the heap never holds more than the live objects and one wake's garbage.
            gc.collect()
        wake = self.clock.now_ms() + MAX_SLEEP_MS
        if ran == MAX_EVENTS_PER_STEP:
            wake = 0                            # more due: no sleep
        t = self.board.service()
        if t is not None and t < wake:
            wake = t
        t = self._led()
        if t is not None and t < wake:
            wake = t
        if self.wdt is not None:
            self.wdt.feed()
        t = sched.next_deadline()
        if t is not None and t < wake:
            wake = t
        return self.clock.sleep_until(wake)

    def _refuse_link(self):
        # No keys: nothing is answered.  Input is drained (and counted) so it cannot pile up.
        got = 0
        data = self.board.link.read(256)
        while data:
            got += len(data)
            data = self.board.link.read(256)
        if not got:
            return
        self.refused_bytes += got
        now = self.clock.now_ms()
        if self._refusal_logged_ms is None or now - self._refusal_logged_ms >= LOG_REFUSAL_MS:
            self._refusal_logged_ms = now
            log("telemetry refused (%d bytes ignored): %s" % (self.refused_bytes, self.keys_problem))

    def _led(self):
        # No keys: fast blink.  Otherwise a short heartbeat every 2 s.  Returns the next change.
        led = self.board.led
        if led is None:
            return None
        now = self.clock.now_ms()
        if now < self._led_next_ms:
            return self._led_next_ms
        on = not self._led_on
        if self.keys is None:
            self._led_next_ms = now + _BLINK_MS
        else:
            self._led_next_ms = now + (_HEARTBEAT_ON_MS if on else _HEARTBEAT_MS - _HEARTBEAT_ON_MS)
        self._led_on = on
        led.value(1 if on else 0)
        return self._led_next_ms

    def fault(self, exc):
        # An exception escaped the firmware: log it, rebuild the pump from its last commit.
        self.faults += 1
        log("fault %d: %s: %s" % (self.faults, type(exc).__name__, exc))
        _print_exception(exc)
        self.pump = None
        self.telemetry = None
        now = self.clock.now_ms()
        times = self._fault_times
        while times and now - times[0] > FAULT_WINDOW_MS:
            times.pop(0)
        times.append(now)
        if len(times) > MAX_FAULTS:
            log("%d faults within %d s: resetting the board" % (len(times), FAULT_WINDOW_MS // 1000))
            self.close()
            machine.reset()
        try:
            self._start_pump()
        except Exception as e:          # retried by the next step(), counted by the next fault
            log("rebuild failed: %s: %s" % (type(e).__name__, e))
            self.pump = None

    def run_forever(self):
        while True:
            try:
                self.step()
            except Exception as e:
                self.fault(e)

    def close(self):
        self.board.close()


def run(config_path=CONFIG_PATH, keys_path=KEYS_PATH):
    app = App(config_path, keys_path)
    try:
        app.run_forever()
    finally:
        app.close()
        log("stopped: piezo off, stepper driver disabled, storage closed")
