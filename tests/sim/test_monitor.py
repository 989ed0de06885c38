"""The invariant monitor (sim/monitor.py): silent on a pump that keeps its rules, and it catches
each rule broken.  To break a rule the tests sabotage the real firmware for one run (a mutation:
one guard, action or constant changed with monkeypatch), then check that the monitor names the
requirement; `vpump run` writes the violation to events.jsonl and the summary and exits 3."""

import io
import json

import pytest

from firmware import snapshot, therapy
from firmware.bolus import Boluses
from firmware.persist import Persist
from firmware.pump import Pump
from firmware.reservoir import Reservoir
from firmware.therapy import Therapy
from sim.monitor import REQUIREMENTS, flex_rate_ug_per_day, program_daily_ug
from sim.runner import Run
from simtest import MS_PER_HOUR, base_config, run, run_shipped
from tools import cli

MS_PER_MIN = 60000
PATIENT_BOLUS = {"dose_ug": 25, "duration_ms": 10 * MS_PER_MIN, "lockout_ms": 3 * MS_PER_HOUR,
                 "max_per_24h": 2}


def action(t_ms, name, **fields):
    entry = {"t_ms": t_ms, "action": name}
    entry.update(fields)
    return entry


def reqs(summary):
    return sorted(set(v["req"] for v in summary["violations"]))


def test_a_shipped_scenario_keeps_every_rule_and_an_unchecked_run_says_so():
    r, summary, events, _ = run_shipped("late-refill-empty")
    assert summary["violations"] == [] and summary["violation_counts"] == {}
    assert not [e for e in events if e["event"] == "violation"]
    unchecked = Run(base_config(days=1), check=False).run()
    assert unchecked["violations"] is None


def test_the_monitor_never_changes_the_run():
    cfg = base_config(days=3, patient_bolus=PATIENT_BOLUS, patient_requests_per_day=4,
                      timeline=[action(30 * MS_PER_HOUR, "reset")])
    checked, unchecked = [], []
    Run(cfg, sink=checked.append).run()
    Run(cfg, sink=unchecked.append, check=False).run()
    drop = ("wall_seconds", "speedup")
    assert [e for e in checked if e["event"] != "end"] == \
        [e for e in unchecked if e["event"] != "end"]
    assert not any(k in e for e in checked for k in drop)


def _sabotage_no_stall_alarm(mp):
    mp.setattr(Therapy, "halt_motor_stall", lambda self, arg: self.pump.bolus.cut())


def _sabotage_double_basal(mp):
    mp.setattr(therapy, "UG_RATE_Q", 2 * therapy.UG_RATE_Q)


def _sabotage_no_low_alarm(mp):
    mp.setattr(Reservoir, "raise_low_reservoir", lambda self, arg: None)


def _sabotage_log_restarts(mp):
    take = snapshot.take

    def without_log_seq(pump):
        s = take(pump)
        del s["log_seq"]
        return s
    mp.setattr(Pump, "_log_next_seq", lambda self: 1)
    mp.setattr(snapshot, "take", without_log_seq)
    # (the log ring itself refuses a seq it holds: it must be broken too, storing nothing)
    mp.setattr(Persist, "log_append", lambda self, seq, t_ms, code, args: None)


def _sabotage_no_lockout(mp):
    mp.setattr(Boluses, "lockout_running", lambda self, arg: False)
    mp.setattr(Boluses, "_patient_bolus_refusal", lambda self: 0)


def _sabotage_stop_keeps_basal(mp):
    mp.setattr(Therapy, "stop", lambda self, arg: None)
    mp.setattr(therapy, "_DELIVERY_STATES", therapy._DELIVERY_STATES + ("idle",))


def _sabotage_boot_forgets_program(mp):
    restore = snapshot.restore

    def forgetful(pump, s):
        out = restore(pump, s)
        pump.therapy.program = None
        return out
    mp.setattr(snapshot, "restore", forgetful)


def _sabotage_no_hard_limit(mp):
    mp.setattr(therapy.limits, "check_daily", lambda *args: None)


