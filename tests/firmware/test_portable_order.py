"""What the firmware logs and commits must not depend on dict order.

CPython keeps insertion order, MicroPython does not: anything the firmware iterates to build its
log or a snapshot goes in a defined order (alarm code, key name), so the event trace is the same
on both interpreters (tests/mp/test_golden.py).
"""

from firmware import alarms, eventlog, snapshot
from firmware.pump import Pump
from hal.sim import SimBoard
from protocol import reasons

HOUR = 3600000


def make_pump():
    board = SimBoard(reservoir_capacity_nl=40000000)
    board.reservoir.refill(20000000, 2000)
    pump = Pump(board)
    log = []
    pump.log.listener = lambda seq, t, code, args: log.append((code, args))
    pump.boot()
    assert pump.refill(20000000, 2000) == reasons.OK
    return pump, log


def test_silence_logs_alarms_in_code_order_whatever_order_they_were_raised():
    pump, log = make_pump()
    pump.alarms.raise_alarm(alarms.ELECTIVE_REPLACEMENT)
    pump.alarms.raise_alarm(alarms.LOW_RESERVOIR)
    pump.alarms.raise_alarm(alarms.RESERVOIR_EMPTY)      # critical: never silenced
    del log[:]
    assert pump.silence_alarms(2 * HOUR) == reasons.OK
    assert log == [(eventlog.ALARM_SILENCED, (alarms.LOW_RESERVOIR, 120)),
                   (eventlog.ALARM_SILENCED, (alarms.ELECTIVE_REPLACEMENT, 120))]


def test_snapshot_lists_alarms_in_code_order_and_restores_them():
    pump, _ = make_pump()
    for alarm in (alarms.END_OF_SERVICE, alarms.ELECTIVE_REPLACEMENT, alarms.LOW_RESERVOIR):
        pump.alarms.raise_alarm(alarm)
    saved = snapshot.take(pump)
    assert [entry[0] for entry in saved["alarms"]] == [
        alarms.LOW_RESERVOIR, alarms.ELECTIVE_REPLACEMENT, alarms.END_OF_SERVICE]
    pump.dirty = True
    pump.commit()
    again = Pump(pump.board)
    again.boot()
    assert sorted(again.alarms.active) == sorted(pump.alarms.active)
    assert snapshot.take(again)["alarms"] == snapshot.take(pump)["alarms"]


def test_set_limits_names_the_first_unknown_key_in_sorted_order():
    pump, _ = make_pump()
    assert pump.set_limits({"zz_limit": 1, "aa_limit": 2}) == reasons.OUT_OF_RANGE
    assert pump.refusal[1] == "aa_limit"
