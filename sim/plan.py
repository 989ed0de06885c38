# The plan of a run: every action of a scenario in time order, before it is replayed.  The
# timeline's entries, the periodic refills, the patient's bolus presses (drawn from the seed),
# routine telemetry read-outs, and each fault's start, end and recovery (random faults drawn hour
# by hour).  Portable like sim/replay.py, which replays the plan (and so runs on MicroPython too):
# integers only, so both interpreters plan the same run.
#
#     plan(config, days, end_ms, rng) -> [(t_ms, order, action dict)], sorted

from firmware.dosing import MS_PER_DAY
from hal.sim import SimRng

# Patients press the bolus button while awake (UNSOURCED: 08:00 to 22:00).
_AWAKE_FROM_MIN = 8 * 60
_AWAKE_MINUTES = 14 * 60
# A [[faults]] entry with rate_per_year happens at random (seeded): each hour of its window is a
# Bernoulli draw with p = rate / 8760, so at most one occurrence starts in any hour.
_FAULT_SEED_XOR = 0xFA017FA0
_HOURS_PER_YEAR = 8760
_MS_PER_HOUR = 3600000


def plan(config, days, end_ms, rng):
    # Every action of a run, sorted: [(t_ms, order, action dict)].  rng draws the patient's
    # presses (a SimRng seeded from the scenario's seed).
    out = []
    order = 0
    for action in config.get("timeline") or ():
        if action["t_ms"] <= end_ms:
            out.append((action["t_ms"], order, action))
            order += 1
    refills = config.get("refills")
    if refills:
        t = refills["first_ms"]
        while t <= end_ms:
            out.append((t, order, {"action": "refill", "volume_nl": refills["volume_nl"],
                                   "concentration_ug_per_ml": refills["concentration_ug_per_ml"],
                                   "bridge": refills["bridge"]}))
            order += 1
            t += refills["every_ms"]
    mean = config.get("patient_requests_per_day") or 0
    if mean and config.get("patient_bolus"):
        midnight_offset = config["start_wall_ms"] % MS_PER_DAY
        for day in range(days + 1):
            # Binomial(2 * mean, 1/2) presses a day, at uniform times while awake.
            presses = 0
            for _ in range(2 * mean):
                presses += rng.next_u32() & 1
            for _ in range(presses):
                minute = _AWAKE_FROM_MIN + rng.next_u32() % _AWAKE_MINUTES
                t = day * MS_PER_DAY + minute * 60000 - midnight_offset
                if 0 <= t <= end_ms:
                    out.append((t, order, {"action": "patient_bolus"}))
                    order += 1
    sessions = (config.get("models") or {}).get("telemetry_sessions_per_day") or 0
    if sessions:
        # Routine read-outs (a patient's remote, home monitoring), evenly spaced.
        period = MS_PER_DAY // sessions
        t = period // 2
        while t <= end_ms:
            out.append((t, order, {"action": "interrogate"}))
            order += 1
            t += period
    fault_rng = None
    for fault in config.get("faults") or ():
        if "rate_milli_per_year" in fault:
            if fault_rng is None:
                fault_rng = SimRng(config["seed"] ^ _FAULT_SEED_XOR)
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
    out.sort(key=_plan_key)
    return out


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


def _plan_key(entry):
    return (entry[0], entry[1])