MUTANTS = [
    # (requirement, sabotage, scenario fields)
    ("SR-07", _sabotage_no_stall_alarm,
     {"faults": [{"t_ms": MS_PER_HOUR, "duration_ms": MS_PER_HOUR, "kind": "motor_stall",
                  "number": 1}]}),
    ("SR-01", _sabotage_double_basal, {}),
    ("SR-10", _sabotage_no_low_alarm, {"fill_nl": 2100000}),
    ("SR-15", _sabotage_log_restarts, {"timeline": [action(2 * MS_PER_HOUR, "reset")]}),
    ("SR-11", _sabotage_no_lockout,
     {"patient_bolus": PATIENT_BOLUS,
      "timeline": [action(MS_PER_HOUR, "patient_bolus"), action(2 * MS_PER_HOUR, "patient_bolus")]}),
    ("SR-12", _sabotage_no_lockout,
     {"patient_bolus": PATIENT_BOLUS,
      "timeline": [action(h * MS_PER_HOUR, "patient_bolus") for h in (1, 2, 3)]}),
    ("SR-02", _sabotage_stop_keeps_basal, {"timeline": [action(MS_PER_HOUR, "stop")]}),
    ("SR-17", _sabotage_boot_forgets_program, {"timeline": [action(2 * MS_PER_HOUR, "reset")]}),
    ("SR-14", _sabotage_no_hard_limit,
     {"timeline": [action(MS_PER_HOUR, "program", basal_ug_per_day=5000, confirm=True)]}),
]


@pytest.mark.parametrize("req, sabotage, fields", MUTANTS, ids=[m[0] + "-" + m[1].__name__[10:]
                                                                  for m in MUTANTS])
def test_each_rule_broken_in_the_firmware_is_caught(monkeypatch, req, sabotage, fields):
    cfg = base_config(days=1, **fields)
    r, summary, _, _ = run(cfg)
    assert summary["violations"] == [], "the unbroken firmware keeps the rule"
    sabotage(monkeypatch)
    r, summary, events, _ = run(cfg)
    assert req in reqs(summary)
    record = [e for e in events if e["event"] == "violation" and e["req"] == req][0]
    assert record["kind"] == "violation" and record["src"] == "monitor"
    assert record["message"].startswith(REQUIREMENTS[req])
    assert isinstance(record["t_ms"], int) and record["time"].startswith("2026-01-05")


def test_vpump_run_reports_violations_and_exits_3(monkeypatch, tmp_path):
    _sabotage_no_low_alarm(monkeypatch)
    path = tmp_path / "low.toml"
    path.write_text('[scenario]\nname = "low"\ndays = 1\n[drug]\nconcentration_ug_per_ml = 500\n'
                    'fill_ul = 2100\n[therapy]\nmode = "continuous"\nbasal_ug_per_day = 400\n',
                    encoding="utf-8")
    out, err = io.StringIO(), io.StringIO()
    status = cli.main(["run", str(path), "--out", str(tmp_path / "out"), "--quiet"], out, err)
    assert status == 3
    assert "safety     1 VIOLATIONS (SR-10 x1)" in out.getvalue()
    assert "SR-10 at 2026-01-05" in out.getvalue()
    records = [json.loads(line) for line in open(tmp_path / "out" / "events.jsonl")]
    assert [r["req"] for r in records if r.get("kind") == "violation"] == ["SR-10"]
    out = io.StringIO()
    assert cli.main(["run", str(path), "--out", str(tmp_path / "out"), "--quiet", "--json"],
                    out, err) == 3
    summary = json.loads(out.getvalue())
    assert [sorted(v) for v in summary["violations"]] == [["message", "req", "t_ms"]]
    out = io.StringIO()
    assert cli.main(["run", str(path), "--out", str(tmp_path / "out"), "--quiet",
                     "--no-check"], out, err) == 0
    assert "not checked (--no-check)" in out.getvalue()


def test_flex_rate_and_daily_dose_are_computed_independently():
    steps = [[[0, 200], [480, 500], [1200, 100]]] * 7
    program = {"mode": "flex", "steps": steps}
    monday_0900 = 1767603600000
    assert flex_rate_ug_per_day(program, monday_0900) == 500
    assert flex_rate_ug_per_day(program, monday_0900 - 2 * MS_PER_HOUR) == 200
    assert program_daily_ug(program) == (200 * 480 + 500 * 720 + 100 * 240) // 1440
    assert program_daily_ug({"mode": "continuous", "basal_ug_per_day": 7}) == 7
