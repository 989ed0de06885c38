"""What the tests of runs, models and faults share: a run with its records, picking records,
and scenario text loaded from a temporary file.  Imported as `simtest` (pytest puts tests/sim on
sys.path)."""

from sim import scenario
from sim.runner import Run

MONDAY_0800 = 1767600000000       # 2026-01-05T08:00, the tests' start
MS_PER_HOUR = 3600000
MS_PER_DAY = 86400000
CONTINUOUS_400 = '[therapy]\nmode = "continuous"\nbasal_ug_per_day = 400\n'


def base_config(**fields):
    """A plain-data scenario (as sim.scenario.load returns it): 4 days from Monday 08:00 at 400
    ug/day continuous of 500 ug/mL, 20 mL filled, nothing else; fields override any key (a None
    faults, models or link leaves that table out)."""
    config = {
        "name": "test", "description": "", "days": 4, "seed": 7,
        "start_wall_ms": MONDAY_0800, "model": {}, "drug": "baclofen",
        "concentration_ug_per_ml": 500, "fill_nl": 20000000,
        "therapy": {"mode": "continuous", "basal_ug_per_day": 400}, "confirm": False,
        "low_reservoir_alarm_nl": 2000000, "limits": {}, "patient_bolus": None,
        "patient_requests_per_day": 0, "refills": None, "timeline": [],
    }
    for key, value in fields.items():
        if value is None and key in ("faults", "models", "link"):
            config.pop(key, None)
        else:
            config[key] = value
    return config


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
