# The pump: the state table's guards and actions, the therapy data they act on, and the API a
# programmer (or the simulator, or the telemetry command handler) calls.
#
# Requests return OK (0) or a reason code (protocol/reasons.py); after a refusal, self.refusal
# holds (reason, field, value, lo, hi) where a field was at fault.  Everything that changes the
# pump is committed to storage before the request returns, through firmware/persist.py; on
# boot the pump resumes from the last committed state.  Time comes only from the HAL clock.

from protocol import reasons
from firmware import eventlog, alarms, limits, table
from firmware.alarms import Alarms
from firmware.dosing import Doser, UG_RATE_Q, MS_PER_DAY
from firmware.errors import FirmwareError, PersistError
from firmware.eventlog import EventLog
from firmware.machine import Machine
from firmware.persist import Persist
from firmware.scheduler import Scheduler

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

OK = reasons.OK
_MS_PER_HOUR = const(3600000)
_MS_PER_MIN = const(60000)

# The pump model: hardware facts and UNSOURCED parameters with documented defaults
# (docs/clinical.md says where each comes from).
MODEL = {
    "name": "vpump-ib20",
    "reservoir_capacity_nl": 20000000,      # 20 mL (SynchroMed II 8637-20; Prometra 20 mL)
    "stroke_nl": 1000,                      # UNSOURCED
    "min_rate_nl_per_day": 6000,            # UNSOURCED: rate kept when therapy is halted
    "max_rate_nl_per_hour": 1000000,        # UNSOURCED: fastest bolus the motor can give
    "tubing_nl": 140000,                    # pump tubing after 2013 (FDA MedSun)
    "catheter_nl": 0,                       # per implant; bridge bolus = tubing + catheter
    "battery_capacity_nah": 1500000000,     # UNSOURCED, with the three below: ERI in ~6 years
    "stroke_charge_nah": 100,
    "quiescent_na": 20000,
    "telemetry_session_nah": 50000,
    "eri_remaining_nah": 60000000,          # ERI: about 3 months of charge left
    "eos_remaining_nah": 5000000,
    "eri_mv": 2800,                         # UNSOURCED
    "eos_mv": 2600,                         # UNSOURCED
    "eos_after_eri_ms": 90 * MS_PER_DAY,    # stops within 90 days of ERI (Medtronic)
    "max_service_ms": 7 * 365 * MS_PER_DAY,  # automatic shut-off at 7 years at most (Medtronic)
    "critical_repeat_ms": 10 * _MS_PER_MIN,      # UNSOURCED
    "noncritical_repeat_ms": 60 * _MS_PER_MIN,   # UNSOURCED
    "max_silence_ms": 24 * _MS_PER_HOUR,         # UNSOURCED
    "commit_interval_ms": _MS_PER_HOUR,      # housekeeping and commit period: 1 min to 1 day
    "low_reservoir_alarm_nl": 2000000,      # 2 mL, the maker's recommendation (Neurosurgery 2004)
    "storage_slot_bytes": 2048,
}

_THERAPY = "therapy"
_RESERVOIR = "reservoir"
_BATTERY = "battery"
_REGIONS = [r[0] for r in table.REGIONS]
_STATES = {}
for _region, _states, _initial, _rows in table.REGIONS:
    _STATES[_region] = list(_states)
_TRIGGERS = []
for _region, _states, _initial, _rows in table.REGIONS:
    for _row in table.expand(_rows):
        if _row[1] not in _TRIGGERS:
            _TRIGGERS.append(_row[1])
_DELIVERY_STATES = (table.INFUSING, table.BOLUS, table.LOCKOUT)
_BOLUS_CLINICIAN = const(0)
_BOLUS_PATIENT = const(1)
_BOLUS_BRIDGE = const(2)


# What a snapshot must look like for _restore (Pump._snapshot_ok): 0 an int, [shape] a list of
# that shape, (shape, ...) a list of exactly those; program, patient_bolus and bolus may be None.
_ROW2 = (0, 0)
_SNAPSHOT_SHAPE = {
    "t_ms": 0, "lockout_until_ms": 0, "low_reservoir_alarm_nl": 0, "reservoir_nl": 0,
    "concentration": 0, "pending_q": 0, "rate_q": 0, "clock_offset_ms": 0, "boot_count": 0,
    "battery_used_nah": 0, "service_start_ms": 0, "eri_ms": 0, "delivered_nl": 0,
    "delivered_ng": 0, "patient_bolus_times": [0], "dose_history": [_ROW2], "alarms": [(0, 0, 0)],
}
_I32_MAX = 0x7FFFFFFF


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


def _i32(value):
    # A log arg: values past a signed 32-bit field are logged as -1 (unknown).
    return value if -_I32_MAX - 1 <= value <= _I32_MAX else -1


def state_names():
    # For hosts decoding the log: region index -> state names, trigger index -> name.
    return _REGIONS, _STATES, _TRIGGERS


