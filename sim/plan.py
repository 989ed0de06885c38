# The plan of a run: every action of a scenario in time order, before it is replayed.  The
# timeline's entries, the periodic refills, the patient's bolus presses (drawn from the seed),
# routine telemetry read-outs, and each fault's start, end and recovery (sim/plan_faults.py:
# random faults drawn hour by hour).  Portable like sim/replay.py, which replays the plan (and so runs on MicroPython too):
# integers only, so both interpreters plan the same run.
#
#     plan(config, days, end_ms, rng) -> [(t_ms, order, action dict)], sorted

from firmware.dosing import MS_PER_DAY

# Every press is the same action: one dict for all of them (a month's plan holds ~60; nothing
# changes an action once planned).
_PATIENT_PRESS = {"action": "patient_bolus"}
# Patients press the bolus button while awake (UNSOURCED: 08:00 to 22:00).
_AWAKE_FROM_MIN = 8 * 60
_AWAKE_MINUTES = 14 * 60


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
                    out.append((t, order, _PATIENT_PRESS))
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
    faults = config.get("faults")
    if faults:
        # Imported only for a scenario with faults: a plain replay (the board month under
        # MicroPython) does not hold that code.
        from sim.plan_faults import plan_faults
        plan_faults(config["seed"], faults, end_ms, out, order)
    out.sort()      # by time, then order: orders are unique, so no action dicts are compared
    return out
