"""`vpump campaign SPEC.toml`: many scenario runs from one spec, on a process pool or Dask.

The work is sim/campaign/ (spec, variants, executors, results); this is the command line, the
printed summary and the HTML page.  Exit status: 0 done with no violation and no crash, 3 done
with violations or crashed runs (see the aggregate), 2 bad input (the message names the field,
the value and what is allowed), 1 the output cannot be written or the cluster cannot be used,
130 interrupted (finished runs are kept; the same command continues).
"""

import json
import os
import re
import signal
import sys
import threading
import time

EXIT_FOUND = 3
_ADDRESS_RE = re.compile(r"^(tcp|tls|ws|wss|inproc)://[^\s/]+(:\d+)?/?$")


class _Usage(Exception):
    pass


def add_parser(commands):
    p = commands.add_parser(
        "campaign", help="run a fault campaign: many scenario variants, pooled or on Dask",
        description="Expand SPEC.toml (base scenarios x what to vary x seeds: "
                    "docs/campaigns.md) and run every variant as a full scenario run with the "
                    "invariant monitor on, on a local process pool (default) or a Dask cluster.  "
                    "Writes DIR/results.parquet (a row per run), DIR/faults.parquet, "
                    "DIR/aggregate.json, DIR/repro/SR-nn.toml for each violated requirement and "
                    "DIR/report.html, and prints a summary.  Finished runs are kept in "
                    "DIR/runs/: a rerun into the same folder runs only what is missing.  Exit "
                    "status: 0 clean, 3 violations or crashed runs found, 2 bad input, "
                    "1 output or cluster failure, 130 interrupted.")
    p.add_argument("spec", metavar="SPEC.toml", help="the campaign spec")
    where = p.add_argument_group("where the runs execute")
    where.add_argument("--workers", metavar="N",
                       help="local worker processes (1-256; default: the CPU count); with "
                            "--dask local, the LocalCluster's workers (default 2)")
    where.add_argument("--dask", metavar="ADDRESS",
                       help="run on a Dask distributed cluster: a scheduler address such as "
                            "tcp://127.0.0.1:8786 (workers must import vpump), or 'local' to "
                            "start a LocalCluster here (its dashboard address is printed)")
    out = p.add_argument_group("output")
    out.add_argument("--out", metavar="DIR",
                     help="output folder (default: out/campaigns/NAME, NAME from the spec)")
    out.add_argument("--csv", action="store_true",
                     help="write results.csv and faults.csv instead of Parquet")
    out.add_argument("--json", action="store_true", help="print the aggregate as JSON")
    out.add_argument("--quiet", action="store_true",
                     help="no progress bar (it is only drawn on a terminal anyway)")
    return p


def _workers(args):
    if args.workers is None:
        if args.dask == "local":
            return 2
        return os.cpu_count() or 1
    if args.dask and args.dask != "local":
        raise _Usage("--workers %s: not with --dask %s (the cluster has its own workers); "
                     "allowed only with the local pool or --dask local" % (args.workers, args.dask))
    try:
        n = int(args.workers)
    except ValueError:
        n = None
    if n is None or not 1 <= n <= 256:
        raise _Usage("--workers %s: must be a whole number from 1 to 256" % args.workers)
    return n


def _check_dask(address):
    if address is None or address == "local" or _ADDRESS_RE.match(address):
        return
    raise _Usage("--dask %s: must be a scheduler address such as tcp://127.0.0.1:8786, or "
                 "'local' (a LocalCluster started here)" % address)


class _Bar:
    """tqdm on a terminal; nothing otherwise."""

    def __init__(self, total, initial, enabled):
        self.bar = None
        if enabled:
            try:
                from tqdm import tqdm
            except ImportError:
                return
            self.bar = tqdm(total=total, initial=initial, unit="run", file=sys.stderr,
                            dynamic_ncols=True, smoothing=0.05)

    def update(self, crashed, violations):
        if self.bar is not None:
            self.bar.set_postfix(violations=violations, crashes=crashed, refresh=False)
            self.bar.update(1)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def _term_as_interrupt():
    # A SIGTERM (a batch system's stop, `kill`) ends the campaign as Ctrl-C does: finished runs
    # kept, the rest cancelled.  Only from the main thread (signal handlers live there).
    if threading.current_thread() is not threading.main_thread():
        return None

    def interrupt(_signum, _frame):
        raise KeyboardInterrupt
    return signal.signal(signal.SIGTERM, interrupt)


