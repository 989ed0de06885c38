"""The programmer: protocol/client.py (the library) and `vpump prog` (tools/prog/).

Most tests talk to a real pump in this process: Pump(SimBoard()) behind firmware/telemetry.py,
polled by a background thread (the `pump` fixture stops and joins it).  Library tests use a
LoopPair; command-line tests call cli.main in-process over a TCP link on 127.0.0.1 (the pump end
listens, `vpump prog socket://...` connects), which is also what a second process would do.
Virtual time stands still unless a test moves it, so a bolus stays in progress and nothing
happens between two requests.  The end-to-end tests at the bottom run `vpump serve` and
`vpump prog` as separate processes over a pty and a socket.
"""

import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading

import pytest

from firmware import eventlog
from firmware.pump import Pump
from firmware.telemetry import Telemetry
from hal.sim import SimBoard
from protocol import commands as C
from protocol import frame, reasons
from protocol.client import Programmer, load_key_file
from protocol.client_errors import KeyFileError, LinkFailure, ProgrammerError, Refused
from protocol.keygen import format_keys
from sim.links import LoopPair, Manipulator, TcpServerLink
from tools import cli, prog as prog_module
from tools.prog.actions import ACTION_NAMES
from tools.prog.shell import Shell

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KEYS = {"serial": "VP-TEST1", "clinician": bytes(range(32)),
        "patient": bytes(range(100, 132))}
WRONG_KEY = bytes(range(200, 232))
WALL_MS = 1767600000000          # 2026-01-05 08:00 UTC, a Monday
MIN = 60000


class PumpThread:
    """A pump behind telemetry on `link`, answered from a background thread.

    Hold .lock to look at the pump between requests (the thread polls under it)."""

    def __init__(self, link, keys=KEYS, basal=None, concentration=500):
        board = SimBoard(reservoir_capacity_nl=40000000)
        board.reservoir.refill(20000000, concentration)
        self.pump = Pump(board, wall_ms=WALL_MS)
        self.events = []
        self.pump.log.listener = lambda seq, t, code, args: self.events.append(
            (eventlog.EVENTS[code][0], args))
        self.pump.boot()
        assert self.pump.refill(20000000, concentration) == reasons.OK
        if basal is not None:
            assert self.pump.program_continuous(basal) == reasons.OK
        self.link = link
        self.telemetry = Telemetry(self.pump, link, keys)
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="test-pump", daemon=True)
        self._thread.start()

    def _loop(self):
        while not self._stop.is_set():
            self.link.wait(0.02)
            with self.lock:
                self.telemetry.poll()

    def named(self, name):
        with self.lock:
            return [args for event, args in self.events if event == name]

    def stop(self):
        self._stop.set()
        self._thread.join(5)
        self.link.close()


@pytest.fixture
def loop_pump():
    """(PumpThread, programmer's end of a LoopPair)."""
    pair = LoopPair()
    server = PumpThread(pair.pump_end)
    yield server, pair.programmer_end
    server.stop()
    pair.close()


@pytest.fixture
def tcp_pump():
    """A PumpThread listening on 127.0.0.1: (server, url) for `vpump prog URL`."""
    link = TcpServerLink("127.0.0.1", 0)
    server = PumpThread(link)
    yield server, link.url
    server.stop()


@pytest.fixture
def key_file(tmp_path):
    path = tmp_path / "keys.json"
    path.write_text(format_keys(KEYS), encoding="utf-8")
    return str(path)


@pytest.fixture
def wrong_key_file(tmp_path):
    path = tmp_path / "wrong.json"
    path.write_text(format_keys({"serial": "VP-TEST1", "clinician": WRONG_KEY,
                                 "patient": bytes(range(50, 82))}), encoding="utf-8")
    return str(path)


