"""`vpump fuzz URL --key-file F`: the command line of the protocol fuzzer (tools/fuzz.py holds the
fuzzer itself: its generators, oracles and reproducers)."""

import json
import os

from hal.errors import LinkError
from protocol.client_errors import ProgrammerError
from tools.argtypes import whole_number
from tools.fuzz import PROBE_S, Fuzzer, FuzzError, FuzzUsage

def add_parser(commands):
    fuzz = commands.add_parser(
        "fuzz", help="fuzz a pump's telemetry: crashes, hangs and unauthorised changes",
        description="Send seeded batches of frames to a pump (no session, patient and "
                    "clinician sessions with valid MACs, frames tampered after the MAC, "
                    "garbage and cut frames) and after each batch check that it still answers "
                    "within %g s, that the link lives, and through a trusted clinician session "
                    "that nothing changed that the batch had no right to change.  Each finding "
                    "is a reproducer file.  Exit 0: no finding; 1: findings (or the pump could "
                    "not be reached); 2: bad arguments." % PROBE_S)
    fuzz.add_argument("url", metavar="URL",
                      help="the pump's link: socket://HOST:PORT, a pty or serial device path")
    fuzz.add_argument("--key-file", required=True, metavar="F",
                      help="the pump's key file (both keys: the fuzzer opens patient and "
                           "clinician sessions, and a trusted clinician session as its oracle)")
    fuzz.add_argument("--frames", type=whole_number(1, 10 ** 9), default=10000,
                      metavar="N", help="frames to send (default 10000)")
    fuzz.add_argument("--seed", type=whole_number(0, 2 ** 32 - 1), metavar="S",
                      help="seed of every choice (default: a random one, printed)")
    fuzz.add_argument("--minutes", type=_minutes, metavar="M",
                      help="stop after M minutes even if --frames are not all sent")
    fuzz.add_argument("--probe-s", type=_seconds, default=PROBE_S, metavar="S",
                      help="liveness limit: the pump must answer a probe within S seconds "
                           "(default %g; give more for a slow link or a loaded host)" % PROBE_S)
    fuzz.add_argument("--findings", default="fuzz-findings", metavar="DIR",
                      help="folder for the reproducer files (default ./fuzz-findings)")
    fuzz.add_argument("--replay", metavar="FILE",
                      help="send a reproducer's frames again (a session's frames in a new "
                           "session, tampered the same way) and say whether its finding shows "
                           "again (exit 1) or not (exit 0)")
    fuzz.add_argument("--json", action="store_true", help="print the summary as JSON")
    return fuzz


def _seconds(text):
    import argparse
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not 0.1 <= value <= 600:
        raise argparse.ArgumentTypeError("got %s, must be a number of seconds from 0.1 to 600"
                                         % text)
    return value


def _minutes(text):
    import argparse
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not 0 < value <= 10080:
        raise argparse.ArgumentTypeError("got %s, must be a number of minutes from more than 0 "
                                         "to 10080 (a week)" % text)
    return value


def run(args, stdout, stderr):
    from protocol.keys import parse_keys
    try:
        with open(args.key_file, encoding="utf-8") as f:
            keys = parse_keys(f.read())
    except OSError as exc:
        raise FuzzUsage("--key-file %s: cannot read: %s" % (args.key_file,
                                                           exc.strerror or exc)) from None
    except ValueError as exc:
        raise FuzzUsage("--key-file %s: %s" % (args.key_file, exc)) from None
    record = None
    if args.replay:
        try:
            with open(args.replay, encoding="utf-8") as f:
                record = json.load(f)
            record["frames"], record["mode"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise FuzzUsage("--replay %s: not a vpump fuzz reproducer (%s)"
                            % (args.replay, exc)) from None
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "big")
    from hal.serial_link import SerialLink
    try:
        link = SerialLink(args.url)
    except LinkError as exc:
        stderr.write("vpump fuzz: %s\n" % exc)
        return 1
    try:
        fuzzer = Fuzzer(link, keys, seed, findings_dir=args.findings, probe_s=args.probe_s)
        if record is not None:
            try:
                outcome = fuzzer.replay(record)
            except (FuzzError, ProgrammerError) as exc:
                stderr.write("vpump fuzz: %s\n" % exc)
                return 1
            if args.json:
                stdout.write(json.dumps(outcome) + "\n")
            else:
                stdout.write("%s: %s\n" % (
                    args.replay, "reproduced: " + ("; ".join(outcome["changes"]) or
                                                   outcome.get("crash") or "a hang")
                    if outcome["reproduced"] else "not reproduced"))
            return 1 if outcome["reproduced"] else 0
        if not args.json:
            stderr.write("vpump fuzz: seed %d, %d frames against %s\n"
                         % (seed, args.frames, args.url))
        try:
            result = fuzzer.run(args.frames, args.minutes * 60 if args.minutes else None)
        except FuzzError as exc:
            stderr.write("vpump fuzz: %s\n" % exc)
            return 1
    finally:
        link.close()
    if args.json:
        stdout.write(json.dumps(result) + "\n")
    else:
        stdout.write("frames %d in %d batches, %.0f frames/s; crashes %d, hangs %d, "
                     "unauthorised changes %d; worst unresponsive %.2f s (seed %d)\n"
                     % (result["frames"], result["batches"], result["frames_per_s"],
                        result["crashes"], result["hangs"], result["unauthorised_changes"],
                        result["worst_unresponsive_s"], seed))
        for f in result["findings"]:
            stdout.write("  %s in batch %d (%s): %s%s\n" % (
                f["finding"], f["batch"], f["mode"], f["detail"],
                "; reproducer %s" % f["path"] if f["path"] else ""))
    return 1 if result["findings"] else 0
