"""vpump benchmarks: `make bench` (or `python bench/run.py [--only NAME ...] [--quick]`).

Each figure is a function registered in FIGURES under its name; it takes `quick` (bool) and
returns one result: {"value": NUMBER or None, "unit": str, "goal": NUMBER or None,
"better": "higher" | "lower", "note": str}.  Results go to bench/results.json (one object per
figure, see docs/DESIGN "Benchmarks"), and a table is printed.  A full run rewrites the file; with
--only the named figures are merged into the existing file, so the others stay.

Ratios are measured side by side in one run: the contenders' repetitions are interleaved
(A B A B ...) and the best of each is kept, so machine noise (other processes, turbo, thermal)
hits both alike.  To add a figure:

    @figure("my_figure")
    def my_figure(quick):
        ...
        return result(value, "x", goal=2.0, better="higher", note="what was measured")

Benchmarks never run inside `make test`.
"""

import argparse
import gc
import heapq
import json
import os
import platform
import random
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

RESULTS = os.path.join(HERE, "results.json")

FIGURES = {}  # name -> function(quick) -> result dict, in registration (= table) order


def figure(name):
    def register(fn):
        if name in FIGURES:
            raise ValueError("figure %r registered twice" % name)
        FIGURES[name] = fn
        return fn
    return register


def result(value, unit, goal=None, better="higher", note=""):
    if better not in ("higher", "lower"):
        raise ValueError("better=%r: use 'higher' or 'lower'" % (better,))
    return {"value": value, "unit": unit, "goal": goal, "better": better, "note": note}


def not_implemented(unit, goal=None, better="higher"):
    return result(None, unit, goal, better, "not implemented yet")


# --- measuring -----------------------------------------------------------------------------


def timed(fn):
    # Seconds taken by fn() (its return value is returned too), with the cyclic GC off as
    # timeit does, after a collection so garbage from a previous run is not charged to this one.
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        t0 = time.perf_counter()
        out = fn()
        elapsed = time.perf_counter() - t0
    finally:
        if was_enabled:
            gc.enable()
    return elapsed, out


def best_of_interleaved(contenders, reps):
    # contenders: {name: fn() -> number of events}.  Runs them in turn, reps rounds (the order
    # rotates each round), and returns {name: (best events/s, events)}.  Every run of one
    # contender must report the same number of events.
    best = {}
    events = {}
    names = list(contenders)
    # One untimed round first: the first runs in a fresh process pay for growing the
    # allocator's arenas (measured here: about 25% for the scheduler), which no later run does.
    for name in names:
        contenders[name]()
    for rnd in range(reps):
        k = rnd % len(names)
        for name in names[k:] + names[:k]:
            elapsed, n = timed(contenders[name])
            if events.setdefault(name, n) != n:
                raise RuntimeError("%s: %d events, earlier run had %d" % (name, n, events[name]))
            rate = n / elapsed
            if rate > best.get(name, 0.0):
                best[name] = rate
    return dict((name, (best[name], events[name])) for name in names)


# --- the timeout workload: N processes, each re-arming a timeout at a random delay ---------
#
# Delays are drawn up front (fixed seed) so no contender pays for the random number generator,
# and all of them consume exactly the same delays: n_procs processes x per_proc timeouts each.

DEFAULT_PROCS = 100
MAX_DELAY_MS = 1000


def workload(n_events, n_procs=DEFAULT_PROCS, seed=20240601):
    rng = random.Random(seed)
    per_proc = n_events // n_procs
    return [[rng.randint(1, MAX_DELAY_MS) for _ in range(per_proc)] for _ in range(n_procs)]


def run_bare_heap(delays):
    # The floor: heapq of (deadline, seq, callback) and a pop-and-call loop, nothing else.
    heap = []
    push = heapq.heappush
    pop = heapq.heappop
    state = {"seq": 0, "now": 0, "n": 0}

    def make(proc_delays):
        it = iter(proc_delays)

        def cb():
            state["n"] += 1
            for d in it:
                state["seq"] += 1
                push(heap, (state["now"] + d, state["seq"], cb))
                break
        return cb

    for proc_delays in delays:
        cb = make(proc_delays)
        state["seq"] += 1
        push(heap, (0, state["seq"], cb))
    while heap:
        now, _, cb = pop(heap)
        state["now"] = now
        cb()
    return state["n"] - len(delays)  # the initial kick-offs are not timeouts


def run_scheduler(delays):
    # firmware.scheduler.Scheduler on a virtual clock, driven the way `vpump run` drives it
    # (run_until: the clock jumps to each deadline).
    from firmware.scheduler import Scheduler
    from hal.sim import VirtualClock

    clock = VirtualClock()
    s = Scheduler(clock)
    after = s.after
    count = [0]

    def make(proc_delays):
        it = iter(proc_delays)

        def cb():
            count[0] += 1
            for d in it:
                after(d, cb)
                break
        return cb

    for proc_delays in delays:
        s.at(0, make(proc_delays))
    s.run_until(1 << 62)
    return count[0] - len(delays)


