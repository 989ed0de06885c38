# Alarms: raised, sounded through the annunciator, repeated on a schedule until cleared.
#
# Critical alarms (therapy halted) sound the 3-second two-tone; non-critical ones the 1-second
# single tone (Medtronic product advisories).  Non-critical alarms can be silenced for a time;
# critical ones cannot.  Repeat intervals are UNSOURCED defaults (docs/clinical.md), set per
# pump model.  Repeats chain on the previous deadline, so they never drift.

from hal.base import TONE_TWO, TONE_SINGLE
from firmware import eventlog

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

LOW_RESERVOIR = const(0)
ELECTIVE_REPLACEMENT = const(1)
RESERVOIR_EMPTY = const(2)
MOTOR_STALL = const(3)
END_OF_SERVICE = const(4)
MEMORY_FAULT = const(5)
LOW_BATTERY_RESET = const(6)

# Names by code, from keyword arguments: interned strings (qstrs) on MicroPython, shared with
# every module that spells them (the state table's states and triggers).
_CODES = dict(low_reservoir=LOW_RESERVOIR, elective_replacement=ELECTIVE_REPLACEMENT,
              reservoir_empty=RESERVOIR_EMPTY, motor_stall=MOTOR_STALL,
              end_of_service=END_OF_SERVICE, memory_fault=MEMORY_FAULT,
              low_battery_reset=LOW_BATTERY_RESET)
NAMES = tuple(sorted(_CODES, key=_CODES.get))
CRITICAL = (False, False, True, True, True, True, True)

_TWO_TONE_MS = const(3000)
_SINGLE_TONE_MS = const(1000)


class Alarms:
    def __init__(self, scheduler, annunciator, log, critical_repeat_ms, noncritical_repeat_ms):
        self._sched = scheduler
        self._annunciator = annunciator
        self._log = log
        self.critical_repeat_ms = critical_repeat_ms
        self.noncritical_repeat_ms = noncritical_repeat_ms
        # alarm -> [raised_ms, silenced_until_ms, repeat handle]
        self.active = {}

    def raise_alarm(self, alarm):
        if alarm in self.active:
            return
        now = self._sched.now_ms()
        self.active[alarm] = [now, 0, None]
        self._log.log(eventlog.ALARM_RAISED, alarm)
        self._sound(alarm)
        self._arm(alarm, now)

    def restore(self, alarm, raised_ms, silenced_until_ms):
        # After a reset: active again without a second log entry, sounding at once.
        self.active[alarm] = [raised_ms, silenced_until_ms, None]
        now = self._sched.now_ms()
        if silenced_until_ms <= now:
            self._sound(alarm)
        self._arm(alarm, now)

    def clear(self, alarm):
        entry = self.active.pop(alarm, None)
        if entry is None:
            return False
        self._sched.cancel(entry[2])
        self._log.log(eventlog.ALARM_CLEARED, alarm)
        return True

    def silence(self, duration_ms):
        # Silences every active non-critical alarm, in alarm-code order (dict order differs
        # between CPython and MicroPython; the log must not).  Returns how many were silenced.
        now = self._sched.now_ms()
        n = 0
        active = self.active
        for alarm in range(len(NAMES)):
            entry = active.get(alarm)
            if entry is not None and not CRITICAL[alarm]:
                entry[1] = now + duration_ms
                self._log.log(eventlog.ALARM_SILENCED, alarm, duration_ms // 60000)
                n += 1
        return n

    def entries(self):
        # [[alarm, raised_ms, silenced_until_ms], ...] in alarm-code order, for a snapshot.
        out = []
        active = self.active
        for alarm in range(len(NAMES)):
            entry = active.get(alarm)
            if entry is not None:
                out.append([alarm, entry[0], entry[1]])
        return out

    def test_tones(self):
        # The programmer's alarm test: each tone once.
        self._annunciator.tone(TONE_TWO, _TWO_TONE_MS)
        self._annunciator.tone(TONE_SINGLE, _SINGLE_TONE_MS)

    def _sound(self, alarm):
        if CRITICAL[alarm]:
            self._annunciator.tone(TONE_TWO, _TWO_TONE_MS)
        else:
            self._annunciator.tone(TONE_SINGLE, _SINGLE_TONE_MS)

    def _arm(self, alarm, from_ms):
        interval = self.critical_repeat_ms if CRITICAL[alarm] else self.noncritical_repeat_ms
        self.active[alarm][2] = self._sched.at(from_ms + interval, self._repeat, alarm)

    def _repeat(self, alarm):
        entry = self.active.get(alarm)
        if entry is None:
            return
        due = self._sched.due_ms
        if entry[1] <= due:
            self._sound(alarm)
        self._arm(alarm, due)
