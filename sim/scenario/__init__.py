"""Scenario files: TOML in, a plain validated config out (docs/scenarios.md is the format).

    find(name_or_path) -> path      a file, or a bare name looked up in the repo's scenarios/
    load(path) -> config            read the TOML and validate it
    validate(raw, source) -> config check a parsed TOML document, convert to firmware units
    flex_week(source, entries)      a flex schedule from [[flex]]-style entries
    link_noise(spec, source)        a link_noise fault's options (`vpump serve --noise`)
    schema.build() / schema.text()  the format as a JSON Schema (`vpump schema`)

The config is plain data (dicts, lists, ints, strings, bools; JSON-serialisable) in firmware units
(nL, ms, ug, ug/day, ug/mL) so the MicroPython port can consume it too.  Every mistake raises
ScenarioError with "{source}: [{table}] {key} = {value!r}: {what is allowed}".  Unknown tables and
keys are errors (they are usually typos, and the message asks "did you mean ...?").  Clinical
limits are not checked here: the firmware's drug library does that, and a scenario may
deliberately program something the pump must refuse.

One module per section of the file, each declaring its keys once as field specs (fields.py) that
both check a value and describe it in the JSON Schema:

    document.py   the tables, [scenario], validate()     pump.py      [pump]
    drug.py       [drug], concentrations, volumes        therapy.py   [therapy], flex, [limits],
    models.py     [models]                                            [patient_bolus]
    faults.py     [[faults]], link_noise()               link.py      [link]
    timeline.py   [[timeline]], [refills]                schema.py    the JSON Schema
    checker.py    one value's check and its message

This module finds and reads the files: a bare name is looked up in the repo's scenarios/ (or an
installed copy's); the TOML is parsed with its syntax errors placed by line, then validated.
"""

import difflib
import os
import re
import sys

from sim.errors import ScenarioError
from sim.scenario.checker import toml_value
from sim.scenario.document import MAX_DAYS, MAX_SEED, REQUIRED_TABLES, TABLES, validate
from sim.scenario.faults import link_noise
from sim.scenario.therapy import WEEKDAYS, flex_week
from sim.scenario.timeline import ACTIONS

try:
    import tomllib
except ImportError:         # Python 3.10
    try:
        import tomli as tomllib
    except ImportError:
        tomllib = None

_LINE_RE = re.compile(r"at line (\d+)(?:, column (\d+))?")


def repo_root():
    """The repository holding the sim package (its parent directory)."""
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def scenario_dirs():
    """Where bare names are looked up: the repo's scenarios/, then an installed copy's."""
    dirs = [os.path.join(repo_root(), "scenarios"),
            os.path.join(sys.prefix, "share", "vpump", "scenarios")]
    return [d for d in dirs if os.path.isdir(d)]


def available():
    """Names (without .toml) of the scenarios find() knows, sorted."""
    names = set()
    for d in scenario_dirs():
        for entry in os.listdir(d):
            if entry.endswith(".toml"):
                names.add(entry[:-5])
    return sorted(names)


def find(name_or_path):
    """A scenario's path: name_or_path itself if it is a file, else NAME(.toml) in scenarios/."""
    text = str(name_or_path)
    if os.path.isfile(text):
        return text
    if os.path.isdir(text):
        raise ScenarioError("%s: is a directory, not a scenario file" % text, source=text)
    bare = os.path.basename(text) == text and text not in ("", ".", "..")
    if bare:
        filename = text if text.endswith(".toml") else text + ".toml"
        for d in scenario_dirs():
            path = os.path.join(d, filename)
            if os.path.isfile(path):
                return path
    names = available()
    hint = ""
    close = difflib.get_close_matches(text[:-5] if text.endswith(".toml") else text, names, n=1)
    if close:
        hint = "did you mean %s? " % toml_value(close[0])
    raise ScenarioError(
        "scenario %s: no such file, and no scenario of that name in scenarios/; %savailable: %s"
        % (toml_value(text), hint, ", ".join(names) if names else "(none)"), source=text)


def load(path):
    """Read a TOML scenario file and validate it: the plain config (see validate)."""
    source = str(path)
    if tomllib is None:
        raise ScenarioError("%s: reading TOML needs Python 3.11+ (tomllib); install tomli on "
                            "Python 3.10" % source, source=source)
    try:
        with open(source, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise ScenarioError("%s: no such scenario file" % source, source=source) from None
    except OSError as exc:
        raise ScenarioError("%s: cannot read: %s" % (source, exc.strerror or exc),
                            source=source) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise ScenarioError("%s: line %d: not UTF-8 text (TOML files are UTF-8)" % (source, line),
                            source=source, line=line) from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        match = _LINE_RE.search(message)
        line = int(match.group(1)) if match else getattr(exc, "lineno", None)
        where = ""
        if line is not None:
            where = "line %d: " % line
            snippet = _line_text(text, line)
            if snippet:
                message += "; the line reads: %s" % snippet
        raise ScenarioError("%s: %sTOML syntax error: %s" % (source, where, message),
                            source=source, line=line) from None
    return validate(raw, source=source)


def _line_text(text, line):
    lines = text.splitlines()
    if 1 <= line <= len(lines):
        snippet = lines[line - 1].strip()
        return snippet if len(snippet) <= 80 else snippet[:77] + "..."
    return ""