def run_simpy(delays):
    # SimPy 4: one generator process per stream, `yield env.timeout(delay)`.
    import simpy

    env = simpy.Environment()
    count = [0]

    def proc(env, proc_delays):
        timeout = env.timeout
        for d in proc_delays:
            yield timeout(d)
            count[0] += 1

    for proc_delays in delays:
        env.process(proc(env, proc_delays))
    env.run()
    return count[0]


def bare_heap_events_per_s(n_events, reps, n_procs=DEFAULT_PROCS):
    # Helper for other figures: best-of-reps events/s of the bare heap on the timeout workload.
    delays = workload(n_events, n_procs)
    return best_of_interleaved({"bare": lambda: run_bare_heap(delays)}, reps)["bare"][0]


def _sizes(quick):
    # (events per run, repetitions per contender)
    return (60000, 3) if quick else (300000, 7)


def _fmt_rate(rate):
    return "%.2f M events/s" % (rate / 1e6)


# --- figures ---------------------------------------------------------------------------------


@figure("bare_heap_events_per_s")
def fig_bare_heap(quick):
    n_events, reps = _sizes(quick)
    rate = bare_heap_events_per_s(n_events, reps)
    return result(
        round(rate), "events/s", goal=None, better="higher",
        note="baseline: heapq push/pop of (deadline, seq, callback) and a call loop; %d processes "
             "re-arming a timeout at a random 1..%d ms delay, %d events, best of %d (Python %s)"
             % (DEFAULT_PROCS, MAX_DELAY_MS, n_events, reps, platform.python_version()))


@figure("scheduler_vs_simpy")
def fig_scheduler_vs_simpy(quick):
    n_events, reps = _sizes(quick)
    delays = workload(n_events)
    best = best_of_interleaved({
        "scheduler": lambda: run_scheduler(delays),
        "simpy": lambda: run_simpy(delays),
    }, reps)
    (ours, n_ours), (theirs, n_theirs) = best["scheduler"], best["simpy"]
    if n_ours != n_theirs:
        raise RuntimeError("workloads differ: scheduler %d events, simpy %d" % (n_ours, n_theirs))
    import simpy
    return result(
        round(ours / theirs, 3), "x", goal=1.5, better="higher",
        note="events/s of firmware.scheduler.Scheduler on a VirtualClock (driven by run_until, "
             "as `vpump run` does; callbacks re-arm with after()) / SimPy %s Environment (processes "
             "doing `yield env.timeout(d)`); same %d processes, same random 1..%d ms delays, "
             "%d events each; best of %d interleaved runs: scheduler %s, simpy %s"
             % (getattr(simpy, "__version__", "4"), DEFAULT_PROCS, MAX_DELAY_MS, n_ours, reps,
                _fmt_rate(ours), _fmt_rate(theirs)))


# The firmware workload: the whole Pump (dosing, reservoir estimate and watch, battery, alarms,
# hourly housekeeping and atomic commits, event log) on the sim board, driven by its own
# scheduler in virtual time.  40 mL of 2000 ug/mL at 1000 ug/day is 500 strokes of 1 uL a day:
# 60 days give 30,000 strokes before the low-reservoir alarm would sound.
FIRMWARE_DAYS = 60


def run_firmware(days):
    from firmware.pump import Pump
    from hal.sim import SimBoard

    board = SimBoard(reservoir_capacity_nl=40000000)
    board.reservoir.refill(40000000, 2000)
    pump = Pump(board, {"reservoir_capacity_nl": 40000000})
    pump.boot()
    pump.refill(40000000, 2000)
    pump.program_continuous(1000, confirm=True)
    pump.sched.run_until(days * 86400000)
    if pump.doser.strokes != board.motor.strokes or not pump.doser.strokes:
        raise RuntimeError("firmware bench: %d strokes counted, motor made %d"
                           % (pump.doser.strokes, board.motor.strokes))
    return pump.doser.strokes


@figure("firmware_vs_bare_heap")
def fig_firmware_vs_bare_heap(quick):
    n_events, reps = _sizes(quick)
    days = FIRMWARE_DAYS // 4 if quick else FIRMWARE_DAYS
    delays = workload(n_events)
    best = best_of_interleaved({
        "firmware": lambda: run_firmware(days),
        "bare": lambda: run_bare_heap(delays),
    }, reps)
    (strokes_per_s, strokes), (events_per_s, _) = best["firmware"], best["bare"]
    return result(
        round(events_per_s / strokes_per_s, 3), "x", goal=5.0, better="lower",
        note="wall time per delivered motor stroke of the whole firmware (Pump on the sim board: "
             "dosing, reservoir, battery, alarms, hourly commit, log; 1000 ug/day at 2000 ug/mL, "
             "%d days, %d strokes) / time per event of the bare heapq loop; best of %d "
             "interleaved runs: firmware %.0f strokes/s, bare heap %s"
             % (days, strokes, reps, strokes_per_s, _fmt_rate(events_per_s)))


def run_year(config, days, out_dir):
    from sim.runner import run_scenario
    return run_scenario(config, days=days, out_dir=out_dir)["strokes"]


