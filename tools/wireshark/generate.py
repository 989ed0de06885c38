"""Generate the tables of tools/wireshark/vpump.lua from the project's registries.

The dissector's logic is written by hand in vpump.lua; its tables (commands with every request
and response field, their types and units, reason codes, field ids, event codes, state and
alarm names) sit between the lines

    -- BEGIN GENERATED TABLES ...
    -- END GENERATED TABLES

and are rewritten from tools/wireshark/tables.py (protocol/ and firmware/) by
`vpump wireshark --generate`.  tests/tools/test_wireshark.py fails when the shipped file is
stale, so the dissector cannot drift from the code.

    render_tables() -> the Lua text between the markers
    render(lua_text) -> lua_text with its generated block replaced
    current(path) -> True when the file's block is what render_tables() gives
"""

import os

from firmware import alarms
from firmware.table import REGION_NAMES, STATES, TRIGGERS
from protocol import commands as C
from protocol import frame
from tools.wireshark import tables

LUA_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "vpump.lua")
BEGIN = "-- BEGIN GENERATED TABLES"
END = "-- END GENERATED TABLES"
_NOTE = (" (`vpump wireshark --generate` writes them from protocol/ and firmware/: do not "
         "edit by hand)")


class StaleError(Exception):
    """The Lua file has no generated block to replace."""


def _str(text):
    return '"%s"' % text.replace("\\", "\\\\").replace('"', '\\"')


def _names(names, first=0):
    # A Lua table indexed from `first` (wire values start at 0).
    return "{" + ", ".join("[%d]=%s" % (i + first, _str(n)) for i, n in enumerate(names)) + "}"


def _item(item):
    parts = ["key=%s" % _str(item["key"]), "type=%s" % _str(item["type"]),
             "size=%d" % item["size"]]
    if item["unit"]:
        parts.append("unit=%s" % _str(item["unit"]))
    if item["wall"]:
        parts.append("wall=true")
    if item["names"] is not None:
        parts.append("names=%s" % _names(item["names"]))
    if item["range"] is not None:
        parts.append("range={%d, %d}" % item["range"])
    return "{" + ", ".join(parts) + "}"


def _codec(codec, indent):
    if isinstance(codec, dict) and "special" in codec:
        return "{special=%s}" % _str(codec["special"])
    if isinstance(codec, dict):
        pad = " " * (indent + 4)
        return ("{pair={%s}, items={\n%s%s}}" % (
            ", ".join(_str(k) for k in codec["pair"]),
            "".join(pad + _item(i) + ",\n" for i in codec["items"]), " " * indent))
    if not codec:
        return "{}"
    pad = " " * (indent + 4)
    return "{\n" + "".join(pad + _item(i) + ",\n" for i in codec) + " " * indent + "}"


def render_tables():
    regions, states, triggers = REGION_NAMES, STATES, TRIGGERS
    lines = [BEGIN + _NOTE, "local GEN = {}",
             "GEN.max_payload = %d" % frame.MAX_PAYLOAD,
             "GEN.nak_size = %d" % C.NAK_SIZE,
             "GEN.session_overhead = %d" % C.SESSION_OVERHEAD,
             "GEN.read_log_max_entries = %d" % C.READ_LOG_MAX_ENTRIES,
             "GEN.flex_days = %d" % C.FLEX_DAYS,
             "GEN.flex_max_steps = %d" % C.FLEX_MAX_STEPS,
             "-- code -> {name, what it means}"]
    lines.append("GEN.reasons = {")
    for code, name, text in tables.reason_rows():
        lines.append("    [%d]={%s, %s}," % (code, _str(name), _str(text)))
    lines.append("}")
    lines.append("-- field id -> {name, unit}")
    lines.append("GEN.fields = {")
    for fid, name, unit in tables.field_rows():
        lines.append("    [%d]={%s, %s}," % (fid, _str(name), _str(unit)))
    lines.append("}")
    lines.append("-- code -> the command; request/response: fields in order, or a special layout")
    lines.append("GEN.commands = {")
    for row in tables.command_rows():
        lines.append("    [0x%02X]={name=%s, auth=%s, patient=%s," % (
            row["code"], _str(row["name"]), str(row["auth"]).lower(),
            str(row["patient"]).lower()))
        lines.append("        request=%s," % _codec(row["request"], 8))
        lines.append("        response=%s}," % _codec(row["response"], 8))
    lines.append("}")
    lines.append("-- event code -> {name, args: {{name, unit or what it indexes}, ...}}")
    lines.append("GEN.events = {")
    for code, name, args in tables.event_rows():
        lines.append("    [%d]={name=%s, args={%s}}," % (
            code, _str(name), ", ".join("{%s, %s}" % (_str(a), _str(u)) for a, u in args)))
    lines.append("}")
    lines.append("-- what event args index")
    lines.append("GEN.arg_names = {")
    index = tables.arg_index_names()
    for key in sorted(index):
        if index[key] is not None:
            lines.append("    %s=%s," % (key, _names(index[key])))
    lines.append("}")
    lines.append("GEN.event_flags = {%s}" % ", ".join(
        "%s=true" % f for f in tables.EVENT_FLAGS))
    lines.append("GEN.alarms = %s" % _names(alarms.NAMES))
    lines.append("-- the state event: region index -> its states")
    lines.append("GEN.states = {")
    for i, region in enumerate(regions):
        lines.append("    [%d]=%s," % (i, _names(states[region])))
    lines.append("}")
    lines.append(END)
    return "\n".join(lines) + "\n"


def render(lua_text):
    start = lua_text.find(BEGIN)
    end = lua_text.find(END)
    if start < 0 or end < start:
        raise StaleError("no '%s' ... '%s' block to replace" % (BEGIN, END))
    end = lua_text.index("\n", end) + 1
    return lua_text[:start] + render_tables() + lua_text[end:]


def current(path=LUA_PATH):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    return render(text) == text


def write(path=LUA_PATH):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    new = render(text)
    if new != text:
        with open(path, "w", encoding="utf-8", newline="\n") as f:
            f.write(new)
        return True
    return False
