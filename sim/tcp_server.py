"""The pump's TCP listener (`vpump serve --link socket://HOST:PORT`): every connected programmer is
served in turn, frame by frame, so nobody holds the link by staying connected, silent or busy.

    TcpServerLink(host, port, write_timeout_s=1.0, max_idle_s=600.0, max_clients=8, clock=...)

- Up to `max_clients` (8) clients are **served in turn**: each client's bytes go through its own
  frame decoder (with the pump's inter-byte timeout, docs/protocol.md "Timing"), and the pump
  reads one whole frame at a time, taking the clients in round-robin order; its answer goes back
  to the client whose frame it was. A client's garbage or half-sent frame delays nobody else. A
  frame whose CRC failed reaches the pump as a frame with a bad CRC (same SEQ and CMD), so the
  sender gets its `bad_crc` NAK.
- A client that connects while `max_clients` are served **waits**: each frame it sends is answered
  at once, by the link, with a bare NAK `busy` whose `hi` is the ms until the next served client
  would be dropped for being idle; it is served as soon as a place is free.
- A client that has sent nothing for `max_idle_s` (10 min, the pump's own session timeout) is
  **dropped**. Times are the link's (the wall clock; `clock` is injectable for tests).

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

MAX_IDLE_S = 600.0      # a served client's silence before it is dropped
MAX_CLIENTS = 8         # served in turn; more wait, answered busy


def parse_socket_url(url):
    """"socket://HOST:PORT" -> (host, port); LinkError quoting the grammar otherwise."""
    rest = url[len("socket://"):] if url.lower().startswith("socket://") else None
    host, _, port = (rest or "").partition("?")[0].rpartition(":")
    if rest is None or not host or not port.isdigit() or int(port) > 65535:
        raise LinkError("link %r: expected socket://HOST:PORT with PORT 0..65535 "
                        "(0 picks a free one), e.g. socket://127.0.0.1:5000" % (url,))
    return host, int(port)


class _Client:
    def __init__(self, sock, now):
        self.sock = sock
        self.decoder = frame.Decoder(frame.MAX_PAYLOAD, frame.SOCKET_GAP_MS, 0)
        self.frames = []        # whole frames (bytes) waiting for the pump
        self.last_rx = now
        self.closed = False


def _frame_bytes(item):
    # A decoded frame back to its bytes; a bad-CRC one as a frame that still fails its CRC.
    status, version, seq, cmd, payload = item
    if status == reasons.OK:
        return frame.encode(seq, cmd, payload, version)
    data = bytearray(frame.encode(seq, cmd, b"", version))
    data[-1] ^= 0xFF
    return bytes(data)


class TcpServerLink(Link):
    """Listens on host:port and serves its clients in turn; see the module docstring.
    port 0 picks a free port: .port and .url tell which."""

    def __init__(self, host="127.0.0.1", port=0, write_timeout_s=1.0, max_idle_s=MAX_IDLE_S,
                 max_clients=MAX_CLIENTS, clock=time.monotonic):
        self.host = host
        self.write_timeout_s = write_timeout_s
        self.max_idle_s = max_idle_s
        self.max_clients = max_clients
        self._clock = clock
        self.bytes_dropped = 0
        self.clients_accepted = 0
        self.clients_dropped_idle = 0
        self.busy_naks = 0
        self._clients = []      # served, in round-robin order
        self._waiting = []      # beyond max_clients
        self._current = None    # whose frame the pump read last: its answer goes there
        self._pending = b""     # the rest of a frame longer than the pump's read
        self._next = 0
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((host, port))
            listener.listen(16)
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
        return bool(self._clients)

    @property
    def clients(self):
        return len(self._clients)

    @property
    def waiting(self):
        return len(self._waiting)

    # -- clients ------------------------------------------------------------------------

    def _service(self):
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
            client = _Client(sock, now)
            if len(self._clients) < self.max_clients:
                self._clients.append(client)
            else:
                self._waiting.append(client)
        now_ms = int(now * 1000)
        for client in list(self._clients):
            self._receive(client, now, now_ms)
            if not client.closed and now - client.last_rx > self.max_idle_s:
                self.clients_dropped_idle += 1
                self._drop(client)
        while self._waiting and len(self._clients) < self.max_clients:
            client = self._waiting.pop(0)
            client.last_rx = now
            self._clients.append(client)
        for client in list(self._waiting):
            self._answer_busy(client, now)

    def _recv(self, client):
        # The bytes the client sent (b"" if none); None when it has gone.
        try:
            data = client.sock.recv(4096)
        except (BlockingIOError, InterruptedError):
            return b""
        except OSError:
            return None
        return data or None

    def _receive(self, client, now, now_ms):
        while True:
            data = self._recv(client)
            if data is None:
                self._drop(client)
                return
            if not data:
                client.decoder.idle(now_ms)
                return
            client.last_rx = now
            for item in client.decoder.feed(data, now_ms):
                client.frames.append(_frame_bytes(item))

    def _answer_busy(self, client, now):
        data = self._recv(client)
        if data is None:
            client.sock.close()
            self._waiting.remove(client)
            return
        oldest = min(c.last_rx for c in self._clients) if self._clients else now
        left_ms = int(max(0.0, oldest + self.max_idle_s - now) * 1000)
        for status, version, seq, cmd, payload in client.decoder.feed(data):
            if status != reasons.OK or cmd & frame.RESPONSE:
                continue
            nak = C.encode_nak(reasons.BUSY, None, 0, 0, left_ms)
            try:
                client.sock.send(frame.encode(seq, (cmd | frame.RESPONSE) & 0xFF, nak))
                self.busy_naks += 1
            except OSError:
                pass        # it stopped reading: it hears nothing, and loses nothing

    def _drop(self, client):
        client.closed = True
        client.sock.close()
        if client in self._clients:
            self._clients.remove(client)
        if self._current is client:
            self._current = None

    # -- Link -----------------------------------------------------------------------------

    def _read_internal(self, max_bytes):
        if self._pending:
            data, self._pending = self._pending[:max_bytes], self._pending[max_bytes:]
            return data
        self._service()
        n = len(self._clients)
        for i in range(n):
            client = self._clients[(self._next + i) % n]
            if client.frames:
                # This client's turn: its waiting frames, whole, as many as fit in the read.
                self._next = (self._next + i + 1) % n
                self._current = client
                data = client.frames.pop(0)
                while client.frames and len(data) + len(client.frames[0]) <= max_bytes:
                    data += client.frames.pop(0)
                data, self._pending = data[:max_bytes], data[max_bytes:]
                return data
        return b""

    def _write_internal(self, data):
        view = memoryview(data)
        sent = 0
        client = self._current
        deadline = None
        while client is not None and not client.closed and sent < len(view):
            try:
                sent += client.sock.send(view[sent:])
                continue
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                self._drop(client)  # broken pipe / reset: the programmer went away
                break
            now = time.monotonic()
            if deadline is None:
                deadline = now + self.write_timeout_s
            if now >= deadline:
                break
            select.select([], [client.sock], [], deadline - now)
        self.bytes_dropped += len(view) - sent
        return len(view)

    def wait(self, timeout_s):
        self._check_open()
        self._service()
        if self._pending or any(c.frames for c in self._clients):
            return True
        watched = [self._listener] + [c.sock for c in self._clients + self._waiting]
        ready, _, _ = select.select(watched, [], [], max(0.0, timeout_s))
        return bool(ready)

    def _close_internal(self):
        for client in self._clients + self._waiting:
            client.sock.close()
        self._clients = []
        self._waiting = []
        self._listener.close()
