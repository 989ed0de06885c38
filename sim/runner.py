"""Headless runs: the real firmware on the simulated board, in virtual time.

A run takes a validated scenario (sim/scenario.py), builds a SimBoard and a Pump, sets the pump
up the way a clinician would at implant (clock, limits, fill, alarm volume, program, patient
bolus), then replays the scenario's timeline, periodic refills and the patient's button presses
while the firmware's scheduler jumps from deadline to deadline.  Every firmware log entry and
every action the simulator takes goes to the event sink in order; the board is sampled hourly
for the time series.  Same scenario and seed: the same events, byte for byte.
"""

import json
import time

from firmware import pump as pump_module
from firmware.dosing import MS_PER_DAY
from firmware.pump import Pump
from hal.errors import PowerLost
from hal.sim import SimBoard, SimRng
from protocol import reasons
from sim.events import decode, iso_ms

MS_PER_HOUR = 3600000
SAMPLE_MS = MS_PER_HOUR
# Patients press the bolus button while awake (UNSOURCED: 08:00 to 22:00).
_AWAKE_FROM_MIN = 8 * 60
_AWAKE_MINUTES = 14 * 60

TIMESERIES_COLUMNS = (
    "t_ms", "time", "day", "therapy", "reservoir_alarm", "battery_alarm", "basal_ug_per_day",
    "reservoir_estimate_ul", "reservoir_true_ul", "delivered_ug", "delivered_true_ug",
    "programmed_ug", "battery_mv", "battery_remaining_pct", "alarms",
)


def _milli(value):
    """Integer thousandths as a fixed-point string: 12345 -> '12.345' (deterministic)."""
    sign = "-" if value < 0 else ""
    whole, frac = divmod(abs(value), 1000)
    return "%s%d.%03d" % (sign, whole, frac)


