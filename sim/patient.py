"""Educational patient model for intrathecal baclofen (host only).

EDUCATIONAL MODEL, NOT CLINICAL ADVICE.  The numbers are rough, population-level literature
values (``docs/clinical.md``, with their sources) or UNSOURCED defaults; nothing here
predicts what any real patient will do, and no dosing decision may be based on it.

What it models (equations and derivations in ``docs/patient-model.md``):

* **CSF pharmacokinetics** - one compartment.  Input is the drug that truly reached the CSF
  during a step (ug; the pump's *true* delivery, which a leak or a dislodged catheter makes
  differ from what the firmware believes).  Within a step the input is a constant infusion;
  elimination is first order with ``k = ln 2 / half_life_h`` and clearance
  ``CL = k * V``.  Each step is integrated exactly (closed form), so the result does not depend
  on the step size beyond float rounding.
* **Effect** - an effect compartment (``dCe/dt = ke0 * (C - Ce)``) whose ``ke0`` is solved so
  that an instantaneous bolus peaks at ``effect_peak_h`` (about 4 h), then a sigmoid Emax
  model gives the fractional reduction of muscle tone; ``tone_score`` is a Modified
  Ashworth-like score from 0 to 4 (continuous, not the clinical 0/1/1+/2/3/4 scale).
* **Risk flags** - ``overdose`` when the CSF concentration exceeds a threshold (by default
  the steady-state concentration of the lowest daily dose at which overdose has been seen);
  ``withdrawal_risk`` when the concentration falls below a fraction of its recent (24 h)
  level, or falls fast while below it.

API::

    m = PatientModel()                 # or PatientModel({"half_life_h": 2.0, ...})
    s = m.step(60_000, 0.28)           # dt in ms, ug that reached the CSF in that minute
    s["csf_ng_per_ml"], s["tone_score"], s["overdose"], s["withdrawal_risk"]
    samples = m.run([(0, 0.0), (3_600_000, 16.7), ...])   # (t_ms, cumulative ug)

Every sample carries ``label`` = :data:`EDUCATIONAL_LABEL`.
"""

import math

EDUCATIONAL_LABEL = "educational model, not clinical advice"

MS_PER_H = 3600000.0
LN2 = math.log(2.0)

# name: (default, low, high, source).  Bounds are what the model accepts (physically sensible),
# not the clinical range; the clinical range is in the source text.
PARAMS = {
    # docs/clinical.md: CSF half-life 0.9-5 h; clearance 0.013-0.08 L/h (n=4).
    "half_life_h": (3.0, 0.05, 100.0,
                    "docs/clinical.md: CSF half-life 0.9-5 h (Eur J Clin Pharmacol "
                    "10.1007/BF00265844; default chosen inside the range)"),
    "clearance_ml_per_h": (30.0, 0.1, 10000.0,
                           "docs/clinical.md: clearance 0.013-0.08 L/h = 13-80 mL/h (J Neurosurg "
                           "1987;66:181) "
                           "(default chosen inside the range)"),
    # Distribution volume: derived as CL / k unless given (then clearance is derived instead).
    "csf_volume_ml": (None, 1.0, 10000.0,
                      "derived: V = CL * half_life / ln 2 (about 130 mL with the defaults); "
                      "a value given here is UNSOURCED and makes the clearance derived"),
    # docs/clinical.md: bolus onset 0.5-1 h, peak about 4 h, lasts 4-8 h.
    "effect_peak_h": (4.0, 0.05, 100.0,
                      "docs/clinical.md: bolus effect peaks at about 4 h (Gablofen "
                      "pharmacology)"),
    "baseline_tone": (3.0, 0.0, 4.0, "UNSOURCED: the patient's untreated tone (0-4)"),
    "emax": (1.0, 0.0, 1.0, "UNSOURCED: largest fraction of the baseline tone the drug removes"),
    "ec50_ng_per_ml": (300.0, 0.001, 1.0e6,
                       "UNSOURCED: effect-site concentration giving half of emax"),
    "hill": (1.0, 0.1, 10.0, "UNSOURCED: steepness of the concentration-effect curve"),
    # docs/clinical.md: overdose seen at 800-2400 ug/24 h.
    "overdose_ug_per_day": (800.0, 1.0, 1.0e6,
                            "docs/clinical.md: overdose seen at 800-2400 ug/24 h (Lioresal "
                            "label; lowest value); threshold = its steady-state concentration"),
    "overdose_ng_per_ml": (None, 0.001, 1.0e7,
                           "UNSOURCED override of the derived overdose threshold"),
    "withdrawal_fraction": (0.5, 0.01, 0.99,
                            "UNSOURCED: flag when C < fraction * 24 h reference level"),
    "withdrawal_window_h": (24.0, 1.0, 720.0,
                            "UNSOURCED (brief: 'recent, e.g. 24 h'): time constant of the "
                            "reference level; docs/clinical.md: severe withdrawal over "
                            "24-72 h"),
    "withdrawal_fall_per_h": (0.10, 0.001, 10.0,
                              "UNSOURCED: flag when the 1 h smoothed level falls faster than "
                              "this fraction of the reference level per hour (and C is below "
                              "the reference)"),
    "withdrawal_min_ng_per_ml": (50.0, 0.0, 1.0e6,
                                 "UNSOURCED: no withdrawal flag unless the reference level is "
                                 "at least this (a patient who was never on drug)"),
}

