"""Programmer sessions in headless runs: the clinician's actions over a byte link, in virtual time.

With a scenario's `[link] clinician = "telemetry"` (docs/scenarios.md), each clinician action of
the timeline and each periodic refill is not a direct call into the pump but a programmer
session: the real handheld library (protocol/client.py Programmer) opens a session with the
clinician's key, authenticates, sends the command and closes, to the real firmware Telemetry,
over an in-process LoopPair with a Manipulator on each side (link faults) and a RateLimited on
each side (the bytes take their transmission time at the link's baud rate).  `patient =
"telemetry"` sends the patient's bolus presses through the patient's remote the same way.

Nothing sleeps: the programmer's clock is the simulated board's (virtual seconds), and its wait
for an answer runs the simulation (the firmware's scheduler, the hourly samples, the pump's
telemetry poll) until bytes reach the programmer or its timeout passes.  Keys, nonces and the
link faults come from the scenario's seed, so a run is as deterministic as a direct one.

What happens on the link is logged beside the firmware's events (sim records, docs/scenarios.md):
`link_fault` (every frame a [[faults]] link_noise entry dropped, corrupted or delayed),
`pump_nak` (a bare NAK the pump sent: bad_crc, replay, ...), `pump_cached_answer` (a repeated
frame answered from the pump's cache, not run again), `programmer_resend` / `programmer_gave_up`
(the handheld's view), `programmer_reconnect` and, per session, `programmer_session` (the
outcome, what the pump ran, and what the clinician would read on the handheld).

The simulated clinician uses the real handheld library, not a copy of it (its retries and
resends are what is under test).  It lives in protocol/ (host-only, below sim/ and tools/), so
this import runs down the layers like every other (docs/architecture.md).
"""

import hashlib
import math

from firmware.telemetry import Telemetry
from protocol import commands as C
from protocol import frame, reasons
from protocol.client import Programmer
from protocol.client_errors import LinkFailure, OutcomeUnknown, Refused
from sim.links import SEND, LoopPair, Manipulator, RateLimited, add_noise

TO_PUMP = "to_pump"
FROM_PUMP = "from_pump"
NOISE_DIRECTIONS = ("both", TO_PUMP, FROM_PUMP)

# Timeline actions a clinician performs with the programmer (`reset` is not one: it is the
# pump's own), and the one the patient's remote performs.
CLINICIAN_ACTIONS = ("program", "program_flex", "clinician_bolus", "refill", "start", "stop",
                     "clear_alarm", "silence_alarms", "set_low_reservoir_alarm",
                     "set_patient_bolus")
PATIENT_ACTIONS = ("patient_bolus",)

# Defaults of the [link] table (sim/scenario/link.py validates it; docs/scenarios.md).
DEFAULTS = {"clinician": "direct", "patient": "direct", "baud": 9600, "timeout_ms": 1000,
            "retries": 3, "connect_attempts": 3}

_TO_PUMP_SEED_XOR = 0x70BC70BC
_FROM_PUMP_SEED_XOR = 0xF0BCF0BC
_NONCE_SEED_XOR = 0x0CE0CE00
_BITS_PER_BYTE = 10             # 8N1: a start bit, 8 data bits, a stop bit
_READ_CHUNK = 4096
_MS_PER_MIN = 60000


def sim_keys(seed):
    """The simulated pump's key file contents, derived from the seed (a run needs no key file)."""
    keys = {"serial": "VP-SIM%d" % (seed % 10000)}
    for role in ("clinician", "patient"):
        keys[role] = hashlib.sha256(b"vpump-sim-key|%d|%s" % (seed, role.encode())).digest()
    return keys


def _seeded_bytes(seed):
    # random_bytes(n) for the programmer's client nonces: SHA-256 in counter mode (no global
    # random state, identical on every host).
    state = {"counter": 0}

    def random_bytes(n):
        out = b""
        while len(out) < n:
            state["counter"] += 1
            out += hashlib.sha256(b"vpump-sim-nonce|%d|%d" % (seed, state["counter"])).digest()
        return out[:n]
    return random_bytes


