"""[pump]: the pump model's parameters (firmware/pump.py MODEL), each with its range."""

from firmware.pump import MODEL
from sim.scenario.fields import Custom, Int

MS_PER_MIN = 60000
MS_PER_DAY = 86400000
RESERVOIR_SIZES_ML = (20, 40)       # SynchroMed II 8637-20/-40, Prometra 20/40 mL (docs/clinical.md)

# Ranges (lo, hi, note): 0 in some would crash or hang a run, and huge values overflow the event
# log's 32-bit fields.  Keys not listed allow 0 to 10**9.
_MS_PER_YEAR = 365 * MS_PER_DAY
_RANGES = {
    "reservoir_capacity_nl": (1000000, 100000000, " (1 to 100 mL)"),
    "battery_capacity_nah": (1, 10 ** 13, " (the runner divides by it)"),
    "eri_remaining_nah": (0, 10 ** 13, ""),
    "eos_remaining_nah": (0, 10 ** 13, ""),
    "max_rate_nl_per_hour": (1, 10 ** 9, " (the firmware divides by it)"),
    "critical_repeat_ms": (1000, MS_PER_DAY, " (0 re-arms the alarm tone at one instant forever)"),
    "noncritical_repeat_ms": (1000, MS_PER_DAY,
                              " (0 re-arms the alarm tone at one instant forever)"),
    "commit_interval_ms": (MS_PER_MIN, MS_PER_DAY,
                           " (housekeeping must read the clock at least daily: tick wrap)"),
    "eos_after_eri_ms": (0, 20 * _MS_PER_YEAR, ""),
    "max_service_ms": (MS_PER_DAY, 20 * _MS_PER_YEAR, ""),
    "max_silence_ms": (0, 7 * MS_PER_DAY, ""),
    # Two slots and one 32-byte log record must fit the sim board's 32768-byte storage.
    "storage_slot_bytes": (12, 16368, " (two slots and the event log fit 32768 bytes)"),
    "stroke_nl": (50, 10000, ""),
}
_DEFAULT_RANGE = (0, 10 ** 9, "")
MAX_CAPACITY_UL = _RANGES["reservoir_capacity_nl"][1] // 1000
RESERVOIR_ML_ALLOWED = ("must be 20 or 40 (the real reservoir sizes: SynchroMed II 8637-20/-40, "
                        "Prometra 20/40 mL; docs/clinical.md)")
_DOC = "pump-model parameter (firmware/pump.py MODEL)"


def _reservoir_ml(c, T, t, key):
    if "reservoir_capacity_nl" in t:
        c.fail(T, key, t[key], "give reservoir_ml or reservoir_capacity_nl, not both")
    ml = t[key]
    if isinstance(ml, bool) or not isinstance(ml, int) or ml not in RESERVOIR_SIZES_ML:
        c.fail(T, key, ml, RESERVOIR_ML_ALLOWED)
    return ml * 1000000


def _field(key):
    lo, hi, note = _RANGES.get(key, _DEFAULT_RANGE)
    unit = "of nL" if key == "stroke_nl" else ""
    return Int(lo, hi, unit=unit, note=note, default=MODEL[key], doc=_DOC)


FIELDS = dict((key, _field(key)) for key in MODEL if key != "name")
FIELDS["reservoir_ml"] = Custom(
    _reservoir_ml, {"enum": list(RESERVOIR_SIZES_ML),
                    "description": "the reservoir's size in mL, instead of "
                                   "reservoir_capacity_nl: " +
                                   RESERVOIR_ML_ALLOWED.replace("must be ", "", 1)},
    default=None)


def validate(c, t):
    T = "pump"
    c.keys(T, t, tuple(FIELDS), why=" (pump-model parameters: firmware/pump.py MODEL)")
    model = {}
    for key in t:
        if key == "reservoir_ml":
            model["reservoir_capacity_nl"] = FIELDS[key].check(c, T, t, key)
        else:
            model[key] = FIELDS[key].check(c, T, t, key)
    return model


def capacity_nl(model):
    return model.get("reservoir_capacity_nl", MODEL["reservoir_capacity_nl"])


def low_reservoir_alarm_nl(model):
    return model.get("low_reservoir_alarm_nl", MODEL["low_reservoir_alarm_nl"])
