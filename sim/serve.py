"""A pump behind a link, paced against the wall clock (`vpump serve`).

The pump runs at `speed` times real time: virtual time follows the wall clock, and between link
events the simulator still jumps from deadline to deadline, so what the pump does between two
frames is as deterministic as a headless run.  A scenario, if given, sets the pump up and its
timeline, refills and patient presses are replayed at their virtual times; without one the pump
is fresh from implant: 20 mL of 2000 ug/mL baclofen, no program, waiting for a programmer.

With board= (hal/serial_io.py SerialIOBoard: `vpump serve --io URL`) the firmware drives the
motor, battery and annunciator of a bench board instead of simulated ones.  With noise= (`vpump
serve --noise`) the served link drops, corrupts or delays what crosses it, seeded, and every
such action is a link_fault record in the events.  With capture= (sim/capture.py Capture:
`vpump serve --capture FILE`) every frame at the pump's end of the link goes into a pcapng file.

With state= (`vpump serve --state FILE`, sim/state_file.py) the pump's flash is that file, each
write fsync'd: a pump stored there boots from it, resumes its therapy, reservoir estimate,
counters and log, and its clock jumps by the time it was off (the pump logs an outage when that
is longer than a commit interval, as after a brown-out); nothing of the scenario's setup or past
timeline is done again.

Serve(config, link, keys, speed, seed).run() blocks until stop() (thread-safe, also from a signal
handler); on the way out the pump's state is committed and the link closed.

The back-channel (`vpump serve --control`, the pytest plugin's served pump): a test reads the
pump's state, log and events without the protocol.  Another thread put()s request lines on
serve.requests with a reply function; the serve loop answers them between two steps, in its
own thread, so nothing reads the pump while it runs.  control(line) says what each line does.
"""

import json
import os
import queue
import threading
import time

from firmware import answers
from firmware.telemetry import Telemetry
from protocol import commands as C
from sim.links import RECEIVE, SEND, Manipulator, add_noise
from sim.runner import Run

# The longest the loop waits for link input before it advances the pump (s): keeps alarms and
# strokes on time at low speeds without spinning.
MAX_WAIT_S = 0.05
MS_PER_DAY = 86400000


def fresh_pump_config(start_wall_ms):
    """A pump just implanted and filled, with no program: what a clinician programs first."""
    return {
        "name": "fresh-implant", "description": "no program yet", "days": 3650, "seed": 1,
        "start_wall_ms": start_wall_ms, "model": {}, "drug": "baclofen",
        "concentration_ug_per_ml": 2000, "fill_nl": 20000000, "therapy": None, "confirm": False,
        "low_reservoir_alarm_nl": 2000000, "limits": {}, "patient_bolus": None,
        "patient_requests_per_day": 0, "refills": None, "timeline": [],
    }


class _ServedNoise(Manipulator):
    # The served link's noise (`vpump serve --noise`): drops, corrupts and delays chunks at
    # random in wall time, seeded; each action is a link_fault record beside the pump's events.
    def __init__(self, link, seed, on_fault):
        self._on_fault = on_fault
        Manipulator.__init__(self, link, seed=seed)

    def _note(self, now, direction, number, action, detail):
        Manipulator._note(self, now, direction, number, action, detail)
        self._on_fault("from_pump" if direction == SEND else "to_pump", action, detail)


