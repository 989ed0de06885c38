# Boluses: every way a bolus starts or stops, the patient's lockout and the patient-bolus
# settings.  The table's "bolus.*" guards and actions.
#
# A bolus starts only through _start, from exactly three places:
#   start_clinician      a clinician's request (table: clinician_bolus)
#   start_patient        the patient's request, when patient_may_start (table: patient_bolus)
#   refill_with_bridge   a refill with bridge=True: the old drug in tubing and catheter is
#                        delivered at the program's rate (table: refill; bridge_after_empty)
# and stops only through _end, in exactly three ways:
#   end                  completed: its timer posts bolus_done (the lump remainder is added)
#   cut                  cut short: a stop request or a critical halt (firmware/therapy.py stop
#                        and _halt); the part delivered is logged
#   interrupted_by_reset a reset during a bolus: never resumed, logged as interrupted, at boot
#                        (firmware/snapshot.py restore)
# While a bolus runs, its rate adds to the basal (Therapy.apply_flows; a bridge replaces it).

from protocol import reasons
from firmware import alarms, eventlog, limits, table

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

OK = reasons.OK
_MS_PER_DAY = const(86400000)
_MS_PER_HOUR = const(3600000)
_MS_PER_MIN = const(60000)

# Bolus kinds, as logged (BOLUS_START / BOLUS_END) and stored in the snapshot.
CLINICIAN = const(0)
PATIENT = const(1)
BRIDGE = const(2)


