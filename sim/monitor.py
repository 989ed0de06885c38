"""The invariant monitor: the pump's safety requirements (docs/safety.md, SR-nn) checked while a
run goes, from the firmware's own state and log and the simulator's ground truth.

It watches and never changes anything (NASA Copilot's runtime monitors are the model): it reads
the pump's state, its log entries as the firmware writes them, the simulated motor's strokes and
the simulator's power supply, and reports each broken rule as a violation
{"req": "SR-nn", "t_ms": ..., "message": ...}.  sim/runner.py turns it on for every `vpump run`
(`--no-check` turns it off); tests drive it the same way.

When it looks (every event of a run):
  - every firmware log entry: record-level rules (sequence numbers, record times, patient
    bolus lockout and 24 h maximum, program and bolus limits, what a boot restored);
  - every motor stroke: was delivery allowed in this state, is delivery within the program plus
    the boluses given over every 24 h window (within one stroke), and are the conditions the
    previous event left (reservoir estimate, a stall, a failed commit) alarmed and halted;
  - before and after every action of the run (programmer, patient, refill, fault), after every
    boot, at every hourly sample and at the end: the whole state.
So a condition is caught at the latest at the next stroke after the event that caused it, which
is what "within one stroke" asks.

Units: volumes in nL; times are the pump's own milliseconds (its scheduler's clock, on which the
program, the lockout and the 24 h windows are defined) except t_ms in a violation, which is the
time the run's events.jsonl records carry (pump-local calendar ms of the true clock).
"""

from collections import deque

from firmware import alarms, eventlog, limits, table
from firmware.dosing import MS_PER_DAY
from hal.errors import PowerLost
# The rule table and the program arithmetic live apart (imported here for callers).
from sim.monitor_rules import REQUIREMENTS, flex_rate_ug_per_day, program_daily_ug  # noqa: F401

# At most this many violation records per requirement in a run (the count goes on).
MAX_RECORDS_PER_REQ = 20

_THERAPY = "therapy"
_RUNNING = (table.INFUSING, table.BOLUS, table.LOCKOUT)
_HALTED_STALL = (table.MOTOR_STALL, table.FAULT, table.BATTERY_DEPLETED)
_HALTED_FAULT = (table.FAULT, table.BATTERY_DEPLETED)
# States in which strokes are allowed while therapy is on (an empty reservoir: the minimum rate).
_DELIVERING_ON = (table.INFUSING, table.LOCKOUT, table.RESERVOIR_EMPTY)
_MS_PER_MIN = 60000
_BOLUS_PATIENT = 1
_BOLUS_BRIDGE = 2
# Derived states a boot may show instead of the committed one (docs/persistence.md): a bolus
# cut by the reset is ended, an expired lockout ends, and any state may be halted by what the
# boot re-derives (reservoir empty, memory fault).
_DERIVED = {
    table.BOLUS: (table.LOCKOUT, table.INFUSING, table.IDLE),
    table.LOCKOUT: (table.INFUSING,),
}
_HALTS_AT_BOOT = (table.RESERVOIR_EMPTY, table.FAULT)
_COMPARED_AT_BOOT = ("program", "therapy_on", "limits", "patient_bolus", "drug",
                     "low_reservoir_alarm_nl")


