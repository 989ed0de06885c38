"""`vpump prog`: the handheld programmer on the command line (protocol/client.py underneath).

    vpump prog URL COMMAND [ARGS] [--role clinician|patient] [--key-file F] [--json] [--spy]
                    [--capture FILE]
    vpump prog URL                  an interactive programmer shell

URL is what `vpump serve` printed on its `link:` line (a pty path, socket://HOST:PORT) or any
serial device / pyserial URL.  Units on the command line are a person's (mL, minutes, ug,
ug/day, an ISO date); they are converted to the pump's (nL, ms) here.  Exit status: 0 done,
1 the link failed or the pump did not answer, 2 bad input or a request the pump refused (the
message says why in words, with the field and its allowed range).  docs/programmer.md is the
user's guide.

The package:
    tools/prog/__init__.py   this command: its parser and one command's run
    tools/prog/actions.py    the action table: arguments, what each asks the pump, its result
    tools/prog/render.py     results and errors as text or JSON, exit statuses
    tools/prog/shell.py      the interactive shell
"""

import argparse
import json
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
                            "every command but identify")
    group.add_argument("--json", action="store_true", default=default(False),
                       help="machine-readable output: one JSON object per command")
    group.add_argument("--spy", action="store_true", default=default(False),
                       help="print every frame sent and received, decoded, on stderr")
    group.add_argument("--capture", metavar="FILE", default=default(None),
                       help="write every frame sent and received to FILE as pcapng, for "
                            "Wireshark (docs/captures.md)")
    group.add_argument("--timeout", type=_timeout, default=default(1.0), metavar="S",
                       help="seconds to wait for each answer before resending (default 1; "
                            "3 resends, then a link failure)")


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
        epilog="Units: mL, minutes, ug, ug/day, ug/mL; times in UTC.  See docs/programmer.md.")
    prog.add_argument("url", metavar="URL", help="the pump's link: /dev/pts/N, socket://HOST:PORT, "
                                                  "a serial port or pyserial URL")
    _add_common(prog, False)
    actions = prog.add_subparsers(dest="action", metavar="COMMAND", parser_class=type(prog),
                                  title="commands (none: the interactive shell)")
    actions.required = False
    add_actions(actions, lambda parser: _add_common(parser, True))
    return prog


# ------------------------------------------------------------------------------ running

def run(args, stdout, stderr, stdin=None):
    """`vpump prog`: one command, or the shell when none is given.  Returns the exit status."""
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
