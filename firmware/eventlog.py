# The pump's event log: every state change, program change, bolus, alarm, refill and
# authentication attempt, with pump time and a sequence number, journalled through
# firmware/persist.py so it survives resets.  Entries are (seq, t_ms, code, args) with up to
# four integer args; firmware/event_names.py names them for people (the host decodes with it).

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

from firmware.errors import PersistError

BOOT = const(1)
STATE = const(2)
PROGRAM = const(3)
BOLUS_START = const(4)
BOLUS_END = const(5)
REFILL = const(7)
ALARM_RAISED = const(8)
ALARM_CLEARED = const(9)
ALARM_SILENCED = const(10)
REFUSED = const(11)
CLOCK_SET = const(12)
LIMITS_SET = const(13)
PATIENT_BOLUS_SET = const(14)
ALARM_VOLUME_SET = const(15)
FLEX_STEP = const(16)
AUTH = const(17)
COMMIT_FAILED = const(18)
STORAGE_CORRUPT = const(19)
OUTAGE = const(20)
SESSION_END = const(21)

# The names, for people (firmware/event_names.py: EVENTS, and the small enumerations carried in
# args): host-facing, so a board's .mpy bundle leaves them out (tools/flash.py skips imports
# guarded by ImportError); the board logs codes only.
try:
    from firmware.event_names import (  # noqa: F401
        EVENTS, MODES, BOLUS_KINDS, ROLES, AUTH_RESULTS, END_CAUSES)
except ImportError:
    pass

# What a refused request asked for (REFUSED's "request" arg), by code.  Built from keyword
# arguments: interned strings (qstrs) on MicroPython, shared with every module that spells them
# (the state table's triggers).
_REQUEST_CODES = dict(program=0, start=1, stop=2, clinician_bolus=3, patient_bolus=4, refill=5,
                      clear_alarm=6, set_patient_bolus=7, set_low_reservoir_alarm=8,
                      set_limits=9, silence_alarms=10, set_clock=11)
REQUESTS = tuple(sorted(_REQUEST_CODES, key=_REQUEST_CODES.get))


class EventLog:
    # journal: an object with log_append(seq, t_ms, code, args) (firmware/persist.py), or None.
    # listener: None, or fn(seq, t_ms, code, args) called for every entry (the simulator's
    # events.jsonl writer, a test).
    def __init__(self, clock_fn, journal=None, next_seq=1):
        self._clock_fn = clock_fn
        self.journal = journal
        self.listener = None
        self.next_seq = next_seq
        self.failed_writes = 0

    def log(self, code, a=None, b=None, c=None, d=None):
        if a is None:
            args = ()
        elif b is None:
            args = (a,)
        elif c is None:
            args = (a, b)
        elif d is None:
            args = (a, b, c)
        else:
            args = (a, b, c, d)
        seq = self.next_seq
        t_ms = self._clock_fn()
        if self.journal is not None:
            try:
                self.journal.log_append(seq, t_ms, code, args)
            except PersistError:
                # Non-volatile memory failing must not stop the pump: the entry is still
                # reported (listener) and the failure counted; the commit that fails raises
                # the memory-fault alarm (Pump.commit).  Stored nowhere, it takes no seq (0):
                # a seq is handed out once, and only with its record.
                self.failed_writes += 1
                seq = 0
        if seq:
            self.next_seq = seq + 1
        if self.listener is not None:
            self.listener(seq, t_ms, code, args)
        return seq
