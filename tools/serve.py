"""`vpump serve`: a pump behind a real byte link, paced against the wall clock.

stdout starts with two lines a script can read:

    link: /dev/pts/7            (what a programmer opens: a pty path or socket://HOST:PORT)
    keys: /home/me/.local/state/vpump/keys-VP-123456.json

Generated keys go to a per-user state folder ($XDG_STATE_HOME/vpump, else ~/.local/state/vpump),
or with --state FILE beside it (FILE.keys.json, reused by the next serve of that state); a serve
that fails to start removes the key file it made.

Ctrl-C or SIGTERM stops it cleanly, with the pump's state committed.  With --io URL the
firmware's motor, battery and annunciator are a bench board's (hal/serial_io.py), and a third
line names it: `io: NAME at URL`.

With --control, stdin is a back-channel (the pytest plugin's served pump uses it): each line
read there (`status`, `log [FROM]`, `events [FROM]`, `stop`; sim/serve.py Serve.control) is
answered by one JSON line on stdout, after the header lines.  The pump stops when stdin closes.
"""

import json
import os
import signal
import sys
import threading

from hal.errors import HalError
from sim.errors import SimError
from sim.state_file import StateFileError
from tools.argtypes import seed as seed_arg


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
                            "random keys are generated and written to a new file in "
                            "$XDG_STATE_HOME/vpump (default ~/.local/state/vpump), or beside "
                            "--state FILE as FILE.keys.json (reused when it exists); the "
                            "'keys:' line says where")
    serve.add_argument("--seed", type=seed_arg, metavar="N",
                       help="seed the simulation's random numbers (0 to 4294967295); session "
                            "nonces still come from os.urandom (docs/threat-model.md)")
    serve.add_argument("--state", metavar="FILE",
                       help="keep the pump's non-volatile storage in FILE (created if missing; "
                            "every write fsync'd, the same two-slot atomic commit as a board's "
                            "flash): a restart resumes therapy, reservoir estimate, counters and "
                            "log, after the time it was off.  Without it the state is in memory "
                            "only and lost at exit")
    serve.add_argument("--baud", type=_baud, metavar="N",
                       help="emulate a UART of N baud (8N1: N/10 bytes/s) on what the pump "
                            "sends (300 to 4000000; default: as fast as the link)")
    serve.add_argument("--out", metavar="DIR", help="also write DIR/events.jsonl as it runs")
    serve.add_argument("--noise", metavar="SPEC",
                       help="a noisy link: comma-separated KEY=VALUE of drop_pct, corrupt_pct, "
                            "corrupt_bits, delay_ms, delay_pct, direction (both, to_pump, "
                            "from_pump) and seed, e.g. drop_pct=5,corrupt_pct=2,seed=7 "
                            "(percentages per chunk read or written; docs/programmer.md)")
    serve.add_argument("--capture", metavar="FILE",
                       help="write every frame in both directions to FILE as pcapng (link "
                            "type 147, link time, the pump's clock in each packet's comment) "
                            "for Wireshark: `vpump wireshark --install` adds the dissector "
                            "(docs/captures.md)")
    serve.add_argument("--io", metavar="URL",
                       help="drive the motor, battery and annunciator of a bench board over "
                            "this serial link (/dev/ttyACM0, /dev/pts/N from `python -m "
                            "sim.io_board`, socket://HOST:PORT; docs/bench-io.md) instead of "
                            "simulated ones")
    serve.add_argument("--control", action="store_true",
                       help="read back-channel requests on stdin (status, log [FROM], events "
                            "[FROM], stop) and answer each with one JSON line on stdout; stop "
                            "when stdin closes (for test fixtures: docs/testing-your-app.md)")
    return serve


def _control_reader(serve, stdin, stdout):
    # A daemon thread: lines from stdin go to the serve loop, which answers them in its own
    # thread (nothing here touches the pump).  End of input stops the pump.
    def reply(answer):
        stdout.write(json.dumps(answer, separators=(",", ":"), default=str) + "\n")
        stdout.flush()

    def read():
        for line in stdin:
            if line.strip():
                serve.requests.put((line, reply))
        serve.stop()
    thread = threading.Thread(target=read, name="serve-control", daemon=True)
    thread.start()
    return thread


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


