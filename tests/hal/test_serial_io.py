"""Bench I/O over serial: the `serial` HAL backend (hal/serial_io.py), the I/O server
(hal/io_server.py) and their protocol (protocol/bench_io.py, docs/bench-io.md).

End to end: the I/O server runs in its own process (`python -m sim.io_board`: hal.sim parts as
its hardware) behind a real pty; the firmware runs here, on SerialIOBoard over SerialLink(pty
path), in virtual time: only the parts are remote.  The board's console (its stdin/stdout) tells
what its parts saw and injects faults (a stall).  Unit tests drive IOServer.handle() and the
client over an in-process responder.  The server also runs under MicroPython when the wasm
port is installed.
"""

import os
import subprocess
import sys
import time

import pytest

import hal
from firmware.dosing import MS_PER_DAY
from firmware.pump import Pump
from firmware.telemetry import Telemetry
from hal.base import Link, STROKE_OK, STROKE_STALL, TONE_SINGLE, TONE_TWO
from hal.errors import HalError, LinkError
from hal.io_server import IOServer
from hal.serial_io import BoardRefused, IOClient, SerialIOBoard
from hal.serial_link import SerialLink
from hal.sim import SimBoard
from protocol import bench_io as P
from protocol import frame, reasons
from sim.links import Manipulator, PtyLink, RECEIVE, SEND

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HERE = os.path.dirname(os.path.abspath(__file__))
WALL_MS = 1767600000000          # 2026-01-05 08:00 UTC
MS_PER_HOUR = 3600000
CONCENTRATION = 2000             # ug/mL: one 1000 nL stroke is 2 ug


# ------------------------------------------------------------------------------ fixtures

# `bench` (tests/conftest.py): `python -m sim.io_board` in a child process.


def therapy_pump(board, basal=500, fill_nl=20000000):
    pump = Pump(board, wall_ms=WALL_MS)
    pump.boot()
    assert pump.refill(fill_nl, CONCENTRATION) == reasons.OK
    assert pump.program_continuous(basal) == reasons.OK
    return pump


# ------------------------------------------------------------------------------ end to end

def test_a_day_of_therapy_strokes_exactly_on_the_bench_board(bench):
    with SerialIOBoard(bench.url) as board:
        assert board.identity == {"name": "sim-bench", "io_version": 1,
                                  "parts": ["motor", "battery", "annunciator"]}
        pump = therapy_pump(board)
        pump.sched.run_until(MS_PER_DAY)
        status = pump.status()
        remote = bench.ask("counts")
    # 500 ug/day at 2 ug a stroke: 250 strokes, each one made on the board, none twice.
    assert status["strokes"] == 250 == board.motor.strokes == remote["strokes"]
    assert remote["delivered_nl"] == 250 * 1000 and remote["stalls"] == 0
    assert status["therapy"] == "infusing" and status["alarms"] == []
    assert remote["repeats"] == 0 and board.io.resends == 0
    # The same firmware on a local SimBoard makes the same strokes.
    local = therapy_pump(SimBoard())
    local.sched.run_until(MS_PER_DAY)
    assert local.status()["strokes"] == 250


def test_a_stall_on_the_remote_motor_is_the_pumps_motor_stall_alarm(bench):
    with SerialIOBoard(bench.url) as board:
        pump = therapy_pump(board)
        pump.sched.run_until(6 * MS_PER_HOUR)
        before = bench.ask("counts")["strokes"]
        assert bench.ask("stall on") == {"stalled": True}
        pump.sched.run_until(7 * MS_PER_HOUR)
        status = pump.status()
        assert "motor_stall" in status["alarms"] and status["therapy"] != "infusing"
        remote = bench.ask("counts")
        assert remote["stalls"] >= 1 and remote["strokes"] == before == status["strokes"]
        # The critical alarm's two-tone sounded on the board.
        assert remote["tones"]["two"] >= 1 and remote["last_tone"] == [TONE_TWO, 3000]
        assert board.annunciator.counts[TONE_TWO] == remote["tones"]["two"]
        # Freed again, the alarm clears and strokes resume on the board.
        bench.ask("stall off")
        assert pump.clear_alarm() == reasons.OK
        pump.sched.run_until(12 * MS_PER_HOUR)
        assert bench.ask("counts")["strokes"] == pump.status()["strokes"] > before


