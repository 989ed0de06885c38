"""`vpump prog` as a newcomer meets it: refusals in the units and names typed, a stop that says
what became of a bolus, `clear` that says what it cleared, the environment's URL and key file,
--list, the shell's role-aware help, Ctrl-C, and sessions kept at any serve speed."""

import io
import json
import os
import threading

import pytest

from firmware import alarms
from protocol.client import Programmer
from sim.links import LoopPair
from sim.serve import Serve
from test_prog import KEYS, MIN, key_file, prog, prog_ok, tcp_pump  # noqa: F401  (fixtures)
from tools import cli
from tools.prog import shell as shell_module


def test_refusals_speak_the_units_typed(tcp_pump, key_file):
    server, url = tcp_pump
    code, out, err = prog(url, "refill", "30", "--concentration", "500", "--key-file", key_file)
    assert code == 2
    assert err == ("vpump prog: refill: refused (out_of_range): volume 30 mL is outside the "
                   "allowed 0 to 20 mL\n")
    code, out, err = prog(url, "program", "400", "--role", "patient", "--key-file", key_file)
    assert code == 2 and "role = " not in err
    assert "refused (role_not_allowed): the patient role may not use program; the patient role " \
           "may use only identify, status, patient-bolus, silence" in err
    doc = json.loads(prog(url, "refill", "30", "--concentration", "500", "--json",
                          "--key-file", key_file)[1])
    assert doc["error"]["field"] == "volume_nl" and doc["error"]["hi"] == 20000000
    assert doc["error"]["in_words"] == "volume 30 mL is outside the allowed 0 to 20 mL"


def test_a_stop_during_a_bolus_says_it_was_cancelled_and_how_much_was_given(tcp_pump, key_file):
    server, url = tcp_pump
    k = ("--key-file", key_file)
    prog_ok(url, "program", "400", *k)
    prog_ok(url, "bolus", "50", "--minutes", "30", *k)
    with server.lock:
        pump = server.pump
        pump.sched.run_until(pump.sched.now_ms() + 12 * MIN)
    out = prog_ok(url, "stop", *k)
    assert out.startswith("therapy stopped; the clinician bolus in progress was cancelled: ")
    given = [args for args in server.named("bolus_end")][-1]
    assert given[2] == 0                                  # completed = 0: cancelled
    assert "(%.3f mL of 0.100 mL)" % (given[1] / 1e6) in out and " of 50 ug given" in out
    doc = json.loads(prog_ok(url, "start", "--json", *k))
    assert doc["ok"]


def test_clear_says_what_it_cleared(tcp_pump, key_file):
    server, url = tcp_pump
    assert prog_ok(url, "clear", "--key-file", key_file) == \
        "clear: no critical alarm was active; nothing to clear\n"
    with server.lock:
        server.pump.alarms.raise_alarm(alarms.NAMES.index("motor_stall")) \
            if hasattr(server.pump.alarms, "raise_alarm") else None
    # (the clearing of a real alarm is covered by the scenario library's mri-scan)


def test_url_and_key_file_from_the_environment(tcp_pump, key_file, monkeypatch):
    server, url = tcp_pump
    monkeypatch.setenv("VPUMP_URL", url)
    monkeypatch.setenv("VPUMP_KEY_FILE", key_file)
    assert prog_ok("status").startswith("therapy     idle")
    assert prog_ok("--json", "identify").startswith('{"command": "identify", "ok": true')
    monkeypatch.delenv("VPUMP_URL")
    code, out, err = prog("status")
    assert code == 2 and "URL: give the pump's link" in err and "VPUMP_URL" in err


def test_list_shows_serial_ports_and_served_pumps(tmp_path):
    from tools.serve import _advertise
    note = _advertise("socket://127.0.0.1:4242", str(tmp_path / "k.json"),
                      {"name": "mri-scan"}, 60.0)
    try:
        out = io.StringIO()
        assert cli.main(["prog", "--list"], stdout=out, stderr=io.StringIO()) == 0
        text = out.getvalue()
        assert "socket://127.0.0.1:4242  keys %s  (mri-scan, speed 60x, pid %d" % (
            tmp_path / "k.json", os.getpid()) in text
        assert "serial ports (pyserial list_ports):" in text
        out = io.StringIO()
        assert cli.main(["prog", "--list", "--json"], stdout=out, stderr=io.StringIO()) == 0
        listing = json.loads(out.getvalue())
        assert listing["served_pumps"][0]["link"] == "socket://127.0.0.1:4242"
        assert isinstance(listing["serial_ports"], list)
    finally:
        os.remove(note)


