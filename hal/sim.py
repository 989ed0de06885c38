# The simulation backend: HAL parts whose "hardware" is a simple physical model.
#
# A first-class backend, not a mock: tests and `vpump run` drive the real firmware through it.
# It runs on CPython and MicroPython alike (issue 4 drives the same scenarios there), so it stays
# plain.  Richer models (pump bias and noise, catheter faults, crystal drift) plug in from sim/
# through the hooks documented on each part; nothing here imports sim/.

from hal.base import Clock, Motor, Battery, Annunciator, Rng, STROKE_OK, STROKE_STALL
from hal.errors import HalError

_MS_PER_HOUR = 3600000


class VirtualClock(Clock):
    # Virtual time: advanced only by sleep_until() (or advance_to()), so a year of therapy takes
    # as long as the events in it.  true_ms is the simulation's absolute time; the raw counter the
    # firmware sees is (start_raw + true_ms) masked to wrap_bits, to exercise wrap handling.
    def __init__(self, wrap_bits=0, start_raw=0):
        self.true_ms = 0
        self._start_raw = start_raw
        self._raw_mask = (1 << wrap_bits) - 1 if wrap_bits else 0
        Clock.__init__(self, wrap_bits)
        if not wrap_bits:
            # No wrap to undo: read and jump the virtual time directly (the scheduler does both
            # for every stroke).
            self.now_ms = self._now_unwrapped
            self.sleep_until = self._jump_unwrapped
            self.direct = True

    def _now_unwrapped(self):
        return self.true_ms

    def _jump_unwrapped(self, deadline_ms):
        if self._closed:
            self._check_open()
        if deadline_ms > self.true_ms:
            self.true_ms = deadline_ms
        return self.true_ms

    def _ticks_internal(self):
        raw = self._start_raw + self.true_ms
        return raw & self._raw_mask if self._raw_mask else raw

    def _sleep_internal(self, delay_ms):
        self.true_ms += delay_ms


    def advance_to(self, true_ms):
        if true_ms < self.true_ms:
            raise HalError("virtual time cannot go back from %d to %d ms" % (self.true_ms, true_ms))
        self.true_ms = true_ms


class SimReservoir:
    # The drug that is really in the pump (nL, and its concentration).  The firmware never reads
    # it: a real pump computes its level from what it was told and what it pumped
    # (TGA RC-2016-RN-01458-1), so the two can differ.
    def __init__(self, volume_nl=0, capacity_nl=20000000, concentration_ug_per_ml=0):
        self.capacity_nl = capacity_nl
        self.volume_nl = volume_nl
        self.concentration_ug_per_ml = concentration_ug_per_ml

    def refill(self, volume_nl, concentration_ug_per_ml):
        # The clinician aspirates what is left, then fills.  Returns the aspirated volume: the
        # only moment the true level is seen.  Over-filling spills: at most the capacity stays.
        residual = self.volume_nl
        self.volume_nl = min(self.capacity_nl, volume_nl)
        self.concentration_ug_per_ml = concentration_ug_per_ml
        return residual


class SimMotor(Motor):
    # A peristaltic stroke moves stroke_nl from the reservoir towards the catheter.  A dry
    # reservoir moves nothing (and nothing tells the firmware).  Hooks for sim/:
    #   volume_fn(nominal_nl) -> nl   per-stroke volume model (bias, noise); None = nominal
    #   stalled                       set True to stall (torque limit, magnetic field)
    #   occluded                      set True: strokes complete but move nothing (a blocked
    #                                 catheter; the firmware is not told)
    #   to_csf                        set False: what is moved leaves the pump but never reaches
    #                                 the CSF (dislodged or leaking catheter)
    # delivered_nl/_ng count what left the pump; csf_nl/_ng what reached the CSF.
    def __init__(self, reservoir, battery, stroke_nl=1000, stroke_charge_nah=0):
        Motor.__init__(self)
        self.reservoir = reservoir
        self.battery = battery
        self.stroke_nl = stroke_nl
        self.stroke_charge_nah = stroke_charge_nah
        self.volume_fn = None
        self.stalled = False
        self.occluded = False
        self.to_csf = True
        self.strokes = 0
        self.stalls = 0
        self.delivered_nl = 0
        self.delivered_ng = 0
        self.csf_nl = 0
        self.csf_ng = 0

    def _stroke_internal(self):
        self.battery.used_nah += self.stroke_charge_nah
        if self.stalled:
            self.stalls += 1
            return STROKE_STALL
        self.strokes += 1
        if self.occluded:
            return STROKE_OK
        volume = self.stroke_nl if self.volume_fn is None else self.volume_fn(self.stroke_nl)
        reservoir = self.reservoir
        if volume > reservoir.volume_nl:
            volume = reservoir.volume_nl
        reservoir.volume_nl -= volume
        ng = volume * reservoir.concentration_ug_per_ml // 1000
        self.delivered_nl += volume
        self.delivered_ng += ng
        if self.to_csf:
            self.csf_nl += volume
            self.csf_ng += ng
        return STROKE_OK


