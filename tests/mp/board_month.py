"""A month on a board, for the board memory budget: the host-side drivers (CPython).

The SCI scenario (scenarios/adult-sci-continuous.toml) replays for 30 days as sim/replay.py runs
it, with what a board has that the plain replay leaves out:

* storage out of the heap: the pump's non-volatile memory is a file (hal/file_storage.py, the
  class a board keeps its flash storage in), not SimStorage's bytearray;
* a telemetry session a week, through the firmware's own telemetry (firmware/telemetry.py): a
  clinician's handheld identifies the pump, authenticates, interrogates it, reads a page of the
  log and closes the session (day 7, 14, 21 and 28 at 10:00).

The board (Month: portable) is tests/mp/month_steps.py, the only part that runs in the
MicroPython heap.  The handheld is another device, so it runs here, on the host (Handheld), and
its bytes reach the board through MicroPython's file system (node reads and writes it, not the
heap), as a UART's reach a board through its pins.  The month runs in steps:
run_on_micropython() drives one program per wake of the board (the events due at the firmware's
next deadline, at least one wake every 5 minutes) and, for each exchange of a session, one
program in which the pump handles the request.  The WebAssembly port collects garbage only
between programs, and board/vpump_main.py's loop collects after each wake, so the programs end
where a board collects; gc.mem_alloc() is read at the end of each, before the collection:
everything the step allocated is in it.
tests/mp/test_board_memory.py holds the month to 144 KiB with it and bench/run.py reports the peak
(mp_peak_heap_30d_bytes).  The trace (the firmware's log as sim/replay.py's trace lines, which
the board writes to a file so that they cost no heap, then a line per exchange with what the
handheld heard) is compared with run_on_cpython()'s.
"""

from month_steps import (  # noqa: F401 (the month's names, for the drivers' callers)
    DAYS, HOUR_MS, DAY_MS, KEYS_TEXT, SCENARIO, SESSION_AT_MS, SESSION_EVERY_DAYS, Month)

# What a board's code is made of, leaves first: under MicroPython each is compiled from source
# in a program of its own, so one module's parse garbage is gone before the next compiles.
BOARD_MODULES = ("protocol.reasons", "protocol.errors", "protocol.crc", "protocol.fields",
                 "protocol.frame", "protocol.commands", "protocol.session", "protocol.keys",
                 "hal.errors", "hal.base", "hal.file_storage", "firmware.errors",
                 "firmware.scheduler", "firmware.dosing", "firmware.eventlog", "firmware.alarms",
                 "firmware.limits", "firmware.persist", "firmware.table", "firmware.machine",
                 "firmware.therapy", "firmware.bolus", "firmware.reservoir", "firmware.battery",
                 "firmware.snapshot", "firmware.pump", "firmware.answers", "firmware.telemetry")


# -- the handheld (host side: another device) ------------------------------------------------

def canon(value):
    # A decoded answer as text, the same however dicts are ordered.
    if isinstance(value, dict):
        return "{" + ", ".join("%s: %s" % (k, canon(value[k])) for k in sorted(value)) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(canon(v) for v in value) + "]"
    if isinstance(value, (bytes, bytearray)):
        return "0x" + "".join("%02x" % b for b in value)
    return repr(value)


