"""`vpump fuzz` (tools/fuzz.py): a few thousand frames against a served pump find nothing, and a
planted unauthorised change (a canary) is found, with a reproducer."""

import json
import os
import subprocess
import sys
import threading

from firmware.pump import Pump
from firmware.telemetry import Telemetry
from hal.serial_link import SerialLink
from hal.sim import SimBoard
from protocol import reasons
from protocol.keygen import format_keys
from sim.tcp_server import TcpServerLink
from tools.cli import main
from tools.fuzz import Fuzzer, mutate

import random

VPUMP = os.path.join(os.path.dirname(sys.executable), "vpump")
KEYS = {"serial": "VP-FUZZ01", "clinician": bytes(range(32)), "patient": bytes(range(32, 64))}


def key_file(tmp_path):
    path = tmp_path / "keys.json"
    path.write_text(format_keys(KEYS), encoding="utf-8")
    return str(path)


def test_a_few_thousand_frames_against_vpump_serve_find_nothing(tmp_path):
    keys = key_file(tmp_path)
    server = subprocess.Popen([VPUMP, "serve", "--link", "socket://127.0.0.1:0", "--keys", keys],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = server.stdout.readline().split(": ", 1)[1].strip()
        findings = str(tmp_path / "findings")
        done = subprocess.run([VPUMP, "fuzz", url, "--key-file", keys, "--frames", "3000",
                               "--seed", "7", "--findings", findings, "--json",
                               "--probe-s", "30"],        # liveness, not speed: a loaded host
                              capture_output=True, text=True, timeout=600)
    finally:
        server.terminate()
        server.communicate(timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads(done.stdout)
    assert summary["frames"] >= 3000 and summary["batches"] >= 10
    assert (summary["crashes"], summary["hangs"], summary["unauthorised_changes"]) == (0, 0, 0)
    assert summary["answers"] > 1000 and summary["worst_unresponsive_s"] < 30
    assert not os.path.exists(findings)


class CanaryTelemetry(Telemetry):
    # A planted bug: every 20th frame that fails its MAC still moves the low-reservoir alarm.
    def __init__(self, *args, **kwargs):
        Telemetry.__init__(self, *args, **kwargs)
        self.bad_macs = 0

    def _authenticated(self, seq, cmd, payload):
        out = Telemetry._authenticated(self, seq, cmd, payload)
        if out[7] == reasons.BAD_MAC:
            self.bad_macs += 1
            if self.bad_macs % 20 == 0:
                self.pump.set_low_reservoir_alarm(self.pump.reservoir.low_reservoir_alarm_nl + 1000)
        return out


class PumpThread:
    def __init__(self, telemetry_class):
        board = SimBoard()
        board.reservoir.refill(20000000, 2000)
        self.pump = Pump(board)
        self.pump.boot()
        assert self.pump.refill(20000000, 2000) == reasons.OK
        self.link = TcpServerLink("127.0.0.1", 0)
        self.telemetry = telemetry_class(self.pump, self.link, KEYS)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self):
        while not self._stop.is_set():
            self.link.wait(0.02)
            self.telemetry.poll()

    def stop(self):
        self._stop.set()
        self._thread.join(10)
        self.link.close()


def test_the_fuzzer_finds_a_planted_unauthorised_change_and_writes_a_reproducer(tmp_path):
    server = PumpThread(CanaryTelemetry)
    findings = str(tmp_path / "findings")
    link = SerialLink(server.link.url)
    try:
        result = Fuzzer(link, KEYS, seed=3, findings_dir=findings, probe_s=30).run(3000)
    finally:
        link.close()
        server.stop()
    assert result["unauthorised_changes"] >= 1 and result["crashes"] == 0
    found = [f for f in result["findings"] if f["finding"] == "unauthorised_change"]
    assert all(f["mode"] == "tampered" for f in found)
    assert "low_reservoir_alarm_nl changed" in found[0]["detail"]
    assert "alarm_volume_set" in found[0]["detail"]
    with open(found[0]["path"]) as f:
        repro = json.load(f)
    assert repro["seed"] == 3 and repro["mode"] == "tampered" and repro["frames"]
    assert all("tamper" in fr["intent"] for fr in repro["frames"][2:])
    # The reproducer shows the finding again on a fresh pump with the same bug, not on ours.
    for telemetry_class, expected in ((CanaryTelemetry, True), (Telemetry, False)):
        server = PumpThread(telemetry_class)
        link = SerialLink(server.link.url)
        try:
            outcome = Fuzzer(link, KEYS, seed=4, probe_s=30).replay(repro)
        finally:
            link.close()
            server.stop()
        assert outcome["reproduced"] is expected, outcome


def test_bad_arguments_exit_2(tmp_path, capsys):
    assert main(["fuzz", "socket://127.0.0.1:1", "--key-file", str(tmp_path / "none.json")]) == 2
    assert "--key-file" in capsys.readouterr().err
    keys = key_file(tmp_path)
    assert main(["fuzz", "socket://127.0.0.1:1", "--key-file", keys, "--frames", "0"]) == 2
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    assert main(["fuzz", "socket://127.0.0.1:1", "--key-file", keys, "--replay", str(bad)]) == 2
    assert "not a vpump fuzz reproducer" in capsys.readouterr().err


def test_mutations_are_seeded():
    a = [mutate(random.Random(5), b"\x01\x02\x03") for _ in range(3)]
    b = [mutate(random.Random(5), b"\x01\x02\x03") for _ in range(3)]
    assert a == b
