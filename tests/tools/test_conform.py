"""`vpump conform` (tools/conform.py): green against `vpump serve`, red with the right check
named against a pump with a planted protocol bug."""

import io
import json
import threading
from xml.etree import ElementTree

import pytest

from firmware import telemetry
from protocol import frame
from sim.links import open_link
from sim.serve import Serve
from tools.cli import main
from tools.conform import CHECKS, NAMES
from tools.pytest_plugin import ServedPump

KEYS = {"serial": "VP-CONFORM", "clinician": bytes(range(32)), "patient": bytes(range(7, 39))}


def test_green_against_vpump_serve_with_junit(tmp_path):
    junit = tmp_path / "conform.xml"
    with ServedPump(tmp_path, seed=4) as served:
        out, err = io.StringIO(), io.StringIO()
        code = main(["conform", served.url, "--key-file", served.key_file, "--junit",
                     str(junit), "--json"], stdout=out, stderr=err)
        status = served.status()
    assert code == 0, out.getvalue() + err.getvalue()
    report = json.loads(out.getvalue())
    assert report["counts"]["fail"] == 0 and report["not_restored"] == []
    suite = ElementTree.parse(str(junit)).getroot().find("testsuite")
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == NAMES
    assert suite.get("failures") == "0" and not suite.findall(".//failure")
    skipped = [c for c in cases if c.find("skipped") is not None]
    assert int(suite.get("skipped")) == len(skipped) > 0
    assert all(c.find("skipped").get("message") for c in skipped)
    # Every NAK code is shown by a check that passed, or its check is skipped saying why.
    from protocol import reasons
    assert sorted(report["naks"]) == sorted(n for c, n in reasons.TEXT.items() if c)
    for name, by in report["naks"].items():
        assert by in NAMES or by.startswith("skip: nak."), (name, by)
    assert report["naks"]["replay"] == "session.replay"
    # What conform changed was put back: a fresh pump is stopped, with its alarm volume.
    assert status["therapy_on"] is False
    assert status["low_reservoir_alarm_nl"] == 2000000


def serve_in_process():
    link = open_link("socket://127.0.0.1:0")
    serve = Serve(None, link, KEYS, speed=1.0, seed=5)
    thread = threading.Thread(target=serve.run, name="serve")
    thread.start()
    return serve, thread, link.url


def conform_against_bug(tmp_path, *only):
    key_file = tmp_path / "keys.json"
    from protocol.keygen import format_keys
    key_file.write_text(format_keys(KEYS))
    serve, thread, url = serve_in_process()
    out = io.StringIO()
    try:
        args = ["conform", url, "--key-file", str(key_file), "--json"]
        if only:
            args += ["--only", ",".join(only)]
        code = main(args, stdout=out, stderr=io.StringIO())
    finally:
        serve.stop()
        thread.join(10)
    return code, json.loads(out.getvalue())


@pytest.mark.parametrize("bug, check", [("no_inter_byte_timeout", "framing.inter_byte_timeout"),
                                        ("resent_frame_runs_again", "session.cached_answer")])
def test_red_against_a_planted_bug_names_the_check(tmp_path, monkeypatch, bug, check):
    if bug == "no_inter_byte_timeout":
        # The pump's decoder without its inter-byte timeout (gap 0: it waits forever).
        monkeypatch.setattr(frame, "SOCKET_GAP_MS", 0)
    else:
        # The pump forgets the request it answered last: a resent frame is not recognised.
        real = telemetry.Telemetry._authenticated

        def forgetful(self, seq, cmd, payload):
            self._last_request = None
            return real(self, seq, cmd, payload)
        monkeypatch.setattr(telemetry.Telemetry, "_authenticated", forgetful)
    code, report = conform_against_bug(tmp_path)
    failed = [r["name"] for r in report["results"] if r["status"] == "fail"]
    assert code == 1
    assert failed == [check], report
    assert report["counts"]["fail"] == 1


def test_list_only_and_bad_input(tmp_path):
    out = io.StringIO()
    assert main(["conform", "x", "--key-file", "k", "--list"], stdout=out,
                stderr=io.StringIO()) == 0
    assert out.getvalue().split() == NAMES and len(NAMES) == len(CHECKS)
    err = io.StringIO()
    assert main(["conform", "socket://127.0.0.1:9", "--key-file", str(tmp_path / "none.json")],
                stdout=io.StringIO(), stderr=err) == 2
    assert "no such key file" in err.getvalue()
    err = io.StringIO()
    assert main(["conform", "x", "--key-file", "k", "--only", "framing.nope"],
                stdout=io.StringIO(), stderr=err) == 2
    assert "unknown check framing.nope" in err.getvalue()
    err = io.StringIO()
    assert main(["conform", "x", "--key-file", "k", "--gap-ms", "0"], stdout=io.StringIO(),
                stderr=err) == 2
    assert "got 0, must be a whole number from 1 to 10000" in err.getvalue()


def test_in_process_scenario_pump_passes_and_gets_its_program_back():
    # The checks in virtual time (the inter-byte silence too), against a scenario's pump that
    # has a program and a patient bolus: what could be put back is, and the rest is said.
    from sim.virtual_pump import VirtualPump
    from tools.conform import run_checks
    vp = VirtualPump("adult-sci-continuous", seed=1)
    report = run_checks(vp.link, vp.keys, clock=vp.clock)
    assert [r["name"] for r in report["results"] if r["status"] == "fail"] == []
    skipped = [r["name"] for r in report["results"] if r["status"] == "skip"]
    assert "nak.no_program" in skipped          # this pump has a program
    assert vp.status()["program"] == {"mode": "continuous", "basal_ug_per_day": 400}
    assert vp.status()["therapy_on"] is True
    assert report["not_restored"] == ["patient bolus: it was on (25 ug); conform leaves it "
                                      "off: program its settings again"]
    vp.close()
