# Event scheduler: one heap of [deadline_ms, sequence, callback, arg] (SimPy's core).
#
# - Deadlines are absolute milliseconds on the HAL clock's unwrapped count, so periodic work
#   scheduled as "previous deadline + period" never drifts, however late a callback runs.
# - The sequence number makes ties run in insertion order and keeps the heap from ever
#   comparing callbacks.
# - step() runs exactly one due event; only the clock moves time: in virtual time
#   clock.sleep_until() jumps straight to the next deadline, on a board it sleeps.
# - Cancellation marks the entry dead (callback None); dead entries are dropped when they
#   reach the top, so cancel is O(1).
# - Tick wrap is handled once, in hal.base.Clock.now_ms(): deadlines here never wrap.

from heapq import heappush, heappop

_DEADLINE = 0
_CALLBACK = 2


class Scheduler:
    def __init__(self, clock):
        self.clock = clock
        self._heap = []
        self._seq = 0
        self._now_ms = clock.now_ms
        if clock.direct:
            # Virtual time (hal.base.Clock.direct): after() and run_until() without a clock
            # call per event, which is most of a simulated year's cost.  Only the simulator's
            # clocks are direct, so they live in firmware/scheduler_direct.py, which a board's
            # bundle leaves out (tools/flash.py skips imports guarded by ImportError).
            try:
                from firmware.scheduler_direct import Direct
            except ImportError:
                Direct = None
            if Direct is not None:
                direct = Direct(self)
                self.after = direct.after
                self.run_until = direct.run_until
        # Deadline of the event being run (or last run): periodic work chains off this.
        self.due_ms = clock.now_ms()

    def now_ms(self):
        return self._now_ms()

    def at(self, deadline_ms, callback, arg=None):
        # Returns a handle for cancel().  arg (if not None) is passed to the callback.
        self._seq += 1
        entry = [deadline_ms, self._seq, callback, arg]
        heappush(self._heap, entry)
        return entry

    def after(self, delay_ms, callback, arg=None):
        # at() inlined: every stroke is scheduled through here.
        if delay_ms < 0:
            delay_ms = 0
        self._seq += 1
        entry = [self._now_ms() + delay_ms, self._seq, callback, arg]
        heappush(self._heap, entry)
        return entry

    def cancel(self, entry):
        # Safe on None, on an entry already run and on an entry already cancelled.
        if entry is not None:
            entry[_CALLBACK] = None

    def pending(self):
        n = 0
        for entry in self._heap:
            if entry[_CALLBACK] is not None:
                n += 1
        return n

    def next_deadline(self):
        heap = self._heap
        while heap and heap[0][_CALLBACK] is None:
            heappop(heap)
        return heap[0][_DEADLINE] if heap else None

    def step(self):
        # Run the earliest event if it is due.  Returns True if one ran.
        heap = self._heap
        while heap:
            entry = heap[0]
            callback = entry[_CALLBACK]
            if callback is None:
                heappop(heap)
                continue
            if entry[_DEADLINE] > self.clock.now_ms():
                return False
            heappop(heap)
            entry[_CALLBACK] = None
            self.due_ms = entry[_DEADLINE]
            arg = entry[3]
            if arg is None:
                callback()
            else:
                callback(arg)
            return True
        return False

    def run_until(self, until_ms):
        # Run every event with deadline <= until_ms in order, sleeping (or jumping, in virtual
        # time) between them, then bring the clock to until_ms.  Returns the number run.
        # step() inlined: this loop carries every stroke of a simulated year.
        sleep_until = self.clock.sleep_until
        now = self.clock.now_ms()
        heap = self._heap
        ran = 0
        while True:
            while heap:
                entry = heap[0]
                callback = entry[_CALLBACK]
                if callback is None:
                    heappop(heap)
                    continue
                deadline = entry[_DEADLINE]
                if deadline > until_ms:
                    break
                if deadline > now:
                    # `now` may be stale (callbacks take time on a real clock) but never
                    # ahead, so only a deadline past it needs the clock: it sleeps, or jumps,
                    # and says the time.
                    now = sleep_until(deadline)
                    if now < deadline:
                        continue    # woke early (a real clock): the heap may have changed
                heappop(heap)
                entry[_CALLBACK] = None
                self.due_ms = deadline
                arg = entry[3]
                if arg is None:
                    callback()
                else:
                    callback(arg)
                ran += 1
            now = sleep_until(until_ms)
            if now >= until_ms:
                return ran
