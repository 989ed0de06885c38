# The pump's state table: the single source of truth for what the pump does with every event.
#
# Three orthogonal regions, each in exactly one state at a time:
#   therapy    what delivery is doing (idle, infusing, bolus, lockout) or why it is halted
#   reservoir  the non-critical low-reservoir alarm
#   battery    the non-critical elective-replacement indicator (ERI)
# Non-halting alarms live in their own regions, so raising one can never end a bolus in progress
# or a running lockout.  An event goes to every region whose alphabet has it, therapy first.
#
# A row is (source, trigger, dest, guard, action):
#   source  a state, or a tuple of states
#   dest    a state; None keeps the state (internal: no exit, no entry, the action still runs);
#           the source state itself is a self-transition (the state change is logged)
#   guard   None, or "part.method": a method (arg) -> bool of one of the pump's parts; rows
#           are tried in order and the first whose guard passes wins, so a guarded row is
#           followed by its fallback
#   action  None (with dest None: an explicit ignore); "part.method": a method (arg) that
#           returns None (accepted) or a reason code (refused, nothing changed); or
#           "!reason" to refuse with that reason from protocol.reasons
# The parts are the pump's attributes of those names, one module each: therapy
# (firmware/therapy.py: program, basal, halts), bolus (firmware/bolus.py: every bolus and the
# lockout), reservoir (firmware/reservoir.py), battery (firmware/battery.py).
# firmware/machine.py interprets it; tools/diagram.py builds a `transitions` machine from the
# same rows for docs/state-machine.md and as a test oracle.  Every (state, trigger) pair of a
# region has a row: tests/firmware/test_table.py proves it.

IDLE = "idle"
INFUSING = "infusing"
BOLUS = "bolus"
LOCKOUT = "lockout"
RESERVOIR_EMPTY = "reservoir_empty"
MOTOR_STALL = "motor_stall"
BATTERY_DEPLETED = "battery_depleted"
FAULT = "fault"

RESERVOIR_OK = "reservoir_ok"
LOW_RESERVOIR = "low_reservoir"

BATTERY_OK = "battery_ok"
ELECTIVE_REPLACEMENT = "elective_replacement"

_DELIVERING = (IDLE, INFUSING, BOLUS, LOCKOUT)
_RUNNING = (INFUSING, BOLUS, LOCKOUT)
_ON = (INFUSING, LOCKOUT)           # therapy is always on here (SR-02); a bolus may run with it off
_HALTED = (RESERVOIR_EMPTY, MOTOR_STALL, FAULT)

