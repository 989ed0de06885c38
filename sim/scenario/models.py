"""[models]: the simulated pump's stroke bias and noise, refill errors, the true battery cell
(sim/battery.py) and the clock crystal (sim/crystal.py).  Absent keys put nothing in the config,
so a scenario without them replays exactly as before (docs/battery-and-clock.md says where each
default comes from)."""

from sim.scenario.fields import Choice, Int, Percent, Scaled, table_schema

ACCURACY_CLASS_PPM = 145000         # flow accuracy within +-14.5 % (docs/clinical.md)
_BIAS_SEED_XOR = 0x0B1A5EED
BATTERY_CHEMISTRIES = ("li-cfx-svo", "li-svo")
CLOCK_TEMPCO_PPM_PER_C2 = -0.034       # tuning-fork watch crystal (docs/battery-and-clock.md)
CLOCK_TURNOVER_C = 25
_NEEDS_BATTERY = 'needs battery = "li-cfx-svo" or "li-svo" in [models] (the true cell it describes)'


class _Bias(Percent):
    # A percentage, or "random": one pump of the accuracy class, drawn from the seed.
    def json_type(self):
        return {"anyOf": [Percent.json_type(self), {"const": "random"}]}


MOTOR_FIELDS = {
    "motor_bias_pct": _Bias(-50, 50, ', or "random" (a seeded draw within the +-14.5 % accuracy '
                            "class: docs/clinical.md)",
                            doc="every stroke's true volume vs the nominal stroke_nl"),
    "motor_noise_pct": Percent(0, 50, " (each stroke varies uniformly within +-this)",
                               doc="stroke-to-stroke variation"),
    "refill_error_pct": Percent(-50, 50, " (the true volume of every fill and refill vs what "
                                "the clinician enters)", doc="fill and refill volume error"),
}
BATTERY_FIELDS = {
    "battery": Choice(BATTERY_CHEMISTRIES, default=None,
                      note=" (the true cell's chemistry: docs/battery-and-clock.md)",
                      doc="model the true battery cell"),
    "battery_capacity_error_pct": Percent(-50, 50, " (this cell's true capacity vs the nominal "
                                          "battery_capacity_nah)"),
    "battery_capacity_spread_pct": Percent(0, 50, " (the true capacity is drawn uniformly "
                                           "within +-this, seeded)"),
    "battery_self_discharge_pct_per_year": Percent(0, 20, " of the capacity"),
    "battery_stroke_load_ua": Int(0, 100000, unit="uA", note=" (current during a stroke)",
                                  default=None),
    "battery_read": Choice(("loaded", "rest"), default=None,
                           note=" (the firmware's reading under a stroke's load, or at rest)"),
    "telemetry_sessions_per_day": Int(0, 96, note=" (routine read-outs, evenly spaced)",
                                      default=None),
}
CLOCK_FIELDS = {
    "clock_drift_ppm": Scaled(-200, 200, 1000, " of ppm", " (the crystal's frequency error at "
                              "25 degC; + runs fast)"),
    "clock_temperature_c": Scaled(20, 45, 1000, " of degC", " (where the crystal sits: 37 in "
                                  "the body)"),
    "clock_tempco_ppm_per_c2": Scaled(-0.1, 0, 10 ** 6, " of ppm/degC^2",
                                      doc="the crystal's parabolic temperature coefficient"),
    "clock_aging_ppm_per_year": Scaled(-10, 10, 1000, " of ppm", doc="drift added per year"),
}
FIELDS = dict(list(MOTOR_FIELDS.items()) + list(BATTERY_FIELDS.items())
              + list(CLOCK_FIELDS.items()))
BATTERY_KEYS = tuple(BATTERY_FIELDS)
CLOCK_KEYS = tuple(CLOCK_FIELDS)


def models_schema():
    out = table_schema(FIELDS, "the simulated pump's imperfections, battery cell and crystal")
    # A cell's details need the cell.
    out["dependentRequired"] = dict((key, ["battery"]) for key in BATTERY_KEYS[1:])
    return out


def validate(c, t, config):
    T = "models"
    c.keys(T, t, tuple(FIELDS))
    cell_and_crystal = _battery_and_clock(c, T, t)
    if t.get("motor_bias_pct") == "random":
        # One pump of the accuracy class: a bias drawn from the seed, uniform in +-14.5 %.
        from hal.sim import SimRng
        draw = SimRng(config["seed"] ^ _BIAS_SEED_XOR).next_u32()
        bias = draw % (2 * ACCURACY_CLASS_PPM + 1) - ACCURACY_CLASS_PPM
    else:
        bias = FIELDS["motor_bias_pct"].check(c, T, t, "motor_bias_pct")
    noise = FIELDS["motor_noise_pct"].check(c, T, t, "motor_noise_pct")
    fill = FIELDS["refill_error_pct"].check(c, T, t, "refill_error_pct")
    models = {"motor_bias_ppm": bias, "motor_noise_ppm": noise, "refill_error_ppm": fill}
    models.update(cell_and_crystal)
    return models


def _battery_and_clock(c, T, t):
    F = FIELDS
    out = {}
    chemistry = t.get("battery")
    if "battery" in t:
        out["battery"] = F["battery"].check(c, T, t, "battery")
    for key in BATTERY_KEYS[1:]:
        if key in t and chemistry is None:
            c.fail(T, key, t[key], _NEEDS_BATTERY)
    error = F["battery_capacity_error_pct"].check(c, T, t, "battery_capacity_error_pct")
    if error:
        out["battery_capacity_error_ppm"] = error
    spread = F["battery_capacity_spread_pct"].check(c, T, t, "battery_capacity_spread_pct")
    if spread:
        out["battery_capacity_spread_ppm"] = spread
    if "battery_self_discharge_pct_per_year" in t:
        out["battery_self_discharge_ppm_per_year"] = F[
            "battery_self_discharge_pct_per_year"].check(
            c, T, t, "battery_self_discharge_pct_per_year")
    for key in ("battery_stroke_load_ua", "battery_read", "telemetry_sessions_per_day"):
        if key in t:
            out[key] = F[key].check(c, T, t, key)
    if any(key in t for key in CLOCK_KEYS):
        drift = F["clock_drift_ppm"].check(c, T, t, "clock_drift_ppm") or 0
        tempco = F["clock_tempco_ppm_per_c2"].check(c, T, t, "clock_tempco_ppm_per_c2")
        if tempco is None:
            tempco = int(round(CLOCK_TEMPCO_PPM_PER_C2 * 10 ** 6))     # ppb per 1000 degC^2
        temperature_mc = F["clock_temperature_c"].check(c, T, t, "clock_temperature_c")
        if temperature_mc is not None:
            d_mc = temperature_mc - CLOCK_TURNOVER_C * 1000
            # tempco here is ppb/degC^2 x 1000; d_mc^2 is (milli-degC)^2: divide by 10^9.
            drift += tempco * d_mc * d_mc // 10 ** 9
        out["clock_drift_ppb"] = drift
        aging = F["clock_aging_ppm_per_year"].check(c, T, t, "clock_aging_ppm_per_year")
        if aging:
            out["clock_aging_ppb_per_year"] = aging
    return out
