"""`vpump prog URL` without a command: the interactive programmer shell (every command, one per
line, and the pump's status line after each command).

On a terminal prompt_toolkit reads the lines: editing, history (~/.vpump_history) and completion
of commands and their options; Ctrl-C cancels the line being typed, Ctrl-D or quit leaves.  Lines
piped in are read plainly and echoed after the prompt, so a transcript reads like a session.
With --json stdout carries only the commands' JSON objects (the banner goes to stderr, nothing
is echoed).  The shell's exit status is 0 when every command worked, 2 when one was refused or
mistyped, 1 when the link failed.
"""

import argparse
import cmd
import json
import os
import shlex
import sys

from protocol.client_errors import LinkFailure, ProgrammerError
from sim.errors import SimError
from tools.prog import render
from tools.prog.actions import (ACTION_NAMES, ACTIONS, BY_NAME, ProgUsage, Session, add_actions,
                                prepare, run_action, status_fields)
from tools.prog.render import error_json, error_line, exit_status, jsonable, status_line

HISTORY_FILE = os.path.join(os.path.expanduser("~"), ".vpump_history")


class _ShellParserError(Exception):
    pass


class _ShellParser(argparse.ArgumentParser):
    # Errors become exceptions (the shell carries on); --help prints and raises SystemExit(0).
    def error(self, message):
        raise _ShellParserError("%s: %s" % (self.prog, message))


def _shell_parsers():
    root = _ShellParser(prog="", add_help=False)
    subs = root.add_subparsers(dest="action", parser_class=_ShellParser)
    add_actions(subs, None)
    return subs.choices


class Shell(cmd.Cmd):
    """The interactive programmer: every `vpump prog` command, one per line."""

    identchars = cmd.Cmd.identchars + "-"
    doc_header = "commands (help COMMAND for its options)"

    def __init__(self, prog, args, stdin, stdout, stderr, interactive):
        cmd.Cmd.__init__(self, stdin=stdin, stdout=stdout)
        self.prog = prog
        self.args = args
        self.stderr = stderr
        self.interactive = interactive
        self.use_rawinput = interactive
        self.prompt = "vpump> " if interactive else ""
        self.parsers = _shell_parsers()
        self.failures = 0
        self.link_failed = False

    @property
    def patient(self):
        return getattr(self.args, "role", "clinician") == "patient"

    def status(self):
        """The shell's exit status: 1 a link failure, 2 a refusal or mistake, else 0."""
        return 1 if self.link_failed else 2 if self.failures else 0

    # -- cmd.Cmd plumbing

    def emptyline(self):
        return False

    def precmd(self, line):
        # A piped line is echoed after the prompt (a transcript), but never into --json's
        # stream, and the end of input is not a command anyone typed.
        if not self.interactive and not self.args.json and line != "EOF":
            self.stdout.write("vpump> %s\n" % line.rstrip("\n"))
        return line

    # Completions end with a space, as a finished word does (readline adds none itself).

    def completenames(self, text, *ignored):
        names = ACTION_NAMES + ["resend", "help", "quit", "exit"]
        return [n + " " for n in names if n.startswith(text)]

    def completedefault(self, text, line, begidx, endidx):
        name = line.split()[0] if line.split() else ""
        parser = self.parsers.get(name)
        if parser is None:
            return []
        options = [o for a in parser._actions for o in a.option_strings]
        return [o + " " for o in options if o.startswith(text)]

    def complete_help(self, text, *ignored):
        return [n + " " for n in ACTION_NAMES if n.startswith(text)]

    def do_help(self, arg):
        """help [COMMAND]: the commands, or one command's options."""
        arg = arg.strip()
        if arg in self.parsers:
            self.stdout.write(self.parsers[arg].format_help())
            return False
        if arg:
            self.stdout.write("no command %s; commands: %s\n" % (arg, ", ".join(ACTION_NAMES)))
            return False
        # The commands this role may use: a patient's remote offers only the patient's.
        usable = [a for a in ACTIONS if a.patient or not self.patient]
        width = max(len(a.name) for a in usable)
        self.stdout.write("commands (help COMMAND for its options):\n")
        for action in usable:
            self.stdout.write("  %-*s  %s\n" % (width, action.name, action.help))
        self.stdout.write("  %-*s  %s\n" % (width, "resend", "after \"outcome unknown\": send "
                                                           "that same request again (never done twice)"))
        self.stdout.write("  %-*s  %s\n" % (width, "quit", "leave (also exit, or Ctrl-D)"))
        if self.patient:
            self.stdout.write("(the other commands need the clinician role: --role clinician)\n")
        return False

    def do_resend(self, arg):
        """resend: after "outcome unknown", send that very request again; the pump answers from
        its memory if it already did it (it is not done twice), or does it now."""
        name = self.prog.outcome_unknown or "resend"
        try:
            result = self.prog.resend()
        except ProgrammerError as exc:
            self.failures += 1
            if self.args.json:
                self.stdout.write(json.dumps(error_json(name, exc)) + "\n")
            self._error(error_line(name, exc, self.args.role))
            return False
        if self.args.json:
            self.stdout.write(json.dumps({"command": name, "ok": True,
                                          "result": jsonable(result)}) + "\n")
        else:
            self.stdout.write("%s: the pump's answer: %s\n" % (name, json.dumps(jsonable(result))))
        self._status_line()
        return False

    def do_quit(self, arg):
        """quit: leave the programmer."""
        return True

    do_exit = do_quit

    def do_EOF(self, arg):
        if self.interactive:
            self.stdout.write("\n")
        return True

    def default(self, line):
        try:
            words = shlex.split(line)
        except ValueError as exc:
            self._error("vpump prog: cannot read %r: %s" % (line, exc))
            self.failures += 1
            return False
        name = words[0]
        parser = self.parsers.get(name)
        if parser is None:
            import difflib
            close = difflib.get_close_matches(name, ACTION_NAMES, n=1)
            self._error("vpump prog: unknown command %s;%s type help for the list"
                        % (name, " did you mean %s?" % close[0] if close else ""))
            self.failures += 1
            return False
        try:
            args = parser.parse_args(words[1:])
        except _ShellParserError as exc:
            self._error("vpump prog: %s" % str(exc).strip())
            self.failures += 1
            return False
        except SystemExit:          # --help printed its text
            return False
        for key in ("role", "key_file", "json", "spy", "timeout", "url"):
            setattr(args, key, getattr(self.args, key))
        self._run(BY_NAME[name], args)
        return False

    def _run(self, action, args):
        try:
            prepare(action, args)
            result = run_action(self.prog, action, args)
        except (ProgrammerError, ProgUsage, SimError) as exc:
            self.failures += 1
            if self.args.json:
                self.stdout.write(json.dumps(error_json(action.name, exc)) + "\n")
            self._error(error_line(action.name, exc, self.args.role))
            if isinstance(exc, LinkFailure):
                self.link_failed = True
                return
        else:
            if self.args.json:
                self.stdout.write(json.dumps({"command": action.name, "ok": True,
                                              "result": jsonable(result)}) + "\n")
            else:
                self.stdout.write("\n".join(render.text(action, result, args)) + "\n")
        self._status_line()

    def _error(self, text):
        # Errors go to stderr; stdout first, so a terminal shows them in order.
        self.stdout.flush()
        self.stderr.write(text + "\n")
        self.stderr.flush()

    def _status_line(self):
        if not self.prog.key or self.args.json:
            return
        try:
            fields = status_fields(self.prog.interrogate())
        except ProgrammerError as exc:
            self.stdout.write("[status unavailable: %s]\n" % exc)
            return
        self.stdout.write(status_line(fields) + "\n")

    def postcmd(self, stop, line):
        self.stdout.flush()
        return stop


