"""The pump's links (pty, TCP, in-process loop) against pyserial clients, and the wrappers that
shape bytes (rate limit, fault injection) on a fake clock."""

import os
import select
import socket
import subprocess
import sys
import termios
import threading

import pytest

from hal.base import Link
from hal.errors import LinkError
from hal.serial_link import SerialLink
from sim.links import (
    BOTH, RECEIVE, SEND, LoopPair, Manipulator, PtyLink, RateLimited, TcpServerLink, open_link,
    open_pty, parse_socket_url,
)

ALL_BYTES = bytes(range(256))
CONTROL = b"\r\n\r\x03\x11\x13\x00\x04\x1a\x7f\xff\n\r"


class FakeClock:
    def __init__(self, now_s=0.0):
        self.now_s = now_s

    def __call__(self):
        return self.now_s

    def sleep(self, seconds):
        self.now_s += seconds


class Recorder(Link):
    # An inner link that records each write separately and reads from `incoming` chunks.
    def __init__(self):
        Link.__init__(self)
        self.writes = []
        self.incoming = []

    def _write_internal(self, data):
        self.writes.append(bytes(data))
        return len(data)

    def _read_internal(self, max_bytes):
        return self.incoming.pop(0) if self.incoming else b""

    def wait(self, timeout_s):
        return bool(self.incoming)


def read_exactly(link, n, timeout_s=5.0):
    out = bytearray()
    while len(out) < n:
        assert link.wait(timeout_s), "got %d of %d bytes" % (len(out), n)
        out += link.read(n - len(out))
    return bytes(out)


# --- loop ----------------------------------------------------------------------------------

def test_loop_pair_round_trip_both_ways():
    with LoopPair() as pair:
        pump, prog = pair.pump_end, pair.programmer_end
        assert pump.read() == b"" and not pump.wait(0)
        prog.write(ALL_BYTES)
        assert pump.wait(0) and pump.read(1000) == ALL_BYTES
        pump.write(b"abc")
        pump.write(b"def")
        assert prog.read(4) == b"abcd" and prog.read() == b"ef"
        assert pump.peer is prog and prog.peer is pump and pump.url == "loop://"


def test_loop_wait_wakes_when_the_other_thread_writes():
    with LoopPair() as pair:
        sender = threading.Timer(0.05, pair.programmer_end.write, (b"x",))
        sender.start()
        try:
            assert pair.pump_end.wait(5.0)
        finally:
            sender.join()
        assert pair.pump_end.read() == b"x"


def test_loop_writes_to_a_closed_end_are_dropped_and_counted():
    pair = LoopPair()
    pair.programmer_end.close()
    assert pair.pump_end.write(b"1234") == 4
    assert pair.pump_end.bytes_dropped == 4
    pair.close()
    pair.close()


def test_open_link_loop_gives_the_pump_end_with_its_peer():
    pump = open_link("loop")
    pump.peer.write(b"req")
    assert pump.read() == b"req"
    pump.close()
    assert open_link("loop://").url == "loop://"


# --- pty -----------------------------------------------------------------------------------

def test_open_pty_is_raw_on_both_ends_and_the_master_does_not_block():
    master, path = open_pty()
    slave = os.open(path, os.O_RDWR | os.O_NOCTTY)
    try:
        assert not os.get_blocking(master)
        for fd in (master, slave):
            iflag, oflag, cflag, lflag = termios.tcgetattr(fd)[:4]
            assert not iflag & (termios.ICRNL | termios.INLCR | termios.IGNCR | termios.IXON
                                | termios.IXOFF | termios.ISTRIP)
            assert not oflag & termios.OPOST
            assert not lflag & (termios.ECHO | termios.ICANON | termios.ISIG | termios.IEXTEN)
            assert cflag & termios.CSIZE == termios.CS8
    finally:
        os.close(slave)
        os.close(master)


def test_pty_passes_every_byte_unchanged_without_pyserial_on_the_slave():
    # A plain os.open of the slave gets only our settings (pyserial would set its own).
    with PtyLink() as pump:
        slave = os.open(pump.path, os.O_RDWR | os.O_NOCTTY)
        try:
            pump.write(ALL_BYTES + CONTROL)
            got = b""
            while len(got) < 256 + len(CONTROL):
                got += os.read(slave, 1024)
            assert got == ALL_BYTES + CONTROL
            os.write(slave, CONTROL + ALL_BYTES)
            assert read_exactly(pump, 256 + len(CONTROL)) == CONTROL + ALL_BYTES
            assert not pump.wait(0.02)      # nothing echoed back, nothing extra
        finally:
            os.close(slave)


