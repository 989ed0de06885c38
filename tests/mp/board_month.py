"""A month on a board, for the board memory budget: the host-side drivers (CPython).

The SCI scenario (scenarios/adult-sci-continuous.toml) replays for 30 days as sim/replay.py runs
it, with what a board has that the plain replay leaves out:

* storage out of the heap: the pump's non-volatile memory is a file (hal/file_storage.py, the
  class a board keeps its flash storage in), not SimStorage's bytearray;
* a telemetry session a week, through the firmware's own telemetry (firmware/telemetry.py) over
  an in-memory link: a clinician's handheld identifies the pump, authenticates, interrogates it,
  reads a page of the log and closes the session (day 7, 14, 21 and 28 at 10:00).

The month itself (Month, Handheld: portable) is tests/mp/month_steps.py, the only part that runs
in the MicroPython heap.  It runs in steps: Month.advance(ms), and when session_due() the
session's exchanges (the handheld sends, the pump answers, the handheld reads), each meant to be
one top-level program under the WebAssembly port, which collects garbage only between programs
(a board collects whenever it must).
run_on_micropython() drives it so, one program per 5 minutes of the month, and reads
gc.mem_alloc() at the end of every step (before the collection: everything the step allocated is
in it); tests/mp/test_board_memory.py holds the board's running time to 144 KiB with it and
bench/run.py reports the peak (mp_peak_heap_30d_bytes).  The trace (the firmware's log as sim/replay.py's trace lines, plus a
line per session with what the handheld heard) goes to a file, so it costs no heap either;
run_on_cpython() writes the same trace for comparison.
"""

from month_steps import (  # noqa: F401 (the month's names, for the drivers' callers)
    DAYS, HOUR_MS, DAY_MS, SCENARIO, SESSION_AT_MS, SESSION_EVERY_DAYS, Handheld, Month)

# What a board's code is made of, leaves first: under MicroPython each is compiled from source
# in a program of its own, so one module's parse garbage is gone before the next compiles.
BOARD_MODULES = ("protocol.reasons", "protocol.errors", "protocol.crc", "protocol.fields",
                 "protocol.frame", "protocol.commands", "protocol.session", "protocol.keys",
                 "hal.errors", "hal.base", "hal.file_storage", "firmware.errors",
                 "firmware.scheduler", "firmware.dosing", "firmware.eventlog", "firmware.alarms",
                 "firmware.limits", "firmware.persist", "firmware.table", "firmware.machine",
                 "firmware.therapy", "firmware.bolus", "firmware.reservoir", "firmware.battery",
                 "firmware.snapshot", "firmware.pump", "firmware.telemetry")


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
# is found in one folder only).  They are compiled as the bundle is (mpy-cross -O3): the
# simulator is not what is measured, so it should cost the heap no more than it must.  The
# drivers below stay on the host.
SIM_FILES = (("sim/__init__.py", "/lib/sim/__init__.py"), ("sim/plan.py", "/lib/sim/plan.py"),
             ("sim/replay.py", "/lib/sim/replay.py"),
             ("hal/sim.py", "/flash/hal/sim.py"),
             ("firmware/scheduler_direct.py", "/flash/firmware/scheduler_direct.py"),
             ("protocol/commands_host.py", "/flash/protocol/commands_host.py"),
             ("tests/mp/month_steps.py", "/lib/month_steps.py"))
SIM_MODULES = ("protocol.commands_host", "firmware.scheduler_direct", "hal.sim", "sim.plan",
               "sim.replay", "month_steps")


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


# The board's time runs in programs of a few minutes each: a board collects when its heap
# fills, the WebAssembly port only between programs (gc.collect() inside one only asks for a
# collection at the top level), so a program's garbage stands for what a board's heap holds
# before its collector runs.  gc.mem_alloc() is read at the end of each (every 5 minutes of the
# month, before the collection).
PARTS_PER_HOUR = 12


def _collected(mp, code):
    # Run code as a program, collect, and return gc.mem_alloc() read by the next program.
    mp.run("import _keep\n" + code + "\nimport gc\ngc.collect()\n")
    return int(mp.run("import gc\nprint(gc.mem_alloc())"))


def run_on_micropython(mp, config_text, days=DAYS):
    """Run the month in mp (a micropython_session), one program per 5 minutes (PARTS_PER_HOUR)
    and one per step of a session exchange.  Returns a dict: trace (text); heap_total_start and
    heap_total_end (gc.mem_free() + gc.mem_alloc(): it grows only when the port had to add heap
    to the one it started with); base, code (the board's modules imported), sim_code (and the
    simulator's), started (the month built: the board, the replay's plan, the pump booted, its
    telemetry), after (all collected, at the end); samples [(t_ms, what, gc.mem_alloc() at the
    end of that program, before its collection)]: what is "board runs" (5 minutes of the
    board's time), "pump answers X" (the pump's telemetry handling exchange X), "handheld sends
    X" or "handheld reads X" (the other device's work, done in this heap only because the
    simulation runs it here)."""
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
    hour = ("import _keep, gc\nm = _keep.m\nm.advance(%d)\n"
            "print(m.t_ms, 1 if m.session_due() else 0, gc.mem_alloc())\nm = None\ngc.collect()\n"
            % (HOUR_MS // PARTS_PER_HOUR))
    step = "import _keep, gc\n_keep.m.%s\nprint(gc.mem_alloc())\ngc.collect()\n"
    samples = []
    for _ in range(hours * PARTS_PER_HOUR):
        t_ms, due, alloc = [int(v) for v in mp.run(hour).split()]
        samples.append((t_ms, "board runs", alloc))
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