def _best_year_seconds(config, quick):
    # (days, strokes, best wall seconds) of `vpump run` in-process with outputs written.
    import tempfile
    days = 60 if quick else 365
    reps = 2 if quick else 3
    best = None
    with tempfile.TemporaryDirectory(prefix="vpump-bench-") as out_dir:
        for _ in range(reps):
            elapsed, strokes = timed(lambda: run_year(config, days, out_dir))
            best = elapsed if best is None else min(best, elapsed)
    return days, strokes, reps, best


@figure("year_speedup")
def fig_year_speedup(quick):
    from sim import scenario

    config = scenario.load(scenario.find("adult-sci-continuous"))
    days, strokes, reps, best = _best_year_seconds(config, quick)
    return result(
        float("%.3g" % (days * 86400.0 / best)), "x real time", goal=1e7, better="higher",
        note="simulated seconds per wall second: `vpump run adult-sci-continuous --days %d` "
             "in-process (scenario loaded beforehand), every stroke simulated (%d strokes), "
             "events.jsonl and timeseries.csv written; best of %d: %.3f s wall"
             % (days, strokes, reps, best))


@figure("monitor_overhead")
def fig_monitor_overhead(quick):
    # The invariant monitor's cost: the year run of year_speedup with the monitor (the default)
    # and with --no-check, interleaved; value = speed with / speed without.
    import tempfile
    from sim import scenario
    from sim.runner import run_scenario

    config = scenario.load(scenario.find("adult-sci-continuous"))
    days = 60 if quick else 365
    reps = 2 if quick else 3
    with tempfile.TemporaryDirectory(prefix="vpump-bench-") as out_dir:
        def one(check):
            summary = run_scenario(config, days=days, out_dir=out_dir, check=check)
            if check and summary["violations"]:
                raise RuntimeError("monitor bench: violations %r" % summary["violations"][:3])
            return summary["strokes"]
        best = best_of_interleaved({"with": lambda: one(True), "without": lambda: one(False)},
                                   reps)
    (with_rate, strokes), (without_rate, _) = best["with"], best["without"]
    seconds_with = strokes / with_rate
    return result(
        round(with_rate / without_rate, 3), "x", goal=0.7, better="higher",
        note="year_speedup with the invariant monitor over without (--no-check): `vpump run "
             "adult-sci-continuous --days %d` in-process with outputs, best of %d interleaved; "
             "with the monitor %.3f s wall = %.3g x real time (goal >= 1e7), without %.3f s"
             % (days, reps, seconds_with, days * 86400.0 / seconds_with, strokes / without_rate))


def _sci_with_models():
    # The SCI scenario with every physical model on (the patient model always runs).
    from sim import scenario
    path = scenario.find("adult-sci-continuous")
    with open(path, "rb") as f:
        raw = scenario.tomllib.loads(f.read().decode("utf-8"))
    raw["models"] = dict(_BENCH_MODELS)
    return scenario.validate(raw, source=path)


# Every physical model a scenario can switch on (the faults are events, not models): the pump's
# stroke bias and noise, refill error, the true cell and a drifting crystal at body temperature.
_BENCH_MODELS = {"motor_bias_pct": "random", "motor_noise_pct": 2, "refill_error_pct": -3,
                 "battery": "li-cfx-svo", "battery_capacity_spread_pct": 5,
                 "battery_self_discharge_pct_per_year": 1, "telemetry_sessions_per_day": 4,
                 "clock_drift_ppm": 10, "clock_temperature_c": 37,
                 "clock_aging_ppm_per_year": 1}


@figure("year_speedup_with_models")
def fig_year_speedup_with_models(quick):
    days, strokes, reps, best = _best_year_seconds(_sci_with_models(), quick)
    return result(
        float("%.3g" % (days * 86400.0 / best)), "x real time", goal=5e6, better="higher",
        note="as year_speedup, with every [models] key on (%s) and the patient model stepped "
             "every 10 min; %d days, %d strokes; best of %d: %.3f s wall"
             % (", ".join("%s = %s" % kv for kv in sorted(_BENCH_MODELS.items())), days,
                strokes, reps, best))


@figure("report_seconds")
def fig_report_seconds(quick):
    import io
    import tempfile
    from sim.runner import run_scenario
    from tools.cli import main as vpump

    config = _sci_with_models()
    days = 60 if quick else 365
    with tempfile.TemporaryDirectory(prefix="vpump-bench-") as out_dir:
        run_scenario(config, days=days, out_dir=out_dir)
        out, err = io.StringIO(), io.StringIO()
        elapsed, status = timed(lambda: vpump(["report", out_dir, "--scenario",
                                               "adult-sci-continuous"], out, err))
        if status != 0:
            raise RuntimeError("vpump report failed: %s" % err.getvalue().strip())
    return result(
        round(elapsed, 2), "s", goal=None, better="lower",
        note="`vpump report DIR --scenario adult-sci-continuous` on a %d-day run with models: "
             "plots, HTML, report.json and the flow curves' 3-hour replay" % days)


