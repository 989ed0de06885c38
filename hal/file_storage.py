# Storage in a file: the pump's non-volatile memory as one pre-sized file, kept out of RAM.  A
# board keeps it on its flash file system (hal/machine.py's MachineBoard, littlefs); the
# simulator may too (hal/sim.py SimBoard(storage=...)), so that a replay holds no copy of the
# memory in its heap, as a board holds none (tests/mp/board_month.py).  Portable: CPython and
# MicroPython alike (os.stat, open, seek/read/write/flush).

import os

from hal.base import Storage
from hal.errors import StorageError

_fsync = getattr(os, "fsync", None)     # CPython; MicroPython's flush() is the sync


class FileStorage(Storage):
    # Storage as one file of `size` bytes on the board's flash file system.  The file is
    # pre-sized at open (erased bytes 0xFF, as SimStorage reads), then only overwritten in
    # place: each write() is seek, write, flush, and fsync where the platform has it (CPython;
    # MicroPython's flush is littlefs' file sync: it commits the write copy-on-write, so a power
    # cut leaves the file as it was before that write or after it).  firmware/persist.py writes
    # a snapshot as three such writes (invalidate, body, commit magic), so its atomic commit
    # holds with or without the file system's help.
    def __init__(self, path, size):
        Storage.__init__(self)
        self.path = path
        self.size = size
        try:
            have = os.stat(path)[6]
        except OSError:
            have = -1
        try:
            if have < size:
                erased = b"\xff" * 256
                f = open(path, "r+b" if have >= 0 else "wb")
                f.seek(max(have, 0))
                left = size - max(have, 0)
                while left > 0:
                    n = left if left < len(erased) else len(erased)
                    f.write(erased[:n])
                    left -= n
                f.close()
            self._f = open(path, "r+b")
        except OSError as e:
            raise StorageError("cannot open storage file %s of %d bytes: %s" % (path, size, e))
        self.bytes_written = 0

    def _read_internal(self, addr, n):
        buf = bytearray(n)
        self._readinto_internal(addr, buf)
        return bytes(buf)

    def _readinto_internal(self, addr, buf):
        f = self._f
        n = len(buf)
        try:
            f.seek(addr)
            got = f.readinto(buf)
        except OSError as e:
            got = e
        if got != n:
            raise StorageError("read of %d bytes at %d from %s gave %s" % (n, addr, self.path, got))

    def _write_internal(self, addr, data):
        f = self._f
        n = len(data)
        try:
            f.seek(addr)
            done = f.write(data)
            f.flush()
            if _fsync is not None and hasattr(f, "fileno"):
                _fsync(f.fileno())
        except OSError as e:
            raise StorageError("write of %d bytes at %d to %s failed: %s" % (n, addr, self.path, e))
        if done is not None and done != n:
            raise StorageError("write of %d bytes at %d to %s wrote %d (file system full?)"
                               % (n, addr, self.path, done))
        self.bytes_written += n

    def _close_internal(self):
        self._f.close()
