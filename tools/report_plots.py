"""The plots of `vpump report` (tools/report.py): one PNG per subject, written with matplotlib.

plot_all(events, rows, summary, daily, curves, out_dir, plt, model) writes them and returns
{name: file}; therapy_spans and therapy_shares say how the run's time divides between therapy
states.  Legends go below their axes, never over the data.  docs/report.md describes each plot.
"""

import os

MS_PER_DAY = 86400000


def _days(rows):
    t0 = rows[0]["t_ms"]
    return [(r["t_ms"] - t0) / MS_PER_DAY for r in rows]


def _event_day(e, t0):
    return (e["t_ms"] - t0) / MS_PER_DAY


_STATE_COLORS = {"idle": "lightgray", "infusing": "tab:green", "bolus": "tab:blue",
                 "lockout": "tab:cyan", "reservoir_empty": "tab:red", "motor_stall": "tab:orange",
                 "battery_depleted": "black", "fault": "tab:purple"}


def _therapy_changes(events, rows):
    # [(t_ms, state)] from the first sample's state, by the pump's exact therapy state changes
    # (the hourly samples only if there are none), and the run's end.
    t0, t_end = int(rows[0]["t_ms"]), int(rows[-1]["t_ms"])
    changes = [(e["t_ms"], e.get("to")) for e in events
               if e["event"] == "state" and e.get("region") == "therapy" and t0 <= e["t_ms"] <= t_end]
    if not changes:
        changes = [(int(r["t_ms"]), r["therapy"]) for r in rows]
    return [(t0, rows[0]["therapy"])] + changes, t_end


def therapy_spans(events, rows):
    """{state: [(start_day, length_days), ...]} from the pump's therapy state changes (exact),
    starting from the first sample's state; the hourly samples only if there are none."""
    changes, t_end = _therapy_changes(events, rows)
    t0 = rows[0]["t_ms"]
    spans = {}
    current = changes[0]
    for t, state in changes[1:] + [(t_end, None)]:
        if t > current[0] or state is None:
            spans.setdefault(current[1], []).append(
                ((current[0] - t0) / MS_PER_DAY, max(t - current[0], 60000) / MS_PER_DAY))
        if state is not None:
            current = (t, state)
    return spans