def test_battery_voltage_is_read_on_the_board(bench):
    with SerialIOBoard(bench.url) as board:
        pump = therapy_pump(board)
        full = bench.ask("counts")["battery_mv"]
        assert board.battery.read_mv() == full == pump.status()["battery_mv"]
        # Draw the cell into its knee (the last 10 % of 1500 mAh): the voltage falls.
        low = bench.ask("battery_used_nah 1450000000")["battery_mv"]
        assert low < full
        assert pump.status()["battery_mv"] == low == board.battery.last_mv


def test_a_low_reservoir_alarm_sounds_its_single_tone_on_the_board(bench):
    with SerialIOBoard(bench.url) as board:
        # 2.1 mL with the alarm at 2 mL: 100 strokes later the non-critical alarm sounds.
        pump = therapy_pump(board, fill_nl=2100000)
        pump.sched.run_until(MS_PER_DAY)
        assert "low_reservoir" in pump.status()["alarms"]
        remote = bench.ask("counts")
        assert remote["tones"]["single"] >= 1 and remote["tones"]["two"] == 0
        assert remote["tones"]["single"] == board.annunciator.counts[TONE_SINGLE]
        assert pump.alarm_test() == reasons.OK        # the programmer's alarm test: both tones
        remote = bench.ask("counts")
        assert remote["tones"]["two"] == 1 and remote["last_tone"] == [TONE_SINGLE, 1000]


def _drop_stroke_response(number):
    # A Manipulator function that loses the response to the number-th MOTOR_STROKE.
    seen = [0]

    def fn(direction, data):
        if direction == RECEIVE and b"\xa5\x5a\x00\x05\x01" in data and \
                data[data.index(b"\xa5\x5a") + 6] == P.MOTOR_STROKE | frame.RESPONSE:
            seen[0] += 1
            if seen[0] == number:
                return None
        return data
    return fn


def test_a_lost_stroke_response_is_retried_without_a_second_stroke(bench):
    link = Manipulator(SerialLink(bench.url), fn=_drop_stroke_response(3))
    with SerialIOBoard(link=link, timeout_s=0.5) as board:
        pump = therapy_pump(board)
        pump.sched.run_until(MS_PER_DAY)
        remote = bench.ask("counts")
        assert link.counts[RECEIVE]["dropped"] == 1
        # One resend, answered from the board's cache (more only if this machine is so slow
        # that an answer took longer than the timeout: those are repeats too).
        assert board.io.resends >= 1 and remote["repeats"] == board.io.resends
        assert pump.status()["strokes"] == remote["strokes"] == 250


def test_a_lost_request_is_resent_and_stroked_once(bench):
    # The 10th frame sent (IDENTIFY, a battery read at refill, then strokes) never arrives.
    link = Manipulator(SerialLink(bench.url)).drop(SEND, nth=10)
    with SerialIOBoard(link=link, timeout_s=0.5) as board:
        pump = therapy_pump(board)
        pump.sched.run_until(MS_PER_DAY)
        remote = bench.ask("counts")
        assert link.counts[SEND]["dropped"] == 1
        # The resend of the lost request is new to the board: not a repeat.
        assert board.io.resends >= 1 and remote["repeats"] == board.io.resends - 1
        assert pump.status()["strokes"] == remote["strokes"] == 250


def test_a_damaged_request_is_answered_bad_crc_and_resent_at_once(bench):
    # The 5th frame sent arrives with its CRC damaged: the board answers bad_crc and the host
    # resends without waiting for its 5 s timeout.
    sent = [0]

    def damage_crc(direction, data):
        if direction == SEND:
            sent[0] += 1
            if sent[0] == 5:
                return data[:-1] + bytes((data[-1] ^ 0x40,))
        return data

    link = Manipulator(SerialLink(bench.url), fn=damage_crc)
    with SerialIOBoard(link=link, timeout_s=5.0) as board:
        pump = therapy_pump(board)
        started = time.monotonic()
        pump.sched.run_until(MS_PER_DAY)
        took_s = time.monotonic() - started
        remote = bench.ask("counts")
        strokes = pump.doser.strokes
    assert link.counts[SEND]["changed"] == 1 and remote["bad_frames"] == 1
    assert board.io.resends == 1 and took_s < 4.0
    assert strokes == remote["strokes"] == 250


