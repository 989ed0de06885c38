"""`vpump serve --io URL`: the pump served behind its telemetry link, with the motor, battery and
annunciator of a bench board (hal/serial_io.py) at the other end of a second serial link.  The
bench board here is `python -m sim.io_board` behind a pty (the `bench` fixture, tests/conftest.py)."""

import io
import threading
import time

import pytest

from hal.serial_io import SerialIOBoard
from sim import scenario
from sim.links import LoopPair
from sim.serve import Serve
from tools.cli import main
from protocol.client import Programmer

KEYS = {"serial": "VP-BENCH1", "clinician": bytes(range(32)), "patient": bytes(range(1, 33))}
MS_PER_DAY = 86400000


def test_a_served_pump_strokes_on_the_bench_board(bench):
    pair = LoopPair()
    board = SerialIOBoard(bench.url)
    # 100,000 times real time: a virtual day in under a second of strokes over the pty.
    serve = Serve(None, pair.pump_end, KEYS, speed=100000.0, seed=5, board=board)
    thread = threading.Thread(target=serve.run, name="serve")
    thread.start()
    try:
        with Programmer(pair.programmer_end, key=KEYS["clinician"], timeout_s=5.0) as prog:
            assert prog.program_continuous(500)["new_daily_ug"] == 500
        programmed_at = serve.now_virtual_ms()
        deadline = time.monotonic() + 30
        while serve.now_virtual_ms() < programmed_at + MS_PER_DAY and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        serve.stop()
        thread.join(10)
    assert not thread.is_alive()
    status = serve.pump.status()
    remote = bench.ask("counts")
    board.close()
    pair.close()
    # 500 ug/day of 2000 ug/mL at 1000 nL a stroke: 250 strokes a day, each one on the board.
    assert status["strokes"] >= 250
    assert remote["strokes"] == status["strokes"] == board.motor.strokes
    assert remote["delivered_nl"] == 1000 * remote["strokes"]
    assert status["therapy"] == "infusing" and status["alarms"] == []


def test_a_scenario_served_on_the_bench_board_replays_its_timeline(bench):
    config = scenario.load(scenario.find("adult-sci-continuous"))
    board = SerialIOBoard(bench.url)
    pair = LoopPair()
    serve = Serve(config, pair.pump_end, KEYS, seed=5, board=board)
    serve.step(2 * MS_PER_DAY)
    status = serve.pump.status()
    remote = bench.ask("counts")
    serve.shutdown()
    board.close()
    pair.close()
    assert status["therapy"] in ("infusing", "lockout", "bolus")
    assert remote["strokes"] == status["strokes"] > 0


def test_models_and_faults_need_the_simulated_board(bench):
    config = scenario.load(scenario.find("catheter-dislodgement"))
    board = SerialIOBoard(bench.url)
    try:
        with pytest.raises(ValueError, match="run it without a board"):
            Serve(config, None, KEYS, seed=5, board=board)
    finally:
        board.close()
    err = io.StringIO()
    assert main(["serve", "catheter-dislodgement", "--io", bench.url], stdout=io.StringIO(),
                stderr=err) == 2
    assert "--io %s: scenario catheter-dislodgement has [models] or [[faults]]" % bench.url \
        in err.getvalue()


def test_serve_io_without_a_board_says_what_to_do():
    err = io.StringIO()
    assert main(["serve", "--io", "/dev/pts/999999"], stdout=io.StringIO(), stderr=err) == 2
    message = err.getvalue()
    assert "--io /dev/pts/999999" in message


def test_serve_io_names_the_board_on_its_third_line(bench, tmp_path):
    out = io.StringIO()
    done = {}

    def serve():
        done["code"] = main(["serve", "--io", bench.url, "--link", "loop", "--speed", "1000",
                             "--seed", "3"], stdout=out, stderr=io.StringIO())

    # `--link loop` answers nobody; stop it through SIGTERM's path: the Serve object's stop().
    from sim import serve as serve_module
    started = threading.Event()
    original = serve_module.Serve.run

    def run_then_note(self):
        started.serve = self
        started.set()
        return original(self)

    serve_module.Serve.run = run_then_note
    try:
        thread = threading.Thread(target=serve, name="vpump-serve")
        thread.start()
        assert started.wait(10)
        started.serve.stop()
        thread.join(10)
    finally:
        serve_module.Serve.run = original
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("link: ") and lines[1].startswith("keys: ")
    assert lines[2] == "io: sim-bench at %s" % bench.url
    assert done["code"] == 0
