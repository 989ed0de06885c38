"""The invariant monitor's rule table and the program arithmetic it checks delivery against
(sim/monitor.py uses both; docs/safety.md has the whole list of requirements), computed here
independently of the firmware's own timers so a firmware mistake is not repeated by its check."""

from firmware import limits
from firmware.dosing import MS_PER_DAY

_MS_PER_MIN = 60000

# Each requirement the monitor checks, with the words a violation starts with (docs/safety.md
# has the whole list; tests/test_traceability.py keeps the two in step).
REQUIREMENTS = {
    "SR-01": "delivery beyond the program plus the boluses given",
    "SR-02": "delivery while therapy is stopped",
    "SR-03": "delivery while halted by a critical alarm",
    "SR-04": "delivery at end of service",
    "SR-05": "delivery while unpowered",
    "SR-06": "reservoir empty not alarmed or not halted",
    "SR-07": "motor stall not alarmed or not halted",
    "SR-08": "memory fault not alarmed or not halted",
    "SR-09": "end of service not alarmed or not halted",
    "SR-10": "low reservoir not alarmed",
    "SR-11": "patient bolus within the lockout",
    "SR-12": "patient boluses beyond the 24 h maximum",
    "SR-13": "patient bolus while therapy is stopped or halted",
    "SR-14": "program or bolus beyond a hard limit",
    "SR-15": "log sequence number reused or out of order",
    "SR-16": "log record time going back",
    "SR-17": "pump not in a committed state or one derived from it",
}


def flex_rate_ug_per_day(program, wall_ms):
    """The basal rate a program asks for at a pump-local calendar time (flex: the step of that
    weekday and minute), computed here independently of the firmware's timers."""
    if program["mode"] == "continuous":
        return program["basal_ug_per_day"]
    day_index = wall_ms // MS_PER_DAY
    weekday = (day_index + 3) % 7           # 1970-01-01 was a Thursday; Monday is 0
    minute = (wall_ms % MS_PER_DAY) // _MS_PER_MIN
    rate = 0
    for start, ug in program["steps"][weekday]:
        if start <= minute:
            rate = ug
    return rate


def program_daily_ug(program):
    """The daily dose a program gives (flex: its heaviest day)."""
    if program["mode"] == "continuous":
        return program["basal_ug_per_day"]
    return max(limits.flex_daily_ug(day) for day in program["steps"])
