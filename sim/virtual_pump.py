"""An in-process pump on a loop link, in virtual time the caller controls.

The pytest plugin's `vpump_pump` fixture (tools/pytest_plugin.py, docs/testing-your-app.md) is
one of these; anything else that wants a pump without a subprocess can use it too:

    vp = VirtualPump("adult-sci-continuous", seed=3)    # a scenario's name or file, or None
    link = vp.link                                      # the programmer's end of the link
    link.write(frame_bytes); link.read(4096)            # the pump answers what it was sent
    vp.advance(days=2)                                  # time passes only when asked
    vp.status(), vp.log(), vp.events                    # the back-channel: no protocol

Time: nothing moves until advance() is called, or a programmer waits on the link
(`link.wait(timeout_s)` runs the pump for up to timeout_s of virtual time, until an answer is
there), so a test is exactly as deterministic as a headless run.  A programmer that takes a
clock should get `vp.clock` (virtual seconds): its timeouts then pass in virtual time too.

The pump answers a request as soon as the programmer reads (zero link time), unless `noise`
drops, corrupts or delays what crosses the link (the link_noise options of a scenario's
[[faults]], e.g. {"drop_pct": 5, "corrupt_pct": 2}; seeded by noise_seed).
"""

import json
import os

from firmware import answers
from firmware.telemetry import Telemetry
from sim import scenario as scenario_module
from sim.errors import SimError
from sim.events import decode
from sim.links import RECEIVE, SEND, LoopPair, Manipulator, add_noise
from sim.runner import Run
from sim.serve import fresh_pump_config
from sim.telemetry_link import sim_keys

# A fixed implant date (2026-01-05T08:00 UTC), so two runs of a test see the same clock.
DEFAULT_START_WALL_MS = 1767600000000
FRESH_PUMP_DAYS = 3650
_READ_CHUNK = 4096
_MS = {"days": 86400000, "hours": 3600000, "minutes": 60000, "seconds": 1000, "ms": 1}


class VirtualPumpError(SimError):
    """A VirtualPump asked for something it cannot do (time past the run's end, a bad noise)."""


def scenario_config(scenario, start_wall_ms=DEFAULT_START_WALL_MS):
    """None (a fresh pump, no program), a scenario name or file, or a validated config dict."""
    if scenario is None:
        config = fresh_pump_config(start_wall_ms)
        config["days"] = FRESH_PUMP_DAYS
        return config
    if isinstance(scenario, dict):
        return scenario
    return scenario_module.load(scenario_module.find(str(scenario)))


