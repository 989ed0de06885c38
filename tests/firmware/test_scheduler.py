"""firmware/scheduler.py, driven deterministically through hal.sim.VirtualClock.

Covers ordering, FIFO ties, one-event step(), cancellation, arguments, re-entrant scheduling,
run_until, drift-free periodic work, the tick-counter wrap and years of virtual time, and a
property test against a sorted reference."""

import random

import pytest
from hypothesis import given, settings, strategies as st

from firmware.scheduler import Scheduler
from hal.base import Clock
from hal.sim import VirtualClock

MS_PER_MIN = 60 * 1000
MS_PER_HOUR = 60 * MS_PER_MIN
MS_PER_DAY = 24 * MS_PER_HOUR
MS_PER_YEAR = 365 * MS_PER_DAY
WRAP_BITS = 30
WRAP_MS = 1 << WRAP_BITS


def make(wrap_bits=0, start_raw=0):
    clock = VirtualClock(wrap_bits, start_raw)
    return clock, Scheduler(clock)


def drain(sched, clock):
    # Event by event: jump to the next deadline, step() once.  Returns the number run.
    ran = 0
    while True:
        deadline = sched.next_deadline()
        if deadline is None:
            return ran
        if deadline > clock.true_ms:
            clock.advance_to(deadline)
        assert sched.step()
        ran += 1


class Recorder:
    # Callback factory: record (label, clock time, due_ms) when run.
    def __init__(self, sched, clock):
        self.sched = sched
        self.clock = clock
        self.log = []

    def cb(self, label):
        def run(arg=None):
            self.log.append((label, self.clock.now_ms(), self.sched.due_ms))
        return run

    def labels(self):
        return [entry[0] for entry in self.log]


# --- ordering ------------------------------------------------------------------------------


def test_runs_in_deadline_order_not_insertion_order():
    clock, s = make()
    rec = Recorder(s, clock)
    for deadline in (500, 100, 300, 200, 400):
        s.at(deadline, rec.cb(deadline))
    assert s.run_until(1000) == 5
    assert rec.labels() == [100, 200, 300, 400, 500]
    # Each ran at its own deadline, and due_ms said so.
    assert [(t, due) for _, t, due in rec.log] == [(d, d) for d in (100, 200, 300, 400, 500)]


def test_ties_run_in_insertion_order():
    clock, s = make()
    rec = Recorder(s, clock)
    for label in "abcdefgh":
        s.at(50, rec.cb(label))
    s.at(10, rec.cb("early"))
    s.at(50, rec.cb("last"))
    s.run_until(50)
    assert rec.labels() == ["early"] + list("abcdefgh") + ["last"]


def test_after_is_relative_to_now():
    clock, s = make()
    rec = Recorder(s, clock)
    clock.advance_to(1000)
    s.after(250, rec.cb("a"))
    s.after(-5, rec.cb("negative delay runs now"))
    s.run_until(2000)
    assert rec.log == [("negative delay runs now", 1000, 1000), ("a", 1250, 1250)]


# --- step() --------------------------------------------------------------------------------


def test_step_runs_exactly_one_due_event():
    clock, s = make()
    rec = Recorder(s, clock)
    for label in "abc":
        s.at(0, rec.cb(label))
    assert s.step() is True
    assert rec.labels() == ["a"]
    assert s.pending() == 2
    assert s.step() is True
    assert s.step() is True
    assert rec.labels() == ["a", "b", "c"]
    assert s.step() is False
    assert s.pending() == 0


def test_step_returns_false_when_nothing_due():
    clock, s = make()
    assert s.step() is False  # empty
    rec = Recorder(s, clock)
    s.at(100, rec.cb("future"))
    assert s.step() is False  # not due yet
    clock.advance_to(99)
    assert s.step() is False
    assert rec.log == []
    clock.advance_to(100)
    assert s.step() is True
    assert rec.labels() == ["future"]


def test_step_does_not_move_the_clock():
    clock, s = make()
    s.at(100, lambda: None)
    s.step()
    assert clock.true_ms == 0
    clock.advance_to(150)
    s.step()
    assert clock.true_ms == 150
    assert s.due_ms == 100