class Handheld:
    # The clinician's side of one routine session (docs/protocol.md), as a programmer runs it:
    # request(name) gives the frame to send, heard(name, answer) reads the pump's answer.
    STEPS = ("identify", "open", "authenticate", "interrogate", "read_log", "close")

    def __init__(self):
        from protocol import keys
        self.key = keys.parse_keys(KEYS_TEXT)["clinician"]
        self.cn = b"c" * 16
        self.seq = 0
        self.counter = 0
        self.session_key = None
        self.opened = None
        self.sessions = 0

    def request(self, name):
        from protocol import commands as C
        from protocol import frame, session
        if name == "identify":
            self.sessions += 1
        role = session.ROLE_CLINICIAN
        self.seq = (self.seq + 1) & 0xFF
        plain = {"identify": (C.IDENTIFY, None),
                 "open": (C.SESSION_OPEN, {"role": role, "cn": self.cn})}
        if name in plain:
            cmd, fields = plain[name]
            return frame.encode(self.seq, cmd, C.encode_request(cmd, fields))
        if name == "authenticate":
            return frame.encode(self.seq, C.SESSION_AUTH, C.encode_request(C.SESSION_AUTH, {
                "session_id": self.opened["session_id"],
                "proof": session.client_proof(self.key, self.opened["pn"], self.cn, role)}))
        cmd, fields = {"interrogate": (C.INTERROGATE, None),
                       "read_log": (C.READ_LOG, {"start_seq": 1 + 32 * (self.sessions - 1),
                                                 "max_entries": 32}),
                       "close": (C.SESSION_CLOSE, None)}[name]
        self.counter += 1
        return frame.encode(self.seq, cmd, session.wrap_request(
            self.session_key, frame.VERSION, self.seq, cmd, self.counter,
            C.encode_request(cmd, fields)))

    def heard(self, name, answer):
        # What the handheld heard (for the trace); raises if the pump did not play its part.
        from protocol import commands as C
        from protocol import frame, session
        items = frame.Decoder().feed(bytes(answer))
        if len(items) != 1 or items[0][0] != 0 or items[0][2] != self.seq:
            raise ValueError("no single answer to %s: %r" % (name, items))
        resp_cmd, payload = items[0][3], items[0][4]
        role = session.ROLE_CLINICIAN
        if name in ("identify", "open", "authenticate"):
            status, fields = C.decode_response(resp_cmd, payload)
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
        parts = session.unwrap(payload)
        if parts is None:
            heard = C.decode_response(resp_cmd, payload)        # a NAK sent without a MAC
        else:
            counter, body, mac = parts
            if not session.verify_response(self.session_key, frame.VERSION, self.seq, resp_cmd,
                                           counter, body, mac):
                raise ValueError("the answer to %s does not verify" % name)
            heard = C.decode_response(resp_cmd, body)
        if name == "read_log":
            status, page = heard
            return status, page["next_seq"], [e["code"] for e in page["entries"]]
        if name == "close":
            self.session_key = None
        return heard

    def line(self, name, t_ms, answer):
        return "session %d %s at %d: %s\n" % (self.sessions, name, t_ms,
                                               canon(self.heard(name, answer)))


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
    handheld = Handheld()
    heard = []
    for _ in range(month.hours()):
        month.advance(HOUR_MS)
        if month.session_due():
            for name in Handheld.STEPS:
                month.receive(handheld.request(name))
                month.pump_step()
                heard.append(handheld.line(name, month.t_ms, month.transmit()))
    month.finish()
    with open(trace_path) as f:
        return f.read() + "".join(heard)


# The simulator's files the month needs besides the board's bundle (the sim board goes into the
# bundle's hal package: a package is found in one folder only).  They are compiled as the bundle
# is (mpy-cross -O3): the simulator is not what is measured, so it should cost the heap no more
# than it must.  The drivers below stay on the host.
SIM_FILES = (("sim/__init__.py", "/lib/sim/__init__.py"), ("sim/plan.py", "/lib/sim/plan.py"),
             ("sim/replay.py", "/lib/sim/replay.py"),
             ("hal/sim.py", "/flash/hal/sim.py"),
             ("firmware/scheduler_direct.py", "/flash/firmware/scheduler_direct.py"),
             ("tests/mp/month_steps.py", "/lib/month_steps.py"))
SIM_MODULES = ("firmware.scheduler_direct", "hal.sim", "sim.plan", "sim.replay", "month_steps")


