"""`vpump replay CAPTURE` (tools/replay_visit.py): a recorded visit replayed against the same
build shows no difference; against a pump with a changed limit, exactly that difference."""

import io
import json
import threading

import pytest

from firmware import limits
from protocol.client import Programmer
from sim.capture import Capture, read_capture
from sim.links import LoopPair
from sim.serve import Serve
from tools.cli import main
from tools.pytest_plugin import ServedPump
from tools.replay_visit import read_visit

KEYS = {"serial": "VP-VISIT", "clinician": bytes(range(32)), "patient": bytes(range(7, 39))}


def record_visit(path, config=None, basal=600):
    """A clinic visit at a served pump (in process, 1000x real time), captured at the pump."""
    pair = LoopPair()
    capture = Capture(str(path), "pump")
    serve = Serve(config, pair.pump_end, KEYS, speed=1000.0, seed=7, capture=capture)
    thread = threading.Thread(target=serve.run, name="serve")
    thread.start()
    try:
        with Programmer(pair.programmer_end, key=KEYS["clinician"], timeout_s=5.0) as prog:
            prog.identify()
            prog.interrogate()
            prog.read_limits()
            prog.program_continuous(basal)
            prog.clinician_bolus(50, 30 * 60000)
            prog.interrogate()
            prog.read_log(1, 12)
    finally:
        serve.stop()
        thread.join(10)
        pair.close()
    return str(path)


@pytest.fixture(scope="module")
def visit(tmp_path_factory):
    return record_visit(tmp_path_factory.mktemp("visit") / "visit.pcapng")


def replay(*args):
    out, err = io.StringIO(), io.StringIO()
    code = main(["replay"] + list(args), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def test_the_capture_holds_the_visit_and_the_pump_state(visit):
    steps = read_visit(visit)
    assert [s.name for s in steps] == [
        "IDENTIFY", "SESSION_OPEN", "SESSION_AUTH", "INTERROGATE", "READ_LIMITS",
        "PROGRAM_CONTINUOUS", "CLINICIAN_BOLUS", "INTERROGATE", "READ_LOG", "SESSION_CLOSE"]
    assert all(s.response is not None and s.state is not None for s in steps)
    assert steps[0].state["scenario"] == "fresh-implant" and steps[0].state["seed"] == 7
    assert steps[5].state["interrogate"]["basal_ug_per_day"] == 600
    # The first comment is still the pump's clock (docs/captures.md); the state is the second.
    assert all(p.comments[0].startswith("pump clock ") for p in read_capture(visit))


def test_same_build_shows_no_difference(visit):
    code, out, err = replay(visit)
    assert code == 0, out + err
    assert out.startswith("no differences: 10 requests replayed, every response field and "
                          "the pump's state and log after 10 answers as recorded")


def test_a_changed_limit_shows_exactly_that_difference(visit, monkeypatch):
    # "New firmware" with a lower bolus hard limit (the visit's 50 ug bolus is still under it).
    monkeypatch.setitem(limits.BACLOFEN, "bolus_hard_ug", 150)
    code, out, err = replay(visit, "--json")
    assert code == 1, err
    rows = [(d["step"], d["command"], d["what"], d["field"], d["recorded"], d["replayed"])
            for d in json.loads(out)["differences"]]
    assert rows == [
        # The pump's setup at implant logs its limits ...
        (1, "IDENTIFY", "log", "log[1]", rows[0][4], rows[0][5]),
        (5, "READ_LIMITS", "response", "bolus_hard_ug", 200, 150),
        (9, "READ_LOG", "response", "entries[1].args", [800, 2000, 100, 200],
         [800, 2000, 100, 150]),
    ]
    assert "bolus_hard_ug=200" in rows[0][4] and "bolus_hard_ug=150" in rows[0][5]
    code, out, err = replay(visit)
    assert "READ_LIMITS" in out and "3 differences in 10 requests replayed" in out


def test_a_changed_soft_limit_shows_the_refusal_and_its_consequences(visit, monkeypatch):
    monkeypatch.setitem(limits.BACLOFEN, "daily_dose_soft_ug", 500)
    code, out, err = replay(visit, "--json")
    diffs = json.loads(out)["differences"]
    program = [d for d in diffs if d["command"] == "PROGRAM_CONTINUOUS"]
    assert program[0]["field"] == "outcome" and program[0]["recorded"] == "accepted"
    assert program[0]["replayed"].startswith("NAK soft_limit_needs_confirm (daily_dose_ug = 600")
    state = dict((d["field"], (d["recorded"], d["replayed"])) for d in program
                 if d["what"] == "state")
    assert state["basal_ug_per_day"] == (600, 0) and state["therapy"] == ("infusing", "idle")
    # A standing state difference is shown where it starts, not again at every later step.
    later = [d for d in diffs if d["step"] > 6 and d["what"] == "state"
             and d["field"] == "basal_ug_per_day"]
    assert later == []


def test_replay_against_a_served_pump(visit, tmp_path):
    with ServedPump(tmp_path, seed=3) as served:
        code, out, err = replay(visit, "--against", served.url, "--key-file", served.key_file)
        assert served.status()["program"] == {"mode": "continuous", "basal_ug_per_day": 600}
    assert code == 0, out + err
    assert "no differences: 10 requests replayed" in out


def test_bad_input_is_exit_2(visit, tmp_path):
    for args, words in (([str(tmp_path / "none.pcapng")], "cannot read"),
                        ([visit, "--against", "socket://127.0.0.1:9"], "give the pump's --key-file"),
                        ([visit, "--scenario", "no-such-scenario"], "no-such-scenario"),
                        ([visit, "--seed", "-1"], "got -1")):
        code, out, err = replay(*args)
        assert code == 2, (args, out, err)
        assert words in err, (args, err)
    (tmp_path / "text.pcapng").write_text("hello")
    code, out, err = replay(str(tmp_path / "text.pcapng"))
    assert code == 2 and "not a pcapng capture" in err
