"""The simulated board (hal/sim.py), the firmware and the replay driver run unchanged on
MicroPython 1.27 and behave exactly as on CPython."""

import json
import os

import mpsession  # tests/mp: the MicroPython harness (and CPython for comparison)

HERE = os.path.dirname(os.path.abspath(__file__))
PROGRAMS = os.path.join(HERE, "programs")


def run_cpython(path):
    return mpsession.run_cpython(path)[0]


def test_it_is_really_micropython_1_27(mp):
    out = mp.run("import sys\nprint(sys.implementation.name, sys.implementation.version[:2])")
    assert out.split() == ["micropython", "(1,", "27)"]


def test_sim_parts_and_persistence_behave_the_same(mp):
    path = os.path.join(PROGRAMS, "sim_parts.py")
    upy = mp.run_file(path)
    assert upy.rstrip().endswith("done"), upy
    assert upy == run_cpython(path)


def test_firmware_integers_are_arbitrary_precision_on_micropython(mp):
    # The stroke engine's quanta exceed 64 bits (firmware/dosing.py); a port without big ints
    # would overflow silently.  The wasm port has them, as rp2 and esp32 do.
    out = mp.run("from firmware.dosing import Doser, MS_PER_DAY, UG_RATE_Q\n"
                 "q = 2000 * UG_RATE_Q * MS_PER_DAY * 40000000 * MS_PER_DAY\n"
                 "print(q, q // (MS_PER_DAY * 2000), 2 ** 100 - 1)")
    q = 2000 * 1000000 * 86400000 * 40000000 * 86400000
    assert out.split() == [str(q), str(q // (86400000 * 2000)), str(2 ** 100 - 1)]


def test_no_floats_in_the_firmware_at_run_time(mp):
    # Every attribute of the pump and its parts after a programmed week is an int (or a
    # container of ints, strings, bools, None): the firmware never computes in float.
    from sim import scenario
    text = json.dumps(scenario.load(scenario.find("child-cp-flex")))
    mp.write("/data/child.json", text)
    out = mp.run("""
import json
from sim.replay import Replay
r = Replay(json.load(open('/data/child.json')), days=7)
r.run()
bad = []
def walk(v, where, depth):
    if isinstance(v, float):
        bad.append(where)
    elif depth < 4 and isinstance(v, (list, tuple)):
        for i in range(len(v)):
            walk(v[i], where + '[%d]' % i, depth + 1)
    elif depth < 4 and isinstance(v, dict):
        for k in v:
            walk(v[k], where + '.' + str(k), depth + 1)
p = r.pump
for name, obj in (('pump', p), ('doser', p.doser), ('alarms', p.alarms), ('sched', p.sched),
                  ('persist', p.persist), ('log', p.log), ('therapy', p.therapy),
                  ('bolus', p.bolus), ('reservoir', p.reservoir), ('battery', p.battery)):
    for k in dir(obj):
        if not k.startswith('__'):
            walk(getattr(obj, k), name + '.' + k, 0)
from firmware import snapshot
walk(snapshot.take(p), 'snapshot', 0)
walk(p.status(), 'status', 0)
print('floats', bad)
print('strokes', p.doser.strokes)
""")
    assert "floats []" in out, out
    assert int(out.split("strokes")[1]) > 500


# Replays a scenario for some days and prints the committed snapshot and the status, canonically
# (dict order differs between the interpreters; the content must not).
STATE_PROGRAM = """
import json
from sim.replay import Replay
def canon(v):
    if isinstance(v, dict):
        return "{" + ", ".join("%%r: %%s" %% (k, canon(v[k])) for k in sorted(v)) + "}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(canon(x) for x in v) + "]"
    return repr(v)
with open(%r) as f:
    r = Replay(json.load(f), days=%d)
r.run()
p = r.pump
print("snapshot", canon(p.persist.load()))
print("status", canon(p.status()))
print("board", r.board.motor.strokes, r.board.reservoir.volume_nl, r.board.battery.read_mv(),
      r.board.storage.bytes_written, r.board.annunciator.counts[1], r.board.annunciator.counts[2])
print("log", p.persist.log_scan(), canon(p.persist.log_read(0, 3)))
"""


def test_committed_state_and_storage_use_are_the_same_on_both(mp, tmp_path):
    # late-refill-empty to day 75: low-reservoir and empty alarms, silences, a bridge refill.
    from sim import scenario
    text = json.dumps(scenario.load(scenario.find("late-refill-empty")))
    mp.write("/data/late.json", text)
    upy = mp.run(STATE_PROGRAM % ("/data/late.json", 75))
    (tmp_path / "late.json").write_text(text)
    (tmp_path / "state.py").write_text(STATE_PROGRAM % (str(tmp_path / "late.json"), 75))
    assert upy == run_cpython(str(tmp_path / "state.py"))
    assert "log (1, 20)" in upy           # the whole log (golden: 20 entries) is in storage
    assert "'therapy': 'infusing'" in upy and "'bolus': None" in upy
