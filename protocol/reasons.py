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

# name -> code: what a NAK's reason is called on the wire, in logs and in docs/protocol.md.
# Keyword arguments, so the names are interned strings (qstrs) on MicroPython, shared with
# every module that spells them.
CODES = dict(
    ok=OK,
    bad_crc=BAD_CRC,
    bad_length=BAD_LENGTH,
    unknown_command=UNKNOWN_COMMAND,
    bad_version=BAD_VERSION,
    not_authenticated=NOT_AUTHENTICATED,
    bad_mac=BAD_MAC,
    replay=REPLAY,
    role_not_allowed=ROLE_NOT_ALLOWED,
    auth_locked_out=AUTH_LOCKED_OUT,
    busy=BUSY,
    out_of_range=OUT_OF_RANGE,
    over_hard_limit=OVER_HARD_LIMIT,
    soft_limit_needs_confirm=SOFT_LIMIT_NEEDS_CONFIRM,
    state_does_not_allow=STATE_DOES_NOT_ALLOW,
    no_program=NO_PROGRAM,
    therapy_halted=THERAPY_HALTED,
    therapy_stopped=THERAPY_STOPPED,
    bolus_in_progress=BOLUS_IN_PROGRESS,
    lockout_active=LOCKOUT_ACTIVE,
    max_activations=MAX_ACTIVATIONS,
    patient_bolus_disabled=PATIENT_BOLUS_DISABLED,
    refill_first=REFILL_FIRST,
    motor_still_stalled=MOTOR_STILL_STALLED,
    end_of_service=END_OF_SERVICE,
    storage_failed=STORAGE_FAILED,
)

# code -> name
TEXT = {}
for _name in CODES:
    TEXT[CODES[_name]] = _name


def code(name):
    return CODES[name]


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
