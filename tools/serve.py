"""`vpump serve`: a pump behind a real byte link, paced against the wall clock.

stdout starts with two lines a script can read:

    link: /dev/pts/7            (what a programmer opens: a pty path or socket://HOST:PORT)
    keys: /tmp/vpump-keys-....json

Ctrl-C or SIGTERM stops it cleanly, with the pump's state committed.  With --io URL the
firmware's motor, battery and annunciator are a bench board's (hal/serial_io.py), and a third
line names it: `io: NAME at URL`.
"""

import os
import signal
import tempfile

from hal.errors import HalError
from sim.errors import SimError


class ServeError(SimError):
    """Bad input to vpump serve (exit 2)."""


def add_parser(commands):
    serve = commands.add_parser(
        "serve", help="run a pump behind a pty, socket or serial link for a programmer",
        description="Run a pump (a SCENARIO's, or one fresh from implant with 20 mL of "
                    "2000 ug/mL and no program) behind a link, paced at --speed times real "
                    "time.  The first lines on stdout are 'link: PATH_OR_URL' and "
                    "'keys: FILE'.  Ctrl-C or SIGTERM stops it with its state committed.")
    serve.add_argument("scenario", metavar="SCENARIO", nargs="?",
                       help="a scenario file or name (default: a fresh pump, no program)")
    serve.add_argument("--link", default="pty", metavar="pty|loop|URL",
                       help="pty (a pseudo-terminal; its path is printed), socket://HOST:PORT "
                            "(listen; port 0 picks a free one), or a serial device path / "
                            "pyserial URL (default: pty)")
    serve.add_argument("--speed", type=_speed, default=1.0, metavar="X",
                       help="virtual time runs X times real time (default 1; 0.001 to 1e9)")
    serve.add_argument("--keys", metavar="FILE",
                       help="key file (JSON with the clinician and patient keys); without it "
                            "random keys are generated and written to a new file")
    serve.add_argument("--seed", type=int, metavar="N",
                       help="seed the pump's random numbers (session nonces become "
                            "predictable: for reproducible tests only)")
    serve.add_argument("--baud", type=_baud, metavar="N",
                       help="emulate a UART of N baud (8N1: N/10 bytes/s) on what the pump "
                            "sends (300 to 4000000; default: as fast as the link)")
    serve.add_argument("--out", metavar="DIR", help="also write DIR/events.jsonl as it runs")
    serve.add_argument("--noise", metavar="SPEC",
                       help="a noisy link: comma-separated KEY=VALUE of drop_pct, corrupt_pct, "
                            "corrupt_bits, delay_ms, delay_pct, direction (both, to_pump, "
                            "from_pump) and seed, e.g. drop_pct=5,corrupt_pct=2,seed=7 "
                            "(percentages per chunk read or written; docs/programmer.md)")
    serve.add_argument("--io", metavar="URL",
                       help="drive the motor, battery and annunciator of a bench board over "
                            "this serial link (/dev/ttyACM0, /dev/pts/N from `python -m "
                            "sim.io_board`, socket://HOST:PORT; docs/bench-io.md) instead of "
                            "simulated ones")
    return serve


def _speed(text):
    import argparse
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not 0.001 <= value <= 1e9:
        raise argparse.ArgumentTypeError("got %s, must be a number from 0.001 to 1e9" % text)
    return value


def _baud(text):
    import argparse
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or not 300 <= value <= 4000000:
        raise argparse.ArgumentTypeError("got %s, must be a whole number from 300 to 4000000"
                                         % text)
    return value


def load_key_file(path):
    from protocol.keys import parse_keys
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise ServeError("--keys %s: cannot read: %s" % (path, exc.strerror or exc)) from None
    try:
        return parse_keys(text)
    except ValueError as exc:
        raise ServeError("--keys %s: %s" % (path, exc)) from None


def write_new_keys(serial):
    from protocol.keygen import format_keys, generate_keys
    keys = generate_keys(os.urandom, serial)
    fd, path = tempfile.mkstemp(prefix="vpump-keys-", suffix=".json")   # mode 0600
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(format_keys(keys))
    return keys, path


def parse_noise(text):
    """--noise "drop_pct=5,corrupt_pct=2,seed=7" -> (link_noise options, seed)."""
    from sim.scenario import link_noise
    spec = {}
    for part in text.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep or not key.strip():
            raise ServeError("--noise %s: %r is not KEY=VALUE (e.g. drop_pct=5,corrupt_pct=2)"
                             % (text, part.strip()))
        value = value.strip()
        try:
            spec[key.strip()] = float(value) if "." in value else int(value)
        except ValueError:
            spec[key.strip()] = value
    seed = spec.pop("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= 2 ** 32 - 1:
        raise ServeError("--noise %s: seed = %s: must be a whole number from 0 to 4294967295"
                         % (text, seed))
    return link_noise(spec, "--noise %s" % text), seed


def run(args, stdout, stderr):
    from sim import scenario as scenario_module
    from sim.links import open_link
    from sim.serve import Serve

    config = None
    if args.scenario:
        config = scenario_module.load(scenario_module.find(args.scenario))
    if args.keys:
        keys, key_path = load_key_file(args.keys), args.keys
    else:
        keys, key_path = write_new_keys("VP-%06d" % (int.from_bytes(os.urandom(3), "big") % 1000000))
    noise = noise_seed = None
    if args.noise:
        noise, noise_seed = parse_noise(args.noise)
    board = None
    if args.io:
        if config is not None and (config.get("models") or config.get("faults")):
            raise ServeError("--io %s: scenario %s has [models] or [[faults]], which act on "
                             "simulated parts; serve it without --io, or drop those tables"
                             % (args.io, config["name"]))
        from hal.serial_io import SerialIOBoard
        try:
            board = SerialIOBoard(args.io)
        except (HalError, OSError) as exc:
            raise ServeError("--io %s: %s" % (args.io, exc)) from None
    try:
        link = open_link(args.link)
    except (HalError, OSError) as exc:
        if board is not None:
            board.close()
        raise ServeError("--link %s: %s" % (args.link, exc)) from None
    if args.baud:
        from sim.links import RateLimited
        link = RateLimited(link, args.baud / 10.0)
    files = None
    sink = None
    if args.out:
        from sim.runner import OutputFiles
        files = OutputFiles(args.out)
        sink = files.event
    try:
        serve = Serve(config, link, keys, speed=args.speed, seed=args.seed, sink=sink,
                      board=board, noise=noise, noise_seed=noise_seed or 0)
        stdout.write("link: %s\nkeys: %s\n" % (link.url, key_path))
        if board is not None:
            stdout.write("io: %s at %s\n" % (board.identity["name"], board.url))
        stdout.flush()
        previous = {}
        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                previous[signum] = signal.signal(signum, lambda *_: serve.stop())
            except ValueError:      # not the main thread (a test): stop() is called directly
                pass
        try:
            serve.run()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        status = serve.pump.status()
        stdout.write("stopped: %d frames answered; therapy %s, reservoir %.1f mL; state "
                     "committed\n" % (serve.frames, status["therapy"],
                                      status["reservoir_nl"] / 1e6))
        if serve.noise is not None:
            done = {}
            for counts in serve.noise.counts.values():
                for action in ("dropped", "corrupted", "delayed"):
                    done[action] = done.get(action, 0) + counts[action]
            stdout.write("noise: %d chunks dropped, %d corrupted, %d delayed\n"
                         % (done["dropped"], done["corrupted"], done["delayed"]))
    finally:
        if files is not None:
            files.close()
        if board is not None:
            board.close()
    return 0
