# Frames: the doc's worked example, round trips, and a decoder that survives any byte stream.
import random

import pytest
from hypothesis import given, settings, strategies as st

from protocol import frame, reasons
from protocol.crc import crc16
from protocol.errors import ProtocolError
from protocol.frame import Decoder, encode

SETTINGS = settings(derandomize=True, database=None, deadline=None, max_examples=200)

OK = reasons.OK
BAD_CRC = reasons.BAD_CRC


def frames_of(results):
    return [r for r in results if r[0] == OK]


def check_accounting(d, fed, good_frames):
    # Every byte fed is in a good frame, dropped, or still buffered.
    frame_bytes = sum(len(p) + frame.OVERHEAD for p in good_frames)
    assert fed == frame_bytes + d.dropped_bytes + d.buffered


# --- encode ---------------------------------------------------------------------------------

def test_constants():
    assert frame.SYNC == b"\xa5\x5a"
    assert frame.VERSION == 1
    assert frame.MAX_PAYLOAD == 1024
    assert frame.RESPONSE == 0x80
    assert frame.OVERHEAD == 9


def test_worked_example_from_the_doc():
    # docs/protocol.md: IDENTIFY, SEQ 7, no payload.
    assert crc16(bytes([0x00, 0x03, 0x01, 0x07, 0x01])) == 0x3456
    assert encode(7, 0x01) == bytes.fromhex("A55A0003010701 3456".replace(" ", ""))
    assert Decoder().feed(bytes.fromhex("A55A00030107013456")) == [(OK, 1, 7, 1, b"")]


@pytest.mark.parametrize("seq,cmd,payload,version,expected", [
    (0, 0x81, b"\x00", 1, "a55a 0004 01 00 81 00"),
    (255, 0x20, b"\x00\x00\x01\xf4\x01", 1, "a55a 0008 01 ff 20 000001f401"),
    (1, 0x10, b"", 2, "a55a 0003 02 01 10"),
])
def test_byte_vectors(seq, cmd, payload, version, expected):
    body = bytes.fromhex(expected.replace(" ", ""))
    crc = crc16(body[2:])
    assert encode(seq, cmd, payload, version) == body + bytes((crc >> 8, crc & 0xFF))


def test_encode_accepts_buffer_types():
    p = b"\x01\x02\x03"
    assert encode(1, 2, bytearray(p)) == encode(1, 2, p) == encode(1, 2, memoryview(p))


@pytest.mark.parametrize("kwargs,field", [
    (dict(seq=256, cmd=1), "seq"),
    (dict(seq=-1, cmd=1), "seq"),
    (dict(seq=0, cmd=256), "cmd"),
    (dict(seq=0, cmd=-1), "cmd"),
    (dict(seq=0, cmd=1, version=256), "version"),
])
def test_encode_refuses_out_of_range(kwargs, field):
    with pytest.raises(ProtocolError) as info:
        encode(**kwargs)
    e = info.value
    assert e.reason == reasons.OUT_OF_RANGE
    assert e.field == field
    assert (e.lo, e.hi) == (0, 255)
    assert "0..255" in str(e)


def test_encode_payload_limit():
    assert len(encode(0, 1, bytes(frame.MAX_PAYLOAD))) == frame.MAX_PAYLOAD + frame.OVERHEAD
    with pytest.raises(ProtocolError) as info:
        encode(0, 1, bytes(frame.MAX_PAYLOAD + 1))
    assert info.value.reason == reasons.BAD_LENGTH
    assert info.value.value == frame.MAX_PAYLOAD + 1
    assert info.value.hi == frame.MAX_PAYLOAD


@SETTINGS
@given(st.integers(0, 255), st.integers(0, 255), st.binary(max_size=frame.MAX_PAYLOAD),
       st.integers(0, 255))
def test_round_trip(seq, cmd, payload, version):
    f = encode(seq, cmd, payload, version)
    assert len(f) == len(payload) + frame.OVERHEAD
    d = Decoder()
    assert d.feed(f) == [(OK, version, seq, cmd, payload)]
    assert (d.frames, d.crc_errors, d.length_errors, d.dropped_bytes, d.buffered) == (1, 0, 0, 0, 0)


def test_payload_is_bytes_for_every_input_type():
    f = encode(3, 4, b"abc")
    for data in (f, bytearray(f), memoryview(f)):
        (item,) = Decoder().feed(data)
        assert type(item[4]) is bytes and item[4] == b"abc"


# --- decoder: streams -----------------------------------------------------------------------