def state_folder():
    """Where vpump keeps what it generates for a user: $XDG_STATE_HOME/vpump, else
    ~/.local/state/vpump (the XDG base directory default)."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local",
                                                            "state")
    return os.path.join(base, "vpump")


def new_key_path(serial, state_file=None):
    """The file generated keys go to: beside --state FILE, or in the state folder by serial."""
    if state_file:
        return state_file + ".keys.json"
    return os.path.join(state_folder(), "keys-%s.json" % serial)


def write_new_keys(serial, path):
    """Generate keys for `serial` and write them to a new file `path` (mode 0600, never over an
    existing file).  Returns the keys; ServeError when the file cannot be written."""
    from protocol.keygen import format_keys, generate_keys
    keys = generate_keys(os.urandom, serial)
    folder = os.path.dirname(path) or "."
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        if path.endswith(".keys.json") and not os.path.basename(path).startswith("keys-"):
            raise ServeError("--state %s: cannot write its keys beside it (%s): %s; give a "
                             "file in a folder you can write" % (path[:-len(".keys.json")], path,
                                                                  exc.strerror or exc)) from None
        raise ServeError("cannot write new keys to %s: %s (give --keys FILE, or set "
                         "XDG_STATE_HOME to a folder you can write)"
                         % (path, exc.strerror or exc)) from None
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(format_keys(keys))
    return keys


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


def _open_out(directory):
    from sim.runner import OutputFiles
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise ServeError("--out %s: is a file, not a folder; give a folder to write "
                         "events.jsonl into" % directory)
    try:
        return OutputFiles(directory)
    except OSError as exc:
        raise ServeError("--out %s: cannot write there: %s" % (directory, exc.strerror or exc)) \
            from None


def _link_error(option, spec, exc):
    text = str(exc)
    if text.startswith("no such device"):
        # hal's wording is for a programmer looking for a served pump; serve opens its own end.
        if option == "--link":
            text = ("no such serial device; give pty, loop, socket://HOST:PORT (port 0: a free "
                    "one), or the path or pyserial URL of a serial port that exists")
        else:
            text = ("no such serial device; give the bench board's port (/dev/ttyACM0, "
                    "/dev/ttyUSB0), or the /dev/pts/N or socket://HOST:PORT that `python -m "
                    "sim.io_board` printed")
    return ServeError("%s %s: %s" % (option, spec, text))


def _advertise(link_url, key_path, config, speed):
    """A note in the state folder while this serve runs (served/PID.json), so `vpump prog
    --list` can show the pump and where its keys are; returns its path (None: not written)."""
    import datetime
    import json
    folder = os.path.join(state_folder(), "served")
    path = os.path.join(folder, "%d.json" % os.getpid())
    note = {"link": link_url, "keys": os.path.abspath(key_path), "pid": os.getpid(),
            "scenario": config["name"] if config else None, "speed": speed,
            "started": datetime.datetime.now(datetime.timezone.utc).strftime(
                "%Y-%m-%d %H:%M UTC")}
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            json.dump(note, f)
    except OSError:
        return None         # a courtesy: the pump serves without it
    return path


def _state_line(serve):
    if serve.state is None:
        return "in memory only (lost at exit; --state FILE keeps it)"
    pump = serve.pump
    if serve.resumed:
        return "%s (resumed: boot %d, therapy %s)" % (serve.state, pump.boot_count, pump.state())
    return "%s (new)" % serve.state


def _keys_for(args):
    """(keys, path, made): the --keys file's, the ones kept beside --state, or new ones (made:
    the file is new and goes if the start fails)."""
    if args.keys:
        return load_key_file(args.keys), args.keys, False
    state_file = getattr(args, "state", None)
    if state_file and os.path.exists(new_key_path(None, state_file)):
        path = new_key_path(None, state_file)
        return load_key_file(path), path, False
    serial = "VP-%06d" % (int.from_bytes(os.urandom(3), "big") % 1000000)
    path = new_key_path(serial, state_file)
    return write_new_keys(serial, path), path, True


def run(args, stdout, stderr):
    from sim import scenario as scenario_module
    from sim.links import open_link
    from sim.serve import Serve

    config = None
    if args.scenario:
        config = scenario_module.load(scenario_module.find(args.scenario))
    noise = noise_seed = None
    if args.noise:
        noise, noise_seed = parse_noise(args.noise)
    if args.io and config is not None and (config.get("models") or config.get("faults")):
        raise ServeError("--io %s: scenario %s has [models] or [[faults]], which act on "
                         "simulated parts; serve it without --io, or drop those tables"
                         % (args.io, config["name"]))
    # Everything that can fail at the start is opened before keys are made, and what was opened
    # is closed again on the way out of a failed start (the new key file removed).
    opened = []
    key_path, made = None, False
    try:
        files = sink = None
        if args.out:
            files = _open_out(args.out)
            opened.append(files)
            sink = files.event
        board = None
        if args.io:
            from hal.serial_io import SerialIOBoard
            try:
                board = SerialIOBoard(args.io)
            except (HalError, OSError) as exc:
                raise _link_error("--io", args.io, exc) from None
            opened.append(board)
        try:
            link = open_link(args.link)
        except (HalError, OSError) as exc:
            raise _link_error("--link", args.link, exc) from None
        opened.append(link)
        if args.baud:
            from sim.links import RateLimited
            link = RateLimited(link, args.baud / 10.0)
        capture = None
        if args.capture:
            from sim.capture import Capture, CaptureError
            try:
                capture = Capture(args.capture, "pump", interface="vpump serve %s" % link.url,
                                  baud=getattr(link, "baud", None))
            except CaptureError as exc:
                raise ServeError(str(exc)) from None
            opened.append(capture)
        keys, key_path, made = _keys_for(args)
        try:
            serve = Serve(config, link, keys, speed=args.speed, seed=args.seed, sink=sink,
                          board=board, noise=noise, noise_seed=noise_seed or 0,
                          capture=capture, control=args.control, state=args.state)
        except StateFileError as exc:
            raise ServeError(str(exc)) from None
    except BaseException:
        for thing in reversed(opened):
            try:
                thing.close()
            except Exception:       # already failing: the first error is the one to report
                pass
        if made:
            os.remove(key_path)
        raise
    note = None
    try:
        # Handlers first: a script may stop the pump as soon as it has read the first lines.
        previous = {}
        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                previous[signum] = signal.signal(signum, lambda *_: serve.stop())
            except ValueError:      # not the main thread (a test): stop() is called directly
                pass
        if made:
            # stdout's first lines stay PATH-only for scripts; the person is told on stderr.
            stderr.write("vpump serve: new keys for pump %s in %s (kept: give --keys %s to "
                         "serve the same keys again, or --key-file to vpump prog)\n"
                         % (keys["serial"], key_path, key_path))
            stderr.flush()
        stdout.write("link: %s\nkeys: %s\n" % (link.url, key_path))
        if args.link != "loop":
            note = _advertise(link.url, key_path, config, args.speed)
        if board is not None:
            stdout.write("io: %s at %s\n" % (board.identity["name"], board.url))
        stdout.write("state: %s\n" % _state_line(serve))
        stdout.flush()
        if args.control:
            _control_reader(serve, sys.stdin, stdout)
        try:
            serve.run()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        status = serve.pump.status()
        kept = ("state committed to %s" % args.state if args.state
                else "state was in memory only and is gone (--state FILE keeps it)")
        stdout.write("stopped: %d frames answered; therapy %s, reservoir %.1f mL; %s; keys in "
                     "%s\n" % (serve.frames, status["therapy"], status["reservoir_nl"] / 1e6,
                              kept, key_path))
        if serve.noise is not None:
            done = {}
            for counts in serve.noise.counts.values():
                for action in ("dropped", "corrupted", "delayed"):
                    done[action] = done.get(action, 0) + counts[action]
            stdout.write("noise: %d chunks dropped, %d corrupted, %d delayed\n"
                         % (done["dropped"], done["corrupted"], done["delayed"]))
        if capture is not None:
            stdout.write("capture: %d packets in %s\n" % (capture.packets, capture.path))
    finally:
        if note is not None:
            try:
                os.remove(note)
            except OSError:
                pass
        if files is not None:
            files.close()
        if board is not None:
            board.close()
    return 0
