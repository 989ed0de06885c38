# Scenario replay: the real firmware on the simulated board, driven through a scenario in
# virtual time.  Portable: runs unchanged on CPython and MicroPython 1.27 (with sim/plan.py and
# the models it builds, sim/battery.py and sim/crystal.py), so the same scenario drives the
# same firmware on both and tests/golden/ compares their event traces byte for byte.
# sim/runner.py builds `vpump run` on it (events.jsonl, timeseries.csv, the summary); nothing
# here may import the rest of sim/ (but those portable modules) or anything host-only.
#
# The scenario is plain data in firmware units, as sim.scenario.load returns it (JSON on the way
# to MicroPython, which has no TOML reader).  A replay builds a SimBoard and a Pump, sets the
# pump up the way a clinician would at implant (limits, fill, alarm volume, patient bolus,
# program), then replays the timeline, the periodic refills and the patient's button presses
# while the firmware's scheduler jumps from deadline to deadline.  A simulated power loss (the
# storage's cut_after_bytes) reboots the pump from storage, as hardware would.
#
#     r = Replay(config, days=30, on_log=fn)   # fn(seq, t_ms, code, args) per firmware log entry
#     r.start()                                 # setup and plan (or r.run(): start, run_to end)
#     r.run_to(t_ms)                            # may be called repeatedly, in order
#
# Same scenario and seed: the same log, byte for byte, on either interpreter.

from firmware import pump as pump_module
from firmware.dosing import MS_PER_DAY
from firmware.pump import Pump
from hal.errors import PowerLost
from hal.sim import SimBoard, SimRng
from protocol import reasons
from sim.plan import plan

_PATIENT_SEED_XOR = 0x5EED5EED

# A fault's actions in the plan (sim/plan_faults.py); sim/physical.py performs them.
_FAULT_ACTIONS = ("fault_start", "fault_end", "fault_recovered")


def trace_line(seq, t_ms, code, args):
    # One firmware log entry as a line of text: "seq t_ms code a,b,c,d" ("-" without args).
    if args:
        return "%d %d %d %s" % (seq, t_ms, code, ",".join([str(a) for a in args]))
    return "%d %d %d -" % (seq, t_ms, code)