def test_step_false_when_only_cancelled_entries_remain():
    clock, s = make()
    handles = [s.at(0, lambda: None) for _ in range(3)]
    for h in handles:
        s.cancel(h)
    assert s.pending() == 0
    assert s.step() is False
    assert s.next_deadline() is None


# --- cancellation --------------------------------------------------------------------------


def test_cancel_before_run():
    clock, s = make()
    rec = Recorder(s, clock)
    s.at(10, rec.cb("a"))
    h = s.at(20, rec.cb("b"))
    s.at(30, rec.cb("c"))
    s.cancel(h)
    assert s.pending() == 2
    s.run_until(100)
    assert rec.labels() == ["a", "c"]


def test_cancel_head_moves_next_deadline():
    clock, s = make()
    h = s.at(10, lambda: None)
    s.at(20, lambda: None)
    assert s.next_deadline() == 10
    s.cancel(h)
    assert s.next_deadline() == 20


def test_double_cancel_after_run_and_none_are_harmless():
    clock, s = make()
    rec = Recorder(s, clock)
    h1 = s.at(10, rec.cb("a"))
    h2 = s.at(20, rec.cb("b"))
    s.cancel(None)
    s.cancel(h2)
    s.cancel(h2)
    s.run_until(15)
    assert rec.labels() == ["a"]
    s.cancel(h1)  # already ran
    s.cancel(h1)
    s.at(30, rec.cb("c"))
    s.run_until(100)
    assert rec.labels() == ["a", "c"]
    assert s.pending() == 0


def test_callback_cancels_a_later_event_and_itself():
    clock, s = make()
    rec = Recorder(s, clock)
    handles = {}

    def first():
        rec.log.append(("first", clock.now_ms(), s.due_ms))
        s.cancel(handles["second"])
        s.cancel(handles["first"])  # its own handle, while running: harmless

    handles["first"] = s.at(10, first)
    handles["second"] = s.at(10, rec.cb("second"))
    s.at(10, rec.cb("third"))
    s.run_until(10)
    assert rec.labels() == ["first", "third"]


# --- arguments -----------------------------------------------------------------------------


def test_callback_gets_its_arg():
    clock, s = make()
    got = []
    s.at(1, got.append, "x")
    s.at(2, got.append, 0)  # falsy but not None: still passed
    s.at(3, got.append, ())
    s.at(4, lambda: got.append("no arg"))
    s.after(5, got.append, [1, 2])
    s.run_until(10)
    assert got == ["x", 0, (), "no arg", [1, 2]]


# --- scheduling from inside callbacks --------------------------------------------------------


def test_events_scheduled_from_callbacks():
    clock, s = make()
    rec = Recorder(s, clock)

    def spawner():
        rec.log.append(("spawner", clock.now_ms(), s.due_ms))
        s.at(100, rec.cb("same deadline, after existing ties"))
        s.at(50, rec.cb("in the past: runs next"))
        s.after(10, rec.cb("after 10"))
        s.at(105, rec.cb("before after-10"))

    s.at(100, spawner)
    s.at(100, rec.cb("tie inserted before spawn"))
    s.at(200, rec.cb("later"))
    assert s.run_until(1000) == 7
    assert rec.labels() == [
        "spawner",
        "in the past: runs next",
        "tie inserted before spawn",
        "same deadline, after existing ties",
        "before after-10",
        "after 10",
        "later",
    ]
    # The past-deadline event ran late (at 100) but its due_ms is its own deadline.
    assert rec.log[1] == ("in the past: runs next", 100, 50)


# --- run_until -----------------------------------------------------------------------------


def test_run_until_runs_up_to_and_including_until_and_parks_the_clock():
    clock, s = make()
    rec = Recorder(s, clock)
    for d in (0, 10, 99, 100, 101, 500):
        s.at(d, rec.cb(d))
    assert s.run_until(100) == 4
    assert rec.labels() == [0, 10, 99, 100]
    assert clock.now_ms() == 100
    assert s.next_deadline() == 101
    assert s.run_until(300) == 1
    assert clock.now_ms() == 300
    assert s.run_until(300) == 0
    assert clock.now_ms() == 300
    assert s.run_until(10000) == 1
    assert clock.now_ms() == 10000
    assert rec.labels() == [0, 10, 99, 100, 101, 500]