def sample_frames(n, seed=1):
    rng = random.Random(seed)
    out = []
    for i in range(n):
        payload = bytes(rng.randrange(256) for _ in range(rng.choice((0, 1, 5, 20, 100, 300))))
        out.append((i & 0xFF, rng.randrange(256), payload))
    return out


def test_concatenated_frames():
    items = sample_frames(50)
    stream = b"".join(encode(s, c, p) for s, c, p in items)
    d = Decoder()
    assert d.feed(stream) == [(OK, 1, s, c, p) for s, c, p in items]
    assert d.frames == 50 and d.dropped_bytes == 0 and d.buffered == 0


def test_split_at_every_byte_boundary():
    items = sample_frames(3, seed=2)
    stream = b"".join(encode(s, c, p) for s, c, p in items)
    expected = [(OK, 1, s, c, p) for s, c, p in items]
    for cut in range(len(stream) + 1):
        d = Decoder()
        got = d.feed(stream[:cut]) + d.feed(stream[cut:])
        assert got == expected, cut
        assert d.buffered == 0


def test_byte_at_a_time():
    items = sample_frames(5, seed=3)
    stream = b"".join(encode(s, c, p) for s, c, p in items)
    d = Decoder()
    got = []
    for i in range(len(stream)):
        got += d.feed(stream[i:i + 1])
    assert got == [(OK, 1, s, c, p) for s, c, p in items]
    assert d.buffered == 0 and d.dropped_bytes == 0


@SETTINGS
@given(st.lists(st.tuples(st.binary(max_size=40), st.binary(max_size=60)), max_size=8),
       st.lists(st.integers(1, 50), max_size=20))
def test_garbage_between_frames(pieces, cuts):
    # Garbage without a sync cannot produce or hide a frame.
    stream = b""
    expected = []
    for i, (garbage, payload) in enumerate(pieces):
        stream += garbage.replace(b"\xa5", b"\x00") + encode(i, 0x10, payload)
        expected.append((OK, 1, i, 0x10, payload))
    stream += b"\x00garbage\xa5"
    d = Decoder()
    got = []
    pos = 0
    for n in cuts:
        got += d.feed(stream[pos:pos + n])
        pos += n
    got += d.feed(stream[pos:])
    assert got == expected
    check_accounting(d, len(stream), [p for _, p in pieces])
    assert d.buffered == 1      # the trailing 0xA5 might start a sync


def test_frame_hidden_behind_a_corrupted_one():
    good = encode(9, 0x20, b"hidden")
    # A damaged header claims a long frame that swallows the good one.
    damaged = b"\xa5\x5a\x00\x40\x01\x08\x20" + b"\x11" * 4
    stream = damaged + good + b"\x22" * 80
    d = Decoder()
    results = d.feed(stream)
    assert results[0] == (BAD_CRC, 1, 8, 0x20, b"")
    assert (OK, 1, 9, 0x20, b"hidden") in results
    assert d.crc_errors == 1 and d.frames == 1


def test_hidden_frame_found_when_the_corrupted_one_completes_later():
    good = encode(5, 0x11, b"x" * 10)
    damaged = b"\xa5\x5a\x00\x30\x01\x04\x11"
    d = Decoder()
    assert d.feed(damaged + good) == []          # still waiting for the long frame
    results = d.feed(b"\x00" * 60)
    assert results[0][0] == BAD_CRC
    assert frames_of(results) == [(OK, 1, 5, 0x11, b"x" * 10)]


