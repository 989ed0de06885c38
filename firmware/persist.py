# Atomic persistence over a hal Storage: two snapshot slots and an event-log ring.
#
#   0              slot_size       2*slot_size                                          size
#   +--------------+---------------+--------------------------------------------+------+
#   | slot A       | slot B        | log ring: log_capacity records x 32 bytes  | free |
#   +--------------+---------------+--------------------------------------------+------+
#
# Snapshot slot (slot_size bytes; payload capacity = slot_size - 10):
#   0       2        6        8                 8+len    10+len
#   +-------+--------+--------+-----------------+--------+--------+
#   | magic | seq    | len    | payload         | crc16  | unused |
#   | "VP"  | u32 LE | u16 LE | JSON, len bytes | u16 LE |        |
#   +-------+--------+--------+-----------------+--------+--------+
#           \______ CRC-16/CCITT-FALSE over these ______/
#
#   commit() writes the slot that does NOT hold the newest valid snapshot, with seq + 1, in
#   three writes: (1) magic := 00 00 (the slot is now invalid), (2) seq|len|payload|crc,
#   (3) magic := "VP" (the commit point).  A power cut at any byte before the last magic byte
#   leaves that slot invalid and the other slot, untouched, is loaded.  load() takes the valid
#   slot (magic, len <= capacity, CRC, JSON object) with the highest seq.  seq is a u32 that
#   starts at 1; at one commit a second it would last 136 years, so it is compared plainly.
#   A cut can only leave the magic blank or half-written (FF FF, 00 FF, 00 00, 00 "P", "V" 00:
#   never committed); a slot whose magic is anything else, or is "VP" with a bad length, CRC or
#   payload, was committed and has decayed since (bit flips, a weak cell): load() lists it in
#   `corrupt` so the pump can say so (docs/persistence.md).
#
# Log record (32 bytes at log_base + (seq % log_capacity) * 32), little-endian:
#   0      4         8         12     13      14                     30      32
#   +------+---------+---------+------+-------+----------------------+-------+
#   | seq  | t_ms lo | t_ms hi | code | nargs | args: 4 x i32        | crc16 |
#   | u32  | u32     | u32     | u8   | u8    | unused ones are 0    | u16   |
#   +------+---------+---------+------+-------+----------------------+-------+
#   \_______________ CRC over bytes 0..29 ________________________/
#
#   A record is valid when its CRC matches, nargs <= 4 and seq % log_capacity is its index.
#   A torn record (power cut mid-append) fails its CRC (undetected with odds 2**-16) or still
#   holds the older record intact; either way it was never committed and is ignored.  Erased
#   storage (0xFF) is never valid (nargs 255).  log_scan() counts the invalid records that are
#   neither erased nor where the next append goes (where a torn one would be) in
#   `log_corrupt`: records that were written whole and have decayed since.
#
# Snapshots are dicts of plain JSON values (int, str, bool, None, list, dict with str keys);
# json.dumps(separators=(",", ":")) exists on CPython and MicroPython 1.27.  Key order may
# differ between the two; the decoded dict is what matters.

import json
import struct

from firmware.errors import PersistError
from hal.errors import StorageError
from protocol.crc import crc16

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

_MAGIC = b"VP"
_UNMAGIC = b"\x00\x00"
# What erased memory or a cut mid-commit can leave in a slot's magic (see the layout above).
_BLANK_MAGICS = (b"\xff\xff", b"\x00\xff", b"\x00\x00", b"\x00P", b"V\x00")
_SLOT_HEAD_BYTES = const(8)       # magic, seq, len
_SLOT_OVERHEAD_BYTES = const(10)  # head + crc
_SLOT_FMT = "<IH"                 # seq, len (after the magic)
_REC_BYTES = const(32)
_REC_BODY_BYTES = const(30)
_REC_FMT = "<IIIBB4i"             # seq, t_ms lo, t_ms hi, code, nargs, 4 args
_REC_ARGS_MAX = const(4)
_ERASED_REC = b"\xff" * _REC_BYTES
_BODY_PICKS = bytes(range(_REC_BODY_BYTES))   # log_copy() of a record as it is stored
# Not const(): beyond MicroPython's small-int range on 32-bit ports.
_I32_MIN = -0x80000000
_I32_MAX = 0x7FFFFFFF
_U32_MAX = 0xFFFFFFFF
_U64_MAX = 0xFFFFFFFFFFFFFFFF
_SEPARATORS = (",", ":")