def command_name(cmd):
    spec = C.COMMANDS.get(cmd & 0x7F)
    name = spec.name.upper() if spec is not None else "0x%02X" % (cmd & 0x7F)
    return name + "|RESPONSE" if cmd & frame.RESPONSE else name


def describe_frame(data):
    """(command name, seq) of a chunk that starts like a frame, else (None, None)."""
    if len(data) >= 7 and data[0] == 0xA5 and data[1] == 0x5A:
        return command_name(data[6]), data[5]
    return None, None


class _NoisySide(Manipulator):
    # One side's Manipulator: its "send" is what that side writes (the programmer's requests on
    # the programmer's side, the pump's responses on the pump's), one frame per write, so a
    # rule's probability is per frame.  Every action is reported to on_fault with the frame it
    # hit (the chunk as it was before the rules changed it).
    def __init__(self, link, seed, clock, name, on_fault):
        self.name = name
        self._on_fault = on_fault
        self._chunk = b""
        Manipulator.__init__(self, link, seed=seed, clock=clock)

    def set_noise(self, faults):
        # The rules of every active link_noise fault that covers this side, in fault order.
        self._rules = []
        for fault in faults:
            if fault.get("direction", "both") not in ("both", self.name):
                continue
            add_noise(self, fault, SEND)

    def _shape(self, direction, data, now):
        self._chunk = data
        Manipulator._shape(self, direction, data, now)

    def _note(self, now, direction, number, action, detail):
        Manipulator._note(self, now, direction, number, action, detail)
        self._on_fault(self.name, action, detail, self._chunk)


class VirtualLink:
    """The programmer's end: read() and write() pass through; wait(timeout_s) runs the
    simulation until bytes for the programmer arrive or timeout_s of virtual time passed."""
    url = "sim://telemetry"

    def __init__(self, inner, owner):
        self._inner = inner
        self._owner = owner
        self._buffer = bytearray()

    def write(self, data):
        return self._inner.write(data)

    def read(self, max_bytes=_READ_CHUNK):
        if not self._buffer:
            self._buffer += self._inner.read(_READ_CHUNK)
        data = bytes(self._buffer[:max_bytes])
        del self._buffer[:max_bytes]
        return data

    def ready(self):
        if not self._buffer:
            self._buffer += self._inner.read(_READ_CHUNK)
        return bool(self._buffer)

    def wait(self, timeout_s):
        return self._owner.run_for(timeout_s, self.ready)

    def close(self):
        pass