def test_pty_round_trip_with_pyserial_on_the_slave():
    with PtyLink() as pump, SerialLink(pump.url) as prog:
        assert pump.url == pump.path and pump.path.startswith("/dev/")
        prog.write(ALL_BYTES + CONTROL)
        assert read_exactly(pump, 256 + len(CONTROL)) == ALL_BYTES + CONTROL
        pump.write(CONTROL + ALL_BYTES)
        assert read_exactly(prog, 256 + len(CONTROL)) == CONTROL + ALL_BYTES


def test_pty_pump_sees_no_echo_of_its_own_bytes_and_no_hangup_without_a_client():
    with PtyLink() as pump:
        pump.write(b"status\r\n")
        assert not pump.wait(0.05)
        assert pump.read() == b""


def test_pty_client_disconnects_and_reconnects():
    with PtyLink() as pump:
        with SerialLink(pump.url) as first:
            first.write(b"last words")
        # The client is gone: its bytes are still there, then quiet (no EIO, no busy wait).
        assert read_exactly(pump, 10) == b"last words"
        assert not pump.wait(0.05) and pump.read() == b""
        pump.write(b"stale")            # nobody connected; the next client's open discards it
        with SerialLink(pump.url) as second:
            second.write(b"hello again")
            assert read_exactly(pump, 11) == b"hello again"
            pump.write(b"welcome")
            assert read_exactly(second, 7) == b"welcome"


def test_pty_write_that_nobody_reads_gives_up_and_counts_the_drop():
    with PtyLink(write_timeout_s=0.05) as pump:
        n = 1 << 20
        assert pump.write(bytes(n)) == n
        assert 0 < pump.bytes_dropped < n


ECHO_FRAMES = r"""
import sys, select, serial
port = serial.serial_for_url(sys.argv[1], timeout=0)
print("ready", flush=True)
try:
    while select.select([port.fileno()], [], [], 30)[0]:
        data = port.read(4096)
        port.write(data)
except serial.SerialException:
    pass  # the pump closed the pty
"""


