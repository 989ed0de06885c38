"""A month on a board, for the board memory budget.  Portable: CPython and MicroPython 1.27.

The SCI scenario (scenarios/adult-sci-continuous.toml) replays for 30 days as sim/replay.py runs
it, with what a board has that the plain replay leaves out:

* storage out of the heap: the pump's non-volatile memory is a file (hal/file_storage.py, the
  class a board keeps its flash storage in), not SimStorage's bytearray;
* a telemetry session a week, through the firmware's own telemetry (firmware/telemetry.py) over
  an in-memory link: a clinician's handheld identifies the pump, authenticates, interrogates it,
  reads a page of the log and closes the session (day 7, 14, 21 and 28 at 10:00).

The month runs in steps: Month.hour(), and when session_due() the session's exchanges (the
handheld sends, the pump answers, the handheld reads), each meant to be one top-level program
under the WebAssembly port, which collects garbage only between programs (a board collects
whenever it must).
run_on_micropython() drives it so, one program per hour, and reads gc.mem_alloc() at the end of
every step (before the collection: everything the step allocated is in it); tests/mp/
test_board_memory.py holds the heap to 144 KiB with it and bench/run.py reports the peak
(mp_peak_heap_30d_bytes).  The trace (the firmware's log as sim/replay.py's trace lines, plus a
line per session with what the handheld heard) goes to a file, so it costs no heap either;
run_on_cpython() writes the same trace for comparison.
"""

from firmware.telemetry import Telemetry
from hal.base import Link
from hal.file_storage import FileStorage
from protocol import commands as C
from protocol import frame, keys, session
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
# What a board's code is made of, leaves first: under MicroPython each is compiled from source
# in a program of its own, so one module's parse garbage is gone before the next compiles.
BOARD_MODULES = ("protocol.reasons", "protocol.errors", "protocol.crc", "protocol.fields",
                 "protocol.frame", "protocol.commands", "protocol.session", "protocol.keys",
                 "hal.errors", "hal.base", "hal.file_storage", "firmware.errors",
                 "firmware.scheduler", "firmware.dosing", "firmware.eventlog", "firmware.alarms",
                 "firmware.limits", "firmware.persist", "firmware.table", "firmware.machine",
                 "firmware.therapy", "firmware.bolus", "firmware.reservoir", "firmware.battery",
                 "firmware.snapshot", "firmware.pump", "firmware.telemetry")


class LoopLink(Link):
    # Two byte queues between the handheld and the pump.
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


def canon(value):
    # A decoded answer as text, the same on both interpreters (dict order differs).
    if isinstance(value, dict):
        return "{" + ", ".join("%s: %s" % (k, canon(value[k])) for k in sorted(value)) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(canon(v) for v in value) + "]"
    if isinstance(value, (bytes, bytearray)):
        return "0x" + "".join("%02x" % b for b in value)
    return repr(value)


class Handheld:
    # The clinician's side of one routine session (docs/protocol.md), as a programmer runs it.
    def __init__(self, telemetry, link, key, cn):
        self.telemetry = telemetry
        self.link = link
        self.key = key
        self.cn = cn
        self.seq = 0
        self.counter = 0
        self.session_key = None
        self.opened = None

    # An exchange is three steps: the handheld sends (send_*), the pump answers (pump_poll),
    # the handheld reads the answer (receive).  On a board the handheld is another device, so
    # under the WebAssembly port each is a program of its own: the pump's step holds only the
    # pump's garbage (and the request's bytes).

    def _send(self, cmd, body):
        self.seq = (self.seq + 1) & 0xFF
        self.cmd = cmd
        self.link.to_pump.extend(frame.encode(self.seq, cmd, body))

    def pump_poll(self):
        self.telemetry.poll()

    def _answer(self):
        items = frame.Decoder().feed(bytes(self.link.to_handheld))
        self.link.to_handheld = bytearray()
        if len(items) != 1 or items[0][0] != 0 or items[0][2] != self.seq:
            raise ValueError("no single answer to command 0x%02x: %r" % (self.cmd, items))
        return items[0][3], items[0][4]

    def send_plain(self, cmd, fields=None):
        self._send(cmd, C.encode_request(cmd, fields))

    def receive_plain(self):
        resp_cmd, payload = self._answer()
        return C.decode_response(resp_cmd, payload)

    def send_authenticated(self, cmd, fields=None):
        self.counter += 1
        self._send(cmd, session.wrap_request(self.session_key, frame.VERSION, (self.seq + 1) & 0xFF,
                                             cmd, self.counter, C.encode_request(cmd, fields)))

    def receive_authenticated(self):
        resp_cmd, payload = self._answer()
        parts = session.unwrap(payload)
        if parts is None:
            return C.decode_response(resp_cmd, payload)     # a NAK sent without a MAC
        counter, answer, mac = parts
        if not session.verify_response(self.session_key, frame.VERSION, self.seq, resp_cmd,
                                       counter, answer, mac):
            raise ValueError("the answer to command 0x%02x does not verify" % self.cmd)
        return C.decode_response(resp_cmd, answer)

    # The routine session: these exchanges, each sent, answered and received.
    STEPS = ("identify", "open", "authenticate", "interrogate", "read_log", "close")

    def send(self, name, log_from):
        role = session.ROLE_CLINICIAN
        if name == "identify":
            self.send_plain(C.IDENTIFY)
        elif name == "open":
            self.send_plain(C.SESSION_OPEN, {"role": role, "cn": self.cn})
        elif name == "authenticate":
            self.send_plain(C.SESSION_AUTH, {
                "session_id": self.opened["session_id"],
                "proof": session.client_proof(self.key, self.opened["pn"], self.cn, role)})
        elif name == "interrogate":
            self.send_authenticated(C.INTERROGATE)
        elif name == "read_log":
            self.send_authenticated(C.READ_LOG, {"start_seq": log_from, "max_entries": 32})
        else:
            self.send_authenticated(C.SESSION_CLOSE)

    def receive(self, name):
        # What the handheld heard (for the trace).
        role = session.ROLE_CLINICIAN
        if name in ("identify", "open", "authenticate"):
            status, fields = self.receive_plain()
            if name == "identify":
                return status, fields
            if name == "open":
                if status:
                    raise ValueError("SESSION_OPEN refused: %r" % (fields,))
                self.opened = fields
                return status, fields["session_id"]
            pn = self.opened["pn"]
            if status or fields["proof"] != session.pump_proof(self.key, self.cn, pn, role):
                raise ValueError("authentication failed: %r" % (fields,))
            self.session_key = session.session_key(self.key, pn, self.cn, role)
            self.counter = 0
            self.opened = None
            return status
        heard = self.receive_authenticated()
        if name == "read_log":
            status, page = heard
            return status, page["next_seq"], [e["code"] for e in page["entries"]]
        if name == "close":
            self.session_key = None
        return heard


