# Runs on CPython and MicroPython; tests/mp/test_portable.py compares the output.  Exercises the
# simulated HAL parts the firmware needs (hal/sim.py) and the firmware's persistence on them.
from hal.base import STROKE_OK, STROKE_STALL, TONE_TWO
from hal.errors import HalError, PowerLost, StorageError
from hal.sim import SimBoard, SimRng, VirtualClock
from firmware.persist import Persist
from firmware.errors import PersistError

rng = SimRng(12345)
print("rng", [rng.next_u32() for _ in range(5)], list(rng.random_bytes(7)))
print("rng0", SimRng(0).next_u32())

# A wrapping clock: 8-bit raw counter, read often enough.
c = VirtualClock(wrap_bits=8, start_raw=250)
seen = []
for step in (3, 4, 100, 120, 127, 1, 0, 90):
    c.sleep_until(c.now_ms() + step)
    seen.append((c.now_ms(), c._ticks_internal()))
print("clock", seen)
try:
    c.advance_to(0)
except HalError as e:
    print("clock error", e)

b = SimBoard(seed=9, reservoir_capacity_nl=20000000, battery_capacity_nah=1000000,
             battery_quiescent_na=20000, stroke_charge_nah=100)
print("fill", b.reservoir.refill(30000000, 2000), b.reservoir.volume_nl)
strokes = [b.motor.stroke() for _ in range(3)]
b.motor.stalled = True
strokes.append(b.motor.stroke())
print("motor", strokes == [STROKE_OK] * 3 + [STROKE_STALL], b.motor.delivered_nl,
      b.motor.delivered_ng, b.motor.strokes, b.motor.stalls)
for t in (0, 3600000, 36000000, 40000000, 45000000):
    b.clock.advance_to(t)
    print("battery", t, b.battery.remaining_nah(), b.battery.read_mv())

b.annunciator.tone(TONE_TWO, 3000)
print("tones", b.annunciator.counts[2], b.annunciator.last)

s = b.storage
s.write(10, b"abc")
s.write(13, memoryview(bytearray(b"0123456789"))[2:6])
print("storage", s.read(8, 12), s.bytes_written)
s.cut_after_bytes = 5
try:
    s.write(100, b"xxxxxxxxxx")
except PowerLost as e:
    print("cut", e, s.read(98, 14))
try:
    s.write(s.size - 1, b"ab")
except StorageError as e:
    print("range", e)

# Persistence on the sim storage: two commits, a torn third, and the log ring.
p = Persist(b.storage, slot_size=512)
p.commit({"n": 1, "big": 2 ** 70, "neg": -5, "list": [1, [2, 3]], "s": "x"})
p.commit({"n": 2})
b.storage.cut_after_bytes = 7
try:
    p.commit({"n": 3, "pad": "y" * 50})
except PowerLost:
    print("torn commit")
q = Persist(b.storage, slot_size=512)
print("load", q.load(), q.snapshot_seq)
for seq in range(1, 40):
    q.log_append(seq, 1770000000000 + seq, seq % 19, (seq, -seq, 2 ** 31 - 1))
r = Persist(b.storage, slot_size=512)
print("log", r.log_scan(), r.log_read(30, 3))
try:
    r.log_append(5, 0, 1, ())
except PersistError as e:
    print("log error", e)
b.close()
b.close()
print("done")
