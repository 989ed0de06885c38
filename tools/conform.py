"""`vpump conform URL --key-file F [--junit FILE] [--json]`: protocol conformance checks.

Runs docs/protocol.md's rules against any pump on a link (a served pump, a flashed board, your
own implementation): framing and CRC, every command, every NAK code with its field and range,
the session handshake, replay, reorder and role refusals, the cached answer for a resent frame,
the inter-byte timeout and the answer latency.  Prints one line per check; --junit writes JUnit
XML (testsuite / testcase / failure / skipped, as CI servers read it); --json prints the
results as JSON.  Exit status 0 when no check failed (skipped ones say why), 1 when one did,
2 for bad input.

    results = run_checks(link, keys)     # [{"name", "group", "status", "message", "seconds"}]
"""

import json
import time
from xml.etree import ElementTree

from protocol import frame, reasons
from sim.errors import SimError
from tools.argtypes import whole_number
from tools import conform_checks as K
from tools.conform_commands import COMMAND_CHECKS, nak_no_program, restore
from tools.conform_wire import Wire

CHECKS = [
    ("framing.worked_example", K.worked_example, ()),
    ("framing.bad_crc", K.bad_crc, (reasons.BAD_CRC,)),
    ("framing.resync_after_garbage", K.resync, ()),
    ("framing.length_out_of_range", K.length_out_of_range, ()),
    ("framing.two_frames_in_one_write", K.two_frames, ()),
    ("framing.bad_version", K.bad_version, (reasons.BAD_VERSION,)),
    ("framing.unknown_command", K.unknown_command, (reasons.UNKNOWN_COMMAND,)),
    ("framing.bad_length", K.bad_length, (reasons.BAD_LENGTH,)),
    ("framing.inter_byte_timeout", K.inter_byte_timeout, ()),
    ("timing.answer_latency", K.latency, ()),
    ("session.handshake", K.handshake, ()),
    ("session.auth_resend_cached", K.auth_resend, ()),
    ("nak.no_program", nak_no_program, (reasons.NO_PROGRAM,)),
    ("session.wrong_proof", K.wrong_proof, (reasons.BAD_MAC,)),
    ("session.unknown_session_id", K.unknown_session_id, (reasons.NOT_AUTHENTICATED,)),
    ("session.bad_mac", K.bad_mac, (reasons.BAD_MAC,)),
    ("session.replay", K.replay, (reasons.REPLAY,)),
    ("session.reorder", K.reorder, (reasons.REPLAY,)),
    ("session.cached_answer", K.cached_answer, ()),
] + COMMAND_CHECKS + [
    ("session.busy", K.busy, (reasons.BUSY,)),
    ("session.role_not_allowed", K.role_not_allowed, (reasons.ROLE_NOT_ALLOWED,)),
    ("session.close", K.close, (reasons.NOT_AUTHENTICATED,)),
]

NAMES = [name for name, _, _ in CHECKS]


class ConformError(SimError):
    """Bad input to vpump conform (exit 2)."""


def run_checks(link, keys, only=None, gap_ms=100, latency_ms=100, timeout_s=1.0,
               clock=time.monotonic, progress=None):
    """Every check (or those named in only) against the pump on link; a list of results."""
    ctx = K.Context(Wire(link, timeout_s=timeout_s, clock=clock), keys, gap_ms=gap_ms,
                    latency_ms=latency_ms)
    ctx.naks = {}
    ctx.identity = None
    results = []
    for name, check, codes in CHECKS:
        if only and name not in only:
            continue
        started = time.monotonic()
        try:
            message = check(ctx)
            status = "pass"
        except K.Failed as exc:
            status, message = "fail", str(exc)
        except K.Skipped as exc:
            status, message = "skip", str(exc)
        except Exception as exc:        # a link that died, an answer nobody expected
            status, message = "fail", "%s: %s" % (type(exc).__name__, exc)
        result = {"name": name, "group": name.split(".")[0], "status": status,
                  "message": message or "", "seconds": round(time.monotonic() - started, 3),
                  "reasons": [reasons.name(c) for c in codes]}
        results.append(result)
        if progress is not None:
            progress(result)
        if status == "fail":
            # Whatever the failure left in flight, and a partial frame the pump may still hold
            # (1,040 zero bytes complete any frame; none of them starts one): the next check
            # starts on a clean link, so one fault is reported once.
            ctx.wire.send(bytes(frame.MAX_PAYLOAD + 16))
            ctx.wire.drain(0.3)
    leftovers = restore(ctx)
    if ctx.session is not None and ctx.session.session_key is not None:
        try:
            ctx.session.close()
        except Exception:
            pass
    return {"pump": ctx.identity, "results": results, "not_restored": leftovers}


def nak_coverage(results):
    """reason name -> the check that showed it (or why it was skipped), for every NAK code."""
    out = {}
    for code, name in sorted(reasons.TEXT.items()):
        if code == reasons.OK:
            continue
        shown = [r for r in results if name in r["reasons"]]
        passed = [r["name"] for r in shown if r["status"] == "pass"]
        out[name] = passed[0] if passed else (shown[0]["status"] + ": " + shown[0]["name"]
                                              if shown else "not checked")
    return out


