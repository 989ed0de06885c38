"""The `vpump` command line (tools/cli.py): run and diagram, in-process and as the console script.

main(argv, stdout, stderr) is called in-process with StringIO streams; one test runs the installed
entry point in a subprocess.  Runs use a few simulated days so each takes well under a second.
"""

import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from sim.runner import TIMESERIES_COLUMNS
from sim.scenario import MAX_SEED
from tools import cli

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCENARIOS = os.path.join(REPO, "scenarios")
ADULT = "adult-sci-continuous"          # continuous basal, random patient presses, seed 1
SHIPPED = sorted(name[:-5] for name in os.listdir(SCENARIOS) if name.endswith(".toml"))


class FakeTTY(io.StringIO):
    def isatty(self):
        return True


def call(*argv, stderr=None):
    """main(argv) in-process: (exit code, stdout text, stderr text)."""
    out = io.StringIO()
    err = io.StringIO() if stderr is None else stderr
    code = cli.main(list(argv), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def run_ok(*argv):
    code, out, err = call(*argv)
    assert code == 0, err
    assert "Traceback" not in err
    return out, err


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def events_of(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def scenario_copy(tmp_path, name, old, new, filename="broken.toml"):
    """A copy of a shipped scenario with the first line equal to `old` changed to `new`."""
    with open(os.path.join(SCENARIOS, name + ".toml"), encoding="utf-8") as f:
        text = f.read()
    pattern = re.compile(r"^" + re.escape(old) + r"$", re.M)
    assert pattern.search(text), "fixture line %r not found" % old
    path = tmp_path / filename
    path.write_text(pattern.sub(new, text, count=1), encoding="utf-8")
    return path


def assert_usage_error(code, out, err, *needles):
    """Exit 2, nothing on stdout, no traceback, no usage block: one line naming every needle."""
    assert code == 2, (out, err)
    assert out == ""
    assert "Traceback" not in err and "usage:" not in err
    errors = err.splitlines()
    assert len(errors) == 1, err
    for needle in needles:
        assert needle in errors[0], (needle, err)
    return errors[0]


# ------------------------------------------------------------------------------------ run: output

def test_run_human_summary_and_output_files(tmp_path):
    out_dir = tmp_path / "out"
    out, err = run_ok("run", ADULT, "--days", "3", "--out", str(out_dir))
    lines = out.splitlines()
    assert lines[0] == "vpump run: %s (3 days, seed 1)" % ADULT
    text = "\n".join(lines)
    dose = re.search(r"programmed ([\d,]+) ug, delivered ([\d,]+) ug \(([\d.]+) %\)", text)
    assert dose, text
    programmed = int(dose.group(1).replace(",", ""))
    delivered = int(dose.group(2).replace(",", ""))
    # 400 ug/day for 3 days plus a few 25 ug patient boluses.
    assert 1200 <= programmed <= 1400
    assert abs(delivered - programmed) <= programmed * 0.02
    assert re.search(r"^  refills    0; patient boluses: \d+ given of \d+ presses; "
                     r"refused requests: \d+$", text, re.M)
    assert re.search(r"^  alarms     none$", text, re.M)
    assert re.search(r"^  final      therapy infusing, reservoir_ok, battery_ok; reservoir ", text, re.M)
    assert re.search(r"^  speed      [\d.]+ s wall, ([\d.]+e\+\d+|n/a) x real time$", text, re.M)
    assert re.search(r"^  strokes    [\d,]+$", text, re.M)
    assert str(out_dir / "events.jsonl") in text and str(out_dir / "timeseries.csv") in text
    # Not a terminal: no progress bar, and nothing else on stderr.
    assert err == ""

    events = events_of(out_dir / "events.jsonl")
    assert events[0]["event"] == "boot"
    start = [e for e in events if e["event"] == "start"]
    assert start == [dict(start[0], scenario=ADULT, days=3, seed=1)]
    assert events[-1]["event"] == "end"
    with open(out_dir / "timeseries.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert tuple(rows[0]) == TIMESERIES_COLUMNS
    assert len(rows) == 1 + 3 * 24 + 1          # header, hourly samples from 0 h to 72 h


def test_run_json_summary(tmp_path):
    out_dir = str(tmp_path / "j")
    out, err = run_ok("run", ADULT, "--days", "4", "--seed", "42", "--out", out_dir, "--json")
    summary = json.loads(out)
    for key in ("scenario", "days", "seed", "programmed_ug", "delivered_true_ug", "strokes",
                "alarms_raised", "final_state", "speedup", "out", "refills",
                "delivered_vs_programmed_pct", "wall_seconds"):
        assert key in summary, key
    assert summary["scenario"] == ADULT
    assert summary["days"] == 4
    assert summary["seed"] == 42
    assert summary["out"] == out_dir
    assert summary["alarms_raised"] == {}
    assert summary["final_state"] == {"therapy": "infusing", "reservoir": "reservoir_ok",
                                      "battery": "battery_ok"}
    assert summary["strokes"] > 0
    assert summary["delivered_true_ug"] > 0 and summary["programmed_ug"] > 0
    assert summary["speedup"] is None or summary["speedup"] > 1000
    assert err == ""
    assert os.path.isfile(os.path.join(out_dir, "events.jsonl"))
    assert os.path.isfile(os.path.join(out_dir, "timeseries.csv"))


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_scenario_runs(tmp_path, name):
    out, _ = run_ok("run", name, "--days", "3", "--out", str(tmp_path), "--json")
    summary = json.loads(out)
    assert summary["scenario"] == name
    assert summary["days"] == 3
    from sim import scenario
    if scenario.load(scenario.find(name))["therapy"] is None:
        # A pump waiting stopped for its programmer (titration-after-screening: implanted on
        # day 4) makes no stroke in 3 days.
        assert summary["strokes"] == 0 and summary["final_state"]["therapy"] == "idle"
    else:
        assert summary["strokes"] > 0


def test_default_out_dir_is_out_slash_scenario_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out, _ = run_ok("run", ADULT, "--days", "3", "--json")
    assert json.loads(out)["out"] == os.path.join("out", ADULT)
    assert (tmp_path / "out" / ADULT / "events.jsonl").is_file()
    assert (tmp_path / "out" / ADULT / "timeseries.csv").is_file()


# ------------------------------------------------------------------------------------ determinism

def test_same_seed_gives_byte_identical_events(tmp_path):
    for d in ("a", "b"):
        run_ok("run", ADULT, "--days", "5", "--seed", "7", "--out", str(tmp_path / d), "--quiet")
    first = read_bytes(tmp_path / "a" / "events.jsonl")
    assert len(first) > 1000
    assert first == read_bytes(tmp_path / "b" / "events.jsonl")
    assert read_bytes(tmp_path / "a" / "timeseries.csv") == read_bytes(tmp_path / "b" / "timeseries.csv")


def test_different_seed_changes_the_patient_presses(tmp_path):
    for seed in ("1", "2"):
        run_ok("run", ADULT, "--days", "5", "--seed", seed, "--out", str(tmp_path / seed))
    presses = {}
    for seed in ("1", "2"):
        events = events_of(tmp_path / seed / "events.jsonl")
        presses[seed] = [e["t_ms"] for e in events if e["event"] == "patient_press"]
        assert presses[seed], "the adult scenario's patient should press in 5 days"
    # Not just the seed echoed in the start record: the random presses themselves differ.
    assert presses["1"] != presses["2"]


def test_scenario_path_works_like_a_bare_name(tmp_path):
    run_ok("run", ADULT, "--days", "3", "--out", str(tmp_path / "name"))
    copy = tmp_path / "elsewhere" / "mine.toml"
    copy.parent.mkdir()
    shutil.copy(os.path.join(SCENARIOS, ADULT + ".toml"), copy)
    out, _ = run_ok("run", str(copy), "--days", "3", "--out", str(tmp_path / "path"))
    assert out.startswith("vpump run: %s (3 days, seed 1)" % ADULT)
    assert read_bytes(tmp_path / "name" / "events.jsonl") == \
        read_bytes(tmp_path / "path" / "events.jsonl")
    # The shipped file's own path works too.
    run_ok("run", os.path.join(SCENARIOS, ADULT + ".toml"), "--days", "3",
           "--out", str(tmp_path / "shipped"))
    assert (tmp_path / "shipped" / "events.jsonl").is_file()


# ------------------------------------------------------------------------------------ bad input

@pytest.mark.parametrize("option, value, needles", [
    ("--days", "0", ("--days", "0", "1 to 3650")),
    ("--days", "abc", ("--days", "got abc", "1 to 3650")),
    ("--days", "4000", ("--days", "4000", "1 to 3650")),
    ("--days", "2.5", ("--days", "got 2.5", "1 to 3650")),
    ("--seed", "-1", ("--seed", "-1", "0 to %d" % MAX_SEED)),
    ("--seed", str(MAX_SEED + 1), ("--seed", str(MAX_SEED + 1), "0 to %d" % MAX_SEED)),
])
@pytest.mark.req("SR-19")
def test_bad_option_values_exit_2_naming_field_value_and_range(tmp_path, option, value, needles):
    code, out, err = call("run", ADULT, option, value, "--out", str(tmp_path / "o"))
    line = assert_usage_error(code, out, err, *needles)
    assert line.startswith("vpump run: argument %s: got " % option)
    assert line.endswith("(see vpump run --help)")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("option, value", [("--days", "1"), ("--days", "3650"),
                                           ("--seed", "0"), ("--seed", str(MAX_SEED))])
def test_option_range_ends_are_accepted(option, value):
    parser = cli.build_parser()
    args = parser.parse_args(["run", ADULT, option, value])
    assert getattr(args, option[2:]) == int(value)


def test_unknown_scenario_name_lists_the_available_ones(tmp_path):
    code, out, err = call("run", "no-such-scenario", "--days", "3", "--out", str(tmp_path / "o"))
    line = assert_usage_error(code, out, err, '"no-such-scenario"', "available:")
    for name in SHIPPED:
        assert name in line
    assert not (tmp_path / "o").exists()


def test_misspelt_scenario_name_suggests_the_close_one():
    code, out, err = call("run", "adult-sci-continuus", "--days", "3")
    assert_usage_error(code, out, err, 'did you mean "%s"?' % ADULT)


def test_scenario_that_is_a_directory_is_refused(tmp_path):
    code, out, err = call("run", str(tmp_path), "--days", "3")
    assert_usage_error(code, out, err, str(tmp_path), "is a directory")


@pytest.mark.parametrize("old, new, needles", [
    ("basal_ug_per_day = 400", "basal_ug_per_day = -5",
     ("[therapy] basal_ug_per_day = -5", "from 0 to 1000000")),
    ("concentration_ug_per_ml = 2000", "concentration_ug_per_ml = 123",
     ("[drug] concentration_ug_per_ml = 123", "must be one of", "2000")),
    ("days = 180", "days = 0", ("[scenario] days = 0", "from 1 to 3650")),
    ("lockout_min = 180", "lockout_min = 0", ("[patient_bolus] lockout_min = 0", "15 to 1440")),
    ("reservoir_ml = 40", "reservoir_ml = 30", ("[pump] reservoir_ml = 30", "20 or 40")),
])
@pytest.mark.req("SR-19")
def test_scenario_file_with_a_bad_value_exits_2(tmp_path, old, new, needles):
    path = scenario_copy(tmp_path, ADULT, old, new)
    code, out, err = call("run", str(path), "--days", "3", "--out", str(tmp_path / "o"))
    assert_usage_error(code, out, err, str(path), *needles)
    assert not (tmp_path / "o").exists()


def test_scenario_file_with_a_toml_syntax_error_exits_2(tmp_path):
    path = scenario_copy(tmp_path, ADULT, "[therapy]", "[therapy")
    code, out, err = call("run", str(path), "--days", "3", "--out", str(tmp_path / "o"))
    line = assert_usage_error(code, out, err, str(path), "TOML syntax error", "[therapy")
    lineno = read_bytes(path).decode("utf-8").splitlines().index("[therapy") + 1
    assert "line %d" % lineno in line
    assert not (tmp_path / "o").exists()


def test_missing_subcommand_exits_2():
    code, out, err = call()
    commands = ", ".join(cli.build_parser().commands)
    assert_usage_error(code, out, err, "vpump: give a COMMAND: %s (see vpump --help)" % commands)
    assert "run, " in commands and "prog" in commands


def test_missing_scenario_argument_exits_2():
    code, out, err = call("run")
    assert_usage_error(code, out, err, "SCENARIO")


def test_unknown_subcommand_exits_2():
    code, out, err = call("fly")
    assert_usage_error(code, out, err, "'fly'")


def test_unknown_option_exits_2(tmp_path):
    code, out, err = call("run", ADULT, "--bogus", "--out", str(tmp_path / "o"))
    assert_usage_error(code, out, err, "vpump run: unrecognized arguments: --bogus")
    assert err.endswith("(see vpump run --help)\n")   # the subcommand's help, not vpump's
    assert not (tmp_path / "o").exists()


# ------------------------------------------------------------------------------- output folder mistakes

def test_out_under_a_regular_file_exits_2(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    target = str(blocker / "sub")
    code, out, err = call("run", ADULT, "--days", "3", "--out", target)
    assert code == 2
    assert out == ""
    assert "Traceback" not in err
    assert err.splitlines() == [err.strip()]
    assert err.startswith("vpump run: --out %s: cannot write output there: " % target)
    assert blocker.read_text() == "not a directory"


def test_out_that_is_a_regular_file_exits_2(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("keep me")
    code, out, err = call("run", ADULT, "--days", "3", "--out", str(blocker))
    assert code == 2
    assert out == ""
    assert err.startswith("vpump run: --out %s: is a file, not a folder" % blocker)
    assert blocker.read_text() == "keep me"


# ------------------------------------------------------------------------------------ progress bar

def test_progress_bar_only_on_a_terminal(tmp_path):
    # StringIO is not a terminal: nothing on stderr (covered above too).
    _, err = run_ok("run", ADULT, "--days", "3", "--out", str(tmp_path / "a"))
    assert err == ""
    # A terminal gets the bar, ending at 100 % and then cleared.
    tty = FakeTTY()
    code, out, err = call("run", ADULT, "--days", "3", "--out", str(tmp_path / "b"), stderr=tty)
    assert code == 0
    assert "100%" in err and "day 3/3" in err
    assert err.endswith("\r")                # cleared at the end: the summary stands alone
    assert "\n" not in err
    assert out.startswith("vpump run: ")
    # --quiet silences it even on a terminal.
    tty = FakeTTY()
    code, _, err = call("run", ADULT, "--days", "3", "--out", str(tmp_path / "c"), "--quiet",
                        stderr=tty)
    assert code == 0
    assert err == ""


# ------------------------------------------------------------------------------------ diagram

def test_diagram_check_passes_on_the_committed_file():
    code, out, err = call("diagram", "--check")
    assert code == 0, err
    assert "up to date" in err


def test_diagram_check_fails_on_a_stale_file(tmp_path):
    stale = tmp_path / "stale.md"
    stale.write_text("# old\n")
    code, _, err = call("diagram", "--check", "--output", str(stale))
    assert code == 1
    assert "out of date" in err
    code, _, err = call("diagram", "--check", "--output", str(tmp_path / "missing.md"))
    assert code == 1
    assert "missing" in err


def test_diagram_output_writes_the_mermaid_document(tmp_path):
    target = tmp_path / "sub" / "x.md"
    code, out, err = call("diagram", "--output", str(target))
    assert code == 0, err
    text = target.read_text(encoding="utf-8")
    assert text.startswith("# Pump state machine")
    assert "```mermaid" in text and "stateDiagram-v2" in text
    with open(os.path.join(REPO, "docs", "state-machine.md"), encoding="utf-8") as f:
        assert text == f.read()
    assert "wrote" in err
    # And --check agrees with what it just wrote.
    assert call("diagram", "--check", "--output", str(target))[0] == 0


# ------------------------------------------------------------------------------------ help

def test_top_level_help():
    code, out, err = call("--help")
    assert code == 0
    assert out.startswith("usage: vpump ")
    for word in ("run", "diagram", "not clinical advice"):
        assert word in out
    assert err == ""


def test_run_help_mentions_every_option():
    code, out, _ = call("run", "--help")
    assert code == 0
    assert out.startswith("usage: vpump run ")
    for option in ("SCENARIO", "--days", "--seed", "--out", "--json", "--quiet", "1-3650",
                   "events.jsonl", "timeseries.csv"):
        assert option in out, option


def test_diagram_help_mentions_its_options():
    code, out, _ = call("diagram", "--help")
    assert code == 0
    for option in ("--check", "--output"):
        assert option in out


# ------------------------------------------------------------------------------------ entry point

def _entry_point():
    script = os.path.join(os.path.dirname(sys.executable), "vpump")
    if os.path.isfile(script) and os.access(script, os.X_OK):
        return [script]
    return [sys.executable, "-m", "tools.cli"]


def test_installed_console_script(tmp_path):
    out_dir = str(tmp_path / "o")
    proc = subprocess.run(
        _entry_point() + ["run", ADULT, "--days", "3", "--out", out_dir, "--json"],
        cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""               # a pipe is not a terminal: no progress bar
    summary = json.loads(proc.stdout)
    assert summary["scenario"] == ADULT and summary["days"] == 3 and summary["out"] == out_dir
    assert os.path.isfile(os.path.join(out_dir, "events.jsonl"))
    # Its exit status is main()'s: 2 for bad input, with the message and no traceback.
    bad = subprocess.run(_entry_point() + ["run", ADULT, "--days", "0"],
                         cwd=REPO, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2
    assert "argument --days: got 0, must be a whole number from 1 to 3650" in bad.stderr
    assert "Traceback" not in bad.stderr
