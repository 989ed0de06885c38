"""`vpump report DIR`: plots and a self-contained HTML page from a run's output folder.

Reads DIR/events.jsonl and DIR/timeseries.csv (written by `vpump run SCENARIO --out DIR`, formats
in docs/scenarios.md) and writes, into DIR or --out:

    reservoir.png, dose.png, battery.png, timeline.png    always
    patient.png                                           always (the educational patient model)
    startup.png, trumpet.png                              with --scenario NAME (IEC 60601-2-24)
    report.html                                           every image embedded as a data URI
    report.json                                           the summary, daily doses, curve figures

The start-up and trumpet curves need the delivered volume every 0.5 min over the first 2 h, which
the hourly time series does not have: flow_curves_for(config) replays the scenario's first 3 hours
with the firmware (sim.runner.Run), records every motor stroke and feeds sim.flowcurves.
Exit status: 0 done, 1 matplotlib missing, 2 bad input (the message names the file and the fault).
Educational, not clinical advice.  docs/report.md describes the output.
"""

import base64
import csv
import html
import json
import os

from sim.runner import TIMESERIES_COLUMNS

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
                   help="scenario file or name for the start-up and trumpet curves")
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
         "resets": 0, "faults": {}, "low_reservoir_alarm_ul": None}
    for e in events:
        name, src = e["event"], e.get("src")
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
    return s


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

def _days(rows):
    t0 = rows[0]["t_ms"]
    return [(r["t_ms"] - t0) / MS_PER_DAY for r in rows]


def _event_day(e, t0):
    return (e["t_ms"] - t0) / MS_PER_DAY


_STATE_COLORS = {"idle": "lightgray", "infusing": "tab:green", "bolus": "tab:blue",
                 "lockout": "tab:cyan", "reservoir_empty": "tab:red", "motor_stall": "tab:orange",
                 "battery_depleted": "black", "fault": "tab:purple"}


def therapy_spans(events, rows):
    """{state: [(start_day, length_days), ...]} from the pump's therapy state changes (exact),
    starting from the first sample's state; the hourly samples only if there are none."""
    t0, t_end = rows[0]["t_ms"], rows[-1]["t_ms"]
    changes = [(e["t_ms"], e.get("to")) for e in events
               if e["event"] == "state" and e.get("region") == "therapy" and t0 <= e["t_ms"] <= t_end]
    if not changes:
        changes = [(r["t_ms"], r["therapy"]) for r in rows]
    current = (t0, rows[0]["therapy"])
    spans = {}
    for t, state in changes + [(t_end, None)]:
        if t > current[0] or state is None:
            spans.setdefault(current[1], []).append(
                ((current[0] - t0) / MS_PER_DAY, max(t - current[0], 60000) / MS_PER_DAY))
        if state is not None:
            current = (t, state)
    return spans


