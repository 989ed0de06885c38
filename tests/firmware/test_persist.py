# firmware/persist.py: snapshot slots and the event-log ring, including power cuts at every byte.
import importlib
import sys

import pytest

from firmware.errors import PersistError
from firmware.persist import Persist
from hal.errors import PowerLost
from hal.sim_storage import SimStorage

S1 = {"basal_ug_per_day": 400, "drug": "baclofen", "steps": [[0, 400], [480, 500]],
      "ok": True, "none": None, "nested": {"reservoir_nl": 18000000, "neg": -5}}
S2 = {"basal_ug_per_day": 450, "drug": "baclofen", "steps": [], "note": "changed",
      "nested": {"reservoir_nl": 17990000}}

SMALL = dict(slot_size=256, log_capacity=16)


def fresh(size=4096, **kw):
    kw = kw or SMALL
    storage = SimStorage(size)
    return storage, Persist(storage, **kw)


def reboot(storage, **kw):
    return Persist(storage, **(kw or SMALL))


# -- snapshots -------------------------------------------------------------------------------

def test_empty_storage_loads_none():
    storage, p = fresh()
    assert p.load() is None
    assert p.slot is None


def test_round_trip():
    storage, p = fresh()
    p.load()
    p.commit(S1)
    assert reboot(storage).load() == S1


def test_commit_without_load_first():
    storage, p = fresh()
    p.commit(S1)
    p.commit(S2)
    assert reboot(storage).load() == S2


def test_slots_alternate_and_seq_increases():
    storage, p = fresh()
    p.load()
    seen = []
    for i in range(5):
        p.commit({"i": i})
        seen.append((p.slot, p.snapshot_seq))
    assert seen == [(0, 1), (1, 2), (0, 3), (1, 4), (0, 5)]
    assert p.commits == 5
    q = reboot(storage)
    assert q.load() == {"i": 4}
    assert (q.slot, q.snapshot_seq) == (0, 5)
    q.commit({"i": 5})
    assert (q.slot, q.snapshot_seq) == (1, 6)


def test_newest_wins_regardless_of_slot():
    storage, p = fresh()
    p.commit(S1)   # A seq 1
    p.commit(S2)   # B seq 2
    q = reboot(storage)
    assert q.load() == S2 and q.slot == 1


@pytest.mark.req("SR-27")
def test_corrupt_newest_slot_falls_back_to_other():
    storage, p = fresh()
    p.commit(S1)   # A
    p.commit(S2)   # B (newest)
    storage.mem[256 + 20] ^= 0x01   # payload byte in slot B
    q = reboot(storage)
    assert q.load() == S1
    assert q.slot == 0 and q.snapshot_seq == 1
    q.commit({"after": 1})          # goes over the bad slot B with seq 2
    assert q.slot == 1 and q.snapshot_seq == 2
    assert reboot(storage).load() == {"after": 1}


@pytest.mark.parametrize("offset", [0, 1, 2, 5, 6, 7, 8])
def test_corrupt_header_bytes_detected(offset):
    storage, p = fresh()
    p.commit(S1)
    p.commit(S2)
    storage.mem[256 + offset] ^= 0x40
    assert reboot(storage).load() == S1


def test_corrupt_crc_detected():
    storage, p = fresh()
    p.commit(S1)
    p.commit(S2)
    n = len(storage.mem[256:512].rstrip(b"\xff"))   # slot B ends with its CRC
    storage.mem[256 + n - 1] ^= 0xFF
    assert reboot(storage).load() == S1


def test_both_corrupt_gives_none():
    storage, p = fresh()
    p.commit(S1)
    p.commit(S2)
    storage.mem[20] ^= 0x01
    storage.mem[256 + 20] ^= 0x01
    q = reboot(storage)
    assert q.load() is None
    q.commit(S1)    # a fresh start still works
    assert reboot(storage).load() == S1


def test_length_beyond_capacity_is_invalid():
    storage, p = fresh()
    p.commit(S1)
    storage.mem[6:8] = b"\xff\xff"   # len field of slot A
    assert reboot(storage).load() is None


def commit_write_bytes(snapshot):
    storage, p = fresh()
    p.commit(S1)
    before = storage.bytes_written
    p.commit(snapshot)
    return storage.bytes_written - before


