# Reason codes: why the pump refused something.  The firmware returns them from its API and the
# telemetry protocol carries them in NAK frames, so a programmer shows the same words either way.
# Codes are stable: never renumber, only add.  docs/protocol.md lists them.

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

OK = const(0)

# Frame and session level (telemetry).
BAD_CRC = const(1)
BAD_LENGTH = const(2)
UNKNOWN_COMMAND = const(3)
BAD_VERSION = const(4)
NOT_AUTHENTICATED = const(5)
BAD_MAC = const(6)
REPLAY = const(7)
ROLE_NOT_ALLOWED = const(8)
AUTH_LOCKED_OUT = const(9)
BUSY = const(10)

# Request level: values.
OUT_OF_RANGE = const(16)
OVER_HARD_LIMIT = const(17)
SOFT_LIMIT_NEEDS_CONFIRM = const(18)

# Request level: the pump's state does not allow it.
STATE_DOES_NOT_ALLOW = const(32)
NO_PROGRAM = const(33)
THERAPY_HALTED = const(34)
THERAPY_STOPPED = const(35)
BOLUS_IN_PROGRESS = const(36)
LOCKOUT_ACTIVE = const(37)
MAX_ACTIVATIONS = const(38)
PATIENT_BOLUS_DISABLED = const(39)
REFILL_FIRST = const(40)
MOTOR_STILL_STALLED = const(41)
END_OF_SERVICE = const(42)
STORAGE_FAILED = const(43)

# code -> name (what a NAK's reason is called on the wire, in logs and in docs/protocol.md)
TEXT = {
    OK: "ok",
    BAD_CRC: "bad_crc",
    BAD_LENGTH: "bad_length",
    UNKNOWN_COMMAND: "unknown_command",
    BAD_VERSION: "bad_version",
    NOT_AUTHENTICATED: "not_authenticated",
    BAD_MAC: "bad_mac",
    REPLAY: "replay",
    ROLE_NOT_ALLOWED: "role_not_allowed",
    AUTH_LOCKED_OUT: "auth_locked_out",
    BUSY: "busy",
    OUT_OF_RANGE: "out_of_range",
    OVER_HARD_LIMIT: "over_hard_limit",
    SOFT_LIMIT_NEEDS_CONFIRM: "soft_limit_needs_confirm",
    STATE_DOES_NOT_ALLOW: "state_does_not_allow",
    NO_PROGRAM: "no_program",
    THERAPY_HALTED: "therapy_halted",
    THERAPY_STOPPED: "therapy_stopped",
    BOLUS_IN_PROGRESS: "bolus_in_progress",
    LOCKOUT_ACTIVE: "lockout_active",
    MAX_ACTIVATIONS: "max_activations",
    PATIENT_BOLUS_DISABLED: "patient_bolus_disabled",
    REFILL_FIRST: "refill_first",
    MOTOR_STILL_STALLED: "motor_still_stalled",
    END_OF_SERVICE: "end_of_service",
    STORAGE_FAILED: "storage_failed",
}


def code(name):
    # The code of a reason's name; KeyError for a name that is none.  (A scan, not a second
    # dict: it runs for a refusal, and a dict would hold heap on a board for good.)
    for reason in TEXT:
        if TEXT[reason] == name:
            return reason
    raise KeyError(name)


def name(reason):
    return TEXT.get(reason) or "reason_%d" % reason


def describe(reason):
    # What it means for the person holding the programmer.  The words live in
    # protocol/reason_texts.py, which a board's bundle leaves out to save flash (tools/flash.py
    # skips imports guarded by ImportError): there the name stands in.
    try:
        from protocol.reason_texts import DESCRIPTIONS
    except ImportError:
        DESCRIPTIONS = {}
    text = DESCRIPTIONS.get(TEXT.get(reason))
    if text:
        return text
    return name(reason).replace("_", " ") if reason in TEXT else "unknown reason %d" % reason
