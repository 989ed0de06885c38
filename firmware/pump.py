# The pump: the coordinator of the state table's regions, and the API a programmer (or the
# simulator, or the telemetry command handler) calls.
#
# What the pump does with every event is firmware/table.py.  The guards and actions it names
# live with the state they act on, one module per region (the table says "therapy.has_program",
# "bolus.start_patient_bolus", ...):
#   firmware/therapy.py    the program and its basal rate, start/stop, critical halts, the flow
#   firmware/bolus.py      every bolus (clinician, patient, bridge), the lockout, patient settings
#   firmware/reservoir.py  refill, the reservoir watch, the low-reservoir alarm, delivered totals
#   firmware/battery.py    charge accounting, elective replacement, end of service
#   firmware/snapshot.py   what a commit stores and a boot restores; the status report
# The Pump boots, takes requests (checked by the region they concern, dispatched to the table)
# and commits.
#
# Requests return OK (0) or a reason code (protocol/reasons.py); after a refusal, self.refusal
# holds (reason, field, value, lo, hi) where a field was at fault.  Everything that changes the
# pump is committed to storage before the request returns, through firmware/persist.py; on
# boot the pump resumes from the last committed state.  Time comes only from the HAL clock.

from protocol import reasons
from firmware import alarms, battery, bolus, eventlog, limits, reservoir, snapshot, table, therapy
from firmware.dosing import Doser, MS_PER_DAY
from firmware.errors import FirmwareError, PersistError
from firmware.machine import Machine
from firmware.persist import Persist
from firmware.scheduler import Scheduler

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

_OK = const(0)              # reasons.OK
_MS_PER_HOUR = const(3600000)
_MS_PER_MIN = const(60000)

# The pump model: hardware facts and UNSOURCED parameters with documented defaults
# (docs/clinical.md says where each comes from).
MODEL = dict(
    name="vpump-ib20",
    reservoir_capacity_nl=20000000,      # 20 mL (SynchroMed II 8637-20; Prometra 20 mL)
    stroke_nl=1000,                      # UNSOURCED
    min_rate_nl_per_day=6000,            # UNSOURCED: rate kept when therapy is halted
    max_rate_nl_per_hour=1000000,        # UNSOURCED: fastest bolus the motor can give
    tubing_nl=140000,                    # pump tubing after 2013 (FDA MedSun)
    catheter_nl=0,                       # per implant; bridge bolus = tubing + catheter
    battery_capacity_nah=1500000000,     # UNSOURCED, with the three below: ERI in ~6 years
    stroke_charge_nah=100,
    quiescent_na=20000,
    telemetry_session_nah=50000,
    eri_remaining_nah=60000000,          # ERI: about 3 months of charge left
    eos_remaining_nah=5000000,
    eri_mv=2800,                         # UNSOURCED
    eos_mv=2600,                         # UNSOURCED
    eos_after_eri_ms=90 * MS_PER_DAY,    # stops within 90 days of ERI (Medtronic)
    max_service_ms=7 * 365 * MS_PER_DAY,  # automatic shut-off at 7 years at most (Medtronic)
    critical_repeat_ms=10 * _MS_PER_MIN,      # UNSOURCED
    noncritical_repeat_ms=60 * _MS_PER_MIN,   # UNSOURCED
    max_silence_ms=24 * _MS_PER_HOUR,         # UNSOURCED
    commit_interval_ms=_MS_PER_HOUR,      # housekeeping and commit period: 1 min to 1 day
    low_reservoir_alarm_nl=2000000,      # 2 mL, the maker's recommendation (Neurosurgery 2004)
    storage_slot_bytes=2048,
)

_I32_MAX = const(0x7FFFFFFF)


