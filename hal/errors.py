# HAL exceptions (local faults; remote errors travel as NAK data, see protocol/).
#
#   HalError                 anything wrong with a hardware part or its backend
#   +-- BackendNotFound      hal.open_board("simm"): the name is not in the registry
#   +-- StorageError         a read/write outside the device, or the device failed
#   +-- LinkError            the telemetry link is closed or failed
#   +-- PowerLost            (simulation) the supply was cut mid-operation; reboot follows


class HalError(Exception):
    pass


class BackendNotFound(HalError):
    pass


class StorageError(HalError):
    pass


class LinkError(HalError):
    pass


class PowerLost(HalError):
    # Simulation only: the supply failed during this operation (a write may be torn).  The
    # simulator catches it and reboots the firmware from storage.
    pass