THERAPY = (
    # Starting and stopping.  A bolus may run with therapy off (a clinician bolus or a refill's
    # bridge bolus started from idle): there START starts therapy as from idle, the bolus goes
    # on (a self-transition, logged), and when it ends the pump is infusing.
    (IDLE, "start", INFUSING, "therapy.has_program", "therapy.start_basal"),
    (BOLUS, "start", None, "therapy.is_on", None),
    (BOLUS, "start", BOLUS, "therapy.has_program", "therapy.start_basal"),
    ((IDLE, BOLUS), "start", None, None, "!no_program"),
    (_ON, "start", None, None, None),
    (_RUNNING, "stop", IDLE, None, "therapy.stop"),
    ((IDLE,) + _HALTED, "stop", None, None, "therapy.stop"),  # halted: stays stopped once cleared
    (_HALTED, "start", None, None, "!therapy_halted"),

    # A new program (already checked against the drug library) takes effect at once, and
    # starts therapy if it is off (from idle, or a bolus started from idle).
    (IDLE, "program", INFUSING, None, "therapy.program_and_start"),
    (BOLUS, "program", None, "therapy.is_on", "therapy.apply_program"),
    (BOLUS, "program", BOLUS, None, "therapy.program_and_start"),
    (_ON, "program", None, None, "therapy.apply_program"),
    (_HALTED, "program", None, None, "!therapy_halted"),

    # Boluses.  A clinician bolus may run during a lockout; afterwards the lockout resumes.
    ((IDLE, INFUSING, LOCKOUT), "clinician_bolus", BOLUS, None, "bolus.start_clinician"),
    (BOLUS, "clinician_bolus", None, None, "!bolus_in_progress"),
    (_HALTED, "clinician_bolus", None, None, "!therapy_halted"),
    (INFUSING, "patient_bolus", BOLUS, "bolus.patient_may_start", "bolus.start_patient"),
    (_ON, "patient_bolus", None, None, "bolus.refuse_patient"),
    (IDLE, "patient_bolus", None, None, "!therapy_stopped"),
    (BOLUS, "patient_bolus", None, None, "!bolus_in_progress"),
    (_HALTED, "patient_bolus", None, None, "!therapy_halted"),
    (BOLUS, "bolus_done", LOCKOUT, "bolus.lockout_running", "bolus.end"),
    (BOLUS, "bolus_done", INFUSING, "therapy.is_on", "bolus.end"),
    (BOLUS, "bolus_done", IDLE, None, "bolus.end"),
    ((IDLE, INFUSING, LOCKOUT) + _HALTED, "bolus_done", None, None, None),
    (LOCKOUT, "lockout_done", INFUSING, None, "bolus.end_lockout"),
    ((IDLE, INFUSING, BOLUS) + _HALTED, "lockout_done", None, None, None),

    # Refill: volume and concentration, optionally a bridge bolus to clear the old drug from
    # the catheter.  Never during a bolus.  After an empty reservoir it restarts therapy.
    ((IDLE, INFUSING, LOCKOUT), "refill", BOLUS, "bolus.bridge_requested", "bolus.refill_with_bridge"),
    ((IDLE, INFUSING, LOCKOUT, MOTOR_STALL, FAULT), "refill", None, None, "reservoir.accept_refill"),
    (BOLUS, "refill", None, None, "!bolus_in_progress"),
    (RESERVOIR_EMPTY, "refill", BOLUS, "bolus.bridge_requested", "bolus.bridge_after_empty"),
    (RESERVOIR_EMPTY, "refill", INFUSING, "therapy.is_on", "reservoir.refill_after_empty"),
    (RESERVOIR_EMPTY, "refill", IDLE, None, "reservoir.refill_after_empty"),

    # Critical alarms halt therapy from anywhere they can happen.
    (_DELIVERING, "reservoir_empty", RESERVOIR_EMPTY, None, "therapy.halt_reservoir_empty"),
    (RESERVOIR_EMPTY, "reservoir_empty", None, None, None),
    # Already halted (stall, fault): the reservoir-empty alarm sounds all the same.
    ((MOTOR_STALL, FAULT), "reservoir_empty", None, None, "therapy.halt_reservoir_empty"),
    (_DELIVERING + (RESERVOIR_EMPTY,), "motor_stall", MOTOR_STALL, None, "therapy.halt_motor_stall"),
    ((MOTOR_STALL, FAULT), "motor_stall", None, None, None),
    (_DELIVERING + _HALTED, "battery_eos", BATTERY_DEPLETED, None, "therapy.halt_end_of_service"),
    (_DELIVERING + (RESERVOIR_EMPTY, MOTOR_STALL), "fault", FAULT, None, "therapy.halt_fault"),
    (FAULT, "fault", None, None, None),

    # Clearing a critical alarm (the clinician has interrogated the pump).
    (_DELIVERING, "clear_alarm", None, None, None),
    (RESERVOIR_EMPTY, "clear_alarm", None, None, "!refill_first"),
    # clear_motor_stall first tries the owed stroke: a motor that still does not turn refuses
    # the clear (motor_still_stalled) and the alarm stays.
    (MOTOR_STALL, "clear_alarm", INFUSING, "therapy.is_on", "therapy.clear_motor_stall"),
    (MOTOR_STALL, "clear_alarm", IDLE, None, "therapy.clear_motor_stall"),
    (FAULT, "clear_alarm", IDLE, None, "therapy.clear_fault"),

    # End of service is final: the pump must be replaced.
    (BATTERY_DEPLETED, ("start", "program", "clinician_bolus", "patient_bolus", "refill",
                        "clear_alarm"), None, None, "!end_of_service"),
    (BATTERY_DEPLETED, ("stop", "bolus_done", "lockout_done", "reservoir_empty",
                        "motor_stall", "battery_eos", "fault"), None, None, None),
)

RESERVOIR = (
    # reservoir_level is posted whenever the estimate crosses the alarm volume (either way) or
    # the alarm volume changes.
    (RESERVOIR_OK, "reservoir_level", LOW_RESERVOIR, "reservoir.below_low_reservoir", "reservoir.raise_low_reservoir"),
    (RESERVOIR_OK, "reservoir_level", None, None, None),
    (LOW_RESERVOIR, "reservoir_level", RESERVOIR_OK, "reservoir.above_low_reservoir", "reservoir.clear_low_reservoir"),
    (LOW_RESERVOIR, "reservoir_level", None, None, None),
)

BATTERY = (
    (BATTERY_OK, "battery_level", ELECTIVE_REPLACEMENT, "battery.at_eri", "battery.raise_elective_replacement"),
    (BATTERY_OK, "battery_level", None, None, None),
    (ELECTIVE_REPLACEMENT, "battery_level", None, None, None),
)

# region name -> (states in order, initial state, rows)
REGIONS = (
    ("therapy", (IDLE, INFUSING, BOLUS, LOCKOUT, RESERVOIR_EMPTY, MOTOR_STALL,
                 BATTERY_DEPLETED, FAULT), IDLE, THERAPY),
    ("reservoir", (RESERVOIR_OK, LOW_RESERVOIR), RESERVOIR_OK, RESERVOIR),
    ("battery", (BATTERY_OK, ELECTIVE_REPLACEMENT), BATTERY_OK, BATTERY),
)


def expand(rows):
    # Yields (source, trigger, dest, guard, action) with tuples of sources and triggers expanded,
    # in table order.
    for source, trigger, dest, guard, action in rows:
        sources = source if isinstance(source, tuple) else (source,)
        triggers = trigger if isinstance(trigger, tuple) else (trigger,)
        for s in sources:
            for t in triggers:
                yield s, t, dest, guard, action


def bound(context, name):
    # The method a guard or action name ("part.method") names on context (the pump).
    dot = name.find(".")
    return getattr(getattr(context, name[:dot]), name[dot + 1:])


# For the log (state changes are logged as indexes) and hosts decoding it (sim/events.py):
# region names, each region's states in order, every trigger in first-use order.
REGION_NAMES = [r[0] for r in REGIONS]
STATES = {}
TRIGGERS = []
for _region, _states, _initial, _rows in REGIONS:
    STATES[_region] = list(_states)
    for _row in expand(_rows):
        if _row[1] not in TRIGGERS:
            TRIGGERS.append(_row[1])
