"""Finding 5 of the security review: a frame start claiming 1,027 bytes froze the pump's link
until about 1,033 more bytes came, and a `program` sent behind it was run 102 s later, after the
programmer had given up.  Telemetry.poll now times partial frames out in link time."""

from firmware.telemetry import Telemetry
from protocol import commands as C
from protocol import frame, reasons
from sim.links import LoopPair
from tests.firmware.test_telemetry import KEYS, Client, pump  # noqa: F401  (fixture)

STALL = bytes.fromhex("A55A0403")


class LinkClient(Client):
    # The same client, over a real byte link polled by Telemetry.poll in the pump's time.
    def __init__(self, tel, end):
        Client.__init__(self, tel)
        self.end = end

    def exchange(self, data):
        self.end.write(data)
        self.tel.poll()
        return self.end.read(4096)


def setup(pump, baud=None):
    pair = LoopPair()
    if baud:
        pair.pump_end.baud = baud
    tel = Telemetry(pump, pair.pump_end, KEYS)
    return tel, LinkClient(tel, pair.programmer_end), pair


def later(pump, ms):
    pump.board.clock.advance_to(pump.board.clock.true_ms + ms)


def test_a_stalled_frame_start_does_not_freeze_the_link(pump):
    tel, client, pair = setup(pump)
    pair.programmer_end.write(STALL)
    tel.poll()
    later(pump, frame.SOCKET_GAP_MS + 1)
    tel.poll()                                  # nothing new: the partial times out
    status, info = client.plain(C.IDENTIFY)     # answered at once
    assert status == 0 and info["serial"] == "VP-TEST01"


def test_a_program_stuck_behind_a_false_start_is_never_run(pump):
    tel, client, pair = setup(pump, baud=9600)
    assert client.login()[0] == 0
    before = pump.therapy.program
    request = client.request(C.PROGRAM_CONTINUOUS, {"basal_ug_per_day": 300, "confirm": True})
    pair.programmer_end.write(STALL + request)
    tel.poll()
    assert pair.programmer_end.read(4096) == b""     # no answer: the programmer gives up
    for _ in range(102):                             # 102 s of a quiet line, polled
        later(pump, 1000)
        tel.poll()
    pair.programmer_end.write(b"\x00" * 1040)        # the stall "clears"
    tel.poll()
    assert pump.therapy.program == before                    # the old decoder ran it here
    assert tel._decoder.timeouts >= 1


def test_a_frame_at_9600_baud_split_across_polls_is_run(pump):
    tel, client, pair = setup(pump, baud=9600)
    data = client.frame(C.IDENTIFY, C.encode_request(C.IDENTIFY, {}))
    for b in data:                                   # one byte per ~1 ms: the UART's pace
        pair.programmer_end.write(bytes([b]))
        tel.poll()
        later(pump, 1)
    item = frame.Decoder().feed(pair.programmer_end.read(4096))
    assert item and item[0][0] == reasons.OK and item[0][3] == C.IDENTIFY | 0x80
