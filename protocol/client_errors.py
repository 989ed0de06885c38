"""The programmer's exceptions (host only: raised by protocol/client.py, caught by tools/prog/
and sim/telemetry_link.py).  The board-side protocol raises ProtocolError (protocol/errors.py) for
its own faults; these are the client's, a separate tree kept out of the board's bundle.

    Exception
     +-- ProgrammerError         anything the programmer raises on purpose
          +-- Refused            the pump answered with a NAK: it refused the request
          |                      (a bolus over the hard limit, a patient asking for a clinician
          |                      command, a wrong key: bad_mac, auth_locked_out)
          +-- LinkFailure        no usable answer: the port cannot be opened, nothing answers
          |    |                 after every retry, the pump failed to prove it holds the key
          |    |                 (an impostor), a response failed its MAC
          |    +-- OutcomeUnknown  a command that changes the pump was sent and no usable
          |                      answer came: the pump may or may not have done it (never
          |                      "failed"); Programmer.resend() finds out without doing it twice
          +-- KeyFileError       the key file is missing, not JSON, or lacks the role's key

Remote errors are data on the wire (a NAK frame with a reason code); Refused carries them as
attributes so a caller can act on them (`exc.reason_name == "soft_limit_needs_confirm"`).  The
`vpump prog` command exits 2 for Refused and KeyFileError (the request or the input was refused)
and 1 for LinkFailure (a runtime failure).
"""

from protocol import reasons


class ProgrammerError(Exception):
    """Base class of every error the programmer raises on purpose."""


class Refused(ProgrammerError):
    """The pump refused a request (a NAK).

    reason: the reason code (protocol/reasons.py) and reason_name its name; field: the name of
    the field at fault (None if no single field is); value: the value refused; lo, hi: the
    allowed range (0, 0 where not applicable).  command: the command's name.  str() is a
    sentence:
    ``over_hard_limit: over a drug-library hard limit: never allowed: daily_dose_ug = 50000,
    allowed 0..2000``
    """

    def __init__(self, reason, reason_name=None, field=None, value=0, lo=0, hi=0, command=None):
        self.reason = reason
        self.reason_name = reason_name or reasons.name(reason)
        self.field = field or None
        self.value = value
        self.lo = lo
        self.hi = hi
        self.command = command
        super().__init__(self._sentence())

    def _sentence(self):
        text = "%s: %s" % (self.reason_name, reasons.describe(self.reason))
        if self.field:
            text += ": %s = %s" % (self.field, self.value)
            if self.lo or self.hi:
                text += ", allowed %s..%s" % (self.lo, self.hi)
        return text

    def as_dict(self):
        return {"reason": self.reason, "reason_name": self.reason_name,
                "description": reasons.describe(self.reason), "field": self.field,
                "value": self.value, "lo": self.lo, "hi": self.hi, "command": self.command}


class LinkFailure(ProgrammerError):
    """The link failed or the pump did not answer usably (after every retry)."""


class OutcomeUnknown(LinkFailure):
    """A command that changes the pump was sent, and no usable answer came back: the pump may
    have done it (the answer was lost) or not (the request was).  It is never reported as
    failed.  Programmer.resend() sends the very same frame again: a pump that did it answers
    from its memory of the session's last request without doing it twice; one that never got
    it does it now.  command: the command's name; cause: why no answer was usable."""

    def __init__(self, command, cause):
        self.command = command
        self.cause = cause
        super().__init__(
            "outcome unknown: %s was sent but no answer came back (%s). The pump may or may not "
            "have done it. Do not simply repeat it as a new request: resend the same request "
            "(the shell's `resend`), which the pump answers from memory without doing it twice "
            "if it already did it, or check with `status` and `log` first" % (command, cause))


class KeyFileError(ProgrammerError):
    """A key file that cannot be used: the message names the file and the problem."""
