"""Programmer sessions over a byte link in headless runs ([link]), and link faults ([[faults]]
kind = "link_noise"): the firmware's observable answer to each fault, exactly-once under resends,
a failed session that leaves the pump unchanged, determinism, validation, and the shipped
noisy-telemetry-link scenario's story (sim/telemetry_link.py)."""

import copy
import json

import pytest

from firmware.dosing import MS_PER_DAY
from sim import scenario
from sim.errors import ScenarioError
from sim.links import SEND
from sim.replay import Replay
from sim.runner import Run
from simtest import MONDAY_0800, base_config  # tests/sim/simtest.py

MS_PER_HOUR = 3600000
T_VISIT = MS_PER_DAY + MS_PER_HOUR          # day 1, 09:00


def config(link=None, timeline=None, faults=None, **overrides):
    overrides.setdefault("days", 2)
    overrides.setdefault("seed", 3)
    overrides.setdefault("concentration_ug_per_ml", 2000)
    return base_config(name="link", timeline=timeline or [], faults=faults,
                       link=link if link is not None else {"clinician": "telemetry"},
                       **overrides)


def at_visit():
    """A Run parked at the visit, its programmer link ready: (run, link, events)."""
    events = []
    run = Run(config(), sink=events.append)
    run.start()
    run.run_to(T_VISIT)
    return run, run.programmer_link, events


def sims(events, name):
    return [e for e in events if e["src"] == "sim" and e["event"] == name]


def pumps(events, name):
    return [e for e in events if e["src"] == "pump" and e["event"] == name]


PROGRAM_450 = {"action": "program", "basal_ug_per_day": 450}
BOLUS_50 = {"action": "clinician_bolus", "dose_ug": 50, "duration_ms": 1800000}


# ------------------------------------------------------------------------------ a clean link

def test_a_clean_session_programs_the_pump_through_the_link_in_virtual_time():
    run, link, events = at_visit()
    assert link.perform(PROGRAM_450) == 0
    assert run.pump.therapy.program == {"mode": "continuous", "basal_ug_per_day": 450}
    session = sims(events, "programmer_session")[-1]
    assert session["outcome"] == "ok" and session["resends"] == 0
    assert session["result"] == {"old_daily_ug": 400, "new_daily_ug": 450}
    assert session["pump_ran"] == ["PROGRAM_CONTINUOUS", "SESSION_CLOSE"]
    # Four exchanges at 960 bytes/s: a fraction of a second of pump time, none of wall time.
    assert 100 < session["duration_ms"] < 1000
    assert run.board.clock.true_ms == T_VISIT + session["duration_ms"]
    assert [e["result"] for e in pumps(events, "auth")] == ["ok"]
    assert not sims(events, "link_fault") and not sims(events, "pump_nak")


def test_without_link_actions_stay_direct_calls():
    events = []
    cfg = config(timeline=[dict(PROGRAM_450, t_ms=T_VISIT)])
    del cfg["link"]
    run = Run(cfg, sink=events.append)
    run.run()
    assert run.programmer_link is None
    assert not sims(events, "programmer_session") and not pumps(events, "auth")
    assert [e["daily_ug"] for e in pumps(events, "program")] == [400, 450]


# ------------------------------------------------------------------------------ each fault

def test_a_corrupted_request_is_naked_bad_crc_and_resent_then_applied_once():
    run, link, events = at_visit()
    link.programmer_side.corrupt(SEND, nth=3)       # OPEN, AUTH, then the command
    link.perform(PROGRAM_450)
    fault = sims(events, "link_fault")[0]
    assert (fault["direction"], fault["action"]) == ("to_pump", "corrupted")
    assert fault["frame"] == "PROGRAM_CONTINUOUS"
    assert [e["reason"] for e in sims(events, "pump_nak")] == ["bad_crc"]
    resend = sims(events, "programmer_resend")[0]
    assert (resend["cause"], resend["resend"], resend["of"]) == ("bad_crc", 1, 3)
    assert [e["daily_ug"] for e in pumps(events, "program")] == [400, 450]
    assert sims(events, "programmer_session")[-1]["outcome"] == "ok"