class Month:
    def __init__(self, config, storage_path, trace_path, days=DAYS):
        self.trace = open(trace_path, "w")
        self.replay = Replay(config, days=days, on_log=self._log,
                             storage=FileStorage(storage_path, STORAGE_BYTES))
        self.replay.start()
        board = self.replay.board
        self.link = LoopLink()
        parsed = keys.parse_keys(KEYS_TEXT)
        # The board's seeded source for the challenges: reproducible (docs/threat-model.md's
        # test option; a board draws them from os.urandom).
        self.telemetry = Telemetry(self.replay.pump, self.link, parsed,
                                   nonce=board.rng.random_bytes)
        self.handheld = Handheld(self.telemetry, self.link, parsed["clinician"], b"c" * 16)
        self.t_ms = 0
        self.days = days
        self.sessions = 0

    def _log(self, seq, t_ms, code, args):
        self.trace.write(trace_line(seq, t_ms, code, args) + "\n")

    def hours(self):
        return self.days * 24

    def session_due(self):
        day = self.t_ms // DAY_MS
        return day > 0 and day % SESSION_EVERY_DAYS == 0 and self.t_ms % DAY_MS == SESSION_AT_MS

    def hour(self):
        # One hour of the month: the firmware and the simulated board run to its end.
        self.t_ms += HOUR_MS
        self.replay.run_to(self.t_ms)

    # This hour's session, in steps: exchange i is send_step(i), the pump's pump_step(), then
    # receive_step(i) (its answer into the trace).
    def send_step(self, i):
        if i == 0:
            self.sessions += 1
        self.handheld.send(Handheld.STEPS[i], 1 + 32 * (self.sessions - 1))

    def pump_step(self):
        self.handheld.pump_poll()

    def receive_step(self, i):
        name = Handheld.STEPS[i]
        heard = self.handheld.receive(name)
        self.trace.write("session %d %s at %d: %s\n" % (self.sessions, name, self.t_ms,
                                                        canon(heard)))

    def finish(self):
        self.trace.close()
        self.replay.board.storage.close()


# -- drivers (host side: they start the month and read the results) -------------------------

def scenario_json():
    # The scenario as sim.scenario.load gives it, as JSON text (MicroPython reads no TOML).
    import json
    from sim import scenario
    return json.dumps(scenario.load(scenario.find(SCENARIO)), sort_keys=True)


def run_on_cpython(config_text, folder, days=DAYS):
    # The month in one go; returns the trace.
    import json
    import os
    trace_path = os.path.join(folder, "trace.txt")
    storage_path = os.path.join(folder, "vpump.dat")
    if os.path.exists(storage_path):
        os.remove(storage_path)         # a new pump: erased memory, as MicroPython's is
    month = Month(json.loads(config_text), storage_path, trace_path, days)
    for _ in range(month.hours()):
        month.hour()
        if month.session_due():
            for i in range(len(Handheld.STEPS)):
                month.send_step(i)
                month.pump_step()
                month.receive_step(i)
    month.finish()
    with open(trace_path) as f:
        return f.read()