class SimBattery(Battery):
    # A primary cell: a fixed capacity drawn by motor strokes and a quiescent current.  The
    # voltage is flat, then falls over the last 10 % of capacity (lithium chemistries behave so).
    def __init__(self, clock, capacity_nah, quiescent_na=0, full_mv=3200, empty_mv=2400):
        Battery.__init__(self)
        self.clock = clock
        self.capacity_nah = capacity_nah
        self.quiescent_na = quiescent_na
        self.full_mv = full_mv
        self.empty_mv = empty_mv
        self.used_nah = 0

    def remaining_nah(self):
        quiescent = self.quiescent_na * self.clock.true_ms // _MS_PER_HOUR
        return max(0, self.capacity_nah - self.used_nah - quiescent)

    def _read_mv_internal(self):
        left = self.remaining_nah()
        knee = self.capacity_nah // 10
        if left >= knee:
            # 3 % sag across the flat part of the curve.
            drop = (self.full_mv * 3 // 100) * (self.capacity_nah - left) // (self.capacity_nah - knee)
            return self.full_mv - drop
        flat_end = self.full_mv - self.full_mv * 3 // 100
        return self.empty_mv + (flat_end - self.empty_mv) * left // knee


class SimAnnunciator(Annunciator):
    # Counts tones by kind; listener(kind, duration_ms) lets a host record them.
    def __init__(self):
        Annunciator.__init__(self)
        self.counts = {1: 0, 2: 0}
        self.last = None
        self.listener = None

    def _tone_internal(self, kind, duration_ms):
        self.counts[kind] += 1
        self.last = (kind, duration_ms)
        if self.listener is not None:
            self.listener(kind, duration_ms)


class SimRng(Rng):
    # xorshift32: identical sequences on CPython and MicroPython for the same seed.
    def __init__(self, seed=1):
        Rng.__init__(self)
        self._state = (seed & 0xFFFFFFFF) or 0x9E3779B9

    def next_u32(self):
        x = self._state
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        self._state = x
        return x

    def _random_bytes_internal(self, n):
        out = bytearray(n)
        for i in range(n):
            if i & 3 == 0:
                word = self.next_u32()
            out[i] = (word >> ((i & 3) * 8)) & 0xFF
        return bytes(out)


class SimBoard:
    # All parts of one simulated pump, wired together.  Values are integers in the units their
    # names carry; see docs/scenarios.md for where the defaults come from.
    def __init__(self, seed=1, stroke_nl=1000, reservoir_capacity_nl=20000000, reservoir_nl=0,
                 battery_capacity_nah=None, battery_quiescent_na=0, stroke_charge_nah=0,
                 storage_size=32768, wrap_bits=0, start_raw=0, storage=None):
        # storage: None for a SimStorage of storage_size bytes (hal/sim_storage.py: in RAM, with
        # the fault hooks), or a Storage part to use instead, e.g. hal/file_storage.py's
        # FileStorage: memory kept in a file, out of the heap, as a board keeps it.
        self.clock = VirtualClock(wrap_bits, start_raw)
        self.reservoir = SimReservoir(reservoir_nl, reservoir_capacity_nl)
        if battery_capacity_nah is None:
            battery_capacity_nah = 10 ** 12
        self.battery = SimBattery(self.clock, battery_capacity_nah, battery_quiescent_na)
        self.motor = SimMotor(self.reservoir, self.battery, stroke_nl, stroke_charge_nah)
        if storage is None:
            # Imported here: a board month that keeps its memory in a file
            # (tests/mp/board_month.py) holds no SimStorage code in its heap.
            from hal.sim_storage import SimStorage
            storage = SimStorage(storage_size)
        self.storage = storage
        self.annunciator = SimAnnunciator()
        self.rng = SimRng(seed)
        self.link = None

    def close(self):
        for part in (self.clock, self.motor, self.battery, self.storage, self.annunciator, self.rng):
            part.close()