def prog(*argv):
    """`vpump prog ARGV` in-process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(["prog"] + list(argv), stdout=out, stderr=err)
    assert "Traceback" not in err.getvalue()
    return code, out.getvalue(), err.getvalue()


def prog_ok(*argv):
    code, out, err = prog(*argv)
    assert code == 0, err
    return out


def one_error(err):
    lines = [line for line in err.splitlines() if line.startswith("vpump prog:")]
    assert len(lines) == 1, err
    return lines[0]


def edit_response(cmd, edit):
    """A Manipulator fn that re-frames (valid CRC) the pump's response to `cmd` after
    edit(bytearray payload) changed it."""
    decoder = frame.Decoder()

    def fn(direction, data):
        out = b""
        for status, version, seq, got_cmd, payload in decoder.feed(data):
            payload = bytearray(payload)
            if got_cmd == cmd | frame.RESPONSE:
                edit(payload)
            out += frame.encode(seq, got_cmd, bytes(payload), version)
        return out
    return fn


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------------------ the library

def test_identify_needs_no_session(loop_pump):
    server, link = loop_pump
    with Programmer(link) as p:
        ident = p.identify()
        assert not p.in_session
    assert ident == {"model": "vpump-ib20", "serial": "VP-TEST1", "firmware_version": "0.1.0",
                     "protocol_version": 1}


def test_open_session_then_interrogate(loop_pump):
    server, link = loop_pump
    with Programmer(link, key=KEYS["clinician"]) as p:
        opened = p.open_session()
        assert p.in_session and opened["role"] == "clinician"
        status = p.interrogate()
    assert status["therapy"] == "idle" and status["reservoir_nl"] == 20000000
    assert status["concentration_ug_per_ml"] == 500 and status["alarms"] == []
    assert status["wall_ms"] == WALL_MS
    assert server.named("auth")[-1] == (1, 1, 1)    # clinician, ok, count
    # close() ended the session on the pump too: the telemetry holds no key.
    assert server.telemetry._key is None


def test_a_command_opens_the_session_itself(loop_pump):
    server, link = loop_pump
    with Programmer(link, key=KEYS["clinician"]) as p:
        assert p.program_continuous(300) == {"old_daily_ug": 0, "new_daily_ug": 300}
        assert p.in_session


def test_refusals_carry_reason_field_and_range(loop_pump):
    server, link = loop_pump
    with Programmer(link, key=KEYS["clinician"]) as p:
        with pytest.raises(Refused) as soft:
            p.program_continuous(900)
        assert p.program_continuous(900, confirm=True)["new_daily_ug"] == 900
        with pytest.raises(Refused) as hard:
            p.program_continuous(50000, confirm=True)
    assert (soft.value.reason_name, soft.value.field, soft.value.value, soft.value.hi) == \
        ("soft_limit_needs_confirm", "daily_dose_ug", 900, 800)
    assert hard.value.reason == reasons.OVER_HARD_LIMIT
    assert str(hard.value) == ("over_hard_limit: over a drug-library hard limit: never allowed: "
                               "daily_dose_ug = 50000, allowed 0..2000")
    assert hard.value.command == "PROGRAM_CONTINUOUS"
    assert isinstance(hard.value, ProgrammerError)


def test_counter_grows_per_request_and_seq_wraps(loop_pump):
    server, link = loop_pump
    sent = []
    with Programmer(link, key=KEYS["clinician"], spy=lambda d, text: sent.append((d, text))) as p:
        p.open_session()
        p._seq = 254
        for _ in range(4):
            p.interrogate()
    tx = [text for d, text in sent if d == "tx" and text.startswith("INTERROGATE")]
    assert [re.search(r"seq=(\d+) counter=(\d+)", t).groups() for t in tx] == \
        [("254", "1"), ("255", "2"), ("0", "3"), ("1", "4")]
    rx = [text for d, text in sent if d == "rx" and text.startswith("INTERROGATE")]
    assert all("mac ok" in t for t in rx) and len(rx) == 4


def test_lost_response_is_resent_without_a_second_bolus():
    pair = LoopPair()
    dropped = []

    def drop_first_bolus_answer(direction, data):
        for item in frame.Decoder().feed(data):
            if item[3] == C.CLINICIAN_BOLUS | frame.RESPONSE and not dropped:
                dropped.append(data)
                return None
        return data
    pump_side = Manipulator(pair.pump_end, fn=drop_first_bolus_answer)
    server = PumpThread(pump_side, basal=100)
    sent = []
    try:
        with Programmer(pair.programmer_end, key=KEYS["clinician"], timeout_s=0.3,
                        spy=lambda d, text: sent.append((d, text))) as p:
            result = p.clinician_bolus(50, 30 * MIN)
            assert p.retried >= 1
            assert p.interrogate()["therapy"] == "bolus"
            starts = [e for e in p.read_all_log() if e["code"] == eventlog.BOLUS_START]
    finally:
        server.stop()
        pair.close()
    assert result == {"dose_ug": 50, "duration_ms": 30 * MIN}
    assert len(dropped) == 1
    # The programmer resent the very same frame; the pump answered from its cache.
    assert any("resend 1 of 3 (same frame)" in text for d, text in sent)
    assert len(server.named("bolus_start")) == 1 and len(starts) == 1
    assert server.pump.bolus.current[1] == 50


def test_no_answer_resends_the_same_bytes_then_fails():
    with LoopPair() as pair:           # nobody at the pump end
        with Programmer(pair.programmer_end, timeout_s=0.05, retries=2) as p:
            with pytest.raises(LinkFailure) as failure:
                p.identify()
        written = pair.pump_end.read(4096)
    assert "no answer from the pump to IDENTIFY after 3 tries" in str(failure.value)
    one = frame.encode(0, C.IDENTIFY)
    assert written == one * 3


def test_wrong_key_is_bad_mac_and_never_locks_the_right_key_out(loop_pump):
    server, link = loop_pump
    with Programmer(link, key=WRONG_KEY) as p:
        for _ in range(5):
            with pytest.raises(Refused) as refused:
                p.open_session()
            assert refused.value.reason_name == "bad_mac"
    with Programmer(link, key=KEYS["clinician"]) as p:
        p.open_session()
        assert p.in_session
    # Logged coalesced: the 1st, 2nd and 4th failure with their count, then the login.
    assert server.named("auth") == [(1, 0, 1), (1, 0, 2), (1, 0, 4), (1, 1, 1)]


def test_an_impostor_pump_is_detected(loop_pump):
    server, link = loop_pump

    def forge(payload):
        payload[1] ^= 0xFF          # the pump's proof (after the status byte)
    impostor = Manipulator(link, fn=edit_response(C.SESSION_AUTH, forge))
    p = Programmer(impostor, key=KEYS["clinician"])
    with pytest.raises(LinkFailure) as failure:
        p.open_session()
    assert "impostor" in str(failure.value)
    assert not p.in_session
    p.close()


def test_an_altered_response_fails_authentication(loop_pump):
    server, link = loop_pump

    def alter(payload):
        payload[10] ^= 0x01         # inside the interrogate fields
    altered = Manipulator(link, fn=edit_response(C.INTERROGATE, alter))
    with Programmer(altered, key=KEYS["clinician"]) as p:
        with pytest.raises(LinkFailure) as failure:
            p.interrogate()
    assert str(failure.value).startswith("the response to INTERROGATE failed authentication")


def test_log_pages_through_more_than_32_entries(loop_pump):
    server, link = loop_pump
    with Programmer(link, key=KEYS["clinician"]) as p:
        for _ in range(40):                          # each refusal is logged
            with pytest.raises(Refused):
                p.program_continuous(5000)
        first_page = p.read_log(1, 32)
        entries = p.read_all_log()
        tail = p.read_all_log(start_seq=5, limit=35)
    seqs = [e["seq"] for e in entries]
    assert len(first_page["entries"]) == 32 and first_page["next_seq"] == 33
    assert len(entries) > 40 and seqs == list(range(1, len(entries) + 1))
    assert [e["seq"] for e in tail] == list(range(5, 40))
    refused = [e for e in entries if e["code"] == eventlog.REFUSED]
    assert len(refused) == 40


def test_patient_role_gets_role_not_allowed(loop_pump):
    server, link = loop_pump
    with Programmer(link, role="patient", key=KEYS["patient"]) as p:
        assert p.interrogate()["therapy"] == "idle"
        with pytest.raises(Refused) as refused:
            p.clinician_bolus(10, 10 * MIN)
    assert refused.value.reason_name == "role_not_allowed"
    assert server.named("bolus_start") == []


def test_every_command_round_trips(loop_pump):
    server, link = loop_pump
    week = [[[0, 200], [480, 300]]] * 7
    with Programmer(link, key=KEYS["clinician"]) as p:
        limits = p.read_limits()
        assert limits["daily_dose_soft_ug"] == 800
        changed = p.set_limits(bolus_soft_ug=50)
        assert changed["old"]["bolus_soft_ug"] == 100 and changed["new"]["bolus_soft_ug"] == 50
        assert changed["new"]["daily_dose_soft_ug"] == 800
        assert p.program_flex(week) == {"old_daily_ug": 0, "new_daily_ug": 266}
        assert p.refill(18000000, 500)["new_estimate_nl"] == 18000000
        assert p.set_patient_bolus(True, 25, 10 * MIN, 180 * MIN, 4) == \
            {"old_enabled": False, "old_dose_ug": 0}
        assert p.patient_bolus()["dose_ug"] == 25
        assert p.set_low_reservoir_alarm(3000000) == {"old_volume_nl": 2000000}
        assert p.set_clock(WALL_MS + 3600000) == {"old_wall_ms": WALL_MS}
        assert p.silence_alarms(30) == {"silenced": 0}
        assert p.alarm_test() == {}
        assert p.stop() == {}
        assert p.start() == {}
        assert p.clear_alarm() == {}
        with pytest.raises(Refused) as refused:
            p.patient_bolus()
        assert refused.value.reason_name == "lockout_active"
        with pytest.raises(ProgrammerError, match="not sent"):
            p.program_continuous(-1)
    with server.lock:
        assert server.pump.reservoir.low_reservoir_alarm_nl == 3000000
        assert server.pump.wall_ms() == WALL_MS + 3600000


def test_key_file_loading(tmp_path, key_file):
    assert load_key_file(key_file, "patient") == KEYS["patient"]
    with pytest.raises(KeyFileError, match="no such key file"):
        load_key_file(str(tmp_path / "none.json"))
    bad = tmp_path / "bad.json"
    bad.write_text('{"serial": "X", "clinician": "12"}', encoding="utf-8")
    with pytest.raises(KeyFileError, match=r"bad.json: not a usable key file: .*clinician"):
        load_key_file(str(bad))


# ------------------------------------------------------------------------------ vpump prog

def test_cli_identify_and_status(tcp_pump, key_file):
    server, url = tcp_pump
    assert prog_ok(url, "identify") == \
        "vpump-ib20, serial VP-TEST1, firmware 0.1.0, protocol 1\n"
    out = prog_ok(url, "status", "--key-file", key_file)
    assert out.splitlines()[0] == "therapy     idle (therapy off), no program"
    assert "reservoir   20.000 mL of 500 ug/mL (reservoir_ok)" in out
    assert "clock       2026-01-05 08:00:00 UTC (boot 1)" in out
    # Options may also come before the command.  (Each session costs battery charge.)
    again = prog_ok("--key-file", key_file, url, "status")
    assert again.splitlines()[:2] == out.splitlines()[:2]


def test_cli_json_output_parses(tcp_pump, key_file):
    server, url = tcp_pump
    doc = json.loads(prog_ok(url, "status", "--key-file", key_file, "--json"))
    assert doc["ok"] is True and doc["command"] == "status"
    assert doc["result"]["therapy"] == "idle" and doc["result"]["alarms"] == []
    code, out, err = prog(url, "program", "5000", "--key-file", key_file, "--json")
    assert code == 2
    error = json.loads(out)["error"]
    assert (error["kind"], error["reason_name"], error["field"], error["hi"]) == \
        ("refused", "over_hard_limit", "daily_dose_ug", 2000)


def test_cli_program_shows_old_and_new(tcp_pump, key_file):
    server, url = tcp_pump
    assert prog_ok(url, "program", "400", "--key-file", key_file) == \
        "continuous: daily dose 0 -> 400 ug/day\n"
    assert prog_ok(url, "program", "450", "--key-file", key_file) == \
        "continuous: daily dose 400 -> 450 ug/day\n"


def test_cli_soft_limit_needs_confirm(tcp_pump, key_file):
    server, url = tcp_pump
    code, out, err = prog(url, "program", "900", "--key-file", key_file)
    assert code == 2 and out == ""
    line = one_error(err)
    # In the user's words and units (issue 13 item 3), the reason's name kept for scripts.
    assert line == ("vpump prog: program: refused (soft_limit_needs_confirm): daily dose 900 "
                    "ug/day is over the soft limit of 800 ug/day: check it, then repeat the "
                    "command with --confirm")
    assert "repeat the command with --confirm" in line
    assert prog_ok(url, "program", "900", "--confirm", "--key-file", key_file) == \
        "continuous: daily dose 0 -> 900 ug/day\n"


def test_cli_hard_limit_refused_with_field_and_range(tcp_pump, key_file):
    server, url = tcp_pump
    code, out, err = prog(url, "program", "50000", "--confirm", "--key-file", key_file)
    assert code == 2
    assert one_error(err) == (
        "vpump prog: program: refused (over_hard_limit): daily dose 50,000 ug/day is over the "
        "hard limit of 2,000 ug/day; a hard limit is never exceeded, not even with --confirm")
    code, out, err = prog(url, "bolus", "500", "--minutes", "30", "--key-file", key_file)
    assert code == 2 and "bolus dose 500 ug is over the hard limit of 200 ug" in one_error(err)
    code, out, err = prog(url, "patient-bolus-settings", "--dose", "300", "--minutes", "10",
                          "--lockout-min", "60", "--max-per-24h", "4", "--key-file", key_file)
    assert code == 2 and "--dose 300 ug is over the hard limit of 200 ug" in one_error(err)


def test_cli_patient_role_refused_a_clinician_command(tcp_pump, key_file):
    server, url = tcp_pump
    code, out, err = prog(url, "program", "400", "--role", "patient", "--key-file", key_file)
    assert code == 2
    line = one_error(err)
    assert "role_not_allowed" in line and "the patient role may use only" in line
    assert "therapy     idle" in prog_ok(url, "status", "--role", "patient", "--key-file",
                                         key_file)


def test_cli_wrong_key_then_the_right_one(tcp_pump, wrong_key_file, key_file):
    server, url = tcp_pump
    for _ in range(5):
        code, out, err = prog(url, "status", "--key-file", wrong_key_file)
        assert code == 2
        assert "refused: bad_mac" in one_error(err) and "check --key-file and --role" in err
    code, out, err = prog(url, "status", "--key-file", key_file)
    assert code == 0, err


def test_cli_bolus_lost_response_delivers_once(key_file):
    link = TcpServerLink("127.0.0.1", 0)
    dropped = []

    def drop_first_bolus_answer(direction, data):
        for item in frame.Decoder().feed(data):
            if item[3] == C.CLINICIAN_BOLUS | frame.RESPONSE and not dropped:
                dropped.append(data)
                return None
        return data
    server = PumpThread(Manipulator(link, fn=drop_first_bolus_answer))
    try:
        code, out, err = prog(link.url, "bolus", "50", "--minutes", "30", "--timeout", "0.2",
                              "--spy", "--key-file", key_file)
    finally:
        server.stop()
    assert code == 0, err
    assert out == "bolus started: 50 ug over 30 min\n"
    # Resent after a few measured round trips (adaptive), not after the whole --timeout.
    assert dropped and re.search(r"resend 1 of \d+ \(same frame\)", err)
    assert len(server.named("bolus_start")) == 1


def test_cli_log_paging(tcp_pump, key_file):
    server, url = tcp_pump
    with server.lock:
        for _ in range(40):
            server.pump.program_continuous(5000)     # 40 refusals in the log
    out = prog_ok(url, "log", "--key-file", key_file)
    lines = out.splitlines()
    assert len(lines) >= 43
    assert [int(line.split()[0]) for line in lines] == list(range(1, len(lines) + 1))
    assert re.match(r"^\s+1  2026-01-05 08:00:00  boot\s+boot_count=1 ", lines[0])
    refused = [line for line in lines if "  refused  " in line]
    assert len(refused) == 40
    assert refused[0].endswith("reason=over_hard_limit request=program value=5000 limit=2000")
    out = prog_ok(url, "log", "--from", "30", "--count", "5", "--key-file", key_file, "--json")
    entries = json.loads(out)["result"]["entries"]
    assert [e["seq"] for e in entries] == [30, 31, 32, 33, 34]


def test_cli_every_command_in_human_units(tcp_pump, key_file, tmp_path):
    server, url = tcp_pump
    k = ("--key-file", key_file)
    assert prog_ok(url, "limits", *k).splitlines()[0] == "daily_dose_soft_ug       800"
    out = prog_ok(url, "set-limits", "--bolus-soft", "60", *k)
    assert re.search(r"^bolus_soft_ug +100 -> 60 +\(changed\)$", out, re.M)
    assert re.search(r"^bolus_hard_ug +200 -> 200$", out, re.M)
    flex = tmp_path / "flex.toml"
    flex.write_text('[[flex]]\ndays = ["all"]\nsteps = [["00:00", 200], ["08:00", 300]]\n',
                    encoding="utf-8")
    assert prog_ok(url, "program-flex", str(flex), *k) == \
        "flex: average daily dose 0 -> 266 ug/day\n"
    assert prog_ok(url, "program-flex", "00:00=250", *k) == \
        "flex: average daily dose 266 -> 250 ug/day\n"
    assert prog_ok(url, "patient-bolus-settings", "--dose", "25", "--minutes", "10",
                   "--lockout-min", "180", "--max-per-24h", "4", *k) == \
        "patient bolus: disabled -> enabled, 25 ug over 10 min, lockout 180 min, at most 4 in 24 h\n"
    assert prog_ok(url, "refill", "18.5", "--concentration", "500", *k) == \
        "refill: reservoir estimate 20.000 mL -> 18.500 mL at 500 ug/mL\n"
    assert prog_ok(url, "patient-bolus", "--role", "patient", *k) == \
        "patient bolus started: 25 ug; next one possible from 2026-01-05 11:00:00 UTC\n"
    assert prog_ok(url, "low-reservoir-alarm", "2.5", *k) == \
        "low-reservoir alarm: 2.000 mL -> 2.500 mL\n"
    assert prog_ok(url, "set-clock", "2026-01-05T10:00+01:00", *k) == \
        "clock: 2026-01-05 08:00:00 UTC -> 2026-01-05 09:00:00 UTC\n"
    assert prog_ok(url, "silence", "30", *k) == "silenced 0 alarm(s) for 30 min\n"
    assert prog_ok(url, "alarm-test", *k) == "alarm test: the two-tone, then the single tone\n"
    # A stop during the patient's bolus says it was cancelled and how much was given.
    assert prog_ok(url, "stop", *k) == ("therapy stopped; the patient bolus in progress was "
                                        "cancelled: 0 of 25 ug given (0.000 mL of 0.050 mL)\n")
    assert prog_ok(url, "start", *k) == "therapy started\n"
    assert prog_ok(url, "clear", *k) == "clear: no critical alarm was active; nothing to clear\n"
    code, out, err = prog(url, "patient-bolus", *k)
    assert code == 2 and "refused: lockout_active" in one_error(err)
    assert prog_ok(url, "patient-bolus-settings", "--disable", *k) == \
        "patient bolus: enabled, 25 ug -> disabled\n"
    with server.lock:
        assert server.pump.doser.reservoir_nl() == 18500000
        assert server.pump.reservoir.low_reservoir_alarm_nl == 2500000
        assert server.pump.limits["bolus_soft_ug"] == 60


@pytest.mark.parametrize("argv, needles", [
    (["refill", "-1", "--concentration", "500"], ["ML", "got -1", "mL from 0"]),
    (["refill", "1.0001", "--concentration", "500"], ["at most 3 decimals"]),
    (["refill", "1000", "--concentration", "500"], ["got 1000", "mL from 0 to 40"]),
    (["refill", "5", "--concentration", "700"], ["got 700", "50, 500, 1000, 2000 ug/mL"]),
    (["bolus", "50", "--minutes", "0"], ["--minutes", "got 0", "minutes from 1 to 1440"]),
    (["program", "4294967296"], ["got 4294967296", "ug/day from 0 to 1000000"]),
    (["bolus", "50"], ["--minutes"]),
    (["program", "lots"], ["UG_PER_DAY", "got lots", "whole number"]),
    (["set-clock", "yesterday"], ["got yesterday", "ISO date"]),
    (["silence", "70000"], ["got 70000", "minutes from 1 to 1440"]),
    (["set-limits"], ["give at least one of --daily-soft"]),
    (["patient-bolus-settings", "--dose", "5"], ["missing --minutes, --lockout-min"]),
    (["program-flex", "nothing-here"], ["no such file"]),
    (["program-flex", "00:00=10,25:00=20"], ["HH:MM"]),
    (["--timeout", "0", "status"], ["--timeout", "got 0"]),
    (["frobnicate"], ["invalid choice", "frobnicate"]),
])
def test_cli_bad_arguments_exit_2(tcp_pump, key_file, argv, needles):
    server, url = tcp_pump
    code, out, err = prog(url, *(argv + ["--key-file", key_file]))
    assert code == 2, err
    for needle in needles:
        assert needle in err, (needle, err)


def test_cli_key_file_problems_exit_2(tcp_pump, tmp_path):
    server, url = tcp_pump
    missing = str(tmp_path / "nope.json")
    code, out, err = prog(url, "status", "--key-file", missing)
    assert code == 2 and missing in one_error(err) and "no such key file" in err
    bad = tmp_path / "bad.json"
    bad.write_text("not json", encoding="utf-8")
    code, out, err = prog(url, "status", "--key-file", str(bad))
    assert code == 2 and "bad.json: not a usable key file: key file: not JSON" in one_error(err)
    code, out, err = prog(url, "status")
    assert code == 2 and "needs an authenticated session: give --key-file" in one_error(err)


def test_cli_nothing_listening_exits_1(key_file):
    url = "socket://127.0.0.1:%d" % free_port()
    code, out, err = prog(url, "status", "--key-file", key_file)
    assert code == 1 and out == ""
    assert one_error(err).startswith("vpump prog: status: cannot open the link %s: nothing "
                                     "listens at %s" % (url, url))


def test_cli_no_answer_exits_1(key_file, tmp_path):
    # A listener that accepts but never answers: every retry times out.
    link = TcpServerLink("127.0.0.1", 0)
    try:
        code, out, err = prog(link.url, "identify", "--timeout", "0.05")
        assert code == 1
        assert "no answer from the pump to IDENTIFY after 4 tries, 0.05 s each" in one_error(err)
    finally:
        link.close()


def test_cli_help_lists_the_commands():
    code, out, err = prog("--help")
    assert code == 0
    for name in ACTION_NAMES:
        assert name in out
    code, out, err = prog("URL", "bolus", "--help")
    assert code == 0 and "--minutes M" in out and "--key-file FILE" in out


# ------------------------------------------------------------------------------ the shell

def test_shell_with_piped_stdin(tcp_pump, key_file, monkeypatch):
    server, url = tcp_pump
    script = "\n".join([
        "status",
        "program 400",
        "program 900",
        "bolus 20 --minutes 30",
        "frobnicate",
        "program",
        "help",
        "help bolus",
        "",
        "quit",
        "status",                   # after quit: never read
    ]) + "\n"
    monkeypatch.setattr(sys, "stdin", io.StringIO(script))
    code, out, err = prog(url, "--key-file", key_file)
    # A piped batch with a refused and two mistyped commands exits 2, as a script needs to see.
    assert code == 2, err
    assert out.startswith("vpump programmer: vpump-ib20, serial VP-TEST1, firmware 0.1.0, "
                          "protocol 1 as clinician.")
    assert "vpump> program 400\ncontinuous: daily dose 0 -> 400 ug/day\n" \
           "[infusing | reservoir 20.000 mL (reservoir_ok) | alarms: none]\n" in out
    assert "vpump> bolus 20 --minutes 30\nbolus started: 20 ug over 30 min\n" \
           "[bolus | reservoir 20.000 mL (reservoir_ok) | alarms: none]\n" in out
    assert "  patient-bolus-settings  set up or disable the patient bolus" in out
    assert "usage: bolus [-h] --minutes M [--confirm] UG" in out
    assert out.count("vpump> status") == 1 and out.rstrip().endswith("vpump> quit")
    errors = err.splitlines()
    assert "soft_limit_needs_confirm" in errors[0]
    assert errors[1] == "vpump prog: unknown command frobnicate; type help for the list"
    assert "the following arguments are required: UG_PER_DAY" in errors[2]
    assert len(errors) == 3


def test_shell_ends_at_eof_and_completes(tcp_pump, key_file):
    server, url = tcp_pump
    args = cli.build_parser().parse_args(["prog", url, "--key-file", key_file, "--json"])
    out, err = io.StringIO(), io.StringIO()
    code = prog_module.run(args, out, err, stdin=io.StringIO("status\nstop\n"))
    assert code == 0, err.getvalue()
    # --json: stdout is JSON and nothing else (the banner went to stderr, nothing echoed).
    docs = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [d["command"] for d in docs] == ["status", "stop"] and all(d["ok"] for d in docs)
    assert err.getvalue().startswith("vpump programmer: ")
    shell = Shell(None, args, io.StringIO(), io.StringIO(), io.StringIO(), False)
    assert shell.completenames("pa") == ["patient-bolus ", "patient-bolus-settings "]
    assert shell.completenames("set-") == ["set-limits ", "set-clock "]
    assert shell.completedefault("--con", "bolus 5 --con", 8, 13) == ["--confirm "]
    assert shell.complete_help("lo") == ["log ", "low-reservoir-alarm "]


def test_shell_without_key_only_identifies(tcp_pump, monkeypatch):
    server, url = tcp_pump
    monkeypatch.setattr(sys, "stdin", io.StringIO("identify\nstatus\n"))
    code, out, err = prog(url)
    assert code == 2                  # status could not run
    assert "no --key-file: only identify works" in out
    assert "vpump> identify\nvpump-ib20, serial VP-TEST1" in out
    assert "status needs an authenticated session" in err


def test_shell_refuses_to_start_with_a_wrong_key(tcp_pump, wrong_key_file, monkeypatch):
    server, url = tcp_pump
    monkeypatch.setattr(sys, "stdin", io.StringIO("status\n"))
    code, out, err = prog(url, "--key-file", wrong_key_file)
    assert code == 2 and "bad_mac" in one_error(err)


# ------------------------------------------------------------------------------ end to end

def _vpump(*argv):
    return [sys.executable, "-c", "import sys; from tools.cli import main; sys.exit(main())"] + \
        list(argv)


@pytest.mark.parametrize("link", ["pty", "socket://127.0.0.1:0"])
def test_end_to_end_serve_and_prog_processes(link):
    env = dict(os.environ, PYTHONPATH=REPO)
    server = subprocess.Popen(_vpump("serve", "--link", link), cwd=REPO, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = server.stdout.readline()
        second = server.stdout.readline()
        assert first.startswith("link: ") and second.startswith("keys: "), \
            (first, second, server.stderr.read() if server.poll() is not None else "")
        # Read the state line here too: communicate() reads the pipe itself, so a line that
        # readline() already buffered would be lost to it.
        third = server.stdout.readline()
        url, keys = first[6:].strip(), second[6:].strip()
        if link == "pty":
            assert url.startswith("/dev/")
        else:
            assert re.match(r"^socket://127\.0\.0\.1:\d+$", url) and not url.endswith(":0")
        done = subprocess.run(_vpump("prog", url, "status", "--key-file", keys), cwd=REPO,
                              env=env, capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("therapy     idle (therapy off), no program\n")
        assert "reservoir   20.000 mL of 2000 ug/mL (reservoir_ok)" in done.stdout
        done = subprocess.run(_vpump("prog", url, "program", "5000", "--key-file", keys),
                              cwd=REPO, env=env, capture_output=True, text=True, timeout=30)
        assert done.returncode == 2 and "over_hard_limit" in done.stderr
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            rest, err = server.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.communicate()
            raise
        keys_path = locals().get("keys")
        if keys_path and os.path.exists(keys_path):
            os.unlink(keys_path)           # serve wrote it to the temporary folder
    assert server.returncode == 0, err
    assert third.startswith("state: in memory only") and rest.startswith("stopped: ")


def test_flex_schedules_from_a_file_or_inline(tmp_path):
    from sim.errors import ScenarioError
    from tools.prog.units import load_flex
    path = tmp_path / "week.toml"
    path.write_text('[[flex]]\ndays = ["mon", "tue", "wed", "thu", "fri"]\n'
                    'steps = [["00:00", 190], ["06:00", 170]]\n'
                    '[[flex]]\ndays = ["sat", "sun"]\nsteps = [["00:00", 150]]\n')
    week = load_flex(str(path))
    assert week[0] == [[0, 190], [360, 170]] and week[6] == [[0, 150]]
    assert load_flex("00:00=190,06:00=170") == [[[0, 190], [360, 170]]] * 7
    with pytest.raises(ScenarioError, match="the first step must start at"):
        load_flex("01:00=190")
