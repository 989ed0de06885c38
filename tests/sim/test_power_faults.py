"""Storage and supply faults (issue 5): bit flips in non-volatile memory, a power cut midway
through a write, a brown-out; the firmware's observable response to each (boot record, alarms,
state, log entries, delivered vs true), the atomic commit under a cut at every byte, and bit flips
anywhere never crashing a boot (sim/replay.py, firmware/persist.py, docs/persistence.md)."""

import json
import random

import pytest

from firmware import alarms, eventlog, table
from firmware.pump import Pump
from firmware.persist import Persist
from hal.errors import PowerLost
from hal.sim import SimBoard
from sim import scenario
from sim.errors import ScenarioError
from sim.replay import Replay
from tests.sim.test_faults import (MONDAY_0800, MS_PER_DAY, MS_PER_HOUR, config, doc, fault,
                                   load_text, pump_events, rel, run, sim_events)

MS_PER_MIN = 60000
# 400 ug/day of 500 ug/mL: 800 uL a day, 1000 nL strokes.
NL_PER_HOUR = 800000 // 24


def at(day, hour, minute=0):
    return day * MS_PER_DAY + hour * MS_PER_HOUR + minute * MS_PER_MIN


def fault_at(kind, t_ms, number=1, duration_ms=None, **options):
    entry = {"t_ms": t_ms, "duration_ms": duration_ms, "kind": kind, "number": number}
    entry.update(options)
    return entry


def action(t_ms, name, **fields):
    entry = {"t_ms": t_ms, "action": name}
    entry.update(fields)
    return entry


def pump_between(events, lo_ms, hi_ms):
    return [e for e in events if e["src"] == "pump" and lo_ms < rel(e) < hi_ms]


def seqs(events):
    return [e["seq"] for e in events if e["src"] == "pump"]


# ------------------------------------------------------------------------------ bit flips

@pytest.mark.req("SR-17", "SR-27")
def test_a_flipped_newest_snapshot_restores_the_older_one_and_says_what_was_lost():
    # 10:00 the clinician raises the basal (committed to one slot); 10:05 a bit flips in that
    # newest snapshot; 10:10 the pump resets.  The boot finds the slot damaged, restores the
    # older one (the 400 ug/day program: the change is lost) and logs storage_corrupt; the
    # program record is still in the log, so the clinician can see what to re-enter.
    timeline = [action(at(1, 2), "program", basal_ug_per_day=440),
                action(at(1, 2, 10), "reset")]
    flip = fault_at("bit_flip", at(1, 2, 5), bits=1, region="snapshot")
    r, summary, events, _ = run(config([flip], days=2, timeline=timeline))
    flips = sim_events(events, "bit_flip")
    assert len(flips) == 1 and flips[0]["part"] in ("slot_a", "slot_b")
    boot = pump_events(events, "boot", at(1, 2, 10))[0]
    assert boot["restored"] is True and boot["boot_count"] == 2
    corrupt = pump_events(events, "storage_corrupt")
    assert [(rel(e), e["slots"], e["log_records"]) for e in corrupt] == [(at(1, 2, 10), 1, 0)]
    assert corrupt[0]["damaged_seq"] == corrupt[0]["restored_seq"] + 1   # the newest was lost
    assert corrupt[0]["seq"] == boot["seq"] + 1
    assert r.pump.therapy.program == {"mode": "continuous", "basal_ug_per_day": 400}
    assert pump_events(events, "program", at(1, 2))[0]["daily_ug"] == 440
    # Delivery goes on (a consistent older state: no alarm, no halt).  The older snapshot is
    # the 10:00 hourly commit: the 10 minutes since are assumed given (with a damaged slot the
    # pump allows up to two commit intervals, as the older slot may be that old).
    assert summary["final_state"]["therapy"] == "infusing" and not summary["active_alarms"]
    assert 10 * NL_PER_HOUR // 60 <= boot["lost_nl"] <= 10 * NL_PER_HOUR // 60 + 2000
    assert summary["reservoir_estimate_ul"] <= summary["reservoir_true_ul"]