def test_a_lost_bolus_answer_is_resent_and_answered_from_the_cache_one_bolus():
    run, link, events = at_visit()
    link.pump_side.drop(SEND, nth=3)                # the answer to the bolus
    link.perform(BOLUS_50)
    assert sims(events, "link_fault")[0]["frame"] == "CLINICIAN_BOLUS|RESPONSE"
    resend = sims(events, "programmer_resend")[0]
    assert (resend["command"], resend["cause"]) == ("CLINICIAN_BOLUS", "no_answer")
    # The resend comes the programmer's timeout (1 s) after the bolus frame went out.
    lost = sims(events, "link_fault")[0]
    assert 900 < resend["t_ms"] - lost["t_ms"] <= 1000
    assert [e["command"] for e in sims(events, "pump_cached_answer")] == ["CLINICIAN_BOLUS"]
    assert len([e for e in pumps(events, "bolus_start") if e["kind"] == "clinician"]) == 1
    session = sims(events, "programmer_session")[-1]
    assert session["outcome"] == "ok" and session["pump_ran"].count("CLINICIAN_BOLUS") == 1
    assert session["result"] == {"dose_ug": 50, "duration_ms": 1800000}


def test_a_corrupted_answer_is_ignored_by_the_programmer_and_the_resend_is_cached():
    run, link, events = at_visit()
    link.pump_side.corrupt(SEND, nth=3)
    link.perform(PROGRAM_450)
    assert sims(events, "link_fault")[0]["frame"] == "PROGRAM_CONTINUOUS|RESPONSE"
    assert sims(events, "programmer_resend")[0]["cause"] == "no_answer"
    assert [e["command"] for e in sims(events, "pump_cached_answer")] == ["PROGRAM_CONTINUOUS"]
    assert [e["daily_ug"] for e in pumps(events, "program")] == [400, 450]


def test_a_delayed_answer_within_the_timeout_needs_no_resend():
    run, link, events = at_visit()
    link.pump_side.delay(0.5, SEND, nth=3)
    link.perform(PROGRAM_450)
    session = sims(events, "programmer_session")[-1]
    assert session["outcome"] == "ok" and session["resends"] == 0
    assert session["duration_ms"] > 500


def test_a_lost_auth_answer_is_answered_again_from_the_cache():
    # The pump keeps the answer to the SESSION_AUTH that opened the session: the programmer's
    # resend of the same frame gets it again, with no new challenge and no refusal.
    run, link, events = at_visit()
    link.pump_side.drop(SEND, nth=2)
    link.perform(PROGRAM_450)
    assert sims(events, "link_fault")[0]["frame"] == "SESSION_AUTH|RESPONSE"
    assert not sims(events, "pump_nak") and not sims(events, "programmer_reconnect")
    session = sims(events, "programmer_session")[-1]
    assert session["outcome"] == "ok" and session["resends"] == 1
    assert [e["result"] for e in pumps(events, "auth")] == ["ok"]      # authenticated once
    assert run.pump.therapy.program["basal_ug_per_day"] == 450


def test_nothing_reaching_the_pump_fails_the_session_and_leaves_the_pump_unchanged():
    run, link, events = at_visit()
    before = (dict(run.pump.therapy.program), run.pump.log.next_seq, run.pump.doser.reservoir_nl())
    link.programmer_side.drop(SEND, probability=1.0)
    assert link.perform(BOLUS_50) is None
    session = sims(events, "programmer_session")[-1]
    assert session["outcome"] == "no_session" and session["pump_ran"] == []
    assert "no answer from the pump to SESSION_OPEN after 4 tries" in session["clinician_sees"]
    assert session["resends"] == 9 and session["duration_ms"] == 12000     # 3 x 4 tries of 1 s
    assert len(sims(events, "programmer_reconnect")) == 2
    assert before == (run.pump.therapy.program, run.pump.log.next_seq, run.pump.doser.reservoir_nl())
    assert not pumps(events, "bolus_start")


