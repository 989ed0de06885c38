# Field ids: a NAK names the field at fault by its position in FIELDS (docs/protocol.md, "Field
# ids").  Ids never change meaning; new fields are only appended.  Id 0 means "no single field".

# Field name -> id.  Keyword arguments, so the names are interned strings (qstrs) on
# MicroPython, shared with every module that spells them.
_IDS = dict(
    basal_ug_per_day=1,
    daily_dose_ug=2,
    rate_increase_24h_ug=3,
    bolus_dose_ug=4,
    bolus_duration_ms=5,
    patient_bolus_duration_ms=6,
    lockout_ms=7,
    max_per_24h=8,
    role=9,
    counter=10,
    log_start=11,
    flex_days=12,
    flex_steps_per_day=13,
    flex_start_minute=14,
    flex_ug_per_day=15,
    volume_nl=16,
    concentration_ug_per_ml=17,
    low_reservoir_alarm_nl=18,
    silence_ms=19,
    wall_ms=20,
    daily_dose_soft_ug=21,
    daily_dose_hard_ug=22,
    bolus_soft_ug=23,
    bolus_hard_ug=24,
    rate_increase_soft_pct=25,
    rate_increase_hard_pct=26,
    patient_bolus_dose_ug=27,
)

# Names by id (FIELDS[0] is "": no single field).
FIELDS = ("",) + tuple(sorted(_IDS, key=_IDS.get))


def field_id(name):
    # Unknown names (and None) go on the wire as 0 rather than failing: a NAK must always be
    # sendable, and "no single field" is still true information.
    if name is None:
        return 0
    return _IDS.get(name, 0)


def field_name(fid):
    if 0 <= fid < len(FIELDS):
        return FIELDS[fid]
    # A newer pump may name a field this programmer does not know yet.
    return "field_%d" % fid
