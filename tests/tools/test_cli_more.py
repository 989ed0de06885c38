"""What users of other serial and device tools expect of vpump's command line: --version,
`run -` from stdin, JSON errors from `run --json`, a quiet end when the reader of stdout leaves."""

import io
import json
import os
import subprocess
import sys

from sim import scenario
from tools.cli import main

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ADULT = "adult-sci-continuous"


def call(*argv, stdin=None):
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), stdout=out, stderr=err, stdin=stdin)
    return code, out.getvalue(), err.getvalue()


def test_version_names_vpump_the_firmware_and_the_protocol():
    code, out, err = call("--version")
    assert code == 0, err
    from firmware.telemetry import FIRMWARE_VERSION
    assert out.startswith("vpump 0.1.0 (firmware %s, telemetry protocol 1)" % FIRMWARE_VERSION)


def test_run_dash_reads_the_scenario_from_stdin(tmp_path):
    with open(scenario.find(ADULT), encoding="utf-8") as f:
        text = f.read()
    out_dir = str(tmp_path / "o")
    code, out, err = call("run", "-", "--days", "2", "--out", out_dir, "--json",
                          stdin=io.StringIO(text))
    assert code == 0, err
    summary = json.loads(out)
    assert summary["scenario"] == ADULT and summary["days"] == 2
    assert os.path.exists(os.path.join(out_dir, "events.jsonl"))


def test_run_dash_errors_name_stdin_and_the_line(tmp_path):
    code, out, err = call("run", "-", "--out", str(tmp_path / "o"),
                          stdin=io.StringIO("[scenario]\nname = \"x\"\ndays = 0\n"))
    assert code == 2 and out == ""
    assert err.startswith("vpump run: <stdin>: ") and "Traceback" not in err
    assert "stdin.toml" not in err and "vpump-stdin-" not in err
    code, out, err = call("run", "-", stdin=io.StringIO(""))
    assert code == 2 and "stdin is empty" in err


def test_run_json_errors_are_json_on_stdout(tmp_path):
    # A scenario mistake, a bad option value and an unwritable --out: each one JSON object.
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for argv in (["run", "no-such-scenario", "--json"],
                 ["run", ADULT, "--days", "0", "--json"],
                 ["run", ADULT, "--json", "--out", str(blocker)]):
        code, out, err = call(*argv)
        assert code == 2, argv
        error = json.loads(out)
        assert error["exit_status"] == 2 and error["error"] == err.strip(), argv
        assert "Traceback" not in err


def test_a_reader_that_leaves_early_gets_no_traceback():
    proc = subprocess.Popen([sys.executable, "-c", "import sys; from tools.cli import main; "
                             "sys.exit(main())", "scenarios"], cwd=REPO,
                            env=dict(os.environ, PYTHONPATH=REPO), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    proc.stdout.read(10)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    proc.wait(timeout=30)
    assert "Traceback" not in err and "BrokenPipe" not in err