class Persist:
    def __init__(self, storage, slot_size=2048, log_capacity=None):
        size = storage.size
        if slot_size < _SLOT_OVERHEAD_BYTES + 2 or slot_size - _SLOT_OVERHEAD_BYTES > 0xFFFF:
            raise PersistError("slot_size %d bytes: allowed %d..%d" % (
                slot_size, _SLOT_OVERHEAD_BYTES + 2, 0xFFFF + _SLOT_OVERHEAD_BYTES))
        log_base = 2 * slot_size
        room = (size - log_base) // _REC_BYTES if size > log_base else 0
        if log_capacity is None:
            log_capacity = room
        if log_capacity < 1 or log_capacity > room:
            raise PersistError("log_capacity %d: allowed 1..%d" % (log_capacity, room))
        self.storage = storage
        self.slot_size = slot_size
        self.slot_capacity_bytes = slot_size - _SLOT_OVERHEAD_BYTES
        self.log_base = log_base
        self.log_capacity = log_capacity
        # Snapshot state: current slot (0 = A, 1 = B, None = no valid snapshot), its seq.
        self.slot = None
        self.snapshot_seq = 0
        self.commits = 0
        self._loaded = False
        # After load(): (slot index, seq its header claims) of each decayed slot.
        self.corrupt = []
        # Log state: seqs of the oldest and newest valid records still in the ring.
        self.first_seq = None
        self.last_seq = None
        self.log_appends = 0
        self._scanned = False
        self.log_corrupt = 0        # after log_scan(): decayed records found
        # Buffers allocated once.
        self._slot_buf = bytearray(slot_size)
        self._slot_mv = memoryview(self._slot_buf)
        self._rec = bytearray(_REC_BYTES)
        self._rec_body = memoryview(self._rec)[0:_REC_BODY_BYTES]

    # -- snapshots ---------------------------------------------------------------------------

    def load(self, accept=None):
        # The newest valid snapshot as a dict, or None if neither slot is valid.  accept: None,
        # or fn(dict) -> bool, the caller's check that it can restore what it gets (CRC-16
        # misses some multi-bit damage, odds 2**-16); a slot it refuses counts as corrupt and
        # the other slot is used.
        best = None
        corrupt = []
        for index in (0, 1):
            found = self._read_slot(index)
            if found is None:
                continue
            seq, value = found
            if value is None or (accept is not None and not accept(value)):
                corrupt.append((index, seq))
            elif best is None or seq > best[0]:
                best = (seq, value, index)
        self.corrupt = corrupt
        self._loaded = True
        if best is None:
            self.slot = None
            self.snapshot_seq = 0
            return None
        self.snapshot_seq = best[0]
        self.slot = best[2]
        return best[1]

    def commit(self, snapshot):
        if not isinstance(snapshot, dict):
            raise PersistError("snapshot must be a dict, not %s" % type(snapshot).__name__)
        try:
            data = json.dumps(snapshot, separators=_SEPARATORS).encode("utf-8")
        except (TypeError, ValueError) as e:
            raise PersistError("snapshot is not plain JSON values: %s" % (e,))
        n = len(data)
        if n > self.slot_capacity_bytes:
            raise PersistError("snapshot of %d bytes; a slot holds at most %d"
                               % (n, self.slot_capacity_bytes))
        if not self._loaded:
            self.load()
        target = 0 if self.slot is None else 1 - self.slot
        seq = self.snapshot_seq + 1
        if seq > _U32_MAX:
            raise PersistError("snapshot seq %d exceeds u32" % seq)
        buf = self._slot_buf
        mv = self._slot_mv
        struct.pack_into(_SLOT_FMT, buf, 2, seq, n)
        end = _SLOT_HEAD_BYTES + n
        buf[_SLOT_HEAD_BYTES:end] = data
        struct.pack_into("<H", buf, end, crc16(mv[2:end]))
        base = target * self.slot_size
        storage = self.storage
        try:
            storage.write(base, _UNMAGIC)
            storage.write(base + 2, mv[2:end + 2])
            storage.write(base, _MAGIC)
        except StorageError as e:
            raise PersistError("commit seq %d failed (%s); seq %d still committed"
                               % (seq, e, self.snapshot_seq))
        self.slot = target
        self.snapshot_seq = seq
        self.commits += 1

    def _read_slot(self, index):
        # (seq, dict) for a valid slot, (seq its header claims, None) for a decayed one, None
        # for a blank or torn one (never committed).
        base = index * self.slot_size
        head = self._read(base, _SLOT_HEAD_BYTES)
        magic = bytes(head[0:2])
        seq, n = struct.unpack_from(_SLOT_FMT, head, 2)
        if magic != _MAGIC:
            return None if magic in _BLANK_MAGICS else (seq, None)
        if n > self.slot_capacity_bytes:
            return seq, None
        body = self._read(base + _SLOT_HEAD_BYTES, n + 2)
        mv = memoryview(body)
        crc = crc16(mv[0:n], crc16(memoryview(head)[2:_SLOT_HEAD_BYTES]))
        if crc != struct.unpack_from("<H", body, n)[0]:
            return seq, None
        try:
            value = json.loads(bytes(mv[0:n]).decode("utf-8"))
        except ValueError:  # also UnicodeError
            return seq, None
        if not isinstance(value, dict):
            return seq, None
        return seq, value

    # -- event log ---------------------------------------------------------------------------

    def log_append(self, seq, t_ms, code, args):
        n = len(args)
        if n > _REC_ARGS_MAX:
            raise PersistError("log record has %d args; at most %d" % (n, _REC_ARGS_MAX))
        if not 0 <= code <= 255:
            raise PersistError("log code %r: allowed 0..255" % (code,))
        if not 0 <= t_ms <= _U64_MAX:
            raise PersistError("log t_ms %r: allowed 0..2**64-1" % (t_ms,))
        for a in args:
            if not _I32_MIN <= a <= _I32_MAX:
                raise PersistError("log arg %r: allowed %d..%d" % (a, _I32_MIN, _I32_MAX))
        if not self._scanned:
            self.log_scan()
        last = self.last_seq
        if seq > _U32_MAX or (last is not None and seq <= last) or seq < 0:
            raise PersistError("log seq %d: allowed %d..%d" % (
                seq, 0 if last is None else last + 1, _U32_MAX))
        rec = self._rec
        struct.pack_into(_REC_FMT, rec, 0, seq, t_ms & _U32_MAX, t_ms >> 32, code, n,
                         args[0] if n > 0 else 0, args[1] if n > 1 else 0,
                         args[2] if n > 2 else 0, args[3] if n > 3 else 0)
        struct.pack_into("<H", rec, _REC_BODY_BYTES, crc16(self._rec_body))
        try:
            self.storage.write(self.log_base + (seq % self.log_capacity) * _REC_BYTES, rec)
        except StorageError as e:
            raise PersistError("log append of seq %d failed: %s" % (seq, e))
        self.last_seq = seq
        first = self.first_seq
        if first is None:
            self.first_seq = seq
        elif first <= seq - self.log_capacity:
            self.first_seq = seq - self.log_capacity + 1
        self.log_appends += 1

    def log_scan(self):
        # Boot: find the valid records.  Returns (first_seq, last_seq) or None if the log is empty.
        seqs = []
        bad = []        # indexes of invalid records that are not erased
        cap = self.log_capacity
        rec = self._rec
        for index in range(cap):
            self._read_into(self.log_base + index * _REC_BYTES, rec)
            seq = self._record_seq(index)
            if seq >= 0:
                seqs.append(seq)
            elif rec != _ERASED_REC:
                bad.append(index)
        self._scanned = True
        # A torn append sits where the record after the newest goes: not decay.
        torn_index = ((max(seqs) if seqs else 0) + 1) % cap
        self.log_corrupt = len(bad) - (1 if torn_index in bad else 0)
        if not seqs:
            self.first_seq = self.last_seq = None
            return None
        last = max(seqs)
        floor = last - self.log_capacity
        first = last
        for s in seqs:
            if floor < s < first:
                first = s
        self.first_seq = first
        self.last_seq = last
        return first, last

    def log_read(self, from_seq, max_count):
        # Records (seq, t_ms, code, args) with seq >= from_seq still in the ring, in seq order.
        out = bytearray(_REC_BODY_BYTES * self.log_room(from_seq, max_count))
        records = []
        for i in range(self.log_copy(from_seq, max_count, out, 0, _BODY_PICKS)[0]):
            v = struct.unpack_from(_REC_FMT, out, i * _REC_BODY_BYTES)
            records.append((v[0], v[1] | (v[2] << 32), v[3], tuple(v[5:5 + v[4]])))
        return records

    def log_room(self, from_seq, max_count):
        # How many records log_read(from_seq, max_count) can give at most (it skips decayed
        # ones): the room a caller of log_copy() makes.
        if not self._scanned:
            self.log_scan()
        last = self.last_seq
        if last is None:
            return 0
        first = max(from_seq, self.first_seq, last - self.log_capacity + 1)
        return max(0, min(max_count, last - first + 1))

    def log_copy(self, from_seq, max_count, out, pos, picks):
        # The records log_read() gives, with no object per record: each copied into out at pos,
        # one after the other, as len(picks) bytes chosen from the stored one (out[pos + k] =
        # record[picks[k]]), so that a READ_LOG page goes from storage to the answer's frame
        # directly (firmware/answers.py).  Returns (count, seq of the last copied or None).
        room = self.log_room(from_seq, max_count)
        if not room:
            return 0, None
        cap = self.log_capacity
        rec = self._rec
        size = len(picks)
        count = 0
        copied = None
        s = max(from_seq, self.first_seq, self.last_seq - cap + 1)
        while s <= self.last_seq and count < room:
            index = s % cap
            self._read_into(self.log_base + index * _REC_BYTES, rec)
            if self._record_seq(index) == s:
                for k in range(size):
                    out[pos + k] = rec[picks[k]]
                pos += size
                count += 1
                copied = s
            s += 1
        return count, copied

    def _record_seq(self, index):
        # The seq of the record in self._rec if it is valid at index (its CRC matches, nargs
        # <= 4, seq % log_capacity == index), else -1.
        rec = self._rec
        seq = rec[0] | (rec[1] << 8) | (rec[2] << 16) | (rec[3] << 24)
        if (crc16(self._rec_body) != rec[30] | (rec[31] << 8) or rec[13] > _REC_ARGS_MAX
                or seq % self.log_capacity != index):
            return -1
        return seq

    def _read_into(self, addr, buf):
        try:
            self.storage.readinto(addr, buf)
        except StorageError as e:
            raise PersistError("storage read of %d bytes at %d failed: %s" % (len(buf), addr, e))

    def _read(self, addr, n):
        try:
            return self.storage.read(addr, n)
        except StorageError as e:
            raise PersistError("storage read of %d bytes at %d failed: %s" % (n, addr, e))