def run(args, stdout, stderr):
    from sim.campaign import spec as spec_module
    from sim.campaign.execute import execute
    from sim.campaign.store import Store

    try:
        workers = _workers(args)
        _check_dask(args.dask)
    except _Usage as exc:
        stderr.write("vpump campaign: %s\n" % exc)
        return 2
    spec = spec_module.load(args.spec)          # CampaignError: the CLI's exit 2
    variants = spec_module.expand(spec)
    spec_module.check_variants(spec, variants)
    out_dir = args.out or os.path.join("out", "campaigns", spec.name)
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        stderr.write("vpump campaign: --out %s: is a file, not a folder\n" % out_dir)
        return 1
    store = Store(out_dir)
    done = store.finished(variants)
    pending = [v for v in variants if v["id"] not in done]
    years = sum(v["days"] for v in variants) / 365.0
    where = ("dask %s" % args.dask) if args.dask else "%d local worker process%s" % (
        workers, "" if workers == 1 else "es")
    stdout.write("vpump campaign: %s: %d runs, %.1f patient-years; %d already in %s; running %d "
                 "on %s\n" % (spec.name, len(variants), years, len(done), out_dir, len(pending),
                              where))
    stdout.flush()
    tty = hasattr(stdout, "isatty") and stdout.isatty() and stderr.isatty()
    bar = _Bar(len(variants), len(done), tty and not args.quiet)
    counts = {"crashes": 0, "violations": 0, "finished": 0}

    def on_result(result):
        store.save(result)
        counts["finished"] += 1
        counts["crashes"] += int(result["crash"])
        counts["violations"] += sum(result["violation_counts"].values())
        bar.update(counts["crashes"], counts["violations"])

    def log(line):
        bar_line = "vpump campaign: %s\n" % line
        stdout.write(bar_line)
        stdout.flush()

    t0 = time.perf_counter()
    previous = _term_as_interrupt()
    try:
        execute(pending, on_result, workers=workers, dask=args.dask, log=log)
    except KeyboardInterrupt:
        bar.close()
        stderr.write("vpump campaign: interrupted: %d of %d runs finished and kept in %s; run "
                     "the same command to continue\n"
                     % (len(done) + counts["finished"], len(variants),
                        os.path.join(out_dir, "runs")))
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    bar.close()
    wall = time.perf_counter() - t0
    agg = finish(spec, variants, store, out_dir, args.csv, wall)
    if args.json:
        stdout.write(json.dumps(agg, indent=2) + "\n")
    else:
        stdout.write(format_summary(agg, out_dir, len(pending), wall) + "\n")
    return EXIT_FOUND if agg["violations_total"] or agg["crashes"]["count"] else 0


def finish(spec, variants, store, out_dir, csv, wall_s=None):
    """Rows, tables, aggregate and HTML page from the stored results: the aggregate dict."""
    from sim.campaign import aggregate as aggregate_module
    from sim.campaign.store import rows, write_table
    from tools import campaign_report

    results = store.results(variants)
    run_rows, fault_rows = rows(spec, variants, results)
    files = [write_table(run_rows, os.path.join(out_dir, "results"), csv),
             write_table(fault_rows, os.path.join(out_dir, "faults"), csv)]
    agg = aggregate_module.aggregate(spec, variants, results, out_dir, wall_s)
    files.append(os.path.join(out_dir, "aggregate.json"))
    try:
        page = campaign_report.render(agg, run_rows, fault_rows)
    except ImportError as exc:
        agg["report_error"] = "no report.html: matplotlib is needed (%s)" % exc
    else:
        path = os.path.join(out_dir, "report.html")
        with open(path, "w", encoding="utf-8") as f:
            f.write(page)
        files.append(path)
    agg["files"] = files
    return agg


def _d(dist, fmt="%.1f"):
    if not dist["n"]:
        return "-"
    return "/".join(fmt % dist[k] for k in ("median", "p95", "max"))


def format_summary(agg, out_dir, ran, wall):
    lines = ["vpump campaign: %s: %d runs, %.1f patient-years (%d run now in %.1f s)"
             % (agg["campaign"], agg["runs"], agg["patient_years"], ran, wall)]
    if agg["violations"]:
        for req, e in agg["violations"].items():
            lines.append("  violation   %s x%d in %d runs; repro %s; first: %s"
                         % (req, e["count"], e["runs"], os.path.join(out_dir, e["repro"]),
                            e["message"]))
    else:
        lines.append("  violations  none")
    crashes = agg["crashes"]
    lines.append("  crashes     %d%s" % (crashes["count"], " (tracebacks in %s)"
                                         % os.path.join(out_dir, "crashes")
                                         if crashes["count"] else ""))
    dose = agg["dose"]
    lines.append("  dose        delivered %s of %s ug programmed (%s %%)"
                 % ("{:,}".format(dose["delivered_ug"]), "{:,}".format(dose["programmed_ug"]),
                    dose["delivered_vs_programmed_pct"]))
    if agg["faults"]:
        lines.append("  faults      kind: occurrences (undetected); detection h, missed ug, "
                     "over-delivered ug as median/p95/max")
        for kind, f in agg["faults"].items():
            lines.append("    %-13s %5d (%d); detection %s h; missed %s ug; over %s ug"
                         % (kind, f["occurrences"], f["undetected"], _d(f["detection_hours"],
                                                                       "%.2f"),
                            _d(f["missed_ug"], "%.0f"), _d(f["over_delivered_ug"], "%.0f")))
    w = agg["withdrawal_risk"]
    lines.append("  withdrawal  %s h in all (%s h per patient-year), %d runs with any; per run "
                 "%s h (median/p95/max; educational patient model)"
                 % (w["hours_total"], w["hours_per_patient_year"], w["runs_with_any"],
                    _d(w["hours_per_run"])))
    lines.append("  output      %s" % ", ".join(agg.get("files", [])))
    if agg.get("report_error"):
        lines.append("  note        %s" % agg["report_error"])
    return "\n".join(lines)
