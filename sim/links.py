"""The pump's side of the telemetry link (host only), and wrappers that shape a link's bytes.

    open_link(spec)    "pty", "loop", "socket://HOST:PORT" (listen), or a device path / pyserial URL
    PtyLink            a pseudo-terminal; the programmer opens .path (/dev/pts/N) like a serial port
    TcpServerLink      listens; the programmer opens .url (socket://127.0.0.1:PORT); one client
                       at a time, others answered `busy` at once, an idle one dropped
                       (sim/tcp_server.py)
    LoopPair           two connected in-process ends (one process runs pump and programmer)
    RateLimited        a baud rate on the bytes a link sends, on an injectable clock
    Manipulator        fault injection: drop, corrupt, split, delay, or your own function

Every link here: read(max_bytes) never blocks (b"" when nothing came); write(data) returns
len(data): it sends everything, or drops what nobody can receive (no programmer connected, or
one that stopped reading for write_timeout_s) and counts it in bytes_dropped, because a pump
must not stall on its telemetry (a UART with nobody listening loses bytes too);
wait(timeout_s) blocks until read() may have bytes (True; a spurious True is possible: a
hang-up or a new client also wakes it); close() is safe twice; .url is what a programmer opens.
"""

import errno
import os
import random
import select
import socket
import termios
import threading
import time
from collections import deque

import hal
from hal.base import Link
from hal.errors import LinkError

SEND = "send"
RECEIVE = "receive"
BOTH = "both"

_SPECS = ("pty, loop, socket://HOST:PORT (listen; PORT 0 picks a free one), "
          "or a device path / pyserial URL (/dev/ttyUSB0, rfc2217://HOST:PORT)")


def _wait_on(link, timeout_s):
    # The inner link's wait(), or a plain sleep for a link without one (then maybe input).
    wait = getattr(link, "wait", None)
    if wait is not None:
        return wait(timeout_s)
    time.sleep(timeout_s)
    return True


# --- pseudo-terminal -----------------------------------------------------------------------

def set_raw(fd):
    """Put a terminal in raw mode (cfmakeraw): 8 bits through unchanged, no echo, no CR/LF
    translation, no XON/XOFF (0x11, 0x13), no signal characters (0x03), no line editing."""
    attrs = termios.tcgetattr(fd)
    attrs[0] &= ~(termios.IGNBRK | termios.BRKINT | termios.PARMRK | termios.ISTRIP
                  | termios.INLCR | termios.IGNCR | termios.ICRNL | termios.IXON
                  | termios.IXOFF | termios.IXANY | termios.INPCK)
    attrs[1] &= ~termios.OPOST
    attrs[2] &= ~(termios.CSIZE | termios.PARENB)
    attrs[2] |= termios.CS8 | termios.CREAD | termios.CLOCAL
    attrs[3] &= ~(termios.ECHO | termios.ECHONL | termios.ICANON | termios.ISIG | termios.IEXTEN)
    attrs[6][termios.VMIN] = 1
    attrs[6][termios.VTIME] = 0
    termios.tcsetattr(fd, termios.TCSANOW, attrs)


def open_pty():
    """A new pseudo-terminal: (master_fd, slave_path), both ends raw, the master non-blocking.

    The slave is closed again (its raw settings stay with the terminal): until someone opens
    slave_path, reading the master fails with EIO and select() calls it readable.  PtyLink keeps
    a slave open for that reason."""
    master_fd, slave_fd = os.openpty()
    try:
        set_raw(slave_fd)
        set_raw(master_fd)
        os.set_blocking(master_fd, False)
        path = os.ttyname(slave_fd)
    except OSError:
        os.close(master_fd)
        raise
    finally:
        os.close(slave_fd)
    return master_fd, path


