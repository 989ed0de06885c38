"""docs/protocol.md is a contract: its tables are read back and compared with the code.

The command table (code, name, whether it needs a session), the reason codes, the field ids,
INTERROGATE's alarm bits, the drug library's default limits and the event codes with their
arguments must say exactly what protocol/ and firmware/ do, so the document a third party
writes a programmer from cannot drift from the pump.  The frame diagram is checked against
the worked example's byte positions.
"""

import os
import re

from firmware import alarms, eventlog, limits
from protocol import commands as C
from protocol import fields, frame, reasons

DOC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs",
                   "protocol.md")


def _text():
    with open(DOC, encoding="utf-8") as f:
        return f.read()


def table_after(heading, columns):
    """The rows (lists of cell strings) of the first table after `heading` whose header starts
    with `columns`."""
    text = _text()
    start = text.index("\n" + heading + "\n")
    lines = text[start:].splitlines()
    for i, line in enumerate(lines):
        cells = _cells(line)
        if cells[:len(columns)] == list(columns):
            rows = []
            for row in lines[i + 2:]:
                if not row.startswith("|"):
                    break
                rows.append(_cells(row))
            return rows
    raise AssertionError("no table (%s) after %r in docs/protocol.md" % (", ".join(columns),
                                                                         heading))


def _cells(line):
    if not line.startswith("|"):
        return []
    # A pipe inside backticks escaped as \| stays in its cell.
    parts = re.split(r"(?<!\\)\|", line.strip())[1:-1]
    return [p.strip() for p in parts]


def _plain(cell):
    return cell.strip("`").strip()


def test_commands_table_is_the_registry():
    rows = table_after("## Commands", ("CMD", "name", "auth"))
    documented = {int(r[0], 16): (r[1], r[2]) for r in rows}
    expected = {code: (c.name.upper(), "yes" if c.auth else "no")
                for code, c in C.COMMANDS.items()}
    assert documented == expected


def test_reason_codes_table_is_the_registry():
    rows = table_after("### Reason codes", ("code", "name", "meaning"))
    assert {int(r[0]): r[1] for r in rows} == reasons.TEXT
    assert all(r[2] for r in rows)          # every code says what it means


def test_field_ids_table_is_the_registry():
    rows = table_after("### Field ids", ("id", "field", "id", "field"))
    documented = {}
    for r in rows:
        for i in (0, 2):
            if r[i]:
                documented[int(r[i])] = "" if r[i + 1] == "(none)" else r[i + 1]
    assert documented == dict(enumerate(fields.FIELDS))


def test_alarm_bits_table_is_the_registry():
    rows = table_after("### Alarm bits", ("bit", "mask", "alarm", "kind"))
    assert [(int(r[0]), int(r[1], 16), r[2], r[3].startswith("critical")) for r in rows] == [
        (i, 1 << i, name, alarms.CRITICAL[i]) for i, name in enumerate(C.ALARMS)]
    assert C.ALARMS == alarms.NAMES


def test_default_limits_table_is_the_library():
    rows = table_after("### Drug-library limits", ("limit", "default", "unit"))
    assert {_plain(r[0]): int(r[1]) for r in rows} == {
        key: limits.BACLOFEN[key] for key in limits.LIMIT_KEYS}


def test_event_codes_table_is_the_registry():
    rows = table_after("### Event codes", ("code", "event", "arg 1"))
    documented = {}
    for r in rows:
        args = tuple(re.match(r"`([a-z_0-9]+)`", cell).group(1) for cell in r[2:6] if cell)
        documented[int(r[0])] = (r[1], args)
    assert documented == {code: (name, tuple(args))
                          for code, (name, args) in eventlog.EVENTS.items()}
    # Units as the names say: the log's volumes are uL where the name says so.
    for r in rows:
        for cell in r[2:6]:
            if cell.startswith("`") and re.match(r"`[a-z_]+_ul`", cell):
                assert cell.endswith("(uL)"), cell


def test_frame_diagram_matches_the_worked_example():
    text = _text()
    assert "7 ... 6+N      7+N   8+N" in text and "CRC covers bytes 2 .. 6+N " in text
    example = frame.encode(7, C.IDENTIFY)           # N = 0: the CRC is bytes 7 and 8
    assert example.hex(" ").upper() in text
    n = 0
    assert len(example) == 9 + n and example[7 + n:] == bytes.fromhex("3456")