class VirtualPump:
    def __init__(self, scenario=None, seed=None, keys=None, noise=None, noise_seed=0,
                 days=None, start_wall_ms=None):
        # start_wall_ms: the implant's wall clock for a fresh pump (default a fixed date);
        # a scenario has its own.
        config = scenario_config(scenario, start_wall_ms or DEFAULT_START_WALL_MS)
        self.events = []            # every record the run emits: pump log entries and sim's
        self.run = Run(config, days=days, seed=seed, sink=self.events.append)
        self.run.start()
        self.keys = dict(keys) if keys is not None else sim_keys(self.run.seed)
        self._pair = LoopPair()
        pump_side = self._pair.pump_end
        self.noise = None
        if noise:
            if "kind" not in noise:
                noise = scenario_module.link_noise(dict(noise), "noise")
            # The rules act on the pump's end: SEND is what the pump writes, RECEIVE what
            # reaches it; their delays run on the virtual clock.
            pump_side = self.noise = Manipulator(pump_side, seed=noise_seed, clock=self.clock)
            direction = noise.get("direction", "both")
            for side, name in ((SEND, "from_pump"), (RECEIVE, "to_pump")):
                if direction in ("both", name):
                    add_noise(pump_side, noise, side)
        self._pump_side = pump_side
        self.telemetry = None
        self.link = ProgrammerEnd(self, self._pair.programmer_end)
        self._key_file = None

    # -- time ---------------------------------------------------------------------------

    def clock(self):
        """Virtual seconds since implant: give it to a programmer that takes a clock."""
        return self.run.board.clock.true_ms / 1000.0

    @property
    def now_ms(self):
        """Virtual ms since implant."""
        return self.run.board.clock.true_ms

    @property
    def end_ms(self):
        return self.run.end_ms

    def advance(self, days=0, hours=0, minutes=0, seconds=0, ms=0):
        """Let the pump run for that long (strokes, alarms, the scenario's timeline and
        refills), answering the link on the way.  Returns the new now_ms."""
        step = 0
        for name, value in (("days", days), ("hours", hours), ("minutes", minutes),
                            ("seconds", seconds), ("ms", ms)):
            if value < 0:
                raise VirtualPumpError("advance: %s = %s: must be >= 0" % (name, value))
            step += int(value * _MS[name])
        return self.advance_to(self.now_ms + step)

    def advance_to(self, target_ms):
        if target_ms > self.run.end_ms:
            raise VirtualPumpError(
                "advance: to day %.3f, past the run's end (day %d); give days= a longer run"
                % (target_ms / 86400000.0, self.run.end_ms // 86400000))
        self.service()
        while self.now_ms < target_ms:
            due = self._next_due_ms()
            stop = target_ms if due is None else min(target_ms, max(due, self.now_ms + 1))
            self.run.run_to(stop)
            self.service()
        return self.now_ms

    def _next_due_ms(self):
        if self.noise is None:
            return None
        due = self.noise._next_due()
        return None if due is None else int(due * 1000 + 0.999999)

    # -- the link -----------------------------------------------------------------------

    def service(self):
        """Move what is due along the link and let the pump answer what reached it."""
        run = self.run
        if not run.powered:
            return 0            # a brown-out holds the pump in reset: nothing answers
        if self.telemetry is None or self.telemetry.pump is not run.pump:
            # A new pump (a reset, a power loss): its telemetry starts over, as after a reboot.
            self.telemetry = Telemetry(run.pump, self._pump_side, self.keys)
        if self.noise is not None:
            self.noise.poll()
        handled = run._guarded(self.telemetry.poll) or 0
        if self.noise is not None:
            self.noise.poll()
        return handled

    def key_file(self, directory):
        """Write the pump's keys as a key file (docs/protocol.md) in directory; its path."""
        if self._key_file is None:
            from protocol.keygen import format_keys
            path = os.path.join(str(directory), "vpump-keys.json")
            with open(path, "w", encoding="utf-8") as f:
                f.write(format_keys(self.keys))
            self._key_file = path
        return self._key_file

    # -- the back-channel: what the pump knows, without the protocol ----------------------

    def status(self):
        """The firmware's own status dict (therapy, reservoir_nl, alarms, program, ...)."""
        return self.run.pump.status()

    def interrogate(self):
        """What INTERROGATE would answer, as the decoded fields."""
        self.service()
        return answers.interrogate(self.telemetry.pump)

    def log(self, start_seq=1, limit=100000):
        """The pump's event log from start_seq, decoded (as in events.jsonl)."""
        out = []
        seq = start_seq
        while len(out) < limit:
            records = self.run.pump.persist.log_read(seq, min(32, limit - len(out)))
            if not records:
                break
            for s, t_ms, code, args in records:
                out.append(decode(s, t_ms, code, list(args)))
            seq = records[-1][0] + 1
        return out

    def events_named(self, name):
        return [e for e in self.events if e.get("event") == name]

    def dump(self):
        """status and log as one JSON-able dict (what `vpump serve --control` answers)."""
        return json.loads(json.dumps({"status": self.status(), "log": self.log()},
                                     default=str))

    def close(self):
        self._pair.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


class ProgrammerEnd:
    """The programmer's end of a VirtualPump's link: read/write/wait like a serial link.
    read() lets the pump answer first; wait(timeout_s) runs virtual time until bytes are there
    or timeout_s of virtual time passed."""

    url = "sim://virtual-pump"

    def __init__(self, owner, inner):
        self._owner = owner
        self._inner = inner
        self._buffer = bytearray()

    def write(self, data):
        return self._inner.write(data)

    def _fill(self):
        self._owner.service()
        self._buffer += self._inner.read(_READ_CHUNK)

    def read(self, max_bytes=_READ_CHUNK):
        if not self._buffer:
            self._fill()
        data = bytes(self._buffer[:max_bytes])
        del self._buffer[:max_bytes]
        return data

    def in_waiting(self):
        if not self._buffer:
            self._fill()
        return len(self._buffer)

    def wait(self, timeout_s):
        owner = self._owner
        end = owner.now_ms + max(1, int(timeout_s * 1000 + 0.999999))
        end = min(end, owner.run.end_ms)
        while True:
            if self.in_waiting():
                return True
            if owner.now_ms >= end:
                return False
            owner.advance_to(min(end, owner.now_ms + 10))

    def close(self):
        pass
