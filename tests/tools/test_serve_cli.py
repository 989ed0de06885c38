"""`vpump serve` from the command line: a user's mistakes are one line and exit 2, and the keys
it generates are kept where the user can find them (or removed when the start fails)."""

import glob
import io
import os
import signal
import subprocess
import sys

import pytest

from tools.cli import main

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _keys_made():
    return glob.glob(os.path.join(os.environ["XDG_STATE_HOME"], "vpump", "*"))


def _serve(*argv):
    out, err = io.StringIO(), io.StringIO()
    code = main(["serve"] + list(argv), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("argv, words", [
    (["--out", "{file}"], "--out {file}: is a file, not a folder"),
    (["--out", "/proc/forbidden/run"], "--out /proc/forbidden/run: cannot write there"),
    (["--link", "bogus"], "--link bogus: no such serial device; give pty"),
    (["--link", "socket://x:y"], "expected socket://HOST:PORT"),
    (["--io", "/dev/no-such-board"], "--io /dev/no-such-board: no such serial device"),
    (["--seed", "-5"], "argument --seed: got -5, must be a whole number from 0 to 4294967295"),
])
def test_a_bad_start_is_one_line_exit_2_and_leaves_no_keys(tmp_path, argv, words):
    existing = tmp_path / "a-file"
    existing.write_text("x")
    argv = [a.replace("{file}", str(existing)) for a in argv]
    code, out, err = _serve("--link", "loop", *argv)
    assert code == 2, err
    assert words.replace("{file}", str(existing)) in err
    assert "Traceback" not in err and "is `vpump serve` running" not in err
    assert out == ""
    assert _keys_made() == []


def test_a_start_that_fails_after_the_keys_were_made_removes_them(monkeypatch):
    import sim.serve
    from tools.serve import ServeError

    def broken(*args, **kwargs):
        raise ServeError("the pump would not start")
    monkeypatch.setattr(sim.serve, "Serve", broken)
    code, out, err = _serve("--link", "loop")
    assert code == 2 and "the pump would not start" in err
    assert _keys_made() == []


def test_generated_keys_are_kept_in_the_state_folder_and_named(tmp_path):
    env = dict(os.environ, PYTHONPATH=REPO)
    server = subprocess.Popen(
        [sys.executable, "-c", "import sys; from tools.cli import main; sys.exit(main())",
         "serve", "--link", "socket://127.0.0.1:0"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert server.stdout.readline().startswith("link: socket://127.0.0.1:")
        keys_line = server.stdout.readline()
    finally:
        server.send_signal(signal.SIGTERM)
        rest, err = server.communicate(timeout=20)
    assert server.returncode == 0, err
    path = keys_line[len("keys: "):].strip()
    folder = os.path.join(os.environ["XDG_STATE_HOME"], "vpump")
    assert os.path.dirname(path) == folder
    assert os.path.basename(path).startswith("keys-VP-") and path.endswith(".json")
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert os.stat(folder).st_mode & 0o777 == 0o700
    assert "new keys for pump VP-" in err and "--keys %s" % path in err
    assert ("keys in %s" % path) in rest
    # Kept: serving them again with --keys is the same pump's keys.
    from protocol.keys import parse_keys
    with open(path) as f:
        assert parse_keys(f.read())["serial"] == os.path.basename(path)[5:-5]


def test_keys_beside_a_state_file_are_reused(tmp_path):
    # With a --state FILE, the keys live beside it and a later serve of that state reuses them.
    import argparse
    from tools import serve
    state = str(tmp_path / "pump.state")
    args = argparse.Namespace(keys=None, state=state)
    keys, path, made = serve._keys_for(args)
    assert made and path == state + ".keys.json"
    again, path2, made2 = serve._keys_for(args)
    assert not made2 and path2 == path and again == keys
