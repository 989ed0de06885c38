"""Headless runs: the real firmware on the simulated board, in virtual time.

A run takes a validated scenario (sim/scenario/), builds a SimBoard and a Pump, sets the pump
up the way a clinician would at implant (clock, limits, fill, alarm volume, program, patient
bolus), then replays the scenario's timeline, periodic refills and the patient's button presses
while the firmware's scheduler jumps from deadline to deadline.  Every firmware log entry and
every action the simulator takes goes to the event sink in order; the board is sampled hourly
for the time series.  Same scenario and seed: the same events, byte for byte.

The replay itself is sim/replay.py (portable: the same code drives the firmware under
MicroPython for tests/golden/); Run adds the host's event records, samples and summary.
"""

import json
import time

from firmware.dosing import MS_PER_DAY
from sim.events import decode, iso_ms
from sim.linkstory import LinkStory
from sim.patient import EDUCATIONAL_LABEL, PatientModel
from sim.replay import Replay

MS_PER_HOUR = 3600000
SAMPLE_MS = MS_PER_HOUR             # a timeseries row an hour
PATIENT_STEP_MS = 10 * 60000        # the patient model steps every 10 min (a bolus lasts 10+)
_STEPS_PER_ROW = SAMPLE_MS // PATIENT_STEP_MS

TIMESERIES_COLUMNS = (
    "t_ms", "time", "day", "therapy", "reservoir_alarm", "battery_alarm", "basal_ug_per_day",
    "reservoir_estimate_ul", "reservoir_true_ul", "delivered_ug", "delivered_true_ug",
    "programmed_ug", "battery_mv", "battery_remaining_pct", "alarms", "delivered_csf_ug",
    "csf_ng_per_ml", "tone_score", "overdose", "withdrawal_risk", "battery_true_remaining_pct",
    "clock_offset_s",
)

# The battery's milestones the summary reports (firmware alarms; docs/battery-and-clock.md).
_BATTERY_ALARMS = ("elective_replacement", "end_of_service")
_MS_PER_YEAR = 365 * MS_PER_DAY


def _milli(value):
    """Integer thousandths as a fixed-point string: 12345 -> '12.345' (deterministic)."""
    sign = "-" if value < 0 else ""
    whole, frac = divmod(abs(value), 1000)
    return "%s%d.%03d" % (sign, whole, frac)