def junit_xml(report, suite="vpump conform"):
    """The results as JUnit XML (one testsuite; testcase classname vpump.conform.GROUP)."""
    results = report["results"]
    failures = sum(1 for r in results if r["status"] == "fail")
    skipped = sum(1 for r in results if r["status"] == "skip")
    total_s = sum(r["seconds"] for r in results)
    root = ElementTree.Element("testsuites", name=suite, tests=str(len(results)),
                               failures=str(failures), errors="0", skipped=str(skipped),
                               time="%.3f" % total_s)
    ts = ElementTree.SubElement(root, "testsuite", name=suite, tests=str(len(results)),
                                failures=str(failures), errors="0", skipped=str(skipped),
                                time="%.3f" % total_s)
    props = ElementTree.SubElement(ts, "properties")
    for key, value in sorted((report.get("pump") or {}).items()):
        ElementTree.SubElement(props, "property", name="pump.%s" % key, value=str(value))
    for r in results:
        case = ElementTree.SubElement(ts, "testcase", classname="vpump.conform." + r["group"],
                                      name=r["name"], time="%.3f" % r["seconds"])
        if r["status"] == "fail":
            failure = ElementTree.SubElement(case, "failure", message=r["message"][:200],
                                             type="ConformanceFailure")
            failure.text = r["message"]
        elif r["status"] == "skip":
            ElementTree.SubElement(case, "skipped", message=r["message"])
        else:
            out = ElementTree.SubElement(case, "system-out")
            out.text = r["message"]
    return ElementTree.tostring(root, encoding="unicode")


def add_parser(commands):
    p = commands.add_parser(
        "conform", help="check that a pump speaks docs/protocol.md (JUnit XML for CI)",
        description="Run the protocol's conformance checks against the pump at URL: framing "
                    "and CRC, every command, every NAK code with its field and range, the "
                    "session handshake, replay, reorder and role refusals, the cached answer "
                    "for a resent frame, the inter-byte timeout and the answer latency.  It "
                    "changes the pump's settings and puts them back (docs/bench-testing.md): "
                    "use a bench pump.  Exit 0 when no check failed, 1 when one did.")
    p.add_argument("url", metavar="URL", help="the pump's link: a serial device, a pty path or "
                                              "socket://HOST:PORT")
    p.add_argument("--key-file", required=True, metavar="FILE",
                   help="the pump's key file (clinician and patient keys)")
    p.add_argument("--junit", metavar="FILE", help="also write the results as JUnit XML")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("--only", metavar="NAME[,NAME]", help="run only these checks (names as "
                   "listed by --list)")
    p.add_argument("--list", action="store_true", help="list the checks and exit")
    p.add_argument("--gap-ms", type=whole_number(1, 10000), default=100, metavar="MS",
                   help="the link's inter-byte timeout (docs/protocol.md: 100 on a socket or "
                        "pty; at 115200 baud 5); the check waits three times this (default 100)")
    p.add_argument("--latency-ms", type=whole_number(1, 60000), default=100, metavar="MS",
                   help="the median answer time allowed (default 100: docs/protocol.md)")
    return p


def run(args, stdout, stderr):
    if args.list:
        for name, check, _ in CHECKS:
            stdout.write("%s\n" % name)
        return 0
    only = None
    if args.only:
        only = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in only if n not in NAMES]
        if unknown:
            raise ConformError("--only %s: unknown check %s; `vpump conform --list URL "
                               "--key-file F` lists them" % (args.only, ", ".join(unknown)))
    from protocol.client_errors import KeyFileError
    from protocol.client import load_key_file
    keys = {}
    try:
        keys["clinician"] = load_key_file(args.key_file, "clinician")
    except KeyFileError as exc:
        raise ConformError("--key-file %s" % exc) from None
    try:
        keys["patient"] = load_key_file(args.key_file, "patient")
    except KeyFileError:
        pass                        # the patient's checks are skipped, saying why
    from hal.errors import LinkError
    from hal.serial_link import SerialLink
    try:
        link = SerialLink(args.url)
    except LinkError as exc:
        stderr.write("vpump conform: cannot open %s: %s\n" % (args.url, exc))
        return 1

    def progress(r):
        if not args.json:
            stdout.write("%-34s %-4s  %s\n" % (r["name"], r["status"].upper(), r["message"]))
            stdout.flush()
    try:
        report = run_checks(link, keys, only=only, gap_ms=args.gap_ms,
                            latency_ms=args.latency_ms, progress=progress)
    finally:
        link.close()
    results = report["results"]
    counts = dict((s, sum(1 for r in results if r["status"] == s)) for s in ("pass", "fail",
                                                                             "skip"))
    report["url"] = args.url
    report["counts"] = counts
    report["naks"] = nak_coverage(results)
    if args.junit:
        try:
            with open(args.junit, "w", encoding="utf-8") as f:
                f.write('<?xml version="1.0" encoding="UTF-8"?>\n' + junit_xml(report) + "\n")
        except OSError as exc:
            stderr.write("vpump conform: --junit %s: cannot write: %s\n"
                         % (args.junit, exc.strerror or exc))
            return 1
    if args.json:
        stdout.write(json.dumps(report, indent=2, sort_keys=True, default=str) + "\n")
    else:
        for problem in report["not_restored"]:
            stdout.write("not restored: %s\n" % problem)
        stdout.write("%d checks passed, %d failed, %d skipped\n" % (counts["pass"], counts["fail"],
                                                            counts["skip"]))
    return 1 if counts["fail"] else 0