class Run:
    """One headless run.  sink(dict) receives every event; sample(dict) every hourly row."""

    def __init__(self, config, days=None, seed=None, sink=None, sample=None, progress=None):
        self.config = config
        self.days = config["days"] if days is None else days
        self.seed = config["seed"] if seed is None else seed
        self.sink = sink
        self.sample = sample
        self.progress = progress
        self.model = dict(pump_module.MODEL)
        self.model.update(config.get("model") or {})
        m = self.model
        self.board = SimBoard(
            seed=self.seed, stroke_nl=m["stroke_nl"],
            reservoir_capacity_nl=m["reservoir_capacity_nl"],
            battery_capacity_nah=m["battery_capacity_nah"],
            battery_quiescent_na=m["quiescent_na"], stroke_charge_nah=m["stroke_charge_nah"],
        )
        self.patient_rng = SimRng(self.seed ^ 0x5EED5EED)
        self.start_wall_ms = config["start_wall_ms"]
        self.end_ms = self.days * MS_PER_DAY
        self.counts = {"refills": 0, "resets": 0, "patient_requests": 0,
                       "patient_boluses": 0, "refused": 0}
        self.alarm_counts = {}
        self.refusals = {}          # "request: reason" -> {count, first, value, limit}
        self.programmed_ng = 0
        self._programmed_rate = 0      # ug/day the program currently asks for
        self._programmed_since = 0
        self.pump = None
        self._boot()

    # -- events ---------------------------------------------------------------------------

    def _emit(self, record):
        if self.sink is not None:
            self.sink(record)

    def _on_pump_event(self, seq, t_ms, code, args):
        record = decode(seq, t_ms, code, args)
        name = record["event"]
        if name == "alarm_raised":
            self.alarm_counts[record["alarm"]] = self.alarm_counts.get(record["alarm"], 0) + 1
        elif name == "refused":
            self.counts["refused"] += 1
            key = "%s: %s" % (record["request"], record["reason"])
            entry = self.refusals.get(key)
            if entry is None:
                # The first one's value and limit stand for the rest (usually all alike).
                self.refusals[key] = {"count": 1, "first": record["time"],
                                      "value": record["value"], "limit": record["limit"]}
            else:
                entry["count"] += 1
        elif name == "bolus_start":
            self.programmed_ng += record["dose_ug"] * 1000
            if record["kind"] == "patient":
                self.counts["patient_boluses"] += 1
        self._emit(record)
        self._track_programmed()

    def _sim_event(self, name, **fields):
        # Simulator records carry no seq: seq numbers are the pump's own log sequence.
        now = self.board.clock.true_ms
        record = {"t_ms": self.start_wall_ms + now,
                  "time": iso_ms(self.start_wall_ms + now), "src": "sim", "event": name}
        record.update(fields)
        self._emit(record)

    def _track_programmed(self):
        # The dose the program asked for, integrated exactly between changes (the log tells
        # every change): the yardstick for "delivered vs programmed".
        if self.pump is None:
            return
        now = self.board.clock.true_ms
        self.programmed_ng += self._programmed_rate * (now - self._programmed_since) * 1000 // MS_PER_DAY
        self._programmed_since = now
        p = self.pump
        halted_by_stop = not p.therapy_on or p.program is None
        self._programmed_rate = 0 if halted_by_stop else p.current_basal_ug_per_day

    # -- pump lifecycle ---------------------------------------------------------------------

    def _boot(self):
        self.pump = Pump(self.board, self.model, wall_ms=self.start_wall_ms + self.board.clock.true_ms)
        self.pump.log.listener = self._on_pump_event
        restored = self.pump.boot()
        self._track_programmed()
        return restored

    def _reboot(self, why):
        self.counts["resets"] += 1
        self._sim_event("reset", cause=why)
        self.pump = None
        self._boot()

    def _setup(self):
        c = self.config
        p = self.pump
        self._check("set_limits", p.set_limits(c.get("limits") or {}))
        residual = self.board.reservoir.refill(c["fill_nl"], c["concentration_ug_per_ml"])
        self._sim_event("fill", volume_nl=c["fill_nl"], residual_nl=residual)
        self._check("refill", p.refill(c["fill_nl"], c["concentration_ug_per_ml"]))
        self._check("set_low_reservoir_alarm", p.set_low_reservoir_alarm(c["low_reservoir_alarm_nl"]))
        pb = c.get("patient_bolus")
        if pb:
            self._check("set_patient_bolus", p.set_patient_bolus(
                pb["dose_ug"], pb["duration_ms"], pb["lockout_ms"], pb["max_per_24h"], c.get("confirm", False)))
        if c["therapy"] is not None:        # None: a pump waiting for its programmer
            self._program(c["therapy"], c.get("confirm", False))

    def _program(self, therapy, confirm):
        if therapy["mode"] == "continuous":
            return self._check("program", self.pump.program_continuous(therapy["basal_ug_per_day"], confirm))
        return self._check("program", self.pump.program_flex(therapy["steps"], confirm))

    def _check(self, what, outcome):
        if outcome != reasons.OK:
            refusal = self.pump.refusal
            fields = {"request": what, "reason": reasons.name(outcome)}
            if refusal and refusal[1]:
                fields.update(field=refusal[1], value=refusal[2], allowed_max=refusal[4])
            self._sim_event("request_refused", **fields)
        return outcome

    # -- the action plan --------------------------------------------------------------------

    def _plan(self):
        """All actions of the run, sorted: (t_ms, order, action dict)."""
        plan = []
        order = 0
        for action in self.config.get("timeline") or ():
            if action["t_ms"] <= self.end_ms:
                plan.append((action["t_ms"], order, action))
                order += 1
        refills = self.config.get("refills")
        if refills:
            t = refills["first_ms"]
            while t <= self.end_ms:
                plan.append((t, order, {"action": "refill", "volume_nl": refills["volume_nl"],
                                        "concentration_ug_per_ml": refills["concentration_ug_per_ml"],
                                        "bridge": refills["bridge"]}))
                order += 1
                t += refills["every_ms"]
        mean = self.config.get("patient_requests_per_day") or 0
        if mean and self.config.get("patient_bolus"):
            rng = self.patient_rng
            midnight_offset = self.start_wall_ms % MS_PER_DAY
            for day in range(self.days + 1):
                # Binomial(2 * mean, 1/2) presses a day, at uniform times while awake.
                presses = 0
                for _ in range(2 * mean):
                    presses += rng.next_u32() & 1
                for _ in range(presses):
                    minute = _AWAKE_FROM_MIN + rng.next_u32() % _AWAKE_MINUTES
                    t = day * MS_PER_DAY + minute * 60000 - midnight_offset
                    if 0 <= t <= self.end_ms:
                        plan.append((t, order, {"action": "patient_bolus"}))
                        order += 1
        plan.sort(key=lambda entry: (entry[0], entry[1]))
        return plan

    def _perform(self, action):
        p = self.pump
        kind = action["action"]
        if kind == "patient_bolus":
            self.counts["patient_requests"] += 1
            self._sim_event("patient_press")
            return self._check(kind, p.patient_bolus())
        if kind == "refill":
            residual = self.board.reservoir.refill(action["volume_nl"], action["concentration_ug_per_ml"])
            self.counts["refills"] += 1
            self._sim_event("refill", volume_nl=action["volume_nl"], residual_true_nl=residual,
                            residual_estimate_nl=max(0, p.doser.reservoir_nl()))
            return self._check(kind, p.refill(action["volume_nl"], action["concentration_ug_per_ml"],
                                              action.get("bridge", False)))
        self._sim_event("action", action=kind)
        if kind == "program":
            return self._program({"mode": "continuous", "basal_ug_per_day": action["basal_ug_per_day"]},
                                 action.get("confirm", False))
        if kind == "program_flex":
            return self._program({"mode": "flex", "steps": action["steps"]}, action.get("confirm", False))
        if kind == "clinician_bolus":
            return self._check(kind, p.clinician_bolus(action["dose_ug"], action["duration_ms"],
                                                       action.get("confirm", False)))
        if kind == "set_patient_bolus":
            return self._check(kind, p.set_patient_bolus(action["dose_ug"], action["duration_ms"],
                                                         action["lockout_ms"], action["max_per_24h"],
                                                         action.get("confirm", False)))
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

    def _sample(self):
        p = self.pump
        b = self.board
        status = p.status()
        now = b.clock.true_ms
        self._track_programmed()
        capacity = self.model["battery_capacity_nah"]
        row = {
            "t_ms": self.start_wall_ms + now,
            "time": iso_ms(self.start_wall_ms + now),
            "day": _milli(now // 86400),
            "therapy": status["therapy"],
            "reservoir_alarm": status["reservoir"],
            "battery_alarm": status["battery"],
            "basal_ug_per_day": status["basal_ug_per_day"] if status["therapy_on"] else 0,
            "reservoir_estimate_ul": _milli(status["reservoir_nl"]),
            "reservoir_true_ul": _milli(b.reservoir.volume_nl),
            "delivered_ug": _milli(p.delivered_ng()),
            "delivered_true_ug": _milli(b.motor.delivered_ng),
            "programmed_ug": _milli(self.programmed_ng),
            "battery_mv": status["battery_mv"],
            "battery_remaining_pct": _milli(status["battery_remaining_nah"] * 100000 // capacity),
            "alarms": "|".join(status["alarms"]),
        }
        if self.sample is not None:
            self.sample(row)

    def _guarded(self, fn, *args):
        """Run fn; a simulated power loss reboots the pump from storage, as hardware would."""
        try:
            return fn(*args)
        except PowerLost as exc:
            self._reboot("power_lost: %s" % exc)
            return None

    def run(self):
        wall_start = time.perf_counter()
        self._sim_event("start", scenario=self.config["name"], days=self.days, seed=self.seed)
        self._guarded(self._setup)
        plan = self._plan()
        index = 0
        next_sample = 0
        clock = self.board.clock
        while True:
            next_action = plan[index][0] if index < len(plan) else self.end_ms + 1
            target = min(next_sample, next_action, self.end_ms)
            self._guarded(self._advance, target)
            if clock.true_ms < target:
                continue        # a power loss stopped the advance early: resume it
            if target == next_action:
                self._guarded(self._perform, plan[index][2])
                self._track_programmed()
                index += 1
                continue
            if target == next_sample:
                self._sample()
                next_sample += SAMPLE_MS
                if self.progress is not None:
                    self.progress(target, self.end_ms)
            if target >= self.end_ms and next_action > self.end_ms:
                break
        wall_s = time.perf_counter() - wall_start
        self._sim_event("end")
        return self.summary(wall_s)

    def _advance(self, target):
        self.pump.sched.run_until(target)

    def summary(self, wall_s):
        p = self.pump
        b = self.board
        status = p.status()
        self._track_programmed()
        programmed_ug = self.programmed_ng // 1000
        delivered_true_ug = b.motor.delivered_ng // 1000
        sim_s = self.end_ms // 1000
        return {
            "scenario": self.config["name"],
            "days": self.days,
            "seed": self.seed,
            "start": iso_ms(self.start_wall_ms),
            "end": iso_ms(self.start_wall_ms + self.end_ms),
            "final_state": {"therapy": status["therapy"], "reservoir": status["reservoir"],
                            "battery": status["battery"]},
            "active_alarms": status["alarms"],
            "programmed_ug": programmed_ug,
            "delivered_ug": p.delivered_ng() // 1000,
            "delivered_true_ug": delivered_true_ug,
            "delivered_vs_programmed_pct": round(100.0 * delivered_true_ug / programmed_ug, 2) if programmed_ug else None,
            "strokes": b.motor.strokes,
            "reservoir_estimate_ul": status["reservoir_nl"] // 1000,
            "reservoir_true_ul": b.reservoir.volume_nl // 1000,
            "refills": self.counts["refills"],
            "patient_requests": self.counts["patient_requests"],
            "patient_boluses": self.counts["patient_boluses"],
            "refused_requests": self.counts["refused"],
            "refusals": dict(sorted(self.refusals.items())),
            "resets": self.counts["resets"],
            "alarms_raised": dict(sorted(self.alarm_counts.items())),
            "tones": {"two_tone": b.annunciator.counts[2], "single_tone": b.annunciator.counts[1]},
            "battery_remaining_pct": round(100.0 * status["battery_remaining_nah"] / self.model["battery_capacity_nah"], 2),
            "wall_seconds": round(wall_s, 3),
            "speedup": round(sim_s / wall_s) if wall_s > 0 else None,
        }


class OutputFiles:
    """Writes DIR/events.jsonl (one JSON object a line) and DIR/timeseries.csv as a run goes."""

    def __init__(self, directory):
        import os
        os.makedirs(directory, exist_ok=True)
        self.events_path = os.path.join(directory, "events.jsonl")
        self.timeseries_path = os.path.join(directory, "timeseries.csv")
        self._events = open(self.events_path, "w", encoding="utf-8", newline="\n")
        self._series = open(self.timeseries_path, "w", encoding="utf-8", newline="\n")
        self._series.write(",".join(TIMESERIES_COLUMNS) + "\n")

    def event(self, record):
        self._events.write(json.dumps(record, separators=(",", ":")) + "\n")

    def row(self, row):
        self._series.write(",".join(str(row[c]) for c in TIMESERIES_COLUMNS) + "\n")

    def close(self):
        self._events.close()
        self._series.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def run_scenario(config, days=None, seed=None, out_dir=None, progress=None):
    """Run a validated scenario; write outputs to out_dir if given.  Returns the summary."""
    if out_dir is None:
        return Run(config, days, seed, progress=progress).run()
    with OutputFiles(out_dir) as files:
        return Run(config, days, seed, sink=files.event, sample=files.row, progress=progress).run()