def test_a_flip_with_no_boot_before_two_commits_is_overwritten_unseen():
    # The next commit goes to the other slot and the one after it rewrites the damaged slot:
    # a boot three hours later finds nothing wrong.
    flip = fault_at("bit_flip", at(1, 2, 5), bits=4, region="snapshot")
    _, summary, events, _ = run(config([flip], days=2,
                                       timeline=[action(at(1, 5, 10), "reset")]))
    assert len(sim_events(events, "bit_flip")) == 4
    assert not pump_events(events, "storage_corrupt")
    assert pump_events(events, "boot")[-1]["restored"] is True


@pytest.mark.req("SR-17", "SR-27")
def test_both_slots_damaged_boots_factory_in_the_fault_state_with_memory_fault():
    flip = fault_at("bit_flip", at(1, 2, 5), bits=64, region="snapshots")
    reset = at(1, 2, 10)
    r, summary, events, rows = run(config([flip], days=2, timeline=[action(reset, "reset")]))
    assert {e["part"] for e in sim_events(events, "bit_flip")} == {"slot_a", "slot_b"}
    boot = pump_events(events, "boot", reset)[0]
    assert boot["restored"] is False and boot["lost_nl"] == 0
    corrupt = pump_events(events, "storage_corrupt", reset)[0]
    assert (corrupt["slots"], corrupt["restored_seq"]) == (2, 0)
    # The alarm comes with the boot (time to alarm 0), and the pump halts: its factory state
    # has no program and no reservoir, which must not pass for the prescribed therapy.
    raised = [e for e in pump_events(events, "alarm_raised", reset) if e["alarm"] == "memory_fault"]
    assert raised and rel(raised[0]) == reset
    state = [e for e in pump_events(events, "state", reset) if e["region"] == "therapy"][0]
    assert (state["from"], state["to"]) == ("idle", "fault")
    assert summary["final_state"]["therapy"] == "fault"
    assert summary["active_alarms"] == ["memory_fault"]
    assert r.pump.therapy.program is None and r.pump.boot_count == 1
    later = [x for x in rows if rel(x) > reset]
    assert {x["therapy"] for x in later} == {"fault"}
    assert len({x["delivered_true_ug"] for x in later}) == 1          # nothing delivered
    assert summary["tones"]["two_tone"] > 0
    # The log before the loss survives and seqs go on (nothing reused).
    assert seqs(events) == sorted(set(seqs(events)))


def test_the_fault_state_latches_across_a_further_reset_until_a_clinician_clears_it():
    flip = fault_at("bit_flip", at(1, 2, 5), bits=64, region="snapshots")
    timeline = [action(at(1, 2, 10), "reset"), action(at(1, 4), "reset"),
                action(at(1, 6), "clear_alarm")]
    r, summary, events, _ = run(config([flip], days=2, timeline=timeline))
    boots = pump_events(events, "boot")
    assert [b["restored"] for b in boots] == [False, False, True]
    assert len(pump_events(events, "storage_corrupt")) == 1      # rewritten since: no decay
    assert pump_events(events, "alarm_cleared")[0]["alarm"] == "memory_fault"
    assert summary["final_state"]["therapy"] == "idle"


def test_log_flips_lose_those_records_and_are_counted_at_boot():
    flip = fault_at("bit_flip", at(1, 2, 5), bits=3, region="log")
    reset = at(1, 2, 10)
    _, summary, events, _ = run(config([flip], days=2, timeline=[action(reset, "reset")]))
    assert {e["part"] for e in sim_events(events, "bit_flip")} == {"log"}
    corrupt = pump_events(events, "storage_corrupt", reset)
    assert len(corrupt) == 1 and corrupt[0]["slots"] == 0
    assert 1 <= corrupt[0]["log_records"] <= 3
    assert pump_events(events, "boot", reset)[0]["restored"] is True
    assert summary["final_state"]["therapy"] == "infusing" and not summary["active_alarms"]
    assert seqs(events) == sorted(set(seqs(events)))


def test_bit_flips_are_seeded():
    flips = [fault_at("bit_flip", at(1, 2), bits=8), fault_at("bit_flip", at(1, 3), number=2,
                                                               bits=8, region="log")]
    timeline = [action(at(1, 4), "reset")]
    a = run(config(flips, days=2, timeline=timeline))
    b = run(config(flips, days=2, timeline=timeline))
    assert json.dumps(a[2]) == json.dumps(b[2]) and a[3] == b[3]
    c = run(config(flips, days=2, timeline=timeline, seed=8))
    assert sim_events(c[2], "bit_flip") != sim_events(a[2], "bit_flip")


