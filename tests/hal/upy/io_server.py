# The bench I/O server answering requests through an in-memory link, printed as hex: the same
# output on CPython and MicroPython (tests/hal/test_serial_io.py compares them).  The name of the
# interpreter goes to stderr.
import sys
from binascii import hexlify

from hal.base import Link
from hal.io_server import IOServer
from hal.sim import SimBoard
from protocol import bench_io as P
from protocol import frame

print(sys.implementation.name, file=sys.stderr)


class Wire(Link):
    # What the host sends waits in inbox; what the server writes collects in sent.
    def __init__(self):
        self.inbox = bytearray()
        self.sent = bytearray()
        Link.__init__(self)

    def _read_internal(self, max_bytes):
        data = bytes(self.inbox[:max_bytes])
        self.inbox = self.inbox[max_bytes:]
        return data

    def _write_internal(self, data):
        self.sent += data
        return len(data)


board = SimBoard(battery_capacity_nah=100000, stroke_charge_nah=1000)
board.reservoir.refill(20000000, 2000)
wire = Wire()
server = IOServer(wire, board.motor, board.battery, board.annunciator, name="upy-bench")
decoder = frame.Decoder()


def send(label, data):
    wire.inbox += data
    handled = server.poll()
    out = bytes(wire.sent)
    wire.sent = bytearray()
    print(label, handled, hexlify(out).decode())
    for status, version, seq, cmd, payload in decoder.feed(out):
        print("  ", status, version, seq, cmd, hexlify(payload).decode())


send("identify", frame.encode(1, P.IDENTIFY))
send("stroke", frame.encode(2, P.MOTOR_STROKE))
send("stroke again", frame.encode(2, P.MOTOR_STROKE))
for seq in range(3, 40):
    wire.inbox += frame.encode(seq, P.MOTOR_STROKE)
send("37 strokes", b"")
send("battery", frame.encode(40, P.BATTERY_READ_MV))
board.motor.stalled = True
send("stalled", frame.encode(41, P.MOTOR_STROKE))
send("tone", frame.encode(42, P.TONE, P.encode_tone(2, 3000)))
send("bad tone", frame.encode(43, P.TONE, P.encode_tone(9, 3000)))
send("pump command", frame.encode(44, 0x01))
send("short", frame.encode(45, P.TONE, b"\x01"))
bad = bytearray(frame.encode(46, P.MOTOR_STROKE))
bad[-1] ^= 0xFF
send("damaged", bytes(bad))
send("noise", b"\x00\xa5\x5a\xff\xff" + bytes(range(256)) + b"\xa5")
whole = frame.encode(47, P.BATTERY_READ_MV)
send("first half", whole[:4])
send("second half", whole[4:])
print("strokes", board.motor.strokes, "stalls", board.motor.stalls, "tones",
      board.annunciator.counts[1], board.annunciator.counts[2])
print("server", server.requests, server.repeats, server.bad_frames, server.errors)
print("done")
