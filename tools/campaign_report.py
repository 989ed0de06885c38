"""A campaign's HTML page (DIR/report.html): the aggregate's tables and its distributions
plotted with matplotlib, every figure embedded as a PNG data URI (one self-contained file).

Figures: violations by requirement; per fault kind the time to detection and the drug missed
or over-delivered (box plots over every occurrence); withdrawal-risk hours per run.
Educational, not clinical advice.
"""

import base64
import html
import io

EDUCATIONAL = "Educational, not clinical advice."


def _png(fig, plt):
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _table(header, rows):
    out = ["<table><tr>%s</tr>" % "".join("<th>%s</th>" % html.escape(str(h)) for h in header)]
    for row in rows:
        out.append("<tr>%s</tr>" % "".join("<td>%s</td>" % html.escape("" if c is None else str(c))
                                           for c in row))
    out.append("</table>")
    return "\n".join(out)


def _dist(d):
    if not d["n"]:
        return ["-"] * 4
    return [d["min"], d["median"], d["p95"], d["max"]]


def figures(agg, run_rows, fault_rows):
    """[(title, base64 PNG)] of the campaign's distributions."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = []
    reqs = sorted(agg["violations"])
    fig, ax = plt.subplots(figsize=(8, 2.8))
    if reqs:
        ax.bar(reqs, [agg["violations"][r]["count"] for r in reqs], color="#c0392b")
        ax.set_ylabel("violations")
    else:
        ax.text(0.5, 0.5, "no violation in %d runs" % agg["runs"], ha="center", va="center",
                transform=ax.transAxes)
        ax.set_xticks([])
        ax.set_yticks([])
    ax.set_title("Invariant violations by requirement")
    out.append(("Violations by requirement", _png(fig, plt)))

    kinds = sorted(set(r["kind"] for r in fault_rows))
    if kinds:
        for column, title, unit in (("detection_h", "Time to detection", "hours"),
                                    ("missed_ug", "Drug missed per fault", "ug"),
                                    ("over_ug", "Drug over-delivered per fault", "ug")):
            data, labels = [], []
            for kind in kinds:
                values = [r[column] for r in fault_rows
                          if r["kind"] == kind and r[column] is not None]
                data.append(values or [float("nan")])
                labels.append("%s\n(n=%d)" % (kind, len(values)))
            fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(kinds)), 3.2))
            ax.boxplot(data, whis=(5, 95), showfliers=True)
            ax.set_xticks(range(1, len(labels) + 1))
            ax.set_xticklabels(labels, fontsize=8)
            # Log above a small linear band: minutes and months, tens and thousands of ug.
            ax.set_yscale("symlog", linthresh=0.1 if unit == "hours" else 1.0)
            top = max([v for vs in data for v in vs if v == v] or [1.0])
            ax.set_ylim(0, max(1.0, top * 3))
            ax.set_ylabel(unit + " (log scale)")
            ax.set_title("%s, per fault kind (whiskers 5-95 %%)" % title)
            out.append(("%s per fault kind" % title, _png(fig, plt)))
    hours = [r["withdrawal_risk_hours"] for r in run_rows
             if r.get("withdrawal_risk_hours") is not None]
    fig, ax = plt.subplots(figsize=(8, 2.8))
    ax.hist(hours or [0], bins=40, color="#2c7fb8")
    ax.set_xlabel("withdrawal-risk hours in the run (educational patient model)")
    ax.set_ylabel("runs")
    ax.set_title("Withdrawal-risk hours per run")
    out.append(("Withdrawal-risk hours per run", _png(fig, plt)))
    return out


def render(agg, run_rows, fault_rows):
    """The page's HTML text."""
    title = "vpump campaign: %s" % agg["campaign"]
    parts = ["<!DOCTYPE html><html><head><meta charset=\"utf-8\">",
             "<title>%s</title>" % html.escape(title),
             "<style>body{font-family:sans-serif;max-width:1000px;margin:1em auto}"
             "table{border-collapse:collapse;margin:0.5em 0}th,td{border:1px solid #ccc;"
             "padding:2px 8px;text-align:left}.edu{background:#fff3cd;padding:6px}"
             "img{max-width:100%}</style></head><body>",
             "<h1>%s</h1>" % html.escape(title),
             "<p class=\"edu\"><b>%s</b> Simulated pumps and patients.</p>" % EDUCATIONAL]
    dose = agg["dose"]
    parts.append(_table(("runs", "patient-years", "crashes", "violations",
                         "delivered / programmed"),
                        [(agg["runs"], agg["patient_years"], agg["crashes"]["count"],
                          agg["violations_total"],
                          "%s %%" % dose["delivered_vs_programmed_pct"])]))
    parts.append("<h2>Violations by requirement</h2>")
    if agg["violations"]:
        parts.append(_table(("requirement", "violations", "runs", "first message", "repro"),
                            [(req, e["count"], e["runs"], e["message"], e["repro"])
                             for req, e in agg["violations"].items()]))
    else:
        parts.append("<p>None.</p>")
    parts.append("<h2>Faults</h2>")
    parts.append(_table(("kind", "occurrences", "undetected", "detection h min", "median", "p95",
                         "max", "missed ug median", "p95", "max", "over ug p95", "max"),
                        [(k, f["occurrences"], f["undetected"]) + tuple(_dist(f["detection_hours"]))
                         + tuple(_dist(f["missed_ug"])[1:])
                         + tuple(_dist(f["over_delivered_ug"])[2:])
                         for k, f in agg["faults"].items()]))
    w = agg["withdrawal_risk"]
    parts.append("<h2>Withdrawal risk</h2>")
    parts.append(_table(("hours in all", "per patient-year", "runs with any", "per run median",
                         "p95", "max"),
                        [(w["hours_total"], w["hours_per_patient_year"], w["runs_with_any"],
                          w["hours_per_run"]["median"], w["hours_per_run"]["p95"],
                          w["hours_per_run"]["max"])]))
    for name, data in figures(agg, run_rows, fault_rows):
        parts.append("<h2>%s</h2>" % html.escape(name))
        parts.append("<img alt=\"%s\" src=\"data:image/png;base64,%s\">"
                     % (html.escape(name), data))
    parts.append("<p class=\"edu\">%s</p></body></html>\n" % EDUCATIONAL)
    return "\n".join(parts)