class PtyLink(Link):
    """The pump end of a pseudo-terminal; a programmer opens .path as if it were a serial port.

    The pump keeps a descriptor of the slave open itself, and never reads it.  Without it,
    whenever no programmer has the slave open (before the first one, and between a disconnect
    and a reconnect) Linux hangs the master up: read() fails with EIO and select() reports the
    master readable forever, so wait() would spin.  With it the master just sees no input.
    Bytes the pump sends while nobody is connected wait in the terminal; a programmer opening
    with pyserial discards them (pyserial flushes input on open)."""

    def __init__(self, write_timeout_s=1.0):
        self.write_timeout_s = write_timeout_s
        self.bytes_dropped = 0
        self._master, self.path = open_pty()
        try:
            self._keeper = os.open(self.path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        except OSError as exc:
            os.close(self._master)
            raise LinkError("cannot hold the pty slave %s open: %s" % (self.path, exc)) from exc
        self.url = self.path
        Link.__init__(self)

    def fileno(self):
        return self._master

    def _read_internal(self, max_bytes):
        try:
            return os.read(self._master, max_bytes)
        except BlockingIOError:
            return b""
        except OSError as exc:
            raise LinkError("pty %s failed while reading: %s; open a new link" % (self.path, exc))

    def _write_internal(self, data):
        view = memoryview(data)
        sent = 0
        deadline = None
        while sent < len(view):
            try:
                sent += os.write(self._master, view[sent:])
                continue
            except BlockingIOError:
                pass
            except OSError as exc:
                raise LinkError("pty %s failed while writing: %s; open a new link"
                                % (self.path, exc))
            # The terminal is full: nobody read for a while.  Wait a little, then drop the rest.
            now = time.monotonic()
            if deadline is None:
                deadline = now + self.write_timeout_s
            if now >= deadline:
                self.bytes_dropped += len(view) - sent
                break
            select.select([], [self._master], [], deadline - now)
        return len(view)

    def wait(self, timeout_s):
        self._check_open()
        ready, _, _ = select.select([self._master], [], [], max(0.0, timeout_s))
        return bool(ready)

    def _close_internal(self):
        os.close(self._keeper)
        os.close(self._master)


# --- TCP listener: sim/tcp_server.py (one client served, others answered busy, idle dropped)

from sim.tcp_server import TcpServerLink, parse_socket_url  # noqa: E402,F401  (re-exported)


# --- in-process loop -----------------------------------------------------------------------

class LoopEnd(Link):
    """One end of a LoopPair: what it writes, .peer reads.  Thread-safe (pump and programmer may
    run in different threads); writes to a closed peer are dropped and counted."""
    url = "loop://"

    def __init__(self, condition):
        self._condition = condition
        self._inbox = bytearray()
        self.peer = None
        self.bytes_dropped = 0
        Link.__init__(self)

    def _write_internal(self, data):
        peer = self.peer
        with self._condition:
            if peer._closed:
                self.bytes_dropped += len(data)
            else:
                peer._inbox += data
                self._condition.notify_all()
        return len(data)

    def _read_internal(self, max_bytes):
        with self._condition:
            data = bytes(self._inbox[:max_bytes])
            del self._inbox[:max_bytes]
        return data

    def wait(self, timeout_s):
        self._check_open()
        with self._condition:
            return self._condition.wait_for(lambda: len(self._inbox) > 0, max(0.0, timeout_s))


class LoopPair:
    """Two connected in-process ends: pump_end and programmer_end (each the other's .peer).

    This is what "loop" means for a pump: pyserial's loop:// echoes what you write back to you,
    which is not a pump.  A programmer in the same process is handed programmer_end itself."""

    def __init__(self):
        condition = threading.Condition()
        self.pump_end = LoopEnd(condition)
        self.programmer_end = LoopEnd(condition)
        self.pump_end.peer = self.programmer_end
        self.programmer_end.peer = self.pump_end

    def close(self):
        self.pump_end.close()
        self.programmer_end.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


# --- wrappers ------------------------------------------------------------------------------

class _Wrapper(Link):
    # A Link around another one; it owns it (close() closes it).  Held bytes move on when
    # read(), write(), wait() or poll() is called: there is no thread.
    def __init__(self, link):
        self._link = link
        self.url = getattr(link, "url", None)
        Link.__init__(self)

    def poll(self):
        """Deliver whatever is due now; returns the number of bytes still held."""
        self._check_open()
        return self._release(self._clock())

    def wait(self, timeout_s):
        # Waits on the inner link in slices that end when the next held byte is due (in the
        # injected clock's seconds), so held bytes go out while we wait.  Blocks for about
        # timeout_s of real time at most (the slices' sum; no clock is read for it).
        self._check_open()
        left = timeout_s
        while True:
            now = self._clock()
            self._release(now)
            if self._ready(now):
                return True
            step = left
            due = self._next_due()
            if due is not None:
                step = min(step, max(due - now, 0.001))
            if _wait_on(self._link, max(0.0, step)):
                return True
            left -= step
            if left <= 0:
                return False

    def _ready(self, now):
        return False

    def _close_internal(self):
        self._link.close()


class RateLimited(_Wrapper):
    """Sends at bytes_per_s, like a UART: a byte reaches the inner link when its transmission
    ends (the first of a write made while idle after 1/bytes_per_s), each next one
    1/bytes_per_s later; a write while busy queues behind.  9600 baud 8N1 (10 bits a byte) is
    960 bytes/s.  Reads pass through.

    clock() returns seconds (default time.monotonic); a fake clock makes it deterministic.
    poll() hands over what is due and returns how many bytes are still queued; flush() waits
    (with sleep, default time.sleep; pass the fake clock's) until the queue is empty;
    done_at_s is when it will be; close() discards what is queued."""

    def __init__(self, link, bytes_per_s, clock=time.monotonic, sleep=time.sleep):
        if not bytes_per_s > 0:
            raise ValueError("bytes_per_s=%r: must be > 0 (9600 baud 8N1 is 960)" % (bytes_per_s,))
        self.bytes_per_s = bytes_per_s
        self._clock = clock
        self._sleep = sleep
        self._queue = deque()   # [start_s, data, bytes already handed over]
        self.done_at_s = None   # when the last queued byte is through
        _Wrapper.__init__(self, link)

    @property
    def pending(self):
        return sum(len(item[1]) - item[2] for item in self._queue)

    def _release(self, now):
        queue = self._queue
        while queue:
            item = queue[0]
            start_s, data, handed = item
            due = int((now - start_s) * self.bytes_per_s + 1e-6)  # bytes fully through
            if due <= handed:
                break
            if due >= len(data):
                self._link.write(data[handed:])
                queue.popleft()
                continue
            self._link.write(data[handed:due])
            item[2] = due
            break
        return self.pending

    def _next_due(self):
        if not self._queue:
            return None
        start_s, _, handed = self._queue[0]
        return start_s + (handed + 1) / self.bytes_per_s

    def _write_internal(self, data):
        now = self._clock()
        self._release(now)
        if len(data):
            start_s = now if self.done_at_s is None or self.done_at_s < now else self.done_at_s
            self.done_at_s = start_s + len(data) / self.bytes_per_s
            self._queue.append([start_s, bytes(data), 0])
        return len(data)

    def _read_internal(self, max_bytes):
        self._release(self._clock())
        return self._link.read(max_bytes)

    def flush(self):
        self._check_open()
        while self._release(self._clock()):
            self._sleep(max(self.done_at_s - self._clock(), 1.0 / self.bytes_per_s))


class _Rule:
    def __init__(self, kind, direction, probability, nth, **options):
        if direction not in (SEND, RECEIVE, BOTH):
            raise ValueError("direction=%r: use 'send', 'receive' or 'both'" % (direction,))
        if probability is not None and not 0.0 <= probability <= 1.0:
            raise ValueError("probability=%r: must be from 0 to 1" % (probability,))
        if nth is not None and (not isinstance(nth, int) or nth < 1):
            raise ValueError("nth=%r: must be a whole number >= 1 (1 = the first)" % (nth,))
        self.kind = kind
        self.direction = direction
        self.probability = probability
        self.nth = nth
        self.options = options

    def fires(self, direction, number, rng):
        # nth and probability both apply when both are given; neither: every chunk.
        if self.direction != BOTH and self.direction != direction:
            return False
        if self.nth is not None and number != self.nth:
            return False
        return self.probability is None or rng.random() < self.probability


def add_noise(manipulator, noise, direction):
    """Rules for a link_noise fault (sim/scenario/faults.py units: drop_ppm, corrupt_ppm,
    corrupt_bits, delay_ms, delay_ppm; probabilities per chunk) on one direction of a
    Manipulator."""
    if noise.get("drop_ppm"):
        manipulator.drop(direction, probability=noise["drop_ppm"] / 1e6)
    if noise.get("corrupt_ppm"):
        manipulator.corrupt(direction, probability=noise["corrupt_ppm"] / 1e6,
                            bits=noise.get("corrupt_bits", 1))
    if noise.get("delay_ms"):
        manipulator.delay(noise["delay_ms"] / 1000.0, direction,
                          probability=noise.get("delay_ppm", 1000000) / 1e6)
    return manipulator


class Manipulator(_Wrapper):
    """Fault injection on the bytes a link sends (direction "send": each write) or receives
    ("receive": each chunk the inner read() returned).  Rules apply in the order they were
    added; each fires on every chunk, on the nth chunk of its direction (1 = the first),
    with a probability, or both:

        drop(direction, probability, nth)                  the whole chunk vanishes
        corrupt(direction, probability, nth, bits=1)       flips bits at random positions
        split(direction, pieces=2, at=None, gap_s=0, ...)  delivered in pieces (at: offsets);
                                                           a read() never returns bytes of two
                                                           pieces, and piece k is held k*gap_s
        delay(seconds, direction, probability, nth)        held for seconds of the clock
        custom(fn, direction=BOTH)                         fn(direction, data) -> data or None

    A byte stream never reorders: a held chunk holds everything behind it.  Randomness comes
    from random.Random(seed): the same seed, rules and traffic give the same faults.  What it
    did is counted in counts[direction][action] (chunks, dropped, corrupted, split, delayed,
    changed) and the latest `history` actions are kept as (clock_s, direction, chunk, action,
    detail) so a test or a report can show the cause of what followed."""

    def __init__(self, link, seed=0, clock=time.monotonic, fn=None, history=1000):
        self._clock = clock
        self._rng = random.Random(seed)
        self._rules = []
        self._held = {SEND: deque(), RECEIVE: deque()}   # [due_s, data, ends_a_piece]
        self.counts = {}
        for direction in (SEND, RECEIVE):
            self.counts[direction] = dict.fromkeys(
                ("chunks", "dropped", "corrupted", "split", "delayed", "changed"), 0)
        self.history = deque(maxlen=history)
        _Wrapper.__init__(self, link)
        if fn is not None:
            self.custom(fn)

    # -- rules (each returns self, so they chain) --

    def drop(self, direction=SEND, probability=None, nth=None):
        return self._add(_Rule("drop", direction, probability, nth))

    def corrupt(self, direction=SEND, probability=None, nth=None, bits=1):
        if not isinstance(bits, int) or bits < 1:
            raise ValueError("bits=%r: must be a whole number >= 1" % (bits,))
        return self._add(_Rule("corrupt", direction, probability, nth, bits=bits))

    def split(self, direction=SEND, pieces=2, at=None, gap_s=0.0, probability=None, nth=None):
        if at is None and (not isinstance(pieces, int) or pieces < 2):
            raise ValueError("pieces=%r: must be a whole number >= 2" % (pieces,))
        return self._add(_Rule("split", direction, probability, nth, pieces=pieces,
                               at=tuple(at) if at is not None else None, gap_s=gap_s))

    def delay(self, seconds, direction=SEND, probability=None, nth=None):
        if not seconds >= 0:
            raise ValueError("seconds=%r: must be >= 0" % (seconds,))
        return self._add(_Rule("delay", direction, probability, nth, seconds=seconds))

    def custom(self, fn, direction=BOTH):
        return self._add(_Rule("custom", direction, None, None, fn=fn))

    def _add(self, rule):
        self._rules.append(rule)
        return self

    # -- shaping --

    def _note(self, now, direction, number, action, detail):
        self.counts[direction][action] += 1
        self.history.append((now, direction, number, action, detail))

    def _shape(self, direction, data, now):
        # Applies the rules to one chunk and queues what is left in _held[direction].
        counts = self.counts[direction]
        counts["chunks"] += 1
        number = counts["chunks"]
        cuts = None
        gap_s = hold_s = 0.0
        for rule in self._rules:
            if not rule.fires(direction, number, self._rng):
                continue
            kind = rule.kind
            if kind == "drop":
                self._note(now, direction, number, "dropped", "%d bytes" % len(data))
                return
            if kind == "custom":
                out = rule.options["fn"](direction, data)
                if out is None:
                    self._note(now, direction, number, "dropped", "by fn, %d bytes" % len(data))
                    return
                out = bytes(out)
                if out != data:
                    self._note(now, direction, number, "changed",
                               "%d -> %d bytes" % (len(data), len(out)))
                data = out
            elif kind == "corrupt" and data:
                flipped = bytearray(data)
                where = self._rng.sample(range(len(data) * 8), min(rule.options["bits"],
                                                                   len(data) * 8))
                for bit in where:
                    flipped[bit >> 3] ^= 1 << (bit & 7)
                data = bytes(flipped)
                self._note(now, direction, number, "corrupted",
                           "bit(s) %s of %d bytes" % (",".join(map(str, sorted(where))), len(data)))
            elif kind == "split" and len(data) > 1:
                at = rule.options["at"]
                if at is None:
                    at = self._rng.sample(range(1, len(data)),
                                          min(rule.options["pieces"] - 1, len(data) - 1))
                cuts = sorted(set(c for c in at if 0 < c < len(data)))
                gap_s = rule.options["gap_s"]
                if cuts:
                    self._note(now, direction, number, "split", "at %s of %d bytes"
                               % (",".join(map(str, cuts)), len(data)))
            elif kind == "delay":
                hold_s += rule.options["seconds"]
                self._note(now, direction, number, "delayed", "%g s" % rule.options["seconds"])
        cuts = [c for c in (cuts or ()) if c < len(data)]
        bounds = [0] + cuts + [len(data)]
        held = self._held[direction]
        for k in range(len(bounds) - 1):
            due_s = now + hold_s + k * gap_s
            if held and held[-1][0] > due_s:
                due_s = held[-1][0]     # a stream does not reorder
            held.append([due_s, data[bounds[k]:bounds[k + 1]], bool(cuts)])

    def _release(self, now):
        held = self._held[SEND]
        while held and held[0][0] <= now:
            self._link.write(held.popleft()[1])
        return sum(len(item[1]) for d in (SEND, RECEIVE) for item in self._held[d])

    def _next_due(self):
        dues = [self._held[d][0][0] for d in (SEND, RECEIVE) if self._held[d]]
        return min(dues) if dues else None

    def _ready(self, now):
        held = self._held[RECEIVE]
        return bool(held) and held[0][0] <= now

    def _write_internal(self, data):
        now = self._clock()
        self._shape(SEND, bytes(data), now)
        self._release(now)
        return len(data)

    def _read_internal(self, max_bytes):
        now = self._clock()
        self._release(now)
        data = self._link.read(max_bytes)
        if data:
            self._shape(RECEIVE, data, now)
        held = self._held[RECEIVE]
        out = bytearray()
        while held and held[0][0] <= now and len(out) < max_bytes:
            item = held[0]
            take = max_bytes - len(out)
            out += item[1][:take]
            if take < len(item[1]):
                item[1] = item[1][take:]
                break
            held.popleft()
            if item[2]:
                break           # the end of a split piece: the next read() gets the next one
        return bytes(out)


# --- opening the pump's link ---------------------------------------------------------------

def open_link(spec):
    """The pump's end of a link, by spec:

        "pty"                  PtyLink; .url (= .path) is the slave a programmer opens
        "loop" or "loop://"    LoopPair's pump end; the programmer end is .peer
        "socket://HOST:PORT"   TcpServerLink listening (PORT 0: a free one); .url to connect
        anything else          hal's SerialLink(spec): a device path or pyserial URL

    Every returned link has .url: what a programmer should open."""
    if not isinstance(spec, str) or not spec:
        raise LinkError("link %r: use %s" % (spec, _SPECS))
    if spec == "pty":
        return PtyLink()
    if spec in ("loop", "loop://"):
        return LoopPair().pump_end
    if spec.lower().startswith("socket://"):
        host, port = parse_socket_url(spec)
        return TcpServerLink(host, port)
    return hal.link_class("serial")(spec)
