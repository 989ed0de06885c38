"""Finding 8 of the security review: a served pump forgot everything at exit.  `vpump serve --state
FILE` keeps its flash in a file (sim/state_file.py): a restart resumes the committed state, after
SIGTERM and after kill -9 at any moment."""

import os
import random
import select
import signal
import subprocess
import sys
import threading
import time

import pytest

from firmware import eventlog
from protocol.client import Programmer
from protocol.client_errors import OutcomeUnknown, ProgrammerError
from protocol.keygen import format_keys

VPUMP = os.path.join(os.path.dirname(sys.executable), "vpump")
KEYS = {"serial": "VP-STATE1", "clinician": bytes(range(32)), "patient": bytes(range(32, 64))}


class Served:
    """`vpump serve --state` in a subprocess, on a free local port."""

    def __init__(self, tmp_path, *extra):
        keys = tmp_path / "keys.json"
        if not keys.exists():
            keys.write_text(format_keys(KEYS), encoding="utf-8")
        self.proc = subprocess.Popen(
            [VPUMP, "serve", "--link", "socket://127.0.0.1:0", "--keys", str(keys)] + list(extra),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.lines = {}
        buf = b""
        deadline = time.monotonic() + 60
        while "state" not in self.lines:
            assert time.monotonic() < deadline, "vpump serve did not start"
            ready, _, _ = select.select([self.proc.stdout], [], [], 1)
            if ready:
                chunk = os.read(self.proc.stdout.fileno(), 4096)
                assert chunk, self.proc.stderr.read().decode()
                buf += chunk
                while b"\n" in buf:
                    line, _, buf = buf.partition(b"\n")
                    key, _, value = line.decode().partition(": ")
                    self.lines[key] = value
        self.url = self.lines["link"]

    def programmer(self):
        # Patient: a loaded host may be slow; a killed server fails the link at once anyway.
        return Programmer(self.url, key=KEYS["clinician"], timeout_s=10.0, retries=2)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate(timeout=60)
        return False

    def stop(self, sig=signal.SIGTERM):
        self.proc.send_signal(sig)
        out, err = self.proc.communicate(timeout=60)
        return out.decode(), err.decode()


def program_entries(log):
    return [e["args"][1] for e in log if e["code"] == eventlog.PROGRAM]


def test_without_state_the_status_line_says_memory_only(tmp_path):
    with Served(tmp_path) as served:
        assert served.lines["state"].startswith("in memory only")
        out, _ = served.stop()
    assert "state was in memory only and is gone" in out


def test_sigterm_then_restart_resumes_and_time_off_is_an_outage(tmp_path):
    state = str(tmp_path / "pump.state")
    with Served(tmp_path, "--state", state) as served:
        assert served.lines["state"] == "%s (new)" % state
        with served.programmer() as p:
            p.program_continuous(300)
        out, _ = served.stop()
    assert "state committed to %s" % state in out
    # Two hours off: the pump accounts for them as after a brown-out.
    past = time.time() - 7200
    os.utime(state, (past, past))
    with Served(tmp_path, "--state", state) as served:
        assert served.lines["state"].startswith("%s (resumed: boot 2, therapy infusing" % state)
        with served.programmer() as p:
            status = p.interrogate()
            log = p.read_all_log()
        served.stop()
    assert status["basal_ug_per_day"] == 300 and status["boot_count"] == 2
    outages = [e for e in log if e["code"] == eventlog.OUTAGE]
    # At least the gap less the commit interval the pump may have run past its last commit.
    assert outages and 7100 - 3600 <= outages[-1]["args"][0] <= 7300 - 3600
    assert program_entries(log) == [300]


def test_kill_9_at_seeded_moments_never_loses_a_committed_state(tmp_path):
    # A busy session (one program after another, each acknowledged only once committed), killed
    # with SIGKILL at a seeded moment, ten times.  Every restart must boot a committed state
    # whose program is the last acknowledged one (or the one in flight, whose outcome the
    # programmer did not learn), with every acknowledged program in the log.
    rng = random.Random(20261204)
    state = str(tmp_path / "pump.state")
    acked = []
    inflight = None
    boots = 0
    for round_ in range(10):
        with Served(tmp_path, "--state", state) as served:  # killed on the way out if alive
            boots += 1
            with served.programmer() as p:
                status = p.interrogate()
                log = p.read_all_log()
            assert status["boot_count"] == boots
            boot_entries = [e for e in log if e["code"] == eventlog.BOOT]
            # Every boot is still in the log, so it has not wrapped and the "every acknowledged
            # program is logged" check below covers them all (the loop is paced for that).
            assert len(boot_entries) == boots
            assert boot_entries[-1]["args"][1] == (1 if round_ else 0)  # a committed state
            if acked or inflight is not None:
                assert status["basal_ug_per_day"] in (acked[-1] if acked else 0, inflight)
            if inflight is not None and status["basal_ug_per_day"] == inflight and \
                    (not acked or acked[-1] != inflight):
                acked.append(inflight)  # it was done: its answer was lost with the process
            # Every acknowledged program is in the log, in order (the log may also hold the one
            # in flight: its record is appended before the snapshot that carries it).
            logged = iter(program_entries(log))
            assert all(any(x == y for y in logged) for x in acked)
            inflight = None
            killer = threading.Timer(rng.uniform(0.0, 0.4), served.proc.kill)
            try:
                with served.programmer() as p:
                    p.open_session()
                    killer.start()
                    while True:
                        basal = rng.randrange(200, 300)     # within the drug's rate limits
                        if acked and basal == acked[-1]:
                            continue
                        inflight = basal
                        p.program_continuous(basal, confirm=True)
                        acked.append(basal)
                        inflight = None
                        # Paced so ten rounds cannot wrap the 896-entry log on a fast host:
                        # at most about 20 programs a round.
                        time.sleep(0.02)
            except (OutcomeUnknown, ProgrammerError):
                pass
            finally:
                if killer.is_alive() or killer.finished.is_set():
                    killer.join()
                else:
                    served.proc.kill()          # the session never opened: kill it anyway
                served.proc.communicate(timeout=60)
            assert served.proc.returncode == -signal.SIGKILL
    assert len(acked) >= 10


def test_the_state_file_is_the_flash_image_decay_included(tmp_path):
    from sim.state_file import FileStorage
    path = str(tmp_path / "s")
    storage = FileStorage(path, 64)
    assert not storage.existed and open(path, "rb").read() == b"\xff" * 64   # erased
    storage.write(3, b"abc")
    storage.flip_bit(10, 0)
    storage.close()
    again = FileStorage(path, 64)
    assert again.existed and again.mem[3:6] == b"abc" and again.mem[10] == 0xFE
    again.close()


def test_a_file_that_is_not_a_pumps_storage_is_refused_with_exit_2(tmp_path, capsys):
    from tools.cli import main
    bad = tmp_path / "notes.txt"
    bad.write_text("not a pump")
    keys = tmp_path / "keys.json"
    keys.write_text(format_keys(KEYS), encoding="utf-8")
    assert main(["serve", "--link", "socket://127.0.0.1:0", "--keys", str(keys),
                 "--state", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "--state %s: 10 bytes, but a pump's storage is 32768 bytes" % bad in err
