"""`vpump prog`: the handheld programmer on the command line (protocol/client.py underneath).

    vpump prog URL COMMAND [ARGS] [--role clinician|patient] [--key-file F] [--json] [--spy]
                    [--capture FILE]
    vpump prog URL                  an interactive programmer shell
    vpump prog --list               the serial ports and served pumps this machine has

URL defaults to $VPUMP_URL and --key-file to $VPUMP_KEY_FILE, so neither has to be pasted into
every command.

URL is what `vpump serve` printed on its `link:` line (a pty path, socket://HOST:PORT) or any
serial device / pyserial URL.  Units on the command line are a person's (mL, minutes, ug,
ug/day, an ISO date); they are converted to the pump's (nL, ms) here.  Exit status: 0 done,
1 the link failed or the pump did not answer, 2 bad input or a request the pump refused (the
message says why in words, with the field and its allowed range).  docs/programmer.md is the
user's guide.

The package:
    tools/prog/__init__.py   this command: its parser and one command's run
    tools/prog/actions.py    the action table: arguments, what each asks the pump, its result
    tools/prog/units.py      argument types (a person's units to the pump's), flex schedules
    tools/prog/render.py     results and errors as text or JSON, exit statuses
    tools/prog/shell.py      the interactive shell
    tools/prog/listing.py    --list: the serial ports and served pumps within reach
"""

import argparse
import json
import os
import sys

from protocol.client_errors import ProgrammerError
from sim.errors import SimError
from tools.prog import render
from tools.prog.actions import BY_NAME, ProgUsage, Session, add_actions, prepare, run_action
from tools.prog.render import error_json, error_line, exit_status, jsonable


# ------------------------------------------------------------------------------ the parser

def _add_common(parser, suppress):
    # The same options before and after COMMAND: the action parsers' copies default to
    # SUPPRESS so they do not overwrite a value given before the command.
    def default(value):
        return argparse.SUPPRESS if suppress else value
    group = parser.add_argument_group("programmer options")
    group.add_argument("--role", choices=("clinician", "patient"), default=default("clinician"),
                       help="whose key to use: clinician (every command, the default) or "
                            "patient (status, patient-bolus, silence)")
    group.add_argument("--key-file", metavar="FILE", default=default(None),
                       help="the key file `vpump serve` wrote (its `keys:` line); needed for "
                            "every command but identify (default: $VPUMP_KEY_FILE)")
    group.add_argument("--json", action="store_true", default=default(False),
                       help="machine-readable output: one JSON object per command")
    group.add_argument("--spy", action="store_true", default=default(False),
                       help="print every frame sent and received, decoded, on stderr")
    group.add_argument("--capture", metavar="FILE", default=default(None),
                       help="write every frame sent and received to FILE as pcapng, for "
                            "Wireshark (docs/captures.md)")
    group.add_argument("--timeout", type=_timeout, default=default(1.0), metavar="S",
                       help="the longest wait for an answer before resending, in seconds "
                            "(default 1): resends follow the link's measured round trip (4 "
                            "round trips, at least 0.05 s), as many as fit in 4 x S, then a "
                            "link failure")


def _timeout(text):
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not 0.01 <= value <= 600:
        raise argparse.ArgumentTypeError("got %s, must be a number of seconds from 0.01 to 600"
                                         % text)
    return value


