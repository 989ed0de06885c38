# Drug library and limit checks.
#
# A check returns None when the value is allowed, or a refusal (reason, field, value, lo, hi):
# the reason code, the field's name, the value given and the allowed range, so the programmer
# can say "basal_ug_per_day 50000 over hard limit (allowed 1..2000)".  Soft limits refuse with
# SOFT_LIMIT_NEEDS_CONFIRM unless the request carries confirm; hard limits always refuse.
# Where the defaults come from: docs/clinical.md, each with its source; UNSOURCED values there are
# configurable parameters with documented defaults.

from protocol import reasons

# Baclofen (Lioresal Intrathecal, Gablofen).
BACLOFEN = dict(
    drug="baclofen",
    # Lioresal 50/500/2000, Gablofen also 1000 ug/mL (drug labels).
    concentrations_ug_per_ml=[50, 500, 1000, 2000],
    # Usual spinal maintenance is 300-800 ug/day; doses up to about 2000 ug/day are reported
    # (Gablofen label); overdose was seen at 800-2400 ug/24 h (Lioresal label).
    daily_dose_soft_ug=800,
    daily_dose_hard_ug=2000,
    # The largest screening bolus is 100 ug (Lioresal label); the hard bolus limit is UNSOURCED.
    bolus_soft_ug=100,
    bolus_hard_ug=200,
    # Titration: spinal +10-30 % once per 24 h (Lioresal label); the hard limit is UNSOURCED.
    rate_increase_soft_pct=30,
    rate_increase_hard_pct=100,
)

LIBRARY = {"baclofen": BACLOFEN}

LIMIT_KEYS = ("daily_dose_soft_ug", "daily_dose_hard_ug", "bolus_soft_ug", "bolus_hard_ug",
              "rate_increase_soft_pct", "rate_increase_hard_pct")

# Structural ranges (not clinical): outside them a request is malformed.
MAX_UG = 1000000
MIN_LOCKOUT_MS = 15 * 60000         # PCA practice: lockout 15 min to 24 h, never 0
MAX_LOCKOUT_MS = 24 * 3600000
MAX_FLEX_STEPS = 13                 # SynchroMed flex: up to 13 rate changes a day
MINUTES_PER_DAY = 1440


def library_entry(drug):
    return LIBRARY.get(drug)


def check_range(field, value, lo, hi):
    if not isinstance(value, int) or isinstance(value, bool) or value < lo or value > hi:
        return (reasons.OUT_OF_RANGE, field, value, lo, hi)
    return None


def check_limits_table(limits):
    # A clinician's own limits must still be ordered and within the library's hard limits.
    for key in LIMIT_KEYS:
        bad = check_range(key, limits.get(key), 1, MAX_UG)
        if bad:
            return bad
    if limits["daily_dose_soft_ug"] > limits["daily_dose_hard_ug"]:
        return (reasons.OUT_OF_RANGE, "daily_dose_soft_ug", limits["daily_dose_soft_ug"],
                1, limits["daily_dose_hard_ug"])
    if limits["bolus_soft_ug"] > limits["bolus_hard_ug"]:
        return (reasons.OUT_OF_RANGE, "bolus_soft_ug", limits["bolus_soft_ug"],
                1, limits["bolus_hard_ug"])
    if limits["rate_increase_soft_pct"] > limits["rate_increase_hard_pct"]:
        return (reasons.OUT_OF_RANGE, "rate_increase_soft_pct", limits["rate_increase_soft_pct"],
                1, limits["rate_increase_hard_pct"])
    return None


def check_dose(field, value_ug, soft_ug, hard_ug, confirm):
    if value_ug > hard_ug:
        return (reasons.OVER_HARD_LIMIT, field, value_ug, 0, hard_ug)
    if value_ug > soft_ug and not confirm:
        return (reasons.SOFT_LIMIT_NEEDS_CONFIRM, field, value_ug, 0, soft_ug)
    return None


def check_daily(limits, daily_ug, baseline_ug, confirm):
    # baseline_ug: the lowest daily dose in effect during the last 24 h (None: no history).
    bad = check_dose("daily_dose_ug", daily_ug, limits["daily_dose_soft_ug"],
                     limits["daily_dose_hard_ug"], confirm)
    if bad or not baseline_ug:
        return bad
    # The refusal names the increase (over baseline_ug), as its field says: value the increase
    # asked, hi the increase allowed now (the programmer words the rule from these).
    hard = baseline_ug * (100 + limits["rate_increase_hard_pct"]) // 100
    if daily_ug > hard:
        return (reasons.OVER_HARD_LIMIT, "rate_increase_24h_ug", daily_ug - baseline_ug, 0,
                hard - baseline_ug)
    soft = baseline_ug * (100 + limits["rate_increase_soft_pct"]) // 100
    if daily_ug > soft and not confirm:
        return (reasons.SOFT_LIMIT_NEEDS_CONFIRM, "rate_increase_24h_ug", daily_ug - baseline_ug,
                0, soft - baseline_ug)
    return None


def check_bolus(limits, field, dose_ug, confirm):
    bad = check_range(field, dose_ug, 1, MAX_UG)
    if bad:
        return bad
    return check_dose(field, dose_ug, limits["bolus_soft_ug"], limits["bolus_hard_ug"], confirm)


def check_flex(steps):
    # steps: 7 lists (Monday first) of [start_minute, ug_per_day], the first at minute 0,
    # strictly increasing.  Returns a refusal or None.
    if not isinstance(steps, list) or len(steps) != 7:
        return (reasons.OUT_OF_RANGE, "flex_days", len(steps) if isinstance(steps, list) else -1, 7, 7)
    for day in steps:
        if not isinstance(day, list) or not 1 <= len(day) <= MAX_FLEX_STEPS:
            return (reasons.OUT_OF_RANGE, "flex_steps_per_day",
                    len(day) if isinstance(day, list) else -1, 1, MAX_FLEX_STEPS)
        previous = -1
        for step in day:
            start, rate = step[0], step[1]
            lo = 0 if previous < 0 else previous + 1
            hi = 0 if previous < 0 else MINUTES_PER_DAY - 1
            bad = check_range("flex_start_minute", start, lo, hi)
            if bad:
                return bad
            bad = check_range("flex_ug_per_day", rate, 0, MAX_UG)
            if bad:
                return bad
            previous = start
    return None


def flex_daily_ug(day):
    # The dose a flex day delivers: each step's rate for its share of the day.
    total = 0
    for i in range(len(day)):
        end = day[i + 1][0] if i + 1 < len(day) else MINUTES_PER_DAY
        total += day[i][1] * (end - day[i][0])
    return total // MINUTES_PER_DAY