def plot_all(events, rows, summary, daily, curves, out_dir, plt, model=None):
    files = {}
    x = _days(rows)
    t0 = rows[0]["t_ms"]
    model = model or {}

    def save(fig, name):
        fig.tight_layout()
        path = os.path.join(out_dir, name)
        fig.savefig(path, format="png", dpi=90)
        plt.close(fig)
        files[name.rsplit(".", 1)[0]] = name

    fig, ax = plt.subplots(figsize=(9, 3.6))
    ax.plot(x, [r["reservoir_true_ul"] / 1000 for r in rows], label="true (simulated)")
    ax.plot(x, [r["reservoir_estimate_ul"] / 1000 for r in rows], "--", label="pump estimate")
    if summary["low_reservoir_alarm_ul"] is not None:
        ax.axhline(summary["low_reservoir_alarm_ul"] / 1000, color="tab:red", lw=1,
                   label="low-reservoir alarm")
    ax.set_xlabel("day")
    ax.set_ylabel("reservoir (mL)")
    ax.set_title("Reservoir: true vs estimated")
    ax.legend(loc="best", fontsize=8)
    save(fig, "reservoir.png")

    fig, ax = plt.subplots(figsize=(9, 3.6))
    ax.bar(daily["day"], daily["delivered_true_ug"], width=0.8, label="delivered (true)",
           color="tab:blue", alpha=0.7)
    ax.plot(daily["day"], daily["programmed_ug"], "o-", color="tab:orange", ms=3,
            label="programmed")
    ax.plot(daily["day"], daily["delivered_csf_ug"], "x", color="tab:green", ms=4,
            label="reached CSF")
    ax.set_xlabel("day")
    ax.set_ylabel("dose per day (ug)")
    ax.set_title("Delivered dose per day vs programmed")
    ax.legend(loc="best", fontsize=8)
    save(fig, "dose.png")

    fig, ax = plt.subplots(figsize=(9, 3.6))
    ax.plot(x, [r["csf_ng_per_ml"] for r in rows], color="tab:blue", label="CSF baclofen")
    ax.set_xlabel("day")
    ax.set_ylabel("CSF (ng/mL)")
    top = max([r["csf_ng_per_ml"] for r in rows] + [1.0])
    for flag, color, label in (("overdose", "tab:red", "overdose flag"),
                               ("withdrawal_risk", "tab:orange", "withdrawal risk flag")):
        flagged = [xi for xi, r in zip(x, rows) if r[flag]]
        if flagged:
            ax.plot(flagged, [top * 1.05] * len(flagged), "|", color=color, label=label)
    tone = ax.twinx()
    tone.plot(x, [r["tone_score"] for r in rows], color="tab:green", lw=1,
              label="tone score")
    tone.set_ylim(0, 4)
    tone.set_ylabel("tone score (0-4)")
    ax.set_title("Patient model: CSF concentration and muscle tone (educational)")
    lines, labels = ax.get_legend_handles_labels()
    more, more_labels = tone.get_legend_handles_labels()
    ax.legend(lines + more, labels + more_labels, loc="best", fontsize=8)
    save(fig, "patient.png")

    # The firmware's coulomb count against the true cell (they differ when [models] battery
    # is on), the voltage it reads with the model's ERI/EOS thresholds, and when ERI and EOS
    # came; a drifting crystal's offset from true time below, when there is one.
    drift = any(r["clock_offset_s"] for r in rows)
    fig, axes = plt.subplots(2 if drift else 1, 1, figsize=(9, 4.6 if drift else 3.2),
                             sharex=True, squeeze=False)
    ax = axes[0][0]
    ax.plot(x, [r["battery_remaining_pct"] for r in rows], color="tab:purple",
            label="remaining: the firmware's count")
    if any(r["battery_true_remaining_pct"] != r["battery_remaining_pct"] for r in rows):
        ax.plot(x, [r["battery_true_remaining_pct"] for r in rows], color="tab:purple", ls="--",
                label="remaining: the true cell")
    ax.set_ylabel("battery remaining (%)")
    ax.set_ylim(0, 105)
    volts = ax.twinx()
    volts.plot(x, [r["battery_mv"] for r in rows], color="tab:gray", lw=1, label="battery mV")
    for key, color in (("eri_mv", "tab:orange"), ("eos_mv", "tab:red")):
        if key in model:
            volts.axhline(model[key], color=color, ls=":", lw=1,
                          label="%s %d mV" % (key[:3].upper(), model[key]))
    volts.set_ylabel("battery (mV)")
    for e in events:
        if e.get("src") == "pump" and e["event"] == "alarm_raised" and \
                e.get("alarm") in ("elective_replacement", "end_of_service"):
            day = _event_day(e, t0)
            ax.axvline(day, color="tab:orange" if e["alarm"] == "elective_replacement"
                       else "tab:red", lw=1)
            ax.annotate("ERI" if e["alarm"] == "elective_replacement" else "EOS", (day, 100),
                        fontsize=8, ha="right", va="top", rotation=90)
    ax.set_title("Battery")
    lines, labels = ax.get_legend_handles_labels()
    more, more_labels = volts.get_legend_handles_labels()
    ax.legend(lines + more, labels + more_labels, loc="lower left", fontsize=7)
    if drift:
        clock = axes[1][0]
        clock.plot(x, [r["clock_offset_s"] for r in rows], color="tab:brown")
        clock.set_ylabel("pump clock - true (s)")
        clock.set_title("Clock crystal drift", fontsize=9)
    axes[-1][0].set_xlabel("day")
    save(fig, "battery.png")

    fig, ax = plt.subplots(figsize=(9, 3.6))
    for state, spans in sorted(therapy_spans(events, rows).items()):
        ax.broken_barh(spans, (3.6, 0.8), color=_STATE_COLORS.get(state, "tab:gray"),
                       label="therapy: " + state)
    lanes = (("alarm_raised", 2.6, "^", "tab:red", "alarm raised"),
             ("alarm_cleared", 2.0, "v", "tab:green", "alarm cleared"),
             ("refill", 1.4, "s", "tab:blue", "refill"),
             ("refused", 0.8, "x", "tab:gray", "refused request"),
             ("fault_start", 0.2, "D", "black", "fault"))
    for name, y, marker, color, label in lanes:
        pts = [_event_day(e, t0) for e in events if e["event"] == name
               and (name != "refill" or e.get("src") == "sim")]
        if pts:
            ax.plot(pts, [y] * len(pts), marker, color=color, ls="none", label=label)
    ax.set_yticks([4.0, 2.6, 2.0, 1.4, 0.8, 0.2])
    ax.set_yticklabels(["therapy", "alarm +", "alarm -", "refill", "refused", "fault"])
    ax.set_ylim(-0.3, 4.7)
    ax.set_xlabel("day")
    ax.set_title("Timeline: therapy states, alarms, refills, refusals")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7)
    save(fig, "timeline.png")

    if curves is not None:
        st = curves["startup"]
        fig, ax = plt.subplots(figsize=(9, 3.6))
        ax.step(st["t_min"], st["flow_ul_per_h"], where="post", lw=0.8, label="flow per 0.5 min")
        tr = curves["trumpet"]
        ax.axhline(tr["mean_flow_ul_per_h"], color="tab:orange", lw=1,
                   label="mean flow, 2nd hour")
        ax.set_xlabel("time from start of infusion (min)")
        ax.set_ylabel("flow (uL/h)")
        ax.set_title("Start-up curve (IEC 60601-2-24)")
        ax.legend(loc="best", fontsize=8)
        save(fig, "startup.png")

        fig, ax = plt.subplots(figsize=(7, 3.6))
        w = [v["window_min"] for v in tr["windows"]]
        ax.plot(w, [v["max_error_pct"] for v in tr["windows"]], "o-", label="Ep(max)")
        ax.plot(w, [v["min_error_pct"] for v in tr["windows"]], "o-", label="Ep(min)")
        ax.axhline(tr["mean_error_pct"], color="black", ls="--", lw=1,
                   label="mean error %.2f %%" % tr["mean_error_pct"])
        ax.set_xlabel("observation window (min)")
        ax.set_ylabel("error (%)")
        ax.set_title("Trumpet curve (IEC 60601-2-24), second hour")
        ax.legend(loc="best", fontsize=8)
        save(fig, "trumpet.png")
    return files


