"""The pump's answers built in place (firmware/answers.py, firmware/telemetry.py _sealed): byte
for byte what the protocol's own encoders give, a READ_LOG page copied from storage included."""

import os

import pytest

from firmware.dosing import MS_PER_DAY
from hal.file_storage import FileStorage
from hal.sim_storage import SimStorage
from protocol import commands as C
from protocol import frame, session
from tests.firmware.test_telemetry import (  # noqa: F401  (pump, tel, client are fixtures)
    Client, client, decode_one, pump, tel)


def _page_as_the_encoder_gives_it(pump, start_seq, max_entries):
    # The page from log_read() as dicts, through the protocol's own READ_LOG encoder.
    records = pump.persist.log_read(start_seq, max_entries)
    entries = [{"seq": s, "t_ms": t, "code": c, "args": list(a) + [0] * (4 - len(a))}
               for s, t, c, a in records]
    return C.encode_ack(C.READ_LOG, {"next_seq": records[-1][0] + 1 if records else start_seq,
                                     "entries": entries})


def _expected_frame(client, cmd, body):
    resp = cmd | frame.RESPONSE
    return frame.encode(client.seq, resp, session.wrap_response(
        client.key, frame.VERSION, client.seq, resp, client.counter, body))


@pytest.fixture
def busy_log(client, pump):
    pump.program_continuous(400)
    for i in range(25):                         # a log of ~70 entries: programs, boluses
        pump.sched.run_until((i + 1) * MS_PER_DAY // 10)
        pump.program_continuous(400 + i)
        pump.clinician_bolus(5, 60000)
    pump.sched.run_until(3 * MS_PER_DAY)
    client.login()
    assert pump.log.next_seq > 40
    return pump


@pytest.mark.parametrize("start_seq, max_entries", [(1, 32), (3, 1), (7, 5), (10**6, 32), (0, 32)])
def test_a_read_log_answer_is_the_frame_the_encoders_give(client, busy_log, start_seq, max_entries):
    last = busy_log.log.next_seq - 1
    for start in (start_seq, last - 2):         # a page inside the log, and one at its end
        got = client.exchange(client.request(C.READ_LOG, {"start_seq": start,
                                                           "max_entries": max_entries}))
        assert got == _expected_frame(client, C.READ_LOG, _page_as_the_encoder_gives_it(
            busy_log, start, max_entries))


def test_a_decayed_record_is_skipped_and_the_page_shortened(client, busy_log):
    persist = busy_log.persist
    # Flip a bit in the record of seq 4: its CRC fails, so the page has one entry fewer.
    busy_log.board.storage.flip_bit(persist.log_base + (4 % persist.log_capacity) * 32 + 20, 3)
    got = client.exchange(client.request(C.READ_LOG, {"start_seq": 1, "max_entries": 10}))
    assert got == _expected_frame(client, C.READ_LOG, _page_as_the_encoder_gives_it(busy_log, 1, 10))
    status, page = client.response(C.READ_LOG, got)
    assert status == 0 and [e["seq"] for e in page["entries"]] == [1, 2, 3] + list(range(5, 12))
    assert page["next_seq"] == 12


def test_every_other_answer_is_sealed_as_wrap_response_would(client, busy_log):
    for cmd, fields in ((C.INTERROGATE, None), (C.READ_LIMITS, None),
                        (C.PROGRAM_CONTINUOUS, {"basal_ug_per_day": 410}),
                        (C.PROGRAM_CONTINUOUS, {"basal_ug_per_day": 10**9})):   # a NAK too
        got = client.exchange(client.request(cmd, fields))
        status, version, seq, resp_cmd, payload = decode_one(got)
        counter, body, mac = session.unwrap(payload)
        assert got == _expected_frame(client, cmd, body)


def test_log_copy_gives_what_log_read_gives(busy_log):
    persist = busy_log.persist
    picks = bytes(range(30))
    out = bytearray(30 * 40)
    count, last = persist.log_copy(2, 40, out, 0, picks)
    records = persist.log_read(2, 40)
    assert count == len(records) == 40 and last == records[-1][0]
    assert persist.log_room(2, 40) == 40 and persist.log_room(10**6, 40) == 0
    for i, (seq, t_ms, code, args) in enumerate(records):
        rec = out[30 * i:30 * i + 30]
        assert int.from_bytes(rec[0:4], "little") == seq
        assert int.from_bytes(rec[4:12], "little") == t_ms
        assert rec[12] == code and rec[13] == len(args)


def test_readinto_reads_what_read_reads(tmp_path):
    sim = SimStorage(1024)
    sim.write(100, bytes(range(64)))
    stored = FileStorage(os.path.join(str(tmp_path), "mem.dat"), 1024)
    stored.write(100, bytes(range(64)))
    for storage in (sim, stored):
        buf = bytearray(40)
        storage.readinto(90, buf)
        assert bytes(buf) == storage.read(90, 40)
        with pytest.raises(Exception) as e:
            storage.readinto(1000, bytearray(40))
        assert "outside 0..1024" in str(e.value)
    stored.close()