class ProgrammerLink:
    """The link between a headless run's pump and the simulated clinician's programmer.

    run: the sim.runner.Run (its board clock, pump, _advance, _sample and _sim_event are used);
    settings: the scenario's validated [link] table; seed: the run's seed."""

    def __init__(self, run, settings, seed):
        self.run = run
        self.settings = dict(DEFAULTS)
        self.settings.update(settings or {})
        bytes_per_s = self.settings["baud"] / float(_BITS_PER_BYTE)
        clock = self.clock_s
        pair = LoopPair()
        self._pair = pair
        self._pump_rate = RateLimited(pair.pump_end, bytes_per_s, clock=clock)
        self._programmer_rate = RateLimited(pair.programmer_end, bytes_per_s, clock=clock)
        self.pump_side = _NoisySide(self._pump_rate, seed ^ _FROM_PUMP_SEED_XOR, clock,
                                    FROM_PUMP, self._on_fault)
        self.pump_side.baud = self.settings["baud"]    # the pump's inter-byte timeout
        self.programmer_side = _NoisySide(self._programmer_rate, seed ^ _TO_PUMP_SEED_XOR, clock,
                                          TO_PUMP, self._on_fault)
        self.programmer_end = VirtualLink(self.programmer_side, self)
        self.keys = sim_keys(seed)
        self._random_bytes = _seeded_bytes(seed ^ _NONCE_SEED_XOR)
        self.telemetry = None
        self.noise = []             # the active link_noise faults (config entries)
        self.sessions = {"ok": 0, "refused": 0, "no_session": 0, "link_failure": 0}
        self.resends = 0

    # -- what goes through it -------------------------------------------------------------

    def takes(self, action):
        kind = action["action"]
        if kind in PATIENT_ACTIONS:
            return self.settings["patient"] == "telemetry"
        return kind in CLINICIAN_ACTIONS and self.settings["clinician"] == "telemetry"

    def set_noise(self, faults):
        self.noise = list(faults)
        self.pump_side.set_noise(self.noise)
        self.programmer_side.set_noise(self.noise)

    # -- virtual time ---------------------------------------------------------------------

    def clock_s(self):
        return self.run.board.clock.true_ms / 1000.0

    def _telemetry(self):
        pump = self.run.pump
        if self.telemetry is None or self.telemetry.pump is not pump:
            # A new pump (a reset, a power loss): its telemetry starts over, as after a reboot.
            self.telemetry = _SimTelemetry(pump, self.pump_side, self.keys, self)
        return self.telemetry

    def _service(self):
        # Move what is due along both directions, and let the pump answer what reached it (the
        # pump polls on arrival: its answer starts at once, then takes its transmission time).
        self.programmer_side.poll()
        self._programmer_rate.poll()
        self.run._guarded(self._telemetry().poll)
        self.pump_side.poll()
        self._pump_rate.poll()

    def _next_due_ms(self):
        dues = [w._next_due() for w in (self.programmer_side, self._programmer_rate,
                                        self.pump_side, self._pump_rate)]
        dues = [d for d in dues if d is not None]
        if not dues:
            return None
        return int(math.ceil(min(dues) * 1000 - 1e-6))

    def _advance(self, target_ms):
        # The run's own loop is parked inside an action: keep its 10-minute patient steps and
        # hourly rows on their grid while the session takes time.
        run = self.run
        clock = run.board.clock
        while run.sample_ms > 0 and run._next_sample <= target_ms:
            due = run._next_sample
            run._guarded(run._advance, due)
            if clock.true_ms < due:
                continue        # a power loss stopped the advance early: resume it
            run._sample()
            run._next_sample = due + run.sample_ms
        while clock.true_ms < target_ms:
            run._guarded(run._advance, target_ms)

    def run_for(self, timeout_s, ready):
        """Run the simulation until ready() (the programmer has bytes) or timeout_s passed."""
        now = self.run.board.clock.true_ms
        end = now + max(1, int(math.ceil(timeout_s * 1000 - 1e-6)))
        while True:
            self._service()
            if ready():
                return True
            now = self.run.board.clock.true_ms
            if now >= end:
                return False
            target = end
            due = self._next_due_ms()
            if due is not None:
                target = min(target, max(due, now + 1))
            self._advance(target)

    # -- records --------------------------------------------------------------------------

    def _event(self, name, **fields):
        self.run._sim_event(name, **fields)

    def _on_fault(self, direction, action, detail, chunk):
        name, seq = describe_frame(chunk)
        if name is None:
            self._event("link_fault", direction=direction, action=action, detail=detail)
        else:
            self._event("link_fault", direction=direction, action=action, frame=name, seq=seq,
                        detail=detail)

    # -- sessions -------------------------------------------------------------------------

    def perform(self, action):
        """Perform a timeline action (or a periodic refill, or a patient press) as a programmer
        session.  Returns the pump's reason code (reasons.OK when it was accepted)."""
        run = self.run
        kind = action["action"]
        if kind == "patient_bolus":
            run.counts["patient_requests"] += 1
            run._sim_event("patient_press")
            return self._session("patient", kind, lambda prog: prog.patient_bolus())
        if kind == "refill":
            # The nurse fills the reservoir by hand; then the refill is programmed.  A session
            # that fails leaves the pump's estimate as it was (the drug is in, though).
            residual = run._fill(action["volume_nl"], action["concentration_ug_per_ml"])
            run.counts["refills"] += 1
            run._sim_event("refill", volume_nl=action["volume_nl"], residual_true_nl=residual,
                           residual_estimate_nl=max(0, run.pump.doser.reservoir_nl()))
        else:
            run._sim_event("action", action=kind)
        return self._session("clinician", kind, _CALLS[kind](action))

    def _session(self, role, kind, call):
        run = self.run
        s = self.settings
        started_ms = run.board.clock.true_ms
        prog = _SimProgrammer(
            self.programmer_end, role=role, key=self.keys[role],
            timeout_s=s["timeout_ms"] / 1000.0, retries=s["retries"], clock=self.clock_s,
            random_bytes=self._random_bytes)
        prog.on_miss = self._on_miss
        telemetry = self._telemetry()
        telemetry.ran = []
        record = {"action": kind, "role": role}
        outcome = reasons.OK
        try:
            try:
                self._connect(prog, kind)
            except (LinkFailure, Refused) as exc:
                # No session: the command was never sent, so the pump certainly did not run it.
                outcome = getattr(exc, "reason", None)
                record["outcome"] = "no_session"
                record["clinician_sees"] = "%s: no session: %s" % (kind, exc)
                raise _NoSession()
            result = call(prog)
            record["outcome"] = "ok"
            record["result"] = _plain(result)
        except Refused as exc:
            outcome = exc.reason or reasons.STATE_DOES_NOT_ALLOW
            record["outcome"] = "refused"
            record["reason"] = exc.reason_name
            if exc.field:
                record.update(field=exc.field, value=exc.value, allowed_min=exc.lo,
                              allowed_max=exc.hi)
            record["clinician_sees"] = "%s: refused: %s" % (kind, exc)
            if exc.field:
                run._sim_event("request_refused", request=kind, reason=exc.reason_name,
                               field=exc.field, value=exc.value, allowed_max=exc.hi)
            else:
                run._sim_event("request_refused", request=kind, reason=exc.reason_name)
        except LinkFailure as exc:
            # The command was sent: the pump may or may not have run it (pump_ran tells).
            outcome = None
            record["outcome"] = "link_failure"
            # A command sent and not answered is "outcome unknown" (OutcomeUnknown), never
            # "failed": the handheld cannot know, and here the pump did run it.
            record["clinician_sees"] = "%s: %s" % (kind, exc) if isinstance(exc, OutcomeUnknown) \
                else "%s: link failure: %s" % (kind, exc)
        except _NoSession:
            pass
        finally:
            prog.close()
        self.sessions[record["outcome"]] += 1
        self.resends += prog.retried
        # What the pump really did, which the handheld cannot know after a link failure: the
        # commands it ran (a repeated frame answered from its cache is not run again).
        record["pump_ran"] = [command_name(cmd) for cmd in self._telemetry().ran]
        record["resends"] = prog.retried
        record["duration_ms"] = run.board.clock.true_ms - started_ms
        run._sim_event("programmer_session", **record)
        return outcome

    def _connect(self, prog, kind):
        # SESSION_OPEN + SESSION_AUTH, again (a new challenge) when the answer to the proof was
        # lost: the pump accepts one proof per challenge, so a resent SESSION_AUTH is refused
        # with not_authenticated; or when the pump did not answer at all.
        attempts = self.settings["connect_attempts"]
        for attempt in range(1, attempts + 1):
            try:
                return prog.open_session()
            except (LinkFailure, Refused) as exc:
                retry = isinstance(exc, LinkFailure) or exc.reason == reasons.NOT_AUTHENTICATED
                if not retry or attempt == attempts:
                    raise
                self._event("programmer_reconnect", action=kind, attempt=attempt + 1,
                            of=attempts, cause=str(exc))

    def _on_miss(self, cmd, seq, cause, miss, retries):
        if miss <= retries:
            self._event("programmer_resend", command=command_name(cmd), seq=seq, cause=cause,
                        resend=miss, of=retries)
        else:
            self._event("programmer_gave_up", command=command_name(cmd), seq=seq, cause=cause,
                        tries=miss)

    def close(self):
        self._pair.close()


