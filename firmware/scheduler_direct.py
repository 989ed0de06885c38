# The scheduler's after() and run_until() for a direct clock (hal.base.Clock.direct: virtual
# time kept in clock.true_ms, the simulator's): no clock call per event, which is most of a
# simulated year's cost.  firmware/scheduler.py installs them when its clock is direct; a board's
# clock never is, so its bundle leaves this module out.

from heapq import heappush, heappop

_DEADLINE = 0
_CALLBACK = 2


class Direct:
    def __init__(self, scheduler):
        self.scheduler = scheduler

    def after(self, delay_ms, callback, arg=None):
        s = self.scheduler
        if delay_ms < 0:
            delay_ms = 0
        s._seq += 1
        entry = [s.clock.true_ms + delay_ms, s._seq, callback, arg]
        heappush(s._heap, entry)
        return entry

    def run_until(self, until_ms):
        s = self.scheduler
        clock = s.clock
        clock._check_open()
        heap = s._heap
        ran = 0
        while heap:
            entry = heap[0]
            callback = entry[_CALLBACK]
            if callback is None:
                heappop(heap)
                continue
            deadline = entry[_DEADLINE]
            if deadline > until_ms:
                break
            heappop(heap)
            if deadline > clock.true_ms:
                clock.true_ms = deadline
            entry[_CALLBACK] = None
            s.due_ms = deadline
            arg = entry[3]
            if arg is None:
                callback()
            else:
                callback(arg)
            ran += 1
        if until_ms > clock.true_ms:
            clock.true_ms = until_ms
        return ran
