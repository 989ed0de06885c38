# Firmware exceptions: local faults, raised inside the pump.  A refusal of a request is not an
# exception: the API returns a reason code (protocol/reasons.py) and the wire carries it as a NAK.
#
#   FirmwareError          a bug or a broken invariant (e.g. the state table names a missing
#                          action); the pump logs it and goes to the fault state
#   +-- PersistError       storage could not be read or committed (both slots bad on boot:
#                          the pump starts from factory defaults and raises a memory-fault alarm)


class FirmwareError(Exception):
    pass


class PersistError(FirmwareError):
    pass
