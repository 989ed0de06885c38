# What the pump answers to an authenticated command (docs/protocol.md, "Commands"): run() does
# the command on the Pump and encodes the answer's body (status 00 and the fields, or a NAK).
# firmware/telemetry.py owns the link and the sessions and calls run() once a request has passed
# its MAC, counter and role checks, then seals the body into the answer's frame.
#
# READ_LOG is the one large answer (up to 32 entries, ~940 bytes): its page is not built as
# objects but written by log_page() straight from storage into the frame's buffer, so a board
# answers it with the frame as its only allocation of any size.

from firmware import alarms, limits
from protocol import commands as C
from protocol import reasons


# A READ_LOG entry (seq u32, t_ms u64, code u8, 4 x i32, big-endian: protocol/commands.py)
# picked byte by byte from a stored log record (seq u32, t_ms lo u32, t_ms hi u32, code u8,
# nargs u8, 4 x i32, little-endian, unused args 0: firmware/persist.py).
_ENTRY_PICKS = bytes((3, 2, 1, 0, 11, 10, 9, 8, 7, 6, 5, 4, 12, 17, 16, 15, 14, 21, 20, 19, 18,
                      25, 24, 23, 22, 29, 28, 27, 26))
LOG_ENTRY_BYTES = 29
LOG_HEAD_BYTES = 6          # status, count u8, next_seq u32


def run(pump, cmd, f):
    # The body of the answer to cmd with the decoded request f; None for READ_LOG (log_page).
    pump.refusal = None
    if cmd == C.INTERROGATE:
        return C.encode_ack(cmd, interrogate(pump))
    if cmd == C.SESSION_CLOSE:
        return C.encode_ack(cmd, {})
    if cmd == C.READ_LOG:
        return None
    if cmd == C.READ_LIMITS:
        return C.encode_ack(cmd, _limits(pump))
    p = pump
    old = None
    if cmd == C.SET_LIMITS:
        old = _limits(p)
        new = {}
        for key in old:
            if key != "concentration_ug_per_ml":
                new[key] = f[key]
        outcome = p.set_limits(new)
    elif cmd in (C.PROGRAM_CONTINUOUS, C.PROGRAM_FLEX):
        old = _daily_ug(p.therapy.program)
        if cmd == C.PROGRAM_CONTINUOUS:
            outcome = p.program_continuous(f["basal_ug_per_day"], f["confirm"])
        else:
            outcome = p.program_flex(f["steps"], f["confirm"])
    elif cmd == C.CLINICIAN_BOLUS:
        outcome = p.clinician_bolus(f["dose_ug"], f["duration_ms"], f["confirm"])
    elif cmd == C.PATIENT_BOLUS:
        outcome = p.patient_bolus()
    elif cmd == C.SET_PATIENT_BOLUS:
        old = p.bolus.settings
        if f["enabled"]:
            outcome = p.set_patient_bolus(f["dose_ug"], f["duration_ms"], f["lockout_ms"],
                                          f["max_per_24h"], f["confirm"])
        else:
            outcome = p.disable_patient_bolus()
    elif cmd == C.REFILL:
        old = max(0, p.doser.reservoir_nl())
        outcome = p.refill(f["volume_nl"], f["concentration_ug_per_ml"], f["bridge"])
    elif cmd == C.STOP:
        outcome = p.stop()
    elif cmd == C.START:
        outcome = p.start()
    elif cmd == C.SET_CLOCK:
        old = p.wall_ms()
        outcome = p.set_clock(f["wall_ms"])
    elif cmd == C.SILENCE_ALARMS:
        old = 0
        for alarm in p.alarms.active:
            if not alarms.CRITICAL[alarm]:
                old += 1
        outcome = p.silence_alarms(f["minutes"] * 60000)
    elif cmd == C.CLEAR_ALARM:
        outcome = p.clear_alarm()
    elif cmd == C.ALARM_TEST:
        outcome = p.alarm_test()
    elif cmd == C.SET_LOW_RESERVOIR_ALARM:
        old = p.reservoir.low_reservoir_alarm_nl
        outcome = p.set_low_reservoir_alarm(f["volume_nl"])
    else:
        return C.encode_nak(reasons.UNKNOWN_COMMAND, None, cmd)
    if outcome != reasons.OK:
        return _refused(p, outcome)
    return C.encode_ack(cmd, _result(p, cmd, f, old))