def test_pty_between_two_processes_echoes_1000_frames_unchanged():
    with PtyLink() as pump:
        child = subprocess.Popen([sys.executable, "-c", ECHO_FRAMES, pump.path],
                                 stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
        try:
            assert select.select([child.stdout], [], [], 10)[0], "echo child did not start"
            assert child.stdout.readline() == b"ready\n"
            for i in range(1000):
                frame = bytes((i * 7 + k) & 0xFF for k in range(1 + i % 64)) + CONTROL
                pump.write(frame)
                assert read_exactly(pump, len(frame)) == frame, "frame %d" % i
        finally:
            pump.close()
            try:
                assert child.wait(10) == 0
            finally:
                if child.poll() is None:
                    child.kill()
                    child.wait()
                child.stdout.close()


# --- TCP -----------------------------------------------------------------------------------

def test_tcp_round_trip_with_pyserial_socket_client():
    # The TCP link carries whole frames (sim/tcp_server.py serves its clients frame by frame).
    from protocol import frame
    big = frame.encode(9, 0x20, ALL_BYTES)
    with TcpServerLink() as pump:
        assert pump.url == "socket://127.0.0.1:%d" % pump.port and pump.port > 0
        assert pump.read() == b"" and not pump.connected
        assert pump.write(b"nobody") == 6 and pump.bytes_dropped == 6
        with SerialLink(pump.url) as prog:
            prog.write(b"noise" + big)
            assert read_exactly(pump, len(big)) == big and pump.connected
            pump.write(CONTROL + ALL_BYTES)
            assert read_exactly(prog, 256 + len(CONTROL)) == CONTROL + ALL_BYTES


def test_tcp_a_new_client_replaces_one_that_left():
    from protocol import frame
    one, two = frame.encode(1, 1, b"one"), frame.encode(2, 1, b"two")
    with TcpServerLink() as pump:
        with SerialLink(pump.url) as first:
            first.write(one)
            assert read_exactly(pump, len(one)) == one
        with SerialLink(pump.url) as second:
            second.write(two)
            assert read_exactly(pump, len(two)) == two
            pump.write(b"ok")
            assert read_exactly(second, 2) == b"ok"
        assert pump.clients_accepted == 2


def test_tcp_port_in_use_says_what_to_do():
    with TcpServerLink() as first:
        with pytest.raises(LinkError, match="pick another port, or 0 for a free one"):
            TcpServerLink(port=first.port)


@pytest.mark.parametrize("url", ["socket://", "socket://host", "socket://:80",
                                 "socket://h:port", "socket://h:70000"])
def test_bad_socket_urls_quote_the_grammar(url):
    with pytest.raises(LinkError, match="expected socket://HOST:PORT"):
        parse_socket_url(url)


def test_open_link_picks_the_link_by_spec():
    with open_link("pty") as pty:
        assert isinstance(pty, PtyLink) and pty.url == pty.path
    with open_link("socket://127.0.0.1:0") as tcp:
        assert isinstance(tcp, TcpServerLink) and tcp.url.startswith("socket://127.0.0.1:")
    with pytest.raises(LinkError, match="no such device /dev/pts/987654: is `vpump serve`"):
        open_link("/dev/pts/987654")
    with pytest.raises(LinkError, match="use pty, loop, socket://HOST:PORT"):
        open_link("")


def test_open_link_falls_back_to_pyserial_urls():
    with open_link("loop://x") as echo:      # not "loop": pyserial's echo, through SerialLink
        assert isinstance(echo, SerialLink)


# --- rate limit ----------------------------------------------------------------------------

def test_rate_limited_9600_baud_releases_960_bytes_a_second():
    clock = FakeClock(100.0)
    with LoopPair() as pair:
        slow = RateLimited(pair.pump_end, 960, clock=clock)
        assert slow.write(bytes(1920)) == 1920
        assert pair.programmer_end.read(4096) == b""        # the first byte needs 1/960 s
        clock.now_s = 100.5
        assert slow.poll() == 1440 and len(pair.programmer_end.read(4096)) == 480
        clock.now_s = 101.0
        assert slow.poll() == 960 and len(pair.programmer_end.read(4096)) == 480
        assert slow.done_at_s == pytest.approx(102.0)
        clock.now_s = 102.0
        assert slow.poll() == 0 and len(pair.programmer_end.read(4096)) == 960
        slow.close()


def test_rate_limited_queues_behind_a_busy_line_and_restarts_when_idle():
    clock = FakeClock()
    inner = Recorder()
    slow = RateLimited(inner, 100, clock=clock)
    slow.write(b"0123456789")           # busy until 0.1 s
    clock.now_s = 0.05
    slow.write(b"abcde")                # queued behind: through at 0.15 s
    assert slow.pending == 10 and b"".join(inner.writes) == b"01234"
    clock.now_s = 0.12
    assert slow.poll() == 3 and b"".join(inner.writes) == b"0123456789ab"
    clock.now_s = 5.0
    slow.poll()
    slow.write(b"xy")                   # idle since 0.15 s: starts now
    assert slow.done_at_s == pytest.approx(5.02)
    clock.now_s = 5.01
    assert slow.read() == b"" and inner.writes[-1] == b"x"
    slow.close()
    assert inner._closed


def test_rate_limited_flush_sleeps_until_everything_is_out():
    clock = FakeClock()
    inner = Recorder()
    with RateLimited(inner, 960, clock=clock, sleep=clock.sleep) as slow:
        slow.write(bytes(96))
        slow.flush()
        assert slow.pending == 0 and len(b"".join(inner.writes)) == 96
        assert clock.now_s == pytest.approx(0.1)


def test_rate_limited_wait_moves_queued_bytes_while_waiting():
    # Real clock: the request goes out during wait(), the pair's other end answers at once.
    with LoopPair() as pair:
        slow = RateLimited(pair.pump_end, 10000)
        slow.write(b"ping")
        assert slow.wait(0.5) is False          # nobody answers, but the bytes went out
        assert pair.programmer_end.read() == b"ping"


def test_rate_limited_rejects_a_zero_rate():
    with pytest.raises(ValueError, match="bytes_per_s=0"):
        RateLimited(Recorder(), 0)


# --- fault injection -----------------------------------------------------------------------

def test_drop_the_nth_write():
    inner = Recorder()
    m = Manipulator(inner).drop(SEND, nth=2)
    for frame in (b"a", b"b", b"c"):
        assert m.write(frame) == 1
    assert inner.writes == [b"a", b"c"]
    assert m.counts[SEND]["dropped"] == 1 and m.counts[SEND]["chunks"] == 3
    assert list(m.history) == [(m.history[0][0], SEND, 2, "dropped", "1 bytes")]


def drops_with(seed):
    inner = Recorder()
    m = Manipulator(inner, seed=seed).drop(SEND, probability=0.3)
    for i in range(200):
        m.write(bytes([i]))
    return [w[0] for w in inner.writes], m.counts[SEND]["dropped"]


def test_random_drops_are_deterministic_by_seed():
    kept, dropped = drops_with(7)
    assert (kept, dropped) == drops_with(7)
    assert kept != drops_with(8)[0]
    assert 30 < dropped < 90 and len(kept) + dropped == 200


def test_corrupt_flips_one_bit_at_a_seeded_position():
    def corrupted(seed):
        inner = Recorder()
        Manipulator(inner, seed=seed).corrupt(SEND).write(bytes(24))
        return inner.writes[0]
    once = corrupted(3)
    assert len(once) == 24 and sum(bin(b).count("1") for b in once) == 1
    assert corrupted(3) == once and any(corrupted(s) != once for s in range(4, 10))


def test_corrupt_on_receive_counts_and_names_the_bit():
    inner = Recorder()
    inner.incoming = [b"\x00\x00"]
    m = Manipulator(inner, seed=1).corrupt(RECEIVE, bits=3)
    data = m.read()
    assert sum(bin(b).count("1") for b in data) == 3
    assert m.counts[RECEIVE]["corrupted"] == 1 and m.history[0][3] == "corrupted"


def test_split_delivers_a_write_in_pieces():
    inner = Recorder()
    m = Manipulator(inner).split(SEND, at=(1, 5))
    m.write(b"ABCDEFGH")
    assert inner.writes == [b"A", b"BCDE", b"FGH"]
    assert m.counts[SEND]["split"] == 1


def test_split_on_receive_returns_one_piece_per_read():
    inner = Recorder()
    inner.incoming = [b"0123456789"]
    m = Manipulator(inner, seed=5).split(RECEIVE, pieces=3)
    pieces = [m.read(), m.read(), m.read()]
    assert b"".join(pieces) == b"0123456789" and all(pieces) and m.read() == b""


def test_split_pieces_with_a_gap_arrive_at_their_times():
    clock = FakeClock()
    inner = Recorder()
    m = Manipulator(inner, clock=clock).split(SEND, at=(2,), gap_s=0.5)
    m.write(b"abcd")
    assert inner.writes == [b"ab"] and m.poll() == 2
    clock.now_s = 0.5
    assert m.poll() == 0 and inner.writes == [b"ab", b"cd"]


def test_delay_holds_bytes_on_the_clock_and_keeps_the_order():
    clock = FakeClock()
    inner = Recorder()
    m = Manipulator(inner, clock=clock).delay(2.0, SEND, nth=1)
    m.write(b"first")
    clock.now_s = 1.0
    m.write(b"second")                  # not delayed itself, but behind "first"
    assert inner.writes == [] and m.poll() == 11
    clock.now_s = 2.0
    m.poll()
    assert inner.writes == [b"first", b"second"]
    assert m.counts[SEND]["delayed"] == 1


def test_delay_on_receive():
    clock = FakeClock()
    inner = Recorder()
    inner.incoming = [b"late"]
    m = Manipulator(inner, clock=clock).delay(0.25, RECEIVE)
    assert m.read() == b""
    clock.now_s = 0.25
    assert m.read() == b"late"


def test_custom_function_changes_or_drops():
    inner = Recorder()
    inner.incoming = [b"in"]
    seen = []

    def fn(direction, data):
        seen.append((direction, data))
        if data == b"drop me":
            return None
        return data.upper()
    m = Manipulator(inner, fn=fn)
    m.write(b"drop me")
    m.write(b"keep")
    assert m.read() == b"IN"
    assert inner.writes == [b"KEEP"]
    assert seen == [(SEND, b"drop me"), (SEND, b"keep"), (RECEIVE, b"in")]
    assert m.counts[SEND]["dropped"] == 1 and m.counts[SEND]["changed"] == 1
    assert m.counts[RECEIVE]["changed"] == 1


def test_rules_chain_in_order_on_a_real_loop():
    clock = FakeClock()
    with LoopPair() as pair:
        m = Manipulator(pair.pump_end, seed=2, clock=clock)
        m.corrupt(BOTH, nth=1).split(SEND, at=(3,))
        m.write(b"abcdef")
        got = pair.programmer_end.read()
        assert len(got) == 6 and got != b"abcdef"
        pair.programmer_end.write(b"reply")
        assert m.read() != b"reply"
        m.close()


@pytest.mark.parametrize("bad, match", [
    (dict(direction="up"), "direction='up'"),
    (dict(probability=1.5), "probability=1.5"),
    (dict(nth=0), "nth=0"),
])
def test_bad_rules_say_what_is_allowed(bad, match):
    with pytest.raises(ValueError, match=match):
        Manipulator(Recorder()).drop(**bad)


def test_wrappers_pass_the_url_through_and_close_the_link():
    pump = open_link("socket://127.0.0.1:0")
    wrapped = Manipulator(RateLimited(pump, 960))
    assert wrapped.url == pump.url
    wrapped.close()
    wrapped.close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", pump.port), timeout=1).close()