@pytest.mark.req("SR-18")
def test_power_cut_at_every_byte_of_a_commit():
    total = commit_write_bytes(S2)
    assert total > 20
    for k in range(total):
        storage, p = fresh()
        p.load()
        p.commit(S1)
        storage.cut_after_bytes = k
        with pytest.raises(PowerLost):
            p.commit(S2)
        storage.cut_after_bytes = None
        q = reboot(storage)
        assert q.load() == S1, "cut after %d of %d bytes" % (k, total)
        # And the pump carries on committing after the reboot.
        q.commit(S2)
        assert reboot(storage).load() == S2
    storage, p = fresh()
    p.commit(S1)
    storage.cut_after_bytes = total
    p.commit(S2)
    assert reboot(storage).load() == S2


@pytest.mark.req("SR-18")
def test_power_cut_at_every_byte_with_both_slots_used():
    # The target slot holds an older valid snapshot: a torn write must not resurrect or mix it.
    s0 = {"v": 0, "pad": "x" * 40}
    total = commit_write_bytes(S2)
    for k in range(total):
        storage, p = fresh()
        p.commit(s0)
        p.commit(S1)
        storage.cut_after_bytes = k
        with pytest.raises(PowerLost):
            p.commit(S2)
        storage.cut_after_bytes = None
        assert reboot(storage).load() == S1, "cut after %d bytes" % k


def test_oversized_payload_raises_clear_error():
    storage, p = fresh()
    p.commit(S1)
    with pytest.raises(PersistError) as info:
        p.commit({"blob": "x" * 300})
    msg = str(info.value)
    assert "311 bytes" in msg and "at most 246" in msg
    assert reboot(storage).load() == S1


def test_exactly_full_slot_fits():
    storage, p = fresh()
    # {"b":"..."} is 8 bytes + the string.
    p.commit({"b": "y" * (p.slot_capacity_bytes - 8)})
    assert reboot(storage).load()["b"] == "y" * (p.slot_capacity_bytes - 8)


@pytest.mark.parametrize("bad", [[1, 2], "text", {"x": object()}, {"f": set()}])
def test_not_a_plain_dict_raises(bad):
    storage, p = fresh()
    with pytest.raises(PersistError):
        p.commit(bad)


def test_storage_failure_becomes_persist_error():
    storage, p = fresh()
    p.commit(S1)
    storage.fail_writes = True
    with pytest.raises(PersistError) as info:
        p.commit(S2)
    assert "seq 2" in str(info.value) and "seq 1" in str(info.value)
    assert p.snapshot_seq == 1 and p.commits == 1
    storage.fail_writes = False
    assert reboot(storage).load() == S1
    p.commit(S2)
    assert reboot(storage).load() == S2


def test_bad_geometry():
    with pytest.raises(PersistError) as info:
        Persist(SimStorage(1024), slot_size=256, log_capacity=100)
    assert "100" in str(info.value) and "1..16" in str(info.value)
    with pytest.raises(PersistError):
        Persist(SimStorage(512), slot_size=256)
    with pytest.raises(PersistError):
        Persist(SimStorage(4096), slot_size=4)


def test_default_geometry():
    storage = SimStorage(32768)
    p = Persist(storage)
    assert p.slot_size == 2048 and p.slot_capacity_bytes == 2038
    assert p.log_base == 4096 and p.log_capacity == (32768 - 4096) // 32 == 896


# -- event log -------------------------------------------------------------------------------

def test_empty_log():
    storage, p = fresh()
    assert p.log_scan() is None
    assert p.log_read(0, 10) == []


def test_log_round_trip_and_big_times():
    storage, p = fresh()
    t_big = 5 * 2 ** 32 + 123   # years of pump time exceed 2**32 ms
    p.log_append(0, 0, 1, ())
    p.log_append(1, t_big, 255, (-2 ** 31, 2 ** 31 - 1, 0, 7))
    p.log_append(2, 2 ** 64 - 1, 3, (42,))
    q = reboot(storage)
    assert q.log_scan() == (0, 2)
    assert q.log_read(0, 10) == [
        (0, 0, 1, ()),
        (1, t_big, 255, (-2 ** 31, 2 ** 31 - 1, 0, 7)),
        (2, 2 ** 64 - 1, 3, (42,)),
    ]
    assert q.log_read(1, 1) == [(1, t_big, 255, (-2 ** 31, 2 ** 31 - 1, 0, 7))]
    assert q.log_read(3, 5) == []
    assert q.last_seq == 2


