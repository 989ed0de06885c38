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

# code -> (name, what it means for the person holding the programmer)
TEXT = {
    OK: ("ok", "accepted"),
    BAD_CRC: ("bad_crc", "frame CRC did not match; resend"),
    BAD_LENGTH: ("bad_length", "frame length field does not match the payload"),
    UNKNOWN_COMMAND: ("unknown_command", "the pump does not know this command"),
    BAD_VERSION: ("bad_version", "protocol version not supported by this pump"),
    NOT_AUTHENTICATED: ("not_authenticated", "open an authenticated session first"),
    BAD_MAC: ("bad_mac", "message authentication failed (wrong key or altered frame)"),
    REPLAY: ("replay", "frame counter not newer than the last one: replay refused"),
    ROLE_NOT_ALLOWED: ("role_not_allowed", "this role may not use this command"),
    AUTH_LOCKED_OUT: ("auth_locked_out", "too many failed authentications; wait and retry"),
    BUSY: ("busy", "the pump is busy; retry shortly"),
    OUT_OF_RANGE: ("out_of_range", "a field is outside its allowed range"),
    OVER_HARD_LIMIT: ("over_hard_limit", "over a drug-library hard limit: never allowed"),
    SOFT_LIMIT_NEEDS_CONFIRM: ("soft_limit_needs_confirm",
                               "over a drug-library soft limit: resend with confirm"),
    STATE_DOES_NOT_ALLOW: ("state_does_not_allow", "the pump's state does not allow this"),
    NO_PROGRAM: ("no_program", "no therapy is programmed; program one first"),
    THERAPY_HALTED: ("therapy_halted", "therapy is halted by a critical alarm; clear it first"),
    THERAPY_STOPPED: ("therapy_stopped", "therapy is stopped; start it first"),
    BOLUS_IN_PROGRESS: ("bolus_in_progress", "a bolus is in progress; wait for it to finish"),
    LOCKOUT_ACTIVE: ("lockout_active", "patient bolus lockout is running; wait for it to end"),
    MAX_ACTIVATIONS: ("max_activations", "maximum patient boluses in 24 h reached"),
    PATIENT_BOLUS_DISABLED: ("patient_bolus_disabled", "patient bolus is not enabled"),
    REFILL_FIRST: ("refill_first", "the reservoir is empty: refill before clearing"),
    MOTOR_STILL_STALLED: ("motor_still_stalled", "the motor still does not turn"),
    END_OF_SERVICE: ("end_of_service", "battery at end of service: replace the pump"),
    STORAGE_FAILED: ("storage_failed", "could not commit to memory; nothing was changed"),
}

_BY_NAME = {}
for _code in TEXT:
    _BY_NAME[TEXT[_code][0]] = _code


def code(name):
    return _BY_NAME[name]


def name(reason):
    entry = TEXT.get(reason)
    return entry[0] if entry else "reason_%d" % reason


def describe(reason):
    entry = TEXT.get(reason)
    return entry[1] if entry else "unknown reason %d" % reason
