"""`vpump report DIR`: plots and a self-contained HTML page from a run's output folder.

Reads DIR/events.jsonl and DIR/timeseries.csv (written by `vpump run SCENARIO --out DIR`, formats
in docs/scenarios.md) and writes, into DIR or --out:

    reservoir.png, dose.png, battery.png, timeline.png    always
    patient.png                                           always (the educational patient model)
    startup.png, trumpet.png                              the run's scenario found (IEC 60601-2-24)
    report.html                                           every image embedded as a data URI
    report.json                                           the summary, daily doses, curve figures

The start-up and trumpet curves need the delivered volume every 0.5 min over the first 2 h, which
the hourly time series does not have: flow_curves_for(config) replays the scenario's first 3 hours
with the firmware (sim.runner.Run), records every motor stroke and feeds sim.flowcurves.  The
scenario is the one the run's own events name (its `start` record); --scenario FILE gives its
file when it is not in the library, and one of another name is refused.  The page is the Jinja2
template tools/templates/report.html.j2.
Exit status: 0 done, 1 matplotlib or Jinja2 missing, 2 bad input (the message names the file and
the fault).
Educational, not clinical advice.  docs/report.md describes the output.
"""

import base64
import csv
import json
import os

from sim.linkstory import LinkStory, text as link_text
from sim.runner import TIMESERIES_COLUMNS
from tools.report_plots import (_event_day, plot_all, therapy_shares,  # noqa: F401
                                therapy_spans)

EDUCATIONAL = "Educational, not clinical advice."
CURVE_HOURS = 3
MS_PER_DAY = 86400000
_NUMERIC = ("t_ms", "basal_ug_per_day", "reservoir_estimate_ul", "reservoir_true_ul",
            "delivered_ug", "delivered_true_ug", "programmed_ug", "battery_mv",
            "battery_remaining_pct", "delivered_csf_ug", "csf_ng_per_ml", "tone_score",
            "overdose", "withdrawal_risk", "battery_true_remaining_pct", "clock_offset_s")


class ReportInputError(Exception):
    """The run folder is missing, empty or corrupt: exit status 2."""


def add_parser(commands):
    p = commands.add_parser(
        "report", help="plots and an HTML page from a run's output folder",
        description="Read DIR/events.jsonl and DIR/timeseries.csv (from `vpump run --out DIR`) and "
                    "write PNG plots, report.html (self-contained) and report.json.  With "
                    "--scenario, also the IEC 60601-2-24 start-up and trumpet curves from a short "
                    "replay of the scenario's first hours.  Needs matplotlib "
                    "(pip install vpump[report]).  Educational, not clinical advice.")
    p.add_argument("dir", metavar="DIR", help="a run's output folder")
    p.add_argument("--out", metavar="DIR", help="where to write (default: DIR)")
    p.add_argument("--scenario", metavar="NAME",
                   help="the run's scenario file or name, for the start-up and trumpet curves "
                        "(default: the scenario the run's events name, when it is in the "
                        "library); one of another name is refused")
    return p


# -- input --------------------------------------------------------------------------------------

def load_events(path):
    if not os.path.isfile(path):
        raise ReportInputError("%s: missing (expected the events of `vpump run --out DIR`)" % path)
    events = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError as exc:
                raise ReportInputError("%s: line %d is not valid JSON (%s)" % (path, n, exc)) from None
            if (not isinstance(record, dict) or not isinstance(record.get("t_ms"), int)
                    or not isinstance(record.get("event"), str)):
                raise ReportInputError("%s: line %d: must be a JSON object with an integer t_ms "
                                       "and an event name" % (path, n))
            events.append(record)
    if not events:
        raise ReportInputError("%s: empty (no events)" % path)
    return events