# --- telemetry codec -------------------------------------------------------------------------
#
# One frame at a time, the way a link delivers them: build a frame, then decode it.  Ours is
# protocol.frame.encode + Decoder.feed (no session MAC) of a 20-byte payload, 29 bytes on the
# wire.  pymodbus is the Modbus RTU framer: FramerRTU.encode + FramerRTU.decode of a 29-byte
# RTU frame (Write Multiple Registers request: device id, function code, address, count, byte
# count, 10 registers = 20 data bytes, CRC).  Both sides get their payload bytes ready-made and
# check the CRC; neither builds message objects (pymodbus' PDU classes, our command codecs).

CODEC_PAYLOAD = bytes(range(20))


def run_codec_ours(n):
    from protocol.frame import Decoder, encode

    feed = Decoder().feed
    payload = CODEC_PAYLOAD
    decoded = 0
    for i in range(n):
        decoded += len(feed(encode(i & 0xFF, 0x21, payload)))
    return decoded


def _pymodbus_rtu():
    from pymodbus.framer import FramerRTU
    from pymodbus.pdu import DecodePDU

    framer = FramerRTU(DecodePDU(True))
    # Write Multiple Registers (0x10): address 1, 10 registers, 20 bytes of values.
    pdu = bytes((0x10, 0x00, 0x01, 0x00, 0x0A, 0x14)) + CODEC_PAYLOAD
    return framer, pdu


def run_codec_pymodbus(n):
    framer, pdu = _pymodbus_rtu()
    encode = framer.encode
    decode = framer.decode
    decoded = 0
    for i in range(n):
        used, dev_id, _, data = decode(encode(pdu, (i % 247) + 1, 0))
        if used and data:
            decoded += 1
    return decoded


@figure("codec_vs_pymodbus")
def fig_codec_vs_pymodbus(quick):
    import pymodbus
    from protocol import crc, frame

    framer, pdu = _pymodbus_rtu()
    ours_len = len(frame.encode(0, 0x21, CODEC_PAYLOAD))
    theirs_len = len(framer.encode(pdu, 1, 0))
    if ours_len != 29 or theirs_len != 29:
        raise RuntimeError("frames differ in size: ours %d bytes, pymodbus %d" % (ours_len,
                                                                                theirs_len))
    n, reps = (5000, 3) if quick else (30000, 7)
    best = best_of_interleaved({
        "ours": lambda: run_codec_ours(n),
        "pymodbus": lambda: run_codec_pymodbus(n),
    }, reps)
    (ours, n_ours), (theirs, n_theirs) = best["ours"], best["pymodbus"]
    if n_ours != n or n_theirs != n:
        raise RuntimeError("decoded %d (ours) and %d (pymodbus) of %d frames"
                           % (n_ours, n_theirs, n))
    return result(
        round(ours / theirs, 3), "x", goal=3.0, better="higher",
        note="frames/s built and decoded one at a time, 29 bytes each: protocol.frame encode + "
             "Decoder.feed (20-byte payload, no MAC, CRC by %s) / pymodbus %s FramerRTU "
             "encode + decode (Write Multiple Registers, 20 data bytes, its pure-Python CRC); "
             "%d frames per run, best of %d interleaved runs: ours %.0f frames/s, pymodbus "
             "%.0f frames/s"
             % (crc.CRC16_BACKEND, pymodbus.__version__, n, reps, ours, theirs))


CRC_BLOCK = 4096


def run_crc(fn, data, calls):
    for _ in range(calls):
        fn(data)
    return calls


@figure("crc_crcmod_vs_pure")
def fig_crc_crcmod_vs_pure(quick):
    import crcmod.predefined
    from protocol.crc import crc16_pure

    crcmod_fn = crcmod.predefined.mkPredefinedCrcFun("crc-ccitt-false")
    rng = random.Random(4096)
    data = bytes(rng.randrange(256) for _ in range(CRC_BLOCK))
    if crcmod_fn(data) != crc16_pure(data):
        raise RuntimeError("crcmod and crc16_pure disagree")
    scale = 4 if quick else 1
    reps = 3 if quick else 7
    fast_calls, slow_calls = 4000 // scale, 100 // scale
    best = best_of_interleaved({
        "crcmod": lambda: run_crc(crcmod_fn, data, fast_calls),
        "pure": lambda: run_crc(crc16_pure, data, slow_calls),
    }, reps)
    (fast, _), (slow, _) = best["crcmod"], best["pure"]
    return result(
        round(fast / slow, 1), "x", goal=None, better="higher",
        note="CRC-16/CCITT-FALSE of a 4 KiB block: crcmod's C crc-ccitt-false (host) / "
             "protocol.crc.crc16_pure (table-driven, the MicroPython path); best of %d "
             "interleaved runs: crcmod %.1f MB/s, pure %.2f MB/s"
             % (reps, fast * CRC_BLOCK / 1e6, slow * CRC_BLOCK / 1e6))


