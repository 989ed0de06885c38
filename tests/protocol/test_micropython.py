"""protocol/ runs unchanged on MicroPython 1.27 and agrees with CPython on the wire.

The MicroPython side is the WebAssembly port under node (tests/mp/mpsession.py: `make test`
installs it with npm ci; skipped only where node is missing).  Checked here:
- the same script (upy/same_results.py) prints the same on both interpreters: frames through the
  streaming decoder, every command's request and response codecs, NAKs, errors, sessions, keys;
- frames (with command bodies and session MACs) encoded on one interpreter decode on the other;
- MicroPython's table-driven CRC equals crcmod's on the host.
"""

import binascii
import os
import random
import subprocess
import sys

import pytest

import mpsession  # tests/mp, on the path through tests/conftest.py

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
UPY = os.path.join(HERE, "upy")

from protocol import commands as C  # noqa: E402
from protocol import frame, session  # noqa: E402


# `mp` (tests/conftest.py): one MicroPython session for this module.


def run_cpython(script):
    return mpsession.run_cpython(script)[0]


def test_same_results_on_micropython_and_cpython(mp):
    script = os.path.join(UPY, "same_results.py")
    upy = mp.run_file(script)
    assert upy.rstrip().endswith("done"), upy
    assert upy == run_cpython(script)


def test_micropython_uses_the_pure_crc(mp):
    assert mp.run_file(os.path.join(UPY, "backend.py")).split() == ["pure", "micropython"]


def test_micropython_crc_equals_crcmod(mp):
    crcmod = pytest.importorskip("crcmod.predefined")
    fn = crcmod.mkPredefinedCrcFun("crc-ccitt-false")
    rng = random.Random(16)
    blocks = [b"", b"123456789", bytes(range(256)), b"\xff" * 1000]
    blocks += [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300))) for _ in range(40)]
    inits = [0xFFFF, 0, 0x1D0F] + [rng.randrange(0x10000) for _ in range(len(blocks) - 3)]
    hexes = [binascii.hexlify(b).decode() for b in blocks]
    out = mp.run(
        "import binascii\n"
        "from protocol.crc import crc16, crc16_pure\n"
        "for h, init in zip(%r, %r):\n"
        "    b = binascii.unhexlify(h)\n"
        "    assert crc16 is crc16_pure\n"
        "    print(crc16(b, init), crc16(memoryview(b)), crc16(bytearray(b)))\n" % (hexes, inits))
    got = [tuple(int(x) for x in line.split()) for line in out.splitlines()]
    assert got == [(fn(b, init), fn(b), fn(b)) for b, init in zip(blocks, inits)]
    assert fn(b"123456789") == 0x29B1


# Frames both ways: commands with fields, NAKs, and session-wrapped (MACed) requests.
SESSION_KEY = bytes(range(32))

SAMPLES = [
    (C.IDENTIFY, "request", {}),
    (C.READ_LOG, "request", {"start_seq": 7, "max_entries": 32}),
    (C.PROGRAM_CONTINUOUS, "request", {"basal_ug_per_day": 500, "confirm": True}),
    (C.CLINICIAN_BOLUS, "request", {"dose_ug": 50, "duration_ms": 60000}),
    (C.REFILL, "request", {"volume_nl": 20000000, "concentration_ug_per_ml": 2000,
                           "bridge": True}),
    (C.SET_CLOCK, "request", {"wall_ms": 1767600000000}),
    (C.PROGRAM_FLEX, "request", {"confirm": False,
                                 "steps": [[[0, 190], [360, 170]]] * 5 + [[[0, 150]]] * 2}),
    (C.PATIENT_BOLUS, "ack", {"dose_ug": 25, "lockout_until_ms": 1767610800000}),
    (C.SILENCE_ALARMS, "ack", {"silenced": 2}),
]

# Builds frames from SAMPLES (a list literal) and prints one hex frame a line.
ENCODE = """
import binascii
from protocol import commands as C
from protocol import frame, session
KEY = %r
for i, (code, kind, fields) in enumerate(%r):
    if kind == "request":
        body = C.encode_request(code, fields)
        payload = session.wrap_request(KEY, frame.VERSION, i, code, 1000 + i, body)
        print(binascii.hexlify(frame.encode(i, code, payload)).decode())
    else:
        print(binascii.hexlify(frame.encode(i, code | frame.RESPONSE, C.encode_ack(code, fields))).decode())
print(binascii.hexlify(frame.encode(99, C.PROGRAM_CONTINUOUS | frame.RESPONSE,
                                    C.encode_nak(3, "basal_ug_per_day", 5000, 0, 2000))).decode())
"""