def load_timeseries(path):
    if not os.path.isfile(path):
        raise ReportInputError("%s: missing (expected the hourly samples of `vpump run --out DIR`)"
                               % path)
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            raise ReportInputError("%s: empty (no header line)" % path)
        missing = [c for c in TIMESERIES_COLUMNS if c not in header]
        if missing:
            raise ReportInputError("%s: header lacks column(s) %s" % (path, ", ".join(missing)))
        rows = []
        for n, values in enumerate(reader, 2):
            if not values:
                continue
            if len(values) != len(header):
                raise ReportInputError("%s: line %d has %d fields, the header %d"
                                       % (path, n, len(values), len(header)))
            row = dict(zip(header, values))
            for c in _NUMERIC:
                try:
                    row[c] = float(row[c])
                except ValueError:
                    raise ReportInputError("%s: line %d: %s = %r is not a number"
                                           % (path, n, c, row[c])) from None
            rows.append(row)
    if not rows:
        raise ReportInputError("%s: no data rows (only a header)" % path)
    return rows


def load_run(directory):
    if not os.path.exists(directory):
        raise ReportInputError("%s: no such folder" % directory)
    if not os.path.isdir(directory):
        raise ReportInputError("%s: is a file, not a run's output folder" % directory)
    return (load_events(os.path.join(directory, "events.jsonl")),
            load_timeseries(os.path.join(directory, "timeseries.csv")))


# -- analysis -----------------------------------------------------------------------------------

def summarize(events):
    s = {"scenario": None, "days": None, "seed": None, "refills": 0, "boluses": {},
         "patient_presses": 0, "alarms_raised": {}, "alarms_cleared": {}, "refusals": {},
         "resets": 0, "faults": {}, "low_reservoir_alarm_ul": None, "bolus_cancelled": 0}
    link = LinkStory()
    for e in events:
        name, src = e["event"], e.get("src")
        link.add(e)
        if src == "sim":
            if name == "start":
                s["scenario"], s["days"], s["seed"] = e.get("scenario"), e.get("days"), e.get("seed")
            elif name == "refill":
                s["refills"] += 1        # not the initial fill (a sim "fill" record)
            elif name == "patient_press":
                s["patient_presses"] += 1
            elif name == "reset":
                s["resets"] += 1
            elif name == "fault_start":
                k = str(e.get("kind"))
                s["faults"][k] = s["faults"].get(k, 0) + 1
            continue
        if name == "bolus_start":
            k = str(e.get("kind"))
            s["boluses"][k] = s["boluses"].get(k, 0) + 1
        elif name in ("alarm_raised", "alarm_cleared"):
            bucket = s["alarms_raised" if name == "alarm_raised" else "alarms_cleared"]
            k = str(e.get("alarm"))
            bucket[k] = bucket.get(k, 0) + 1
        elif name == "refused":
            k = "%s: %s" % (e.get("request"), e.get("reason"))
            s["refusals"][k] = s["refusals"].get(k, 0) + 1
        elif name == "alarm_volume_set":
            s["low_reservoir_alarm_ul"] = e.get("low_reservoir_alarm_ul")
        elif name == "bolus_end" and e.get("completed") is False:
            s["bolus_cancelled"] += 1
    s["link"] = link.as_dict()
    return s


def totals(rows):
    """The whole run's doses from the cumulative columns (first row to last), the share
    delivered, and the state at the last sample."""
    first, last = rows[0], rows[-1]
    out = dict((c, round(last[c] - first[c], 3)) for c in
               ("programmed_ug", "delivered_true_ug", "delivered_ug", "delivered_csf_ug"))
    out["delivered_pct"] = (round(100.0 * out["delivered_true_ug"] / out["programmed_ug"], 2)
                            if out["programmed_ug"] > 0 else None)
    out["final"] = {"therapy": last["therapy"], "reservoir": last["reservoir_alarm"],
                    "battery": last["battery_alarm"], "alarms": last["alarms"],
                    "reservoir_true_ul": last["reservoir_true_ul"],
                    "reservoir_estimate_ul": last["reservoir_estimate_ul"],
                    "battery_remaining_pct": last["battery_remaining_pct"]}
    return out


