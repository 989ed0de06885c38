# What each reason code (protocol/reasons.py) means for the person holding the programmer: the
# words a programmer shows beside a NAK's reason name, and the default message of a
# ProtocolError.  Host-facing: a board's .mpy bundle leaves this module out (tools/flash.py skips
# imports guarded by ImportError), and reasons.describe() falls back to the reason's name there.
# Keyed by the reason's wire name (reasons.TEXT), so this module imports nothing: reasons.py
# imports it, not the other way round.

DESCRIPTIONS = {
    "ok": "accepted",
    "bad_crc": "frame CRC did not match; resend",
    "bad_length": "frame length field does not match the payload",
    "unknown_command": "the pump does not know this command",
    "bad_version": "protocol version not supported by this pump",
    "not_authenticated": "open an authenticated session first",
    "bad_mac": "message authentication failed (wrong key or altered frame)",
    "replay": "frame counter not newer than the last one: replay refused",
    "role_not_allowed": "this role may not use this command",
    "auth_locked_out": "too many failed authentications; wait and retry",
    "busy": "the pump is busy; retry shortly",
    "out_of_range": "a field is outside its allowed range",
    "over_hard_limit": "over a drug-library hard limit: never allowed",
    "soft_limit_needs_confirm": "over a drug-library soft limit: resend with confirm",
    "state_does_not_allow": "the pump's state does not allow this",
    "no_program": "no therapy is programmed; program one first",
    "therapy_halted": "therapy is halted by a critical alarm; clear it first",
    "therapy_stopped": "therapy is stopped; start it first",
    "bolus_in_progress": "a bolus is in progress; wait for it to finish",
    "lockout_active": "patient bolus lockout is running; wait for it to end",
    "max_activations": "maximum patient boluses in 24 h reached",
    "patient_bolus_disabled": "patient bolus is not enabled",
    "refill_first": "the reservoir is empty: refill before clearing",
    "motor_still_stalled": "the motor still does not turn",
    "end_of_service": "battery at end of service: replace the pump",
    "storage_failed": "could not commit to memory; nothing was changed",
}
