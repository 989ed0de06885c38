"""The Wireshark dissector (tools/wireshark/vpump.lua) and `vpump wireshark`.

The dissector's tables are generated from protocol/ and firmware/: a test fails when the
shipped file is stale.  The real tshark (Debian package `tshark`; `make test` and .ci/run
install it when they can) decodes captures of a real session: `vpump serve --capture` and the
`vpump prog` shell with `--capture` (every command, a NAK among them; the patient's bolus from
the patient's remote), then a frame with a bad CRC, garbage and a partial frame written raw to the socket.  Every vpump.*
field tshark shows must equal what protocol/ decodes from the same bytes (sim/capture.py
decode_packet), packet by packet, on both sides' captures.
"""

import io
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import time

import pytest

from protocol import commands as C
from protocol import frame
from protocol.keygen import format_keys
from sim.capture import decode_packet, read_capture
from sim.links import set_raw
from tools import cli, wireshark
from tools.wireshark import generate, tables

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TSHARK = shutil.which("tshark")
needs_tshark = pytest.mark.skipif(
    TSHARK is None, reason="tshark not found: the Wireshark dissector is not run (install the "
                           "Debian package tshark; `make test` and .ci/run do when they can)")
KEYS = {"serial": "VP-WIRE1", "clinician": bytes(range(32)), "patient": bytes(range(100, 132))}

# What the programmer's shell does in the session (each command is followed by its status line,
# an INTERROGATE).
SHELL = """identify
program 5000
program 100
program-flex 00:00=190,06:00=170
limits
set-limits --bolus-soft 60
bolus 20 --minutes 30
patient-bolus-settings --dose 10 --minutes 5 --lockout-min 60 --max-per-24h 4
refill 10 --concentration 2000
silence 30
low-reservoir-alarm 3
set-clock 2026-06-01T08:00
log --count 40
stop
clear
start
alarm-test
quit
"""


def test_the_shipped_dissector_tables_are_current():
    assert generate.current(), (
        "tools/wireshark/vpump.lua is stale (protocol/ or firmware/ changed): run `vpump "
        "wireshark --generate` and commit the result")


def test_generate_and_check_on_a_copy(tmp_path, monkeypatch):
    copy = tmp_path / "vpump.lua"
    text = open(generate.LUA_PATH, encoding="utf-8").read()
    stale = text.replace('[17]={"over_hard_limit"', '[17]={"over_the_limit"')
    assert stale != text
    copy.write_text(stale, encoding="utf-8")
    assert not generate.current(str(copy))
    assert generate.write(str(copy)) and generate.current(str(copy))
    assert copy.read_text(encoding="utf-8") == text
    copy.write_text("-- no tables\n", encoding="utf-8")
    with pytest.raises(generate.StaleError):
        generate.write(str(copy))


