"""Link captures (sim/capture.py): `vpump serve --capture` and `vpump prog --capture`.

The splitter is checked on byte vectors (any chunking, garbage, a frame with a bad CRC, a
partial frame at the end); then a real pump (sim/serve.py Serve, in a thread, on a loop link or
a TCP socket on 127.0.0.1) and the real programmer both capture one session, and both files are
read back with scapy and decoded with protocol/.
"""

import io
import re
import threading
import time

import pytest

from protocol import commands as C
from protocol import frame, reasons
from protocol.keygen import format_keys
from sim.capture import (INBOUND, OUTBOUND, Capture, CaptureError, _Splitter, decode_packet,
                         read_capture)
from sim.links import LoopPair, TcpServerLink
from sim.serve import Serve
from tools import cli
from protocol.client import Programmer

KEYS = {"serial": "VP-CAPT1", "clinician": bytes(range(32)), "patient": bytes(range(100, 132))}
IDENTIFY = frame.encode(7, C.IDENTIFY)          # A5 5A 00 03 01 07 01 34 56


def _bad_crc(raw):
    return raw[:-1] + bytes([raw[-1] ^ 0xFF])


def _split(chunks):
    splitter = _Splitter()
    out = []
    for chunk in chunks:
        out.extend(p[:2] for p in splitter.feed(chunk, 0))
    return out, [p[:2] for p in splitter.flush(0)]


@pytest.mark.parametrize("chunk", [1, 2, 5, 1000])
def test_splitter_keeps_every_byte_and_delimits_as_the_decoder(chunk):
    program = frame.encode(1, C.PROGRAM_CONTINUOUS, b"\x00" * 17)
    stream = (b"noise" + IDENTIFY + _bad_crc(program) + b"\xa5" + IDENTIFY + program
              + IDENTIFY[:5])
    out, rest = _split([stream[i:i + chunk] for i in range(0, len(stream), chunk)])
    kinds = [(kind, raw) for kind, raw in out]
    assert kinds == [("garbage", b"noise"), ("frame", IDENTIFY), ("bad_crc", _bad_crc(program)),
                     ("garbage", b"\xa5"), ("frame", IDENTIFY), ("frame", program)]
    assert rest == [("partial", IDENTIFY[:5])]
    assert b"".join(raw for _, raw in out + rest) == stream


def test_a_frame_hidden_behind_a_damaged_one_is_still_its_own_packet():
    # A sync and a LEN that claims 38 bytes: once they are there the CRC fails, and the
    # good frame inside is found, as the pump's decoder finds it.
    stream = b"\xa5\x5a\x00\x20\x01" + IDENTIFY + bytes(30)
    out, rest = _split([stream])
    assert out == [("garbage", b"\xa5\x5a\x00\x20\x01"), ("frame", IDENTIFY)]
    assert rest == [("garbage", bytes(30))]


def _serve_thread(link, capture):
    serve = Serve(None, link, KEYS, speed=1.0, seed=5, capture=capture)
    thread = threading.Thread(target=serve.run, name="test-serve", daemon=True)
    thread.start()
    return serve, thread


def test_pump_and_programmer_capture_one_session(tmp_path):
    pump_file, prog_file = str(tmp_path / "pump.pcapng"), str(tmp_path / "prog.pcapng")
    start_us = time.time_ns() // 1000
    pair = LoopPair()
    serve, thread = _serve_thread(pair.pump_end, Capture(pump_file, "pump"))
    capture = Capture(prog_file, "programmer", interface="vpump prog loop")
    try:
        with Programmer(pair.programmer_end, key=KEYS["clinician"], capture=capture) as prog:
            prog.identify()
            status = prog.interrogate()
            with pytest.raises(Exception):
                prog.program_continuous(5000)           # over the hard limit: a NAK
            prog.program_continuous(100)
        pair.programmer_end.write(_bad_crc(IDENTIFY) + b"junk")
        pair.programmer_end.wait(2)
    finally:
        capture.close()
        serve.stop()
        thread.join(10)
        pair.close()
    end_us = time.time_ns() // 1000
    pumps, progs = read_capture(pump_file), read_capture(prog_file)

    # The programmer's frames are the pump's, direction mirrored (the junk was written past it).
    frames = [(p.direction, p.data) for p in pumps if decode_packet(p.data)["kind"] == "frame"]
    mirrored = [("inbound" if p.direction == "outbound" else "outbound", p.data) for p in progs]
    assert frames[:len(mirrored)] == mirrored
    decoded = [decode_packet(p.data) for p in progs]
    assert [(d["command"], d["response"]) for d in decoded[:4]] == [
        ("identify", False), ("identify", True), ("session_open", False), ("session_open", True)]
    assert all(p.direction == ("inbound" if d["response"] else "outbound")
               for p, d in zip(progs, decoded))
    nak = [d for d in decoded if d.get("status") == reasons.OVER_HARD_LIMIT]
    assert len(nak) == 1 and nak[0]["nak"]["field"] == "daily_dose_ug"
    assert nak[0]["counter"] == 2 and len(nak[0]["mac"]) == 8
    ok = [d for d in decoded if d["command"] == "program_continuous" and d.get("status") == 0]
    assert ok[0]["fields"] == {"old_daily_ug": 0, "new_daily_ug": 100}
    assert progs[0].interface == "vpump prog loop" and progs[0].comments == []

    # Link time: this host's clock in microseconds; the pump's clock in every pump packet.
    assert all(start_us <= p.time_us <= end_us for p in pumps + progs)
    for p in pumps:
        assert re.match(r"^pump clock \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3} \(wall_ms \d+\)$",
                        p.comments[0]), p.comments
    # The programmer learns the pump's clock from INTERROGATE and carries it forward.
    reported = [i for i, d in enumerate(decoded) if d["command"] == "interrogate"
                and d["response"]][0]
    assert progs[reported].comments == ["pump clock %s (wall_ms %d), as this frame reports it"
                                        % (_iso(status["wall_ms"]), status["wall_ms"])]
    assert "estimated" in progs[reported + 1].comments[0]

    # The damaged frame and the junk the pump received are packets of their own, and its
    # bad_crc NAK follows.
    tail = [(p.direction, decode_packet(p.data)) for p in pumps[-3:]]
    assert tail[0][0] == "inbound" and tail[0][1]["kind"] == "bad_crc"
    assert tail[1][0] == "inbound" and tail[1][1]["kind"] == "malformed"
    assert pumps[-2].data == b"junk"
    assert tail[2][0] == "outbound" and tail[2][1]["status"] == reasons.BAD_CRC