def _compiled(cmd, opt, root, source, folder):
    # source compiled to .mpy as tools/flash.py compiles the bundle; returns its bytes.
    import os
    import subprocess
    target = os.path.join(folder, source.replace("/", "_")[:-3] + ".mpy")
    proc = subprocess.run(cmd + ["-O%d" % opt, "-s", source.split("/")[-1], "-o", target,
                                 os.path.join(root, source)],
                          capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError("mpy-cross failed on %s: %s" % (source, proc.stderr or proc.stdout))
    with open(target, "rb") as f:
        return f.read()


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
        cmd = flash.find_mpy_cross()
        for source, target in SIM_FILES:
            mp.write(target[:-3] + ".mpy", _compiled(cmd, flash.OPT, root, source, mp_dir))
        mp.write("/lib/_keep.py", "# holds objects from one program to the next\n")
        mp.run("import sys\nsys.path.insert(0, '/flash')\nsys.path.insert(1, '/lib')")
    except BaseException:
        mp.close()
        raise
    return mp


# The board's time runs in programs of one wake each, as board/vpump_main.py's loop runs it: the
# events due at the firmware's next deadline (or nothing, at least every PART_MS), then a
# collection, as the loop collects after a wake.  The WebAssembly port collects only between
# programs (gc.collect() inside one only asks for a collection at the top level), so a program
# ends where the board's loop collects.  gc.mem_alloc() is read at the end of each, before the
# collection.
PART_MS = 300000


def _collected(mp, code):
    # Run code as a program, collect, and return gc.mem_alloc() read by the next program.
    mp.run("import _keep\n" + code + "\nimport gc\ngc.collect()\n")
    return int(mp.run("import gc\nprint(gc.mem_alloc())"))


def run_on_micropython(mp, config_text, days=DAYS):
    """Run the month in mp (a micropython_session), one program per wake of the board (at least
    one per PART_MS) and one per exchange of a session (the pump handling the handheld's
    request).  Returns a
    dict: trace (text); heap_total_start and heap_total_end (gc.mem_free() + gc.mem_alloc(): it
    grows only when the port had to add heap to the one it started with); base, code (the
    board's modules imported), sim_code (and the simulator's), started (the month built: the
    board, the replay's plan, the pump booted, its telemetry), after (all collected, at the
    end); samples [(t_ms, what, gc.mem_alloc() at the end of that program, before its
    collection)]: what is "board runs" (one wake of the board) or "pump answers X"
    (the pump's telemetry handling exchange X of the routine session)."""
    mp.write("/data/scenario.json", config_text)
    out = {"heap_total_start": int(mp.run("import gc\nprint(gc.mem_free() + gc.mem_alloc())"))}
    out["base"] = _collected(mp, "")
    for name in BOARD_MODULES:
        out["code"] = _collected(mp, "import " + name)
    for name in SIM_MODULES:
        out["sim_code"] = _collected(mp, "import " + name)
    out["started"] = _collected(
        mp, "import json, month_steps\n_keep.m = month_steps.Month(json.load(open("
            "'/data/scenario.json')), '/flash/vpump.dat', '/data/trace.txt', %d)" % days)
    hours = int(mp.run("import _keep\nprint(_keep.m.hours())"))
    wake = "import _keep, gc\n_keep.m.wake_program(%d)\ngc.collect()\n"
    # The link: the request's bytes arrive, the pump handles them (the measured step), its
    # answer leaves; the bytes cross through files, which the host reads and writes.
    arrive = ("import _keep, gc\nf = open('/data/request.bin', 'rb')\n_keep.m.receive(f.read())\n"
              "f.close()\nf = None\ngc.collect()\n")
    handle = "import _keep, gc\n_keep.m.pump_program()\ngc.collect()\n"
    leave = ("import _keep, gc\nf = open('/data/answer.bin', 'wb')\nf.write(_keep.m.transmit())\n"
             "f.close()\nf = None\ngc.collect()\n")
    handheld = Handheld()
    heard = []
    samples = []
    t_ms = 0
    while t_ms < hours * HOUR_MS:
        limit = (t_ms // PART_MS + 1) * PART_MS
        t_ms, due, alloc = [int(v) for v in mp.run(wake % limit).split()]
        samples.append((t_ms, "board runs", alloc))
        if due:
            for name in Handheld.STEPS:
                mp.write("/data/request.bin", handheld.request(name))
                mp.run(arrive)
                samples.append((t_ms, "pump answers " + name, int(mp.run(handle))))
                mp.run(leave)
                heard.append(handheld.line(name, t_ms, mp.read("/data/answer.bin")))
    out["samples"] = samples
    out["after"] = _collected(mp, "_keep.m.finish()")
    out["trace"] = mp.read("/data/trace.txt").decode("utf-8") + "".join(heard)
    out["heap_total_end"] = int(mp.run("import gc\nprint(gc.mem_free() + gc.mem_alloc())"))
    return out
