"""The pump's non-volatile storage kept in a file (`vpump serve --state FILE`).

The file is the flash image, byte for byte: the same layout firmware/persist.py writes on a board
(two snapshot slots with the atomic three-write commit, then the log ring; docs/persistence.md).
Every write the firmware makes goes to the file at its address and is fsync'd before the write
returns, so the firmware's commit order holds on disk: a process killed (or a host that loses
power) at any moment leaves a file whose newest valid slot is the last committed state, exactly as
a power cut at any byte leaves a board's flash.

    storage = FileStorage(path, size)     # creates an erased (0xFF) file, or opens an existing one
    storage.existed                       # True when the file held a flash image already
    resume_ms(storage, model, now_wall_ms, file_wall_ms)
                                          # the pump time to resume at: the last time the pump
                                          # wrote (its newest snapshot or log record) plus the
                                          # wall-clock time the file has not been written since

Host only.
"""

import os

from firmware.errors import PersistError
from firmware.persist import Persist
from hal.errors import StorageError
from hal.sim_storage import SimStorage
from sim.errors import SimError


class StateFileError(SimError):
    """A --state file that cannot be used: the message names it and says what to do."""


class FileStorage(SimStorage):
    """SimStorage (its fault hooks included) whose every write also lands in a file, fsync'd."""

    def __init__(self, path, size=32768):
        SimStorage.__init__(self, size)
        self.path = path
        self.existed = os.path.exists(path)
        try:
            self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StateFileError("--state %s: cannot open: %s (give a file in a folder you can "
                                 "write)" % (path, exc.strerror or exc)) from None
        try:
            data = os.pread(self._fd, size + 1, 0)
            if self.existed and len(data) != size:
                raise StateFileError(
                    "--state %s: %d bytes, but a pump's storage is %d bytes: not a vpump state "
                    "file (give a new file name to start a fresh pump)" % (path, len(data), size))
            if self.existed:
                self.mem[:] = data
            else:
                os.pwrite(self._fd, bytes(self.mem), 0)
                os.fsync(self._fd)
            self.file_wall_ms = int(os.fstat(self._fd).st_mtime * 1000)
        except BaseException:
            os.close(self._fd)
            raise

    def _write_internal(self, addr, data):
        try:
            SimStorage._write_internal(self, addr, data)
        finally:
            # What reached the "flash" (all of it, or what a simulated cut let through) goes to
            # the file, durably, before the firmware's next write: the commit order on disk.
            n = len(data)
            try:
                os.pwrite(self._fd, bytes(self.mem[addr:addr + n]), addr)
                os.fdatasync(self._fd)
            except OSError as exc:
                raise StorageError("--state %s: write failed: %s" % (self.path, exc)) from None

    def flip_bit(self, addr, bit):
        # A simulated decay ([[faults]] bit_flip) decays the file too: it is the flash.
        SimStorage.flip_bit(self, addr, bit)
        os.pwrite(self._fd, bytes(self.mem[addr:addr + 1]), addr)
        os.fdatasync(self._fd)

    def _close_internal(self):
        os.close(self._fd)


def resume_ms(storage, model, now_wall_ms, file_wall_ms):
    """The pump time (ms) to resume a stored pump at: its last write plus the time off."""
    persist = Persist(storage, model["storage_slot_bytes"])
    try:
        snapshot = persist.load()
    except PersistError:
        snapshot = None
    if snapshot is None or not isinstance(snapshot.get("t_ms"), int) or \
            not isinstance(snapshot.get("clock_offset_ms"), int):
        return 0
    last = snapshot["t_ms"]
    try:
        span = persist.log_scan()
        if span:
            records = persist.log_read(span[1], 1)
            if records:
                # Log times are the pump's wall clock: back to its own time by the offset.
                last = max(last, records[-1][1] - snapshot["clock_offset_ms"])
    except PersistError:
        pass
    return last + max(0, now_wall_ms - file_wall_ms)