def _iso(wall_ms):
    from sim.events import iso_ms
    return iso_ms(wall_ms)


def test_prog_capture_option_before_or_after_the_command(tmp_path):
    key_file = tmp_path / "keys.json"
    key_file.write_text(format_keys(KEYS), encoding="utf-8")
    link = TcpServerLink("127.0.0.1", 0)
    serve, thread = _serve_thread(link, None)
    try:
        a, b, keys = str(tmp_path / "a.pcapng"), str(tmp_path / "b.pcapng"), str(key_file)
        for argv in (["--capture", a, link.url, "--key-file", keys, "status"],
                     [link.url, "status", "--key-file", keys, "--capture", b]):
            out, err = io.StringIO(), io.StringIO()
            code = cli.main(["prog"] + argv, stdout=out, stderr=err)
            assert code == 0, err.getvalue()
            assert re.search(r"^capture: 8 packets in .*\.pcapng$", err.getvalue(), re.M)
        for name in ("a.pcapng", "b.pcapng"):
            cmds = [decode_packet(p.data)["command"] for p in read_capture(str(tmp_path / name))]
            assert cmds == ["session_open"] * 2 + ["session_auth"] * 2 + ["interrogate"] * 2 \
                + ["session_close"] * 2
    finally:
        serve.stop()
        thread.join(10)


def test_an_unwritable_capture_file_is_a_usage_error(tmp_path):
    out, err = io.StringIO(), io.StringIO()
    missing = str(tmp_path / "no" / "such" / "dir" / "x.pcapng")
    code = cli.main(["prog", "socket://127.0.0.1:9", "identify", "--capture", missing],
                    stdout=out, stderr=err)
    assert code == 2
    assert err.getvalue() == "vpump prog: identify: --capture %s: cannot write: No such file " \
                             "or directory\n" % missing
    code = cli.main(["serve", "--link", "socket://127.0.0.1:0", "--capture", missing],
                    stdout=out, stderr=err)
    assert code == 2 and "cannot write" in err.getvalue().splitlines()[-1]


def test_reading_something_that_is_not_a_capture(tmp_path):
    path = tmp_path / "x.pcapng"
    path.write_bytes(b"hello, not a capture")
    with pytest.raises(CaptureError, match="not a pcapng capture"):
        read_capture(str(path))
    with pytest.raises(CaptureError, match="cannot read"):
        read_capture(str(tmp_path / "missing.pcapng"))


def test_directions_are_the_capturing_sides(tmp_path):
    path = str(tmp_path / "c.pcapng")
    clock = iter(range(1767600000000000, 1767600000000000 + 10 ** 7, 1000))
    with Capture(path, "programmer", clock_us=lambda: next(clock)) as capture:
        capture.outbound(IDENTIFY[:4])
        capture.outbound(IDENTIFY[4:])
        capture.inbound(frame.encode(7, C.IDENTIFY | frame.RESPONSE, b"\x01" + bytes(25)))
        capture.inbound(b"\xa5\x5a\x00")
    packets = read_capture(path)
    assert [(p.direction, p.time_us) for p in packets] == [
        ("outbound", 1767600000001000), ("inbound", 1767600000002000),
        ("inbound", 1767600000004000)]
    assert packets[0].data == IDENTIFY and packets[2].data == b"\xa5\x5a\x00"
    assert (INBOUND, OUTBOUND) == (1, 2)


def test_a_partial_frame_the_pumps_timeout_dropped_is_its_own_packet(tmp_path):
    # The pump drops a partial frame after 100 ms of silence on a socket or pty
    # (protocol/frame.py); its capture shows it as the pump saw it, then the frame after it.
    path = str(tmp_path / "t.pcapng")
    now = [1767600000000000]
    with Capture(path, "pump", clock_us=lambda: now[0]) as capture:
        capture.inbound(IDENTIFY[:4])
        now[0] += 150000
        capture.inbound(IDENTIFY[4:] + IDENTIFY)
    packets = [(p.data, decode_packet(p.data)["kind"]) for p in read_capture(path)]
    assert packets == [(IDENTIFY[:4], "malformed"), (IDENTIFY[4:], "malformed"),
                       (IDENTIFY, "frame")]
