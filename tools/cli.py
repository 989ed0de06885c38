"""vpump: the virtual implantable drug pump's command line.

main(argv=None) is the whole program, so tests call it in-process.  Exit status: 0 done,
1 runtime failure, 2 bad input (one line naming the field, the value and what is allowed;
never a usage block or a traceback for a user's mistake).
"""

import argparse
import contextlib
import json
import os
import sys

from sim.errors import SimError
from tools.argtypes import whole_number


class UsageError(Exception):
    """Bad input from the user: exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        # One line, as every other mistake is reported: "vpump run: argument --days: got 0,
        # must be ...", and where to read more.  --help still prints the usage.
        commands = getattr(self, "commands", None)
        if commands and "required: COMMAND" in message:
            message = "give a COMMAND: %s" % ", ".join(commands)
        sys.stderr.write("%s: %s (see %s --help)\n" % (self.prog, message, self.prog))
        raise SystemExit(2)


def version_text():
    """"vpump 0.1.0 (firmware 0.1.0, telemetry protocol 1)"."""
    try:
        from importlib.metadata import PackageNotFoundError, version
        try:
            package = version("vpump")
        except PackageNotFoundError:
            package = "(not installed)"
    except ImportError:
        package = "(unknown)"
    from firmware.telemetry import FIRMWARE_VERSION
    from protocol.frame import VERSION
    return "vpump %s (firmware %s, telemetry protocol %d)" % (package, FIRMWARE_VERSION, VERSION)


def build_parser():
    parser = _Parser(
        prog="vpump",
        description="A virtual programmable implantable intrathecal drug pump: the real firmware "
                    "in virtual time, with simulated hardware.",
        epilog="Educational and engineering tool: not clinical advice.  See README.md.")
    parser.add_argument("--version", action="version", version=version_text(),
                        help="print vpump's, the firmware's and the protocol's versions")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True
    parser.commands = commands.choices

    run = commands.add_parser(
        "run", help="replay a scenario headless in virtual time",
        description="Run SCENARIO headless in virtual time, as fast as possible.  Prints a "
                    "summary (delivered vs programmed dose, refills, alarms, final state, speed) "
                    "and writes DIR/events.jsonl and DIR/timeseries.csv.  The same scenario and "
                    "seed give byte-identical events.jsonl.  The invariant monitor checks the "
                    "safety requirements (docs/safety.md) after every event: each violation is "
                    "a \"violation\" record in events.jsonl and a line in the summary, and the "
                    "exit status is 3.")
    run.add_argument("scenario", metavar="SCENARIO",
                     help="a scenario file, the name of one in scenarios/ "
                          "(e.g. adult-sci-continuous), or - to read one from stdin")
    opts = run.add_argument_group("run options")
    opts.add_argument("--days", type=whole_number(1, 3650), metavar="N",
                      help="simulated days (1-3650; default: the scenario's)")
    opts.add_argument("--seed", type=whole_number(0, 2 ** 32 - 1), metavar="N",
                      help="random seed (0-4294967295; default: the scenario's)")
    opts.add_argument("--out", metavar="DIR",
                      help="output folder (default: out/ and the scenario file's name without "
                           ".toml; out/ and the scenario's name for -)")
    opts.add_argument("--json", action="store_true",
                      help="print the summary as JSON; a mistake is a JSON object too, "
                           "{\"error\": MESSAGE, \"exit_status\": 2}, on stdout")
    opts.add_argument("--quiet", action="store_true", help="no progress bar")
    opts.add_argument("--no-check", dest="check", action="store_false",
                      help="turn the invariant monitor off (faster; no violations reported)")

    from tools import serve as serve_command
    serve_command.add_parser(commands)
    from tools import prog as prog_command
    prog_command.add_parser(commands)
    from tools import flash as flash_command
    flash_command.add_parser(commands)
    from tools import report as report_command
    report_command.add_parser(commands)
    from tools import campaign_cmd
    campaign_cmd.add_parser(commands)
    from tools import conform as conform_command
    conform_command.add_parser(commands)
    from tools import fuzz_cmd as fuzz_command
    fuzz_command.add_parser(commands)
    from tools import replay_visit
    replay_visit.add_parser(commands)
    from tools import wireshark as wireshark_command
    wireshark_command.add_parser(commands)

    scenarios = commands.add_parser(
        "scenarios", help="list the scenario library",
        description="List the scenarios `vpump run NAME` knows (scenarios/, or an installed "
                    "copy's): name and length, then the description, the kinds of its "
                    "[[faults]] and the keys of its [models] table, as the file spells them.  "
                    "Each file documents its story at its top.")
    scenarios.add_argument("--json", action="store_true", help="print the list as JSON")

    schema = commands.add_parser(
        "schema", help="print the scenario format as a JSON Schema",
        description="Print the JSON Schema (draft 2020-12) of scenario files, generated from "
                    "the validator's own field specs (sim/scenario/).  The repository ships it "
                    "as scenarios/scenario.schema.json, which editors with TOML schema support "
                    "(Taplo, Even Better TOML) use to complete and check scenarios as they are "
                    "typed: docs/scenarios.md.")
    schema.add_argument("--check", metavar="FILE", nargs="?", const="",
                        help="only check that FILE (default: the shipped "
                             "scenarios/scenario.schema.json) is current (exit 1 if stale)")

    diagram = commands.add_parser(
        "diagram", help="regenerate docs/state-machine.md from the state table",
        description="Regenerate docs/state-machine.md (mermaid) from firmware/table.py through "
                    "a transitions machine built from the same rows.")
    diagram.add_argument("--check", action="store_true",
                         help="only check the file is current (exit 1 if stale)")
    diagram.add_argument("--output", metavar="PATH", help="where to write (default: docs/state-machine.md)")

    trace = commands.add_parser(
        "traceability", help="regenerate docs/traceability.md (requirement -> tests -> scenarios)",
        description="Regenerate docs/traceability.md from docs/safety.md's requirements (SR-nn) "
                    "and the @pytest.mark.req marks in tests/.  Exit 1 when a requirement has no "
                    "test or a test names an unknown requirement.")
    trace.add_argument("--check", action="store_true",
                       help="only check the file is current and complete (exit 1 if not)")
    return parser


class _Progress:
    """A tqdm bar over the run's simulated days on a terminal; silent when stderr is not one
    (or with --quiet).  Called as progress(done_ms, total_ms) by the runner."""

    def __init__(self, stream, enabled):
        self.stream = stream
        self.enabled = enabled
        self.bar = None

    def __call__(self, done_ms, total_ms):
        if not self.enabled or total_ms <= 0:
            return
        if self.bar is None:
            from tqdm import tqdm
            # No monitor thread: the bar is updated from the run's own loop, often enough.
            tqdm.monitor_interval = 0
            self.bar = tqdm(total=total_ms / 86400000.0, unit="day", file=self.stream,
                            leave=False, dynamic_ncols=True, mininterval=0.2,
                            bar_format="{l_bar}{bar}| day {n:.0f}/{total:.0f} "
                                       "[{elapsed}<{remaining}]")
        self.bar.update(done_ms / 86400000.0 - self.bar.n)

    def finish(self):
        if self.bar is not None:
            self.bar.refresh()          # the end, however fast the run was, then cleared
            self.bar.close()
            self.bar = None


def _format_refusals(refusals):
    # "program: over_hard_limit x1 (first 2026-01-05 08:00: 50000, limit 2000); ..."
    parts = []
    for key, r in refusals.items():
        detail = ""
        if r["value"] or r["limit"]:
            detail = ", %s, limit %s" % (r["value"], r["limit"])
        parts.append("%s x%d (first %s%s)" % (key, r["count"], r["first"][:16].replace("T", " "),
                                              detail))
    return "; ".join(parts) or "none"


def _format_battery(battery):
    # " by the pump's count; true cell ...; ERI at ...; EOS at ...": the summary's battery line.
    if not battery:
        return ""
    parts = [" by the pump's count"]
    # The true cell only when [models] battery models one (else it is the count's twin).
    if "chemistry" in battery and "true_capacity_nah" in battery:
        parts.append("true cell %.2f %% left of %s nAh (nominal %s)" % (
            100.0 * battery["true_remaining_nah"] / battery["true_capacity_nah"],
            "{:,}".format(battery["true_capacity_nah"]),
            "{:,}".format(battery["nominal_capacity_nah"])))
    for key in ("eri", "eos"):
        at = battery.get(key)
        if at:
            parts.append("%s at %.2f years (day %s)" % (key.upper(), at["years"],
                                                       at["day"].split(".")[0]))
    return "; ".join(parts)


def _format_summary(summary, out_dir):
    from sim.events import iso_ms

    def ug(value):
        return "{:,} ug".format(value)

    pct = summary["delivered_vs_programmed_pct"]
    alarms = ", ".join("%s x%d" % (k, v) for k, v in summary["alarms_raised"].items()) or "none"
    final = summary["final_state"]
    speed = summary["speedup"]
    lines = [
        "vpump run: %s (%d days, seed %d)" % (summary["scenario"], summary["days"], summary["seed"]),
        "  period     %s -> %s" % (summary["start"][:16].replace("T", " "), summary["end"][:16].replace("T", " ")),
        "  dose       programmed %s, delivered %s%s (pump's own count %s)" % (
            ug(summary["programmed_ug"]), ug(summary["delivered_true_ug"]),
            " (%.2f %%)" % pct if pct is not None else "", ug(summary["delivered_ug"])),
        "  to CSF     %s%s%s" % (
            ug(summary["delivered_to_csf_ug"]),
            " (%s of it by screening boluses, not through the pump)"
            % ug(summary["injected_to_csf_ug"]) if summary.get("injected_to_csf_ug") else "",
            "" if summary["delivered_to_csf_ug"] - summary.get("injected_to_csf_ug", 0)
            == summary["delivered_true_ug"] else
            "  <- differs from what left the pump (%s): a catheter fault the pump cannot see"
            % ug(summary["delivered_true_ug"])),
        "  patient    CSF %.1f ng/mL, tone score %.2f at the end; overdose flagged %s h, "
        "withdrawal risk %s h (%s)" % (
            summary["patient"]["csf_ng_per_ml"], summary["patient"]["tone_score"],
            summary["patient"]["overdose_hours"], summary["patient"]["withdrawal_risk_hours"],
            summary["patient"]["model"]),
        "  strokes    {:,}".format(summary["strokes"]),
        "  refills    %d; patient boluses: %d given of %d presses; refused requests: %d" % (
            summary["refills"], summary["patient_boluses"], summary["patient_requests"],
            summary["refused_requests"]),
        "  alarms     %s" % alarms,
        "  refusals   %s" % _format_refusals(summary["refusals"]),
        "  final      therapy %s, %s, %s; reservoir %.1f mL (pump estimate %.1f mL)%s" % (
            final["therapy"], final["reservoir"], final["battery"],
            summary["reservoir_true_ul"] / 1000.0, summary["reservoir_estimate_ul"] / 1000.0,
            "; active alarms: " + ", ".join(summary["active_alarms"]) if summary["active_alarms"] else ""),
        "  battery    %.2f %% left%s" % (summary["battery_remaining_pct"],
                                         _format_battery(summary.get("battery"))),
        "  speed      %.3f s wall, %s x real time" % (
            summary["wall_seconds"], "{:.2e}".format(speed) if speed else "n/a"),
    ]
    if summary.get("link"):
        from sim.linkstory import text as link_text
        lines.insert(-1, "  link       %s" % link_text(summary["link"]))
    if summary.get("clock_offset_s"):
        lines.insert(-1, "  clock      pump clock %+.3f s from true time at the end (crystal drift "
                         "or set_clock)" % summary["clock_offset_s"])
    violations = summary.get("violations")
    if violations is None:
        lines.append("  safety     not checked (--no-check)")
    elif not violations:
        lines.append("  safety     no violations: every safety requirement held after every event")
    else:
        counts = summary.get("violation_counts") or {}
        lines.append("  safety     %d VIOLATIONS (%s)" % (
            sum(counts.values()), ", ".join("%s x%d" % kv for kv in sorted(counts.items()))))
        for v in violations:
            lines.append("    %s at %s: %s" % (v["req"], iso_ms(v["t_ms"])[:19].replace("T", " "),
                                            v["message"]))
    if out_dir:
        lines.append("  output     %s, %s" % (os.path.join(out_dir, "events.jsonl"),
                                              os.path.join(out_dir, "timeseries.csv")))
    return "\n".join(lines)


def _load_stdin(stdin):
    """`vpump run -`: the scenario's TOML from stdin, read through a temporary file so it is
    checked exactly as a file is; its messages name it <stdin>."""
    import shutil
    import tempfile
    from sim import scenario as scenario_module
    data = stdin.buffer.read() if hasattr(stdin, "buffer") else stdin.read().encode("utf-8")
    if not data.strip():
        raise UsageError("SCENARIO -: stdin is empty; pipe a scenario's TOML in, e.g. "
                         "vpump run - < my.toml")
    folder = tempfile.mkdtemp(prefix="vpump-stdin-")
    path = os.path.join(folder, "stdin.toml")
    try:
        with open(path, "wb") as f:
            f.write(data)
        try:
            return scenario_module.load(path)
        except SimError as exc:
            exc.args = tuple(a.replace(path, "<stdin>") if isinstance(a, str) else a
                             for a in exc.args)
            raise
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _cmd_run(args, stdout, stderr, stdin=None):
    from sim import scenario as scenario_module
    from sim.runner import run_scenario

    if args.scenario == "-":
        config = _load_stdin(stdin or sys.stdin)
        out_dir = args.out or os.path.join("out", config["name"])
    else:
        path = scenario_module.find(args.scenario)
        config = scenario_module.load(path)
        out_dir = args.out or os.path.join("out", os.path.splitext(os.path.basename(path))[0])
    progress = _Progress(stderr, not args.quiet and hasattr(stderr, "isatty") and stderr.isatty())
    # A folder that cannot be one is the user's mistake (exit 2), found before the run starts.
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise UsageError("--out %s: is a file, not a folder; give a folder to write "
                         "events.jsonl and timeseries.csv into" % out_dir)
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as exc:
        raise UsageError("--out %s: cannot write output there: %s"
                         % (out_dir, exc.strerror or exc)) from None
    try:
        summary = run_scenario(config, days=args.days, seed=args.seed, out_dir=out_dir,
                               progress=progress, check=args.check)
    except OSError as exc:
        progress.finish()
        message = "vpump run: cannot write output to %s: %s" % (out_dir, exc.strerror or exc)
        stderr.write(message + "\n")
        if args.json:
            _json_error(stdout, message, 1)
        return 1
    except KeyboardInterrupt:
        progress.finish()
        raise
    progress.finish()
    summary["out"] = out_dir
    if args.json:
        stdout.write(json.dumps(summary, indent=2) + "\n")
    else:
        stdout.write(_format_summary(summary, out_dir) + "\n")
    # 3: the run finished, and the monitor found a safety requirement broken.
    return 3 if summary.get("violations") else 0


def _toml_models(path):
    # The [models] keys as the file spells them (motor_bias_pct, clock_drift_ppm, ...), which
    # the validated config renames to its internal units (ppm, ppb).
    from sim.scenario import tomllib
    try:
        with open(path, "rb") as f:
            models = tomllib.load(f).get("models")
    except (OSError, ValueError):
        return []
    return sorted(k for k, v in models.items() if v is not False) if isinstance(models, dict) \
        else []


def _wrapped(label, text, width=80, indent="    "):
    import textwrap
    return textwrap.wrap(label + text, width=width, initial_indent=indent,
                         subsequent_indent=indent + " " * len(label), break_on_hyphens=False)


def _cmd_scenarios(args, stdout, stderr):
    from sim import scenario
    listing = []
    for name in scenario.available():
        path = scenario.find(name)
        entry = {"name": name, "path": path}
        try:
            config = scenario.load(path)
        except SimError as exc:
            # One broken file must not hide the others: list it with what is wrong.
            entry["error"] = str(exc)
        else:
            entry.update(days=config["days"], description=config["description"],
                         faults=sorted(set(f["kind"] for f in config.get("faults") or ())),
                         models=_toml_models(path))
        listing.append(entry)
    if args.json:
        stdout.write(json.dumps(listing, indent=2) + "\n")
        return 0
    # Each scenario: its name and length, then its description, faults and [models] keys
    # wrapped under it, every line within 80 columns.
    width = max([len(e["name"]) for e in listing] or [0])
    for e in listing:
        if "error" in e:
            stdout.write("%s  INVALID:\n%s\n" % (e["name"], "\n".join(_wrapped("", e["error"]))))
            continue
        stdout.write("%-*s  %5d days\n" % (width, e["name"], e["days"]))
        lines = _wrapped("", e["description"])
        if e["faults"]:
            lines += _wrapped("faults: ", ", ".join(e["faults"]))
        if e["models"]:
            lines += _wrapped("models: ", ", ".join(e["models"]))
        stdout.write("\n".join(lines) + "\n")
    if not listing:
        stdout.write("no scenarios found (looked in %s)\n"
                     % (", ".join(scenario.scenario_dirs()) or "scenarios/"))
    return 0 if all("error" not in e for e in listing) else 1


def _cmd_serve(args, stdout, stderr):
    from tools import serve
    return serve.run(args, stdout, stderr)


def _cmd_prog(args, stdout, stderr):
    from tools import prog
    return prog.run(args, stdout, stderr)


def _cmd_flash(args, stdout, stderr):
    from tools import flash
    return flash.run(args, stdout, stderr)


def _cmd_wireshark(args, stdout, stderr):
    from tools import wireshark
    return wireshark.run(args, stdout, stderr)


def _cmd_report(args, stdout, stderr):
    from tools import report
    return report.run(args, stdout, stderr)


def _cmd_campaign(args, stdout, stderr):
    from tools import campaign_cmd
    return campaign_cmd.run(args, stdout, stderr)


def _cmd_fuzz(args, stdout, stderr):
    from tools import fuzz_cmd
    return fuzz_cmd.run(args, stdout, stderr)


def _cmd_schema(args, stdout, stderr):
    from sim.scenario import repo_root, schema
    text = schema.text()
    if args.check is None:
        stdout.write(text)
        return 0
    path = args.check or os.path.join(repo_root(), "scenarios", schema.SCHEMA_FILE)
    try:
        with open(path, encoding="utf-8") as f:
            current = f.read()
    except OSError as exc:
        raise UsageError("%s: cannot read: %s" % (path, exc.strerror or exc)) from None
    if current != text:
        stderr.write("%s is stale: run `vpump schema > %s`\n" % (path, path))
        return 1
    stderr.write("%s is current\n" % path)
    return 0


def _cmd_diagram(args, stdout, stderr):
    from tools import diagram
    argv = []
    if args.check:
        argv.append("--check")
    if args.output:
        argv += ["--output", args.output]
    # tools.diagram reports on sys.stderr: send that to this call's streams.
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        return diagram.main(argv)


def _cmd_traceability(args, stdout, stderr):
    from tools import traceability
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        return traceability.main(["--check"] if args.check else [])


class _Tee:
    # stderr that also keeps what was written (argparse's one-line error, for --json).
    def __init__(self, stream):
        self.stream = stream
        self.parts = []

    def write(self, text):
        self.parts.append(text)
        return self.stream.write(text)

    def flush(self):
        self.stream.flush()

    def text(self):
        return "".join(self.parts)


def _stdout_to_devnull(stdout):
    try:
        fd = stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


def _wants_json(argv):
    # `vpump run ... --json`: its mistakes are JSON on stdout too, even those argparse finds.
    argv = list(sys.argv[1:] if argv is None else argv)
    return "run" in argv and "--json" in argv[argv.index("run"):]


def _json_error(stdout, message, status=2):
    stdout.write(json.dumps({"error": message, "exit_status": status}) + "\n")


def main(argv=None, stdout=None, stderr=None, stdin=None):
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    parser = build_parser()
    err = stderr
    if _wants_json(argv):
        err = _Tee(stderr)
    try:
        # argparse writes usage, errors and --help to sys.stdout / sys.stderr: send them to
        # this call's streams instead.
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(err):
            argv = sys.argv[1:] if argv is None else list(argv)
            if argv[:1] == ["prog"]:
                # `vpump prog [OPTIONS] COMMAND`: the URL from $VPUMP_URL (tools/prog).
                from tools import prog as prog_command
                argv = ["prog"] + prog_command.default_url(argv[1:], parser.commands["prog"])
            args, extra = parser.parse_known_args(argv)
            if extra:
                # Reported by the subcommand, not the top-level one.
                parser.commands[args.command].error(
                    "unrecognized arguments: %s" % " ".join(extra))
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 2
        if err is not stderr and code:
            _json_error(stdout, err.text().strip(), code)
        return code
    handlers = {"run": _cmd_run, "scenarios": _cmd_scenarios, "diagram": _cmd_diagram,
                "schema": _cmd_schema,
                "traceability": _cmd_traceability,
                "serve": _cmd_serve,
                "prog": _cmd_prog, "flash": _cmd_flash, "report": _cmd_report,
                "campaign": _cmd_campaign, "conform": _cmd_conform, "fuzz": _cmd_fuzz,
                "replay": _cmd_replay, "wireshark": _cmd_wireshark}
    as_json = args.command == "run" and args.json
    try:
        if args.command == "run":
            return _cmd_run(args, stdout, stderr, stdin)
        return handlers[args.command](args, stdout, stderr)
    except (SimError, UsageError) as exc:
        stderr.write("vpump %s: %s\n" % (args.command, exc))
        if as_json:
            _json_error(stdout, "vpump %s: %s" % (args.command, exc))
        return 2
    except KeyboardInterrupt:
        stderr.write("vpump %s: interrupted\n" % args.command)
        return 130
    except BrokenPipeError:
        # `vpump scenarios | head`: the reader left.  Quietly, as a tool killed by SIGPIPE;
        # stdout goes to /dev/null so the interpreter's last flush cannot complain either.
        _stdout_to_devnull(stdout)
        return 141


def _cmd_replay(args, stdout, stderr):
    from tools import replay_visit
    return replay_visit.run(args, stdout, stderr)


def _cmd_conform(args, stdout, stderr):
    from tools import conform
    return conform.run(args, stdout, stderr)


if __name__ == "__main__":
    sys.exit(main())
