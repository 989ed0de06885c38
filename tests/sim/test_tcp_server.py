"""Finding 6 of the security review: one idle socket client blocked every other client, without an
answer, for ever.  Now a second client is answered `busy` at once and served in turn, and an idle
active client is dropped (sim/tcp_server.py)."""

import socket
import time

from firmware.pump import Pump
from firmware.telemetry import Telemetry
from hal.sim import SimBoard
from protocol import commands as C
from protocol import frame, reasons
from sim.tcp_server import TcpServerLink
from tests.firmware.test_telemetry import KEYS


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def served(clock):
    board = SimBoard()
    pump = Pump(board)
    pump.boot()
    link = TcpServerLink("127.0.0.1", 0, clock=clock)
    return link, Telemetry(pump, link, KEYS)


def connect(link):
    s = socket.create_connection(("127.0.0.1", link.port), timeout=5)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def answer(sock, link, tel, seq):
    # Send IDENTIFY, let the pump's side run until an answer frame comes back.
    sock.sendall(frame.encode(seq, C.IDENTIFY))
    decoder = frame.Decoder()
    sock.setblocking(False)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        link.wait(0.01)
        tel.poll()
        try:
            data = sock.recv(4096)
        except BlockingIOError:
            continue
        for item in decoder.feed(data):
            return C.decode_response(C.IDENTIFY, item[4])
    raise AssertionError("no answer within 5 s")


def test_a_second_client_is_answered_busy_at_once_then_served_when_the_first_leaves():
    clock = Clock()
    link, tel = served(clock)
    first, second = connect(link), connect(link)
    try:
        assert answer(first, link, tel, 1)[0] == 0          # the first is served
        status, nak = answer(second, link, tel, 2)           # the old link never answered
        assert status == reasons.BUSY and 0 < nak["hi"] <= 30000
        assert link.busy_naks == 1
        first.close()
        status, info = answer(second, link, tel, 3)
        assert status == 0 and info["serial"] == "VP-TEST01"
    finally:
        second.close()
        link.close()


def test_an_idle_client_is_dropped_after_30_s_when_another_waits():
    clock = Clock()
    link, tel = served(clock)
    first, second = connect(link), connect(link)
    try:
        assert answer(first, link, tel, 1)[0] == 0
        clock.t += 29
        assert answer(second, link, tel, 2)[0] == reasons.BUSY
        clock.t += 2                                         # 31 s of silence from the first
        status, info = answer(second, link, tel, 3)
        assert status == 0 and link.clients_dropped_idle == 1
        first.settimeout(5)
        assert first.recv(100) == b""                        # the first was hung up on
    finally:
        first.close()
        second.close()
        link.close()


def test_a_lone_client_is_dropped_after_10_minutes_of_silence():
    clock = Clock()
    link, tel = served(clock)
    first = connect(link)
    try:
        assert answer(first, link, tel, 1)[0] == 0
        clock.t += 599
        link.read(10)
        assert link.connected
        clock.t += 2
        link.read(10)
        assert not link.connected and link.clients_dropped_idle == 1
    finally:
        first.close()
        link.close()