SECTIONS = (("reservoir", "Reservoir: true vs estimated"),
            ("dose", "Delivered dose per day vs programmed"),
            ("patient", "Patient model: CSF concentration and muscle tone (educational)"),
            ("battery", "Battery remaining"),
            ("timeline", "Timeline of therapy states and alarms"),
            ("startup", "Start-up curve (IEC 60601-2-24)"),
            ("trumpet", "Trumpet curve (IEC 60601-2-24)"))


def _table(pairs):
    return "<table>%s</table>" % "".join(
        "<tr><th>%s</th><td>%s</td></tr>" % (html.escape(str(k)), html.escape(str(v)))
        for k, v in pairs)


def _counts(d):
    return ", ".join("%s x%d" % (k, v) for k, v in sorted(d.items())) or "none"


def render_html(summary, daily, files, curves, out_dir, battery=None):
    total = lambda c: round(sum(daily[c]), 3)
    rows = [("scenario", summary["scenario"]), ("days", summary["days"]),
            ("seed", summary["seed"]), ("refills", summary["refills"]),
            ("boluses", _counts(summary["boluses"])),
            ("patient presses", summary["patient_presses"]),
            ("alarms raised", _counts(summary["alarms_raised"])),
            ("alarms cleared", _counts(summary["alarms_cleared"])),
            ("refusals", _counts(summary["refusals"])),
            ("resets", summary["resets"]), ("faults", _counts(summary["faults"])),
            ("delivered (true), whole days, ug", total("delivered_true_ug")),
            ("programmed, whole days, ug", total("programmed_ug"))]
    parts = ["<!DOCTYPE html><html><head><meta charset=\"utf-8\">",
             "<title>vpump report: %s</title>" % html.escape(str(summary["scenario"])),
             "<style>body{font-family:sans-serif;max-width:1000px;margin:1em auto}"
             "table{border-collapse:collapse}th,td{border:1px solid #ccc;padding:2px 8px;"
             "text-align:left}.edu{background:#fff3cd;padding:6px}img{max-width:100%}</style>",
             "</head><body>",
             "<h1>vpump report: %s</h1>" % html.escape(str(summary["scenario"])),
             "<p class=\"edu\"><b>%s</b> A simulated pump and patient.</p>" % EDUCATIONAL,
             "<h2>Summary</h2>", _table(rows)]
    for key, title in SECTIONS:
        name = files.get(key)
        if name is None:
            continue
        with open(os.path.join(out_dir, name), "rb") as f:
            data = base64.b64encode(f.read()).decode("ascii")
        parts.append("<h2>%s</h2>" % html.escape(title))
        parts.append("<img alt=\"%s\" src=\"data:image/png;base64,%s\">" % (html.escape(title), data))
        if key == "battery" and battery is not None:
            parts.append(_table([
                ("ERI (elective replacement), day", battery["eri_day"] or "not reached"),
                ("EOS (end of service), day", battery["eos_day"] or "not reached"),
                ("remaining at the end: firmware's count / true cell (%)",
                 "%.2f / %.2f" % (battery["remaining_pct_firmware"],
                                  battery["remaining_pct_true"])),
                ("lowest voltage read (mV)", "%d" % battery["lowest_mv"]),
                ("pump clock - true time at the end (s)", "%.3f" % battery["clock_offset_s"])]))
        if key == "trumpet":
            tr = curves["trumpet"]
            parts.append(_table([("mean flow, 2nd hour (uL/h)", "%.3f" % tr["mean_flow_ul_per_h"]),
                                 ("mean error A (%)", "%.2f" % tr["mean_error_pct"])]
                                + [("window %s min: Ep(max) / Ep(min) (%%)" % w["window_min"],
                                    "%.2f / %.2f" % (w["max_error_pct"], w["min_error_pct"]))
                                   for w in tr["windows"]]))
    parts.append("<p class=\"edu\">%s</p></body></html>\n" % EDUCATIONAL)
    return "\n".join(parts)


def make_report(directory, out_dir=None, config=None):
    """Write the report; returns report.json's dict.  ReportInputError for a bad folder,
    ImportError when matplotlib is missing."""
    events, rows = load_run(directory)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    out_dir = out_dir or directory
    os.makedirs(out_dir, exist_ok=True)
    summary = summarize(events)
    daily = daily_doses(rows)
    curves = curves_error = None
    if config is not None:
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
    page = render_html(summary, daily, files, curves, out_dir, battery)
    with open(os.path.join(out_dir, "report.html"), "w", encoding="utf-8") as f:
        f.write(page)
    report = {"educational": EDUCATIONAL, "source": os.path.abspath(directory),
              "summary": summary, "daily": daily, "figures": files,
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
        report = make_report(args.dir, args.out, config)
    except ReportInputError as exc:
        stderr.write("vpump report: %s\n" % exc)
        return 2
    except ImportError as exc:
        stderr.write("vpump report: matplotlib is needed (%s): pip install vpump[report]\n" % exc)
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