def _hours(ms):
    """Milliseconds as hours: a whole number when whole, else one decimal."""
    tenths = (ms * 10 + MS_PER_HOUR // 2) // MS_PER_HOUR
    return tenths // 10 if tenths % 10 == 0 else tenths / 10.0


class Run(Replay):
    """One headless run.  sink(dict) receives every event; sample(dict) every hourly row.

    The replay itself (setup, plan, actions, resets, the loop) is sim/replay.py's, the same code
    that drives the firmware under MicroPython; this adds the host's records and summary."""

    sample_ms = SAMPLE_MS       # _sample(): six 10-min patient steps, then a timeseries row

    def __init__(self, config, days=None, seed=None, sink=None, sample=None, progress=None,
                 board=None, check=True, storage=None, resume_ms=0):
        # check: run the invariant monitor (sim/monitor.py); its violations go to the sink as
        # "violation" records and to the summary.
        self.monitor = None
        if check:
            from sim.monitor import Monitor
            self.monitor = Monitor(self, on_violation=self._on_violation)
        self.sink = sink
        self.sample = sample
        self.progress = progress
        self.alarm_counts = {}
        self.battery_milestones = {}    # alarm -> _battery_snapshot() when first raised
        self.refusals = {}          # "request: reason" -> {count, first, value, limit}
        self.link_story = LinkStory()   # what a noisy telemetry link did, for the summary
        self.programmed_ng = 0
        self._programmed_rate = 0      # ug/day the program currently asks for
        self._programmed_since = 0
        # The educational patient model (sim/patient.py), stepped every 10 min with the dose
        # that really reached the CSF; the time its flags are up is counted for the summary.
        self.patient = PatientModel()
        self._patient_t_ms = 0
        # What reached the CSF in each 10-min step of the hour being sampled, binned as it
        # happens (a stroke, an injection), so the loop wakes hourly, not every 10 min.
        self._csf_bins = [0] * _STEPS_PER_ROW
        self.patient_flag_ms = {"overdose": 0, "withdrawal_risk": 0}
        self._patient_state = self.patient.sample()
        self.programmer_link = None
        Replay.__init__(self, config, days, seed, board=board, storage=storage,
                        resume_ms=resume_ms)
        if not self.simulated:
            # A bench board's motor knows nothing of the CSF or the true reservoir: no rows.
            self.sample_ms = 0
        else:
            self._bin_strokes(self.board.motor)
            if self.monitor is not None:
                self.monitor.install_motor_hook(self.board.motor)
        if config.get("link"):
            # [link]: clinician actions (and maybe patient presses) as programmer sessions over
            # a byte link in virtual time (sim/telemetry_link.py), instead of direct calls.
            from sim.telemetry_link import ProgrammerLink
            self.programmer_link = ProgrammerLink(self, config["link"], self.seed)

    # -- events ---------------------------------------------------------------------------

    def _emit(self, record):
        if self.sink is not None:
            self.sink(record)

    def _on_pump_event(self, seq, t_ms, code, args):
        if self.monitor is not None:
            self.monitor.log(seq, t_ms, code, args)
        record = decode(seq, t_ms, code, args)
        name = record["event"]
        if name == "alarm_raised":
            self.alarm_counts[record["alarm"]] = self.alarm_counts.get(record["alarm"], 0) + 1
            if record["alarm"] in _BATTERY_ALARMS and record["alarm"] not in self.battery_milestones:
                self.battery_milestones[record["alarm"]] = self._battery_snapshot()
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
            # A bridge bolus is the programmed basal given with the old drug still in the
            # tubing (therapy goes on at the program's rate meanwhile): not a dose on top.
            if record["kind"] != "bridge":
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
        self.link_story.add(record)
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
        halted_by_stop = not p.therapy.on or p.therapy.program is None
        self._programmed_rate = 0 if halted_by_stop else p.therapy.current_basal_ug_per_day

    def _on_booted(self):
        self._track_programmed()
        if self.monitor is not None:
            self.monitor.booted()

    def _after_action(self):
        self._track_programmed()
        if self.monitor is not None:
            self.monitor.check()

    def _on_violation(self, violation):
        record = {"t_ms": violation["t_ms"], "time": iso_ms(violation["t_ms"]), "src": "monitor",
                  "event": "violation", "kind": "violation", "req": violation["req"],
                  "message": violation["message"]}
        self._emit(record)

    # -- the programmer's link ([link], sim/telemetry_link.py) ------------------------------

    def _perform(self, action):
        if self.monitor is not None:
            self.monitor.check()        # what the scheduled events since the last check left
        link = self.programmer_link
        if link is not None and self.powered and link.takes(action):
            return link.perform(action)
        injected = self.injected_csf_ng
        outcome = Replay._perform(self, action)     # in a brown-out: lost ("unpowered")
        if self.injected_csf_ng != injected:
            self._bin_csf(self.injected_csf_ng - injected)
        return outcome

    def _fault_link_noise(self, active, phase, fault):
        # The portable Replay has no link; here the fault's rules go on the link's Manipulators
        # for its window (overlapping faults: the rules of every active one apply).
        link = self.programmer_link
        if link is None:
            return
        noise = list(link.noise)
        if phase == "start":
            noise.append(fault)
        elif phase == "end" and fault in noise:
            noise.remove(fault)
        link.set_noise(noise)

    # -- the loop ---------------------------------------------------------------------------

    def _csf_ng(self):
        # What reached the CSF: through the catheter, plus injections that bypass the pump.
        return self.board.motor.csf_ng + self.injected_csf_ng

    def _bin_strokes(self, motor):
        # Wrap the simulated motor's stroke: what each stroke sends to the CSF goes into the
        # 10-min bin of its moment (a host-only hook, one call a stroke).
        inner = motor.stroke
        clock = self.board.clock
        bins = self._csf_bins
        last = _STEPS_PER_ROW - 1

        def stroke():
            before = motor.csf_ng
            result = inner()
            if motor.csf_ng != before:
                # _bin_csf inlined: this runs for every stroke of a year-long run.
                k = (clock.true_ms - self._patient_t_ms - 1) // PATIENT_STEP_MS
                bins[k if 0 <= k <= last else (0 if k < 0 else last)] += motor.csf_ng - before
            return result
        motor.stroke = stroke

    def _bin_csf(self, ng):
        # A dose at the sample's own moment belongs to the step that ends there (the last).
        k = (self.board.clock.true_ms - self._patient_t_ms - 1) // PATIENT_STEP_MS
        self._csf_bins[k if 0 <= k < _STEPS_PER_ROW else (0 if k < 0 else _STEPS_PER_ROW - 1)] += ng

    def _step_patient(self, now):
        # The hour since the last sample in 10-min steps, each with its own dose, through
        # advance() and flags(): the unchecked fast path (doses are never negative).
        patient = self.patient
        bins = self._csf_bins
        t = self._patient_t_ms
        for k in range(_STEPS_PER_ROW):
            if t >= now:
                break
            dt_ms = min(PATIENT_STEP_MS, now - t)
            patient.advance(dt_ms, bins[k] / 1000.0)
            bins[k] = 0
            overdose, withdrawal = patient.flags()
            if overdose:
                self.patient_flag_ms["overdose"] += dt_ms
            if withdrawal:
                self.patient_flag_ms["withdrawal_risk"] += dt_ms
            t += dt_ms
        self._patient_state = None      # sampled when a row or the summary asks
        self._patient_t_ms = now

    def _patient_now(self):
        if self._patient_state is None:
            self._patient_state = self.patient.sample()
        return self._patient_state

    def _patient_columns(self):
        state = self._patient_now()
        return {"csf_ng_per_ml": "%.1f" % state["csf_ng_per_ml"],
                "tone_score": "%.2f" % state["tone_score"],
                "overdose": int(state["overdose"]),
                "withdrawal_risk": int(state["withdrawal_risk"])}

    def _sample(self):
        # Every hour: the patient's six 10-min steps, then a timeseries row.
        now = self.board.clock.true_ms
        if self.monitor is not None:
            self.monitor.check()
        self._step_patient(now)
        p = self.pump
        b = self.board
        status = p.status()
        if not self.powered:
            # A brown-out holds the MCU in reset: the last status is frozen, nothing runs.
            status["therapy"] = "unpowered"
            status["therapy_on"] = False
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
            "delivered_ug": _milli(p.reservoir.delivered_ng()),
            "delivered_true_ug": _milli(b.motor.delivered_ng),
            "programmed_ug": _milli(self.programmed_ng),
            "battery_mv": status["battery_mv"],
            "battery_remaining_pct": _milli(status["battery_remaining_nah"] * 100000 // capacity),
            "alarms": "|".join(status["alarms"]),
            "delivered_csf_ug": _milli(self._csf_ng()),
        }
        row.update(self._patient_columns())
        row["battery_true_remaining_pct"] = _milli(b.battery.remaining_nah() * 100000
                                                   // b.battery.capacity_nah)
        row["clock_offset_s"] = _milli(self._clock_offset_ms())
        if self.sample is not None:
            self.sample(row)
        if self.progress is not None:
            self.progress(now, self.end_ms)

    # -- battery and clock ([models] battery, clock_*: docs/battery-and-clock.md) -----------

    def _clock_offset_ms(self):
        # The pump's wall clock minus the true one: crystal drift, and any set_clock since.
        return self.pump.wall_ms() - (self.start_wall_ms + self.board.clock.true_ms)

    def _battery_snapshot(self):
        # Where the firmware's count and the true cell stood when a battery alarm came.
        p = self.pump
        cell = self.board.battery
        now = self.board.clock.true_ms
        left = self.model["battery_capacity_nah"] - p.battery.used_nah()
        out = {"day": _milli(now // 86400), "years": round(now / _MS_PER_YEAR, 3),
               "time": iso_ms(self.start_wall_ms + now),
               "firmware_remaining_nah": left if left > 0 else 0}
        if self.simulated:      # a bench board's battery is real: no true charge to show
            out["true_remaining_nah"] = cell.remaining_nah()
        if self.cell is not None:
            out["loaded_mv"] = cell.loaded_mv()
            out["rest_mv"] = cell.rest_mv()
        return out

    def _battery_summary(self):
        b = self.board.battery
        out = {"nominal_capacity_nah": self.model["battery_capacity_nah"]}
        if self.simulated:
            out["true_capacity_nah"] = b.capacity_nah
            out["true_remaining_nah"] = b.remaining_nah()
        if self.cell is not None:
            out["chemistry"] = self.cell.chemistry
            out["true_self_discharged_nah"] = self.cell.self_discharged_nah()
            out["telemetry_sessions"] = self.cell.sessions
        for alarm in _BATTERY_ALARMS:
            key = "eri" if alarm == "elective_replacement" else "eos"
            out[key] = self.battery_milestones.get(alarm)
        return out

    def run(self):
        wall_start = time.perf_counter()
        self._sim_event("start", scenario=self.config["name"], days=self.days, seed=self.seed)
        Replay.run(self)
        if self.monitor is not None:
            self.monitor.finish()
        wall_s = time.perf_counter() - wall_start
        self._sim_event("end")
        return self.summary(wall_s)

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
            "delivered_ug": p.reservoir.delivered_ng() // 1000,
            "delivered_true_ug": delivered_true_ug,
            "delivered_to_csf_ug": self._csf_ng() // 1000,
            "injected_to_csf_ug": self.injected_csf_ng // 1000,     # of it, bypassing the pump
            "patient": {"model": EDUCATIONAL_LABEL,
                        "csf_ng_per_ml": round(self._patient_now()["csf_ng_per_ml"], 1),
                        "tone_score": round(self._patient_now()["tone_score"], 2),
                        "overdose_hours": _hours(self.patient_flag_ms["overdose"]),
                        "withdrawal_risk_hours": _hours(self.patient_flag_ms["withdrawal_risk"])},
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
            "battery": self._battery_summary(),
            "clock_offset_s": round(self._clock_offset_ms() / 1000.0, 3),
            # The invariant monitor's findings (sim/monitor.py): [{"req", "t_ms", "message"}],
            # at most MAX_RECORDS_PER_REQ per requirement; None when the run was not checked.
            "violations": list(self.monitor.violations) if self.monitor is not None else None,
            "violation_counts": dict(sorted(self.monitor.counts.items()))
            if self.monitor is not None else None,
            "link": self.link_story.as_dict(),
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


def run_scenario(config, days=None, seed=None, out_dir=None, progress=None, check=True):
    """Run a validated scenario; write outputs to out_dir if given.  Returns the summary.
    check: the invariant monitor on (the default) or off."""
    if out_dir is None:
        return Run(config, days, seed, progress=progress, check=check).run()
    with OutputFiles(out_dir) as files:
        return Run(config, days, seed, sink=files.event, sample=files.row, progress=progress,
                   check=check).run()
