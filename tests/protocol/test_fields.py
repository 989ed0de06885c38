# Field ids: FIELDS is the "Field ids" table of docs/protocol.md, id for id.
import os
import re

import pytest

from protocol import fields as F

DOC = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "protocol.md")


def doc_table():
    with open(DOC, encoding="utf-8") as f:
        text = f.read()
    section = text.split("### Field ids", 1)[1].split("\n## ", 1)[0]
    table = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        for i in range(0, len(cells) - 1, 2):
            if re.fullmatch(r"\d+", cells[i]):
                table[int(cells[i])] = cells[i + 1]
    return table


def test_fields_match_the_doc():
    table = doc_table()
    assert table[0] == "(none)"
    assert sorted(table) == list(range(len(F.FIELDS))), "ids in the doc must run 0..n"
    assert F.FIELDS[0] == ""
    for fid in range(1, len(F.FIELDS)):
        assert F.FIELDS[fid] == table[fid], fid


def test_names_are_unique_snake_case():
    assert len(set(F.FIELDS)) == len(F.FIELDS)
    for name in F.FIELDS[1:]:
        assert re.fullmatch(r"[a-z][a-z0-9_]*", name), name


@pytest.mark.parametrize("fid", range(len(F.FIELDS)))
def test_round_trip(fid):
    assert F.field_id(F.field_name(fid)) == fid


def test_unknown():
    assert F.field_id(None) == 0
    assert F.field_id("") == 0
    assert F.field_id("no_such_field") == 0
    assert F.field_name(200) == "field_200"
    assert F.field_name(0) == ""


def test_firmware_refusal_fields_are_known():
    # The names firmware/limits.py and the pump put in refusals must have ids, or the NAK
    # would lose them (field 0).
    assert F.field_id("bolus_dose_ug") == 4
    assert F.field_id("patient_bolus_dose_ug") == 27
    for name in ("basal_ug_per_day", "daily_dose_ug", "bolus_duration_ms",
                 "patient_bolus_duration_ms", "lockout_ms", "max_per_24h", "flex_days",
                 "flex_steps_per_day", "flex_start_minute", "flex_ug_per_day", "volume_nl",
                 "concentration_ug_per_ml", "low_reservoir_alarm_nl", "silence_ms", "wall_ms"):
        assert F.field_id(name), name