FAST_WINDOW_H = 1.0   # time constant of the smoothed level used by the fall-rate criterion


def _check(name, value):
    default, low, high, _source = PARAMS[name]
    if value is None and default is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value) or not low <= value <= high:
        raise ValueError("patient parameter %s = %r: must be a number from %g to %g"
                         % (name, value, low, high))
    return float(value)


def _phi(a, k, t):
    """(exp(-k t) - exp(-a t)) / (a - k), stable when a is close to k (limit t exp(-k t))."""
    d = a - k
    x = d * t
    if abs(x) < 1e-9:
        g = 1.0 - 0.5 * x
    else:
        g = -math.expm1(-x) / x
    return math.exp(-k * t) * t * g


def solve_ke0(k, peak_h):
    """The ke0 (1/h) at which an instantaneous bolus peaks at ``peak_h`` in the effect site.

    After a bolus Ce is proportional to phi(ke0, k, t); its peak time ln(ke0/k)/(ke0 - k)
    (1/k when equal) falls monotonically from infinity to 0 as ke0 grows, so bisection on
    log(ke0) finds the one solution.
    """
    def tmax(a):
        d = a - k
        if abs(d) < 1e-12 * k:
            return 1.0 / k
        return math.log(a / k) / d
    lo, hi = k * 1e-6, k * 1e6
    while tmax(lo) < peak_h:          # only for extreme peak times
        lo *= 1e-3
    while tmax(hi) > peak_h:
        hi *= 1e3
    for _ in range(200):
        mid = math.sqrt(lo * hi)
        if tmax(mid) > peak_h:
            lo = mid
        else:
            hi = mid
        if hi / lo < 1 + 1e-13:
            break
    return math.sqrt(lo * hi)


