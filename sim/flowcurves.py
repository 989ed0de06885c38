"""IEC 60601-2-24 style start-up curve and trumpet curve of a simulated flow (host only, pure Python).

    samples_from_events(events, ...) -> [nL, ...]     (t_ms, cumulative nL) events -> 0.5-min samples
    startup_curve(cumulative_nl, set_rate, ...) -> dict   flow per sampling interval, first 2 h
    trumpet_curve(cumulative_nl, set_rate, ...) -> dict   Ep(max)/Ep(min) per observation window
    flow_curves(cumulative_nl, set_rate, ...) -> dict     both, as one JSON-serialisable dict

Input is the *cumulative* delivered volume in whole nL sampled at a fixed interval (the standard's
balance reading W_i; sample 0 is the start of the infusion, so it is normally 0), and the set rate
in nL/h -- or, for a programmed rate that changes, the cumulative programmed volume at the same
sample times.  Everything returned is plain dicts, lists, ints, floats and None; percentages are in
% (a +5 means 5 % above the set rate), flows in uL/h, times in minutes.  docs/flow-curves.md
explains the definitions and choices.

Definitions (after IEC 60601-2-24; the standard itself is not public, so these follow the public
descriptions listed below -- where they are silent the choice is ours and is marked CHOICE):

* Sampling interval dt = 0.5 min; start-up period T1 = 120 min from the start of the infusion.
* Flow in interval i (i = 1..N):  Q_i = (W_i - W_(i-1)) / dt.  The start-up curve is Q_i against
  the interval's end time, in uL/h and in % of the set rate.  CHOICE: no further smoothing.
* Trumpet curve over the analysis period T2 = the second hour (60..120 min): for an observation
  window of P minutes (2, 5, 11, 19, 31), p = P / dt consecutive intervals; for every window
  start j on the sampling grid inside T2 (m = T2/dt - p + 1 windows, sliding by one interval),
      E_j = 100 * (delivered in the window - programmed in the window) / programmed in the window
  and Ep(max) = max_j E_j, Ep(min) = min_j E_j.  For a constant set rate r this equals the
  standard's mean of the per-interval errors (100/p) * sum (Q_i - r) / r.  CHOICE: for a
  programmed volume that varies the window's programmed volume is the denominator.
* Overall mean error A = 100 * (delivered in T2 - programmed in T2) / programmed in T2.

Sources used (public descriptions of the standard's test; none is the standard's text):
  - B. Braun Perfusor compact plus and Infusomat Space instructions for use, "Start-up and trumpet
    curves": measurement interval dt = 0.5 min, measurement duration T = 120 min, trumpet curves
    from the measured values of the second hour, observation interval p x dt.
    (easymanua.ls/braun/perfusor-compact-plus/manual?p=42; manualshive.com ... infusomat-space-p)
  - Fluke/Datrend Infutest 2000 DTP help: max and min percent error for the 2, 5, 11, 19 and
    31 minute intervals of IEC 601-2-24, over a 60-minute calculation window.
  - Smiths Medical CADD operator's manual "Accuracy Test Results": Ep(max), Ep(min), mean flow
    error over the analysis period T2.
  - "Trumpet curves" commentary, J Diabetes Sci Technol, doi:10.1177/1932296818806509: the
    horizontal axis is the observation window length; only the extreme windows are shown.
"""

import math

SAMPLE_INTERVAL_MIN = 0.5
SAMPLE_INTERVAL_MS = 30000
STARTUP_MIN = 120
ANALYSIS_START_MIN = 60
ANALYSIS_PERIOD_MIN = 60
WINDOWS_MIN = (2, 5, 11, 19, 31)

_EPS = 1e-9


def _whole(x):
    """x as an int if it is within rounding of a whole number, else None."""
    n = round(x)
    return int(n) if abs(x - n) < _EPS * max(1.0, abs(x)) else None


def _check_interval(interval_min):
    if (isinstance(interval_min, bool) or not isinstance(interval_min, (int, float))
            or not math.isfinite(interval_min) or not 0 < interval_min <= 1):
        raise ValueError("interval_min = %r: must be a number of minutes > 0 and <= 1 "
                         "(the standard uses 0.5)" % (interval_min,))


def _intervals(name, minutes, interval_min, at_least=1):
    """How many sampling intervals `minutes` spans; ValueError unless a whole number >= at_least."""
    if isinstance(minutes, bool) or not isinstance(minutes, (int, float)) or not math.isfinite(minutes):
        raise ValueError("%s = %r: must be a number of minutes" % (name, minutes))
    n = _whole(minutes / interval_min)
    if n is None or n < at_least:
        raise ValueError("%s = %r: must be a whole multiple of interval_min = %r, at least %r min"
                         % (name, minutes, interval_min, at_least * interval_min))
    return n