# ------------------------------------------------------------------------------ power cut mid-write

@pytest.mark.req("SR-18", "SR-17")
def test_a_cut_midway_through_a_commit_loads_the_older_slot():
    # Armed at 10:05; the next write to the slots is the hourly commit at 11:00.
    cut = fault_at("power_loss", at(1, 2, 5), during="commit")
    r, summary, events, _ = run(config([cut], days=2))
    resets = sim_events(events, "reset")
    assert len(resets) == 1 and rel(resets[0]) == at(1, 3)
    assert resets[0]["cause"].startswith("power_lost: supply cut after ")
    boot = pump_events(events, "boot")[-1]
    assert boot["restored"] is True and rel(boot) == at(1, 3)
    # The torn slot is not decay: no storage_corrupt; the restored snapshot is the 10:00
    # commit, an hour old, so an hour of strokes is assumed given.
    assert not pump_events(events, "storage_corrupt")
    assert NL_PER_HOUR <= boot["lost_nl"] <= NL_PER_HOUR + 2000
    assert summary["final_state"]["therapy"] == "infusing" and not summary["active_alarms"]
    assert abs(summary["delivered_ug"] - summary["delivered_true_ug"]) <= 2 + boot["lost_nl"] // 2000


def test_a_cut_midway_through_a_log_record_loses_that_request_and_the_torn_record():
    # The cut waits for the next log append: the program change's record.  The request never
    # finished, so its commit never happened; the torn record is ignored and its seq is the
    # boot's (it was never reported), so seqs stay unique.
    cut = fault_at("power_loss", at(1, 2, 5), during="log")
    change = at(1, 2, 30)
    r, summary, events, _ = run(config([cut], days=2,
                                       timeline=[action(change, "program", basal_ug_per_day=440)]))
    resets = sim_events(events, "reset")
    assert [rel(e) for e in resets] == [change]
    assert "of 32 bytes" in resets[0]["cause"]
    assert not pump_events(events, "program", change)
    assert not pump_events(events, "storage_corrupt")
    boot = pump_events(events, "boot", change)[0]
    assert boot["restored"] is True
    assert seqs(events) == list(range(1, len(seqs(events)) + 1))
    assert r.pump.therapy.program["basal_ug_per_day"] == 400


def test_power_loss_now_is_the_default():
    a = run(config([fault("power_loss", 1, hour=5)]))[2]
    b = run(config([fault("power_loss", 1, hour=5, during="now")]))[2]
    assert a == b


def boot_pump(mem, now_ms, model=None):
    # A board whose storage holds mem, its clock at now_ms; the pump booted from it.
    board = SimBoard(seed=1)
    board.storage.mem[:] = mem
    board.clock.advance_to(now_ms)
    pump = Pump(board, model, wall_ms=MONDAY_0800 + now_ms)
    logged = []
    pump.log.listener = lambda *entry: logged.append(entry)
    pump.boot()
    return board, pump, logged


def image(hours=26):
    r = Replay(config(days=2))
    r.start()
    r.run_to(hours * MS_PER_HOUR)
    return bytes(r.board.storage.mem), hours * MS_PER_HOUR


@pytest.mark.req("SR-18")
def test_a_cut_at_every_byte_of_a_commit_boots_the_old_state_never_a_crash():
    mem, now = image()
    board, pump, _ = boot_pump(mem, now)
    base_written = board.storage.bytes_written
    assert pump.program_continuous(440) == 0
    commit_bytes = board.storage.bytes_written - base_written - 32      # less its log record
    assert commit_bytes > 500
    for k in range(commit_bytes + 1):
        board, pump, _ = boot_pump(mem, now)
        storage = board.storage
        storage.cut_region = (0, pump.persist.log_base)
        storage.cut_after_bytes = k
        try:
            pump.program_continuous(440)
            cut = False
        except PowerLost:
            cut = True
        assert cut == (k < commit_bytes)
        storage.cut_after_bytes = None      # k == commit_bytes: it would cut the next one
        after = Pump(board, wall_ms=MONDAY_0800 + now)
        assert after.boot() is True
        assert after.persist.corrupt == [] and after.persist.log_corrupt == 0
        assert after.therapy.program["basal_ug_per_day"] == (400 if cut else 440), k
        assert after.state() == table.INFUSING and not after.alarms.active


