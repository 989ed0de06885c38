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
# protocol/commands.py holds its command table as one constant string and reads a command's
# layout from it when asked; it used to build ~30 layouts and 21 commands at import (24,688
# bytes loaded from source here, 24,656 from the board's .mpy; about 13,100 and 10,500 now; the
# bound leaves room for a qstr pool that the next module would otherwise have started).
COMMANDS_IMPORT_MAX_BYTES = 16384
# The short-lived garbage of looking INTERROGATE up and encoding its answer (about 1.5 KiB).
INTERROGATE_GARBAGE_MAX_BYTES = 2048


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
           "_keep.r = Replay(json.load(open('/data/adult.json')), days=30)\n_keep.r.start()\n"
           # The replay drops the actions it has performed: the plan is held here so that
           # what it frees cannot hide what the pump grows.
           "_keep.plan = list(_keep.r.actions)")
    day1 = measure(mp, "_keep.r.run_to(86400000)")
    day30 = measure(mp, "_keep.r.run_to(30 * 86400000)")
    pump = mp.run("import _keep\np = _keep.r.pump\n"
                  "print(p.log.next_seq, len(p.bolus.patient_bolus_times), len(p.therapy.dose_history), "
                  "p.sched.pending())").split()
    assert int(pump[0]) > 200          # the log grew on storage, not in RAM
    assert int(pump[1]) <= 4 and int(pump[2]) <= 16 and int(pump[3]) < 10
    assert day30 - day1 <= GROWTH_30D_MAX_BYTES, (day1, day30)
    measure(mp, "_keep.r = None\n_keep.plan = None")


def test_the_command_table_costs_its_text_not_objects(micropython_with):
    mp = micropython_with(["protocol/" + name for name in (
        "__init__.py", "reasons.py", "errors.py", "fields.py", "frame.py", "crc.py",
        "commands.py")])
    mp.write("/lib/_keep.py", "")
    before = measure(mp, "import protocol.reasons, protocol.errors, protocol.fields, "
                         "protocol.frame")
    after = measure(mp, "import protocol.commands")
    assert 0 < after - before <= COMMANDS_IMPORT_MAX_BYTES, after - before
    garbage = int(mp.run(
        "import gc\nfrom protocol import commands as C\n"
        "f = {'therapy': 'infusing', 'reservoir': 'low_reservoir',\n"
        "     'battery': 'battery_ok',\n"
        "     'therapy_on': True, 'mode': 1, 'alarm_bits': 3, 'battery_remaining_nah': 1 << 42,\n"
        "     'wall_ms': 1700000000000, 'hours_to_alarm': -1}\n"
        "for k in ('basal_ug_per_day', 'reservoir_nl', 'concentration_ug_per_ml',\n"
        "          'low_reservoir_alarm_nl', 'hours_to_empty', 'battery_mv',\n"
        "          'days_to_replacement', 'lockout_until_ms', 'delivered_ug', 'boot_count'):\n"
        "    f[k] = 7\n"
        "C.encode_ack(C.INTERROGATE, f)\n"
        "gc.collect()\ngc.disable()\nx = gc.mem_alloc()\n"
        "C.COMMANDS.get(C.INTERROGATE).patient\nC.encode_ack(C.INTERROGATE, f)\n"
        "print(gc.mem_alloc() - x)\ngc.enable()"))
    assert 0 < garbage <= INTERROGATE_GARBAGE_MAX_BYTES, garbage