def test_answers_lost_after_the_command_ran_are_a_link_failure_the_pump_did_run_it_once():
    # The hazard a handheld cannot see: the pump ran the command, every answer was lost.
    run, link, events = at_visit()
    sent = []

    def lose_after_auth(direction, data):
        sent.append(data)
        return data if len(sent) <= 2 else None

    link.pump_side.custom(lose_after_auth, direction=SEND)
    link.perform(PROGRAM_450)
    session = sims(events, "programmer_session")[-1]
    assert session["outcome"] == "link_failure"
    # Finding 5: the clinician was told it failed, and the pump did it.  Now: outcome unknown.
    assert session["clinician_sees"].startswith("program: outcome unknown: PROGRAM_CONTINUOUS")
    assert "PROGRAM_CONTINUOUS after 4 tries" in session["clinician_sees"]
    assert "fail" not in session["clinician_sees"].replace("failed", "")
    assert session["pump_ran"] == ["PROGRAM_CONTINUOUS"]
    assert len(sims(events, "pump_cached_answer")) == 3
    assert sims(events, "programmer_gave_up")[0]["tries"] == 4
    assert run.pump.therapy.program["basal_ug_per_day"] == 450


def test_a_refused_command_over_the_link_is_a_request_refused_record():
    run, link, events = at_visit()
    link.perform({"action": "program", "basal_ug_per_day": 5000, "confirm": True})
    session = sims(events, "programmer_session")[-1]
    assert session["outcome"] == "refused" and session["reason"] == "over_hard_limit"
    assert session["field"] == "daily_dose_ug" and session["allowed_max"] == 2000
    refused = sims(events, "request_refused")[-1]
    assert refused == dict(refused, request="program", reason="over_hard_limit",
                           field="daily_dose_ug", value=5000, allowed_max=2000)


def test_patient_presses_through_the_remote():
    events = []
    cfg = config(link={"clinician": "direct", "patient": "telemetry"},
                 patient_bolus={"dose_ug": 25, "duration_ms": 600000, "lockout_ms": 3 * MS_PER_HOUR,
                                "max_per_24h": 4}, patient_requests_per_day=2)
    Run(cfg, sink=events.append).run()
    sessions = sims(events, "programmer_session")
    assert sessions and all(s["role"] == "patient" for s in sessions)
    assert len(sessions) == len(sims(events, "patient_press"))
    # A patient's logins are logged coalesced (docs/threat-model.md): the 1st, 2nd, 4th ...
    auths = pumps(events, "auth")
    assert all(e["role"] == "patient" and e["result"] == "ok" for e in auths)
    n = len(sessions)
    assert [e["count"] for e in auths] == [1 << i for i in range(n.bit_length())]
    ends = pumps(events, "session_end")
    assert all(e["role"] == "patient" and e["cause"] == "closed" for e in ends)


# ------------------------------------------------------------------------------ fault windows

def noise(day, hours, number=1, hour=1, **options):
    entry = {"kind": "link_noise", "number": number, "t_ms": day * MS_PER_DAY + hour * MS_PER_HOUR,
             "duration_ms": hours * MS_PER_HOUR}
    entry.update(options)
    return entry


def run_events(cfg, seed=None):
    events = []
    Run(cfg, seed=seed, sink=events.append).run()
    return events


