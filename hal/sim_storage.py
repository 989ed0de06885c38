# The simulated board's non-volatile memory (hal/sim.py SimBoard's storage unless it is given
# one): bytes in RAM with the fault hooks the simulator and the tests use.  Portable like
# hal/sim.py; a module of its own so that a SimBoard whose memory is a file (hal/file_storage.py,
# as a board keeps it) does not hold this code.

from hal.base import Storage
from hal.errors import PowerLost, StorageError


class SimStorage(Storage):
    # Erased non-volatile memory reads 0xFF.  Fault hooks for sim/ and tests:
    #   cut_after_bytes   None, or the number of bytes still written before the supply fails;
    #                     the write that crosses it stops mid-way and raises PowerLost (once:
    #                     the supply is back for the reboot)
    #   cut_region        None, or (lo, hi): only writes starting at an address in lo..hi-1
    #                     count towards cut_after_bytes and can be cut (the snapshot slots, or
    #                     the log ring: a cut "in the next commit"); other writes pass
    #   fail_writes       True: every write raises StorageError without writing
    #   flip_bit(addr, bit)  inverts one stored bit (a radiation hit, a weak cell): nothing is
    #                     told; the firmware finds out when it next reads that byte
    def __init__(self, size=32768):
        Storage.__init__(self)
        self.size = size
        self.mem = bytearray(b"\xff" * size)
        self.cut_after_bytes = None
        self.cut_region = None
        self.fail_writes = False
        self.bytes_written = 0
        self.bits_flipped = 0

    def flip_bit(self, addr, bit):
        self._check_range(addr, 1)
        if not 0 <= bit <= 7:
            raise StorageError("bit %r: allowed 0..7" % (bit,))
        self.mem[addr] ^= 1 << bit
        self.bits_flipped += 1

    def _read_internal(self, addr, n):
        return bytes(self.mem[addr:addr + n])

    def _readinto_internal(self, addr, buf):
        buf[:] = memoryview(self.mem)[addr:addr + len(buf)]

    def _write_internal(self, addr, data):
        if self.fail_writes:
            raise StorageError("simulated write failure at %d" % addr)
        n = len(data)
        budget = self.cut_after_bytes
        region = self.cut_region
        if budget is not None and region is not None and not region[0] <= addr < region[1]:
            budget = None       # not a write the cut is waiting for
        if budget is not None and n > budget:
            self.mem[addr:addr + budget] = data[:budget]
            self.bytes_written += budget
            self.cut_after_bytes = None     # power returns with the reboot
            self.cut_region = None
            raise PowerLost("supply cut after %d of %d bytes at address %d" % (budget, n, addr))
        self.mem[addr:addr + n] = data
        self.bytes_written += n
        if budget is not None:
            self.cut_after_bytes = budget - n