@pytest.mark.parametrize("seed", range(6))
def test_random_damage_on_the_line_never_costs_or_doubles_a_stroke(bench, seed):
    # Bits flipped anywhere (sync, LEN, SEQ, payload, CRC) in both directions: the host resends
    # after a timeout or a bad_crc, the board's cache keeps each stroke single.
    link = Manipulator(SerialLink(bench.url), seed=seed)
    link.corrupt(SEND, probability=0.05).corrupt(RECEIVE, probability=0.05)
    with SerialIOBoard(link=link, timeout_s=0.1, retries=5) as board:
        pump = therapy_pump(board, basal=100)
        pump.sched.run_until(MS_PER_DAY)
        remote = bench.ask("counts")
        strokes = pump.doser.strokes
    corrupted = link.counts[SEND]["corrupted"] + link.counts[RECEIVE]["corrupted"]
    assert corrupted >= 1 and board.io.resends >= 1
    assert strokes == remote["strokes"] == 50


def test_the_board_survives_garbage_and_answers_after_it(bench):
    garbage = [
        os.urandom(4096),
        b"\xa5\x5a\xff\xff" + bytes(300),                  # a length no request has
        b"\xa5\x5a\x00\x03\x01\x07\x41\x00\x00",           # a frame with a wrong CRC
        b"\xa5" * 100 + b"\x5a" * 100,
        frame.encode(9, 0x41)[:-3],                        # a frame cut short
        frame.encode(1, 0x01),                             # a pump's IDENTIFY
        frame.encode(2, P.TONE, b"\x07"),                  # too short for TONE
    ]
    with SerialLink(bench.url) as raw:
        for chunk in garbage:
            raw.write(chunk)
    with SerialIOBoard(bench.url) as board:
        assert board.motor.stroke() == STROKE_OK
        assert board.battery.read_mv() == 3200
    remote = bench.ask("counts")
    assert bench.alive() and remote["strokes"] == 1 and remote["bad_frames"] >= 1


def test_nothing_answering_is_a_link_error_that_says_what_to_do():
    with PtyLink() as silent:
        with pytest.raises(LinkError) as info:
            SerialIOBoard(silent.url, timeout_s=0.05, retries=1)
    message = str(info.value)
    assert message.startswith("no bench I/O server answered at %s: " % silent.url)
    assert "did not answer IDENTIFY (2 tries, 0.05 s each)" in message
    assert "python -m sim.io_board" in message


def test_the_board_going_away_is_a_link_error(bench):
    board = SerialIOBoard(bench.url)
    try:
        assert board.motor.stroke() == STROKE_OK
        assert bench.close() == 0
        with pytest.raises(LinkError, match="lost the link .* start it again"):
            board.motor.stroke()
    finally:
        board.close()


# ------------------------------------------------------------------------------ in process

class Responder(Link):
    """A link to a handler in this process: each frame written is answered at once.
    handler(item) -> response bytes (IOServer.handle, Telemetry.handle)."""
    url = "responder://"

    def __init__(self, handler):
        self._handler = handler
        self._decoder = frame.Decoder()
        self._inbox = bytearray()
        self.written = []
        Link.__init__(self)

    def _write_internal(self, data):
        self.written.append(bytes(data))
        for item in self._decoder.feed(data):
            self._inbox += self._handler(item)
        return len(data)

    def _read_internal(self, max_bytes):
        data = bytes(self._inbox[:max_bytes])
        del self._inbox[:max_bytes]
        return data

    def wait(self, timeout_s):
        return bool(self._inbox)


def sim_server(**parts):
    sim = SimBoard(stroke_nl=1000)
    sim.reservoir.refill(20000000, CONCENTRATION)
    chosen = {"motor": sim.motor, "battery": sim.battery, "annunciator": sim.annunciator}
    chosen.update(parts)
    return sim, IOServer(None, name="unit", **chosen)


def ask(server, seq, cmd, payload=b"", version=frame.VERSION):
    response = server.handle((reasons.OK, version, seq, cmd, payload))
    (item,) = frame.Decoder().feed(response)
    assert item[0] == reasons.OK and item[2] == seq and item[3] == (cmd | 0x80) & 0xFF
    return item[4]


