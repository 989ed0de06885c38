"""Finding 6 of the security review: one idle socket client blocked every other client, without an
answer, for ever.  Now every client is served in turn, frame by frame; more than the link serves
are answered `busy` at once; a silent client is dropped (sim/tcp_server.py)."""

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


def served(clock, **options):
    board = SimBoard()
    pump = Pump(board)
    pump.boot()
    link = TcpServerLink("127.0.0.1", 0, clock=clock, **options)
    return link, Telemetry(pump, link, KEYS)


def connect(link):
    s = socket.create_connection(("127.0.0.1", link.port), timeout=5)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def answer(sock, link, tel, seq, before=b""):
    # Send IDENTIFY, let the pump's side run until an answer frame comes back.
    sock.sendall(before + frame.encode(seq, C.IDENTIFY))
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


def test_a_second_client_is_served_at_once_while_the_first_stays_connected():
    clock = Clock()
    link, tel = served(clock)
    first, second = connect(link), connect(link)
    try:
        assert answer(first, link, tel, 1)[0] == 0
        status, info = answer(second, link, tel, 2)         # the old link never answered
        assert status == 0 and info["serial"] == "VP-TEST01"
        assert answer(first, link, tel, 3)[0] == 0          # and both go on, in turn
    finally:
        first.close()
        second.close()
        link.close()


def test_a_clients_half_frame_delays_nobody_else():
    clock = Clock()
    link, tel = served(clock)
    first, second = connect(link), connect(link)
    try:
        first.sendall(bytes.fromhex("A55A0403"))            # a frame start claiming 1,027 bytes
        assert answer(second, link, tel, 1)[0] == 0
        # The first one's own next frame comes after its partial timed out (100 ms of silence).
        clock.t += 0.2
        status, _ = answer(first, link, tel, 2)
        assert status == 0
    finally:
        first.close()
        second.close()
        link.close()


def test_more_clients_than_served_are_answered_busy_at_once_then_served():
    clock = Clock()
    link, tel = served(clock, max_clients=1)
    first, second = connect(link), connect(link)
    try:
        assert answer(first, link, tel, 1)[0] == 0
        status, nak = answer(second, link, tel, 2)
        assert status == reasons.BUSY and 0 < nak["hi"] <= 600000 and link.busy_naks == 1
        first.close()
        assert answer(second, link, tel, 3)[0] == 0
    finally:
        second.close()
        link.close()


def test_a_silent_client_is_dropped_after_10_minutes():
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
        first.settimeout(5)
        assert first.recv(100) == b""                        # hung up on
    finally:
        first.close()
        link.close()