def test_run_until_with_no_events_moves_the_clock():
    clock, s = make()
    assert s.run_until(12345) == 0
    assert clock.now_ms() == 12345


def test_run_until_runs_events_added_by_callbacks_within_the_window():
    clock, s = make()
    times = []

    def tick():
        times.append(clock.now_ms())
        s.at(s.due_ms + 30, tick)

    s.at(0, tick)
    assert s.run_until(100) == 4
    assert times == [0, 30, 60, 90]
    assert clock.now_ms() == 100
    assert s.next_deadline() == 120


# --- drift ---------------------------------------------------------------------------------


def test_periodic_work_never_drifts_over_a_year_even_when_late():
    clock, s = make()
    period = 10 * MS_PER_MIN
    rng = random.Random(1234)
    seen = []

    def periodic():
        seen.append(s.due_ms)
        s.at(s.due_ms + period, periodic)

    s.at(period, periodic)
    late_runs = 0
    while True:
        deadline = s.next_deadline()
        if deadline > MS_PER_YEAR:
            break
        # Run late by up to 1.5 periods: sometimes the next deadline has already passed.
        late = rng.choice((0, 1, 7, 999, period // 2, period + period // 2))
        target = max(clock.true_ms, deadline + late)
        clock.advance_to(target)
        late_runs += late > 0
        assert s.step()
    n = MS_PER_YEAR // period
    assert late_runs > n // 2
    assert seen == [k * period for k in range(1, n + 1)]
    assert s.next_deadline() == (n + 1) * period


# --- tick wrap and long runs -------------------------------------------------------------


@pytest.mark.req("SR-32")
def test_order_is_correct_across_a_tick_counter_wrap():
    # The raw counter wraps 5 s in.
    clock, s = make(WRAP_BITS, WRAP_MS - 5000)
    rec = Recorder(s, clock)
    deadlines = [4998, 4999, 5000, 5001, 1000, 9000, 5000 + WRAP_MS // 4, 7000]
    for d in deadlines:
        s.at(d, rec.cb(d))
    s.after(6000, rec.cb("after 6000"))

    def chained():
        rec.log.append(("chained", clock.now_ms(), s.due_ms))
        s.after(3000, rec.cb("chained + 3000"))  # scheduled before the wrap, due after it

    s.at(4000, chained)
    s.run_until(5000 + WRAP_MS // 4)
    expected = [
        (1000, 1000), (4000, 4000), (4998, 4998), (4999, 4999), (5000, 5000), (5001, 5001),
        (6000, 6000), (7000, 7000), (7000, 7000), (9000, 9000),
        (5000 + WRAP_MS // 4, 5000 + WRAP_MS // 4),
    ]
    assert [(t, due) for _, t, due in rec.log] == expected
    labels = rec.labels()
    assert labels.index("chained") < labels.index(7000) < labels.index("chained + 3000")
    # The firmware's clock stayed the unwrapped truth while the raw counter wrapped.
    assert clock.now_ms() == clock.true_ms == 5000 + WRAP_MS // 4
    assert clock._ticks_internal() < WRAP_MS - 5000


@pytest.mark.req("SR-32")
def test_ten_years_with_wrapping_ticks_and_hourly_housekeeping():
    clock, s = make(WRAP_BITS, WRAP_MS - 1234)
    ten_years = 10 * MS_PER_YEAR
    counts = {"hour": 0, "day": 0, "week": 0}
    bad = []
    last = [-1]

    def every(name, period):
        def run():
            now = clock.now_ms()
            if now != s.due_ms or now != clock.true_ms or now < last[0] or now % period:
                bad.append((name, now, s.due_ms, clock.true_ms))
            last[0] = now
            counts[name] += 1
            s.at(s.due_ms + period, run)
        s.at(period, run)

    every("hour", MS_PER_HOUR)
    every("day", MS_PER_DAY)
    every("week", 7 * MS_PER_DAY)  # longer than half the wrap period: relies on housekeeping
    assert s.run_until(ten_years) == ten_years // MS_PER_HOUR + ten_years // MS_PER_DAY + ten_years // (7 * MS_PER_DAY)
    assert bad == []
    assert counts == {
        "hour": ten_years // MS_PER_HOUR,
        "day": ten_years // MS_PER_DAY,
        "week": ten_years // (7 * MS_PER_DAY),
    }
    assert clock.now_ms() == ten_years
    assert ten_years // WRAP_MS > 290  # the raw counter wrapped hundreds of times


# --- property: same order as a sorted reference -------------------------------------------

_ops = st.lists(
    st.one_of(
        st.tuples(st.just("at"), st.integers(0, 2000)),
        st.tuples(st.just("cancel"), st.integers(0, 200)),
        st.tuples(st.just("run"), st.integers(0, 2500)),
    ),
    max_size=120,
)


class DozyClock(Clock):
    """A clock like a board's: time passes on its own (each read costs 1 ms) and sleeps end
    early (at most 7 ms at a time, as if woken by an interrupt), so the scheduler's generic
    path, not the virtual-time fast path, is what runs."""

    def __init__(self):
        self.raw = 0
        Clock.__init__(self, wrap_bits=12)

    def _ticks_internal(self):
        self.raw += 1
        return self.raw & 0xFFF

    def _sleep_internal(self, delay_ms):
        self.raw += min(delay_ms, 7)


CLOCKS = {
    "virtual": lambda: VirtualClock(),                       # direct: the fast path
    "virtual-wrapping": lambda: VirtualClock(WRAP_BITS, WRAP_MS - 500),
}


def test_the_fast_path_is_used_only_for_a_direct_clock():
    assert VirtualClock().direct and not VirtualClock(WRAP_BITS).direct
    from firmware.scheduler_direct import Direct
    fast = Scheduler(VirtualClock())
    assert isinstance(fast.run_until.__self__, Direct) and isinstance(fast.after.__self__, Direct)
    slow = Scheduler(VirtualClock(WRAP_BITS))
    assert slow.run_until.__self__ is slow and slow.after.__self__ is slow


def test_a_real_clock_that_wakes_early_still_runs_everything_in_order_and_never_early():
    clock = DozyClock()
    s = Scheduler(clock)
    seen = []
    for deadline in (900, 50, 3000, 50, 5000, 12000):      # past the 4096 ms wrap, too
        s.at(deadline, lambda d: seen.append((d, clock.now_ms())), deadline)
    assert s.run_until(20000) == 6
    assert [d for d, _ in seen] == [50, 50, 900, 3000, 5000, 12000]
    assert all(ran_at >= d for d, ran_at in seen)
    assert clock.now_ms() >= 20000


@pytest.mark.parametrize("clock_kind", sorted(CLOCKS))
@settings(max_examples=300, deadline=None, derandomize=True)
@given(ops=_ops)
def test_matches_sorted_reference(clock_kind, ops):
    clock = CLOCKS[clock_kind]()
    s = Scheduler(clock)
    ran = []
    handles = []
    ref_pending = []  # [deadline, seq, id]
    ref_ran = []
    now = 0
    for op, value in ops:
        if op == "at":
            ident = len(handles)
            handles.append(s.at(value, ran.append, ident))
            ref_pending.append((value, ident))
        elif op == "cancel":
            if handles:
                ident = value % len(handles)
                s.cancel(handles[ident])
                ref_pending = [p for p in ref_pending if p[1] != ident]
        else:
            until = max(now, value)
            due = sorted(p for p in ref_pending if p[0] <= until)
            ref_ran.extend(ident for _, ident in due)
            ref_pending = [p for p in ref_pending if p[0] > until]
            assert s.run_until(until) == len(due)
            now = until
            assert clock.now_ms() == now
        assert ran == ref_ran
        assert s.pending() == len(ref_pending)
    s.run_until(max(now, 2000))
    ref_ran.extend(ident for _, ident in sorted(ref_pending))
    assert ran == ref_ran
