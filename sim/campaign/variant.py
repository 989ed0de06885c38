"""One campaign run: a variant's scenario through the in-process runner, measured.

run_variant(variant) -> result dict never raises: a run that crashes is a result with
"crash": True and its traceback, so one bad run is counted, not the campaign's end.  It is a
top-level function of an importable module, so a process pool or a Dask worker can run it.

What a run measures (docs/campaigns.md "Rows"):
- per fault occurrence: when it started, how long until the pump showed it (DETECTED_BY), and
  the drug missed or over-delivered from its start until clinic_hours after it ended (what the
  program asked for vs what reached the CSF, from the hourly samples around that window);
- per run: dose programmed / delivered / to the CSF, the patient model's withdrawal-risk and
  overdose hours, alarms, and the invariant monitor's violations (summary "violations").
"""

import bisect
import copy
import inspect
import time
import traceback

from firmware.dosing import MS_PER_DAY
from hal.sim import SimRng
from sim import scenario as scenario_module
from sim.campaign.spec import INSTANT_FAULTS
from sim.replay import plan

MS_PER_HOUR = 3600000
MS_PER_YEAR = 365 * MS_PER_DAY
KEEP_VIOLATIONS = 20        # violation records kept per run (all are counted)

# What shows the pump (or the programmer talking to it) noticed a fault, per kind: a pump
# record ("src": "pump") event name, or (event, alarm) for an alarm_raised, or a sim record
# that only exists because the pump answered (pump_nak).  A kind with none (dislodgement,
# occlusion: the pump cannot see them) is "undetected" unless an alarm it causes shows up.
DETECTED_BY = {
    "motor_stall": (("alarm_raised", "motor_stall"),),
    "mri": (("alarm_raised", "motor_stall"),),
    "occlusion": (("alarm_raised", "motor_stall"),),
    "dislodgement": (),
    "storage_fail": (("commit_failed", None), ("alarm_raised", "memory_fault")),
    "power_loss": (("boot", None),),
    "brown_out": (("boot", None),),
    "bit_flip": (("storage_corrupt", None), ("alarm_raised", "memory_fault")),
    "link_noise": (("pump_nak", None),),
}
_WATCHED = set(name for ways in DETECTED_BY.values() for name, _alarm in ways)


class _Collector:
    """The run's sink and sample hooks: fault windows, detections, hourly dose totals."""

    def __init__(self, start_wall_ms):
        self.start = start_wall_ms
        self.open = []          # fault occurrences not yet detected: dicts
        self.faults = []        # every occurrence, in start order
        self.ending = {}        # (kind, number) -> occurrences waiting for their end, FIFO
        self.hours = []         # t_ms (since start) of each hourly sample
        self.programmed = []    # programmed ug at that sample
        self.to_csf = []        # ug that reached the CSF by then
        self.alarms = set()     # the pump's active alarms, from its raised/cleared records

    def event(self, record):
        name = record["event"]
        if name in ("fault_start", "fault_end", "fault_recovered"):
            self._fault(name, record)
            return
        if name == "alarm_raised":
            self.alarms.add(record["alarm"])
        elif name == "alarm_cleared":
            self.alarms.discard(record["alarm"])
        if name in _WATCHED and self.open:
            self._detect(name, record)

    def _fault(self, name, record):
        t = record["t_ms"] - self.start
        key = (record["kind"], record["fault"])
        if name == "fault_start":
            occurrence = {"kind": record["kind"], "fault": record["fault"], "start_ms": t,
                          "end_ms": None, "detected_ms": None}
            self.faults.append(occurrence)
            ways = DETECTED_BY.get(record["kind"], ())
            if any(way == "alarm_raised" and alarm in self.alarms for way, alarm in ways):
                # Already alarming (and halted) for this very condition: nothing new to see.
                occurrence["detected_ms"] = t
            else:
                self.open.append(occurrence)
            self.ending.setdefault(key, []).append(occurrence)
            return
        waiting = self.ending.get(key) or []
        for occurrence in waiting:
            # fault_end, then (mri) fault_recovered: the later one is the end of its effect.
            if name == "fault_end" and occurrence.get("ended"):
                continue
            occurrence["end_ms"] = t
            if name == "fault_end":
                occurrence["ended"] = True
            else:
                occurrence["recovered"] = True
                waiting.remove(occurrence)
            break

    def _detect(self, name, record):
        alarm = record.get("alarm")
        t = record["t_ms"] - self.start
        still = []
        for occurrence in self.open:
            end = occurrence["end_ms"]
            if end is not None and t > end and not (occurrence["kind"] == "mri"
                                                    and not occurrence.get("recovered")):
                # Over (an MRI: once its rotor turns again) without being seen: whatever
                # alarm comes now is another fault's, not this one's.
                continue
            ways = DETECTED_BY.get(occurrence["kind"], ())
            hit = any(way == name and (want is None or want == alarm) for way, want in ways)
            if hit and t >= occurrence["start_ms"]:
                occurrence["detected_ms"] = t
            else:
                still.append(occurrence)
        self.open = still

    def sample(self, row):
        self.hours.append(row["t_ms"] - self.start)
        self.programmed.append(float(row["programmed_ug"]))
        self.to_csf.append(float(row["delivered_csf_ug"]))

    def window(self, start_ms, end_ms):
        """(programmed, to CSF) ug from the sample at or before start to the one at or after
        end (hourly samples: the window is widened to whole hours on both sides)."""
        if not self.hours:
            return 0.0, 0.0
        i = max(0, bisect.bisect_right(self.hours, start_ms) - 1)
        j = min(len(self.hours) - 1, bisect.bisect_left(self.hours, end_ms))
        return (self.programmed[j] - self.programmed[i], self.to_csf[j] - self.to_csf[i])


