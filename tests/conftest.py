"""Shared pytest configuration.

system_health_check (after pymodbus' fixture of the same name) runs around every test and fails
one that leaves behind a thread it started or an open file descriptor to a pty (a serve loop not
stopped, a pty link not closed).  A test that must leak on purpose is marked `no_health_check`.
Fixtures of a wider scope (module, session) are set up before the check's snapshot and torn down
after it, so what they own is not counted against a single test.
"""

import json
import os
import subprocess
import sys
import threading
import time

import pytest

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(_ROOT, "tests", "mp"))

import mpsession  # noqa: E402  (tests/mp: the MicroPython 1.27 harness)

# How long a test's threads get to finish after it returns, in seconds (in total, not per thread).
_THREAD_GRACE_S = 1.0

_FD_DIR = "/proc/self/fd" if os.path.isdir("/proc/self/fd") else "/dev/fd"


@pytest.fixture(autouse=True)
def _private_state_folder(tmp_path_factory, monkeypatch):
    # `vpump serve` keeps generated keys in $XDG_STATE_HOME/vpump: a test's go to a temporary
    # folder (inherited by the vpump processes a test starts), never the user's own.
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("state")))


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "no_health_check: skip the thread / pty-descriptor leak check for this test")
    config.addinivalue_line(
        "markers", "req(*ids): the safety requirements (SR-nn, docs/safety.md) this test proves; "
                   "docs/traceability.md is generated from these marks")


def _pty_fds():
    # {(fd, target)} for every open descriptor that is a terminal (pty master or slave).
    found = set()
    try:
        names = os.listdir(_FD_DIR)
    except OSError:
        return found
    for name in names:
        try:
            fd = int(name)
        except ValueError:
            continue
        try:
            if not os.isatty(fd):
                continue
        except OSError:
            continue  # closed meanwhile (e.g. the listdir descriptor itself)
        try:
            target = os.readlink(os.path.join(_FD_DIR, name))
        except OSError:
            target = "?"
        found.add((fd, target))
    return found


@pytest.fixture(autouse=True)
def system_health_check(request):
    if request.node.get_closest_marker("no_health_check") is not None:
        yield
        return
    threads_before = set(threading.enumerate())
    ptys_before = _pty_fds()
    yield
    problems = []

    deadline = time.monotonic() + _THREAD_GRACE_S
    leaked = []
    for thread in threading.enumerate():
        if thread in threads_before or not thread.is_alive():
            continue
        thread.join(max(0.0, deadline - time.monotonic()))
        if thread.is_alive():
            leaked.append(thread)
    if leaked:
        problems.append("thread(s) still running after the test: %s"
                        % ", ".join("%s (daemon=%s)" % (t.name, t.daemon) for t in leaked))

    leaked_fds = _pty_fds() - ptys_before
    if leaked_fds:
        # Not closed here: an object may still own them.  Later tests are not blamed, since
        # they are in those tests' "before" snapshot.
        problems.append("pty descriptor(s) left open: %s"
                        % ", ".join("fd %d -> %s" % item for item in sorted(leaked_fds)))

    if problems:
        pytest.fail("system health check: " + "; ".join(problems), pytrace=False)


# ------------------------------------------------------------------ a simulated bench board

class BenchProcess:
    """`python -m sim.io_board` in a child process; .url is its pty, ask() its console."""

    def __init__(self, *args):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sim.io_board"] + list(args), cwd=_ROOT,
            env=dict(os.environ, PYTHONPATH=_ROOT), stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        first = self.proc.stdout.readline()
        if not first.startswith("link: "):
            self.close()
            raise AssertionError("sim.io_board did not start: %r %s" % (first, self.err))
        self.url = first[len("link: "):].strip()
        self.err = ""

    def ask(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def alive(self):
        return self.proc.poll() is None

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.flush()
            except OSError:
                pass
        try:
            _, self.err = self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, self.err = self.proc.communicate()
        return self.proc.returncode


@pytest.fixture
def bench():
    board = BenchProcess()
    try:
        yield board
    finally:
        code = board.close()
    assert code == 0, board.err


# ------------------------------------------------------------------ MicroPython 1.27 (wasm)

@pytest.fixture(scope="module")
def mp():
    """One MicroPython session (one node process) per test module: starting one costs about
    half a second, a program in a running one a few milliseconds.  Programs in a module share
    the interpreter's imported modules and file system, not their globals.  Without node the
    tests are skipped with the reason; with node but without the npm package (run `npm ci`, as
    `make test` does) they fail and say so: the suite is meant to run them."""
    need_micropython()
    session = mpsession.MicroPython()
    try:
        yield session
    finally:
        session.close()


def need_micropython():
    """Skip (no node) or fail (no npm package) the calling test unless MicroPython can run."""
    reason = mpsession.skip_reason()
    if reason:
        pytest.skip(reason)
    problem = mpsession.missing_package()
    if problem:
        pytest.fail(problem, pytrace=False)


@pytest.fixture
def micropython_with():
    """micropython_with(files) -> a MicroPython session holding only those files (paths from
    the repository root, under /lib), closed after the test."""
    need_micropython()
    sessions = []

    def start(files):
        sessions.append(mpsession.MicroPython(files=files))
        return sessions[-1]
    yield start
    for session in sessions:
        session.close()
