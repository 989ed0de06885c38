"""Link measurements for the benchmarks (helpers; bench/run.py turns them into figures).

pty_echo_roundtrips_per_s: the floor for a pump behind a pty.  A child process opens the slave
with pyserial and echoes every byte back; the parent writes a message on a PtyLink and waits
until all of it is back, over and over.  No pump can answer faster than this echo, so it is the
denominator of roundtrip_pty_vs_echo.  Run alone: `python bench/links.py [SECONDS] [SIZE]`.
"""

import os
import select
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from sim.links import PtyLink  # noqa: E402  (after the sys.path fix-up, for running alone)

# The echo: argv = slave path, seconds to live (an orphan must not outlive the parent's run).
# It ends quietly when the parent closes the pty (pyserial then raises SerialException).
ECHO_CHILD = r"""
import select, sys, time, serial
port = serial.serial_for_url(sys.argv[1], timeout=0)
end = time.monotonic() + float(sys.argv[2])
sys.stdout.write("ready\n")
sys.stdout.flush()
try:
    while time.monotonic() < end:
        if select.select([port.fileno()], [], [], 0.5)[0]:
            data = port.read(4096)
            if data:
                port.write(data)
except serial.SerialException:
    pass
"""

_START_S = 10.0     # for the child to start and say "ready"
_ANSWER_S = 2.0     # for one echo


def start_echo(path, lifetime_s):
    # The echo child, started and ready (it has opened the slave; what is written from now on
    # is echoed).  The caller waits for it (or kills it) when done.
    child = subprocess.Popen([sys.executable, "-c", ECHO_CHILD, path, str(lifetime_s)],
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
    if not select.select([child.stdout], [], [], _START_S)[0] or \
            child.stdout.readline() != b"ready\n":
        stop_echo(child)
        raise RuntimeError("the echo child on %s did not start within %g s" % (path, _START_S))
    return child


def stop_echo(child):
    try:
        child.wait(5)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
    child.stdout.close()


def roundtrip(link, message):
    # Write message and wait until it has come back whole and unchanged.
    link.write(message)
    back = bytearray()
    while len(back) < len(message):
        if not link.wait(_ANSWER_S):
            raise RuntimeError("no echo within %g s (%d of %d bytes back)"
                               % (_ANSWER_S, len(back), len(message)))
        back += link.read(len(message) - len(back))
    if back != message:
        raise RuntimeError("the echo changed the message: %r -> %r" % (message, bytes(back)))


def pty_echo_roundtrips_per_s(seconds=1.0, size=24):
    """Round trips per second of size-byte messages through a pty to an echoing process."""
    message = bytes((i * 37 + 11) & 0xFF for i in range(size))
    with PtyLink() as link:
        child = start_echo(link.path, seconds + 30.0)
        try:
            for _ in range(50):        # warm up: both processes' paths in the caches
                roundtrip(link, message)
            count = 0
            t0 = time.perf_counter()
            end = t0 + seconds
            while True:
                roundtrip(link, message)
                count += 1
                now = time.perf_counter()
                if now >= end:
                    break
        finally:
            link.close()               # the child sees the hang-up and ends
            stop_echo(child)
    return count / (now - t0)


def serve_interrogate_roundtrips_per_s(seconds=1.0):
    """Authenticated INTERROGATE round trips per second: `vpump serve --link pty` in its own
    process, protocol.client.Programmer here (frames, HMAC both ways, the pump's status)."""
    from protocol.client import Programmer, load_key_file

    server = subprocess.Popen([sys.executable, "-m", "tools.cli", "serve", "--link", "pty"],
                              cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              bufsize=0)     # unbuffered: select() sees every line
    try:
        lines = []
        while len(lines) < 2:
            if not select.select([server.stdout], [], [], _START_S)[0]:
                raise RuntimeError("vpump serve did not print its link and keys within %g s"
                                   % _START_S)
            lines.append(server.stdout.readline().decode().strip())
        path = lines[0].split(": ", 1)[1]
        key = load_key_file(lines[1].split(": ", 1)[1], "clinician")
        with Programmer(path, role="clinician", key=key) as programmer:
            programmer.open_session()
            for _ in range(50):
                programmer.interrogate()
            count = 0
            t0 = time.perf_counter()
            end = t0 + seconds
            while True:
                programmer.interrogate()
                count += 1
                now = time.perf_counter()
                if now >= end:
                    break
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        server.stdout.close()
    return count / (now - t0)


if __name__ == "__main__":
    args = [float(a) for a in sys.argv[1:3]]
    rate = pty_echo_roundtrips_per_s(*([args[0]] if args else []) +
                                     ([int(args[1])] if len(args) > 1 else []))
    print("pty echo: %.0f round trips/s" % rate)
