"""What the tests of runs, models and faults share: a run with its records, picking records,
and scenario text loaded from a temporary file.  Imported as `simtest` (pytest puts tests/sim on
sys.path)."""

from sim import scenario
from sim.runner import Run

MONDAY_0800 = 1767600000000       # 2026-01-05T08:00, the tests' start
MS_PER_HOUR = 3600000
MS_PER_DAY = 86400000
CONTINUOUS_400 = '[therapy]\nmode = "continuous"\nbasal_ug_per_day = 400\n'


def run(cfg):
    """(Run, summary, events, hourly rows) of a whole run of the config."""
    events = []
    rows = []
    r = Run(cfg, sink=events.append, sample=rows.append)
    summary = r.run()
    return r, summary, events, rows


def run_shipped(name):
    return run(scenario.load(scenario.find(name)))


def rel(e):
    """A record's time from the start, in ms."""
    return e["t_ms"] - MONDAY_0800


def pump_events(events, name, after=0):
    return [e for e in events if e["src"] == "pump" and e["event"] == name and rel(e) >= after]


def sim_events(events, name):
    return [e for e in events if e["src"] == "sim" and e["event"] == name]


def row_at(rows, t_ms):
    """The timeseries row at t_ms from the start."""
    return [r for r in rows if r["t_ms"] - MONDAY_0800 == t_ms][0]


def doc(extra, therapy=CONTINUOUS_400):
    """A small valid scenario (5 days, seed 3, 500 ug/mL) with extra TOML appended."""
    return ('[scenario]\nname = "x"\ndays = 5\nseed = 3\n[drug]\nconcentration_ug_per_ml = 500\n'
            + therapy + extra)


def load_text(tmp_path, text):
    path = tmp_path / "s.toml"
    path.write_text(text, encoding="utf-8")
    return scenario.load(str(path))
