"""The pump's TCP listener (`vpump serve --link socket://HOST:PORT`): one programmer at a time,
every other one answered at once, and nobody holds the link by staying connected and silent.

    TcpServerLink(host, port, write_timeout_s=1.0, idle_s=30.0, max_idle_s=600.0, clock=...)

- The first client is **active**: its bytes are the pump's input, the pump's output goes to it.
- A client that connects while one is active **waits in turn** (in order of arrival). Each frame
  it sends is answered at once, by the link itself, with a bare NAK `busy` (docs/protocol.md)
  whose `hi` says in how many ms the active client would be dropped for being idle. When the
  active client leaves (or is dropped), the first waiting one becomes active.
- The active client is **dropped when idle**: after `idle_s` (30 s) without sending a byte while
  another client waits, and after `max_idle_s` (10 min, the pump's own session timeout) in any
  case. Times are the link's (the wall clock; `clock` is injectable for tests).

Host only.  parse_socket_url() reads "socket://HOST:PORT".
"""

import errno
import select
import socket
import time

from hal.base import Link
from hal.errors import LinkError
from protocol import commands as C
from protocol import frame, reasons

IDLE_S = 30.0           # the active client's silence allowed while another one waits
MAX_IDLE_S = 600.0      # ... and while nobody waits (the pump's session idle time)


def parse_socket_url(url):
    """"socket://HOST:PORT" -> (host, port); LinkError quoting the grammar otherwise."""
    rest = url[len("socket://"):] if url.lower().startswith("socket://") else None
    host, _, port = (rest or "").partition("?")[0].rpartition(":")
    if rest is None or not host or not port.isdigit() or int(port) > 65535:
        raise LinkError("link %r: expected socket://HOST:PORT with PORT 0..65535 "
                        "(0 picks a free one), e.g. socket://127.0.0.1:5000" % (url,))
    return host, int(port)


class _Waiting:
    # A client waiting for its turn: its own decoder, to answer each of its frames with busy.
    def __init__(self, sock):
        self.sock = sock
        self.decoder = frame.Decoder()


class TcpServerLink(Link):
    """Listens on host:port and serves one programmer at a time; see the module docstring.
    port 0 picks a free port: .port and .url tell which."""

    def __init__(self, host="127.0.0.1", port=0, write_timeout_s=1.0, idle_s=IDLE_S,
                 max_idle_s=MAX_IDLE_S, clock=time.monotonic):
        self.host = host
        self.write_timeout_s = write_timeout_s
        self.idle_s = idle_s
        self.max_idle_s = max_idle_s
        self._clock = clock
        self.bytes_dropped = 0
        self.clients_accepted = 0
        self.clients_dropped_idle = 0
        self.busy_naks = 0
        self._client = None
        self._last_rx = 0.0
        self._waiting = []
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((host, port))
            listener.listen(8)
            listener.setblocking(False)
        except OSError as exc:
            listener.close()
            hint = ("pick another port, or 0 for a free one" if exc.errno == errno.EADDRINUSE
                    else "check the host (e.g. 127.0.0.1, or 0.0.0.0 for every interface)")
            raise LinkError("cannot listen on %s:%d: %s: %s" % (host, port, exc.strerror, hint))
        self._listener = listener
        self.port = listener.getsockname()[1]
        shown = "127.0.0.1" if host in ("", "0.0.0.0") else host
        self.url = "socket://%s:%d" % (shown, self.port)
        Link.__init__(self)

    @property
    def connected(self):
        return self._client is not None

    @property
    def waiting(self):
        return len(self._waiting)

    # -- clients ------------------------------------------------------------------------

    def _service(self):
        # Accept who knocks, answer the waiting ones' frames, drop an idle active client and
        # promote the next one.  Called on every read, write and wait.
        now = self._clock()
        while True:
            try:
                sock, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                break
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.clients_accepted += 1
            if self._client is None:
                self._activate(sock, now)
            else:
                self._waiting.append(_Waiting(sock))
        if self._client is not None:
            limit = self.idle_s if self._waiting else self.max_idle_s
            if now - self._last_rx > limit:
                self.clients_dropped_idle += 1
                self._hang_up()
            elif self._waiting and self._gone(self._client):
                self._hang_up()     # it left: the next one's bytes are the pump's, not busy's
        if self._client is None and self._waiting:
            self._activate(self._waiting.pop(0).sock, now)
        for waiter in list(self._waiting):
            self._answer_busy(waiter, now)

    @staticmethod
    def _gone(sock):
        # True when the peer has closed (a peek reads the end of the stream, consuming nothing).
        try:
            return sock.recv(1, socket.MSG_PEEK) == b""
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            return True

    def _activate(self, sock, now):
        self._client = sock
        self._last_rx = now

    def _answer_busy(self, waiter, now):
        try:
            data = waiter.sock.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            waiter.sock.close()
            self._waiting.remove(waiter)
            return
        left_ms = int(max(0.0, self._last_rx + self.idle_s - now) * 1000)
        for status, version, seq, cmd, payload in waiter.decoder.feed(data):
            if status != reasons.OK or cmd & frame.RESPONSE:
                continue
            nak = C.encode_nak(reasons.BUSY, None, 0, 0, left_ms)
            try:
                waiter.sock.send(frame.encode(seq, (cmd | frame.RESPONSE) & 0xFF, nak))
                self.busy_naks += 1
            except OSError:
                pass        # it stopped reading: it will hear nothing, and lose nothing

    def _hang_up(self):
        if self._client is not None:
            self._client.close()
            self._client = None

    # -- Link -----------------------------------------------------------------------------

    def _read_internal(self, max_bytes):
        for _ in range(2):  # the second round serves a client waiting behind one that left
            self._service()
            client = self._client
            if client is None:
                return b""
            try:
                data = client.recv(max_bytes)
            except (BlockingIOError, InterruptedError):
                return b""
            except OSError:
                data = b""  # reset by the peer: same as a hang-up
            if data:
                self._last_rx = self._clock()
                return data
            self._hang_up()
        return b""

    def _write_internal(self, data):
        view = memoryview(data)
        sent = 0
        if self._client is None:
            self._service()
        client = self._client
        deadline = None
        while client is not None and sent < len(view):
            try:
                sent += client.send(view[sent:])
                continue
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                self._hang_up()  # broken pipe / reset: the programmer went away
                break
            now = time.monotonic()
            if deadline is None:
                deadline = now + self.write_timeout_s
            if now >= deadline:
                break
            select.select([], [client], [], deadline - now)
        self.bytes_dropped += len(view) - sent
        return len(view)

    def wait(self, timeout_s):
        self._check_open()
        self._service()
        watched = [self._listener] + [w.sock for w in self._waiting]
        if self._client is not None:
            watched.append(self._client)
        ready, _, _ = select.select(watched, [], [], max(0.0, timeout_s))
        return bool(ready)

    def _close_internal(self):
        self._hang_up()
        for waiter in self._waiting:
            waiter.sock.close()
        self._waiting = []
        self._listener.close()