class PatientModel(object):
    """One patient; EDUCATIONAL MODEL, NOT CLINICAL ADVICE.

    ``params`` is a dict overriding any of :data:`PARAMS`; an unknown name or a value out of
    range raises ValueError naming the field, the value and the allowed range.
    """

    def __init__(self, params=None):
        params = dict(params or {})
        unknown = sorted(set(params) - set(PARAMS))
        if unknown:
            raise ValueError("patient parameter %s: unknown (allowed: %s)"
                             % (unknown[0], ", ".join(sorted(PARAMS))))
        p = {}
        for name, (default, _lo, _hi, _src) in PARAMS.items():
            p[name] = _check(name, params.get(name, default))
        self.k = LN2 / p["half_life_h"]
        if "csf_volume_ml" in params and params["csf_volume_ml"] is not None:
            if "clearance_ml_per_h" in params:
                derived = self.k * p["csf_volume_ml"]
                if abs(derived - p["clearance_ml_per_h"]) > 1e-6 * derived:
                    raise ValueError(
                        "patient parameter clearance_ml_per_h = %r: must equal ln2 / "
                        "half_life_h * csf_volume_ml = %g when all three are given (give two)"
                        % (params["clearance_ml_per_h"], derived))
            p["clearance_ml_per_h"] = self.k * p["csf_volume_ml"]
            _check("clearance_ml_per_h", p["clearance_ml_per_h"])
        else:
            p["csf_volume_ml"] = p["clearance_ml_per_h"] / self.k
            _check("csf_volume_ml", p["csf_volume_ml"])
        if p["overdose_ng_per_ml"] is None:
            # steady state of a constant daily dose D: C = (D / 24 h) / CL  [ug/mL] -> ng/mL
            p["overdose_ng_per_ml"] = (p["overdose_ug_per_day"] / 24.0
                                       / p["clearance_ml_per_h"] * 1000.0)
        self.params = p
        self.volume_ml = p["csf_volume_ml"]
        self.ke0 = solve_ke0(self.k, p["effect_peak_h"])
        self.a_ref = 1.0 / p["withdrawal_window_h"]
        self.a_fast = 1.0 / FAST_WINDOW_H
        self._scale = 1000.0 / self.volume_ml
        self._coef = {}              # dt_ms -> exact step coefficients
        self.t_ms = 0
        self.amount_ug = 0.0
        self.ce_ng_per_ml = 0.0      # effect-site concentration
        self.ref_ng_per_ml = 0.0     # slow (24 h) reference level
        self.fast_ng_per_ml = 0.0    # 1 h smoothed level

    # -- state -------------------------------------------------------------------------------

    def concentration(self):
        """CSF concentration in ng/mL (ug/mL * 1000)."""
        return self.amount_ug / self.volume_ml * 1000.0

    def effect_of(self, ce_ng_per_ml):
        """Fractional tone reduction (0..emax) at an effect-site concentration."""
        p = self.params
        if ce_ng_per_ml <= 0.0:
            return 0.0
        r = (ce_ng_per_ml / p["ec50_ng_per_ml"]) ** p["hill"]
        return p["emax"] * r / (1.0 + r)

    def flags(self):
        """(overdose, withdrawal_risk) now: what sample() flags, without building it (a run
        counts flagged time at every step)."""
        p = self.params
        c = self.amount_ug / self.volume_ml * 1000.0
        ref = self.ref_ng_per_ml
        withdrawal = False
        if ref >= p["withdrawal_min_ng_per_ml"] and ref > 0.0 and c < ref:
            fall_per_h = (self.fast_ng_per_ml - c) * self.a_fast / ref   # -d(fast)/dt / ref
            withdrawal = (c < p["withdrawal_fraction"] * ref
                          or fall_per_h > p["withdrawal_fall_per_h"])
        return c > p["overdose_ng_per_ml"], withdrawal

    def sample(self):
        """The current state as an output dict (see the module docstring)."""
        p = self.params
        c = self.concentration()
        effect = self.effect_of(self.ce_ng_per_ml)
        tone = min(4.0, max(0.0, p["baseline_tone"] * (1.0 - effect)))
        overdose, withdrawal = self.flags()
        ref = self.ref_ng_per_ml
        return {
            "t_ms": self.t_ms,
            "csf_ug": self.amount_ug,
            "csf_ng_per_ml": c,
            "effect_ng_per_ml": self.ce_ng_per_ml,
            "ref_ng_per_ml": ref,
            "effect": effect,
            "tone_score": tone,
            "overdose": overdose,
            "withdrawal_risk": withdrawal,
            "label": EDUCATIONAL_LABEL,
        }

    # -- dynamics ----------------------------------------------------------------------------

    def _coefficients(self, dt_ms):
        """The exact step's constants for one step length (cached: steps usually repeat)."""
        t = dt_ms / MS_PER_H
        k = self.k
        kt = k * t
        co = (math.exp(-kt), -math.expm1(-kt) / kt, t)
        for a in (self.ke0, self.a_ref, self.a_fast):
            co += (math.exp(-a * t), a * _phi(a, k, t))
        if len(self._coef) >= 64:
            self._coef.clear()
        self._coef[dt_ms] = co
        return co

    def step(self, dt_ms, delivered_ug):
        """Advance ``dt_ms`` (>= 0) with ``delivered_ug`` (>= 0) reaching the CSF evenly over it.

        ``dt_ms == 0`` adds the dose instantaneously.  Returns :meth:`sample` after the step.
        """
        if isinstance(dt_ms, bool) or not isinstance(dt_ms, (int, float)) \
                or not math.isfinite(dt_ms) or dt_ms < 0:
            raise ValueError("step dt_ms = %r: must be a number >= 0" % (dt_ms,))
        if isinstance(delivered_ug, bool) or not isinstance(delivered_ug, (int, float)) \
                or not math.isfinite(delivered_ug) or delivered_ug < 0:
            raise ValueError("step delivered_ug = %r: must be a number >= 0" % (delivered_ug,))
        self.advance(dt_ms, delivered_ug)
        return self.sample()

    def advance(self, dt_ms, delivered_ug):
        """:meth:`step` without the checks and without building a sample (the fast path for a
        long run that records only some steps: call :meth:`sample` when it wants one)."""
        if dt_ms == 0:
            self.amount_ug += delivered_ug
            return
        co = self._coef.get(dt_ms)
        if co is None:
            co = self._coefficients(dt_ms)
        e_k, g_k, t_h, e_ce, p_ce, e_ref, p_ref, e_fast, p_fast = co
        scale = self._scale                        # ug in CSF -> ng/mL
        c0 = self.amount_ug * scale
        # steady-state concentration of this step's constant infusion: (u / k) ug -> ng/mL
        css = delivered_ug / t_h / self.k * scale
        d0 = c0 - css
        # x(t) = css + (x0 - css) e^{-a t} + (c0 - css) a phi(a, k, t)
        # for dx/dt = a (C - x) with C(t) = css + (c0 - css) e^{-k t}
        self.ce_ng_per_ml = css + (self.ce_ng_per_ml - css) * e_ce + d0 * p_ce
        self.ref_ng_per_ml = css + (self.ref_ng_per_ml - css) * e_ref + d0 * p_ref
        self.fast_ng_per_ml = css + (self.fast_ng_per_ml - css) * e_fast + d0 * p_fast
        # A(t) = A0 e^{-kt} + (u/k)(1 - e^{-kt});  (u/k)(1 - e^{-kt}) = delivered * g(kt)
        self.amount_ug = self.amount_ug * e_k + delivered_ug * g_k
        self.t_ms += dt_ms

    def run(self, series):
        """Samples for ``series`` = [(t_ms, cumulative_delivered_ug), ...].

        The first point sets the start (its sample is the current state, at that time); each
        later point delivers the cumulative increase evenly since the previous point.  Times
        and cumulative doses must not decrease.
        """
        samples = []
        prev_t = prev_cum = None
        for i, point in enumerate(series):
            try:
                t_ms, cum = point
            except (TypeError, ValueError):
                raise ValueError("run series[%d] = %r: must be (t_ms, cumulative_ug)"
                                 % (i, point))
            for name, v in (("t_ms", t_ms), ("cumulative_ug", cum)):
                if isinstance(v, bool) or not isinstance(v, (int, float)) \
                        or not math.isfinite(v):
                    raise ValueError("run series[%d] %s = %r: must be a finite number"
                                     % (i, name, v))
            if prev_t is None:
                self.t_ms = t_ms
                samples.append(self.sample())
            else:
                if t_ms < prev_t:
                    raise ValueError("run series[%d] t_ms = %r: must be >= %r (times must not "
                                     "decrease)" % (i, t_ms, prev_t))
                if cum < prev_cum:
                    raise ValueError("run series[%d] cumulative_ug = %r: must be >= %r "
                                     "(cumulative dose must not decrease)" % (i, cum, prev_cum))
                samples.append(self.step(t_ms - prev_t, cum - prev_cum))
            prev_t, prev_cum = t_ms, cum
        return samples


def run(series, params=None):
    """``PatientModel(params).run(series)``: EDUCATIONAL MODEL, NOT CLINICAL ADVICE."""
    return PatientModel(params).run(series)


def bolus_timing(model_params=None, dose_ug=50.0, fraction=0.5, dt_ms=60000, hours=24):
    """Onset, peak and end (hours) of the tone effect of one instantaneous bolus.

    Onset is the first time the effect reaches ``fraction`` of its peak, end the last;
    used by the tests and the docs to compare with the label's 0.5-1 h / 4 h / 4-8 h.
    """
    m = PatientModel(model_params)
    m.step(0, dose_ug)
    effects = [(0.0, 0.0)]
    for i in range(1, int(hours * MS_PER_H / dt_ms) + 1):
        s = m.step(dt_ms, 0.0)
        effects.append((i * dt_ms / MS_PER_H, s["effect"]))
    peak_t, peak = max(effects, key=lambda e: e[1])
    above = [t for t, e in effects if e >= fraction * peak]
    return {"onset_h": above[0], "peak_h": peak_t, "end_h": above[-1], "peak_effect": peak}