@pytest.mark.req("SR-15")
def test_log_wraps_around():
    storage, p = fresh()
    cap = p.log_capacity
    for s in range(1, 3 * cap + 6):
        p.log_append(s, s * 1000, s & 0xFF, (s, -s))
    last = 3 * cap + 5
    assert (p.first_seq, p.last_seq) == (last - cap + 1, last)
    q = reboot(storage)
    assert q.log_scan() == (last - cap + 1, last)
    recs = q.log_read(0, 1000)
    assert [r[0] for r in recs] == list(range(last - cap + 1, last + 1))
    assert recs[0] == (last - cap + 1, (last - cap + 1) * 1000, (last - cap + 1) & 0xFF,
                       (last - cap + 1, -(last - cap + 1)))
    assert [r[0] for r in q.log_read(last - 2, 1000)] == [last - 2, last - 1, last]
    assert len(q.log_read(0, 5)) == 5


@pytest.mark.req("SR-18", "SR-15")
def test_log_power_cut_at_every_byte_of_an_append():
    for k in range(32):
        for start in (1, 17):   # overwrite erased storage, then an older record (ring wrapped)
            storage, p = fresh()
            for s in range(start, start + 17):
                p.log_append(s, s * 10, 2, (s,))
            last = start + 16
            storage.cut_after_bytes = k
            with pytest.raises(PowerLost):
                p.log_append(last + 1, 999, 9, (1, 2, 3, 4))
            storage.cut_after_bytes = None
            q = reboot(storage)
            first, got_last = q.log_scan()
            assert got_last == last, "cut after %d bytes" % k
            recs = q.log_read(0, 100)
            seqs = [r[0] for r in recs]
            assert seqs == list(range(first, last + 1))
            assert all(r == (r[0], r[0] * 10, 2, (r[0],)) for r in recs)
            # Only the one record the torn write overwrote may be gone.
            assert first in (last - 15, last - 14)
            q.log_append(last + 1, 999, 9, (1, 2, 3, 4))
            assert reboot(storage).log_read(last + 1, 1) == [(last + 1, 999, 9, (1, 2, 3, 4))]


@pytest.mark.req("SR-27")
def test_corrupt_record_is_skipped():
    storage, p = fresh()
    for s in range(5):
        p.log_append(s, s, 1, ())
    storage.mem[p.log_base + 2 * 32 + 5] ^= 0x10
    q = reboot(storage)
    assert [r[0] for r in q.log_read(0, 10)] == [0, 1, 3, 4]


def test_log_argument_checks():
    storage, p = fresh()
    with pytest.raises(PersistError):
        p.log_append(0, 0, 1, (1, 2, 3, 4, 5))
    with pytest.raises(PersistError):
        p.log_append(0, 0, 256, ())
    with pytest.raises(PersistError):
        p.log_append(0, -1, 1, ())
    with pytest.raises(PersistError) as info:
        p.log_append(0, 0, 1, (2 ** 31,))
    assert str(2 ** 31) in str(info.value)
    p.log_append(5, 0, 1, ())
    with pytest.raises(PersistError) as info:
        p.log_append(5, 0, 1, ())
    assert "allowed 6.." in str(info.value)


def test_log_storage_failure_becomes_persist_error():
    storage, p = fresh()
    p.log_append(0, 0, 1, ())
    storage.fail_writes = True
    with pytest.raises(PersistError):
        p.log_append(1, 0, 1, ())
    storage.fail_writes = False
    assert reboot(storage).log_scan() == (0, 0)


def test_log_and_snapshots_do_not_overlap():
    storage, p = fresh()
    for s in range(40):
        p.log_append(s, s, 1, (s,))
    p.commit(S1)
    p.commit(S2)
    q = reboot(storage)
    assert q.load() == S2
    assert q.log_scan() == (24, 39)


# -- MicroPython-like import: no crcmod --------------------------------------------------------

def test_works_without_crcmod(monkeypatch):
    import firmware.persist as persist_mod
    import protocol.crc as crc_mod
    monkeypatch.setitem(sys.modules, "crcmod", None)
    monkeypatch.setitem(sys.modules, "crcmod.predefined", None)
    try:
        importlib.reload(crc_mod)
        importlib.reload(persist_mod)
        assert crc_mod.CRC16_BACKEND == "pure"
        assert persist_mod.crc16 is crc_mod.crc16_pure
        storage = SimStorage(4096)
        p = persist_mod.Persist(storage, **SMALL)
        p.commit(S1)
        p.log_append(1, 2, 3, (4,))
        written_pure = storage
    # Written with the pure CRC, read back with the host's crcmod one.
    finally:
        monkeypatch.undo()
        importlib.reload(crc_mod)
        importlib.reload(persist_mod)
    q = persist_mod.Persist(written_pure, **SMALL)
    assert q.load() == S1
    assert q.log_read(0, 5) == [(1, 2, 3, (4,))]