class _Completer:
    """prompt_toolkit completion: command names first, then the command's options."""

    def __init__(self, shell):
        self.shell = shell

    def build(self):
        from prompt_toolkit.completion import Completer, Completion
        shell = self.shell

        class _C(Completer):
            def get_completions(self, document, complete_event):
                text = document.text_before_cursor
                word = document.get_word_before_cursor(WORD=True)
                if " " not in text.lstrip():
                    names = shell.completenames(word)
                elif text.split()[0] == "help":
                    names = shell.complete_help(word)
                else:
                    names = shell.completedefault(word, text, 0, 0)
                for name in names:
                    yield Completion(name.rstrip(), start_position=-len(word))
        return _C()


def _line_reader(shell, stdin, interactive):
    """A function returning the next line ("EOF" at the end; KeyboardInterrupt on Ctrl-C)."""
    if interactive:
        try:
            from prompt_toolkit import PromptSession
            from prompt_toolkit.history import FileHistory
        except ImportError:         # without it: plain input(), still a working shell
            PromptSession = None
        if PromptSession is not None:
            try:
                history = FileHistory(HISTORY_FILE)
            except OSError:
                history = None
            session = PromptSession(history=history, completer=_Completer(shell).build(),
                                    complete_while_typing=False)

            def read():
                try:
                    return session.prompt("vpump> ")
                except EOFError:
                    return "EOF"
            return read

        def read_plain():
            try:
                return input("vpump> ")
            except EOFError:
                return "EOF"
        return read_plain

    def read_piped():
        line = stdin.readline()
        return line.rstrip("\r\n") if line else "EOF"
    return read_piped


def _loop(shell, read):
    while True:
        try:
            line = read()
        except KeyboardInterrupt:
            # Ctrl-C cancels the line being typed, as in any shell; Ctrl-D or quit leaves.
            shell.stdout.write("^C\n" if not shell.interactive else "")
            continue
        line = shell.precmd(line)
        try:
            stop = shell.onecmd(line)
        except KeyboardInterrupt:
            shell._error("vpump prog: interrupted (the pump may still have got the command: "
                         "check with status)")
            shell.failures += 1
            stop = False
        stop = shell.postcmd(stop, line)
        if stop:
            return


def run_shell(args, stdout, stderr, stdin):
    interactive = hasattr(stdin, "isatty") and stdin.isatty() and stdin is sys.stdin
    try:
        session = Session(args, stderr)
        prog = session.open()
    except (ProgrammerError, SimError) as exc:
        stderr.write("vpump prog: %s\n" % exc)
        return exit_status(exc)
    try:
        return _shell_loop(prog, args, stdout, stderr, stdin, interactive)
    finally:
        session.close()


def _shell_loop(prog, args, stdout, stderr, stdin, interactive):
    # With --json, stdout is the commands' JSON only: the banner and notes go to stderr.
    notes = stderr if args.json else stdout
    with prog:
        try:
            ident = prog.identify()
            if prog.key:
                prog.open_session()
        except ProgrammerError as exc:
            stderr.write(error_line("connect", exc, args.role) + "\n")
            return exit_status(exc)
        notes.write("vpump programmer: %s as %s. Type help for the commands, quit to leave.\n"
                    % (render.text(BY_NAME["identify"], ident, args)[0], args.role))
        if not prog.key:
            notes.write("no --key-file: only identify works; every other command needs the "
                        "key file `vpump serve` wrote\n")
        notes.flush()
        shell = Shell(prog, args, stdin, stdout, stderr, interactive)
        if prog.key and not args.json:
            shell._status_line()
        _loop(shell, _line_reader(shell, stdin, interactive))
    return shell.status()
