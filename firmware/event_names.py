# The event log's names, for people: each code's name and the names of its args, and the small
# enumerations carried in args.  Host-facing (the simulator's events.jsonl, `vpump prog log`,
# tests): a board's .mpy bundle leaves this module out, since firmware/eventlog.py imports it
# only under an ImportError guard (tools/flash.py); the board logs codes only.

from firmware.eventlog import (
    BOOT, STATE, PROGRAM, BOLUS_START, BOLUS_END, REFILL, ALARM_RAISED, ALARM_CLEARED,
    ALARM_SILENCED, REFUSED, CLOCK_SET, LIMITS_SET, PATIENT_BOLUS_SET, ALARM_VOLUME_SET,
    FLEX_STEP, AUTH, COMMIT_FAILED, STORAGE_CORRUPT, OUTAGE, SESSION_END,
)

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