def _check_cumulative(name, values, min_len):
    if not isinstance(values, (list, tuple)):
        raise ValueError("%s: must be a list of cumulative volumes in nL, got %s"
                         % (name, type(values).__name__))
    if len(values) < min_len:
        raise ValueError("%s: %d samples: must have at least %d (sample 0 and %d sampling intervals)"
                         % (name, len(values), min_len, min_len - 1))
    prev = None
    for i, v in enumerate(values):
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ValueError("%s[%d] = %r: must be a whole number of nL >= 0" % (name, i, v))
        if prev is not None and v < prev:
            raise ValueError("%s[%d] = %d: must not be less than %s[%d] = %d (volumes are cumulative)"
                             % (name, i, v, name, i - 1, prev))
        prev = v


def _programmed(set_rate, n, interval_min):
    """The cumulative programmed volume (floats, nL) at n sample times."""
    if isinstance(set_rate, (list, tuple)):
        if len(set_rate) != n:
            raise ValueError("set_rate: %d programmed samples: must be as many as the delivered "
                             "samples (%d)" % (len(set_rate), n))
        for i, v in enumerate(set_rate):
            if (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)
                    or v < 0 or (i and v < set_rate[i - 1])):
                raise ValueError("set_rate[%d] = %r: must be a cumulative programmed volume in nL, "
                                 ">= 0 and not decreasing" % (i, v))
        return [float(v) for v in set_rate]
    if (isinstance(set_rate, bool) or not isinstance(set_rate, (int, float))
            or not math.isfinite(set_rate) or set_rate <= 0):
        raise ValueError("set_rate = %r: must be a rate in nL/h > 0, or a list of cumulative "
                         "programmed nL at the sample times" % (set_rate,))
    per = set_rate * interval_min / 60.0
    return [per * i for i in range(n)]


def samples_from_events(events, interval_ms=SAMPLE_INTERVAL_MS, duration_ms=None, start_ms=0):
    """Cumulative delivered nL at start_ms, start_ms + interval_ms, ... up to duration_ms.

    events: (t_ms, cumulative_nl) pairs in time order, e.g. one per motor stroke with the volume
    delivered so far; a stroke counts from its timestamp on (a sample at exactly t_ms includes it).
    Volume delivered before start_ms is subtracted, so sample 0 is 0.  duration_ms defaults to the
    last event's time (rounded down to the grid).  Returns a list of ints, len = duration/interval + 1.
    """
    if isinstance(interval_ms, bool) or not isinstance(interval_ms, int) or interval_ms <= 0:
        raise ValueError("interval_ms = %r: must be a whole number of ms > 0 (the standard uses 30000)"
                         % (interval_ms,))
    if isinstance(start_ms, bool) or not isinstance(start_ms, int):
        raise ValueError("start_ms = %r: must be a whole number of ms" % (start_ms,))
    events = list(events)
    prev_t, prev_v = None, None
    for i, ev in enumerate(events):
        try:
            t, v = ev
        except (TypeError, ValueError):
            raise ValueError("events[%d] = %r: must be a (t_ms, cumulative_nl) pair" % (i, ev)) from None
        if (isinstance(t, bool) or not isinstance(t, int) or isinstance(v, bool)
                or not isinstance(v, int) or v < 0):
            raise ValueError("events[%d] = %r: t_ms and cumulative_nl must be whole numbers, nL >= 0"
                             % (i, ev))
        if prev_t is not None and (t < prev_t or v < prev_v):
            raise ValueError("events[%d] = %r: times and volumes must not decrease (previous %r)"
                             % (i, ev, (prev_t, prev_v)))
        prev_t, prev_v = t, v
    events = [tuple(ev) for ev in events]
    if duration_ms is None:
        duration_ms = max(0, (prev_t if prev_t is not None else start_ms) - start_ms)
    if isinstance(duration_ms, bool) or not isinstance(duration_ms, int) or duration_ms < 0:
        raise ValueError("duration_ms = %r: must be a whole number of ms >= 0" % (duration_ms,))
    n = duration_ms // interval_ms + 1
    out = []
    k = 0
    current = 0
    evs = events
    # volume delivered up to and including start_ms is the baseline
    while k < len(evs) and evs[k][0] <= start_ms:
        current = evs[k][1]
        k += 1
    base = current
    for i in range(n):
        t_sample = start_ms + i * interval_ms
        while k < len(evs) and evs[k][0] <= t_sample:
            current = evs[k][1]
            k += 1
        out.append(current - base)
    return out


