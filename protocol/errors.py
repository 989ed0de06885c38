# Protocol exceptions: local faults while building or reading protocol data.  A refusal by the
# pump is not an exception here: it travels as a NAK (data, protocol/commands.py encode_nak and
# decode_response), and the reason codes are the same (protocol/reasons.py).
#
#   ProtocolError      every error the protocol package raises, e.g.
#                      - frame.encode(256, ...): seq out of range (reason out_of_range)
#                      - commands.decode_request(PROGRAM_CONTINUOUS, b"\x00"): wrong size
#                        (reason bad_length): the pump answers with that NAK
#                      - commands.by_name("bolus"): no such command (reason unknown_command)
#
# Attributes, so the pump can turn one into a NAK and a programmer can point at the bad input:
#   reason  a reasons code
#   field   the field's name (protocol/fields.py names where one applies), or None
#   value   the value refused, lo and hi the allowed range (None where not applicable)
#
# Key files (protocol/keys.py) are a host-side configuration matter and raise ValueError.  The
# host-only programmer client (protocol/client.py) raises its own tree, ProgrammerError
# (protocol/client_errors.py): a NAK it receives, a link that fails, a key file it cannot use.

from protocol import reasons


class ProtocolError(Exception):
    def __init__(self, reason, message=None, field=None, value=None, lo=None, hi=None):
        if message is None:
            message = reasons.describe(reason)
        # MicroPython has no Exception.__init__ to call by name; super() works on both.
        super().__init__(message)
        self.reason = reason
        self.field = field
        self.value = value
        self.lo = lo
        self.hi = hi
