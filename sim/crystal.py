# The pump's 32.768 kHz watch crystal: a tick counter that runs fast or slow against true time
# (docs/battery-and-clock.md).
#
# Portable: runs unchanged on CPython and MicroPython 1.27 (sim/replay.py builds it from a
# scenario's [models] table).  Integer arithmetic only: rates in ppb (parts per billion), times
# in integer milliseconds; Python's and MicroPython's ints are unbounded, so the products below
# stay exact over years.
#
# The frequency error at true time t (ms) is
#     drift_ppb(t) = tolerance_ppb + tempco_ppb_per_c2 x (T - 25)^2 + aging_ppb_per_year x t / Y
# (a tuning-fork crystal's parabola around its 25 degC turnover: at body temperature it runs
# slow), so the pump's elapsed time is its integral, floored to whole ms:
#     pump_ms(t) = t + floor((d0 x t x 2Y + aging x t^2) / (2Y x 10^9)),   Y = ms per year.
# The simulator's plan (presses, refills, faults) stays in true time (true_ms); the firmware
# reads pump_ms through the Clock interface.  Not a direct clock (hal.base.Clock.direct): the
# scheduler's fast path reads and jumps clock.true_ms as if it were the firmware's time, which
# here it is not, so the scheduler goes through now_ms() and sleep_until().

from hal.sim import VirtualClock
from hal.base import Clock

_PPB = 1000000000
MS_PER_YEAR = 365 * 24 * 3600000
TURNOVER_C = 25

# A typical tuning-fork watch crystal (docs/battery-and-clock.md cites each):
TEMPCO_PPB_PER_C2 = -34     # -0.034 ppm/degC^2 (datasheets give -0.030 to -0.04)
BODY_C = 37


def temperature_ppb(temperature_c, tempco_ppb_per_c2=TEMPCO_PPB_PER_C2):
    # The parabola: zero at the turnover, negative (slow) either side.
    d = temperature_c - TURNOVER_C
    return tempco_ppb_per_c2 * d * d


class DriftingClock(VirtualClock):
    # drift_ppb: the rate error at t = 0 (tolerance plus temperature); aging_ppb_per_year: how
    # it changes per year of true time.  wrap_bits/start_raw as VirtualClock's (the raw counter
    # the firmware sees is start_raw + pump_ms, masked).
    direct = False

    def __init__(self, drift_ppb=0, aging_ppb_per_year=0, wrap_bits=0, start_raw=0):
        if drift_ppb <= -_PPB // 2 or drift_ppb >= _PPB // 2:
            raise ValueError("clock drift %d ppb: allowed within +-50 %%" % drift_ppb)
        self.true_ms = 0
        self.drift_ppb = drift_ppb
        self.aging_ppb_per_year = aging_ppb_per_year
        self._start_raw = start_raw
        self._raw_mask = (1 << wrap_bits) - 1 if wrap_bits else 0
        self._memo_true_ms = 0
        self._memo_pump_ms = 0
        # VirtualClock.__init__ would install its direct shortcuts: skip it, keep its methods.
        Clock.__init__(self, wrap_bits)

    def pump_ms_at(self, true_ms):
        # The pump's elapsed ms after true_ms of true time (non-decreasing in true_ms).  The
        # last answer is kept: the scheduler asks about the same moment several times per event.
        if true_ms == self._memo_true_ms:
            return self._memo_pump_ms
        twice_year = 2 * MS_PER_YEAR
        num = self.drift_ppb * true_ms * twice_year + self.aging_ppb_per_year * true_ms * true_ms
        pump_ms = true_ms + num // (twice_year * _PPB)
        self._memo_true_ms = true_ms
        self._memo_pump_ms = pump_ms
        return pump_ms

    def offset_ms(self):
        # Pump time minus true time, now (negative: the pump's clock is behind).
        return self.pump_ms_at(self.true_ms) - self.true_ms

    def true_ms_for(self, pump_ms):
        # The earliest true time at which the pump's elapsed time reaches pump_ms: waking there
        # never shows the firmware a deadline early, and waking a ms sooner would.
        # Newton's method on pump_ms_at(t) = pump_ms (its slope is 1 + the drift then), then
        # whole-ms steps to the exact first ms: the floors make Newton land within a ms or two.
        pump_at = self.pump_ms_at
        rate_ppb = _PPB + self.drift_ppb + self.aging_ppb_per_year * pump_ms // MS_PER_YEAR
        t = pump_ms * _PPB // rate_ppb if rate_ppb > _PPB // 2 else pump_ms
        for _ in range(8):
            error = pump_at(t) - pump_ms
            if -2 <= error <= 2:
                break
            rate_ppb = _PPB + self.drift_ppb + self.aging_ppb_per_year * t // MS_PER_YEAR
            if rate_ppb < _PPB // 2:
                rate_ppb = _PPB // 2
            t -= error * _PPB // rate_ppb
        if t < 0:
            t = 0
        while pump_at(t) < pump_ms:
            t += 1
        while t > 0 and pump_at(t - 1) >= pump_ms:
            t -= 1
        return t

    def _ticks_internal(self):
        raw = self._start_raw + self.pump_ms_at(self.true_ms)
        return raw & self._raw_mask if self._raw_mask else raw

    def _sleep_internal(self, delay_ms):
        # delay_ms of pump time from now: jump to the first true ms that gets there.
        target = self.true_ms_for(self.pump_ms_at(self.true_ms) + delay_ms)
        if target > self.true_ms:
            self.true_ms = target
