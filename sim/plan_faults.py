# The plan's [[faults]] part (sim/plan.py): each fault's start, end and recovery, random faults
# drawn hour by hour.  Portable like sim/plan.py; imported only for a scenario with faults.

from hal.sim import SimRng

# A [[faults]] entry with rate_per_year happens at random (seeded): each hour of its window is a
# Bernoulli draw with p = rate / 8760, so at most one occurrence starts in any hour.
_FAULT_SEED_XOR = 0xFA017FA0
_HOURS_PER_YEAR = 8760
_MS_PER_HOUR = 3600000


def plan_faults(seed, faults, end_ms, out, order):
    # Appends each fault's actions to out, numbered on from order: (t_ms, order, action dict).
    # Random faults draw from their own SimRng, seeded from the scenario's seed.
    fault_rng = None
    for fault in faults:
        if "rate_milli_per_year" in fault:
            if fault_rng is None:
                fault_rng = SimRng(seed ^ _FAULT_SEED_XOR)
            starts = random_fault_starts(fault, end_ms, fault_rng)
        else:
            starts = (fault["t_ms"],)
        for occurrence, t in enumerate(starts, 1):
            if t > end_ms:
                continue
            tag = {"kind": fault["kind"], "fault": fault["number"], "occurrence": occurrence}
            out.append((t, order, _fault_action("fault_start", tag, fault)))
            order += 1
            duration = fault.get("duration_ms")
            if duration is None:
                continue
            if duration <= end_ms - t:
                out.append((t + duration, order, _fault_action("fault_end", tag, fault)))
                order += 1
            recover = fault.get("recover_ms")
            if recover is not None and duration + recover <= end_ms - t:
                out.append((t + duration + recover, order,
                            _fault_action("fault_recovered", tag, fault)))
                order += 1


def _fault_action(action, tag, fault):
    a = {"action": action, "spec": fault}
    a.update(tag)
    return a


def random_fault_starts(fault, end_ms, rng):
    # The start times of a random fault: one Bernoulli draw per hour of its window (from_ms to
    # to_ms, or the end of the run), then a uniform moment within that hour.  Integers only, so
    # both interpreters draw the same faults.
    threshold = fault["rate_milli_per_year"] * 4294967296 // (_HOURS_PER_YEAR * 1000)
    last = fault.get("to_ms")
    if last is None or last > end_ms:
        last = end_ms
    out = []
    t = fault.get("from_ms") or 0
    while t <= last:
        hit = rng.next_u32() < threshold
        at = t + rng.next_u32() % _MS_PER_HOUR
        if hit and at <= last:
            out.append(at)
        t += _MS_PER_HOUR
    return out
