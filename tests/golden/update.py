"""Golden event traces of the shipped scenarios: tests/golden/NAME.trace.

Each file is the firmware's event log for scenarios/NAME.toml over the scenario's whole length
(at most GOLDEN_MAX_DAYS: a battery scenario runs for years, and MicroPython replays about 13
times slower than CPython), replayed by sim/replay.py: a header line, then one line per log entry, "seq t_ms code args"
(codes in firmware/eventlog.py; args comma-separated, "-" for none).  tests/mp/test_golden.py
replays every scenario on CPython and on MicroPython 1.27 and requires both to equal the file
byte for byte.

When a change to the firmware or a scenario changes behaviour on purpose, regenerate the files
on CPython and review the diff (then run the test: MicroPython must agree):

    .venv/bin/python tests/golden/update.py             # rewrite every golden file
    .venv/bin/python tests/golden/update.py --check     # exit 1 and name the stale ones
"""

import glob
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from sim import scenario  # noqa: E402
from sim.replay import Replay, trace_line  # noqa: E402

# The MicroPython side: the scenario as JSON in a file (MicroPython has no TOML reader), replayed
# by the same module, printing the same lines.
MP_PROGRAM = """
import json
from sim.replay import Replay, trace_line
with open(%r) as f:
    config = json.load(f)
def show(seq, t_ms, code, args):
    print(trace_line(seq, t_ms, code, args))
Replay(config, on_log=show).run()
"""


def shipped():
    """[(name, path)] of scenarios/*.toml, sorted."""
    paths = sorted(glob.glob(os.path.join(ROOT, "scenarios", "*.toml")))
    return [(os.path.splitext(os.path.basename(p))[0], p) for p in paths]


GOLDEN_MAX_DAYS = 365


def config_json(path):
    """The scenario as the JSON text both interpreters replay (plain data, firmware units)."""
    config = scenario.load(path)
    config["days"] = min(config["days"], GOLDEN_MAX_DAYS)
    return json.dumps(config, sort_keys=True)


def header(config):
    return ("# %s: %d days, seed %d; seq t_ms code args (firmware/eventlog.py); "
            "written by tests/golden/update.py\n" % (config["name"], config["days"],
                                                      config["seed"]))


def cpython_trace(text):
    """The trace (without header) of the scenario given as JSON text, replayed here."""
    lines = []
    Replay(json.loads(text), on_log=lambda *entry: lines.append(trace_line(*entry) + "\n")).run()
    return "".join(lines)


def golden_path(name):
    return os.path.join(HERE, name + ".trace")


def expected(path):
    text = config_json(path)
    return header(json.loads(text)) + cpython_trace(text)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    check = "--check" in argv
    unknown = [a for a in argv if a != "--check"]
    if unknown:
        sys.stderr.write("usage: update.py [--check]; unknown argument %s\n" % unknown[0])
        return 2
    stale = []
    for name, path in shipped():
        want = expected(path)
        target = golden_path(name)
        try:
            with open(target, encoding="utf-8", newline="") as f:
                have = f.read()
        except FileNotFoundError:
            have = None
        if have == want:
            continue
        stale.append(name)
        if not check:
            with open(target, "w", encoding="utf-8", newline="\n") as f:
                f.write(want)
            print("wrote %s (%d entries)" % (os.path.relpath(target, ROOT), want.count("\n") - 1))
    if check and stale:
        print("stale golden traces: %s (run tests/golden/update.py)" % ", ".join(stale))
        return 1
    if not stale:
        print("golden traces up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