@figure("roundtrip_pty_vs_echo")
def fig_roundtrip_pty_vs_echo(quick):
    # Two processes each way, measured in turn (interleaved, best of each): `vpump serve` with a
    # programmer doing authenticated INTERROGATEs, and a plain pyserial echo on a pty.
    import links
    seconds = 0.5 if quick else 0.6
    reps = 2 if quick else 5
    served, echoed = 0.0, 0.0
    for _ in range(reps):
        served = max(served, links.serve_interrogate_roundtrips_per_s(seconds))
        echoed = max(echoed, links.pty_echo_roundtrips_per_s(seconds))
    return result(
        round(served / echoed, 3), "x", goal=0.3, better="higher",
        note="authenticated INTERROGATE round trips/s between `vpump serve --link pty` and "
             "protocol.client.Programmer (HMAC both ways, the pump's full status) / 24-byte "
             "round trips/s to a pyserial echo process on a pty; %g s each, best of %d: "
             "serve %.0f/s, echo %.0f/s" % (seconds, reps, served, echoed))


# --- security (bench/security.py; docs/threat-model.md) ------------------------------------

FUZZ_FRAMES = 1000000
_fuzz_runs = {}


def _fuzz(quick):
    # One fuzz run serves both figures (fuzz_frames_per_s, fuzz_findings).
    import security
    frames = 20000 if quick else FUZZ_FRAMES
    if frames not in _fuzz_runs:
        _fuzz_runs[frames] = security.fuzz(frames, seed=1)
    return frames, _fuzz_runs[frames]


@figure("fuzz_frames_per_s")
def fig_fuzz_frames_per_s(quick):
    frames, (rate, findings, summary) = _fuzz(quick)
    return result(rate, "frames/s", goal=None, better="higher",
                  note="vpump fuzz against `vpump serve --link socket://127.0.0.1:0`, seed 1: "
                       "%d frames in %d batches, %.0f s, every batch followed by the liveness "
                       "probe and a trusted clinician session" % (
                           summary["frames"], summary["batches"], summary["seconds"]))


@figure("fuzz_findings")
def fig_fuzz_findings(quick):
    frames, (rate, findings, summary) = _fuzz(quick)
    return result(findings, "findings", goal=0, better="lower",
                  note="crashes %d + hangs %d + unauthorised changes %d in %d frames (goal: "
                       "0 in %d; --quick sends fewer); worst unresponsive %.2f s" % (
                           summary["crashes"], summary["hangs"],
                           summary["unauthorised_changes"], summary["frames"], FUZZ_FRAMES,
                           summary["worst_unresponsive_s"]))


@figure("unauth_flood_battery_days")
def fig_unauth_flood_battery_days(quick):
    import security
    hours = 0.5 if quick else 3
    days, frames, detail = security.unauth_flood_battery_days(hours)
    return result(round(days, 4), "days", goal=1, better="lower",
                  note="days of battery life a 24 h flood of unauthenticated frames at the link's "
                       "full rate costs, scaled from %g h: %s" % (hours, detail))


@figure("clinician_lockout_max_s")
def fig_clinician_lockout_max_s(quick):
    import security
    worst, waits = security.clinician_lockout_max_s()
    return result(worst, "s", goal=300, better="lower",
                  note="pump seconds a clinician with the right key waits while an attacker "
                       "without it acts before every try and inside its round trip: " +
                       ", ".join("%s %g s" % (k, v) for k, v in sorted(waits.items())))


# --- MicroPython: the firmware under MicroPython 1.27's WebAssembly port (node) --------------
#
# tests/mp/mpsession.py runs a MicroPython session in a node process (`make bench` installs the
# port with npm ci, as `make test` does).  Memory figures come from gc.mem_alloc() in a fresh
# session.  The port collects only when control returns to the top level (it cannot scan the
# wasm stack), so each step is one program that keeps what it built in a module (_keep) and
# calls gc.collect(); the next program reads gc.mem_alloc() after that collection ran.

MP_SCENARIO = "adult-sci-continuous"
MP_DAYS = 30


def _mp_session():
    mp_dir = os.path.join(ROOT, "tests", "mp")
    if mp_dir not in sys.path:
        sys.path.insert(0, mp_dir)
    import mpsession
    problem = mpsession.skip_reason() or mpsession.missing_package()
    if problem:
        raise RuntimeError(problem)
    session = mpsession.MicroPython(timeout_s=600)
    session.write("/lib/_keep.py", "# holds objects from one program to the next\n")
    return session


def _mp_collect_and_measure(mp, code):
    mp.run("import _keep\n" + code + "\nimport gc\ngc.collect()\n")
    return int(mp.run("import gc\nprint(gc.mem_alloc())"))


def _mp_scenario_json():
    from sim import scenario
    return json.dumps(scenario.load(scenario.find(MP_SCENARIO)), sort_keys=True)


@figure("mp_pump_objects_bytes")
def fig_mp_pump_objects(quick):
    # The pump's own objects: what booting a Pump adds to a heap that holds the imported code
    # and the board (the simulated board: its storage, in RAM here, is the board's, not the
    # pump's).
    with _mp_session() as mp:
        base = _mp_collect_and_measure(mp, "")
        code = _mp_collect_and_measure(mp, "import hal.sim, firmware.pump")
        board = _mp_collect_and_measure(mp, "from hal.sim import SimBoard\n_keep.board = SimBoard()")
        booted = _mp_collect_and_measure(
            mp, "from firmware.pump import Pump\n_keep.pump = Pump(_keep.board)\n_keep.pump.boot()")
    return result(
        booted - board, "bytes", goal=6144, better="lower",
        note="gc.mem_alloc() under MicroPython 1.27 (wasm), after gc.collect(): a Pump booted on "
             "the sim board (factory defaults, empty storage) minus the heap before it (interpreter "
             "%d, + code of firmware/protocol/hal compiled from source %d, + SimBoard %d): the "
             "state of its parts (therapy, bolus, reservoir, battery), scheduler, persistence, "
             "log, alarms, stroke engine and state machine" % (base, code - base, board - code))