def _refused(pump, reason):
    refusal = pump.refusal
    if refusal is not None and refusal[0] == reason and refusal[1]:
        return C.encode_nak(reason, refusal[1], refusal[2], refusal[3], refusal[4])
    return C.encode_nak(reason, None)


def _result(p, cmd, f, old):
    if cmd == C.SET_LIMITS:
        return {"old": old, "new": _limits(p)}
    if cmd in (C.PROGRAM_CONTINUOUS, C.PROGRAM_FLEX):
        return {"old_daily_ug": old, "new_daily_ug": _daily_ug(p.therapy.program)}
    if cmd == C.CLINICIAN_BOLUS:
        return {"dose_ug": f["dose_ug"], "duration_ms": f["duration_ms"]}
    if cmd == C.PATIENT_BOLUS:
        s = p.bolus.settings
        until = p.bolus.lockout_until_ms
        return {"dose_ug": s["dose_ug"] if s else 0,
                "lockout_until_ms": until + p.clock_offset_ms if until else 0}
    if cmd == C.SET_PATIENT_BOLUS:
        return {"old_enabled": old is not None, "old_dose_ug": old["dose_ug"] if old else 0}
    if cmd == C.REFILL:
        return {"old_estimate_nl": old, "new_estimate_nl": max(0, p.doser.reservoir_nl())}
    if cmd == C.SET_CLOCK:
        return {"old_wall_ms": old}
    if cmd == C.SILENCE_ALARMS:
        return {"silenced": old}
    if cmd == C.SET_LOW_RESERVOIR_ALARM:
        return {"old_volume_nl": old}
    return {}


def _limits(pump):
    out = {}
    for key in limits.LIMIT_KEYS:
        out[key] = pump.limits.get(key, 0)
    out["concentration_ug_per_ml"] = pump.doser.concentration_ug_per_ml
    return out


def log_page(pump, start_seq, max_entries, buf, pos):
    # READ_LOG's answer body written into buf at pos: status 00, count, next_seq, then the
    # entries (buf has room for LOG_HEAD_BYTES and pump.persist.log_room() entries).  Returns
    # the body's length.
    count, last = pump.persist.log_copy(start_seq, max_entries, buf, pos + LOG_HEAD_BYTES,
                                        _ENTRY_PICKS)
    next_seq = last + 1 if count else start_seq
    buf[pos] = reasons.OK
    buf[pos + 1] = count
    for k in range(4):
        buf[pos + 2 + k] = (next_seq >> (24 - 8 * k)) & 0xFF
    return LOG_HEAD_BYTES + count * LOG_ENTRY_BYTES


def interrogate(pump):
    p = pump
    s = p.status()
    alarm_bits = 0
    for alarm in p.alarms.active:
        alarm_bits |= 1 << alarm
    program = s["program"]
    lockout = s["lockout_until_ms"]
    return {
        "therapy": s["therapy"], "reservoir": s["reservoir"], "battery": s["battery"],
        "therapy_on": bool(s["therapy_on"]),
        "mode": (1 if program["mode"] == "continuous" else 2) if program else 0,   # MODES
        "basal_ug_per_day": s["basal_ug_per_day"],
        "reservoir_nl": s["reservoir_nl"],
        "concentration_ug_per_ml": s["concentration_ug_per_ml"],
        "low_reservoir_alarm_nl": s["low_reservoir_alarm_nl"],
        "hours_to_alarm": s["hours_to_alarm"], "hours_to_empty": s["hours_to_empty"],
        "battery_remaining_nah": s["battery_remaining_nah"],
        "battery_mv": s["battery_mv"],
        "days_to_replacement": p.battery.days_to_replacement(),
        "alarm_bits": alarm_bits,
        "lockout_until_ms": lockout + p.clock_offset_ms if lockout else 0,
        "delivered_ug": s["delivered_ug"],
        "wall_ms": s["wall_ms"],
        "boot_count": s["boot_count"],
    }


def _daily_ug(program):
    # The daily dose a program gives: the basal, or a flex week's daily average.
    if program is None:
        return 0
    if program["mode"] == "continuous":
        return program["basal_ug_per_day"]
    total = 0
    for day in program["steps"]:
        total += limits.flex_daily_ug(day)
    return total // 7
