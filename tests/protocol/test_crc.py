# CRC-16/CCITT-FALSE: known vectors, crcmod == pure, incremental == one-shot.
import importlib
import sys

import pytest
from hypothesis import given, settings, strategies as st

import protocol.crc as crc_mod
from protocol.crc import crc16, crc16_pure

# Vectors from the CRC catalogue (reveng) and independent calculators.
VECTORS = [
    (b"", 0xFFFF),
    (b"123456789", 0x29B1),
    (b"A", 0xB915),
    (b"\x00", 0xE1F0),
    (b"\xff", 0xFF00),
    (b"\x00" * 4, 0x84C0),
    (bytes(range(256)), 0x3FBD),
]


@pytest.mark.parametrize("data,expected", VECTORS)
@pytest.mark.parametrize("fn", [crc16, crc16_pure], ids=["crc16", "crc16_pure"])
def test_known_vectors(fn, data, expected):
    assert fn(data) == expected


def test_check_value_all_buffer_types():
    for fn in (crc16, crc16_pure):
        assert fn(b"123456789") == 0x29B1
        assert fn(bytearray(b"123456789")) == 0x29B1
        assert fn(memoryview(b"x123456789x")[1:10]) == 0x29B1


def test_host_uses_crcmod():
    pytest.importorskip("crcmod")
    assert crc_mod.CRC16_BACKEND == "crcmod"
    assert crc16 is not crc16_pure


def test_table_is_256_entries():
    assert len(crc_mod._TABLE) == 256
    assert crc_mod._TABLE[1] == 0x1021


@settings(max_examples=300, derandomize=True, database=None, deadline=None)
@given(st.binary(min_size=0, max_size=600))
def test_pure_equals_crcmod(data):
    assert crc16_pure(data) == crc16(data)


@settings(max_examples=50, derandomize=True, database=None, deadline=None)
@given(st.binary(min_size=0, max_size=4096), st.integers(min_value=0, max_value=0xFFFF))
def test_pure_equals_crcmod_predefined(data, init):
    # crcmod's own predefined function, built here rather than taken from protocol.crc, so the
    # test does not depend on how crc.py picks its backend.
    crcmod = pytest.importorskip("crcmod.predefined")
    fn = crcmod.mkPredefinedCrcFun("crc-ccitt-false")
    assert crc16_pure(data) == fn(data)
    assert crc16_pure(data, init) == fn(data, init)


def test_frame_residue_is_zero():
    # protocol/frame.py checks a frame by running the CRC over the received CRC too: with no
    # reflection and no xorout, a message followed by its own CRC (big-endian) gives 0.
    for data in (b"", b"123456789", bytes(range(256))):
        crc = crc16(data)
        for fn in (crc16, crc16_pure):
            assert fn(data + bytes((crc >> 8, crc & 0xFF))) == 0


@settings(max_examples=200, derandomize=True, database=None, deadline=None)
@given(st.binary(max_size=300), st.integers(min_value=0, max_value=300),
       st.integers(min_value=0, max_value=0xFFFF))
def test_incremental_equals_one_shot(data, cut, init):
    cut = min(cut, len(data))
    whole = crc16(data, init)
    assert crc16(data[cut:], crc16(data[:cut], init)) == whole
    assert crc16_pure(data[cut:], crc16_pure(data[:cut], init)) == whole
    # Mixed: start with one implementation, continue with the other.
    assert crc16_pure(data[cut:], crc16(data[:cut], init)) == whole


def test_every_length_up_to_300():
    data = bytes((i * 37 + 11) & 0xFF for i in range(300))
    for n in range(301):
        assert crc16_pure(data[:n]) == crc16(data[:n])


def test_fallback_without_crcmod(monkeypatch):
    monkeypatch.setitem(sys.modules, "crcmod", None)
    monkeypatch.setitem(sys.modules, "crcmod.predefined", None)
    try:
        mod = importlib.reload(crc_mod)
        assert mod.CRC16_BACKEND == "pure"
        assert mod.crc16 is mod.crc16_pure
        assert mod.crc16(b"123456789") == 0x29B1
    finally:
        monkeypatch.undo()
        importlib.reload(crc_mod)
    assert crc_mod.CRC16_BACKEND in ("crcmod", "pure")