def _vpump(*argv):
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(list(argv), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def test_install_print_path_and_check(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    code, out, err = _vpump("wireshark", "--install")
    target = tmp_path / ".local" / "lib" / "wireshark" / "plugins" / "vpump.lua"
    assert code == 0 and out.splitlines()[0] == "installed %s" % target
    assert target.read_bytes() == open(wireshark.lua_path(), "rb").read()
    code, out, err = _vpump("wireshark", "--install", "--dir", str(tmp_path / "mine"))
    assert code == 0 and (tmp_path / "mine" / "vpump.lua").exists()
    assert _vpump("wireshark", "--print-path")[1] == wireshark.lua_path() + "\n"
    code, out, err = _vpump("wireshark", "--check")
    assert code == 0 and err.startswith("current: ")
    (tmp_path / "file").write_text("x")
    code, out, err = _vpump("wireshark", "--install", "--dir", str(tmp_path / "file"))
    assert code == 2 and err == "vpump wireshark: --dir %s: is a file, not a folder\n" % (
        tmp_path / "file")
    code, out, err = _vpump("wireshark", "--dir", "x")
    assert code == 2 and "only with --install" in err


# ------------------------------------------------------------------------------ tshark

def _colon(data):
    return ":".join("%02x" % b for b in bytes(data))


def _item_values(put, prefix, item, fields):
    key = item["key"]
    abbr = prefix + "." + key
    v = fields[key]
    t = item["type"]
    if t == "bool":
        put(abbr, "1" if v else "0")
    elif t == "enum":
        put(abbr, str(item["names"].index(v)))
    elif t == "bits":
        bits = fields["alarm_bits"]
        put(abbr, "0x%04x" % bits)
        for i, name in enumerate(item["names"]):
            put(abbr + "." + name, "1" if bits & (1 << i) else "0")
    elif t == "bytes":
        put(abbr, _colon(v))
    elif t in ("text", "version"):
        put(abbr, v)
    else:
        put(abbr, str(v))


def _codec_values(put, prefix, codec, fields):
    if isinstance(codec, dict) and codec.get("special") == "log":
        put(prefix + ".count", str(len(fields["entries"])))
        put(prefix + ".next_seq", str(fields["next_seq"]))
        for e in fields["entries"]:
            put(prefix + ".entry.seq", str(e["seq"]))
            put(prefix + ".entry.t_ms", str(e["t_ms"]))
            put(prefix + ".entry.code", str(e["code"]))
            for arg in e["args"]:
                put(prefix + ".entry.arg", str(arg))
    elif isinstance(codec, dict) and codec.get("special") == "flex":
        put(prefix + ".confirm", "1" if fields["confirm"] else "0")
        for day in fields["steps"]:
            put(prefix + ".steps", str(len(day)))
            for minute, ug in day:
                put(prefix + ".start_minute", str(minute))
                put(prefix + ".ug_per_day", str(ug))
    elif isinstance(codec, dict):
        for part in codec["pair"]:
            for item in codec["items"]:
                _item_values(put, prefix + "." + part, item, fields[part])
    else:
        for item in codec:
            _item_values(put, prefix, item, fields)


_ROWS = {row["code"]: row for row in tables.command_rows()}


def expected_fields(data):
    """The vpump.* fields and values the dissector must show, from protocol/'s decoding."""
    out = {}

    def put(abbr, value):
        out.setdefault(abbr, []).append(value)

    d = decode_packet(data)
    if len(data) < 2 or data[:2] != frame.SYNC:
        put("vpump.garbage", _colon(data))
        return out
    put("vpump.sync", "0xa55a")
    if len(data) < 4:
        return out
    length = (data[2] << 8) | data[3]
    put("vpump.len", str(length))
    if not 3 <= length <= frame.MAX_PAYLOAD + 3:
        put("vpump.garbage", _colon(data))
        return out
    if d["kind"] == "malformed":        # incomplete
        return out
    put("vpump.version", str(d["version"]))
    put("vpump.seq", str(d["seq"]))
    put("vpump.cmd", "0x%02x" % d["cmd"])
    put("vpump.response", "1" if d["cmd"] & 0x80 else "0")
    put("vpump.command", (d.get("command") or "").upper() or "0x%02X" % (d["cmd"] & 0x7F))
    payload = data[7:7 + length - 3]
    if payload:
        put("vpump.payload", _colon(payload))
    put("vpump.crc", "0x%04x" % ((data[-2] << 8) | data[-1]))
    if d["kind"] == "bad_crc":
        from protocol.crc import crc16
        put("vpump.crc.computed", "0x%04x" % crc16(data[2:-2]))
        put("vpump.crc.status", "0")
        return out
    put("vpump.crc.status", "1")
    if "counter" in d:
        put("vpump.counter", str(d["counter"]))
        put("vpump.mac", _colon(d["mac"]))
    row = _ROWS[d["cmd"] & 0x7F]
    if d["response"]:
        put("vpump.status", str(d["status"]))
        if d["status"]:
            nak = d["nak"]
            put("vpump.nak.reason", str(nak["reason"]))
            from protocol.fields import field_id
            put("vpump.nak.field", str(field_id(nak["field"])))
            for key in ("value", "lo", "hi"):
                put("vpump.nak." + key, str(nak[key]))
        else:
            _codec_values(put, "vpump.%s.resp" % row["name"], row["response"], d["fields"])
    else:
        _codec_values(put, "vpump." + row["name"], row["request"], d["fields"])
    return out


def shown_fields(layer):
    """tshark -T json's vpump layer -> ({abbr: [values]}, [(expert abbr, message)])."""
    fields, experts = {}, []

    def walk(node):
        if isinstance(node, list):
            for item in node:
                walk(item)
            return
        for key, value in node.items():
            if key == "_ws.expert":
                for one in (value if isinstance(value, list) else [value]):
                    name = [k for k in one if not k.startswith("_ws.")][0]
                    experts.append((name, one["_ws.expert.message"]))
            elif isinstance(value, (dict, list)) and not (
                    isinstance(value, list) and all(isinstance(v, str) for v in value)):
                walk(value)
            elif key.startswith("vpump."):
                fields.setdefault(key, []).extend(value if isinstance(value, list) else [value])
    walk(layer)
    return fields, experts


def tshark_packets(path, home):
    # HOME: an empty one, so an installed copy of the plugin does not load twice.
    done = subprocess.run([TSHARK, "-r", path, "-X", "lua_script:" + wireshark.lua_path(),
                           "-T", "json", "--no-duplicate-keys"],
                          capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, HOME=home, XDG_CONFIG_HOME=home))
    assert done.returncode == 0, done.stderr
    assert "Lua: Error" not in done.stderr and "lua" not in done.stderr.lower(), done.stderr
    return [p["_source"]["layers"] for p in json.loads(done.stdout)]


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    """Both sides' captures of one real session: (pump capture, programmer capture)."""
    tmp = tmp_path_factory.mktemp("wireshark")
    keys = tmp / "keys.json"
    keys.write_text(format_keys(KEYS), encoding="utf-8")
    pump_file, prog_file = str(tmp / "pump.pcapng"), str(tmp / "prog.pcapng")
    env = dict(os.environ, PYTHONPATH=REPO, HOME=str(tmp))
    main = [sys.executable, "-c", "import sys; from tools.cli import main; sys.exit(main())"]
    # A pty: a socket link hands the pump whole frames only (sim/tcp_server.py), and the pump's
    # capture is to show garbage too.
    server = subprocess.Popen(main + ["serve", "--link", "pty", "--keys", str(keys), "--seed", "3",
                                      "--capture", pump_file],
                              cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    try:
        url = server.stdout.readline()[len("link: "):].strip()
        assert url.startswith("/dev/"), server.stderr.read() if server.poll() else url
        shell = subprocess.run(main + ["prog", url, "--key-file", str(keys), "--capture",
                                       prog_file], input=SHELL, cwd=REPO, env=env,
                               capture_output=True, text=True, timeout=60)
        # Refusals (NAKs) make the shell exit 2; a link failure would be 1.
        assert shell.returncode in (0, 2) and "Traceback" not in shell.stderr, shell.stderr
        assert "over_hard_limit" in shell.stderr        # the NAK the session must contain
        remote = subprocess.run(main + ["prog", url, "patient-bolus", "--role", "patient",
                                        "--key-file", str(keys)], cwd=REPO, env=env,
                                capture_output=True, text=True, timeout=60)
        assert remote.returncode == 0, remote.stderr
        # A damaged frame (the pump answers bad_crc), garbage, and a frame cut short.
        fd = os.open(url, os.O_RDWR | os.O_NOCTTY)
        try:
            set_raw(fd)
            damaged = bytearray(frame.encode(9, C.IDENTIFY))
            damaged[-1] ^= 0x01
            os.write(fd, bytes(damaged) + b"garbage!")
            answer = b""
            deadline = time.monotonic() + 10
            while len(answer) < 35 and time.monotonic() < deadline:
                if select.select([fd], [], [], 0.5)[0]:
                    answer += os.read(fd, 64)
            assert answer[6] == C.IDENTIFY | frame.RESPONSE and answer[7] == 1     # bad_crc
            os.write(fd, frame.encode(10, C.IDENTIFY)[:6])
            time.sleep(0.3)         # past the pump's inter-byte timeout (100 ms on a pty)
        finally:
            os.close(fd)
    finally:
        server.send_signal(signal.SIGTERM)
        out, err = server.communicate(timeout=20)
    assert server.returncode == 0, err
    return pump_file, prog_file, str(tmp)


@needs_tshark
@pytest.mark.parametrize("side", ["pump", "programmer"])
def test_tshark_shows_what_protocol_decodes(session, side):
    pump_file, prog_file, home = session
    path = pump_file if side == "pump" else prog_file
    captured = read_capture(path)
    shown = tshark_packets(path, home)
    assert len(shown) == len(captured) > 40
    commands = set()
    for packet, layers in zip(captured, shown):
        fields, experts = shown_fields(layers["vpump"])
        assert fields == expected_fields(packet.data), "packet %d" % packet.number
        d = decode_packet(packet.data)
        commands.add(d.get("command"))
        if d.get("status"):
            assert ("vpump.nak.expert", _nak_text(d["nak"])) in experts
        if d["kind"] == "bad_crc":
            assert [e[0] for e in experts] == ["vpump.crc.bad"]
        if d["kind"] == "malformed":
            assert experts and experts[0][0] in ("vpump.garbage.expert", "vpump.partial")
        if d["kind"] == "frame" and not d.get("status"):
            assert experts == [], (packet.number, experts)
        # The capture's direction and comment come through as pcapng metadata.
        assert layers["frame"]["frame.p2p_dir"] == ("0" if packet.direction == "outbound"
                                                    else "1")
        shown_comments = layers.get("pkt_comment", {}).get("frame.comment", [])
        if isinstance(shown_comments, str):
            shown_comments = [shown_comments]
        assert shown_comments == packet.comments
    # Every command (the patient's bolus only on the pump's side: its remote did not capture).
    every = set(c.name for c in C.COMMANDS.values())
    assert commands - {None} == (every if side == "pump" else every - {"patient_bolus"})
    if side == "pump":
        kinds = [decode_packet(p.data)["kind"] for p in captured]
        assert kinds.count("bad_crc") == 1 and kinds.count("malformed") == 2


def _nak_text(nak):
    from protocol import reasons
    from protocol.fields import FIELDS
    text = "NAK %s: %s" % (nak["reason_name"], reasons.describe(nak["reason"]))
    if nak["field"]:
        unit = tables.unit_of(nak["field"])
        unit = " " + unit if unit else ""
        text += ": %s = %d%s, allowed %d..%d%s" % (nak["field"], nak["value"], unit, nak["lo"],
                                                   nak["hi"], unit)
    assert nak["field"] is None or nak["field"] in FIELDS
    return text