def test_link_noise_acts_only_inside_its_window():
    visits = [dict(PROGRAM_450, t_ms=MS_PER_HOUR), dict(PROGRAM_450, t_ms=T_VISIT),
              dict(PROGRAM_450, t_ms=T_VISIT + 2 * MS_PER_HOUR)]
    # Day 1 from 08:55 for 1 h: the 09:00 visit is in it, the 08:00-day-0 and 11:00 are not.
    fault = noise(1, 1, drop_ppm=1000000, direction="to_pump")
    fault["t_ms"] -= 5 * 60000
    events = run_events(config(timeline=visits, faults=[fault]))
    outcomes = [s["outcome"] for s in sims(events, "programmer_session")]
    assert outcomes == ["ok", "no_session", "ok"]
    start, end = sims(events, "fault_start")[0]["t_ms"], sims(events, "fault_end")[0]["t_ms"]
    assert all(start <= e["t_ms"] <= end for e in sims(events, "link_fault"))


def test_same_seed_same_events_other_seed_other_faults():
    visits = [dict(PROGRAM_450, t_ms=T_VISIT + k * 60000) for k in range(6)]
    cfg = config(timeline=visits, faults=[noise(1, 1, corrupt_ppm=300000, drop_ppm=200000)])
    first, again, other = run_events(cfg), run_events(copy.deepcopy(cfg)), run_events(cfg, 99)
    assert json.dumps(first) == json.dumps(again)
    assert sims(first, "link_fault")
    faults = lambda ev: [(e["t_ms"], e["detail"]) for e in sims(ev, "link_fault")]
    assert faults(first) != faults(other)


def test_timeseries_rows_stay_on_the_hour_while_sessions_take_time():
    rows = []
    cfg = config(timeline=[dict(PROGRAM_450, t_ms=T_VISIT)],
                 faults=[noise(1, 1, hour=0, drop_ppm=1000000, direction="to_pump")])
    Run(cfg, sample=rows.append).run()
    assert [r["t_ms"] - MONDAY_0800 for r in rows] == [h * MS_PER_HOUR for h in range(49)]


def test_the_portable_replay_performs_link_actions_directly():
    cfg = config(timeline=[dict(PROGRAM_450, t_ms=T_VISIT)],
                 faults=[noise(1, 1, hour=0, drop_ppm=1000000, direction="to_pump")])
    codes = []
    Replay(cfg, on_log=lambda seq, t, code, args: codes.append((code, args))).run()
    from firmware import eventlog
    programs = [args for code, args in codes if code == eventlog.PROGRAM]
    assert len(programs) == 2                       # the implant's and the visit's
    assert not [c for c, _ in codes if c == eventlog.AUTH]


# ------------------------------------------------------------------------------ validation

BASE_TOML = {
    "scenario": {"name": "v", "days": 3},
    "drug": {"concentration_ug_per_ml": 2000},
    "therapy": {"mode": "continuous", "basal_ug_per_day": 400},
}


def load(**tables):
    raw = copy.deepcopy(BASE_TOML)
    raw.update(tables)
    return scenario.validate(raw, source="v.toml")


def error(**tables):
    with pytest.raises(ScenarioError) as info:
        load(**tables)
    return info.value


def test_link_table_defaults_and_values():
    cfg = load(link={"clinician": "telemetry"})
    assert cfg["link"] == {"clinician": "telemetry", "patient": "direct", "baud": 9600,
                           "timeout_ms": 1000, "retries": 3, "connect_attempts": 3}
    assert "link" not in load()
    fault = load(link={"clinician": "telemetry"},
                 faults=[{"day": 1, "kind": "link_noise", "duration_hours": 1, "drop_pct": 12.5,
                          "corrupt_pct": 5, "corrupt_bits": 2, "delay_ms": 300,
                          "direction": "from_pump"}])["faults"][0]
    assert fault == dict(fault, drop_ppm=125000, corrupt_ppm=50000, corrupt_bits=2,
                         delay_ms=300, direction="from_pump")


