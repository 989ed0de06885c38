"""The board's side of tests/mp/board_month.py's month: what runs in the MicroPython heap.

Portable: CPython and MicroPython 1.27.  Only the board is here: the replayed SCI scenario on a
pump whose storage is a file, and its telemetry on a link whose other end is a file pair (the
clinician's handheld is another device: board_month.py runs it on the host and passes its bytes
through MicroPython's file system, as a UART passes them through wires).  See board_month.py for
what the month is.
"""

import gc

from firmware.telemetry import Telemetry
from hal.base import Link
from hal.file_storage import FileStorage
from protocol import keys
from sim.replay import Replay, trace_line

SCENARIO = "adult-sci-continuous"
HOUR_MS = 3600000
DAY_MS = 24 * HOUR_MS
DAYS = 30
SESSION_EVERY_DAYS = 7
SESSION_AT_MS = 10 * HOUR_MS            # a clinic visit in the morning
STORAGE_BYTES = 32768                   # hal/machine.py's default storage_size
# Fixed keys (and the scenario's seeded nonces): the same bytes on every run.
KEYS_TEXT = ('{"serial": "VP-MONTH1", "clinician": "' + "11" * 32 + '", "patient": "'
             + "22" * 32 + '"}')


class LoopLink(Link):
    # The pump's end of the link: what the handheld sent (to_pump) and what the pump answered
    # (to_handheld), each a byte queue.
    def __init__(self):
        Link.__init__(self)
        self.to_pump = bytearray()
        self.to_handheld = bytearray()

    def _write_internal(self, data):
        self.to_handheld.extend(data)
        return len(data)

    def _read_internal(self, max_bytes):
        data = bytes(self.to_pump[:max_bytes])
        self.to_pump = self.to_pump[max_bytes:]
        return data


class Month:
    def __init__(self, config, storage_path, trace_path, days=DAYS):
        self.trace = open(trace_path, "w")
        self.replay = Replay(config, days=days, on_log=self._log,
                             storage=FileStorage(storage_path, STORAGE_BYTES))
        self.replay.start()
        self.link = LoopLink()
        # The board's seeded source for the challenges: reproducible (docs/threat-model.md's
        # test option; a board draws them from os.urandom).
        self.telemetry = Telemetry(self.replay.pump, self.link, keys.parse_keys(KEYS_TEXT),
                                   nonce=self.replay.board.rng.random_bytes)
        self.t_ms = 0
        self.days = days

    def _log(self, seq, t_ms, code, args):
        self.trace.write(trace_line(seq, t_ms, code, args) + "\n")

    def hours(self):
        return self.days * 24

    def session_due(self):
        day = self.t_ms // DAY_MS
        return day > 0 and day % SESSION_EVERY_DAYS == 0 and self.t_ms % DAY_MS == SESSION_AT_MS

    def advance(self, ms):
        # ms more of the month, in one go.
        self.t_ms += ms
        self.replay.run_to(self.t_ms)

    def wake(self, limit_ms):
        # One wake of the board, as board/vpump_main.py's loop has them: run what falls due at
        # the firmware's next deadline, or up to limit_ms when nothing is due before it (the
        # loop sleeps at most a few minutes).  The loop collects garbage after a wake, so what
        # a wake allocates is what the heap must hold on top of the live objects.
        deadline = self.replay.pump.sched.next_deadline()
        target = limit_ms
        if deadline is not None and deadline < limit_ms:
            target = deadline if deadline > self.t_ms else self.t_ms
        self.t_ms = target
        self.replay.run_to(target)
        return target

    # The drivers' programs under MicroPython (board_month.run_on_micropython): a wake, or the
    # pump's handling of a request, then what the drivers read.  gc.mem_alloc() is taken right
    # after the board's work, so a sample holds its garbage, not the report's.
    def wake_program(self, limit_ms):
        t = self.wake(limit_ms)
        alloc = gc.mem_alloc()
        print(t, 1 if t == limit_ms and self.session_due() else 0, alloc)

    def pump_program(self):
        self.pump_step()
        print(gc.mem_alloc())

    # One exchange with the handheld: its request arrives (receive), the pump handles it
    # (pump_step: the firmware's telemetry, nothing else), its answer leaves (transmit).
    def receive(self, request):
        self.link.to_pump.extend(request)

    def pump_step(self):
        self.telemetry.poll()

    def transmit(self):
        answer = self.link.to_handheld
        self.link.to_handheld = bytearray()
        return answer

    def finish(self):
        self.trace.close()
        self.replay.board.storage.close()