def _i32(value):
    # A log arg: values past a signed 32-bit field (or not integers) are logged as -1 (unknown).
    return value if isinstance(value, int) and -_I32_MAX - 1 <= value <= _I32_MAX else -1


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
        self.log = eventlog.EventLog(self.wall_ms, self.persist)
        self.alarms = alarms.Alarms(self.sched, board.annunciator, self.log,
                             m["critical_repeat_ms"], m["noncritical_repeat_ms"])
        self.refusal = None
        self.dirty = False
        self._housekeeping_handle = None
        self.drug = "baclofen"
        self.limits = {}
        entry = limits.library_entry(self.drug)
        for key in limits.LIMIT_KEYS:
            self.limits[key] = entry[key]
        self.boot_count = 0
        # The regions, then the stroke engine that reports to two of them, then the table.
        self.therapy = therapy.Therapy(self)
        self.bolus = bolus.Boluses(self)
        self.reservoir = reservoir.Reservoir(self)
        self.battery = battery.Battery(self)
        self.doser = Doser(self.sched, board.motor, m["stroke_nl"], self.therapy.on_stall,
                           self.reservoir.on_watch)
        self.machine = Machine(self)

    # ----------------------------------------------------------------- boot and commit

    def boot(self):
        # Restore the last committed state (or start from factory defaults), then arm timers.
        # Returns True if a committed state was found.  Damaged storage never stops a boot
        # (docs/persistence.md): a decayed newest slot falls back to the older one, and with
        # no slot left after a commit was once made the pump starts from factory defaults in
        # the fault state (memory_fault alarm), so that nobody takes its empty program for
        # the prescribed one.
        persist = self.persist
        try:
            saved = persist.load(snapshot.valid)
        except PersistError:
            saved = None
        next_seq = self._log_next_seq()
        if saved is not None and saved.get("log_seq", 0) > next_seq:
            # The newest log records decayed: never hand out a seq the log already used.
            next_seq = saved["log_seq"]
        self.log.next_seq = next_seq
        lost_nl = 0
        off_ms = 0
        if saved is not None:
            lost_nl, off_ms = snapshot.restore(self, saved)
        self.boot_count += 1
        self.log.log(eventlog.BOOT, self.boot_count, 1 if saved is not None else 0, lost_nl)
        corrupt = persist.corrupt
        if corrupt or persist.log_corrupt:
            damaged_seq = 0
            for index, seq in corrupt:
                if seq > damaged_seq:
                    damaged_seq = seq
            self.log.log(eventlog.STORAGE_CORRUPT, len(corrupt), persist.log_corrupt,
                         _i32(persist.snapshot_seq), _i32(damaged_seq))
        if off_ms > 0:
            missed_nl = self.doser.quanta_to_nl(saved["rate_q"] * off_ms)
            self.log.log(eventlog.OUTAGE, _i32(off_ms // 1000), _i32(missed_nl))
        self._arm_housekeeping(self.sched.now_ms())
        self.therapy.apply_flows()
        self.reservoir.update_watch()
        if self.doser.concentration_ug_per_ml:
            # The low-reservoir alarm re-derived from the estimate, not taken on trust.
            self.machine.dispatch("reservoir_level")
        if saved is None and corrupt:
            self.machine.dispatch("fault")
        self.dirty = True
        self.commit()
        return saved is not None

    def replay_log(self, from_seq):
        # At boot (snapshot.restore): what the log holds after the restored snapshot (a newer
        # commit was torn or decayed).  Patient boluses still count for the lockout and the
        # 24 h maximum, and programs for the rate-increase limit, though the snapshot never
        # knew them.
        boluses = self.bolus
        s = boluses.settings
        try:
            records = self.persist.log_read(from_seq, 256) if from_seq else ()
        except PersistError:
            return
        for seq, t, code, args in records:
            t -= self.clock_offset_ms
            if code == eventlog.PROGRAM:
                self.therapy.record_dose(t, args[1])
            elif code == eventlog.BOLUS_START and args[0] == bolus.PATIENT and s:
                boluses.patient_bolus_times.append(t)
                t += s["lockout_ms"]
                if t > boluses.lockout_until_ms:
                    boluses.lockout_until_ms = t

    def _log_next_seq(self):
        try:
            span = self.persist.log_scan()
        except PersistError:
            return self.log.next_seq     # unreadable: appends fail and are counted
        return span[1] + 1 if span else 1

    def commit(self):
        # Store the state if anything changed since the last commit.  A failed write raises the
        # memory-fault alarm and halts therapy (the fault region of the table).
        if not self.dirty:
            return _OK
        self.dirty = False
        try:
            self.persist.commit(snapshot.take(self))
        except PersistError:
            self.log.log(eventlog.COMMIT_FAILED)
            self.alarms.raise_alarm(alarms.MEMORY_FAULT)
            self.machine.post("fault")
            return reasons.STORAGE_FAILED
        return _OK

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
        self.battery.check(due)
        self.bolus.prune_patient_boluses(due)
        self.dirty = True
        self.commit()

    # ----------------------------------------------------------------- the table's events

    def on_state_change(self, region, source, dest, trigger):
        states = table.STATES[region]
        self.log.log(eventlog.STATE, table.REGION_NAMES.index(region), states.index(source),
                     states.index(dest), table.TRIGGERS.index(trigger))
        if region == "therapy":
            self.therapy.apply_flows()
        # Every therapy change re-derives "empty" too (a cleared stall must not infuse from it).
        self.reservoir.update_watch()
        self.dirty = True

    def event(self, trigger, arg=None):
        # An event from inside the pump (a timer, the motor, housekeeping): dispatch, commit.
        outcome = self.machine.dispatch(trigger, arg)
        self.commit()
        return outcome

    def refuse(self, request, refusal):
        # Every refusal is logged (a refused patient bolus is part of the therapy record).
        self.refusal = refusal
        reason, field, value, lo, hi = refusal
        self.log.log(eventlog.REFUSED, reason, eventlog.REQUESTS.index(request), _i32(value),
                     _i32(hi))
        self.dirty = True
        self.commit()
        return reason

    def request(self, trigger, arg=None, bad=None):
        # A request the table decides: refused with `bad` (a region's check found a field out
        # of range), or by the table, or accepted and committed.
        if bad:
            return self.refuse(trigger, bad)
        self.refusal = None
        outcome = self.machine.dispatch(trigger, arg)
        if outcome != _OK:
            return self.refuse(trigger, (outcome, None, 0, 0, 0))
        return self.commit()

    def accepted(self):
        # A request that changed settings outside the table: commit it.
        self.refusal = None
        self.dirty = True
        return self.commit()

    # ----------------------------------------------------------------- the API

    def program_continuous(self, basal_ug_per_day, confirm=False):
        return self.therapy.program_continuous(basal_ug_per_day, confirm)

    def program_flex(self, steps, confirm=False):
        # steps: 7 lists (Monday first) of [start_minute, ug_per_day]; see limits.check_flex.
        return self.therapy.program_flex(steps, confirm)

    def start(self):
        return self.request("start")

    def stop(self):
        return self.request("stop")

    def clinician_bolus(self, dose_ug, duration_ms, confirm=False):
        return self.request("clinician_bolus", (dose_ug, duration_ms),
                            self.bolus.check_clinician_bolus(dose_ug, duration_ms, confirm))

    def set_patient_bolus(self, dose_ug, duration_ms, lockout_ms, max_per_24h, confirm=False):
        return self.bolus.set_patient_bolus(dose_ug, duration_ms, lockout_ms, max_per_24h,
                                            confirm)

    def disable_patient_bolus(self):
        return self.bolus.disable_patient_bolus()

    def patient_bolus(self):
        return self.request("patient_bolus")

    def refill(self, volume_nl, concentration_ug_per_ml, bridge=False):
        return self.reservoir.refill(volume_nl, concentration_ug_per_ml, bridge)

    def set_low_reservoir_alarm(self, volume_nl):
        return self.reservoir.set_low_reservoir_alarm(volume_nl)

    def set_limits(self, new_limits):
        merged = dict(self.limits)
        for key in sorted(new_limits):      # sorted: the same refusal on every interpreter
            if key not in limits.LIMIT_KEYS:
                return self.refuse("set_limits", (reasons.OUT_OF_RANGE, key, 0, 0, 0))
            merged[key] = new_limits[key]
        bad = limits.check_limits_table(merged)
        if bad:
            return self.refuse("set_limits", bad)
        entry = limits.library_entry(self.drug)
        for key in ("daily_dose_hard_ug", "bolus_hard_ug", "rate_increase_hard_pct"):
            if merged[key] > entry[key]:
                return self.refuse("set_limits", (reasons.OVER_HARD_LIMIT, key, merged[key], 1,
                                                  entry[key]))
        # Nor below what is in force: the program's daily dose, the patient bolus.
        p, s = self.therapy.program, self.bolus.settings
        for key, least in (("daily_dose_hard_ug", therapy.daily_ug(p) if p else 0),
                           ("bolus_hard_ug", s["dose_ug"] if s else 0)):
            if merged[key] < least:
                return self.refuse("set_limits", (reasons.OUT_OF_RANGE, key, merged[key], least,
                                                  entry[key]))
        self.limits = merged
        self.log.log(eventlog.LIMITS_SET, merged["daily_dose_soft_ug"], merged["daily_dose_hard_ug"],
                     merged["bolus_soft_ug"], merged["bolus_hard_ug"])
        return self.accepted()

    def clear_alarm(self):
        return self.request("clear_alarm")

    def silence_alarms(self, duration_ms):
        bad = limits.check_range("silence_ms", duration_ms, _MS_PER_MIN, self.model["max_silence_ms"])
        if bad:
            return self.refuse("silence_alarms", bad)
        self.alarms.silence(duration_ms)
        return self.accepted()

    def alarm_test(self):
        self.alarms.test_tones()
        return _OK

    def set_clock(self, wall_ms):
        bad = limits.check_range("wall_ms", wall_ms, 0, 2 ** 62)
        if bad:
            return self.refuse("set_clock", bad)
        now = self.sched.now_ms()
        delta = wall_ms - (now + self.clock_offset_ms)
        self.clock_offset_ms = wall_ms - now
        self.log.log(eventlog.CLOCK_SET, delta // 1000)
        self.therapy.select_basal(now)
        self.therapy.apply_flows()
        return self.accepted()

    def telemetry_session(self):
        # Each session costs radio charge (firmware battery accounting).
        self.battery.telemetry_session()

    def state(self, region="therapy"):
        return self.machine.states[region]

    def status(self):
        # Everything an interrogation shows, in integer units.
        return snapshot.report(self)
