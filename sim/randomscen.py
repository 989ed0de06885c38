"""Random valid scenarios, for the invariant monitor to be run over (tests, `vpump check`).

random_scenario(seed) returns a scenario as sim.scenario.validate() accepts it (the raw TOML
shape): a short run with a therapy, patient boluses, refills, a timeline of clinician actions
(programs, boluses, stops and starts, clears, resets...) and faults of every kind at random
moments and at random rates.  Everything is drawn from random.Random(seed): the same seed gives
the same scenario.
"""

import random

FAULT_KINDS = ("motor_stall", "occlusion", "dislodgement", "storage_fail", "power_loss",
               "mri", "bit_flip", "brown_out", "link_noise")
ACTIONS = ("program", "clinician_bolus", "refill", "start", "stop", "clear_alarm",
           "silence_alarms", "set_low_reservoir_alarm", "set_patient_bolus", "reset",
           "program_flex")


def _time(rng):
    return "%02d:%02d" % (rng.randrange(24), rng.randrange(60))


def _action(rng, days, capacity_ul):
    kind = rng.choice(ACTIONS)
    entry = {"day": rng.randrange(1, days), "time": _time(rng), "action": kind}
    if kind == "program":
        entry["basal_ug_per_day"] = rng.choice((0, 100, 300, 400, 600, 900))
        entry["confirm"] = rng.random() < 0.7
    elif kind == "program_flex":
        entry["flex"] = [{"days": ["all"], "steps": [["00:00", rng.choice((200, 400))],
                                                      ["08:00", rng.choice((300, 500))],
                                                      ["20:00", rng.choice((100, 400))]]}]
        entry["confirm"] = True
    elif kind == "clinician_bolus":
        entry["dose_ug"] = rng.choice((10, 50, 100, 150))
        entry["duration_min"] = rng.choice((1, 10, 30, 120))
        entry["confirm"] = rng.random() < 0.7
    elif kind == "refill":
        entry["volume_ul"] = rng.choice((0, 500, 2000, 5000, capacity_ul))
        entry["bridge"] = rng.random() < 0.5
    elif kind == "silence_alarms":
        entry["minutes"] = rng.choice((10, 60, 600))
    elif kind == "set_low_reservoir_alarm":
        entry["volume_ul"] = rng.choice((0, 1000, 2000, 4000))
    elif kind == "set_patient_bolus":
        entry.update(dose_ug=rng.choice((10, 25, 50)), duration_min=rng.choice((1, 10)),
                     lockout_min=rng.choice((15, 60, 180)), max_per_24h=rng.choice((1, 4, 8)),
                     confirm=True)
    return entry


def _fault(rng, days, kind):
    entry = {"kind": kind}
    if rng.random() < 0.5:
        entry["day"] = rng.randrange(1, days)
        entry["time"] = _time(rng)
    else:
        entry["rate_per_year"] = rng.choice((12, 50, 200))
    if kind not in ("power_loss", "bit_flip"):
        entry["duration_hours"] = rng.choice((0.1, 0.5, 2, 12))
    if kind == "power_loss":
        entry["during"] = rng.choice(("now", "commit", "log"))
    elif kind == "bit_flip":
        entry["bits"] = rng.choice((1, 3))
        entry["region"] = rng.choice(("snapshot", "snapshots", "log", "any"))
    elif kind == "mri":
        entry["recovery_hours"] = rng.choice((0, 2))
    elif kind == "link_noise":
        entry["drop_pct"] = rng.choice((10, 50))
        entry["corrupt_pct"] = rng.choice((0, 20))
    return entry


def random_scenario(seed, days=None):
    rng = random.Random(seed)
    days = days or rng.choice((5, 10, 20))
    capacity_ul = rng.choice((20000, 40000))
    concentration = rng.choice((500, 1000, 2000))
    raw = {
        "scenario": {"name": "random-%d" % seed, "days": days, "seed": seed % 100000},
        "pump": {"reservoir_ml": capacity_ul // 1000},
        "drug": {"concentration_ug_per_ml": concentration,
                 "fill_ul": rng.choice((1000, 2500, 5000, capacity_ul))},
        "therapy": {"mode": "continuous", "basal_ug_per_day": rng.choice((100, 400, 800)),
                    "low_reservoir_alarm_ul": rng.choice((0, 2000, 3000)), "confirm": True},
    }
    if rng.random() < 0.8:
        raw["patient_bolus"] = {"dose_ug": rng.choice((10, 25, 50)),
                                "duration_min": rng.choice((1, 10, 30)),
                                "lockout_min": rng.choice((15, 60, 180)),
                                "max_per_24h": rng.choice((1, 4, 8)),
                                "requests_per_day": rng.choice((2, 6, 20))}
    if rng.random() < 0.6:
        raw["refills"] = {"every_days": rng.choice((2, 5, 9)),
                          "volume_ul": rng.choice((2000, capacity_ul)),
                          "bridge": rng.random() < 0.5}
    if rng.random() < 0.4:
        models = {"clock_drift_ppm": rng.choice((-50, 20, 150))}
        if rng.random() < 0.5:
            models["motor_bias_pct"] = rng.choice((-10, 10))
        raw["models"] = models
    if rng.random() < 0.3:
        raw["link"] = {"clinician": "telemetry",
                       "patient": rng.choice(("direct", "telemetry"))}
    raw["timeline"] = [_action(rng, days, capacity_ul) for _ in range(rng.randrange(3, 15))]
    kinds = [k for k in FAULT_KINDS if k != "link_noise" or "link" in raw]
    raw["faults"] = [_fault(rng, days, rng.choice(kinds)) for _ in range(rng.randrange(0, 5))]
    return raw