class Pump:
    def __init__(self, board, model=None, wall_ms=0):
        # wall_ms: the calendar time (ms since 1970, pump local time) the factory set, used
        # until a committed state or a programmer says otherwise.
        self.model = dict(MODEL)
        if model:
            for key in model:
                if key not in MODEL:
                    raise FirmwareError("pump model has no parameter %r; known: %s"
                                        % (key, ", ".join(sorted(MODEL))))
                self.model[key] = model[key]
        m = self.model
        self.board = board
        self.clock = board.clock
        self.sched = Scheduler(board.clock)
        self.persist = Persist(board.storage, slot_size=m["storage_slot_bytes"])
        self.clock_offset_ms = wall_ms - board.clock.now_ms()
        self.log = EventLog(self.wall_ms, self.persist)
        self.alarms = Alarms(self.sched, board.annunciator, self.log,
                             m["critical_repeat_ms"], m["noncritical_repeat_ms"])
        self.doser = Doser(self.sched, board.motor, m["stroke_nl"], self._on_stall,
                           self._on_reservoir_watch)
        self.machine = Machine(self)
        self.refusal = None
        self._dirty = False
        self._housekeeping_handle = None
        self._factory_defaults()

    # ----------------------------------------------------------------- state and persistence

    def _factory_defaults(self):
        m = self.model
        self.drug = "baclofen"
        self.limits = {}
        entry = limits.library_entry(self.drug)
        for key in limits.LIMIT_KEYS:
            self.limits[key] = entry[key]
        self.therapy_on = False
        self.program = None
        self.patient_bolus_settings = None
        self.patient_bolus_times = []
        self.lockout_until_ms = 0
        self.low_reservoir_alarm_nl = m["low_reservoir_alarm_nl"]
        self.dose_history = []
        self.boot_count = 0
        self.battery_base_nah = 0      # quiescent and telemetry charge, and strokes before boot
        self.service_start_ms = self.sched.now_ms()
        self.eri_ms = 0
        self._standing_rem = 0      # nA x ms not yet counted as a whole nAh
        self.delivered_base_nl = 0     # before this boot
        self.delivered_base_ng = 0     # before the current concentration (or this boot)
        self._dose_epoch_strokes = 0
        self.bolus = None       # [kind, dose_ug, volume_nl, start_ms, end_ms, rate_q, lump_q, handle]
        self.current_basal_ug_per_day = 0
        self._flex_handle = None
        self._lockout_handle = None

    def boot(self):
        # Restore the last committed state (or start from factory defaults), then arm timers.
        # Returns True if a committed state was found.  Damaged storage never stops a boot
        # (docs/persistence.md): a decayed newest slot falls back to the older one, and with
        # no slot left after a commit was once made the pump starts from factory defaults in
        # the fault state (memory_fault alarm), so that nobody takes its empty program for
        # the prescribed one.
        persist = self.persist
        try:
            snapshot = persist.load(self._snapshot_ok)
        except PersistError:
            snapshot = None
        next_seq = self._log_next_seq()
        if snapshot is not None and snapshot.get("log_seq", 0) > next_seq:
            # The newest log records decayed: never hand out a seq the log already used.
            next_seq = snapshot["log_seq"]
        self.log.next_seq = next_seq
        lost_nl = 0
        off_ms = 0
        if snapshot is not None:
            lost_nl, off_ms = self._restore(snapshot)
        self.boot_count += 1
        self.log.log(eventlog.BOOT, self.boot_count, 1 if snapshot is not None else 0, lost_nl)
        corrupt = persist.corrupt
        if corrupt or persist.log_corrupt:
            damaged_seq = 0
            for index, seq in corrupt:
                if seq > damaged_seq:
                    damaged_seq = seq
            self.log.log(eventlog.STORAGE_CORRUPT, len(corrupt), persist.log_corrupt,
                         _i32(persist.snapshot_seq), _i32(damaged_seq))
        if off_ms > 0:
            missed_nl = self.doser.quanta_to_nl(snapshot["rate_q"] * off_ms)
            self.log.log(eventlog.OUTAGE, _i32(off_ms // 1000), _i32(missed_nl))
        self._arm_housekeeping(self.sched.now_ms())
        self._apply_flows()
        self._update_reservoir_watch()
        if snapshot is None and corrupt:
            self.machine.dispatch("fault")
        self._dirty = True
        self._commit()
        return snapshot is not None

    def _log_next_seq(self):
        try:
            span = self.persist.log_scan()
        except PersistError:
            return self.log.next_seq     # unreadable: appends fail and are counted
        return span[1] + 1 if span else 1

    def _snapshot_ok(self, s):
        # Everything _restore reads, of the type it needs.  A snapshot damaged in a way the
        # CRC missed (odds 2**-16), or written by another firmware version, is refused rather
        # than crash the boot half-restored; persist.load() then tries the other slot.
        try:
            for key in _SNAPSHOT_SHAPE:
                if not _shaped(s[key], _SNAPSHOT_SHAPE[key]):
                    return False
            states = s["states"]
            program = s["program"]
            pb = s["patient_bolus"]
            bolus = s["bolus"]
            ok = s["v"] == 1 and s["therapy_on"] in (True, False) and \
                min(s["rate_q"], s["pending_q"], s["concentration"]) >= 0 and \
                _shaped(s.get("log_seq", 0), 0) and len(states) == len(_REGIONS) and \
                limits.library_entry(s["drug"]) is not None and \
                (bolus is None or _shaped(bolus, (0, 0, 0, 0, 0)) and 0 <= bolus[0] <= 2)
            for i in range(len(_REGIONS)):
                ok = ok and states[i] in _STATES[_REGIONS[i]]
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

    def _snapshot(self):
        d = self.doser
        now = self.sched.now_ms()
        bolus = self.bolus
        return {
            "v": 1,
            "t_ms": now,
            "states": [self.machine.states[r] for r in _REGIONS],
            "therapy_on": self.therapy_on,
            "drug": self.drug,
            "limits": self.limits,
            "program": self.program,
            "patient_bolus": self.patient_bolus_settings,
            "patient_bolus_times": self.patient_bolus_times,
            "lockout_until_ms": self.lockout_until_ms,
            "low_reservoir_alarm_nl": self.low_reservoir_alarm_nl,
            "dose_history": self.dose_history,
            "reservoir_nl": d.reservoir_nl(),
            "concentration": d.concentration_ug_per_ml,
            "pending_q": d.pending_quanta(),
            "rate_q": d.rate_q,
            "clock_offset_ms": self.clock_offset_ms,
            "boot_count": self.boot_count,
            "battery_used_nah": self.battery_used_nah(),
            "service_start_ms": self.service_start_ms,
            "eri_ms": self.eri_ms,
            "delivered_nl": self.delivered_nl(),
            "delivered_ng": self.delivered_ng(),
            "alarms": self.alarms.entries(),
            "bolus": None if bolus is None else bolus[:5],
            # The log's next seq: if its newest records decay, boot does not reuse their seqs.
            "log_seq": self.log.next_seq,
        }

    def _restore(self, s):
        # Returns (the volume assumed delivered but not committed, the least time the pump
        # cannot have been running: see docs/persistence.md).
        now = self.sched.now_ms()
        # A board's tick counter restarts at boot; shift stored times so none is in the future
        # by more than it was.  In the simulator time continues and the shift is 0.
        shift = now - s["t_ms"] if s["t_ms"] > now else 0
        for i in range(len(_REGIONS)):
            self.machine.states[_REGIONS[i]] = s["states"][i]
        self.therapy_on = s["therapy_on"]
        self.drug = s["drug"]
        self.limits = s["limits"]
        self.program = s["program"]
        self.patient_bolus_settings = s["patient_bolus"]
        self.patient_bolus_times = [t + shift for t in s["patient_bolus_times"]]
        self.lockout_until_ms = s["lockout_until_ms"] + shift if s["lockout_until_ms"] else 0
        self.low_reservoir_alarm_nl = s["low_reservoir_alarm_nl"]
        self.dose_history = [[t + shift, dose] for t, dose in s["dose_history"]]
        self.clock_offset_ms = s["clock_offset_ms"] - shift
        self.boot_count = s["boot_count"]
        self.battery_base_nah = s["battery_used_nah"]
        self.service_start_ms = s["service_start_ms"] + shift
        self.eri_ms = s["eri_ms"] + shift if s["eri_ms"] else 0
        self.delivered_base_nl = s["delivered_nl"]
        self.delivered_base_ng = s["delivered_ng"]
        # Strokes after the last commit are not known.  Assume the worst for the patient's
        # supply: everything that could have been delivered since then was (bounded by the
        # commit interval), so the estimate errs low and the low-reservoir alarm comes early.
        # Commits are at most one interval apart, so the pump ran at most one interval past
        # this snapshot, or two when a decayed slot may have held a newer one.  A longer gap
        # (the clock kept running: a brown-out) is time the pump was off: not delivered, and
        # never made up (a catch-up would be a bolus nobody prescribed).
        window = self.model["commit_interval_ms"] * (2 if self.persist.corrupt else 1)
        gap = now - s["t_ms"] if now > s["t_ms"] else 0
        elapsed = min(gap, window)
        d = self.doser
        d.set_reservoir(s["reservoir_nl"], s["concentration"])
        lost_q = s["pending_q"] + s["rate_q"] * elapsed
        lost_nl = 0
        if d.stroke_q:
            lost_strokes = lost_q // d.stroke_q
            lost_nl = lost_strokes * d.stroke_nl
            d.acc_q = lost_q - lost_strokes * d.stroke_q
            d.set_reservoir(d.reservoir_nl() - lost_nl, d.concentration_ug_per_ml)
        self.delivered_base_nl += lost_nl
        self.delivered_base_ng += lost_nl * d.concentration_ug_per_ml // 1000
        for alarm, raised_ms, silenced_ms in s["alarms"]:
            self.alarms.restore(alarm, raised_ms + shift, silenced_ms + shift if silenced_ms else 0)
        if s["bolus"] is not None:
            # A bolus cut by a reset is not resumed (how much of it went in is not known);
            # it is logged as interrupted and the clinician decides.
            kind = s["bolus"][0]
            self.log.log(eventlog.BOLUS_END, kind, 0, 0)
            dest = self._after_bolus_state()
            self.machine.states[_THERAPY] = dest
        if self.lockout_until_ms > now:
            self._lockout_handle = self.sched.at(self.lockout_until_ms, self._lockout_timer)
        elif self.machine.states[_THERAPY] == table.LOCKOUT:
            self.machine.states[_THERAPY] = table.INFUSING
        self._select_basal(now)
        return lost_nl, gap - elapsed

    def _commit(self):
        if not self._dirty:
            return OK
        self._dirty = False
        try:
            self.persist.commit(self._snapshot())
        except PersistError:
            self.log.log(eventlog.COMMIT_FAILED)
            self.alarms.raise_alarm(alarms.MEMORY_FAULT)
            self.machine.post("fault")
            return reasons.STORAGE_FAILED
        return OK

    # ----------------------------------------------------------------- time

    def now_ms(self):
        return self.sched.now_ms()

    def wall_ms(self):
        return self.sched.now_ms() + self.clock_offset_ms

    def _arm_housekeeping(self, from_ms):
        self.sched.cancel(self._housekeeping_handle)
        self._housekeeping_handle = self.sched.at(from_ms + self.model["commit_interval_ms"],
                                                  self._housekeeping)

    def _housekeeping(self):
        # Every commit_interval_ms (hourly by default): battery accounting, patient-bolus
        # history, commit.  This regular read of the clock also keeps tick-wrap unwrapping safe
        # (hal.base.Clock), which is why the interval is at most a day.
        due = self.sched.due_ms
        self._arm_housekeeping(due)
        self._check_battery(due)
        self._prune_patient_boluses(due)
        self._dirty = True
        self._commit()

    # ----------------------------------------------------------------- guards (table)

    def has_program(self, arg):
        return self.program is not None

    def therapy_is_on(self, arg):
        return self.therapy_on

    def patient_bolus_allowed(self, arg):
        return self._patient_bolus_refusal() == OK

    def lockout_running(self, arg):
        return self.lockout_until_ms > self.sched.now_ms()

    def bridge_requested(self, arg):
        return bool(arg and arg.get("bridge")) and self.program is not None and \
            self._bridge_volume_nl() > 0

    def below_low_reservoir(self, arg):
        return self.doser.reservoir_nl() <= self.low_reservoir_alarm_nl

    def above_low_reservoir(self, arg):
        return self.doser.reservoir_nl() > self.low_reservoir_alarm_nl

    def battery_at_eri(self, arg):
        return self._battery_state(self.sched.now_ms()) >= 1

    # ----------------------------------------------------------------- actions (table)

    def start_basal(self, arg):
        self.therapy_on = True
        self._select_basal(self.sched.now_ms())
        self._dirty = True

    def stop_therapy(self, arg):
        self.therapy_on = False
        self._end_bolus(False)
        self._dirty = True

    def apply_program_and_start(self, arg):
        self.therapy_on = True
        return self.apply_program(arg)

    def apply_program(self, arg):
        program, daily_ug, confirmed = arg
        now = self.sched.now_ms()
        self.program = program
        self._record_dose(now, daily_ug)
        self._select_basal(now)
        self._apply_flows()
        self.log.log(eventlog.PROGRAM, 0 if program["mode"] == "continuous" else 1, daily_ug,
                     1 if confirmed else 0)
        self._dirty = True

    def start_clinician_bolus(self, arg):
        dose_ug, duration_ms = arg
        self._start_bolus(_BOLUS_CLINICIAN, dose_ug, self.doser.dose_quanta(dose_ug), duration_ms)

    def start_patient_bolus(self, arg):
        s = self.patient_bolus_settings
        now = self.sched.now_ms()
        self.patient_bolus_times.append(now)
        self.lockout_until_ms = now + s["lockout_ms"]
        self.sched.cancel(self._lockout_handle)
        self._lockout_handle = self.sched.at(self.lockout_until_ms, self._lockout_timer)
        self._start_bolus(_BOLUS_PATIENT, s["dose_ug"], self.doser.dose_quanta(s["dose_ug"]),
                          s["duration_ms"])

    def refuse_patient_bolus(self, arg):
        reason = self._patient_bolus_refusal()
        if reason == OK:
            reason = reasons.STATE_DOES_NOT_ALLOW
        return reason

    def end_bolus(self, arg):
        self._end_bolus(True)

    def end_lockout(self, arg):
        self._dirty = True

    def accept_refill(self, arg):
        d = self.doser
        before = d.reservoir_nl()
        volume_nl = arg["volume_nl"]
        concentration = arg["concentration_ug_per_ml"]
        self._fold_dose()
        d.set_reservoir(volume_nl, concentration)
        self.log.log(eventlog.REFILL, volume_nl // 1000, concentration,
                     1 if arg.get("bridge") else 0, max(0, before) // 1000)
        self._select_basal(self.sched.now_ms())
        self._apply_flows()
        self._update_reservoir_watch()
        self.machine.post("reservoir_level")
        self._dirty = True

    def refill_with_bridge(self, arg):
        # The old drug still fills the tubing and catheter: deliver that volume at the volume
        # rate the program had with the old concentration, then the new drug takes over.
        old_concentration = self.doser.concentration_ug_per_ml
        self.accept_refill(arg)
        volume_nl = self._bridge_volume_nl()
        daily_ug = self.current_basal_ug_per_day or 1
        old = old_concentration or arg["concentration_ug_per_ml"]
        duration_ms = volume_nl * old * MS_PER_DAY // (daily_ug * 1000000)
        if duration_ms < _MS_PER_MIN:
            duration_ms = _MS_PER_MIN
        dose_ug = volume_nl * old // 1000000
        self._start_bolus(_BOLUS_BRIDGE, dose_ug, self.doser.volume_quanta(volume_nl), duration_ms)

    def refill_after_empty(self, arg):
        self.accept_refill(arg)
        self.alarms.clear(alarms.RESERVOIR_EMPTY)

    def bridge_after_empty(self, arg):
        self.refill_with_bridge(arg)
        self.alarms.clear(alarms.RESERVOIR_EMPTY)

    def halt_reservoir_empty(self, arg):
        self._end_bolus(False)
        self.alarms.raise_alarm(alarms.RESERVOIR_EMPTY)
        self._dirty = True

    def halt_motor_stall(self, arg):
        self._end_bolus(False)
        self.alarms.raise_alarm(alarms.MOTOR_STALL)
        self._dirty = True

    def halt_end_of_service(self, arg):
        self._end_bolus(False)
        self.alarms.raise_alarm(alarms.END_OF_SERVICE)
        self._dirty = True

    def halt_fault(self, arg):
        self._end_bolus(False)
        self.alarms.raise_alarm(alarms.MEMORY_FAULT)
        self._dirty = True

    def clear_motor_stall(self, arg):
        # The stroke the stall left owed is tried first: a motor that still does not turn (a
        # rotor still held after an MRI) refuses the clear, the alarm stays, and the clinician
        # is told why instead of seeing the alarm come back at once.
        if self.doser.retry_owed() is False:
            return reasons.MOTOR_STILL_STALLED
        self.alarms.clear(alarms.MOTOR_STALL)
        self._dirty = True

    def clear_fault(self, arg):
        self.alarms.clear(alarms.MEMORY_FAULT)
        self.therapy_on = False
        self._dirty = True

    def raise_low_reservoir(self, arg):
        self.alarms.raise_alarm(alarms.LOW_RESERVOIR)
        self._dirty = True

    def clear_low_reservoir(self, arg):
        self.alarms.clear(alarms.LOW_RESERVOIR)
        self._dirty = True

    def raise_elective_replacement(self, arg):
        self.eri_ms = self.sched.now_ms()
        self.alarms.raise_alarm(alarms.ELECTIVE_REPLACEMENT)
        self._dirty = True

    def on_state_change(self, region, source, dest, trigger):
        self.log.log(eventlog.STATE, _REGIONS.index(region), _STATES[region].index(source),
                     _STATES[region].index(dest), _TRIGGERS.index(trigger))
        if region == _THERAPY:
            self._apply_flows()
        elif region == _RESERVOIR:
            self._update_reservoir_watch()
        self._dirty = True

    # ----------------------------------------------------------------- delivery internals

    def _select_basal(self, now):
        # The basal rate in effect now (flex: the step of this weekday and minute), and the
        # timer for the next flex step.
        program = self.program
        self.sched.cancel(self._flex_handle)
        self._flex_handle = None
        if program is None:
            self.current_basal_ug_per_day = 0
            return
        if program["mode"] == "continuous":
            self.current_basal_ug_per_day = program["basal_ug_per_day"]
            return
        wall = now + self.clock_offset_ms
        day_index = wall // MS_PER_DAY
        weekday = (day_index + 3) % 7           # 1970-01-01 was a Thursday; Monday is 0
        minute = (wall % MS_PER_DAY) // _MS_PER_MIN
        steps = program["steps"][weekday]
        rate = steps[0][1]
        next_start = None
        for start, ug in steps:
            if start <= minute:
                rate = ug
            else:
                next_start = start
                break
        if next_start is None:
            boundary = (day_index + 1) * MS_PER_DAY       # next midnight: next day's first step
        else:
            boundary = day_index * MS_PER_DAY + next_start * _MS_PER_MIN
        self.current_basal_ug_per_day = rate
        self._flex_handle = self.sched.at(boundary - self.clock_offset_ms, self._flex_timer)

    def _flex_timer(self):
        before = self.current_basal_ug_per_day
        self._select_basal(self.sched.due_ms)
        if self.current_basal_ug_per_day != before:
            self.log.log(eventlog.FLEX_STEP, self.current_basal_ug_per_day)
            self._apply_flows()

    def _apply_flows(self):
        state = self.machine.states[_THERAPY]
        d = self.doser
        rate = 0
        bolus = self.bolus
        if state in _DELIVERY_STATES:
            if self.therapy_on and not (bolus is not None and bolus[0] == _BOLUS_BRIDGE):
                rate = self.current_basal_ug_per_day * UG_RATE_Q
            if bolus is not None:
                rate += bolus[5]
        elif state == table.RESERVOIR_EMPTY:
            rate = d.volume_rate_q(self.model["min_rate_nl_per_day"])
        d.set_rate(rate)

    def _start_bolus(self, kind, dose_ug, quanta, duration_ms):
        now = self.sched.now_ms()
        rate_q = quanta // duration_ms
        lump_q = quanta - rate_q * duration_ms
        volume_nl = self.doser.quanta_to_nl(quanta)
        handle = self.sched.at(now + duration_ms, self._bolus_timer)
        self.bolus = [kind, dose_ug, volume_nl, now, now + duration_ms, rate_q, lump_q, handle]
        self.log.log(eventlog.BOLUS_START, kind, dose_ug, volume_nl, duration_ms // 1000)
        self._apply_flows()
        self._dirty = True

    def _end_bolus(self, completed):
        bolus = self.bolus
        if bolus is None:
            return
        self.bolus = None
        self.sched.cancel(bolus[7])
        now = self.sched.now_ms()
        if completed:
            self.doser.add_quanta(bolus[6])
            delivered_nl = bolus[2]
        else:
            delivered_nl = self.doser.quanta_to_nl(bolus[5] * (now - bolus[3]))
        self.log.log(eventlog.BOLUS_END, bolus[0], delivered_nl, 1 if completed else 0)
        self._apply_flows()
        self._dirty = True

    def _after_bolus_state(self):
        if self.lockout_until_ms > self.sched.now_ms():
            return table.LOCKOUT
        return table.INFUSING if self.therapy_on else table.IDLE

    def _bolus_timer(self):
        self._event("bolus_done")

    def _lockout_timer(self):
        self._lockout_handle = None
        self._event("lockout_done")

    def _bridge_volume_nl(self):
        return self.model["tubing_nl"] + self.model["catheter_nl"]

    def _patient_bolus_refusal(self):
        s = self.patient_bolus_settings
        if s is None:
            return reasons.PATIENT_BOLUS_DISABLED
        now = self.sched.now_ms()
        if self.lockout_until_ms > now:
            return reasons.LOCKOUT_ACTIVE
        self._prune_patient_boluses(now)
        if len(self.patient_bolus_times) >= s["max_per_24h"]:
            return reasons.MAX_ACTIVATIONS
        return OK

    def _prune_patient_boluses(self, now):
        times = self.patient_bolus_times
        while times and times[0] <= now - MS_PER_DAY:
            times.pop(0)

    def _record_dose(self, now, daily_ug):
        # Rolling 24 h history of programmed daily doses, for the rate-change limit.
        history = self.dose_history
        history.append([now, daily_ug])
        while len(history) > 1 and history[1][0] <= now - MS_PER_DAY:
            history.pop(0)
        if len(history) > 16:
            # Keep the lowest of the oldest two: the limit stays conservative.
            if history[0][1] < history[1][1]:
                history[1][1] = history[0][1]
            history.pop(0)

    def _dose_baseline(self, now):
        history = self.dose_history
        if not history:
            return None
        lowest = None
        for i in range(len(history)):
            t, dose = history[i]
            later = history[i + 1][0] if i + 1 < len(history) else now + 1
            if later > now - MS_PER_DAY and (lowest is None or dose < lowest):
                lowest = dose
        return lowest

    # ----------------------------------------------------------------- reservoir

    def _update_reservoir_watch(self):
        d = self.doser
        level = d.reservoir_nl()
        if self.machine.states[_RESERVOIR] == table.RESERVOIR_OK and level > self.low_reservoir_alarm_nl:
            d.watch_level(self.low_reservoir_alarm_nl)
        elif level >= d.stroke_nl:
            d.watch_level(d.stroke_nl - 1)
        else:
            d.watch_level(None)

    def _on_reservoir_watch(self):
        d = self.doser
        self.machine.post("reservoir_level")
        if d.reservoir_nl() < d.stroke_nl:
            self.machine.post("reservoir_empty")
        self._update_reservoir_watch()
        self._commit()

    def _on_stall(self):
        self._event("motor_stall")

    # ----------------------------------------------------------------- battery

    def battery_used_nah(self):
        return self.battery_base_nah + self.doser.strokes * self.model["stroke_charge_nah"]

    def _battery_state(self, now):
        # 0 ok, 1 elective replacement, 2 end of service.
        m = self.model
        left = m["battery_capacity_nah"] - self.battery_used_nah()
        mv = self.board.battery.read_mv()
        if left <= m["eos_remaining_nah"] or mv <= m["eos_mv"] or \
                now - self.service_start_ms >= m["max_service_ms"] or \
                (self.eri_ms and now - self.eri_ms >= m["eos_after_eri_ms"]):
            return 2
        if left <= m["eri_remaining_nah"] or mv <= m["eri_mv"]:
            return 1
        return 0

    def days_to_replacement(self):
        # Days until the elective replacement indicator at today's use (program plus every
        # allowed patient bolus, as the reservoir projection): 0 once reached, -1 if no use.
        m = self.model
        if self.machine.states[_BATTERY] != table.BATTERY_OK:
            return 0
        left = m["battery_capacity_nah"] - self.battery_used_nah() - m["eri_remaining_nah"]
        if left <= 0:
            return 0
        strokes_per_day = self._projected_daily_nl() // self.doser.stroke_nl
        daily_nah = m["quiescent_na"] * 24 + strokes_per_day * m["stroke_charge_nah"]
        if daily_nah <= 0:
            return -1
        return left // daily_nah

    def _check_battery(self, now):
        # The standing current over one housekeeping period (nA x ms -> nAh), remainder kept.
        charge = self.model["quiescent_na"] * self.model["commit_interval_ms"] + self._standing_rem
        self.battery_base_nah += charge // _MS_PER_HOUR
        self._standing_rem = charge % _MS_PER_HOUR
        state = self._battery_state(now)
        if state >= 1 and self.machine.states[_BATTERY] == table.BATTERY_OK:
            self._event("battery_level")
        if state == 2 and self.machine.states[_THERAPY] != table.BATTERY_DEPLETED:
            self._event("battery_eos")

    # ----------------------------------------------------------------- delivery counters

    def delivered_nl(self):
        return self.delivered_base_nl + self.doser.strokes * self.doser.stroke_nl

    def delivered_ng(self):
        d = self.doser
        strokes = d.strokes - self._dose_epoch_strokes
        return self.delivered_base_ng + strokes * d.stroke_nl * d.concentration_ug_per_ml // 1000

    def _fold_dose(self):
        # Before the concentration changes, bank the dose delivered at the old one.
        self.delivered_base_ng = self.delivered_ng()
        self._dose_epoch_strokes = self.doser.strokes

    # ----------------------------------------------------------------- dispatch helpers

    def _event(self, trigger, arg=None):
        outcome = self.machine.dispatch(trigger, arg)
        self._commit()
        return outcome

    def _refuse(self, request, refusal):
        # Every refusal is logged (a refused patient bolus is part of the therapy record).
        self.refusal = refusal
        reason, field, value, lo, hi = refusal
        if not isinstance(value, int) or not -2 ** 31 <= value < 2 ** 31:
            value = -1
        if not isinstance(hi, int) or not -2 ** 31 <= hi < 2 ** 31:
            hi = -1
        self.log.log(eventlog.REFUSED, reason, eventlog.REQUESTS.index(request), value, hi)
        self._dirty = True
        self._commit()
        return reason

    def _request(self, trigger, arg=None):
        self.refusal = None
        outcome = self.machine.dispatch(trigger, arg)
        if outcome != OK:
            return self._refuse(trigger, (outcome, None, 0, 0, 0))
        return self._commit()

    # ----------------------------------------------------------------- the API

    def program_continuous(self, basal_ug_per_day, confirm=False):
        bad = limits.check_range("basal_ug_per_day", basal_ug_per_day, 0, limits.MAX_UG)
        if bad:
            return self._refuse("program", bad)
        program = {"mode": "continuous", "basal_ug_per_day": basal_ug_per_day}
        return self._program(program, basal_ug_per_day, confirm)

    def program_flex(self, steps, confirm=False):
        # steps: 7 lists (Monday first) of [start_minute, ug_per_day]; see limits.check_flex.
        bad = limits.check_flex(steps)
        if bad:
            return self._refuse("program", bad)
        daily_ug = 0
        for day in steps:
            dose = limits.flex_daily_ug(day)
            if dose > daily_ug:
                daily_ug = dose
        program = {"mode": "flex", "steps": [[[s[0], s[1]] for s in day] for day in steps]}
        return self._program(program, daily_ug, confirm)

    def _program(self, program, daily_ug, confirm):
        bad = limits.check_daily(self.limits, daily_ug, self._dose_baseline(self.sched.now_ms()),
                                 confirm)
        if bad:
            return self._refuse("program", bad)
        return self._request("program", (program, daily_ug, confirm))

    def start(self):
        return self._request("start")

    def stop(self):
        return self._request("stop")

    def clinician_bolus(self, dose_ug, duration_ms, confirm=False):
        bad = limits.check_bolus(self.limits, "bolus_dose_ug", dose_ug, confirm) or \
            self._check_bolus_duration(self.doser.dose_quanta(dose_ug) if isinstance(dose_ug, int) else 0,
                                       duration_ms)
        if bad:
            return self._refuse("clinician_bolus", bad)
        return self._request("clinician_bolus", (dose_ug, duration_ms))

    def _check_bolus_duration(self, quanta, duration_ms):
        # The motor has a top speed: a bolus may not need more than max_rate_nl_per_hour.
        bad = limits.check_range("bolus_duration_ms", duration_ms, _MS_PER_MIN, MS_PER_DAY)
        if bad or not self.doser.concentration_ug_per_ml:
            return bad
        volume_nl = self.doser.quanta_to_nl(quanta)
        shortest = volume_nl * _MS_PER_HOUR // self.model["max_rate_nl_per_hour"]
        if duration_ms < shortest:
            return (reasons.OUT_OF_RANGE, "bolus_duration_ms", duration_ms, shortest, MS_PER_DAY)
        return None

    def set_patient_bolus(self, dose_ug, duration_ms, lockout_ms, max_per_24h, confirm=False):
        bad = limits.check_bolus(self.limits, "patient_bolus_dose_ug", dose_ug, confirm) or \
            limits.check_range("patient_bolus_duration_ms", duration_ms, _MS_PER_MIN, _MS_PER_HOUR) or \
            limits.check_range("lockout_ms", lockout_ms, limits.MIN_LOCKOUT_MS, limits.MAX_LOCKOUT_MS) or \
            limits.check_range("max_per_24h", max_per_24h, 1, 24)
        if bad:
            return self._refuse("set_patient_bolus", bad)
        self.refusal = None
        self.patient_bolus_settings = {"dose_ug": dose_ug, "duration_ms": duration_ms,
                                       "lockout_ms": lockout_ms, "max_per_24h": max_per_24h}
        self.log.log(eventlog.PATIENT_BOLUS_SET, dose_ug, duration_ms // 1000,
                     lockout_ms // _MS_PER_MIN, max_per_24h)
        self._dirty = True
        return self._commit()

    def disable_patient_bolus(self):
        self.refusal = None
        self.patient_bolus_settings = None
        self.log.log(eventlog.PATIENT_BOLUS_SET, 0, 0, 0, 0)
        self._dirty = True
        return self._commit()

    def patient_bolus(self):
        return self._request("patient_bolus")

    def refill(self, volume_nl, concentration_ug_per_ml, bridge=False):
        entry = limits.library_entry(self.drug)
        allowed = entry["concentrations_ug_per_ml"]
        if concentration_ug_per_ml not in allowed:
            return self._refuse("refill", (reasons.OUT_OF_RANGE, "concentration_ug_per_ml",
                                 concentration_ug_per_ml, allowed[0], allowed[-1]))
        bad = limits.check_range("volume_nl", volume_nl, 0, self.model["reservoir_capacity_nl"])
        if bad:
            return self._refuse("refill", bad)
        return self._request("refill", {"volume_nl": volume_nl,
                                        "concentration_ug_per_ml": concentration_ug_per_ml,
                                        "bridge": bool(bridge)})

    def set_low_reservoir_alarm(self, volume_nl):
        bad = limits.check_range("low_reservoir_alarm_nl", volume_nl, 0,
                                 self.model["reservoir_capacity_nl"])
        if bad:
            return self._refuse("set_low_reservoir_alarm", bad)
        self.refusal = None
        self.low_reservoir_alarm_nl = volume_nl
        self.log.log(eventlog.ALARM_VOLUME_SET, volume_nl // 1000)
        self._update_reservoir_watch()
        self.machine.dispatch("reservoir_level")
        self._dirty = True
        return self._commit()

    def set_limits(self, new_limits):
        merged = dict(self.limits)
        for key in sorted(new_limits):      # sorted: the same refusal on every interpreter
            if key not in limits.LIMIT_KEYS:
                return self._refuse("set_limits", (reasons.OUT_OF_RANGE, key, 0, 0, 0))
            merged[key] = new_limits[key]
        bad = limits.check_limits_table(merged)
        if bad:
            return self._refuse("set_limits", bad)
        entry = limits.library_entry(self.drug)
        for key in ("daily_dose_hard_ug", "bolus_hard_ug", "rate_increase_hard_pct"):
            if merged[key] > entry[key]:
                return self._refuse("set_limits", (reasons.OVER_HARD_LIMIT, key, merged[key], 1, entry[key]))
        self.refusal = None
        self.limits = merged
        self.log.log(eventlog.LIMITS_SET, merged["daily_dose_soft_ug"], merged["daily_dose_hard_ug"],
                     merged["bolus_soft_ug"], merged["bolus_hard_ug"])
        self._dirty = True
        return self._commit()

    def clear_alarm(self):
        return self._request("clear_alarm")

    def silence_alarms(self, duration_ms):
        bad = limits.check_range("silence_ms", duration_ms, _MS_PER_MIN, self.model["max_silence_ms"])
        if bad:
            return self._refuse("silence_alarms", bad)
        self.refusal = None
        self.alarms.silence(duration_ms)
        self._dirty = True
        return self._commit()

    def alarm_test(self):
        self.alarms.test_tones()
        return OK

    def set_clock(self, wall_ms):
        bad = limits.check_range("wall_ms", wall_ms, 0, 2 ** 62)
        if bad:
            return self._refuse("set_clock", bad)
        self.refusal = None
        now = self.sched.now_ms()
        delta = wall_ms - (now + self.clock_offset_ms)
        self.clock_offset_ms = wall_ms - now
        self.log.log(eventlog.CLOCK_SET, delta // 1000)
        self._select_basal(now)
        self._apply_flows()
        self._dirty = True
        return self._commit()

    def telemetry_session(self):
        # Each session costs radio charge (firmware battery accounting).
        self.battery_base_nah += self.model["telemetry_session_nah"]

    def state(self, region=_THERAPY):
        return self.machine.states[region]

    def status(self):
        # Everything an interrogation shows, in integer units.
        d = self.doser
        now = self.sched.now_ms()
        reservoir_nl = d.reservoir_nl()
        if reservoir_nl < 0:
            reservoir_nl = 0
        daily_nl = self._projected_daily_nl()
        m = self.model
        left_nah = m["battery_capacity_nah"] - self.battery_used_nah()
        return {
            "therapy": self.machine.states[_THERAPY],
            "reservoir": self.machine.states[_RESERVOIR],
            "battery": self.machine.states[_BATTERY],
            "therapy_on": self.therapy_on,
            "program": self.program,
            "basal_ug_per_day": self.current_basal_ug_per_day,
            "reservoir_nl": reservoir_nl,
            "concentration_ug_per_ml": d.concentration_ug_per_ml,
            "low_reservoir_alarm_nl": self.low_reservoir_alarm_nl,
            "hours_to_alarm": self._hours_until(reservoir_nl - self.low_reservoir_alarm_nl, daily_nl),
            "hours_to_empty": self._hours_until(reservoir_nl, daily_nl),
            "battery_remaining_nah": left_nah if left_nah > 0 else 0,
            "battery_mv": self.board.battery.read_mv(),
            "alarms": [alarms.NAMES[a] for a in sorted(self.alarms.active)],
            "lockout_until_ms": self.lockout_until_ms if self.lockout_until_ms > now else 0,
            "patient_bolus": self.patient_bolus_settings,
            "delivered_nl": self.delivered_nl(),
            "delivered_ug": self.delivered_ng() // 1000,
            "strokes": d.strokes,
            "now_ms": now,
            "wall_ms": now + self.clock_offset_ms,
            "boot_count": self.boot_count,
        }

    def _projected_daily_nl(self):
        # Worst case, as Prometra projects it: the program plus every allowed patient bolus.
        c = self.doser.concentration_ug_per_ml
        if not c or not self.therapy_on or self.program is None:
            return 0
        program = self.program
        if program["mode"] == "continuous":
            daily_ug = program["basal_ug_per_day"]
        else:
            total = 0
            for day in program["steps"]:
                total += limits.flex_daily_ug(day)
            daily_ug = total // 7
        s = self.patient_bolus_settings
        if s is not None:
            daily_ug += s["dose_ug"] * s["max_per_24h"]
        return daily_ug * 1000000 // c

    def _hours_until(self, volume_nl, daily_nl):
        if volume_nl <= 0:
            return 0
        if daily_nl <= 0:
            return -1
        return volume_nl * 24 // daily_nl
