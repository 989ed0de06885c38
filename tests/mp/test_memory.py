"""The firmware's RAM under MicroPython 1.27 stays small and does not grow.

bench/run.py reports the full figures (mp_pump_objects_bytes, mp_heap_growth_30d_bytes; the month
on a board, mp_peak_heap_30d_bytes, is tests/mp/test_board_memory.py's); these
tests hold the parts the firmware owns to bounds with room to spare, so a regression (a table
copied per row, a list that grows with every bolus) fails `make test`.

The wasm port collects only when control returns to the top level, so every step is its own
program that keeps its objects in the module _keep and calls gc.collect(); the next program
reads gc.mem_alloc() after that collection.
"""

import json

from sim import scenario

# The pump's own objects after boot (state, scheduler, persistence buffers, state machine):
# about 4.5 KiB today; the state machine alone used to hold 14 KiB of per-row copies.
PUMP_OBJECTS_MAX_BYTES = 6144     # the goal of bench/run.py mp_pump_objects_bytes
# Growth from day 1 to day 30 of the adult scenario: a few hundred bytes today (timestamps
# becoming long ints past MicroPython's small-int range), well under the 1 KiB goal.
GROWTH_30D_MAX_BYTES = 1024


def measure(mp, code):
    mp.run("import _keep\n" + code + "\nimport gc\ngc.collect()\n")
    return int(mp.run("import gc\nprint(gc.mem_alloc())"))


def test_a_booted_pump_holds_little_ram(mp):
    mp.write("/lib/_keep.py", "")
    before = measure(mp, "import firmware.pump, hal.sim\n_keep.board = hal.sim.SimBoard()")
    after = measure(mp, "from firmware.pump import Pump\n_keep.pump = Pump(_keep.board)\n"
                        "_keep.pump.boot()")
    assert 0 < after - before <= PUMP_OBJECTS_MAX_BYTES, after - before
    machine = measure(mp, "_keep.pump.machine = None")
    assert after - machine < 1024, "the state machine holds %d bytes" % (after - machine)
    measure(mp, "_keep.pump = None\n_keep.board = None")


def test_thirty_days_of_therapy_do_not_grow_the_heap(mp):
    mp.write("/lib/_keep.py", "")
    config = scenario.load(scenario.find("adult-sci-continuous"))
    mp.write("/data/adult.json", json.dumps(config))
    mp.run("import _keep, json\nfrom sim.replay import Replay\n"
           "_keep.r = Replay(json.load(open('/data/adult.json')), days=30)\n_keep.r.start()")
    day1 = measure(mp, "_keep.r.run_to(86400000)")
    day30 = measure(mp, "_keep.r.run_to(30 * 86400000)")
    pump = mp.run("import _keep\np = _keep.r.pump\n"
                  "print(p.log.next_seq, len(p.bolus.patient_bolus_times), len(p.therapy.dose_history), "
                  "p.sched.pending())").split()
    assert int(pump[0]) > 200          # the log grew on storage, not in RAM
    assert int(pump[1]) <= 4 and int(pump[2]) <= 16 and int(pump[3]) < 10
    assert day30 - day1 <= GROWTH_30D_MAX_BYTES, (day1, day30)
    measure(mp, "_keep.r = None")