def clinic_visits(raw, config, clinic_hours):
    """raw with a clinic visit clinic_hours after each fault occurrence ends (after its start if
    it lasts to the end of the run): the patient hears the alarm and a clinician interrogates
    the pump, clears its alarms, programs the therapy that should be in force (confirmed: after
    a memory fault the pump has lost it) and starts it, unless the scenario had stopped it.
    The fault times come from the replay's own plan."""
    if not clinic_hours or not config.get("faults"):
        return raw
    days = config["days"]
    end_ms = days * MS_PER_DAY
    delay = int(round(clinic_hours * MS_PER_HOUR))
    moments = set()
    for t, _order, action in plan(config, days, end_ms, SimRng(config["seed"])):
        if action["action"] != "fault_start":
            continue
        spec = action["spec"]
        until = t + (spec.get("duration_ms") or 0) + (spec.get("recover_ms") or 0)
        if until + delay <= end_ms:
            moments.add(until + delay)
    if not moments:
        return raw
    raw = copy.deepcopy(raw)
    start_wall = config["start_wall_ms"]
    first_day = start_wall // MS_PER_DAY
    own = _timeline_moments(raw, start_wall)
    timeline = list(raw.get("timeline") or [])
    for t in sorted(moments):
        wall = start_wall + t
        minute = -(-(wall % MS_PER_DAY) // 60000)       # up to the next whole minute
        day = wall // MS_PER_DAY - first_day
        if day * 1440 + minute + 2 > days * 1440 + (start_wall % MS_PER_DAY) // 60000:
            continue        # the visit's three steps would not fit before the end
        program = _therapy_at(raw, own, t)
        steps = [{"action": "clear_alarm"}]
        if program is not None:
            steps += [program, {"action": "start"}]
        for k, step in enumerate(steps):
            d, m = divmod(day * 1440 + minute + k, 1440)
            entry = {"day": d, "time": "%02d:%02d" % divmod(m, 60)}
            entry.update(step)
            timeline.append(entry)
    raw["timeline"] = timeline
    return raw


def _minutes_of(value):
    # A timeline time as minutes after midnight: "HH:MM" or a TOML local time.
    if value is None:
        value = scenario_module.DEFAULT_TIMELINE_TIME
    if isinstance(value, str):
        hh, mm = value.split(":")
        return int(hh) * 60 + int(mm)
    return value.hour * 60 + value.minute


def _timeline_moments(raw, start_wall):
    # [(t_ms since the start, file index, entry)] of the scenario's own timeline, sorted as
    # the replay sorts it (stable by time).
    out = []
    for i, entry in enumerate(raw.get("timeline") or []):
        t = entry["day"] * MS_PER_DAY + _minutes_of(entry.get("time")) * 60000 \
            - start_wall % MS_PER_DAY
        out.append((t, i, entry))
    out.sort(key=lambda item: (item[0], item[1]))
    return out


def _therapy_at(raw, own, t):
    # The program a clinician would re-enter at t: the scenario's [therapy], then its
    # timeline's programs; None when no program is in force or the scenario stopped therapy.
    therapy = raw["therapy"]
    program = None
    if therapy.get("mode") == "continuous":
        program = {"action": "program", "basal_ug_per_day": therapy["basal_ug_per_day"]}
    elif therapy.get("mode") == "flex":
        program = {"action": "program_flex", "flex": therapy["flex"]}
    stopped = False
    for when, _i, entry in own:
        if when > t:
            break
        action = entry["action"]
        if action == "program":
            program = {"action": "program", "basal_ug_per_day": entry["basal_ug_per_day"]}
        elif action == "program_flex":
            program = {"action": "program_flex", "flex": entry["flex"]}
        elif action == "stop":
            stopped = True
        elif action == "start":
            stopped = False
    if program is None or stopped:
        return None
    program = copy.deepcopy(program)
    program["confirm"] = True
    return program


def scenario_of(variant):
    """The variant's full scenario document (with its clinic visits) and its config."""
    source = "%s variant %s" % (variant["campaign"], variant["id"])
    config = scenario_module.validate(variant["raw"], source=source)
    raw = clinic_visits(variant["raw"], config, variant["clinic_hours"])
    if raw is not variant["raw"]:
        config = scenario_module.validate(raw, source=source)
    return raw, config


def _new_run(config, collector):
    from sim.runner import Run
    kwargs = {"sink": collector.event, "sample": collector.sample}
    # The invariant monitor is on by default in a run; say so where the runner takes a switch.
    params = inspect.signature(Run.__init__).parameters
    for name in ("check", "monitor"):
        if name in params:
            kwargs[name] = True
    return Run(config, **kwargs)


def run_config(config, patient=None, collector=None):
    """Run a validated scenario in-process with the monitor on: (summary, collector)."""
    from sim.patient import PatientModel
    collector = collector or _Collector(config["start_wall_ms"])
    run = _new_run(config, collector)
    if patient:
        run.patient = PatientModel(patient)
        run._patient_state = run.patient.sample()
    return run.run(), collector


def run_variant(variant):
    """Run one variant: its result dict (see module doc); never raises."""
    t0 = time.perf_counter()
    result = {"id": variant["id"], "fingerprint": variant["fingerprint"], "crash": False,
              "traceback": None, "summary": None, "faults": [], "violations": [],
              "violation_counts": {}}
    try:
        _raw, config = scenario_of(variant)
        summary, collector = run_config(config, variant["patient"])
        _measure(result, summary, collector, variant["clinic_hours"], config["days"])
    except Exception:
        result["crash"] = True
        result["traceback"] = traceback.format_exc()
    result["wall_s"] = round(time.perf_counter() - t0, 3)
    return result


def _measure(result, summary, collector, clinic_hours, days):
    end_ms = days * MS_PER_DAY
    settle = int(round(clinic_hours * MS_PER_HOUR))
    faults = []
    for f in collector.faults:
        end = f["end_ms"]
        if end is None:
            # An instant fault ends where it starts; any other lasts to the end of the run.
            end = f["start_ms"] if f["kind"] in INSTANT_FAULTS else end_ms
        programmed, to_csf = collector.window(f["start_ms"], min(end_ms, end + settle))
        detected = f["detected_ms"]
        faults.append({
            "kind": f["kind"], "fault": f["fault"],
            "start_h": round(f["start_ms"] / MS_PER_HOUR, 3),
            "duration_h": round((end - f["start_ms"]) / MS_PER_HOUR, 3),
            "detected": detected is not None,
            "detection_h": None if detected is None else
            round(max(0, detected - f["start_ms"]) / MS_PER_HOUR, 3),
            "missed_ug": round(max(0.0, programmed - to_csf), 3),
            "over_ug": round(max(0.0, to_csf - programmed), 3),
        })
    result["faults"] = faults
    violations = summary.get("violations") or []
    counts = summary.get("violation_counts")
    if counts is None:
        # The summary keeps a few records per requirement; its counts (when it has them) are
        # every violation.
        counts = {}
        for v in violations:
            counts[v.get("req", "?")] = counts.get(v.get("req", "?"), 0) + 1
    result["violation_counts"] = dict(sorted(counts.items()))
    result["violations"] = [dict(v) for v in violations[:KEEP_VIOLATIONS]]
    keep = ("scenario", "days", "seed", "programmed_ug", "delivered_ug", "delivered_true_ug",
            "delivered_to_csf_ug", "injected_to_csf_ug", "delivered_vs_programmed_pct",
            "alarms_raised", "final_state", "refused_requests", "resets", "refills",
            "patient_boluses", "strokes")
    small = {k: summary.get(k) for k in keep}
    small["withdrawal_risk_hours"] = summary["patient"]["withdrawal_risk_hours"]
    small["overdose_hours"] = summary["patient"]["overdose_hours"]
    result["summary"] = small