def add_parser(commands):
    """Add `prog` to the vpump command parser (tools/cli.py)."""
    prog = commands.add_parser(
        "prog", help="a handheld programmer: talk to a pump that `vpump serve` runs",
        description="Talk to a pump over its link: URL is the `link:` line `vpump serve` "
                    "printed (a pty path, socket://HOST:PORT) or a serial device.  With a "
                    "COMMAND, run it and exit; without one, an interactive programmer shell.  "
                    "Exit status: 0 done, 1 link failure or no answer, 2 bad input or a request "
                    "the pump refused.",
        epilog="Environment: VPUMP_URL is the URL and VPUMP_KEY_FILE the key file when "
               "they are not given.  Units: mL, minutes, ug, ug/day, ug/mL; times in UTC.  See "
               "docs/programmer.md.")
    prog.add_argument("url", metavar="URL",
                      help="the pump's link: /dev/pts/N, socket://HOST:PORT, a serial port or "
                           "pyserial URL (default: $VPUMP_URL)")
    prog.add_argument("--list", action="store_true",
                      help="list the serial ports (pyserial's list_ports) and the pumps `vpump "
                           "serve` runs on this machine, then exit")
    _add_common(prog, False)
    actions = prog.add_subparsers(dest="action", metavar="COMMAND", parser_class=type(prog),
                                  title="commands (none: the interactive shell)")
    actions.required = False
    add_actions(actions, lambda parser: _add_common(parser, True))
    return prog


# ------------------------------------------------------------------------------ running

def default_url(argv, parser):
    """argv (after `prog`) with the URL filled in when it was left out: $VPUMP_URL, or "" for
    _defaults to report.  Left out means the first word that is not an option is a command, or
    there is none (the shell, --list).  argparse alone cannot tell an optional URL from the
    command that may follow it."""
    argv = list(argv)
    takes_value = set(option for action in parser._actions for option in action.option_strings
                      if action.nargs is None and action.option_strings and
                      not isinstance(action, (argparse._StoreTrueAction,
                                              argparse._StoreFalseAction)))
    i = 0
    while i < len(argv):
        word = argv[i]
        if word == "--":
            i += 1
            break
        if word.startswith("-") and word != "-":
            i += 1 if "=" in word or word not in takes_value else 2
            continue
        break
    first = argv[i] if i < len(argv) else None
    if first is None or first in BY_NAME:
        argv.insert(0, os.environ.get("VPUMP_URL", ""))
    return argv


def _defaults(args):
    # URL and key file from the environment when not given (as mpremote and python-can do).
    if not args.url:
        args.url = os.environ.get("VPUMP_URL") or None
    if not args.key_file:
        args.key_file = os.environ.get("VPUMP_KEY_FILE") or None
    if not args.url:
        raise ProgUsage("URL: give the pump's link (the `link:` line of `vpump serve`: "
                        "/dev/pts/N, socket://HOST:PORT, a serial port), or set VPUMP_URL; "
                        "vpump prog --list shows what this machine has")
    if args.url.lower().startswith("socket://"):
        from hal.errors import HalError
        from sim.links import parse_socket_url
        try:
            parse_socket_url(args.url)
        except HalError:
            raise ProgUsage("URL %s: expected socket://HOST:PORT with PORT 0 to 65535, e.g. "
                            "socket://127.0.0.1:5000 (the `link:` line of `vpump serve`)"
                            % args.url) from None


def run(args, stdout, stderr, stdin=None):
    """`vpump prog`: one command, or the shell when none is given.  Returns the exit status."""
    if args.list:
        from tools.prog.listing import run_list
        return run_list(args, stdout, stderr)
    try:
        _defaults(args)
    except ProgUsage as exc:
        name = args.action or "prog"
        if args.json:
            stdout.write(json.dumps(error_json(name, exc)) + "\n")
        stderr.write("vpump prog: %s\n" % exc)
        return 2
    if args.action is None:
        from tools.prog.shell import run_shell
        return run_shell(args, stdout, stderr, stdin or sys.stdin)
    action = BY_NAME[args.action]
    try:
        prepare(action, args)
        session = Session(args, stderr)
        try:
            with session.open() as prog:
                result = run_action(prog, action, args)
        finally:
            session.close()
    except (ProgrammerError, ProgUsage, SimError) as exc:
        if args.json:
            stdout.write(json.dumps(error_json(action.name, exc)) + "\n")
        stderr.write(error_line(action.name, exc, args.role) + "\n")
        return exit_status(exc)
    if args.json:
        stdout.write(json.dumps({"command": action.name, "ok": True,
                                 "result": jsonable(result)}) + "\n")
    else:
        stdout.write("\n".join(render.text(action, result, args)) + "\n")
    return 0