def therapy_shares(events, rows, bins=None):
    """How the run's time divides between therapy states, exactly: (hours, bin_days, shares)
    with hours = {state: hours in it over the run}, and per bin of bin_days (about 150 bins
    over the run, whole hours or days) shares = {state: [fraction of each bin]}."""
    changes, t_end = _therapy_changes(events, rows)
    t0 = int(rows[0]["t_ms"])
    total = max(t_end - t0, 1)
    if bins is None:
        hours = -(-total // (150 * 3600000))
        bin_ms = 3600000 * (hours if hours < 24 else -(-hours // 24) * 24)
    else:
        bin_ms = max(1, -(-total // bins))
    n = -(-total // bin_ms)
    shares, spent = {}, {}
    for (t, state), (t_next, _) in zip(changes, changes[1:] + [(t_end, None)]):
        t, t_next = max(t, t0), min(t_next, t_end)
        if t_next <= t:
            continue
        spent[state] = spent.get(state, 0) + (t_next - t)
        lane = shares.setdefault(state, [0.0] * n)
        while t < t_next:
            i = min((t - t0) // bin_ms, n - 1)
            edge = min(t_next, t0 + (i + 1) * bin_ms)
            lane[i] += (edge - t) / bin_ms
            t = edge
    # the last bin may be short: its shares are of its own length
    last_len = total - (n - 1) * bin_ms
    if last_len < bin_ms:
        for lane in shares.values():
            lane[-1] *= bin_ms / last_len
    return (dict((k, v / 3600000.0) for k, v in spent.items()), bin_ms / MS_PER_DAY, shares)


def _legend_below(ax, handles=None, labels=None, ncol=3):
    # Below the axes, never over the data (savefig's bbox_inches="tight" makes room for it).
    if handles is None:
        handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=ncol,
                  fontsize=8, frameon=False)


def _bolus_days(events, t0, kinds=("clinician", "bridge")):
    # {kind: [day index]} of the boluses that make "programmed" jump on their day.
    out = {}
    for e in events:
        if e.get("src") == "pump" and e["event"] == "bolus_start" and e.get("kind") in kinds:
            out.setdefault(e["kind"], []).append(int((e["t_ms"] - t0) // MS_PER_DAY))
    return out


def plot_all(events, rows, summary, daily, curves, out_dir, plt, model=None):
    files = {}
    x = _days(rows)
    t0 = rows[0]["t_ms"]
    model = model or {}

    def save(fig, name):
        path = os.path.join(out_dir, name)
        fig.savefig(path, format="png", dpi=90, bbox_inches="tight")
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
    ax.set_ylim(bottom=0)
    ax.set_title("Reservoir: true vs estimated")
    _legend_below(ax)
    save(fig, "reservoir.png")

    fig, ax = plt.subplots(figsize=(9, 3.6))
    ax.bar(daily["day"], daily["delivered_true_ug"], width=0.8, label="delivered (true)",
           color="tab:blue", alpha=0.7)
    ax.plot(daily["day"], daily["programmed_ug"], "o-", color="tab:orange", ms=3,
            label="programmed (basal and boluses)")
    ax.plot(daily["day"], daily["delivered_csf_ug"], "x", color="tab:green", ms=4,
            label="reached CSF")
    # A clinician bolus makes its day's programmed dose jump: say why.  A bridge bolus (the
    # basal given with the old drug still in the tubing, after a refill) is marked too.
    marks = (("bridge", "v", "tab:red", "bridge bolus after a refill (the basal, old drug)"),
             ("clinician", "^", "tab:purple", "clinician bolus (on top of the basal)"))
    by_day = dict(zip(daily["day"], daily["programmed_ug"]))
    top = max(daily["programmed_ug"] + daily["delivered_true_ug"] + [1.0])
    bolus_days = _bolus_days(events, t0)
    for kind, marker, color, label in marks:
        days = sorted(set(d for d in bolus_days.get(kind, ()) if d in by_day))
        if days:
            ax.plot(days, [by_day[d] + top * 0.06 for d in days], marker, color=color, ms=6,
                    ls="none", label=label)
    ax.set_ylim(0, top * 1.15)
    ax.set_xlabel("day")
    ax.set_ylabel("dose per day (ug)")
    ax.set_title("Delivered dose per day vs programmed")
    _legend_below(ax)
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
    ax.set_ylim(0, top * 1.1)
    tone = ax.twinx()
    tone.plot(x, [r["tone_score"] for r in rows], color="tab:green", lw=1,
              label="tone score")
    tone.set_ylim(0, 4)
    tone.set_ylabel("tone score (0-4)")
    ax.set_title("Patient model: CSF concentration and muscle tone (educational)")
    lines, labels = ax.get_legend_handles_labels()
    more, more_labels = tone.get_legend_handles_labels()
    _legend_below(ax, lines + more, labels + more_labels, ncol=4)
    save(fig, "patient.png")

    # Charge remaining (%), the voltage the pump reads with the model's ERI/EOS thresholds, each
    # on its own axes so a threshold line never reads as a % level; a drifting crystal's offset
    # from true time below, when there is one.
    drift = any(r["clock_offset_s"] for r in rows)
    panels = 3 if drift else 2
    fig, axes = plt.subplots(panels, 1, figsize=(9, 2.4 * panels + 0.8), sharex=True,
                             squeeze=False)
    ax, volts = axes[0][0], axes[1][0]
    ax.plot(x, [r["battery_remaining_pct"] for r in rows], color="tab:purple",
            label="remaining: the firmware's count")
    if any(r["battery_true_remaining_pct"] != r["battery_remaining_pct"] for r in rows):
        ax.plot(x, [r["battery_true_remaining_pct"] for r in rows], color="tab:purple", ls="--",
                label="remaining: the true cell")
    ax.set_ylabel("remaining (%)")
    ax.set_ylim(0, 105)
    volts.plot(x, [r["battery_mv"] for r in rows], color="tab:gray", lw=1,
               label="voltage the pump reads")
    for key, color in (("eri_mv", "tab:orange"), ("eos_mv", "tab:red")):
        if key in model:
            volts.axhline(model[key], color=color, ls=":", lw=1,
                          label="%s threshold %d mV" % (key[:3].upper(), model[key]))
    volts.set_ylabel("battery (mV)")
    for e in events:
        if e.get("src") == "pump" and e["event"] == "alarm_raised" and \
                e.get("alarm") in ("elective_replacement", "end_of_service"):
            day = _event_day(e, t0)
            eri = e["alarm"] == "elective_replacement"
            for panel in (ax, volts):
                panel.axvline(day, color="tab:orange" if eri else "tab:red", lw=1)
            ax.annotate("ERI" if eri else "EOS", (day, 100), fontsize=8, ha="right", va="top",
                        rotation=90)
    ax.set_title("Battery")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.06), ncol=2, fontsize=8,
              frameon=False)
    if drift:
        volts.legend(loc="upper center", bbox_to_anchor=(0.5, -0.06), ncol=3, fontsize=8,
                     frameon=False)
        clock = axes[2][0]
        clock.plot(x, [r["clock_offset_s"] for r in rows], color="tab:brown")
        clock.set_ylabel("pump clock - true (s)")
        clock.set_title("Clock crystal drift", fontsize=9)
    else:
        _legend_below(volts)
    axes[-1][0].set_xlabel("day")
    fig.tight_layout()
    save(fig, "battery.png")

    # Therapy states as the share of each bin's time (stacked), so thousands of short lockouts
    # in a year read as the 18 % they are, not as a solid band; the legend gives the hours.
    hours, bin_days, shares = therapy_shares(events, rows)
    fig, ax = plt.subplots(figsize=(9, 3.8))
    order = [s for s in _STATE_COLORS if s in shares] + sorted(s for s in shares
                                                                 if s not in _STATE_COLORS)
    total_h = sum(hours.values()) or 1.0
    n = len(next(iter(shares.values()))) if shares else 0
    lefts = [i * bin_days for i in range(n)]
    bottom = [3.5] * n
    for state in order:
        heights = [v * 1.0 for v in shares[state]]
        ax.bar(lefts, heights, width=bin_days, bottom=bottom, align="edge", linewidth=0,
               color=_STATE_COLORS.get(state, "tab:gray"),
               label="%s %s h (%.1f %%)" % (state, "{:,.0f}".format(hours.get(state, 0)),
                                           100.0 * hours.get(state, 0) / total_h))
        bottom = [b + h for b, h in zip(bottom, heights)]
    lanes = (("alarm_raised", 2.6, "^", "tab:red", "alarm raised"),
             ("alarm_cleared", 2.0, "v", "tab:green", "alarm cleared"),
             ("refill", 1.4, "s", "tab:blue", "refill"),
             ("refused", 0.8, "x", "tab:gray", "refused request"),
             ("fault_start", 0.2, "D", "black", "fault"))
    for name, y, marker, color, label in lanes:
        pts = [_event_day(e, t0) for e in events if e["event"] == name
               and (name != "refill" or e.get("src") == "sim")]
        if pts:
            # Hundreds of marks (a year of refused presses) as thin ticks, so the lane reads as
            # how often, not as one solid band; the count is in the legend.
            many = len(pts) > 150
            ax.plot(pts, [y] * len(pts), "|" if many else marker, color=color, ls="none",
                    ms=6, alpha=0.35 if many else 1.0,
                    label="%s (%d)" % (label, len(pts)))
    ax.set_yticks([4.0, 2.6, 2.0, 1.4, 0.8, 0.2])
    ax.set_yticklabels(["therapy\n(share of time)", "alarm +", "alarm -", "refill", "refused",
                        "fault"])
    ax.set_ylim(-0.3, 4.7)
    ax.set_xlim(0, max(x[-1], bin_days))
    ax.set_xlabel("day (therapy shares per %s)" % (
        "%g h" % (bin_days * 24) if bin_days < 1 else "%g day%s" % (bin_days,
                                                                  "s" if bin_days != 1 else "")))
    ax.set_title("Timeline: therapy states, alarms, refills, refusals")
    _legend_below(ax, ncol=3)
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
        _legend_below(ax)
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
        _legend_below(ax)
        save(fig, "trumpet.png")
    return files
