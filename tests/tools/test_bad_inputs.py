"""No user mistake prints a traceback: many bad inputs across every subcommand, each one line
on stderr naming what is wrong, and exit status 2."""

import io
import os

import pytest

from tools.cli import main

ADULT = "adult-sci-continuous"
NOWHERE = "socket://127.0.0.1:9"        # nothing is opened for these: they fail before


def _cases(tmp):
    a_file = os.path.join(tmp, "a-file")
    a_dir = os.path.join(tmp, "a-dir")
    bad_toml = os.path.join(tmp, "bad.toml")
    bad_keys = os.path.join(tmp, "keys.json")
    return [
        [],
        ["fly"],
        ["--bogus"],
        ["run"],
        ["run", "no-such-scenario"],
        ["run", a_dir],
        ["run", bad_toml],
        ["run", ADULT, "--days", "0"],
        ["run", ADULT, "--days", "x"],
        ["run", ADULT, "--seed", "-1"],
        ["run", ADULT, "--out", a_file],
        ["run", ADULT, "--out", os.path.join(a_file, "sub")],
        ["run", ADULT, "--bogus"],
        ["run", "-"],                               # stdin is empty
        ["scenarios", "--bogus"],
        ["diagram", "--bogus"],
        ["diagram", "--output", a_dir],
        ["diagram", "--check", "--output", a_dir],
        ["diagram", "--output", "/proc/forbidden/x.md"],
        ["schema", "--bogus"],
        ["serve", "--state", a_dir],
        ["serve", "--link", "loop", "--state", "/proc/forbidden/pump.state"],
        ["serve", "--link", "loop", "--state", a_file],
        ["fuzz"],
        ["fuzz", NOWHERE, "--key-file", os.path.join(tmp, "none.json")],
        ["conform", NOWHERE, "--key-file", bad_keys],
        ["campaign", os.path.join(tmp, "none.toml")],
        ["campaign", a_file],
        ["serve", "--speed", "0"],
        ["serve", "--speed", "fast"],
        ["serve", "--baud", "12"],
        ["serve", "--seed", "-5"],
        ["serve", "--keys", os.path.join(tmp, "none.json")],
        ["serve", "--keys", bad_keys],
        ["serve", "--link", "bogus"],
        ["serve", "--link", "socket://x:y"],
        ["serve", "--link", "loop", "--out", a_file],
        ["serve", "--link", "loop", "--out", "/proc/forbidden/x"],
        ["serve", "--link", "loop", "--noise", "drop_pct=200"],
        ["serve", "--link", "loop", "--noise", "junk"],
        ["serve", "no-such-scenario"],
        ["prog"],
        ["prog", "socket://x:y", "status"],
        ["prog", "socket://127.0.0.1:99999", "identify"],
        ["prog", NOWHERE, "frobnicate"],
        ["prog", NOWHERE, "status"],                # no --key-file
        ["prog", NOWHERE, "status", "--key-file", os.path.join(tmp, "none.json")],
        ["prog", NOWHERE, "status", "--key-file", bad_keys],
        ["prog", NOWHERE, "status", "--role", "admin"],
        ["prog", NOWHERE, "status", "--timeout", "0"],
        ["prog", NOWHERE, "program"],
        ["prog", NOWHERE, "program", "-5"],
        ["prog", NOWHERE, "program", "lots"],
        ["prog", NOWHERE, "program", "2000000"],
        ["prog", NOWHERE, "bolus", "50"],
        ["prog", NOWHERE, "bolus", "50", "--minutes", "0"],
        ["prog", NOWHERE, "bolus", "0", "--minutes", "10"],
        ["prog", NOWHERE, "refill", "1000", "--concentration", "2000"],
        ["prog", NOWHERE, "refill", "18", "--concentration", "700"],
        ["prog", NOWHERE, "refill", "18"],
        ["prog", NOWHERE, "set-limits"],
        ["prog", NOWHERE, "set-limits", "--daily-hard", "0"],
        ["prog", NOWHERE, "patient-bolus-settings", "--lockout-min", "0"],
        ["prog", NOWHERE, "patient-bolus-settings", "--max-per-24h", "99"],
        ["prog", NOWHERE, "program-flex", "nonsense"],
        ["prog", NOWHERE, "program-flex", "00:00=abc"],
        ["prog", NOWHERE, "silence", "0"],
        ["prog", NOWHERE, "set-clock", "yesterday"],
        ["prog", NOWHERE, "log", "--count", "0"],
        ["prog", NOWHERE, "low-reservoir-alarm", "-1"],
        ["report"],
        ["report", os.path.join(tmp, "no-run")],
        ["report", a_file],
        ["report", a_dir, "--scenario", "no-such-scenario"],
        ["report", a_dir, "--out", a_file],
        ["flash", "--bogus"],
    ]


@pytest.fixture(scope="module")
def tmp(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    (d / "a-file").write_text("x")
    (d / "a-dir").mkdir()
    (d / "bad.toml").write_text("[scenario\nname = 1\n")
    (d / "keys.json").write_text("{\"serial\": 3}")
    return str(d)


def test_every_mistake_is_one_line_and_exit_2(tmp, monkeypatch):
    monkeypatch.delenv("VPUMP_URL", raising=False)
    monkeypatch.delenv("VPUMP_KEY_FILE", raising=False)
    failures = []
    for argv in _cases(tmp):
        out, err = io.StringIO(), io.StringIO()
        monkeypatch.setattr("sys.stdin", io.StringIO(""))
        code = main(argv, stdout=out, stderr=err, stdin=io.StringIO(""))
        text = err.getvalue()
        lines = text.strip().splitlines()
        if code != 2 or "Traceback" in text or "usage:" in text or len(lines) != 1 or \
                not lines[0].startswith("vpump"):
            failures.append("%s -> exit %s: %r" % (" ".join(argv), code, text))
    assert not failures, "\n".join(failures)