@pytest.mark.req("SR-18")
def test_a_cut_at_every_byte_of_a_log_record_keeps_the_log_readable():
    mem, now = image()
    for k in range(33):
        board, pump, _ = boot_pump(mem, now)
        before = pump.log.next_seq          # the program record's seq
        board.storage.cut_region = (pump.persist.log_base, board.storage.size)
        board.storage.cut_after_bytes = k
        cut = k < 32
        if cut:
            with pytest.raises(PowerLost):
                pump.program_continuous(440)
        else:
            assert pump.program_continuous(440) == 0
            board.storage.cut_after_bytes = None
        after = Pump(board, wall_ms=MONDAY_0800 + now)
        after.boot()
        assert after.persist.log_corrupt == 0 and after.persist.corrupt == []
        assert after.therapy.program["basal_ug_per_day"] == (400 if cut else 440)
        # The boot's record follows the last whole one, with no gap: a torn record was never
        # committed (nor reported), so its seq is the boot's.
        records = after.persist.log_read(before - 3, 10)
        numbers = [rec[0] for rec in records]
        assert numbers == list(range(before - 3, before + (1 if cut else 2)))
        assert records[-1][2] == eventlog.BOOT


# ------------------------------------------------------------------------------ flips anywhere

def _flip_anywhere(mem, rng, used_hi):
    mem = bytearray(mem)
    for _ in range(rng.choice((1, 2, 3, 8, 40))):
        # Mostly where something is written (slots and the log so far), sometimes anywhere.
        hi = used_hi if rng.random() < 0.8 else len(mem)
        mem[rng.randrange(hi)] ^= 1 << rng.randrange(8)
    return bytes(mem)


@pytest.mark.req("SR-27")
def test_bit_flips_anywhere_never_crash_a_boot():
    mem, now = image()
    _, reference, _ = boot_pump(mem, now)
    used_hi = reference.persist.log_base + (reference.log.next_seq + 1) * 32
    outcomes = set()
    for seed in range(300):
        damaged = _flip_anywhere(mem, random.Random(seed), used_hi)
        board, pump, logged = boot_pump(damaged, now)
        codes = [entry[2] for entry in logged]
        if pump.persist.corrupt or pump.persist.log_corrupt:
            assert eventlog.STORAGE_CORRUPT in codes
        if pump.state() == table.FAULT:
            # Both slots lost: factory state, memory fault, nothing delivered.
            assert pump.therapy.program is None and alarms.MEMORY_FAULT in pump.alarms.active
            outcomes.add("fault")
        else:
            assert pump.therapy.program == {"mode": "continuous", "basal_ug_per_day": 400}, seed
            assert pump.state() == table.INFUSING and not pump.alarms.active
            outcomes.add("restored")
        # And it keeps running: a day of strokes, commits and a reboot.
        pump.sched.run_until(now + MS_PER_DAY)
        again = Pump(board, wall_ms=MONDAY_0800 + now + MS_PER_DAY)
        again.boot()
        assert again.state() == pump.state()
    assert outcomes == {"fault", "restored"}


def test_a_snapshot_that_passes_its_crc_but_not_the_pumps_check_is_refused():
    # What a CRC-16 misses (multi-bit damage, odds 2**-16) or another firmware version wrote:
    # a valid slot the pump cannot restore.  It counts as damaged; the other slot is used.
    mem, now = image()
    board, pump, _ = boot_pump(mem, now)
    Persist(board.storage, slot_size=pump.model["storage_slot_bytes"]).commit(
        {"v": 1, "states": "garbage", "program": {"mode": "flex", "steps": [[]]}})
    board2, pump2, logged = boot_pump(bytes(board.storage.mem), now)
    assert pump2.therapy.program == {"mode": "continuous", "basal_ug_per_day": 400}
    assert [code for _, _, code, _ in logged].count(eventlog.STORAGE_CORRUPT) == 1
    assert len(pump2.persist.corrupt) == 1 and pump2.state() == table.INFUSING


# ------------------------------------------------------------------------------ brown-out