# Decodes hex frames (one a line, fed in pieces) and prints what came out, canonically.
DECODE = """
import binascii
from protocol import commands as C
from protocol import frame, session
KEY = %r
def canon(v):
    if isinstance(v, dict):
        return "{" + ", ".join("%%r: %%s" %% (k, canon(v[k])) for k in sorted(v)) + "}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(canon(x) for x in v) + "]"
    return repr(v)
d = frame.Decoder()
stream = b"".join(binascii.unhexlify(h) for h in %r)
got = []
for i in range(0, len(stream), 7):
    got.extend(d.feed(stream[i:i + 7]))
for status, version, seq, cmd, payload in got:
    if status:
        print("damaged", status)
    elif cmd & frame.RESPONSE:
        print(status, seq, cmd, canon(C.decode_response(cmd & 0x7F, payload)))
    else:
        counter, body, mac = session.unwrap(payload)
        ok = session.verify_request(KEY, version, seq, cmd, counter, body, mac)
        print(status, seq, cmd, counter, ok, canon(C.decode_request(cmd, body)))
print("frames", d.frames, d.crc_errors, d.dropped_bytes)
"""


def run_here(source):
    proc = subprocess.run([sys.executable, "-c", source], capture_output=True, text=True,
                          timeout=60, cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT))
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_frames_encoded_on_micropython_decode_on_cpython_and_back(mp):
    upy_frames = mp.run(ENCODE % (SESSION_KEY, SAMPLES)).split()
    cpy_frames = run_here(ENCODE % (SESSION_KEY, SAMPLES)).split()
    assert upy_frames == cpy_frames      # byte for byte
    # Noise between frames and one damaged frame: both decoders resynchronise alike.
    noisy = [h + "00a5ff" for h in upy_frames]
    noisy[3] = noisy[3][:20] + ("0" if noisy[3][20] != "0" else "1") + noisy[3][21:]
    on_cpython = run_here(DECODE % (SESSION_KEY, noisy))
    on_micropython = mp.run(DECODE % (SESSION_KEY, noisy))
    assert on_cpython == on_micropython
    lines = on_cpython.splitlines()
    good = len(SAMPLES)     # the NAK frame is good, the damaged one is not
    assert lines[-1].startswith("frames %d 1 " % good), lines[-1]
    assert sum(1 for line in lines if line.startswith("damaged")) == 1
    decoded = [line for line in lines[:-1] if line.startswith("0 ")]
    assert len(decoded) == good
    # Every MACed request verifies (commands < 0x80 are requests).
    assert all(line.split()[4] == "True" for line in decoded if int(line.split()[2]) < 0x80)


def test_cpython_frames_decode_identically_on_micropython(mp):
    # Encoded here in-process, decoded there: the decoded fields equal the ones sent.
    frames = []
    for i, (code, kind, fields) in enumerate(SAMPLES):
        if kind == "request":
            body = C.encode_request(code, fields)
            payload = session.wrap_request(SESSION_KEY, frame.VERSION, i, code, 1000 + i, body)
            frames.append(frame.encode(i, code, payload))
        else:
            frames.append(frame.encode(i, code | frame.RESPONSE, C.encode_ack(code, fields)))
    hexes = [binascii.hexlify(f).decode() for f in frames]
    out = mp.run(DECODE % (SESSION_KEY, hexes)).splitlines()
    assert out[-1] == "frames %d 0 0" % len(SAMPLES)
    for line, (code, kind, fields) in zip(out, SAMPLES):
        status, seq, cmd = (int(x) for x in line.split()[:3])
        assert status == 0
        assert cmd == (code if kind == "request" else code | frame.RESPONSE)
        if kind == "request":
            assert line.split()[4] == "True", line      # the MAC verifies over there
        assert _canon(fields) in line or _canon(_decoded(code, kind, fields)) in line, line


def _decoded(code, kind, fields):
    if kind == "request":
        return C.decode_request(code, C.encode_request(code, fields))
    return C.decode_response(code, C.encode_ack(code, fields))


def _canon(v):
    if isinstance(v, dict):
        return "{" + ", ".join("%r: %s" % (k, _canon(v[k])) for k in sorted(v)) + "}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_canon(x) for x in v) + "]"
    return repr(v)