# The simulator's files a session needs besides the board's bundle (the handheld's half of the
# codecs goes into the bundle's protocol package, the sim board into its hal package: a package
# is found in one folder only).
SIM_FILES = (("sim/__init__.py", "/lib/sim/__init__.py"), ("sim/plan.py", "/lib/sim/plan.py"),
             ("sim/replay.py", "/lib/sim/replay.py"),
             ("hal/sim.py", "/flash/hal/sim.py"),
             ("firmware/scheduler_direct.py", "/flash/firmware/scheduler_direct.py"),
             ("protocol/commands_host.py", "/flash/protocol/commands_host.py"),
             ("tests/mp/board_month.py", "/lib/board_month.py"))
SIM_MODULES = ("protocol.commands_host", "firmware.scheduler_direct", "hal.sim", "sim.plan",
               "sim.replay", "board_month")


def micropython_session(mp_dir, heapsize=None, timeout_s=600):
    """A MicroPython session that runs what a board runs: the .mpy files of `vpump flash`'s
    bundle (mpy-cross -O3) under /flash, first on sys.path, without the host-only modules the
    bundle leaves out; and the simulator's sources beside them (SIM_FILES).  mp_dir: a folder
    for the bundle."""
    import os
    import sys
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import mpsession
    from tools import flash
    root = mpsession.ROOT
    manifest = flash.build(mp_dir, "rp2")
    mp = mpsession.MicroPython(files=[], timeout_s=timeout_s, heapsize=heapsize)
    try:
        for entry in manifest["files"]:
            if entry["kind"] == "mpy":
                with open(os.path.join(mp_dir, entry["path"]), "rb") as f:
                    mp.write("/flash/" + entry["path"], f.read())
        for source, target in SIM_FILES:
            with open(os.path.join(root, source), "rb") as f:
                mp.write(target, f.read())
        mp.write("/lib/_keep.py", "# holds objects from one program to the next\n")
        mp.run("import sys\nsys.path.insert(0, '/flash')\nsys.path.insert(1, '/lib')")
    except BaseException:
        mp.close()
        raise
    return mp


def _collected(mp, code):
    # Run code as a program, collect, and return gc.mem_alloc() read by the next program.
    mp.run("import _keep\n" + code + "\nimport gc\ngc.collect()\n")
    return int(mp.run("import gc\nprint(gc.mem_alloc())"))


def run_on_micropython(mp, config_text, days=DAYS):
    """Run the month in mp (a micropython_session), one program per hour and one per session
    exchange.  Returns a dict: trace (text); heap_total_start and heap_total_end
    (gc.mem_free() + gc.mem_alloc(): it grows only when the port had to add heap to the one it
    started with); base, code (the board's modules imported), sim_code (and the simulator's),
    started (the month built: the board, the replay's plan, the pump booted, its telemetry),
    after (all collected, at the end); samples [(t_ms, what, gc.mem_alloc() at the end of that
    program, before its collection)]: what is "hour" (the board's hour), "pump answers X" (the
    pump's telemetry handling exchange X), "handheld sends X" or "handheld reads X" (the other
    device's work, done in this heap only because the simulation runs it here)."""
    mp.write("/data/scenario.json", config_text)
    out = {"heap_total_start": int(mp.run("import gc\nprint(gc.mem_free() + gc.mem_alloc())"))}
    out["base"] = _collected(mp, "")
    for name in BOARD_MODULES:
        out["code"] = _collected(mp, "import " + name)
    for name in SIM_MODULES:
        out["sim_code"] = _collected(mp, "import " + name)
    out["started"] = _collected(
        mp, "import json, board_month\n_keep.m = board_month.Month(json.load(open("
            "'/data/scenario.json')), '/flash/vpump.dat', '/data/trace.txt', %d)" % days)
    hours = int(mp.run("import _keep\nprint(_keep.m.hours())"))
    hour = ("import _keep, gc\nm = _keep.m\nm.hour()\nprint(m.t_ms, 1 if m.session_due() else 0,"
            " gc.mem_alloc())\nm = None\ngc.collect()\n")
    step = "import _keep, gc\n_keep.m.%s\nprint(gc.mem_alloc())\ngc.collect()\n"
    samples = []
    for _ in range(hours):
        t_ms, due, alloc = [int(v) for v in mp.run(hour).split()]
        samples.append((t_ms, "hour", alloc))
        if due:
            for i in range(len(Handheld.STEPS)):
                name = Handheld.STEPS[i]
                samples.append((t_ms, "handheld sends " + name,
                                int(mp.run(step % ("send_step(%d)" % i)))))
                samples.append((t_ms, "pump answers " + name, int(mp.run(step % "pump_step()"))))
                samples.append((t_ms, "handheld reads " + name,
                                int(mp.run(step % ("receive_step(%d)" % i)))))
    out["samples"] = samples
    out["after"] = _collected(mp, "_keep.m.finish()")
    out["trace"] = mp.run("f = open('/data/trace.txt')\nwhile True:\n    line = f.readline()\n"
                          "    if not line:\n        break\n    print(line, end='')\nf.close()")
    out["heap_total_end"] = int(mp.run("import gc\nprint(gc.mem_free() + gc.mem_alloc())"))
    return out