@pytest.mark.parametrize("bit", range(8 * 29))
def test_every_single_bit_flip_is_caught(bit):
    # CRC-16 detects every single-bit error; a flip in sync or LEN loses the frame instead.
    # The next good frame is always found.
    f = bytearray(encode(0x42, 0x21, bytes(range(20))))
    f[bit // 8] ^= 1 << (bit % 8)
    nxt = encode(0x43, 0x10, b"next")
    d = Decoder()
    results = d.feed(bytes(f) + nxt) + d.feed(bytes(frame.MAX_PAYLOAD + frame.OVERHEAD))
    assert (OK, 1, 0x42, 0x21, bytes(range(20))) not in results
    assert (OK, 1, 0x43, 0x10, b"next") in results
    if bit >= 32:       # header readable: reported as a CRC failure, with what the header says
        assert results[0][0] == BAD_CRC and results[0][4] == b""
        assert d.crc_errors == 1


def test_bad_length_resyncs_silently():
    for length in (0, 1, 2, frame.MAX_PAYLOAD + 4, 0xFFFF):
        d = Decoder()
        good = encode(1, 2, b"ok")
        got = d.feed(b"\xa5\x5a" + bytes((length >> 8, length & 0xFF)) + good)
        assert got == [(OK, 1, 1, 2, b"ok")]
        assert d.length_errors == 1
        assert d.dropped_bytes == 4


def test_max_payload_parameter():
    d = Decoder(max_payload=10)
    assert d.feed(encode(1, 1, bytes(11)) + encode(2, 1, bytes(10))) == [(OK, 1, 2, 1, bytes(10))]
    assert d.length_errors == 1
    with pytest.raises(ProtocolError):
        Decoder(max_payload=-1)


def test_truncated_frames():
    f = encode(1, 2, b"payload")
    for n in range(len(f)):
        d = Decoder()
        assert d.feed(f[:n]) == []
        assert d.buffered == n      # all of it may still become the frame
    # A truncated frame followed by a good one: the good one still comes out.
    d = Decoder()
    results = d.feed(f[:6] + f + b"\x00" * 20)
    assert (OK, 1, 1, 2, b"payload") in results


def test_reset_drops_the_partial_frame():
    f = encode(1, 2, b"payload")
    d = Decoder()
    d.feed(f[:5])
    d.reset()
    assert d.buffered == 0 and d.dropped_bytes == 5
    assert d.feed(f) == [(OK, 1, 1, 2, b"payload")]


def test_counters():
    d = Decoder()
    bad = bytearray(encode(1, 1, b"abc"))
    bad[-1] ^= 0xFF
    d.feed(b"junk" + encode(1, 1) + bytes(bad) + b"\xa5\x5a\x00\x01" + encode(2, 2))
    assert d.frames == 2
    assert d.crc_errors == 1
    assert d.length_errors == 1
    assert d.dropped_bytes == 4 + len(bad) + 4


# --- decoder: hostile input -----------------------------------------------------------------

@SETTINGS
@given(st.lists(st.binary(max_size=300), max_size=20))
def test_random_bytes_never_raise_and_stay_bounded(chunks):
    d = Decoder()
    fed = 0
    good = []
    for chunk in chunks:
        for item in d.feed(chunk):
            assert item[0] in (OK, BAD_CRC)
            if item[0] == OK:
                good.append(item[4])
            else:
                assert item[4] == b""
        fed += len(chunk)
        assert d.buffered < frame.MAX_PAYLOAD + frame.OVERHEAD
    check_accounting(d, fed, good)


# Sync-rich noise: random bytes drawn mostly from the sync and plausible LEN bytes, so the
# decoder keeps finding candidate frames.
_NOISY = st.lists(st.sampled_from([0xA5, 0x5A, 0x00, 0x03, 0x04, 0x01, 0xFF, 0x10]),
                  max_size=400).map(bytes)


@SETTINGS
@given(_NOISY, st.lists(st.integers(1, 64), max_size=30))
def test_sync_rich_noise_then_a_frame(noise, cuts):
    good = encode(0x77, 0x23, b"still found")
    # Enough trailing bytes to complete any frame a noise header may claim.
    stream = noise + good + bytes(frame.MAX_PAYLOAD + frame.OVERHEAD)
    d = Decoder()
    got = []
    pos = 0
    for n in cuts:
        got += d.feed(stream[pos:pos + n])
        pos += n
    got += d.feed(stream[pos:])
    assert (OK, 1, 0x77, 0x23, b"still found") in got
    check_accounting(d, len(stream), [r[4] for r in got if r[0] == OK])


def test_buffer_bounded_under_a_flood():
    # 100 kB of sync-rich noise in small reads: never more than one maximum frame kept.
    rng = random.Random(7)
    d = Decoder()
    most = 0
    for _ in range(2000):
        chunk = bytes(rng.choice((0xA5, 0x5A, 0x04, 0x00, 0x03)) for _ in range(50))
        d.feed(chunk)
        most = max(most, d.buffered)
    assert most < frame.MAX_PAYLOAD + frame.OVERHEAD
    assert d.feed(encode(1, 1, b"ok") + bytes(2000))[-1] == (OK, 1, 1, 1, b"ok")


def test_one_huge_feed():
    items = sample_frames(300, seed=5)
    stream = b"".join(b"\x00" * 7 + encode(s, c, p) for s, c, p in items)
    d = Decoder()
    assert frames_of(d.feed(stream)) == [(OK, 1, s, c, p) for s, c, p in items]
    assert d.dropped_bytes == 7 * 300 and d.buffered == 0