@pytest.mark.parametrize("tables, table, key, value, allowed", [
    ({"link": {"clinician": "radio"}}, "link", "clinician", "radio", '"direct", "telemetry"'),
    ({"link": {"baud": 12}}, "link", "baud", 12, "from 300 to 4000000"),
    ({"link": {"retries": 11}}, "link", "retries", 11, "from 0 to 10"),
    ({"link": {"timeout": 5}}, "link", "timeout", 5, "did you mean \"timeout_ms\""),
    ({"link": {"clinician": "telemetry"},
      "faults": [{"day": 1, "kind": "link_noise", "drop_pct": 150}]},
     "faults #1", "drop_pct", 150, "from 0 to 100"),
    ({"link": {"clinician": "telemetry"},
      "faults": [{"day": 1, "kind": "link_noise", "drop_pct": 5, "direction": "up"}]},
     "faults #1", "direction", "up", '"both", "to_pump", "from_pump"'),
    ({"faults": [{"day": 1, "kind": "link_noise", "drop_pct": 5}]},
     "faults #1", "kind", "link_noise", "needs a link: add [link]"),
    ({"link": {"clinician": "telemetry"}, "faults": [{"day": 1, "kind": "link_noise"}]},
     "faults #1", "kind", "link_noise", "does nothing"),
    ({"link": {"clinician": "telemetry"},
      "faults": [{"day": 1, "kind": "motor_stall", "drop_pct": 5}]},
     "faults #1", "drop_pct", 5, "unknown key"),
])
def test_link_mistakes_name_table_key_value_and_allowed(tables, table, key, value, allowed):
    exc = error(**tables)
    assert (exc.table, exc.key, exc.value) == (table, key, value)
    assert allowed in str(exc) and str(exc).startswith("v.toml: [%s] %s = " % (table, key))


# ------------------------------------------------------------------------------ the scenario

@pytest.fixture(scope="module")
def story():
    cfg = scenario.load(scenario.find("noisy-telemetry-link"))
    events = []
    summary = Run(cfg, sink=events.append).run()
    return cfg, events, summary


def test_story_corrupted_frames_are_naked_and_resent(story):
    _, events, _ = story
    assert any(e["action"] == "corrupted" for e in sims(events, "link_fault"))
    assert "bad_crc" in [e["reason"] for e in sims(events, "pump_nak")]
    causes = set(e["cause"] for e in sims(events, "programmer_resend"))
    assert causes == {"bad_crc", "no_answer"}


def test_story_every_titration_and_the_bolus_applied_exactly_once(story):
    _, events, _ = story
    assert [e["daily_ug"] for e in pumps(events, "program")] == [400, 440, 480, 520]
    assert [e["kind"] for e in pumps(events, "bolus_start")] == ["clinician", "bridge"]
    cached = [e["command"] for e in sims(events, "pump_cached_answer")]
    assert [c for c in cached if c != "SESSION_AUTH"] == ["PROGRAM_CONTINUOUS"]
    for session in sims(events, "programmer_session"):
        ran = [c for c in session["pump_ran"] if c != "SESSION_CLOSE"]
        assert len(ran) == (1 if session["outcome"] == "ok" else 0)


def test_story_the_failed_visit_leaves_the_pump_unchanged_and_shows_what_the_clinician_saw(story):
    _, events, _ = story
    sessions = sims(events, "programmer_session")
    failed = [s for s in sessions if s["outcome"] != "ok"]
    assert len(failed) == 1 and failed[0]["time"].startswith("2026-01-26T09:00")
    assert failed[0]["outcome"] == "no_session" and failed[0]["pump_ran"] == []
    assert failed[0]["clinician_sees"].startswith("program: no session: no answer from the pump")
    program_times = [e["time"][:16] for e in pumps(events, "program")]
    assert "2026-01-26T09:00" not in program_times and "2026-01-26T09:45" in program_times


def test_story_refill_programmed_over_the_lossy_link(story):
    _, events, summary = story
    refill = [s for s in sims(events, "programmer_session") if s["action"] == "refill"]
    assert refill[0]["outcome"] == "ok"
    assert refill[0]["result"]["new_estimate_nl"] == 20000000
    assert summary["refills"] == 1 and summary["final_state"]["therapy"] == "infusing"
    assert any(e["action"] == "delayed" for e in sims(events, "link_fault"))
