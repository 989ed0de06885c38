"""sim/replay.py: the portable scenario driver that `vpump run` and the MicroPython golden traces
share.  The MicroPython side is in tests/mp/test_golden.py."""

import os

import pytest

from firmware.dosing import MS_PER_DAY
from hal.sim import SimRng
from sim import scenario
from sim.replay import Replay, plan, trace_line
from sim.runner import Run

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NAMES = ("adult-sci-continuous", "child-cp-flex", "late-refill-empty")


def trace_of(replay):
    lines = []
    replay.on_log = lambda *entry: lines.append(trace_line(*entry))
    return lines


def test_trace_line_format():
    assert trace_line(3, 1767600000000, 2, (0, 1, 2, 4)) == "3 1767600000000 2 0,1,2,4"
    assert trace_line(4, 5, 18, ()) == "4 5 18 -"
    assert trace_line(5, 6, 10, (0, -1)) == "5 6 10 0,-1"


@pytest.mark.parametrize("name", NAMES)
def test_vpump_run_drives_the_firmware_exactly_as_the_golden_trace(name):
    # The runner (hourly samples, events.jsonl records) and the bare replay make the same log;
    # the golden file is what MicroPython is held to.
    config = scenario.load(scenario.find(name))
    raw = []

    class Recording(Run):
        def _on_pump_event(self, seq, t_ms, code, args):
            raw.append(trace_line(seq, t_ms, code, args))
            Run._on_pump_event(self, seq, t_ms, code, args)

    Recording(config).run()
    with open(os.path.join(ROOT, "tests", "golden", name + ".trace"), encoding="utf-8") as f:
        golden = f.read().splitlines()[1:]
    assert raw == golden


def test_a_replay_in_pieces_equals_one_in_one_go():
    config = scenario.load(scenario.find("adult-sci-continuous"))
    whole = Replay(config, days=20)
    whole_lines = trace_of(whole)
    whole.run()
    pieces = Replay(config, days=20)
    piece_lines = trace_of(pieces)
    pieces.start()
    for t in (1, 3600000, 5 * MS_PER_DAY + 7, 5 * MS_PER_DAY + 7, 19 * MS_PER_DAY, 40 * MS_PER_DAY):
        pieces.run_to(t)
    assert piece_lines == whole_lines and len(whole_lines) > 20
    assert pieces.board.clock.true_ms == whole.board.clock.true_ms == 20 * MS_PER_DAY


def test_plan_is_sorted_and_draws_presses_while_awake():
    config = scenario.load(scenario.find("adult-sci-continuous"))
    end = 60 * MS_PER_DAY
    actions = plan(config, 60, end, SimRng(config["seed"] ^ 0x5EED5EED))
    assert actions == sorted(actions, key=lambda a: (a[0], a[1]))
    presses = [t for t, _, a in actions if a["action"] == "patient_bolus"]
    assert 60 < len(presses) < 180         # about two a day
    offset = config["start_wall_ms"] % MS_PER_DAY
    for t in presses:
        minute = ((t + offset) % MS_PER_DAY) // 60000
        assert 8 * 60 <= minute < 22 * 60
    again = plan(config, 60, end, SimRng(config["seed"] ^ 0x5EED5EED))
    assert again == actions


def test_unknown_action_is_an_error():
    config = scenario.load(scenario.find("late-refill-empty"))
    r = Replay(config, days=1)
    with pytest.raises(ValueError, match="unknown timeline action 'dance'"):
        r._perform({"action": "dance"})
