# What each reason code (protocol/reasons.py) means for the person holding the programmer: the
# words a programmer shows beside a NAK's reason name, and the default message of a
# ProtocolError.  Host-facing: a board's .mpy bundle leaves this module out (tools/flash.py skips
# imports guarded by ImportError), and reasons.describe() falls back to the reason's name there.

from protocol import reasons as R

DESCRIPTIONS = {
    R.OK: "accepted",
    R.BAD_CRC: "frame CRC did not match; resend",
    R.BAD_LENGTH: "frame length field does not match the payload",
    R.UNKNOWN_COMMAND: "the pump does not know this command",
    R.BAD_VERSION: "protocol version not supported by this pump",
    R.NOT_AUTHENTICATED: "open an authenticated session first",
    R.BAD_MAC: "message authentication failed (wrong key or altered frame)",
    R.REPLAY: "frame counter not newer than the last one: replay refused",
    R.ROLE_NOT_ALLOWED: "this role may not use this command",
    R.AUTH_LOCKED_OUT: "too many failed authentications; wait and retry",
    R.BUSY: "the pump is busy; retry shortly",
    R.OUT_OF_RANGE: "a field is outside its allowed range",
    R.OVER_HARD_LIMIT: "over a drug-library hard limit: never allowed",
    R.SOFT_LIMIT_NEEDS_CONFIRM: "over a drug-library soft limit: resend with confirm",
    R.STATE_DOES_NOT_ALLOW: "the pump's state does not allow this",
    R.NO_PROGRAM: "no therapy is programmed; program one first",
    R.THERAPY_HALTED: "therapy is halted by a critical alarm; clear it first",
    R.THERAPY_STOPPED: "therapy is stopped; start it first",
    R.BOLUS_IN_PROGRESS: "a bolus is in progress; wait for it to finish",
    R.LOCKOUT_ACTIVE: "patient bolus lockout is running; wait for it to end",
    R.MAX_ACTIVATIONS: "maximum patient boluses in 24 h reached",
    R.PATIENT_BOLUS_DISABLED: "patient bolus is not enabled",
    R.REFILL_FIRST: "the reservoir is empty: refill before clearing",
    R.MOTOR_STILL_STALLED: "the motor still does not turn",
    R.END_OF_SERVICE: "battery at end of service: replace the pump",
    R.STORAGE_FAILED: "could not commit to memory; nothing was changed",
}