def test_the_patients_help_lists_the_patients_commands(tcp_pump, key_file):
    server, url = tcp_pump
    args = cli.build_parser().parse_args(["prog", url, "--role", "patient"])
    out = io.StringIO()
    shell = shell_module.Shell(None, args, io.StringIO(), out, io.StringIO(), False)
    shell.do_help("")
    text = out.getvalue()
    assert "patient-bolus " in text and "status" in text
    assert "program " not in text and "refill" not in text
    assert "need the clinician role" in text


def test_ctrl_c_at_the_prompt_cancels_the_line_not_the_shell():
    args = cli.build_parser().parse_args(["prog", "socket://127.0.0.1:9"])
    out = io.StringIO()
    shell = shell_module.Shell(None, args, io.StringIO(), out, io.StringIO(), False)
    lines = iter([KeyboardInterrupt, "help", "quit", "help"])

    def read():
        line = next(lines)
        if line is KeyboardInterrupt:
            raise KeyboardInterrupt
        return line
    shell_module._loop(shell, read)
    assert "commands (help COMMAND" in out.getvalue()
    assert next(lines) == "help"             # stopped at quit, not at Ctrl-C


@pytest.mark.timeout(120)
def test_a_noisy_link_at_600x_keeps_its_sessions():
    # Issue 13 item 2: at --speed 600 a 1 s resend wait is 10 min of pump time, the session's
    # idle limit.  The programmer paces its resends by the measured round trip and opens a
    # forgotten session again: every interrogation works.
    from tools.serve import parse_noise
    noise, seed = parse_noise("drop_pct=10,corrupt_pct=5,seed=3")
    pair = LoopPair()
    serve = Serve(None, pair.pump_end, KEYS, speed=600.0, seed=5, noise=noise, noise_seed=seed)
    thread = threading.Thread(target=serve.run, name="serve")
    thread.start()
    try:
        done = 0
        for _ in range(20):
            with Programmer(pair.programmer_end, key=KEYS["clinician"], timeout_s=1.0,
                            adaptive=True) as programmer:
                assert programmer.interrogate()["therapy"] == "idle"
                done += 1
    finally:
        serve.stop()
        thread.join(10)
        pair.close()
    assert done == 20


def test_the_rate_increase_refusal_states_the_rule_and_when(tcp_pump, key_file):
    # Issue 13 item 4: after lowering the dose, a rise back is refused with the rule, the
    # increase asked and allowed, and when it becomes possible.
    server, url = tcp_pump
    k = ("--key-file", key_file)
    day = 24 * 60 * MIN

    def advance(ms):
        with server.lock:
            server.pump.sched.run_until(server.pump.sched.now_ms() + ms)
    prog_ok(url, "program", "400", *k)
    advance(2 * day)
    prog_ok(url, "program", "175", *k)                 # lowered
    advance(60 * MIN)
    code, out, err = prog(url, "program", "400", "--confirm", *k)
    assert code == 2
    assert err == ("vpump prog: program: refused (over_hard_limit): a daily dose may rise at most "
                   "100 % within 24 h of the lowest dose in effect in that time (175 ug/day); "
                   "this asks +225 ug/day (to 400 ug/day), at most +175 ug/day is allowed now (up "
                   "to 350 ug/day); waiting does not help while the dose in effect is that low: "
                   "program at most 350 ug/day now, and more 24 h later (a hard limit: --confirm "
                   "does not pass it)\n")
    prog_ok(url, "program", "350", "--confirm", *k)    # +100 %: allowed with confirm
    advance(2 * 60 * MIN)
    code, out, err = prog(url, "program", "400", *k)
    assert code == 2
    assert "within 24 h of the lowest dose in effect in that time (175 ug/day); this asks " \
           "+225 ug/day" in err
    # 175 was replaced on 2026-01-07 at 09:00 (the pump's clock started 2026-01-05 08:00).
    assert "possible from 2026-01-08 09:00:00 UTC, 24 h after the lower dose was replaced" in err
    doc = json.loads(prog(url, "program", "400", "--json", *k)[1])
    assert doc["error"]["field"] == "rate_increase_24h_ug"
    assert (doc["error"]["value"], doc["error"]["hi"]) == (225, 175)
