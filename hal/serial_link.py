# The host's serial backend: a Link over anything pyserial's serial_for_url opens.
#
#   a device path   /dev/ttyACM0 (a board), /dev/pts/N (the pty `vpump serve --link pty` prints)
#   socket://H:P    a TCP client (`vpump serve --link socket://127.0.0.1:P` listens)
#   loop://         pyserial's own loop: what you write comes back (an echo, not a pump)
#   rfc2217://H:P, spy://..., and the rest of pyserial's URL handlers
#
# Host only (imports pyserial); hal/__init__.py registers it lazily so `import hal` stays
# importable on MicroPython.  read() never blocks (timeout=0); write() sends everything or raises
# LinkError after write_timeout_s; wait(timeout_s) blocks until input is there (the programmer's
# only blocking call).

import errno
import os
import select
import socket
import time

import serial

from hal.base import Link
from hal.errors import LinkError

# How often wait() looks again on a port that offers no file descriptor (loop://, rfc2217://).
_POLL_S = 0.002

_SCHEMES = "a device path (/dev/ttyACM0, /dev/pts/N), socket://HOST:PORT, loop://, rfc2217://HOST:PORT"


def _open_error(url, exc):
    # A LinkError for a failed open, saying what to do.  pyserial wraps OS errors in
    # SerialException (errno kept for device paths; the socket handler keeps the cause).
    cause = exc.__context__ if exc.__context__ is not None else exc
    code = getattr(exc, "errno", None) or getattr(cause, "errno", None)
    if isinstance(exc, ValueError) and "protocol" in str(exc):
        return LinkError("cannot open %s: unknown URL scheme; use %s" % (url, _SCHEMES))
    if code == errno.ENOENT:
        return LinkError(
            "no such device %s: is `vpump serve` running? it prints the link path on its first "
            "line (a board: is it plugged in? see ls /dev/ttyACM* /dev/ttyUSB*)" % url)
    if code == errno.EACCES:
        return LinkError("permission denied on %s: add your user to the group that owns it "
                         "(often dialout), then log in again" % url)
    if code == errno.EBUSY:
        return LinkError("%s is busy: another program has it open; close that program" % url)
    if isinstance(cause, ConnectionRefusedError):
        return LinkError("nothing listens at %s: start the pump first, e.g. "
                         "`vpump serve --link %s`" % (url, url))
    if isinstance(cause, socket.gaierror):
        return LinkError("cannot resolve the host in %s (%s): check the name, or use an "
                         "address such as socket://127.0.0.1:PORT" % (url, cause))
    if isinstance(cause, (socket.timeout, TimeoutError)):
        return LinkError("no answer from %s: is the host reachable and the pump serving?" % url)
    return LinkError("cannot open %s: %s (use %s)" % (url, exc, _SCHEMES))


class SerialLink(Link):
    def __init__(self, url, baudrate=115200, write_timeout_s=2.0):
        if not isinstance(url, str) or not url:
            raise LinkError("link %r: give %s" % (url, _SCHEMES))
        self.url = url
        self.write_timeout_s = write_timeout_s
        # A device path is a UART: its baud rate sets a pump's inter-byte timeout (a URL's
        # transport has its own pace, so it gets the socket timeout).
        self.baud = None if "://" in url else baudrate
        try:
            self._port = serial.serial_for_url(
                url, baudrate=baudrate, timeout=0, write_timeout=write_timeout_s)
        except (serial.SerialException, ValueError, OSError) as exc:
            raise _open_error(url, exc) from exc
        self._fileno = None
        try:
            self._fileno = self._port.fileno()
        except (AttributeError, OSError, ValueError, serial.SerialException):
            pass  # no descriptor to select on: wait() polls in_waiting instead
        # A local tty or pty (pyserial keeps it non-blocking) is read with os.read directly:
        # pyserial's read() adds a select() per call, a fifth of a programmer's round trip.
        self._raw_fd = None
        posix_serial = getattr(getattr(serial, "serialposix", None), "Serial", None)
        if posix_serial is not None and type(self._port) is posix_serial:
            self._raw_fd = self._fileno
        Link.__init__(self)

    def _read_internal(self, max_bytes):
        try:
            if self._raw_fd is not None:
                try:
                    data = os.read(self._raw_fd, max_bytes)
                except BlockingIOError:
                    return b""
                if not data:
                    # pyserial sets VMIN=0 VTIME=0, so an empty tty also reads as b"" (it does
                    # not raise EAGAIN).  A hung-up one is readable as well; an empty one not.
                    ready, _, _ = select.select([self._raw_fd], [], [], 0)
                    if ready:
                        raise serial.SerialException(
                            "end of file: the other side closed the port")
                return data
            return self._port.read(max_bytes)
        except (serial.SerialException, OSError) as exc:
            raise self._lost("reading", exc) from exc

    def _write_internal(self, data):
        n = len(data)
        try:
            if self._raw_fd is not None:
                # Straight to the tty (see __init__); pyserial only finishes a partial write.
                try:
                    sent = os.write(self._raw_fd, data)
                except BlockingIOError:
                    sent = 0
                if sent == n:
                    return n
                data = data[sent:]
        except OSError as exc:
            raise self._lost("writing", exc) from exc
        try:
            self._port.write(data)
        except serial.SerialTimeoutException as exc:
            raise LinkError("writing to %s timed out after %g s: the other side is not reading; "
                            "is it still running?" % (self.url, self.write_timeout_s)) from exc
        except (serial.SerialException, OSError) as exc:
            raise self._lost("writing", exc) from exc
        return n

    def wait(self, timeout_s):
        # Block until read() has bytes, or timeout_s passes; True if input is there.  The other
        # side going away raises LinkError, here or in the next read().
        self._check_open()
        port = self._port
        try:
            if self._fileno is not None:
                ready, _, _ = select.select([self._fileno], [], [], max(0.0, timeout_s))
                return bool(ready)
            if port.in_waiting:
                return True
            deadline = time.monotonic() + timeout_s
            while not port.in_waiting:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                time.sleep(min(left, _POLL_S))
            return True
        except (serial.SerialException, OSError) as exc:
            raise self._lost("waiting for input", exc) from exc

    def _lost(self, doing, exc):
        return LinkError("lost the link %s while %s (%s): did the other side stop? start it "
                         "again and reopen the link" % (self.url, doing, exc))

    def _close_internal(self):
        self._port.close()