def test_server_answers_each_command_and_repeats_from_its_cache():
    sim, server = sim_server()
    assert ask(server, 1, P.IDENTIFY) == b"\x00\x01\x07unit"
    assert ask(server, 2, P.MOTOR_STROKE) == b"\x00\x00"
    assert ask(server, 2, P.MOTOR_STROKE) == b"\x00\x00"          # a retry: no second stroke
    assert sim.motor.strokes == 1 and server.repeats == 1
    assert ask(server, 3, P.MOTOR_STROKE) == b"\x00\x00"          # a new SEQ: a new stroke
    assert sim.motor.strokes == 2
    sim.motor.stalled = True
    assert ask(server, 4, P.MOTOR_STROKE) == b"\x00\x01"
    assert ask(server, 5, P.BATTERY_READ_MV) == b"\x00" + (3200).to_bytes(2, "big")
    assert ask(server, 6, P.TONE, P.encode_tone(TONE_TWO, 3000)) == b"\x00"
    assert sim.annunciator.last == (TONE_TWO, 3000)
    assert (server.strokes, server.stalls, server.tones, server.requests) == (2, 1, 1, 7)


@pytest.mark.parametrize("cmd, payload, version, status, message", [
    (0x01, b"", 1, P.UNKNOWN_COMMAND, "command 0x01 is not a bench I/O command (0x40..0x43)"),
    (P.TONE, b"\x01", 1, P.BAD_LENGTH, "TONE takes 5 payload bytes, got 1"),
    (P.MOTOR_STROKE, b"\x00", 1, P.BAD_LENGTH, "MOTOR_STROKE takes 0 payload bytes, got 1"),
    (P.IDENTIFY, b"", 2, P.BAD_VERSION, "frame version 2; this server speaks 1"),
    (P.TONE, P.encode_tone(3, 100), 1, P.OUT_OF_RANGE, "tone kind 3 unknown: 1 (single) or 2 "
                                                       "(two-tone)"),
    (P.TONE, P.encode_tone(1, 0), 1, P.OUT_OF_RANGE, "tone duration 0 ms: give 1 ms or more"),
])
def test_server_refusals_are_data_with_a_message(cmd, payload, version, status, message):
    sim, server = sim_server()
    body = ask(server, 1, cmd, payload, version)
    assert P.decode_error(body) == (status, message)
    assert sim.motor.strokes == 0 and server.errors == 1


def test_server_without_a_part_or_with_a_failing_one():
    class Broken:
        def read_mv(self):
            raise OSError(5, "ADC not responding")

    sim, server = sim_server(motor=None, battery=Broken())
    assert ask(server, 1, P.IDENTIFY)[:3] == b"\x00\x01\x06"       # battery, annunciator
    assert P.decode_error(ask(server, 2, P.MOTOR_STROKE)) == (P.NO_PART, "board unit has no motor")
    status, message = P.decode_error(ask(server, 3, P.BATTERY_READ_MV))
    assert status == P.PART_FAILED and message.startswith("battery: OSError: ")
    assert "ADC not responding" in message


def test_server_answers_a_damaged_frame_with_bad_crc():
    sim, server = sim_server()
    response = server.handle((reasons.BAD_CRC, 1, 7, P.MOTOR_STROKE, b""))
    (item,) = frame.Decoder().feed(response)
    assert item[2:4] == (7, P.MOTOR_STROKE | 0x80) and item[4][0] == P.BAD_CRC
    assert sim.motor.strokes == 0 and server.bad_frames == 1


def test_client_refusals_and_missing_parts_are_hal_errors_that_say_what_to_do():
    sim, server = sim_server(battery=None)
    with pytest.raises(HalError, match=r"bench board 'unit' at responder:// has no battery "
                                       r"\(it has: motor, annunciator\); the pump needs"):
        SerialIOBoard(link=Responder(server.handle))
    client = IOClient(Responder(server.handle))
    with pytest.raises(BoardRefused, match="bench board at responder:// refused "
                                           "BATTERY_READ_MV: no_part: board unit has no battery"):
        client.request(P.BATTERY_READ_MV)
    client.close()


def test_a_pumps_telemetry_link_is_not_taken_for_a_bench_board():
    pump = Pump(SimBoard(), wall_ms=WALL_MS)
    pump.boot()
    keys = {"clinician": bytes(range(32)), "patient": bytes(range(1, 33))}
    telemetry = Telemetry(pump, None, keys)
    with pytest.raises(HalError, match=r"responder:// is not a bench I/O server: it does not "
                                       r"know IDENTIFY 0x40 \(a pump's telemetry link\?\)"):
        SerialIOBoard(link=Responder(telemetry.handle))