class Boluses:
    def __init__(self, pump):
        self.pump = pump
        # The running bolus: [kind, dose_ug, volume_nl, start_ms, end_ms, rate_q, lump_q, handle].
        self.current = None
        self.lockout_until_ms = 0
        self.settings = None            # patient bolus: dose_ug, duration_ms, lockout_ms, max_per_24h
        self.patient_bolus_times = []   # starts in the last 24 h, oldest first
        self._lockout_handle = None

    # ----------------------------------------------------------------- requests

    def check_clinician_bolus(self, dose_ug, duration_ms, confirm):
        # The refusal for a clinician bolus's fields, or None (the table decides the rest).
        p = self.pump
        return limits.check_bolus(p.limits, "bolus_dose_ug", dose_ug, confirm) or \
            self._check_duration(p.doser.dose_quanta(dose_ug) if isinstance(dose_ug, int) else 0,
                                 duration_ms)

    def _check_duration(self, quanta, duration_ms):
        # The motor has a top speed: a bolus may not need more than max_rate_nl_per_hour.
        bad = limits.check_range("bolus_duration_ms", duration_ms, _MS_PER_MIN, _MS_PER_DAY)
        d = self.pump.doser
        if bad or not d.concentration_ug_per_ml:
            return bad
        volume_nl = d.quanta_to_nl(quanta)
        shortest = volume_nl * _MS_PER_HOUR // self.pump.model["max_rate_nl_per_hour"]
        if duration_ms < shortest:
            return (reasons.OUT_OF_RANGE, "bolus_duration_ms", duration_ms, shortest, _MS_PER_DAY)
        return None

    def set_patient_bolus(self, dose_ug, duration_ms, lockout_ms, max_per_24h, confirm):
        p = self.pump
        bad = limits.check_bolus(p.limits, "patient_bolus_dose_ug", dose_ug, confirm) or \
            limits.check_range("patient_bolus_duration_ms", duration_ms, _MS_PER_MIN, _MS_PER_HOUR) or \
            limits.check_range("lockout_ms", lockout_ms, limits.MIN_LOCKOUT_MS, limits.MAX_LOCKOUT_MS) or \
            limits.check_range("max_per_24h", max_per_24h, 1, 24)
        if bad:
            return p.refuse("set_patient_bolus", bad)
        self.settings = {"dose_ug": dose_ug, "duration_ms": duration_ms,
                         "lockout_ms": lockout_ms, "max_per_24h": max_per_24h}
        p.log.log(eventlog.PATIENT_BOLUS_SET, dose_ug, duration_ms // 1000,
                  lockout_ms // _MS_PER_MIN, max_per_24h)
        return p.accepted()

    def disable_patient_bolus(self):
        self.settings = None
        self.pump.log.log(eventlog.PATIENT_BOLUS_SET, 0, 0, 0, 0)
        return self.pump.accepted()

    # ----------------------------------------------------------------- guards

    def patient_may_start(self, arg):
        return self._patient_bolus_refusal() == OK

    def lockout_running(self, arg):
        # Only while therapy is on: a stopped pump never goes into a lockout (and from there
        # into "infusing"); the lockout time still refuses presses after a restart.
        return self.pump.therapy.on and self.lockout_until_ms > self.pump.sched.now_ms()

    def bridge_requested(self, arg):
        return bool(arg and arg.get("bridge")) and self.pump.therapy.program is not None and \
            self._bridge_volume_nl() > 0

    # ----------------------------------------------------------------- actions: start

    def start_clinician(self, arg):
        dose_ug, duration_ms = arg
        self._start(CLINICIAN, dose_ug, self.pump.doser.dose_quanta(dose_ug), duration_ms)

    def start_patient(self, arg):
        s = self.settings
        sched = self.pump.sched
        now = sched.now_ms()
        self.patient_bolus_times.append(now)
        self.lockout_until_ms = now + s["lockout_ms"]
        sched.cancel(self._lockout_handle)
        self._lockout_handle = sched.at(self.lockout_until_ms, self._lockout_timer)
        self._start(PATIENT, s["dose_ug"], self.pump.doser.dose_quanta(s["dose_ug"]),
                    s["duration_ms"])

    def refuse_patient(self, arg):
        reason = self._patient_bolus_refusal()
        if reason == OK:
            reason = reasons.STATE_DOES_NOT_ALLOW
        return reason

    def refill_with_bridge(self, arg):
        # The old drug still fills the tubing and catheter: deliver that volume at the volume
        # rate the program had with the old concentration, then the new drug takes over.
        p = self.pump
        old_concentration = p.doser.concentration_ug_per_ml
        p.reservoir.accept_refill(arg)
        volume_nl = self._bridge_volume_nl()
        daily_ug = p.therapy.current_basal_ug_per_day or 1
        old = old_concentration or arg["concentration_ug_per_ml"]
        duration_ms = volume_nl * old * _MS_PER_DAY // (daily_ug * 1000000)
        if duration_ms < _MS_PER_MIN:
            duration_ms = _MS_PER_MIN
        dose_ug = volume_nl * old // 1000000
        self._start(BRIDGE, dose_ug, p.doser.volume_quanta(volume_nl), duration_ms)

    def bridge_after_empty(self, arg):
        self.refill_with_bridge(arg)
        self.pump.alarms.clear(alarms.RESERVOIR_EMPTY)

    def _start(self, kind, dose_ug, quanta, duration_ms):
        p = self.pump
        now = p.sched.now_ms()
        rate_q = quanta // duration_ms
        lump_q = quanta - rate_q * duration_ms
        volume_nl = p.doser.quanta_to_nl(quanta)
        handle = p.sched.at(now + duration_ms, self._bolus_timer)
        self.current = [kind, dose_ug, volume_nl, now, now + duration_ms, rate_q, lump_q, handle]
        p.log.log(eventlog.BOLUS_START, kind, dose_ug, volume_nl, duration_ms // 1000)
        p.therapy.apply_flows()
        p.dirty = True

    # ----------------------------------------------------------------- actions: stop

    def end(self, arg):
        self._end(True)

    def cut(self):
        self._end(False)

    def interrupted_by_reset(self, kind):
        # A bolus cut by a reset is not resumed (how much of it went in is not known); it is
        # logged as interrupted and the clinician decides.  Returns the state to resume in.
        self.pump.log.log(eventlog.BOLUS_END, kind, 0, 0)
        return self.after_bolus_state()

    def _end(self, completed):
        bolus = self.current
        if bolus is None:
            return
        p = self.pump
        self.current = None
        p.sched.cancel(bolus[7])
        now = p.sched.now_ms()
        if completed:
            p.doser.add_quanta(bolus[6])
            delivered_nl = bolus[2]
        else:
            delivered_nl = p.doser.quanta_to_nl(bolus[5] * (now - bolus[3]))
        p.log.log(eventlog.BOLUS_END, bolus[0], delivered_nl, 1 if completed else 0)
        p.therapy.apply_flows()
        p.dirty = True

    def after_bolus_state(self):
        if self.lockout_running(None):
            return table.LOCKOUT
        return table.INFUSING if self.pump.therapy.on else table.IDLE

    def _bolus_timer(self):
        self.pump.event("bolus_done")

    # ----------------------------------------------------------------- lockout

    def end_lockout(self, arg):
        self.pump.dirty = True

    def arm_lockout(self, now):
        # At boot: the lockout timer for a lockout still running, else no lockout state.
        states = self.pump.machine.states
        if self.lockout_until_ms > now:
            self._lockout_handle = self.pump.sched.at(self.lockout_until_ms, self._lockout_timer)
        if states["therapy"] == table.LOCKOUT:
            states["therapy"] = self.after_bolus_state()

    def _lockout_timer(self):
        self._lockout_handle = None
        self.pump.event("lockout_done")

    # ----------------------------------------------------------------- internals

    def _bridge_volume_nl(self):
        return self.pump.model["tubing_nl"] + self.pump.model["catheter_nl"]

    def _patient_bolus_refusal(self):
        s = self.settings
        if s is None:
            return reasons.PATIENT_BOLUS_DISABLED
        now = self.pump.sched.now_ms()
        if self.lockout_until_ms > now:
            return reasons.LOCKOUT_ACTIVE
        self.prune_patient_boluses(now)
        if len(self.patient_bolus_times) >= s["max_per_24h"]:
            return reasons.MAX_ACTIVATIONS
        return OK

    def prune_patient_boluses(self, now):
        times = self.patient_bolus_times
        while times and times[0] <= now - _MS_PER_DAY:
            times.pop(0)