def battery_and_clock(events, rows):
    """When ERI and EOS came (days from the start), what the firmware counted and what the
    true cell held at the end, the lowest voltage read, and the crystal's offset at the end."""
    t0 = rows[0]["t_ms"]
    out = {"eri_day": None, "eos_day": None}
    for e in events:
        if e.get("src") == "pump" and e["event"] == "alarm_raised":
            key = {"elective_replacement": "eri_day", "end_of_service": "eos_day"}.get(e.get("alarm"))
            if key and out[key] is None:
                out[key] = round(_event_day(e, t0), 3)
    last = rows[-1]
    out.update(remaining_pct_firmware=last["battery_remaining_pct"],
               remaining_pct_true=last["battery_true_remaining_pct"],
               lowest_mv=min(r["battery_mv"] for r in rows),
               clock_offset_s=last["clock_offset_s"])
    return out


def daily_doses(rows):
    """Per whole day from the start: delivered (true, pump's count, CSF) and programmed, ug.

    Day d runs from the row at start + d x 24 h to the row 24 h later; a partial last day is
    left out (rows are hourly, so every day boundary has a row)."""
    t0 = rows[0]["t_ms"]
    at = {r["t_ms"]: r for r in rows}
    cols = ("delivered_true_ug", "delivered_ug", "delivered_csf_ug", "programmed_ug")
    out = {"day": []}
    out.update((c, []) for c in cols)
    d = 0
    while t0 + (d + 1) * MS_PER_DAY in at and t0 + d * MS_PER_DAY in at:
        a, b = at[t0 + d * MS_PER_DAY], at[t0 + (d + 1) * MS_PER_DAY]
        out["day"].append(d)
        for c in cols:
            out[c].append(round(b[c] - a[c], 3))
        d += 1
    return out


