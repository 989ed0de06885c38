# The pump's state as data: the snapshot a commit stores (take), a boot accepts (valid) and
# resumes from (restore), and the status report an interrogation shows (report).
# firmware/persist.py writes the snapshot to storage; docs/persistence.md explains the rules
# restore follows.

from firmware import alarms, limits, table

# What a snapshot must look like for restore: 0 an int, [shape] a list of that shape,
# (shape, ...) a list of exactly those; program, patient_bolus and bolus may be None.
_ROW2 = (0, 0)
_SHAPE = dict(
    t_ms=0, lockout_until_ms=0, low_reservoir_alarm_nl=0, reservoir_nl=0, concentration=0,
    pending_q=0, rate_q=0, clock_offset_ms=0, boot_count=0, battery_used_nah=0,
    service_start_ms=0, eri_ms=0, delivered_nl=0, delivered_ng=0, patient_bolus_times=[0],
    dose_history=[_ROW2], alarms=[(0, 0, 0)],
)


def _shaped(value, shape):
    if shape == 0:
        return isinstance(value, int) and not isinstance(value, bool)
    if not isinstance(value, list):
        return False
    if isinstance(shape, list):
        for item in value:
            if not _shaped(item, shape[0]):
                return False
        return True
    if len(value) != len(shape):
        return False
    for i in range(len(shape)):
        if not _shaped(value[i], shape[i]):
            return False
    return True


def valid(s):
    # Everything restore reads, of the type it needs.  A snapshot damaged in a way the CRC
    # missed (odds 2**-16), or written by another firmware version, is refused rather than
    # crash the boot half-restored; persist.load() then tries the other slot.
    regions = table.REGION_NAMES
    try:
        for key in _SHAPE:
            if not _shaped(s[key], _SHAPE[key]):
                return False
        states = s["states"]
        program = s["program"]
        pb = s["patient_bolus"]
        bolus = s["bolus"]
        ok = s["v"] == 1 and s["therapy_on"] in (True, False) and \
            min(s["rate_q"], s["pending_q"], s["concentration"]) >= 0 and \
            _shaped(s.get("log_seq", 0), 0) and len(states) == len(regions) and \
            limits.library_entry(s["drug"]) is not None and \
            (bolus is None or _shaped(bolus, (0, 0, 0, 0, 0)) and 0 <= bolus[0] <= 2)
        for i in range(len(regions)):
            ok = ok and states[i] in table.STATES[regions[i]]
        for key in limits.LIMIT_KEYS:
            ok = ok and _shaped(s["limits"][key], 0)
        if pb is not None:
            for key in ("dose_ug", "duration_ms", "lockout_ms", "max_per_24h"):
                ok = ok and _shaped(pb[key], 0)
        for row in s["alarms"]:
            ok = ok and 0 <= row[0] < len(alarms.NAMES)
        if program is not None:
            if program["mode"] == "continuous":
                ok = ok and _shaped(program["basal_ug_per_day"], 0)
            else:
                steps = program["steps"]
                ok = ok and program["mode"] == "flex" and len(steps) == 7
                for day in steps:
                    ok = ok and day and _shaped(day, [_ROW2])
        return bool(ok)
    except (KeyError, TypeError, IndexError):
        # A missing key, a dict where a list belongs, a str that is not a drug's name...
        return False


def take(pump):
    d = pump.doser
    therapy = pump.therapy
    boluses = pump.bolus
    reservoir = pump.reservoir
    battery = pump.battery
    bolus = boluses.current
    return {
        "v": 1,
        "t_ms": pump.sched.now_ms(),
        "states": [pump.machine.states[r] for r in table.REGION_NAMES],
        "therapy_on": therapy.on,
        "drug": pump.drug,
        "limits": pump.limits,
        "program": therapy.program,
        "patient_bolus": boluses.settings,
        "patient_bolus_times": boluses.patient_bolus_times,
        "lockout_until_ms": boluses.lockout_until_ms,
        "low_reservoir_alarm_nl": reservoir.low_reservoir_alarm_nl,
        "dose_history": therapy.dose_history,
        "reservoir_nl": d.reservoir_nl(),
        "concentration": d.concentration_ug_per_ml,
        "pending_q": d.pending_quanta(),
        "rate_q": d.rate_q,
        "clock_offset_ms": pump.clock_offset_ms,
        "boot_count": pump.boot_count,
        "battery_used_nah": battery.used_nah(),
        "service_start_ms": battery.service_start_ms,
        "eri_ms": battery.eri_ms,
        "delivered_nl": reservoir.delivered_nl(),
        "delivered_ng": reservoir.delivered_ng(),
        "alarms": pump.alarms.entries(),
        "bolus": None if bolus is None else bolus[:5],
        # The log's next seq: if its newest records decay, boot does not reuse their seqs.
        "log_seq": pump.log.next_seq,
    }