def test_remote_parts_check_their_arguments_before_anything_is_sent():
    sim, server = sim_server()
    link = Responder(server.handle)
    with SerialIOBoard(link=link) as board:
        sent = len(link.written)
        with pytest.raises(HalError, match="tone kind 5 unknown"):
            board.annunciator.tone(5, 100)
        with pytest.raises(HalError, match="tone duration 0 ms must be > 0"):
            board.annunciator.tone(TONE_SINGLE, 0)
        with pytest.raises(HalError, match="at most 4294967295 ms"):
            board.annunciator.tone(TONE_SINGLE, 2 ** 32)
        assert len(link.written) == sent
        assert board.motor.stroke() == STROKE_OK
        sim.motor.stalled = True
        assert board.motor.stroke() == STROKE_STALL
        assert (board.motor.strokes, board.motor.stalls) == (1, 1)
    with pytest.raises(HalError, match="SerialMotor is closed"):
        board.motor.stroke()
    board.close()                                   # twice is fine


def test_bad_options_say_what_is_allowed():
    with pytest.raises(HalError, match=r"url=None: give the bench board's serial port"):
        SerialIOBoard()
    with pytest.raises(HalError, match=r"timeout_s=0: must be a number of seconds > 0"):
        IOClient(Responder(None), timeout_s=0)
    with pytest.raises(HalError, match=r"retries=-1: must be a whole number from 0 to 100"):
        IOClient(Responder(None), retries=-1)


def test_registry_opens_the_serial_backend_lazily():
    assert hal.backend_class("serial") is SerialIOBoard
    sim, server = sim_server()
    board = hal.open_board("serial", link=Responder(server.handle))
    assert board.identity["name"] == "unit"
    board.close()
    # Neither `import hal` nor the backend module needs pyserial until a URL is opened.
    code = ("import sys, hal, hal.serial_io, hal.io_server, protocol.bench_io; "
            "assert 'serial' not in sys.modules, sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT,
                   env=dict(os.environ, PYTHONPATH=ROOT))


# ------------------------------------------------------------------------------ MicroPython

# What the bench board needs: the frame layer, the protocol, the HAL interfaces, the server.
# hal.sim comes along as the parts for the test (a board has the machine backend's).
_UPY_FILES = ["protocol/__init__.py", "protocol/crc.py", "protocol/errors.py",
              "protocol/frame.py", "protocol/reasons.py", "protocol/bench_io.py",
              "hal/__init__.py", "hal/base.py", "hal/errors.py", "hal/sim.py",
              "hal/sim_storage.py", "hal/io_server.py"]


def test_the_io_server_answers_the_same_under_micropython(micropython_with):
    script = os.path.join(HERE, "upy", "io_server.py")
    upy = micropython_with(_UPY_FILES).run_file(script, timeout_s=120)
    import mpsession        # tests/mp, on the path through tests/conftest.py
    cpy_out, cpy_err = mpsession.run_cpython(script, timeout_s=60)
    # MicroPython's stdout and stderr arrive as one stream: its first line names the interpreter.
    name, _, rest = upy.partition("\n")
    assert name == "micropython" and cpy_err.strip() == "cpython"
    assert rest == cpy_out
    assert rest.rstrip().endswith("done")


def test_the_documented_example_frames_are_what_the_code_sends():
    with open(os.path.join(ROOT, "docs", "bench-io.md"), encoding="utf-8") as f:
        doc = " ".join(f.read().split())
    frames = [
        frame.encode(1, P.IDENTIFY),
        frame.encode(1, P.IDENTIFY | 0x80, P.encode_identify("sim-bench", 7)),
        frame.encode(2, P.MOTOR_STROKE),
        frame.encode(2, P.MOTOR_STROKE | 0x80, P.encode_stroke(P.RESULT_OK)),
        frame.encode(3, P.BATTERY_READ_MV),
        frame.encode(3, P.BATTERY_READ_MV | 0x80, P.encode_mv(3200)),
        frame.encode(4, P.TONE, P.encode_tone(TONE_TWO, 3000)),
        frame.encode(4, P.TONE | 0x80, P.encode_ok()),
    ]
    for data in frames:
        assert " ".join("%02X" % b for b in data) in doc
    sim, server = sim_server(annunciator=None)
    server.name = "x"
    refusal = server.handle((reasons.OK, 1, 5, P.TONE, P.encode_tone(TONE_TWO, 3000)))
    hexed = " ".join("%02X" % b for b in refusal)
    assert hexed[:60] in doc and hexed[-18:] in doc        # the doc wraps it over two lines