def flow_curves_for(config, hours=CURVE_HOURS):
    """Replay the scenario's first `hours` and return sim.flowcurves.flow_curves of its flow.

    Every motor stroke is recorded as (t_ms, cumulative delivered nL) by wrapping the board's
    motor.stroke; the programmed volume (basal integrated plus boluses started) is sampled every
    0.5 min, so boluses in the first hours count as programmed.  The result also has "strokes"."""
    from sim import flowcurves
    from sim.runner import Run

    run = Run(config, days=max(1, -(-hours * 3600000 // MS_PER_DAY)))
    board = run.board
    motor = board.motor
    strokes = []
    original = motor.stroke

    def stroke():
        outcome = original()
        strokes.append((board.clock.true_ms, motor.delivered_nl))
        return outcome

    motor.stroke = stroke
    base_nl = motor.delivered_nl
    conc = config["concentration_ug_per_ml"]
    step = flowcurves.SAMPLE_INTERVAL_MS
    programmed_nl = []
    run.start()
    for i in range(flowcurves.STARTUP_MIN * 60000 // step + 1):
        run.run_to(i * step)
        run._track_programmed()
        # ng at conc ug/mL (= ng/uL) -> nL
        programmed_nl.append(run.programmed_ng * 1000.0 / conc)
    run.run_to(hours * 3600000)
    events = [(t, v - base_nl) for t, v in strokes]
    samples = flowcurves.samples_from_events(events, duration_ms=flowcurves.STARTUP_MIN * 60000)
    p0 = programmed_nl[0]
    programmed = [max(0.0, v - p0) for v in programmed_nl]
    result = flowcurves.flow_curves(samples, programmed)
    result["strokes"] = len(strokes)
    result["programmed_ul_first_2h"] = round(programmed[-1] / 1000.0, 3)
    result["delivered_ul_first_2h"] = samples[-1] / 1000.0
    return result


# -- output -------------------------------------------------------------------------------------

SECTIONS = (("reservoir", "Reservoir: true vs estimated"),
            ("dose", "Delivered dose per day vs programmed"),
            ("patient", "Patient model: CSF concentration and muscle tone (educational)"),
            ("battery", "Battery remaining"),
            ("timeline", "Timeline of therapy states and alarms"),
            ("startup", "Start-up curve (IEC 60601-2-24)"),
            ("trumpet", "Trumpet curve (IEC 60601-2-24)"))


def _ug(value):
    return "{:,.0f} ug".format(value)


def _pct(value):
    return "n/a" if value is None else "%.2f %%" % value


def _counts(d):
    return ", ".join("%s x%d" % (k, v) for k, v in sorted(d.items())) or "none"


def summary_rows(summary, tot):
    """The page's summary table: (label, text) pairs, every number formatted one way."""
    final = tot["final"]
    rows = [("scenario", summary["scenario"]), ("days", summary["days"]),
            ("seed", summary["seed"]),
            ("programmed", _ug(tot["programmed_ug"])),
            ("delivered (true)", "%s (%s of programmed)" % (_ug(tot["delivered_true_ug"]),
                                                             _pct(tot["delivered_pct"]))),
            ("delivered (the pump's own count)", _ug(tot["delivered_ug"])),
            ("to CSF", _ug(tot["delivered_csf_ug"])
             + ("" if abs(tot["delivered_csf_ug"] - tot["delivered_true_ug"]) < 1 else
                " (differs from what left the pump: a catheter fault the pump cannot see, or "
                "screening boluses given by lumbar puncture)")),
            ("final state", "therapy %s, %s, %s%s" % (
                final["therapy"], final["reservoir"], final["battery"],
                "; active alarms: " + final["alarms"].replace("|", ", ") if final["alarms"]
                else "")),
            ("reservoir at the end", "%.3f mL (pump estimate %.3f mL)" % (
                final["reservoir_true_ul"] / 1000.0, final["reservoir_estimate_ul"] / 1000.0)),
            ("battery at the end", _pct(final["battery_remaining_pct"]) + " left"),
            ("refills", summary["refills"]),
            ("boluses", _counts(summary["boluses"])
             + ("; %d cancelled before the full dose" % summary["bolus_cancelled"]
                if summary.get("bolus_cancelled") else "")),
            ("patient presses", summary["patient_presses"]),
            ("alarms raised", _counts(summary["alarms_raised"])),
            ("alarms cleared", _counts(summary["alarms_cleared"])),
            ("refusals", _counts(summary["refusals"])),
            ("resets", summary["resets"]), ("faults", _counts(summary["faults"]))]
    if summary.get("link"):
        rows.append(("telemetry link", link_text(summary["link"])))
    return rows


def _battery_rows(battery):
    return [("ERI (elective replacement), day", battery["eri_day"] or "not reached"),
            ("EOS (end of service), day", battery["eos_day"] or "not reached"),
            ("remaining at the end: firmware's count / true cell",
             "%s / %s" % (_pct(battery["remaining_pct_firmware"]),
                          _pct(battery["remaining_pct_true"]))),
            ("lowest voltage read", "%d mV" % battery["lowest_mv"]),
            ("pump clock - true time at the end", "%.3f s" % battery["clock_offset_s"])]


def _trumpet_rows(tr):
    return ([("mean flow, 2nd hour", "%.3f uL/h" % tr["mean_flow_ul_per_h"]),
             ("mean error A", _pct(tr["mean_error_pct"]))]
            + [("window %s min: Ep(max) / Ep(min)" % w["window_min"],
                "%s / %s" % (_pct(w["max_error_pct"]), _pct(w["min_error_pct"])))
               for w in tr["windows"]])


def render_html(summary, daily, files, curves, out_dir, battery=None, tot=None, notes=()):
    """report.html from the Jinja2 template tools/templates/report.html.j2 (autoescaped)."""
    import jinja2
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                    "templates")),
        autoescape=True, trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)
    sections = []
    for key, title in SECTIONS:
        name = files.get(key)
        if name is None:
            continue
        with open(os.path.join(out_dir, name), "rb") as f:
            data = base64.b64encode(f.read()).decode("ascii")
        table = None
        if key == "battery" and battery is not None:
            table = _battery_rows(battery)
        elif key == "trumpet":
            table = _trumpet_rows(curves["trumpet"])
        sections.append({"title": title, "png_base64": data, "table": table})
    return env.get_template("report.html.j2").render(
        scenario=str(summary["scenario"]), educational=EDUCATIONAL,
        summary=summary_rows(summary, tot) if tot else [], sections=sections, notes=list(notes))


def _scenario_for(summary, config, stated):
    """The config the flow curves replay: the one given (refused when it is another scenario's),
    else the library's scenario of the run's name; (config, note) with a note when there is
    none."""
    ran = summary["scenario"]
    if config is not None:
        if ran is not None and config["name"] != ran:
            raise ReportInputError(
                "--scenario %s: is scenario %s, but this run is of scenario %s (its events.jsonl "
                "says so); give --scenario %s, or leave it out" % (stated, config["name"], ran,
                                                                   ran))
        return config, None
    if ran is None:
        return None, "no flow curves: the run's events name no scenario"
    from sim import scenario as scenario_module
    from sim.errors import SimError
    try:
        return scenario_module.load(scenario_module.find(ran)), None
    except SimError:
        return None, ("no flow curves: the run's scenario %s is not in the library; give its "
                      "file with --scenario FILE" % ran)


def make_report(directory, out_dir=None, config=None, stated=None):
    """Write the report; returns report.json's dict.  ReportInputError for a bad folder or a
    scenario that is not the run's, ImportError when matplotlib or Jinja2 is missing."""
    events, rows = load_run(directory)
    summary = summarize(events)
    config, curves_error = _scenario_for(summary, config, stated)
    import jinja2  # noqa: F401  (missing: the same ImportError as matplotlib's, before any work)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    out_dir = out_dir or directory
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise ReportInputError("--out %s: is a file, not a folder" % out_dir)
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as exc:
        raise ReportInputError("--out %s: cannot write there: %s" % (out_dir, exc.strerror or exc)) \
            from None
    daily = daily_doses(rows)
    tot = totals(rows)
    curves = None
    if config is not None:
        # The run's own seed: a seeded model (a random motor bias) replays as it ran.
        if summary["seed"] is not None:
            config = dict(config, seed=summary["seed"])
        try:
            curves = flow_curves_for(config)
        except ValueError as exc:
            # e.g. nothing programmed in a window of the second hour (therapy stopped)
            curves_error = "no flow curves for %s: %s" % (config["name"], exc)
    # The pump model's thresholds for the battery plot: the scenario's, else the defaults.
    from firmware.pump import MODEL
    model = dict(MODEL)
    if config is not None:
        model.update(config.get("model") or {})
    files = plot_all(events, rows, summary, daily, curves, out_dir, plt, model)
    battery = battery_and_clock(events, rows)
    page = render_html(summary, daily, files, curves, out_dir, battery, tot,
                       [curves_error] if curves_error else [])
    with open(os.path.join(out_dir, "report.html"), "w", encoding="utf-8") as f:
        f.write(page)
    hours, _, _ = therapy_shares(events, rows)
    report = {"educational": EDUCATIONAL, "source": os.path.abspath(directory),
              "summary": summary, "totals": tot,
              "therapy_hours": dict((k, round(v, 3)) for k, v in sorted(hours.items())),
              "daily": daily, "figures": files,
              "battery_and_clock": battery, "flow_curves": curves}
    if curves_error:
        report["flow_curves_error"] = curves_error
    with open(os.path.join(out_dir, "report.json"), "w", encoding="utf-8") as f:
        json.dump(report, f, indent=1)
        f.write("\n")
    return report


def run(args, stdout, stderr):
    config = None
    if args.scenario:
        from sim import scenario as scenario_module
        from sim.errors import SimError
        try:
            config = scenario_module.load(scenario_module.find(args.scenario))
        except SimError as exc:
            stderr.write("vpump report: --scenario %s: %s\n" % (args.scenario, exc))
            return 2
    try:
        report = make_report(args.dir, args.out, config, args.scenario)
    except ReportInputError as exc:
        stderr.write("vpump report: %s\n" % exc)
        return 2
    except ImportError as exc:
        stderr.write("vpump report: matplotlib and Jinja2 are needed (%s): pip install "
                     "vpump[report]\n" % exc)
        return 1
    except OSError as exc:
        stderr.write("vpump report: cannot write to %s: %s\n"
                     % (args.out or args.dir, exc.strerror or exc))
        return 1
    out_dir = args.out or args.dir
    if report.get("flow_curves_error"):
        stderr.write("vpump report: %s\n" % report["flow_curves_error"])
    stdout.write("vpump report: %s (%d figures; %s)\n" % (
        os.path.join(out_dir, "report.html"), len(report["figures"]), EDUCATIONAL))
    return 0
