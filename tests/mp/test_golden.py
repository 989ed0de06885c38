"""Golden traces: every shipped scenario gives the same firmware event log on CPython and on
MicroPython 1.27, byte for byte, and both equal tests/golden/NAME.trace.

The scenario (scenarios/NAME.toml, its whole length up to a year) is loaded on the host and handed to both
interpreters as the same JSON text; sim/replay.py drives SimBoard + Pump through it on each.
After an intended change of behaviour, regenerate the files with

    .venv/bin/python tests/golden/update.py

and review the diff; this test then proves MicroPython agrees.
"""

import importlib.util
import json
import os

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
_spec = importlib.util.spec_from_file_location(
    "vpump_golden_update", os.path.join(ROOT, "tests", "golden", "update.py"))
golden = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(golden)

SCENARIOS = golden.shipped()


def first_difference(a, b):
    a_lines, b_lines = a.splitlines(), b.splitlines()
    for i in range(max(len(a_lines), len(b_lines))):
        x = a_lines[i] if i < len(a_lines) else "<end>"
        y = b_lines[i] if i < len(b_lines) else "<end>"
        if x != y:
            return "line %d: %r != %r" % (i + 1, x, y)
    return "no difference"


def test_every_shipped_scenario_has_a_golden_trace():
    assert SCENARIOS, "no scenarios/*.toml found"
    golden_files = sorted(n[:-6] for n in os.listdir(golden.HERE) if n.endswith(".trace"))
    assert golden_files == [name for name, _ in SCENARIOS], \
        "tests/golden/*.trace and scenarios/*.toml differ: run tests/golden/update.py"


@pytest.mark.parametrize("name, path", SCENARIOS, ids=[name for name, _ in SCENARIOS])
def test_cpython_trace_equals_the_golden_file(name, path):
    text = golden.config_json(path)
    want = golden.header(json.loads(text)) + golden.cpython_trace(text)
    with open(golden.golden_path(name), encoding="utf-8", newline="") as f:
        have = f.read()
    assert want == have, ("%s.trace is stale (%s): if the change is intended, run "
                          "tests/golden/update.py" % (name, first_difference(have, want)))


@pytest.mark.req("SR-30")
@pytest.mark.parametrize("name, path", SCENARIOS, ids=[name for name, _ in SCENARIOS])
def test_micropython_trace_equals_cpython_byte_for_byte(mp, name, path):
    text = golden.config_json(path)
    target = "/data/%s.json" % name
    mp.write(target, text)
    upy = mp.run(golden.MP_PROGRAM % target, timeout_s=240)
    cpy = golden.cpython_trace(text)
    assert upy == cpy, "MicroPython differs from CPython: " + first_difference(cpy, upy)
    with open(golden.golden_path(name), encoding="utf-8", newline="") as f:
        assert golden.header(json.loads(text)) + upy == f.read()
    assert upy.count("\n") > 5