class Replay:
    # sample_ms: 0, or the period at which _sample() is called (sim/runner.py: hourly rows).
    sample_ms = 0

    def __init__(self, config, days=None, seed=None, on_log=None, board=None, storage=None,
                 resume_ms=0):
        # board: None for a SimBoard built from the scenario's pump model, or a board whose
        # motor, battery and annunciator are real (hal/serial_io.py SerialIOBoard: a bench
        # board), with a VirtualClock.  The physical models and faults act on a SimBoard's
        # parts, so a real board takes no [models] or [[faults]].
        self.config = config
        self.days = config["days"] if days is None else days
        self.seed = config["seed"] if seed is None else seed
        self.on_log = on_log
        self.model = dict(pump_module.MODEL)
        self.model.update(config.get("model") or {})
        m = self.model
        self.simulated = board is None
        if board is None:
            board = SimBoard(
                seed=self.seed, stroke_nl=m["stroke_nl"],
                reservoir_capacity_nl=m["reservoir_capacity_nl"],
                battery_capacity_nah=m["battery_capacity_nah"],
                battery_quiescent_na=m["quiescent_na"],
                stroke_charge_nah=m["stroke_charge_nah"], storage=storage,
            )
        elif config.get("models") or config.get("faults"):
            raise ValueError("scenario %r has [models] or [[faults]]: they act on the simulated "
                             "board's parts, not on a bench board's; run it without a board"
                             % config.get("name"))
        if storage is not None:
            # A stored pump (`vpump serve --state`, sim/state_file.py): its flash, and its clock
            # where the pump left off plus the time it was off, as after a brown-out.  (Or a
            # board's storage kept out of the heap, tests/mp/board_month.py: a SimBoard is built
            # with it, so no SimStorage's bytearray is ever allocated.)
            board.storage = storage
            board.clock.advance_to(resume_ms)
        self.board = board
        self.patient_rng = SimRng(self.seed ^ _PATIENT_SEED_XOR)
        self.start_wall_ms = config["start_wall_ms"]
        self.end_ms = self.days * MS_PER_DAY
        self.counts = dict(refills=0, resets=0, patient_requests=0, patient_boluses=0,
                           refused=0)
        self.powered = True         # False while a brown_out holds the MCU in reset
        self.injected_csf_ng = 0    # drug given into the CSF bypassing the pump (screening)
        self.cell = None            # [models] battery: the true cell (sim/battery.py)
        self.drifting_clock = None  # [models] clock_*: the pump's crystal (sim/crystal.py)
        self._physical = None       # sim/physical.py, once [models] or a fault needs it
        if config.get("models"):
            self._physics().models(config["models"])
        self.pump = None
        self._factory_offset_ms = None
        self.actions = None         # the plan, once start() made it
        self._index = 0
        self._next_sample = 0
        self._boot()

    # -- physical models and faults (sim/physical.py) ----------------------------------------

    def _physics(self):
        # What [models] and [[faults]] do to the board: imported on first use, so a replay
        # without them does not hold that code.
        if self._physical is None:
            from sim.physical import Physical
            self._physical = Physical(self)
        return self._physical

    def _fill(self, volume_nl, concentration):
        # The clinician fills volume_nl (what the firmware is told); [models] refill_error_ppm
        # makes the true volume differ (sim/physical.py).
        if not self.simulated:
            return 0        # a bench board's reservoir is filled by hand, not by the simulator
        if self._physical is not None and self._physical.fill_error_ppm:
            return self._physical.fill(volume_nl, concentration)
        return self.board.reservoir.refill(volume_nl, concentration)


    # -- hooks (sim/runner.py overrides them) -----------------------------------------------

    def _fault_link_noise(self, active, phase, fault):
        # No link in a portable replay: the clinician's actions are direct calls here, so the
        # golden trace of a [link] scenario is its actions as if the link were perfect.
        pass

    def _on_pump_event(self, seq, t_ms, code, args):
        if self.on_log is not None:
            self.on_log(seq, t_ms, code, args)

    def _sim_event(self, name, **fields):
        # What the simulator did (fill, refill, patient press, refused request, reset).
        pass

    def _after_action(self):
        pass

    def _sample(self):
        pass

    def _on_booted(self):
        pass

    # -- pump lifecycle ---------------------------------------------------------------------

    def _boot(self):
        # The factory sets the calendar once (the scenario's start); a later boot with nothing
        # restorable (both slots gone) falls back to that same setting on the pump's own
        # clock, not to the true time, which the pump cannot know.
        if self._factory_offset_ms is None:
            wall_ms = self.start_wall_ms + self.board.clock.true_ms
        else:
            wall_ms = self._factory_offset_ms + self.board.clock.now_ms()
        self.pump = Pump(self.board, self.model, wall_ms=wall_ms)
        if self._factory_offset_ms is None:
            self._factory_offset_ms = self.pump.clock_offset_ms
        self.pump.log.listener = self._on_pump_event
        if self.cell is not None:
            self._physical.telemetry_session(self.pump)
        restored = self.pump.boot()
        self._on_booted()
        return restored

    def _reboot(self, why):
        self.counts["resets"] += 1
        self._sim_event("reset", cause=why)
        self.pump = None
        try:
            self._boot()
        except PowerLost as exc:
            # A cut armed for the next commit hit the boot's own commit: boot once more.
            self._reboot("power_lost: %s" % exc)

    def _setup(self):
        c = self.config
        p = self.pump
        self._check("set_limits", p.set_limits(c.get("limits") or {}))
        residual = self._fill(c["fill_nl"], c["concentration_ug_per_ml"])
        self._sim_event("fill", volume_nl=c["fill_nl"], residual_nl=residual)
        self._check("refill", p.refill(c["fill_nl"], c["concentration_ug_per_ml"]))
        self._check("set_low_reservoir_alarm",
                    p.set_low_reservoir_alarm(c["low_reservoir_alarm_nl"]))
        pb = c.get("patient_bolus")
        if pb:
            self._check("set_patient_bolus", p.set_patient_bolus(
                pb["dose_ug"], pb["duration_ms"], pb["lockout_ms"], pb["max_per_24h"],
                c.get("confirm", False)))
        if c["therapy"] is not None:        # None: a pump waiting for its programmer
            self._program(c["therapy"], c.get("confirm", False))

    def _program(self, therapy, confirm):
        if therapy["mode"] == "continuous":
            return self._check("program", self.pump.program_continuous(
                therapy["basal_ug_per_day"], confirm))
        return self._check("program", self.pump.program_flex(therapy["steps"], confirm))

    def _check(self, what, outcome):
        if outcome != reasons.OK:
            refusal = self.pump.refusal
            if refusal and refusal[1]:
                self._sim_event("request_refused", request=what, reason=reasons.name(outcome),
                                field=refusal[1], value=refusal[2], allowed_max=refusal[4])
            else:
                self._sim_event("request_refused", request=what, reason=reasons.name(outcome))
        return outcome

    # -- the action plan --------------------------------------------------------------------

    def _plan(self):
        return plan(self.config, self.days, self.end_ms, self.patient_rng)

    def _perform(self, action):
        p = self.pump
        kind = action["action"]
        if not self.powered and kind not in _FAULT_ACTIONS:
            # Held in reset by a brown-out: nothing answers, the request is lost.
            self._sim_event("unpowered", action=kind)
            return reasons.OK
        if self.cell is not None:
            # With the true cell modelled, a programmer's or patient remote's request is a
            # telemetry session (sim/physical.py); without it, direct calls as before.
            self._physical.request(kind, p)
        if kind == "interrogate":
            # [models] telemetry_sessions_per_day: a routine read-out, nothing changes.
            self.counts["interrogations"] = self.counts.get("interrogations", 0) + 1
            p.status()
            return reasons.OK
        if kind == "patient_bolus":
            self.counts["patient_requests"] += 1
            self._sim_event("patient_press")
            return self._check(kind, p.patient_bolus())
        if kind == "refill":
            residual = self._fill(action["volume_nl"], action["concentration_ug_per_ml"])
            self.counts["refills"] += 1
            self._sim_event("refill", volume_nl=action["volume_nl"], residual_true_nl=residual,
                            residual_estimate_nl=max(0, p.doser.reservoir_nl()))
            return self._check(kind, p.refill(action["volume_nl"],
                                              action["concentration_ug_per_ml"],
                                              action.get("bridge", False)))
        if kind in _FAULT_ACTIONS:
            self._physics().perform(kind, action)
            return reasons.OK
        if kind == "screening_bolus":
            # A screening bolus by lumbar puncture (Lioresal label): straight into the CSF,
            # before or beside the pump, which neither gives nor sees it.
            self.injected_csf_ng += action["dose_ug"] * 1000
            self._sim_event("screening_bolus", dose_ug=action["dose_ug"])
            return reasons.OK
        self._sim_event("action", action=kind)
        if kind == "program":
            return self._program({"mode": "continuous",
                                  "basal_ug_per_day": action["basal_ug_per_day"]},
                                 action.get("confirm", False))
        if kind == "program_flex":
            return self._program({"mode": "flex", "steps": action["steps"]},
                                 action.get("confirm", False))
        if kind == "clinician_bolus":
            return self._check(kind, p.clinician_bolus(action["dose_ug"], action["duration_ms"],
                                                       action.get("confirm", False)))
        if kind == "set_patient_bolus":
            return self._check(kind, p.set_patient_bolus(
                action["dose_ug"], action["duration_ms"], action["lockout_ms"],
                action["max_per_24h"], action.get("confirm", False)))
        if kind == "set_low_reservoir_alarm":
            return self._check(kind, p.set_low_reservoir_alarm(action["volume_nl"]))
        if kind == "silence_alarms":
            return self._check(kind, p.silence_alarms(action["silence_ms"]))
        if kind in ("start", "stop", "clear_alarm"):
            return self._check(kind, getattr(p, kind)())
        if kind == "reset":
            self._reboot("scheduled")
            return reasons.OK
        raise ValueError("unknown timeline action %r" % kind)

    # -- the loop ---------------------------------------------------------------------------

    def _guarded(self, fn, *args):
        # Run fn; a simulated power loss reboots the pump from storage, as hardware would.
        try:
            return fn(*args)
        except PowerLost as exc:
            self._reboot("power_lost: %s" % exc)
            return None

    def _advance(self, target):
        # A target in the past (a programmer session over a [link] took time beyond the next
        # action's moment) leaves time where it is: virtual time never goes back.
        if self.powered and self.drifting_clock is not None:
            # target is true time, the scheduler's deadlines the pump's: run what falls due by
            # the pump's reading at target (sleeps land on the first true ms that reaches each
            # deadline, never before), then bring true time exactly to target.
            self.pump.sched.run_until(self.drifting_clock.pump_ms_at(target))
            if target > self.drifting_clock.true_ms:
                self.drifting_clock.advance_to(target)
        elif self.powered:
            self.pump.sched.run_until(target)
        elif target > self.board.clock.true_ms:
            self.board.clock.advance_to(target)     # in reset: time passes, nothing runs

    def start(self):
        # The clinician's setup at implant, then the plan of everything that follows.
        self._guarded(self._setup)
        self.actions = self._plan()
        self._index = 0
        self._next_sample = 0

    def run_to(self, until_ms):
        # Replay up to virtual time until_ms (at most the end): actions due at or before it
        # are performed, in plan order, each after the firmware has run up to its time.
        if self.actions is None:
            self.start()
        if until_ms > self.end_ms:
            until_ms = self.end_ms
        actions = self.actions
        clock = self.board.clock
        sampling = self.sample_ms > 0
        while True:
            index = self._index
            next_action = actions[index][0] if index < len(actions) else self.end_ms + 1
            next_sample = self._next_sample if sampling else until_ms + 1
            target = until_ms
            if next_sample < target:
                target = next_sample
            if next_action < target:
                target = next_action
            self._guarded(self._advance, target)
            if clock.true_ms < target:
                continue        # a power loss stopped the advance early: resume it
            if target == next_action:
                self._guarded(self._perform, actions[index][2])
                self._after_action()
                actions[index] = None   # done: a month's plan need not stay in a board's heap
                self._index = index + 1
                continue
            if target == next_sample:
                self._sample()
                self._next_sample = next_sample + self.sample_ms
            if target >= until_ms and next_action > until_ms:
                return

    def run(self):
        self.start()
        self.run_to(self.end_ms)