def startup_curve(cumulative_nl, set_rate, interval_min=SAMPLE_INTERVAL_MIN,
                  duration_min=STARTUP_MIN):
    """Flow per sampling interval over the first duration_min minutes.

    Returns {"interval_min", "duration_min", "set_rate_ul_per_h" (None for a programmed volume
    list), "t_min": [end of each interval], "flow_ul_per_h": [...], "flow_pct_of_set": [...]
    (None where nothing was programmed in the interval)}.
    """
    _check_interval(interval_min)
    n = _intervals("duration_min", duration_min, interval_min)
    _check_cumulative("cumulative_nl", cumulative_nl, n + 1)
    prog = _programmed(set_rate, len(cumulative_nl), interval_min)
    per_h = 60.0 / interval_min
    t, flow, pct = [], [], []
    for i in range(1, n + 1):
        d = cumulative_nl[i] - cumulative_nl[i - 1]
        e = prog[i] - prog[i - 1]
        t.append(round(i * interval_min, 9))
        flow.append(d * per_h / 1000.0)
        pct.append(100.0 * d / e if e > 0 else None)
    return {
        "interval_min": interval_min,
        "duration_min": duration_min,
        "set_rate_ul_per_h": None if isinstance(set_rate, (list, tuple)) else set_rate / 1000.0,
        "t_min": t,
        "flow_ul_per_h": flow,
        "flow_pct_of_set": pct,
    }


def trumpet_curve(cumulative_nl, set_rate, interval_min=SAMPLE_INTERVAL_MIN, windows_min=WINDOWS_MIN,
                  start_min=ANALYSIS_START_MIN, period_min=ANALYSIS_PERIOD_MIN):
    """Ep(max), Ep(min) in % per observation window over [start_min, start_min + period_min].

    Returns {"interval_min", "analysis_start_min", "analysis_period_min", "set_rate_ul_per_h",
    "mean_flow_ul_per_h", "mean_error_pct", "windows": [{"window_min", "intervals", "count",
    "max_error_pct", "min_error_pct"}, ...]} in the order of windows_min.
    """
    _check_interval(interval_min)
    j0 = _intervals("start_min", start_min, interval_min, at_least=0)
    m = _intervals("period_min", period_min, interval_min)
    _check_cumulative("cumulative_nl", cumulative_nl, j0 + m + 1)
    if not isinstance(windows_min, (list, tuple)) or not windows_min:
        raise ValueError("windows_min = %r: must be a non-empty list of minutes" % (windows_min,))
    ps = []
    for w in windows_min:
        p = _intervals("windows_min", w, interval_min)
        if p > m:
            raise ValueError("windows_min = %r: each window must be at most period_min = %r"
                             % (w, period_min))
        ps.append(p)
    prog = _programmed(set_rate, len(cumulative_nl), interval_min)
    W = cumulative_nl

    def err(a, b):
        e = prog[b] - prog[a]
        if e <= 0:
            raise ValueError("set_rate: nothing programmed between %r and %r min: the programmed "
                             "volume must increase within every window (the error in %% is "
                             "relative to it)" % (a * interval_min, b * interval_min))
        return 100.0 * ((W[b] - W[a]) - e) / e

    windows = []
    for w, p in zip(windows_min, ps):
        errs = [err(j, j + p) for j in range(j0, j0 + m - p + 1)]
        windows.append({
            "window_min": w,
            "intervals": p,
            "count": len(errs),
            "max_error_pct": max(errs),
            "min_error_pct": min(errs),
        })
    return {
        "interval_min": interval_min,
        "analysis_start_min": start_min,
        "analysis_period_min": period_min,
        "set_rate_ul_per_h": None if isinstance(set_rate, (list, tuple)) else set_rate / 1000.0,
        "mean_flow_ul_per_h": (W[j0 + m] - W[j0]) * 60.0 / (period_min * 1000.0),
        "mean_error_pct": err(j0, j0 + m),
        "windows": windows,
    }


def flow_curves(cumulative_nl, set_rate, interval_min=SAMPLE_INTERVAL_MIN):
    """{"standard", "startup": startup_curve(...), "trumpet": trumpet_curve(...)} with defaults."""
    return {
        "standard": "IEC 60601-2-24 (start-up and trumpet curves, as described in public sources)",
        "startup": startup_curve(cumulative_nl, set_rate, interval_min),
        "trumpet": trumpet_curve(cumulative_nl, set_rate, interval_min),
    }