class Serve:
    def __init__(self, config=None, link=None, keys=None, speed=1.0, seed=None, sink=None,
                 monotonic=time.monotonic, board=None, noise=None, noise_seed=0, capture=None,
                 control=False, state=None):
        if speed <= 0:
            raise ValueError("speed %r: must be > 0 (1 is real time)" % (speed,))
        if config is None:
            config = fresh_pump_config(int(time.time() * 1000))
        if seed is None:
            # The simulation's randomness (session nonces come from os.urandom regardless).
            seed = int.from_bytes(os.urandom(4), "big")
        self.noise = None
        if noise is not None:
            # noise: a link_noise fault's options (sim.scenario.link_noise); "from_pump" is what
            # the pump writes (its SEND), "to_pump" what it reads.
            link = self.noise = _ServedNoise(link, noise_seed, self._link_fault)
            direction = noise.get("direction", "both")
            for side, name in ((SEND, "from_pump"), (RECEIVE, "to_pump")):
                if direction in ("both", name):
                    add_noise(link, noise, side)
        self.capture = capture
        if capture is not None:
            # sim/capture.py, at the pump's end: what it receives after the link's noise, what
            # it sends before it; the pump's own clock in each packet's comment.
            from sim.capture import CaptureLink
            link = CaptureLink(link, capture)
            if capture.pump_clock is None:
                capture.pump_clock = lambda: self.pump.wall_ms()
            capture.pump_state = self._capture_state
            self._captured_log_seq = 0
        self.link = link
        self.keys = keys
        self.speed = speed
        self.frames = 0
        self._monotonic = monotonic
        self._stop = threading.Event()
        # With the back-channel on, every record is also kept for its `events` request.
        self.requests = queue.Queue() if control else None
        self.events = [] if control else None
        if control:
            outer = sink

            def sink(record):
                self.events.append(record)
                if outer is not None:
                    outer(record)
        # state: None (the flash lives in memory and is gone at exit) or a --state file path
        # (sim/state_file.py): a pump stored there resumes where it was, after its time off.
        self.state = state
        self.resumed = False
        storage, resume = None, 0
        if state is not None:
            from firmware.pump import MODEL
            from sim.state_file import FileStorage, resume_ms
            model = dict(MODEL)
            model.update(config.get("model") or {})
            storage = FileStorage(state)
            if storage.existed:
                now_wall = int(time.time() * 1000)
                resume = resume_ms(storage, model, now_wall, storage.file_wall_ms)
                self.resumed = True
                config = dict(config)
                config["start_wall_ms"] = now_wall - resume   # the run's records keep the date
        self.storage = storage
        self.run_ = Run(config, days=config["days"], seed=seed, sink=sink, board=board,
                        storage=storage, resume_ms=resume)
        if self.resumed:
            self._resume()
        else:
            self.run_._guarded(self.run_._setup)
        self._plan = self.run_._plan()
        self._next_action = 0
        while self._next_action < len(self._plan) and self._plan[self._next_action][0] <= resume:
            self._next_action += 1      # a resumed pump's past is not replayed again
        self.telemetry = self._telemetry(self.run_.pump)

    def _resume(self):
        # No implant setup: the pump restored its own state at boot.  The simulated drug in the
        # reservoir is taken to be what the pump estimates (the true volume was not stored).
        run = self.run_
        reservoir = run.board.reservoir
        if hasattr(reservoir, "refill"):
            d = run.pump.doser
            reservoir.refill(max(0, d.reservoir_nl()), d.concentration_ug_per_ml)

    def _telemetry(self, pump):
        # The link's bytes arrive in wall time, whatever the pace: the inter-byte timeout is
        # measured on the wall clock (link time), not in the pump's virtual time.
        return Telemetry(pump, self.link, self.keys, link_ms=self._link_ms)

    def _link_ms(self):
        return int(self._monotonic() * 1000)

    def _link_fault(self, direction, action, detail):
        self.run_._sim_event("link_fault", direction=direction, action=action, detail=detail)

    @property
    def pump(self):
        return self.run_.pump

    def stop(self):
        self._stop.set()

    def now_virtual_ms(self):
        return self.run_.board.clock.true_ms

    def step(self, target_ms):
        """Bring the pump to virtual time target_ms (actions on the way), then answer the link."""
        run = self.run_
        plan = self._plan
        while self._next_action < len(plan) and plan[self._next_action][0] <= target_ms:
            t, _, action = plan[self._next_action]
            self._next_action += 1
            run._guarded(run._advance, t)
            run._guarded(run._perform, action)
        if target_ms > run.board.clock.true_ms:
            run._guarded(run._advance, target_ms)
        if not run.powered:
            return 0        # a brown-out holds the pump in reset: nothing answers yet
        if self.telemetry.pump is not run.pump:
            # A reset replaced the pump: its telemetry starts over, as after a real reboot.
            self.telemetry = self._telemetry(run.pump)
        handled = run._guarded(self.telemetry.poll) or 0
        self.frames += handled
        return handled

    def run(self):
        start_wall = self._monotonic()
        start_virtual = self.now_virtual_ms()
        wait = getattr(self.link, "wait", None)
        try:
            while not self._stop.is_set():
                elapsed_s = self._monotonic() - start_wall
                target = start_virtual + int(elapsed_s * 1000 * self.speed)
                self.step(target)
                if self.requests is not None:
                    self._answer_requests()
                # In a brown-out the pump's timers are frozen: no deadline to wake for.
                deadline = self.pump.sched.next_deadline() if self.run_.powered else None
                timeout = MAX_WAIT_S
                if deadline is not None:
                    until_s = (deadline - self.now_virtual_ms()) / 1000.0 / self.speed
                    timeout = max(0.0, min(timeout, until_s))
                if wait is not None:
                    wait(timeout)
                else:
                    time.sleep(timeout)
        finally:
            self.shutdown()

    def _capture_state(self):
        # The second comment of each response in a capture: where the pump stands after
        # answering (virtual time, what INTERROGATE would say) and the log entries written since
        # the last response, so `vpump replay` can compare a replay with the recording.
        run = self.run_
        entries = []
        while True:
            records = self.pump.persist.log_read(self._captured_log_seq + 1, 32)
            if not records:
                break
            for seq, t_ms, code, args in records:
                # As READ_LOG gives them: four arguments each.
                entries.append([seq, t_ms, code] + (list(args) + [0, 0, 0, 0])[:4])
            self._captured_log_seq = records[-1][0]
        # INTERROGATE's fields as a programmer decodes them (names, the alarm list).
        status, state = C.decode_response(C.INTERROGATE, C.encode_ack(
            C.INTERROGATE, answers.interrogate(self.telemetry.pump)))
        return {"scenario": run.config["name"], "seed": run.seed,
                "start_wall_ms": run.start_wall_ms, "now_ms": self.now_virtual_ms(),
                "interrogate": state, "log": entries}

    # -- the back-channel -----------------------------------------------------------------

    def _answer_requests(self):
        while True:
            try:
                line, reply = self.requests.get_nowait()
            except queue.Empty:
                return
            reply(self.control(line))

    def control(self, line):
        """One back-channel request -> its answer (a JSON-able dict, "ok" true or false).

        A line is a word or a JSON object {"cmd": WORD, ...}:
          status           the firmware's status, what INTERROGATE would answer, virtual ms
          log [FROM]       the pump's event log from seq FROM (default 1), decoded
          events [FROM]    every record (pump log and simulator's) from index FROM (default 0)
          stop             stop serving (the state is committed)
        """
        from sim.events import decode
        text = line.strip()
        request = {}
        try:
            if text.startswith("{"):
                request = json.loads(text)
                word = str(request.get("cmd", ""))
            else:
                parts = text.split()
                word = parts[0] if parts else ""
                if len(parts) > 1:
                    request["from"] = int(parts[1])
            start = request.get("from")
            if start is not None and (isinstance(start, bool) or not isinstance(start, int)
                                      or start < 0):
                raise ValueError("from = %r: must be a whole number >= 0" % (start,))
        except ValueError as exc:
            return {"ok": False, "error": "%r: %s" % (text, exc)}
        run = self.run_
        if word == "status":
            return {"ok": True, "now_ms": self.now_virtual_ms(), "powered": run.powered,
                    "frames": self.frames, "status": self.pump.status(),
                    "interrogate": answers.interrogate(self.telemetry.pump)}
        if word == "log":
            entries = []
            seq = request.get("from") or 1
            while True:
                records = self.pump.persist.log_read(seq, 32)
                if not records:
                    break
                entries.extend(decode(s, t, code, list(args)) for s, t, code, args in records)
                seq = records[-1][0] + 1
            return {"ok": True, "log": entries}
        if word == "events":
            start = request.get("from") or 0
            return {"ok": True, "events": self.events[start:], "next": len(self.events)}
        if word == "stop":
            self.stop()
            return {"ok": True}
        return {"ok": False, "error": "%r: unknown request; known: status, log [FROM], "
                                      "events [FROM], stop" % text}

    def shutdown(self):
        pump = self.pump
        pump.dirty = True
        pump.commit()
        try:
            if self.link is not None:
                self.link.close()
        finally:
            if self.capture is not None:
                self.capture.close()
            if self.storage is not None:
                self.storage.close()
