"""Storage and supply faults replay the same on MicroPython 1.27 as on CPython: bit flips (and
the firmware's damaged-storage boot: older slot, factory + memory fault), a brown-out, power cuts
mid-commit and mid-log-record.  No shipped scenario has all of them, so the golden traces alone
would not prove the new paths of sim/replay.py, firmware/persist.py and firmware/snapshot.py
portable."""

import importlib.util
import json
import os
import sys

from sim.replay import Replay, trace_line

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "sim"))
from simtest import MS_PER_DAY, MS_PER_HOUR  # noqa: E402  (tests/sim, on the path just above)
from test_faults import config  # noqa: E402
sys.path.pop(0)

# The golden traces' MicroPython program (tests/golden/update.py): replay a JSON config, print
# its trace.
_spec = importlib.util.spec_from_file_location(
    "vpump_golden_update", os.path.join(ROOT, "tests", "golden", "update.py"))
golden = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(golden)
MP_PROGRAM = golden.MP_PROGRAM


def at(day, hour, minute=0):
    return day * MS_PER_DAY + hour * MS_PER_HOUR + minute * 60000


def every_storage_fault():
    def f(number, kind, t_ms, duration_ms=None, **options):
        entry = {"t_ms": t_ms, "duration_ms": duration_ms, "kind": kind, "number": number}
        entry.update(options)
        return entry
    faults = [f(1, "bit_flip", at(1, 2, 5), bits=1, region="snapshot"),
              f(2, "brown_out", at(1, 5), duration_ms=3 * MS_PER_HOUR),
              f(3, "power_loss", at(2, 1), during="commit"),
              f(4, "power_loss", at(2, 4), during="log"),
              f(5, "bit_flip", at(2, 6), bits=3, region="log"),
              f(6, "bit_flip", at(3, 1, 5), bits=64, region="snapshots")]
    timeline = [{"t_ms": at(1, 2), "action": "program", "basal_ug_per_day": 440},
                {"t_ms": at(1, 2, 10), "action": "reset"},
                {"t_ms": at(2, 4, 30), "action": "program", "basal_ug_per_day": 420},
                {"t_ms": at(2, 7), "action": "reset"},
                {"t_ms": at(3, 1, 10), "action": "reset"}]
    return config(faults, days=4, timeline=timeline)


def test_storage_and_supply_faults_replay_the_same_on_micropython(mp):
    text = json.dumps(every_storage_fault(), sort_keys=True)
    lines = []
    Replay(json.loads(text), on_log=lambda *e: lines.append(trace_line(*e) + "\n")).run()
    cpy = "".join(lines)
    for code in (" 19 ", " 20 "):       # storage_corrupt, outage: the new paths ran
        assert code in cpy
    mp.write("/data/storage_faults.json", text)
    upy = mp.run(MP_PROGRAM % "/data/storage_faults.json", timeout_s=120)
    assert upy == cpy