@pytest.mark.req("SR-05")
def test_a_brown_out_stops_everything_then_boots_and_logs_the_outage():
    start, hours = at(1, 2, 20), 5
    end = start + hours * MS_PER_HOUR
    presses = [action(start + MS_PER_HOUR, "program", basal_ug_per_day=440),
               action(start + 2 * MS_PER_HOUR, "reset")]
    brown = fault_at("brown_out", start, duration_ms=hours * MS_PER_HOUR)
    r, summary, events, rows = run(config([brown], days=3, timeline=presses))
    # Nothing from the pump while held in reset; the requests are lost.
    assert pump_between(events, start, end) == []
    assert [e["action"] for e in sim_events(events, "unpowered")] == ["program", "reset"]
    dark = [x for x in rows if start < x["t_ms"] - MONDAY_0800 < end]
    assert len(dark) == hours and {x["therapy"] for x in dark} == {"unpowered"}
    assert len({x["delivered_true_ug"] for x in dark}) == 1           # no strokes
    # Then the reset and the boot from storage.
    reset = sim_events(events, "reset")
    assert [(rel(e), e["cause"]) for e in reset] == [(end, "brown_out")]
    boot = pump_events(events, "boot", end)[0]
    assert rel(boot) == end and boot["restored"] is True
    # The clock ran on: the last commit was at 10:00, so the pump knows it was off for at
    # least 5 h 20 min less one commit interval, and what that flow would have been.
    outage = pump_events(events, "outage")
    assert len(outage) == 1 and outage[0]["seq"] == boot["seq"] + 1
    off_ms = end - at(1, 2) - MS_PER_HOUR
    assert outage[0]["off_s"] == off_ms // 1000
    assert outage[0]["missed_nl"] == 800000 * off_ms // MS_PER_DAY
    # Therapy resumes as programmed, with no catch-up: over three days the patient got three
    # days' dose less the five hours.
    assert summary["final_state"]["therapy"] == "infusing" and not summary["active_alarms"]
    assert r.pump.therapy.program["basal_ug_per_day"] == 400
    expected_ug = 400 * (3 * 24 - hours) // 24
    assert abs(summary["delivered_true_ug"] - expected_ug) <= 1
    assert summary["delivered_to_csf_ug"] == summary["delivered_true_ug"]
    assert summary["delivered_ug"] >= summary["delivered_true_ug"]       # the estimate errs low


def test_a_short_brown_out_in_minutes_is_within_the_commit_window_and_logs_no_outage():
    brown = fault_at("brown_out", at(1, 2, 20), duration_ms=15 * MS_PER_MIN)
    _, summary, events, _ = run(config([brown], days=2))
    assert [rel(e) for e in sim_events(events, "reset")] == [at(1, 2, 35)]
    assert not pump_events(events, "outage")
    assert pump_events(events, "boot")[-1]["restored"] is True


def test_overlapping_brown_outs_hold_the_reset_until_the_last_ends_and_swallow_power_loss():
    faults = [fault_at("brown_out", at(1, 2), duration_ms=2 * MS_PER_HOUR),
              fault_at("brown_out", at(1, 3), number=2, duration_ms=3 * MS_PER_HOUR),
              fault_at("power_loss", at(1, 4), number=3)]
    _, summary, events, _ = run(config(faults, days=2))
    assert [(rel(e), e["cause"]) for e in sim_events(events, "reset")] == [(at(1, 6), "brown_out")]
    assert pump_between(events, at(1, 2), at(1, 6)) == []


def test_brown_out_and_cuts_are_deterministic():
    faults = [fault_at("brown_out", at(1, 2), duration_ms=90 * MS_PER_MIN),
              fault_at("power_loss", at(1, 5), number=2, during="commit"),
              fault_at("bit_flip", at(2, 1), number=3, bits=5, region="snapshots"),
              fault_at("power_loss", at(2, 1, 30), number=4)]
    a = run(config(faults, days=3))
    b = run(config(faults, days=3))
    assert json.dumps(a[2]) == json.dumps(b[2]) and a[3] == b[3]
    assert len(sim_events(a[2], "reset")) == 3


# ------------------------------------------------------------------------------ scenario files

