# The pump's event log: every state change, program change, bolus, alarm, refill and
# authentication attempt, with pump time and a sequence number, journalled through
# firmware/persist.py so it survives resets.  Entries are (seq, t_ms, code, args) with up to
# four integer args; EVENTS below names them for people (the host decodes with it).

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

# code -> (name, names of the args).  Arg values that index a list are decoded by the host
# (states, triggers, alarms: see firmware/table.py and firmware/alarms.py).
EVENTS = {
    BOOT: ("boot", ("boot_count", "restored", "lost_nl")),
    STATE: ("state", ("region", "from", "to", "trigger")),
    PROGRAM: ("program", ("mode", "daily_ug", "confirmed")),
    BOLUS_START: ("bolus_start", ("kind", "dose_ug", "volume_nl", "duration_s")),
    BOLUS_END: ("bolus_end", ("kind", "delivered_nl", "completed")),
    REFILL: ("refill", ("volume_ul", "concentration_ug_per_ml", "bridge", "estimate_before_ul")),
    ALARM_RAISED: ("alarm_raised", ("alarm",)),
    ALARM_CLEARED: ("alarm_cleared", ("alarm",)),
    ALARM_SILENCED: ("alarm_silenced", ("alarm", "minutes")),
    REFUSED: ("refused", ("reason", "request", "value", "limit")),
    CLOCK_SET: ("clock_set", ("delta_s",)),
    LIMITS_SET: ("limits_set", ("daily_dose_soft_ug", "daily_dose_hard_ug", "bolus_soft_ug",
                                "bolus_hard_ug")),
    PATIENT_BOLUS_SET: ("patient_bolus_set", ("dose_ug", "duration_s", "lockout_min",
                                              "max_per_24h")),
    ALARM_VOLUME_SET: ("alarm_volume_set", ("low_reservoir_alarm_ul",)),
    FLEX_STEP: ("flex_step", ("ug_per_day",)),
    # count: for a failed proof or a patient's session, how many since the last clinician
    # login (firmware/telemetry.py logs the 1st, 2nd, 4th, 8th ...: floods stay a few entries).
    AUTH: ("auth", ("role", "result", "count")),
    COMMIT_FAILED: ("commit_failed", ()),
    # At boot, decayed non-volatile memory (firmware/persist.py): snapshot slots and log records
    # found damaged, the seq of the snapshot restored (0: none) and the highest seq a damaged
    # slot's header claims (0: none, -1: unreadable); damaged > restored means the newest
    # commit was lost and the one before it restored (docs/persistence.md).
    STORAGE_CORRUPT: ("storage_corrupt", ("slots", "log_records", "restored_seq",
                                          "damaged_seq")),
    # At boot, the clock says the pump has not run for longer than a commit interval: it was
    # off (a brown-out) for at least off_s, and at least missed_nl of the committed flow was
    # not given.  Therapy resumes as programmed; missed drug is never made up.
    OUTAGE: ("outage", ("off_s", "missed_nl")),
    SESSION_END: ("session_end", ("role", "cause", "count")),
}

# Names of small enumerations carried in args.
MODES = ("continuous", "flex")
BOLUS_KINDS = ("clinician", "patient", "bridge")
ROLES = ("", "clinician", "patient")
# AUTH's "result" (firmware/telemetry.py): a failed proof, a session opened, authentication
# locked after too many failures (firmware before the security review; no longer logged).
AUTH_RESULTS = ("failed", "ok", "locked_out")
# SESSION_END's "cause": SESSION_CLOSE, 10 min without a valid request, another party
# authenticated.
END_CAUSES = ("closed", "idle", "replaced")
# What a refused request asked for (REFUSED's "request" arg).
REQUESTS = ("program", "start", "stop", "clinician_bolus", "patient_bolus", "refill",
            "clear_alarm", "set_patient_bolus", "set_low_reservoir_alarm", "set_limits",
            "silence_alarms", "set_clock")


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
        self.next_seq = seq + 1
        t_ms = self._clock_fn()
        if self.journal is not None:
            try:
                self.journal.log_append(seq, t_ms, code, args)
            except PersistError:
                # Non-volatile memory failing must not stop the pump: the entry is still
                # reported (listener) and the failure counted; the commit that fails raises
                # the memory-fault alarm (pump._commit).
                self.failed_writes += 1
        if self.listener is not None:
            self.listener(seq, t_ms, code, args)
        return seq