@figure("mp_peak_heap_30d_bytes")
def fig_mp_peak_heap_30d(quick):
    # tests/mp/board_month.py: 30 days of the SCI scenario on the board's .mpy bundle, storage
    # in a file, a telemetry session a week (the handheld on the host); gc.mem_alloc() at the end
    # of every program (one per wake of the board and one per exchange the pump answers) before
    # its collection.
    import tempfile
    mp_dir = os.path.join(ROOT, "tests", "mp")
    if mp_dir not in sys.path:
        sys.path.insert(0, mp_dir)
    import board_month
    with tempfile.TemporaryDirectory(prefix="vpump-bench-month-") as bundle:
        mp = board_month.micropython_session(bundle, heapsize=144 * 1024)
        try:
            out = board_month.run_on_micropython(mp, board_month.scenario_json())
        finally:
            mp.close()
    samples = [(alloc, what, t_ms) for t_ms, what, alloc in out["samples"]]
    peak, peak_what, peak_ms = max(samples)
    runs = sorted(alloc for alloc, what, t_ms in samples if what == "board runs")
    answer, answer_what, _ = max(s for s in samples if s[1] != "board runs")
    return result(
        peak, "bytes", goal=114688, better="lower",
        note="largest gc.mem_alloc() under MicroPython 1.27 (wasm) at the end of a step, before "
             "that step's garbage is collected (the port collects only between programs), over "
             "30 days of %s (tests/mp/board_month.py): a step is one wake of the board (the events "
             "due at one deadline, at least one wake every 5 minutes; board/vpump_main.py's loop "
             "collects after each) or the pump handling one exchange of a weekly clinician "
             "session (the handheld runs on the host, its bytes passed through files).  The board's code is the .mpy bundle "
             "of `vpump flash`, its storage a file (hal/file_storage.py), not heap.  Peak %d at "
             "day %d (%s).  Of it: interpreter %d; firmware/hal/protocol code %d (a ROMFS or "
             "frozen build keeps it in flash); the simulator's code %d (sim/replay.py, "
             "sim/plan.py, hal/sim.py, firmware/scheduler_direct.py, tests/mp/month_steps.py, "
             "compiled by mpy-cross -O3 as the bundle is); the simulator's and the pump's "
             "objects %d once built (the pump's own: mp_pump_objects_bytes); the step's garbage "
             "%d (of which ~550 the harness compiling the step's program).  Live heap (all "
             "collected): %d once built, %d after the month.  %d wakes: median %d, max %d; "
             "the largest answer %d (%s)"
             % (board_month.SCENARIO, peak, peak_ms // 86400000, peak_what, out["base"],
                out["code"] - out["base"], out["sim_code"] - out["code"],
                out["started"] - out["sim_code"], peak - out["started"], out["started"],
                out["after"], len(runs), runs[len(runs) // 2], runs[-1], answer, answer_what))


@figure("mp_heap_growth_30d_bytes")
def fig_mp_heap_growth_30d(quick):
    with _mp_session() as mp:
        mp.write("/data/scenario.json", _mp_scenario_json())
        # The plan held apart: the replay drops the actions it has performed, which must not
        # hide what the pump grows.
        mp.run("import _keep, json\nfrom sim.replay import Replay\n"
               "_keep.r = Replay(json.load(open('/data/scenario.json')), days=%d)\n"
               "_keep.r.start()\n_keep.plan = list(_keep.r.actions)" % MP_DAYS)
        day1 = _mp_collect_and_measure(mp, "_keep.r.run_to(86400000)")
        day30 = _mp_collect_and_measure(mp, "_keep.r.run_to(%d * 86400000)" % MP_DAYS)
        entries = int(mp.run("import _keep\nprint(_keep.r.pump.log.next_seq - 1)"))
    return result(
        day30 - day1, "bytes", goal=1024, better="lower",
        note="gc.mem_alloc() after gc.collect() at day %d minus at day 1 of %s replayed by "
             "sim/replay.py under MicroPython 1.27 (wasm), its whole plan held: %d bytes then "
             "%d; %d log entries"
             % (MP_DAYS, MP_SCENARIO, day1, day30, entries))


@figure("mp_vs_cpython_speed")
def fig_mp_vs_cpython_speed(quick):
    from sim.replay import Replay

    text = _mp_scenario_json()
    days = 10 if quick else MP_DAYS
    reps = 2 if quick else 3
    program = ("import json, time\nfrom sim.replay import Replay\n"
               "config = json.load(open('/data/scenario.json'))\n"
               "t0 = time.ticks_ms()\nReplay(config, days=%d).run()\n"
               "print(time.ticks_diff(time.ticks_ms(), t0))" % days)
    best_mp = best_cp = None
    with _mp_session() as mp:
        mp.write("/data/scenario.json", text)
        mp.run(program)         # warm-up: imports compiled, heap grown
        Replay(json.loads(text), days=days).run()
        for _ in range(reps):
            mp_s = int(mp.run(program)) / 1000.0
            cp_s, _ = timed(lambda: Replay(json.loads(text), days=days).run())
            best_mp = mp_s if best_mp is None else min(best_mp, mp_s)
            best_cp = cp_s if best_cp is None else min(best_cp, cp_s)
    return result(
        round(best_mp / best_cp, 1), "x", goal=None, better="lower",
        note="wall time of the same %d-day %s replay (sim/replay.py: SimBoard + Pump, every "
             "stroke), MicroPython 1.27 wasm under node / CPython %s; best of %d interleaved: "
             "MicroPython %.3f s, CPython %.3f s"
             % (days, MP_SCENARIO, platform.python_version(), reps, best_mp, best_cp))


@figure("mp_bundle_bytes")
def fig_mp_bundle_bytes(quick):
    # The .mpy files `vpump flash` puts on a board (main.py and board.json not counted).
    import tempfile
    from tools import flash
    with tempfile.TemporaryDirectory(prefix="vpump-bench-bundle-") as out_dir:
        manifest = flash.build(out_dir, "rp2")
    mpys = [e for e in manifest["files"] if e["kind"] == "mpy"]
    largest = sorted(mpys, key=lambda e: -e["bytes"])[:3]
    return result(
        manifest["mpy_bytes"], "bytes", goal=65536, better="lower",
        note="total of the %d .mpy files of the rp2 bundle (`vpump flash`: %s, -O%d); largest "
             "%s" % (len(mpys), manifest["mpy_cross"].split(";")[-1].strip(), manifest["opt"],
                     ", ".join("%s %d" % (e["path"], e["bytes"]) for e in largest)))


# --- campaigns (bench/campaigns.py: the real sim/campaign executors) -------------------------

def _campaign_workload(quick):
    # (seeds, days): runs of the SCI scenario with every model on, a few random stalls.
    return (4, 60) if quick else (8, 365)


@figure("campaign_patient_years_per_s")
def fig_campaign_patient_years_per_s(quick):
    import campaigns
    seeds, days = _campaign_workload(quick)
    reps = 1 if quick else 2
    with campaigns.temp_folder() as folder:
        variants = campaigns.variants_of(campaigns.models_spec(folder, _BENCH_MODELS, seeds, days))
        best = min(campaigns.run_pool(variants, 2) for _ in range(reps))
    years = seeds * days / 365.0
    return result(
        round(years / best, 3), "patient-years/s", better="higher",
        note="`vpump campaign`'s local pool, 2 worker processes (forkserver, start included), %d runs "
             "of %d days of adult-sci-continuous with every [models] key on (as "
             "year_speedup_with_models), the patient model, random motor stalls (2/year) and the "
             "invariant monitor where the runner has one; %.2f patient-years in %.2f s, best of "
             "%d; the machine's 2 cores are shared, so this is noisy" % (
                 seeds, days, years, best, reps))


@figure("campaign_scaling_2_vs_1")
def fig_campaign_scaling(quick):
    import campaigns
    seeds, days = _campaign_workload(quick)
    reps = 1 if quick else 2
    one, two = [], []
    with campaigns.temp_folder() as folder:
        variants = campaigns.variants_of(campaigns.models_spec(folder, _BENCH_MODELS, seeds, days))
        for _ in range(reps):      # interleaved: machine noise hits both alike
            one.append(campaigns.run_pool(variants, 1))
            two.append(campaigns.run_pool(variants, 2))
    return result(
        round(min(one) / min(two), 3), "x", goal=1.8, better="higher",
        note="wall time of the same campaign (%d runs of %d days, every model on) on a 1-process "
             "pool over a 2-process pool, best of %d interleaved: %.2f s vs %.2f s; %d CPUs "
             "here, shared with other work while measured" % (
                 seeds, days, reps, min(one), min(two), os.cpu_count() or 0))


@figure("campaign_dask_vs_pool")
def fig_campaign_dask_vs_pool(quick):
    import campaigns
    seeds, days = _campaign_workload(quick)
    reps = 1 if quick else 2
    pool, dask = [], []
    with campaigns.temp_folder() as folder:
        variants = campaigns.variants_of(campaigns.models_spec(folder, _BENCH_MODELS, seeds, days))
        cluster, client = campaigns.local_cluster(2)
        try:
            campaigns.run_dask(variants[:2], client)        # workers import the project once
            for _ in range(reps):
                pool.append(campaigns.run_pool(variants, 2))
                dask.append(campaigns.run_dask(variants, client))
        finally:
            client.close()
            cluster.close()
    return result(
        round(min(pool) / min(dask), 3), "x", goal=0.9, better="higher",
        note="throughput of a running 2-worker Dask LocalCluster (1 thread each; client.submit, "
             "as_completed) over the 2-process pool (started per campaign, as `vpump campaign` "
             "does), same %d runs of %d days, best of %d interleaved: pool %.2f s, Dask %.2f s"
             % (seeds, days, reps, min(pool), min(dask)))


@figure("fleet_year_violations")
def fig_fleet_year_violations(quick):
    import inspect
    import campaigns
    from sim.runner import Run
    spec = os.path.join(ROOT, "campaigns", "fleet-year.toml")
    if "check" not in inspect.signature(Run.__init__).parameters:
        return result(None, "violations", goal=0, better="lower",
                      note="the invariant monitor is not in sim.runner yet: nothing to count")
    with campaigns.temp_folder() as folder:
        if quick:
            with open(spec, encoding="utf-8") as f:
                text = f.read()
            text = text.replace("seeds = 91", "seeds = 1").replace("days = 365", "days = 60")
            spec = os.path.join(folder, "fleet-year-quick.toml")
            with open(spec, "w", encoding="utf-8") as f:
                f.write(text)
            out_dir = os.path.join(folder, "out")
        else:
            # Finished runs are kept there: a rerun on the same code reuses them.
            out_dir = os.path.join(ROOT, "out", "bench", "fleet-year")
        agg, elapsed = campaigns.fleet_year(spec, out_dir, 2)
    by_req = ", ".join("%s x%d" % (req, e["count"]) for req, e in agg["violations"].items())
    return result(
        agg["violations_total"], "violations", goal=0, better="lower",
        note="%s%s: %d runs, %.1f patient-years, %d crashed; %s; %s" % (
            "campaigns/fleet-year.toml" if not quick else "fleet-year subset (1 seed, 60 days)",
            " on 2 local workers", agg["runs"], agg["patient_years"], agg["crashes"]["count"],
            "by requirement: " + by_req if by_req else "none found",
            "campaign wall %.0f s" % agg["wall_seconds"] if agg.get("wall_seconds")
            else "every run reused from %s (same code, same spec)" % os.path.relpath(out_dir, ROOT)))


# --- results file and table ------------------------------------------------------------------


def load_results(path):
    try:
        with open(path) as f:
            data = json.load(f)
    except FileNotFoundError:
        return {}
    except ValueError as exc:
        sys.stderr.write("bench: ignoring unreadable %s (%s)\n" % (path, exc))
        return {}
    return data if isinstance(data, dict) else {}


def save_results(path, data):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2, sort_keys=False)
        f.write("\n")
    os.replace(tmp, path)


def verdict(r):
    value, goal = r.get("value"), r.get("goal")
    if value is None:
        return "todo" if r.get("note") == "not implemented yet" else "error"
    if goal is None:
        return "info"
    ok = value >= goal if r.get("better") == "higher" else value <= goal
    return "pass" if ok else "FAIL"


def _num(x):
    if x is None:
        return "-"
    if isinstance(x, float):
        return "%.3g" % x if abs(x) < 1000 else "%.0f" % x
    return str(x)


def format_table(results):
    rows = [("figure", "value", "unit", "goal", "result")]
    for name, r in results.items():
        goal = r.get("goal")
        if goal is not None:
            goal = ("\u2265 " if r.get("better") == "higher" else "\u2264 ") + _num(goal)
        else:
            goal = "-"
        rows.append((name, _num(r.get("value")), r.get("unit", ""), goal, verdict(r)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for i, row in enumerate(rows):
        cells = [row[0].ljust(widths[0]), row[1].rjust(widths[1]), row[2].ljust(widths[2]),
                 row[3].rjust(widths[3]), row[4]]
        lines.append("  ".join(cells).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="bench/run.py",
        description="Run the vpump benchmarks, write bench/results.json and print a table.")
    parser.add_argument("--only", metavar="NAME", action="append", default=[],
                        help="run only this figure (repeatable); merges into the existing results")
    parser.add_argument("--quick", action="store_true",
                        help="smaller workloads and fewer repetitions (a smoke run, noisier)")
    parser.add_argument("--list", action="store_true", help="list the figures and exit")
    parser.add_argument("--out", default=RESULTS, help="results file (default: %(default)s)")
    args = parser.parse_args(argv)

    if args.list:
        for name in FIGURES:
            print(name)
        return 0
    unknown = [n for n in args.only if n not in FIGURES]
    if unknown:
        parser.error("--only %s: unknown figure; known: %s" % (", ".join(unknown), ", ".join(FIGURES)))
    names = args.only or list(FIGURES)

    results = load_results(args.out) if args.only else {}
    status = 0
    for name in names:
        sys.stderr.write("bench: %s ...\n" % name)
        t0 = time.perf_counter()
        try:
            r = FIGURES[name](args.quick)
        except Exception as exc:  # one broken figure must not lose the others' results
            r = result(None, "", note="error: %s: %s" % (type(exc).__name__, exc))
            status = 1
        sys.stderr.write("bench: %s done in %.1f s\n" % (name, time.perf_counter() - t0))
        results[name] = r
    save_results(args.out, results)
    print(format_table(results))
    return status


if __name__ == "__main__":
    sys.exit(main())