def test_storage_and_supply_options_load(tmp_path):
    c = load_text(tmp_path, doc(
        '[[faults]]\nday = 1\nkind = "bit_flip"\n'
        '[[faults]]\nday = 1\nkind = "bit_flip"\nbits = 3\nregion = "log"\n'
        '[[faults]]\nday = 2\nkind = "brown_out"\nduration_hours = 0.25\n'
        '[[faults]]\nday = 3\nkind = "power_loss"\nduring = "commit"\n'))
    kinds = [(f["kind"], f.get("bits"), f.get("region"), f.get("during"), f["duration_ms"])
             for f in c["faults"]]
    assert kinds == [("bit_flip", 1, "any", None, None), ("bit_flip", 3, "log", None, None),
                     ("brown_out", None, None, None, 15 * MS_PER_MIN),
                     ("power_loss", None, None, "commit", None)]


@pytest.mark.parametrize("extra, fragments", [
    ('[[faults]]\nday = 1\nkind = "bit_flip"\nbits = 0\n',
     ["[faults #1] bits = 0", "from 1 to 4096"]),
    ('[[faults]]\nday = 1\nkind = "bit_flip"\nbits = 1.5\n',
     ["[faults #1] bits = 1.5", "no decimal point"]),
    ('[[faults]]\nday = 1\nkind = "bit_flip"\nregion = "ram"\n',
     ['[faults #1] region = "ram"', '"snapshot"', '"log"', '"any"']),
    ('[[faults]]\nday = 1\nkind = "bit_flip"\nduration_hours = 1\n',
     ["[faults #1] duration_hours = 1", "one instant"]),
    ('[[faults]]\nday = 1\nkind = "power_loss"\nduring = "later"\n',
     ['[faults #1] during = "later"', '"now"', '"commit"', '"log"']),
    ('[[faults]]\nday = 1\nkind = "bit_flip"\nduring = "commit"\n',
     ["[faults #1] during", "unknown key", "bits, region"]),
    ('[[faults]]\nday = 1\nkind = "brown_out"\nduration_hours = 0\n',
     ["[faults #1] duration_hours = 0", "above 0"]),
    ('[[faults]]\nday = 1\nkind = "brown_out"\nregion = "log"\n',
     ["[faults #1] region", "unknown key"]),
])
def test_bad_storage_and_supply_options_name_table_key_value_and_allowed(tmp_path, extra,
                                                                          fragments):
    with pytest.raises(ScenarioError) as info:
        load_text(tmp_path, doc(extra))
    for fragment in fragments:
        assert fragment in str(info.value)
    assert info.value.table == "faults #1"


# ------------------------------------------------------------------------------ the shipped story

def test_shipped_power_loss_mid_bolus_scenario():
    c = scenario.load(scenario.find("power-loss-mid-bolus"))
    assert [(f["kind"], f.get("during")) for f in c["faults"]] == [("power_loss", None),
                                                                   ("power_loss", "commit")]
    r, summary, events, rows = run(c)
    resets = sim_events(events, "reset")
    assert len(resets) == 2 == summary["resets"]
    assert resets[0]["cause"] == "power_loss"
    assert resets[1]["cause"].startswith("power_lost: supply cut after ")
    starts = pump_events(events, "bolus_start")
    assert len(starts) == 2
    for start, reset in zip(starts, resets):
        # Each bolus was running when the supply failed; it is logged interrupted at the boot
        # and not resumed: basal follows, and no bolus is in progress afterwards.
        assert rel(start) < rel(reset) < rel(start) + start["duration_s"] * 1000
        after = pump_between(events, rel(reset) - 1, rel(reset) + 1)
        names = [e["event"] for e in after]
        assert names[:2] == ["bolus_end", "boot"]
        assert after[0]["completed"] is False and after[1]["restored"] is True
        assert not pump_events(events, "storage_corrupt")
        row = [x for x in rows if rel(x) == rel(reset) + MS_PER_HOUR - rel(reset) % MS_PER_HOUR]
        assert row and row[0]["therapy"] == "infusing"
    assert summary["final_state"]["therapy"] == "infusing" and not summary["active_alarms"]
    # What reached the CSF: the basal and part of each bolus, less than both whole boluses.
    basal_ug = 400 * c["days"]
    assert basal_ug < summary["delivered_to_csf_ug"] < basal_ug + 2 * 50
    interrupted_ug = summary["delivered_to_csf_ug"] - basal_ug
    assert 30 <= interrupted_ug <= 45             # two times about 45 min of a 2 h 50 ug bolus
    assert summary["patient"]["overdose_hours"] == 0
    assert summary["delivered_ug"] >= summary["delivered_true_ug"]       # the estimate errs low