def restore(pump, s):
    # Returns (the volume assumed delivered but not committed, the least time the pump
    # cannot have been running: see docs/persistence.md).
    now = pump.sched.now_ms()
    therapy = pump.therapy
    boluses = pump.bolus
    reservoir = pump.reservoir
    battery = pump.battery
    states = pump.machine.states
    # A board's tick counter restarts at boot; shift stored times so none is in the future
    # by more than it was.  In the simulator time continues and the shift is 0.
    shift = now - s["t_ms"] if s["t_ms"] > now else 0
    regions = table.REGION_NAMES
    for i in range(len(regions)):
        states[regions[i]] = s["states"][i]
    therapy.on = s["therapy_on"]
    pump.drug = s["drug"]
    pump.limits = s["limits"]
    therapy.program = s["program"]
    boluses.settings = s["patient_bolus"]
    boluses.patient_bolus_times = [t + shift for t in s["patient_bolus_times"]]
    boluses.lockout_until_ms = s["lockout_until_ms"] + shift if s["lockout_until_ms"] else 0
    reservoir.low_reservoir_alarm_nl = s["low_reservoir_alarm_nl"]
    therapy.dose_history = [[t + shift, dose] for t, dose in s["dose_history"]]
    pump.clock_offset_ms = s["clock_offset_ms"] - shift
    pump.boot_count = s["boot_count"]
    battery.base_nah = s["battery_used_nah"]
    battery.service_start_ms = s["service_start_ms"] + shift
    battery.eri_ms = s["eri_ms"] + shift if s["eri_ms"] else 0
    reservoir.delivered_base_nl = s["delivered_nl"]
    reservoir.delivered_base_ng = s["delivered_ng"]
    # Strokes after the last commit are not known.  Assume the worst for the patient's
    # supply: everything that could have been delivered since then was (bounded by the
    # commit interval), so the estimate errs low and the low-reservoir alarm comes early.
    # Commits are at most one interval apart, so the pump ran at most one interval past
    # this snapshot, or two when a decayed slot may have held a newer one.  A longer gap
    # (the clock kept running: a brown-out) is time the pump was off: not delivered, and
    # never made up (a catch-up would be a bolus nobody prescribed).
    window = pump.model["commit_interval_ms"] * (2 if pump.persist.corrupt else 1)
    gap = now - s["t_ms"] if now > s["t_ms"] else 0
    elapsed = min(gap, window)
    d = pump.doser
    d.set_reservoir(s["reservoir_nl"], s["concentration"])
    lost_q = s["pending_q"] + s["rate_q"] * elapsed
    lost_nl = 0
    if d.stroke_q:
        lost_strokes = lost_q // d.stroke_q
        lost_nl = lost_strokes * d.stroke_nl
        # Where the accumulator stood is not known either: it restarts empty, so no stroke
        # comes early (at most one stroke's worth is not given, never one too many).
        d.set_reservoir(d.reservoir_nl() - lost_nl, d.concentration_ug_per_ml)
    reservoir.delivered_base_nl += lost_nl
    reservoir.delivered_base_ng += lost_nl * d.concentration_ug_per_ml // 1000
    for alarm, raised_ms, silenced_ms in s["alarms"]:
        pump.alarms.restore(alarm, raised_ms + shift, silenced_ms + shift if silenced_ms else 0)
    if s["bolus"] is not None:
        states["therapy"] = boluses.interrupted_by_reset(s["bolus"][0])
    pump.replay_log(s.get("log_seq"))
    boluses.arm_lockout(now)
    therapy.select_basal(now)
    return lost_nl, gap - elapsed


# ----------------------------------------------------------------- the status report

def report(pump):
    # Everything an interrogation shows, in integer units (the telemetry INTERROGATE reply,
    # `vpump prog status`, the simulator's summaries).
    d = pump.doser
    now = pump.sched.now_ms()
    states = pump.machine.states
    reservoir = pump.reservoir
    boluses = pump.bolus
    reservoir_nl = d.reservoir_nl()
    if reservoir_nl < 0:
        reservoir_nl = 0
    daily_nl = pump.therapy.projected_daily_nl()
    m = pump.model
    left_nah = m["battery_capacity_nah"] - pump.battery.used_nah()
    alarm_nl = reservoir.low_reservoir_alarm_nl
    return {
        "therapy": states["therapy"],
        "reservoir": states["reservoir"],
        "battery": states["battery"],
        "therapy_on": pump.therapy.on,
        "program": pump.therapy.program,
        "basal_ug_per_day": pump.therapy.current_basal_ug_per_day,
        "reservoir_nl": reservoir_nl,
        "concentration_ug_per_ml": d.concentration_ug_per_ml,
        "low_reservoir_alarm_nl": alarm_nl,
        "hours_to_alarm": hours_until(reservoir_nl - alarm_nl, daily_nl),
        "hours_to_empty": hours_until(reservoir_nl, daily_nl),
        "battery_remaining_nah": left_nah if left_nah > 0 else 0,
        "battery_mv": pump.board.battery.read_mv(),
        "alarms": [alarms.NAMES[a] for a in sorted(pump.alarms.active)],
        "lockout_until_ms": boluses.lockout_until_ms if boluses.lockout_until_ms > now else 0,
        "patient_bolus": boluses.settings,
        "delivered_nl": reservoir.delivered_nl(),
        "delivered_ug": reservoir.delivered_ng() // 1000,
        "strokes": d.strokes,
        "now_ms": now,
        "wall_ms": now + pump.clock_offset_ms,
        "boot_count": pump.boot_count,
    }


def hours_until(volume_nl, daily_nl):
    # Hours until volume_nl is used at daily_nl: 0 if already there, -1 if never.
    if volume_nl <= 0:
        return 0
    if daily_nl <= 0:
        return -1
    return volume_nl * 24 // daily_nl