class _NoSession(Exception):
    pass


class _SimTelemetry(Telemetry):
    # The firmware's Telemetry, watched: every bare NAK it sends and every answer it gives from
    # its cache become sim records, and every command it really runs is counted (`ran`).
    def __init__(self, pump, link, keys, owner):
        self._owner = owner
        self.ran = []
        # Seeded nonces (the insecure test option): a headless run is deterministic.
        Telemetry.__init__(self, pump, link, keys, nonce=pump.board.rng.random_bytes)

    def handle(self, item):
        cached = self._last_response
        out = Telemetry.handle(self, item)
        if out is not None and out is cached:
            self._owner._event("pump_cached_answer", command=command_name(item[3]), seq=item[2])
        return out

    def _plain(self, seq, cmd, body):
        if body and body[0] != reasons.OK:
            self._owner._event("pump_nak", reason=reasons.name(body[0]),
                               command=command_name(cmd), seq=seq)
        return Telemetry._plain(self, seq, cmd, body)

    def _run(self, cmd, f):
        self.ran.append(cmd)
        return Telemetry._run(self, cmd, f)


def _plain(value):
    # A response dict as JSON-able data (bytes as hex).
    if isinstance(value, dict):
        return dict((k, _plain(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).hex()
    return value


# Timeline action -> fn(programmer) performing it (firmware units in, as the scenario has them).
_CALLS = {
    "program": lambda a: lambda p: p.program_continuous(a["basal_ug_per_day"],
                                                        a.get("confirm", False)),
    "program_flex": lambda a: lambda p: p.program_flex(a["steps"], a.get("confirm", False)),
    "clinician_bolus": lambda a: lambda p: p.clinician_bolus(a["dose_ug"], a["duration_ms"],
                                                             a.get("confirm", False)),
    "refill": lambda a: lambda p: p.refill(a["volume_nl"], a["concentration_ug_per_ml"],
                                           a.get("bridge", False)),
    "start": lambda a: lambda p: p.start(),
    "stop": lambda a: lambda p: p.stop(),
    "clear_alarm": lambda a: lambda p: p.clear_alarm(),
    "silence_alarms": lambda a: lambda p: p.silence_alarms(a["silence_ms"] // _MS_PER_MIN),
    "set_low_reservoir_alarm": lambda a: lambda p: p.set_low_reservoir_alarm(a["volume_nl"]),
    "set_patient_bolus": lambda a: lambda p: p.set_patient_bolus(
        True, a["dose_ug"], a["duration_ms"], a["lockout_ms"], a["max_per_24h"],
        a.get("confirm", False)),
}

class _SimProgrammer(Programmer):
    # The real Programmer, watched: each answer it missed (no answer in time, or a bad_crc NAK
    # for a frame damaged on the way) is reported to on_miss(cmd, seq, cause, miss number,
    # retries) before it resends.
    on_miss = None

    def _exchange(self, seq, cmd, data, retries):
        self._misses = 0
        self._exchange_retries = retries
        self._exchange_cmd = cmd
        return Programmer._exchange(self, seq, cmd, data, retries)

    def _await(self, seq, resp_cmd, deadline):
        got = Programmer._await(self, seq, resp_cmd, deadline)
        if got is None:
            self._misses += 1
            # The only early return without an answer is a bad_crc NAK.
            cause = "bad_crc" if self._clock() < deadline else "no_answer"
            if self.on_miss is not None:
                self.on_miss(self._exchange_cmd, seq, cause, self._misses,
                             self._exchange_retries)
        return got