class Monitor:
    """Checks one run.  host: the object that owns the pump and board (sim.runner.Run or a
    test's harness) with attributes pump, board, powered, start_wall_ms and model.

    Wire it up: host's log listener calls log(seq, t_ms, code, args) for every firmware entry;
    install_motor_hook() wraps the board's motor; check() after (and before) every action and
    sample; booted() after every boot; finish() at the end.  on_violation(record) is called for
    each recorded violation."""

    def __init__(self, host, on_violation=None):
        self.host = host
        self.on_violation = on_violation
        self.violations = []
        self.counts = {}
        self._flagged = set()       # conditions already reported and not yet seen fixed
        # Record-level state, kept across boots (it is the run's history, not a pump's).
        self._last_seq = 0
        self._last_t_ms = None
        self._patient_boluses = deque()     # (pump ms, lockout ends at) of each patient bolus
        self._programs = []                 # [pump ms, daily ug] in force, last 24 h and more
        # What each snapshot slot holds: [commit number, dict] of its last commit, or None.
        self._slots = [None, None]
        self._commit_number = 0
        self._commit_hooked = None
        self._boot_seen = None              # (slot restored, storage_corrupt logged, slots)
        # Delivery bookkeeping: allowed volume A (float nL, integrated at the allowed rate),
        # delivered volume D (strokes x nominal stroke), and for the 24 h window a deque of
        # (pump ms, D - A just before each stroke) with increasing values (a sliding minimum).
        self._a_nl = 0.0
        self._a_t = None
        self._rate = 0.0                    # allowed nL per pump ms now
        self._d_nl = 0
        self._window = deque()
        self._bolus = None                  # (rate nL/ms, kind) of the bolus the log started
        self._stall_strokes = 0             # strokes made in the current motor-stall episode
        self._stall_pending = False         # a stroke stalled; the firmware must have halted
        self._commit_failed = False         # a commit failed; the firmware must have halted
        self._eos_since = None              # pump ms when the firmware's count first said EOS
        self._state_t = None                # pump ms of the last therapy state change
        self.stroke_nl = None               # the motor's nominal stroke, known at the first boot
        self._tolerance_nl = None

    # -- reporting ----------------------------------------------------------------------------

    def _violate(self, req, message, key=None):
        if key is not None:
            if key in self._flagged:
                return
            self._flagged.add(key)
        n = self.counts.get(req, 0) + 1
        self.counts[req] = n
        if n > MAX_RECORDS_PER_REQ:
            return
        host = self.host
        record = {"req": req, "t_ms": host.start_wall_ms + host.board.clock.true_ms,
                  "message": "%s: %s" % (REQUIREMENTS[req], message)}
        self.violations.append(record)
        if self.on_violation is not None:
            self.on_violation(record)

    def _ok(self, key):
        self._flagged.discard(key)

    def total(self):
        return sum(self.counts.values())

    # -- time and the allowance ---------------------------------------------------------------

    def _now(self):
        return self.host.pump.sched.now_ms()

    def _accrue(self, now):
        if self._a_t is not None and now > self._a_t:
            self._a_nl += self._rate * (now - self._a_t)
        self._a_t = now

    def _update_rate(self):
        # What the pump may deliver from now on, from its state (not its flows): the program's
        # basal while therapy runs (not during a bridge bolus, which carries the old drug), the
        # minimum rate while halted by an empty reservoir with therapy on, and the bolus the log
        # started; nothing while unpowered.
        host = self.host
        p = host.pump
        now = self._now()
        self._accrue(now)
        rate = 0.0
        conc = p.doser.concentration_ug_per_ml
        state = p.machine.states[_THERAPY]
        bolus = self._bolus
        if host.powered and conc:
            if state in _RUNNING and p.therapy.on and p.therapy.program is not None and \
                    not (bolus is not None and bolus[1] == _BOLUS_BRIDGE):
                ug = flex_rate_ug_per_day(p.therapy.program, p.wall_ms())
                rate += ug * 1000000.0 / conc / MS_PER_DAY
            elif state == table.RESERVOIR_EMPTY and p.therapy.on:
                rate += float(p.model["min_rate_nl_per_day"]) / MS_PER_DAY
            if bolus is not None:
                rate += bolus[0]
        self._rate = rate

    # -- firmware log entries -----------------------------------------------------------------

    def log(self, seq, t_ms, code, args):
        p = self.host.pump
        # SR-15: sequence numbers strictly increase over the whole run (across resets); an
        # entry the log could not store carries seq 0 (it is in no log).
        if seq:
            if seq <= self._last_seq:
                self._violate("SR-15", "seq %d after seq %d (code %d)"
                              % (seq, self._last_seq, code))
            else:
                self._last_seq = seq
        if code == eventlog.CLOCK_SET:
            # A clinician's clock setting may move the calendar back; the record says by how
            # much (delta_s), so times count from it.
            self._last_t_ms = None
        if self._last_t_ms is not None and t_ms < self._last_t_ms:
            self._violate("SR-16", "record time %d ms after %d ms (code %d)"
                          % (t_ms, self._last_t_ms, code))
        else:
            self._last_t_ms = t_ms
        if code == eventlog.BOLUS_START:
            self._bolus_started(p, args)
        elif code == eventlog.BOLUS_END:
            self._accrue(self._now())
            self._bolus = None
        elif code == eventlog.PROGRAM:
            self._program_applied(p)
        elif code == eventlog.LIMITS_SET or code == eventlog.PATIENT_BOLUS_SET:
            self._check_limits(p)
        elif code == eventlog.STATE:
            if args[0] == 0:
                self._state_t = self._now()
        elif code == eventlog.COMMIT_FAILED:
            self._commit_failed = True
        elif code == eventlog.BOOT:
            self._boot_entry(p)
        elif code == eventlog.STORAGE_CORRUPT and self._boot_seen is not None:
            self._boot_seen = (self._boot_seen[0], True, self._boot_seen[2])
        self._update_rate()

    def _bolus_started(self, p, args):
        kind = args[0]
        now = self._now()
        self._accrue(now)
        bolus = p.bolus.current
        duration = bolus[4] - bolus[3] if bolus is not None else 0
        volume_nl = bolus[2] + 1 if bolus is not None else 0    # the log floors to whole nL
        self._bolus = (float(volume_nl) / duration if duration > 0 else 0.0, kind)
        if kind != _BOLUS_BRIDGE:
            hard = min(p.limits["bolus_hard_ug"],
                       limits.library_entry(p.drug)["bolus_hard_ug"])
            if args[1] > hard:
                self._violate("SR-14", "%s bolus of %d ug, hard limit %d ug"
                              % (eventlog.BOLUS_KINDS[kind], args[1], hard))
        if kind != _BOLUS_PATIENT:
            return
        # SR-13: a patient bolus only while therapy runs; SR-11/12: lockout and 24 h maximum,
        # counted here over the whole run, whatever the pump remembers after a reset.
        if not p.therapy.on:
            self._violate("SR-13", "patient bolus given with therapy stopped")
        settings = p.bolus.settings
        history = self._patient_boluses
        while history and history[0][0] <= now - MS_PER_DAY:
            history.popleft()
        if history and now < history[-1][1]:
            self._violate("SR-11", "patient bolus %d min after the previous one, lockout "
                          "until %d min after it" % ((now - history[-1][0]) // _MS_PER_MIN,
                                                     (history[-1][1] - history[-1][0])
                                                     // _MS_PER_MIN))
        if settings is not None and len(history) >= settings["max_per_24h"]:
            self._violate("SR-12", "patient bolus number %d in 24 h, maximum %d"
                          % (len(history) + 1, settings["max_per_24h"]))
        lockout_ms = settings["lockout_ms"] if settings is not None else 0
        history.append((now, now + lockout_ms))

    def _hard_daily_ug(self, p):
        return min(p.limits["daily_dose_hard_ug"],
                   limits.library_entry(p.drug)["daily_dose_hard_ug"])

    def _program_applied(self, p):
        # SR-14: the program in force within the daily hard limit and the 24 h rate-increase
        # hard limit over the lowest program in force during the last 24 h.
        now = self._now()
        daily = program_daily_ug(p.therapy.program)
        hard = self._hard_daily_ug(p)
        if daily > hard:
            self._violate("SR-14", "program of %d ug/day in force, hard limit %d ug/day"
                          % (daily, hard))
        programs = self._programs
        lowest = None
        for i in range(len(programs)):
            later = programs[i + 1][0] if i + 1 < len(programs) else now + 1
            if later > now - MS_PER_DAY and (lowest is None or programs[i][1] < lowest):
                lowest = programs[i][1]
        if lowest:
            pct = min(p.limits["rate_increase_hard_pct"],
                      limits.library_entry(p.drug)["rate_increase_hard_pct"])
            top = lowest * (100 + pct) // 100
            if daily > top:
                self._violate("SR-14", "program of %d ug/day in force within 24 h of %d "
                              "ug/day: the rate-increase hard limit allows %d"
                              % (daily, lowest, top))
        programs.append([now, daily])
        while len(programs) > 1 and programs[1][0] <= now - MS_PER_DAY:
            programs.pop(0)

    def _check_limits(self, p):
        # After the clinician's limits or the patient bolus change: what is in force must still
        # be within the hard limits.
        if p.therapy.program is not None:
            daily = program_daily_ug(p.therapy.program)
            hard = self._hard_daily_ug(p)
            if daily > hard:
                self._violate("SR-14", "program of %d ug/day in force under a hard limit of "
                              "%d ug/day" % (daily, hard))
        s = p.bolus.settings
        if s is not None:
            hard = min(p.limits["bolus_hard_ug"], limits.library_entry(p.drug)["bolus_hard_ug"])
            if s["dose_ug"] > hard:
                self._violate("SR-14", "patient bolus of %d ug in force under a bolus hard "
                              "limit of %d ug" % (s["dose_ug"], hard))

    # -- boots and commits ----------------------------------------------------------------------

    def _boot_entry(self, p):
        # The new pump's first entry: what it restored (its persist knows), and from now on
        # every commit it makes is recorded.
        if self.stroke_nl is None:
            self.stroke_nl = self.host.model["stroke_nl"]
            self._tolerance_nl = self.stroke_nl + self.stroke_nl / 100.0
        self._boot_seen = (p.persist.slot, False, list(self._slots))
        self._bolus = None
        self._stall_strokes = 0
        self._stall_pending = False
        self._commit_failed = False
        self._hook_commits(p)

    def _hook_commits(self, p):
        persist = p.persist
        if self._commit_hooked is persist:
            return
        self._commit_hooked = persist
        inner = persist.commit
        monitor = self

        def commit(snapshot):
            target = 0 if persist.slot is None else 1 - persist.slot
            try:
                inner(snapshot)
            except PowerLost:
                # Cut midway: the slot being written holds nothing any more (a failed write,
                # PersistError, wrote nothing and leaves it as it was).
                monitor._slots[target] = None
                raise
            # Only a commit that returned is committed.
            monitor._commit_number += 1
            monitor._slots[persist.slot] = [monitor._commit_number, snapshot]
        persist.commit = commit

    def booted(self):
        """After a pump's boot() returned: SR-17 (it resumed the last committed state, or the
        one before when a decayed slot was reported, or what they derive), then the state."""
        p = self.host.pump
        self._hook_commits(p)
        seen = self._boot_seen
        self._boot_seen = None
        if seen is not None:
            self._check_restored(p, seen[0], seen[1], seen[2])
        self._update_rate()
        self.check()

    def _check_restored(self, p, restored, corrupt_logged, slots):
        # restored: the slot the boot loaded (None: none); slots: what each slot held from its
        # last commit when the boot began.  The boot must load the newest commit, or the other
        # slot's when it reported damage, or with both unreadable come up halted in the fault
        # state.
        held = [i for i in (0, 1) if slots[i] is not None]
        if not held:
            if restored is not None:
                self._violate("SR-17", "restored slot %s, but nothing was committed" % "AB"[restored])
            return
        newest = max(held, key=lambda i: slots[i][0])
        if restored == newest or (restored is not None and corrupt_logged and
                                  slots[restored] is not None):
            snapshot = slots[restored][1]
        elif restored is None and corrupt_logged:
            # Nothing readable: factory defaults, halted in the fault state until a clinician
            # looks (docs/persistence.md).
            if p.machine.states[_THERAPY] not in _HALTED_FAULT or \
                    alarms.MEMORY_FAULT not in p.alarms.active:
                self._violate("SR-17", "no snapshot restored after commits were made, and the "
                              "pump is %s without the memory-fault alarm"
                              % p.machine.states[_THERAPY])
            return
        else:
            self._violate("SR-17", "restored slot %s; the last commit went to slot %s%s"
                          % ("-AB"[restored + 1 if restored is not None else 0], "AB"[newest],
                             "" if corrupt_logged else " and no damage was reported"))
            return
        for key in _COMPARED_AT_BOOT:
            mine = {"program": p.therapy.program, "therapy_on": p.therapy.on, "limits": p.limits,
                    "patient_bolus": p.bolus.settings, "drug": p.drug,
                    "low_reservoir_alarm_nl": p.reservoir.low_reservoir_alarm_nl}[key]
            if mine != snapshot[key]:
                self._violate("SR-17", "after boot %s is %r, committed %r"
                              % (key, mine, snapshot[key]))
        committed_state = snapshot["states"][0]
        state = p.machine.states[_THERAPY]
        if state != committed_state and state not in _DERIVED.get(committed_state, ()) and \
                state not in _HALTS_AT_BOOT:
            self._violate("SR-17", "after boot therapy is %s, committed %s"
                          % (state, committed_state))
        if p.doser.reservoir_nl() > snapshot["reservoir_nl"]:
            self._violate("SR-17", "after boot the reservoir estimate is %d nL, more than the "
                          "committed %d nL" % (p.doser.reservoir_nl(), snapshot["reservoir_nl"]))
        if p.doser.concentration_ug_per_ml != snapshot["concentration"]:
            self._violate("SR-17", "after boot the concentration is %d ug/mL, committed %d"
                          % (p.doser.concentration_ug_per_ml, snapshot["concentration"]))
        for row in snapshot["alarms"]:
            if row[0] not in p.alarms.active:
                self._violate("SR-17", "after boot the %s alarm is gone" % alarms.NAMES[row[0]])

    # -- strokes ----------------------------------------------------------------------------

    def install_motor_hook(self, motor):
        """Wrap the simulated motor's stroke: the ground truth of every stroke, before and after
        (a host-only hook, one call a stroke: the common path is inlined here, the rare cases
        are methods)."""
        inner = motor.stroke
        monitor = self
        host = self.host
        window = self._window
        stroke_nl = host.model["stroke_nl"]
        tolerance = stroke_nl + stroke_nl / 100.0
        day = MS_PER_DAY
        bolus = table.BOLUS
        delivering = _DELIVERING_ON

        def stroke():
            moved = motor.strokes
            stalls = motor.stalls
            # What the previous event left must be alarmed and halted by now (within one
            # stroke): a stall, a failed commit, the reservoir estimate.
            if monitor._stall_pending or monitor._commit_failed:
                monitor._check_halts()
            p = host.pump
            d = p.doser
            est = d.epoch_reservoir_nl - (d.strokes - d.epoch_strokes) * d.stroke_nl
            if est <= p.reservoir.low_reservoir_alarm_nl or est < stroke_nl:
                monitor._check_reservoir(p, est)
            result = inner()
            if motor.strokes == moved:
                if motor.stalls != stalls:
                    monitor._stall_pending = True
                return result
            # SR-01: D - A just before this stroke against its lowest value over the last 24 h
            # (a sliding minimum over the pre-stroke values, kept increasing in the deque).
            now = p.sched.now_ms()
            a = monitor._a_nl
            if now > monitor._a_t:
                a += monitor._rate * (now - monitor._a_t)
                monitor._a_nl = a
                monitor._a_t = now
            x = monitor._d_nl - a
            while window and window[-1][1] >= x:
                window.pop()
            window.append((now, x))
            while window[0][0] <= now - day:
                window.popleft()
            monitor._d_nl += stroke_nl
            if x + stroke_nl - window[0][1] > tolerance:
                monitor._over_delivered(now, x)
            # SR-02..05: delivery allowed at all?
            state = p.machine.states[_THERAPY]
            if not host.powered or not (state == bolus or (p.therapy.on and state in delivering)):
                monitor._stroke_not_allowed(p, state, now)
            return result
        motor.stroke = stroke

    def _over_delivered(self, now, x):
        first = self._window[0]
        self._violate("SR-01", "%.0f nL delivered beyond what the program and boluses allowed "
                      "since %d min ago (one stroke is %d nL)"
                      % (x - first[1], (now - first[0]) // _MS_PER_MIN, self.stroke_nl),
                      key="SR-01")

    def _stroke_not_allowed(self, p, state, now):
        if not self.host.powered:
            self._violate("SR-05", "a stroke while the pump is unpowered", key="SR-05")
            return
        if now == self._state_t:
            # A stroke owed on the very millisecond therapy stopped or halted was owed before
            # it (the firmware's time has 1 ms steps); SR-01 still bounds it.
            return
        if state in _DELIVERING_ON:
            self._violate("SR-02", "a stroke in %s with therapy stopped" % state, key="SR-02")
        elif state == table.MOTOR_STALL:
            # Clearing a stall first retries the one stroke it left owed (firmware table).
            self._stall_strokes += 1
            if self._stall_strokes > 1:
                self._violate("SR-03", "a stroke in motor_stall", key="SR-03" + state)
        else:
            req = {table.IDLE: "SR-02", table.BATTERY_DEPLETED: "SR-04"}.get(state, "SR-03")
            self._violate(req, "a stroke in %s" % state, key=req + state)

    # -- whole-state checks -----------------------------------------------------------------

    def _check_reservoir(self, p, est):
        # SR-10: low-reservoir alarm whenever the estimate is at or below its volume; SR-06:
        # below one stroke, the reservoir-empty alarm and therapy halted.  Both from the first
        # fill on (a pump never filled holds no drug and cannot deliver).
        if not p.doser.concentration_ug_per_ml:
            return
        if est <= p.reservoir.low_reservoir_alarm_nl:
            if alarms.LOW_RESERVOIR not in p.alarms.active:
                self._violate("SR-10", "estimate %d nL at or below the alarm volume %d nL, no "
                              "low-reservoir alarm" % (est, p.reservoir.low_reservoir_alarm_nl),
                              key="SR-10")
            else:
                self._ok("SR-10")
        if est < self.stroke_nl:
            state = p.machine.states[_THERAPY]
            if alarms.RESERVOIR_EMPTY not in p.alarms.active or state in _RUNNING:
                self._violate("SR-06", "estimate %d nL, less than a stroke, with therapy %s%s"
                              % (est, state, "" if alarms.RESERVOIR_EMPTY in p.alarms.active
                                 else " and no reservoir-empty alarm"), key="SR-06")
            else:
                self._ok("SR-06")

    def _check_halts(self):
        p = self.host.pump
        state = p.machine.states[_THERAPY]
        if self._stall_pending:
            self._stall_pending = False
            if alarms.MOTOR_STALL not in p.alarms.active or state not in _HALTED_STALL:
                self._violate("SR-07", "a stroke stalled; therapy %s%s" % (
                    state, "" if alarms.MOTOR_STALL in p.alarms.active
                    else " without the motor-stall alarm"))
        if self._commit_failed:
            self._commit_failed = False
            if alarms.MEMORY_FAULT not in p.alarms.active or state not in _HALTED_FAULT:
                self._violate("SR-08", "a commit failed; therapy %s%s" % (
                    state, "" if alarms.MEMORY_FAULT in p.alarms.active
                    else " without the memory-fault alarm"))

    def check(self):
        """The whole state, now (before and after every action, after boots, hourly)."""
        host = self.host
        if host.pump is None:
            return
        if not host.powered:
            self._update_rate()     # nothing may be delivered from now on
            return
        self.check_halts()
        self.check_therapy_state()
        self.check_reservoir()
        self.check_program()
        self.check_battery()

    def check_halts(self):
        """SR-07, SR-08: a stalled stroke or a failed commit since the last look is alarmed and
        therapy halted."""
        self._check_halts()

    def check_therapy_state(self):
        """SR-02: the therapy state agrees with therapy on/off (running means on)."""
        p = self.host.pump
        state = p.machine.states[_THERAPY]
        if state != table.MOTOR_STALL:
            self._stall_strokes = 0
        if state in (table.INFUSING, table.LOCKOUT) and not p.therapy.on:
            self._violate("SR-02", "therapy %s while stopped" % state, key="SR-02state")
        else:
            self._ok("SR-02state")

    def check_reservoir(self):
        """SR-06, SR-10: the reservoir alarms match the estimate."""
        p = self.host.pump
        est = p.doser.reservoir_nl()
        self._check_reservoir(p, est)
        if est > p.reservoir.low_reservoir_alarm_nl:
            self._ok("SR-10")
        if est >= self.stroke_nl:
            self._ok("SR-06")

    def check_program(self):
        """SR-14: the program in force is within the hard daily limit."""
        p = self.host.pump
        if p.therapy.program is not None:
            daily = program_daily_ug(p.therapy.program)
            hard = self._hard_daily_ug(p)
            if daily > hard:
                self._violate("SR-14", "program of %d ug/day in force, hard limit %d"
                              % (daily, hard), key="SR-14program")
                return
        self._ok("SR-14program")

    def check_battery(self):
        """SR-09: end of service by the firmware's own count (charge, voltage, service time)
        halts therapy within one housekeeping period."""
        p = self.host.pump
        now = self._now()
        if p.battery.level(now) != 2:
            self._eos_since = None
            return
        state = p.machine.states[_THERAPY]
        if self._eos_since is None:
            self._eos_since = now
        elif now - self._eos_since > p.model["commit_interval_ms"] and \
                (state != table.BATTERY_DEPLETED or alarms.END_OF_SERVICE not in p.alarms.active):
            self._violate("SR-09", "end of service for %d min; therapy %s"
                          % ((now - self._eos_since) // _MS_PER_MIN, state), key="SR-09")

    def finish(self):
        if self.host.pump is not None:
            self.check()
        return self.violations
