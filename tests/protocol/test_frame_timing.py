"""The frame decoder's inter-byte timeout (docs/protocol.md, "Timing"): a partial frame is dropped
after a silence longer than the link's gap, or once it has been arriving longer than a whole
maximum frame's characters plus the gap; a frame that stalled is never decoded later."""

import pytest

from protocol import frame, reasons
from protocol.frame import Decoder, encode, link_timing

STALL = bytes.fromhex("A55A0403")       # a frame start claiming 1,027 bytes


@pytest.mark.parametrize("baud,gap_ms,char_us", [
    (300, 117, 33333), (1200, 30, 8333), (9600, 5, 1041), (115200, 5, 86)])
def test_link_timing_is_three_and_a_half_characters_scaled_by_baud(baud, gap_ms, char_us):
    assert link_timing(baud) == (gap_ms, char_us)


def test_a_false_start_is_dropped_after_the_gap_and_the_next_frame_decodes_at_once():
    d = Decoder(gap_ms=100)
    assert d.feed(STALL, now_ms=1000) == []
    d.idle(1100)                        # exactly the gap: still waiting
    assert d.buffered == 4
    d.idle(1101)
    assert d.buffered == 0 and d.timeouts == 1 and d.dropped_bytes == 4
    assert d.feed(encode(1, 1), now_ms=1102) == [(reasons.OK, 1, 1, 1, b"")]


def test_bytes_after_a_silence_never_complete_the_stalled_frame():
    # The old decoder held the stall until 1,033 more bytes came, then hunted inside them and
    # ran a frame that had been sent long before.
    d = Decoder(gap_ms=100)
    inner = encode(5, 0x20, b"\x00" * 12)
    d.feed(STALL + inner, now_ms=0)
    assert d.buffered == len(STALL + inner)
    got = d.feed(b"\x00" * 1100, now_ms=102000)    # no idle() in between: feed sees the gap
    assert got == [] and d.timeouts == 1
    assert Decoder().feed(STALL + inner + b"\x00" * 1100) != []   # without timing it would


def test_a_trickled_frame_is_dropped_even_when_no_gap_is_long():
    # One byte every 90 ms on a socket link (gap 100 ms): each gap is short, the frame is not.
    d = Decoder(gap_ms=100)
    data = encode(3, 0x20, b"\x01" * 20)
    got = []
    for i, b in enumerate(data):
        got += d.feed(bytes([b]), now_ms=i * 90)
    assert got == [] and d.timeouts >= 1


def test_a_frame_at_the_links_pace_is_decoded():
    gap_ms, char_us = link_timing(9600)
    d = Decoder(gap_ms=gap_ms, char_us=char_us)
    data = encode(3, 0x20, b"\x01" * 1000)
    got = []
    for i in range(0, len(data), 3):
        now = i * char_us // 1000
        d.idle(now)
        got += d.feed(data[i:i + 3], now_ms=now)
    assert got == [(reasons.OK, 1, 3, 0x20, b"\x01" * 1000)] and d.timeouts == 0


def test_without_times_the_decoder_is_as_before():
    d = Decoder()
    d.feed(STALL, now_ms=None)
    d.idle(10 ** 9)
    assert d.buffered == 4 and d.timeouts == 0


def test_a_new_partial_frame_starts_its_own_clock():
    # A frame completed at t=0 with the start of the next one in the same chunk: the next one's
    # span starts then; finished within the gap later it decodes.
    d = Decoder(gap_ms=100)
    a, b = encode(1, 1), encode(2, 1)
    assert len(d.feed(a + b[:4], now_ms=0)) == 1
    assert d.feed(b[4:], now_ms=60) == [(reasons.OK, 1, 2, 1, b"")]
    c = encode(3, 1)
    d.feed(c[:4], now_ms=1000)          # long after the last frame: a fresh partial
    assert d.feed(c[4:], now_ms=1050) == [(reasons.OK, 1, 3, 1, b"")]
    assert d.timeouts == 0
