# Stroke engine: turns flows (basal, bolus, minimum rate) into motor strokes, exactly.
#
# Volume is accumulated in "quanta": 1 quantum = 1 nL / (86_400_000 * concentration_ug_per_ml).
# In that unit a dose rate of D ug/day is exactly D * 1_000_000 quanta per ms, whatever the
# concentration, and a volume rate of V nL/day is V * concentration quanta per ms.  The
# accumulator gains rate * elapsed_ms and gives up one stroke's worth per stroke; a stroke is
# scheduled for the first whole millisecond at which the accumulator holds a full stroke.  Nothing
# is rounded, so over any period the delivered volume is within one stroke of the ideal.
# A bolus whose quanta do not divide evenly by its duration adds the remainder at its end.
#
# The reservoir estimate is counted in strokes: reservoir_nl() = volume at the last refill minus
# strokes since then.  A "watch" stroke count lets the pump react on the very stroke that
# crosses a level (low-reservoir alarm, empty), at the cost of one compare per stroke.

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

MS_PER_DAY = const(86400000)
UG_RATE_Q = const(1000000)      # quanta per ms for 1 ug/day


class Doser:
    def __init__(self, scheduler, motor, stroke_nl, on_stall, on_watch):
        self._sched = scheduler
        self._motor = motor
        self.stroke_nl = stroke_nl
        self._on_stall = on_stall
        self._on_watch = on_watch
        self.concentration_ug_per_ml = 0
        self.stroke_q = 0
        self.acc_q = 0
        self.acc_t = scheduler.now_ms()
        self.rate_q = 0
        self.strokes = 0
        self.epoch_reservoir_nl = 0
        self.epoch_strokes = 0
        self.watch_at = -1
        self.hold = False               # stopped or halted: an owed stroke waits (Therapy)
        self._next = None

    # Reservoir estimate.

    def reservoir_nl(self):
        return self.epoch_reservoir_nl - (self.strokes - self.epoch_strokes) * self.stroke_nl

    def set_reservoir(self, volume_nl, concentration_ug_per_ml):
        now = self._sched.now_ms()
        self._sync(now)
        old = self.concentration_ug_per_ml
        if old and concentration_ug_per_ml != old:
            # The fraction of a stroke already accumulated is volume: keep it as volume.
            self.acc_q = self.acc_q * concentration_ug_per_ml // old
        self.concentration_ug_per_ml = concentration_ug_per_ml
        self.stroke_q = self.stroke_nl * MS_PER_DAY * concentration_ug_per_ml
        self.epoch_reservoir_nl = volume_nl
        self.epoch_strokes = self.strokes
        self._reschedule(now)

    def watch_level(self, level_nl):
        # Call on_watch() on the stroke after which reservoir_nl() <= level_nl (None: never).
        if level_nl is None:
            self.watch_at = -1
            return
        over = self.epoch_reservoir_nl - level_nl
        self.watch_at = self.epoch_strokes + (over + self.stroke_nl - 1) // self.stroke_nl

    # Flows.

    def set_rate(self, rate_q):
        if rate_q == self.rate_q:
            return
        now = self._sched.now_ms()
        self._sync(now)
        self.rate_q = rate_q
        self._reschedule(now)

    def add_quanta(self, quanta):
        now = self._sched.now_ms()
        self._sync(now)
        self.acc_q += quanta
        self._reschedule(now)

    def volume_rate_q(self, nl_per_day):
        return nl_per_day * self.concentration_ug_per_ml

    def dose_quanta(self, dose_ug):
        return dose_ug * UG_RATE_Q * MS_PER_DAY

    def volume_quanta(self, volume_nl):
        return volume_nl * MS_PER_DAY * self.concentration_ug_per_ml

    def quanta_to_nl(self, quanta):
        if not self.concentration_ug_per_ml:
            return 0
        return quanta // (MS_PER_DAY * self.concentration_ug_per_ml)

    def pending_quanta(self):
        # Accumulated towards the next stroke, up to now.
        return self.acc_q + self.rate_q * (self._sched.now_ms() - self.acc_t)

    def _sync(self, now):
        self.acc_q += self.rate_q * (now - self.acc_t)
        self.acc_t = now

    def _reschedule(self, now):
        self._sched.cancel(self._next)
        self._next = None
        if self.stroke_q > 0:
            self._arm(now, self.acc_q, self.rate_q)

    def _arm(self, now, acc, rate):
        # A full stroke already owed goes now, even if the rate has just dropped to 0 (a bolus
        # ending on the same millisecond as its last stroke), unless therapy is stopped or
        # halted (hold): then it waits for therapy to resume.
        owed = self.stroke_q - acc
        if owed <= 0:
            self._next = None if self.hold else self._sched.at(now, self._stroke)
        elif rate > 0:
            self._next = self._sched.at(now + (owed + rate - 1) // rate, self._stroke)
        else:
            self._next = None

    def retry_owed(self):
        # After a stall, when the clinician clears the alarm: the owed stroke, now.  True: the
        # motor turned (the stroke counts); False: still stalled (nothing moved); None: no
        # stroke is owed, so the motor cannot be tried without giving drug nobody asked for.
        now = self._sched.now_ms()
        self._sync(now)
        if not self.stroke_q or self.acc_q < self.stroke_q:
            return None
        if self._motor.stroke():
            return False
        self.acc_q -= self.stroke_q
        n = self.strokes + 1
        self.strokes = n
        if n == self.watch_at:
            self._on_watch()
        return True

    def _stroke(self):
        # The hot path: one motor stroke, one accumulator update, one watch compare.
        due = self._sched.due_ms
        rate = self.rate_q
        acc = self.acc_q + rate * (due - self.acc_t) - self.stroke_q
        self.acc_t = due
        if self._motor.stroke():
            # Stalled: nothing moved, so the stroke is still owed.
            self.acc_q = acc + self.stroke_q
            self._next = None
            self._on_stall()
            return
        self.acc_q = acc
        n = self.strokes + 1
        self.strokes = n
        owed = self.stroke_q - acc
        if owed > 0 and rate > 0:
            self._next = self._sched.at(due + (owed + rate - 1) // rate, self._stroke)
        else:
            self._arm(due, acc, rate)
        if n == self.watch_at:
            self._on_watch()
