"""A simulated bench board: the bench I/O server (hal/io_server.py) with hal.sim parts as its
hardware, behind a pseudo-terminal, in a process of its own.  What the `serial` HAL backend
(hal/serial_io.py) talks to when there is no board on the bench.

    python -m sim.io_board [--name NAME] [--stroke-nl N] [--battery-capacity-nah N]
                           [--stroke-charge-nah N] [--fill-nl N] [--concentration N]

The first line on stdout is `link: /dev/pts/N`: the path to give SerialIOBoard (or
`vpump serve --io`).  Then it reads console commands on stdin, one a line, and answers each with
one JSON line on stdout:

    counts                  what the parts and the server saw: strokes, stalls, delivered_nl,
                            tones {"single", "two"}, last_tone, battery_mv, requests, repeats,
                            bad_frames, errors
    stall on | stall off    the motor stalls (an occlusion) or turns again
    battery_used_nah N      charge drawn from the cell so far (the voltage follows)
    quit                    stop (so does the end of stdin)

A command it does not know is answered with {"error": "..."} naming the known ones.
"""

import argparse
import json
import os
import select
import sys

from hal.io_server import IOServer
from hal.sim import SimBoard
from sim.links import PtyLink

COMMANDS = "counts, stall on, stall off, battery_used_nah N, quit"


class BenchBoard:
    """The simulated board: sim parts, an IOServer and its PtyLink (.url)."""

    def __init__(self, name="sim-bench", stroke_nl=1000, battery_capacity_nah=1500000000,
                 stroke_charge_nah=100, fill_nl=20000000, concentration_ug_per_ml=2000):
        self.parts = SimBoard(stroke_nl=stroke_nl, battery_capacity_nah=battery_capacity_nah,
                              stroke_charge_nah=stroke_charge_nah)
        self.parts.reservoir.refill(fill_nl, concentration_ug_per_ml)
        self.link = PtyLink()
        self.url = self.link.url
        self.server = IOServer(self.link, self.parts.motor, self.parts.battery,
                               self.parts.annunciator, name=name)

    def counts(self):
        p = self.parts
        s = self.server
        return {
            "strokes": p.motor.strokes, "stalls": p.motor.stalls,
            "delivered_nl": p.motor.delivered_nl,
            "tones": {"single": p.annunciator.counts[1], "two": p.annunciator.counts[2]},
            "last_tone": list(p.annunciator.last) if p.annunciator.last else None,
            "battery_mv": p.battery.read_mv(),
            "requests": s.requests, "repeats": s.repeats, "bad_frames": s.bad_frames,
            "errors": s.errors,
        }

    def command(self, line):
        """One console command -> its JSON-able answer (None for quit)."""
        words = line.split()
        if words == ["counts"]:
            return self.counts()
        if len(words) == 2 and words[0] == "stall" and words[1] in ("on", "off"):
            self.parts.motor.stalled = words[1] == "on"
            return {"stalled": self.parts.motor.stalled}
        if len(words) == 2 and words[0] == "battery_used_nah" and words[1].isdigit():
            self.parts.battery.used_nah = int(words[1])
            return {"battery_mv": self.parts.battery.read_mv()}
        if words == ["quit"]:
            return None
        return {"error": "unknown command %r; known: %s" % (line.strip(), COMMANDS)}

    def close(self):
        self.server.close()
        self.parts.close()


def serve(board, stdin_fd, out):
    """Answer the link and the console until quit or the end of stdin."""
    pending = b""
    link_fd = board.link.fileno()
    while True:
        ready, _, _ = select.select([link_fd, stdin_fd], [], [])
        if link_fd in ready:
            board.server.poll()
        if stdin_fd in ready:
            chunk = os.read(stdin_fd, 4096)
            if not chunk:
                return
            pending += chunk
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                if not line.strip():
                    continue
                answer = board.command(line.decode("utf-8", "replace"))
                if answer is None:
                    return
                out.write(json.dumps(answer) + "\n")
                out.flush()


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m sim.io_board",
        description="A simulated bench board: the bench I/O server with simulated motor, "
                    "battery and annunciator behind a pty.  Prints 'link: PATH' first; "
                    "console commands on stdin: " + COMMANDS + ".")
    parser.add_argument("--name", default="sim-bench", help="board name IDENTIFY reports")
    parser.add_argument("--stroke-nl", type=int, default=1000, metavar="N")
    parser.add_argument("--battery-capacity-nah", type=int, default=1500000000, metavar="N")
    parser.add_argument("--stroke-charge-nah", type=int, default=100, metavar="N")
    parser.add_argument("--fill-nl", type=int, default=20000000, metavar="N",
                        help="drug in the simulated reservoir (default 20 mL)")
    parser.add_argument("--concentration", type=int, default=2000, metavar="UG_PER_ML")
    args = parser.parse_args(argv)
    board = BenchBoard(args.name, args.stroke_nl, args.battery_capacity_nah,
                       args.stroke_charge_nah, args.fill_nl, args.concentration)
    try:
        sys.stdout.write("link: %s\n" % board.url)
        sys.stdout.flush()
        serve(board, sys.stdin.fileno(), sys.stdout)
    except KeyboardInterrupt:
        pass
    finally:
        board.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
