# The scenario's [models] and [[faults]] acting on a replay's simulated board (sim/replay.py):
# the motor's stroke-volume error, the refill error, the true cell and the pump's crystal, and
# what each fault kind does to the board's parts.  Portable like sim/replay.py; the replay
# imports it only when a scenario has [models] or [[faults]], so a plain replay (the board month
# under MicroPython, tests/mp/board_month.py) does not hold its code in the heap.
#
# Faults a scenario's [[faults]] table may inject (docs/scenarios.md): what each does to the board.
#   motor_stall    the motor stalls (torque limit, magnetic field): the firmware sees STROKE_STALL
#   occlusion      the catheter is blocked: strokes complete, nothing moves, the firmware is not
#                  told (no occlusion sensing found for the device class: docs/clinical.md)
#   dislodgement   the catheter tip is out of the intrathecal space (or leaks): the drug leaves
#                  the pump but never reaches the CSF; invisible to the firmware
#   storage_fail   every write to non-volatile memory fails
#   power_loss     the supply fails at that moment: the pump reboots from storage (no duration);
#                  during = "commit" | "log": it fails in the middle of the next write to the
#                  snapshot slots or the log ring instead, after a seeded number of its bytes
#   bit_flip       bits = N seeded bits flip in non-volatile memory (region = "snapshot": the
#                  newest committed snapshot, "snapshots": either slot's, "log": a written log
#                  record, "any"); the firmware sees them only when it next reads storage: at
#                  boot (a reset or power_loss later in the scenario)
#   brown_out      the supply sags below the brown-out threshold for the fault's duration: the
#                  MCU is held in reset (no strokes, no timers, nothing logged, requests lost)
#                  while the clock (an RTC on the battery) keeps counting; then it boots
#   mri            an MRI scan: the magnet stalls the rotor for the scan, and it stays stalled
#                  for the fault's recover_ms after it (recovery can lag 2-24 h: docs/clinical.md)
#   link_noise     the telemetry link drops, corrupts or delays frames; only a host run with
#                  [link] has a link (the replay's hook _fault_link_noise, which sim/runner.py
#                  Run overrides), so in a portable replay: nothing
# Each kind has a Physical method of its name (active, phase, fault): active is how many faults
# of the kind are on after this phase ("start", "end", or "recovered" at end_ms + recover_ms
# when the fault has recover_ms); fault is the scenario's entry (its options included).

from hal.sim import SimRng

FAULT_KINDS = ("motor_stall", "occlusion", "dislodgement", "storage_fail", "power_loss",
               "mri", "link_noise", "bit_flip", "brown_out")

_MOTOR_SEED_XOR = 0xB1A5B1A5
# Bit flips and the byte a power cut lands on come from their own generator, so adding such a
# fault moves neither the patient's presses nor the random faults.
_STORAGE_SEED_XOR = 0x5107A6E5
_REC_BYTES = 32                 # firmware/persist.py's log record
_SLOT_OVERHEAD_BYTES = 10       # and a snapshot slot's magic, seq, len and CRC
_PPM = 1000000
_PHASES = {"fault_start": "start", "fault_end": "end", "fault_recovered": "recovered"}

# Requests that are telemetry sessions on a real pump (a programmer's or the patient's remote):
# with [models] battery they cost the cell a session's charge (docs/battery-and-clock.md).
_SESSION_ACTIONS = ("patient_bolus", "refill", "program", "program_flex", "clinician_bolus",
                    "set_patient_bolus", "set_low_reservoir_alarm", "silence_alarms", "start",
                    "stop", "clear_alarm", "interrogate")


class Physical:
    def __init__(self, replay):
        self.replay = replay
        self.fill_error_ppm = 0
        self._faults_on = {}        # kind -> how many of its faults are active
        self._mri_lagging = 0       # MRI scans over whose rotor has not recovered yet
        self._storage_rng_ = None

    # -- [models] ----------------------------------------------------------------------------

    def models(self, models):
        # [models]: per-pump stroke-volume bias and per-stroke noise (uniform), both in ppm of
        # the nominal stroke; the noise is drawn from its own SimRng seeded from the seed.
        r = self.replay
        self._cell_and_crystal(models)
        self.fill_error_ppm = models.get("refill_error_ppm") or 0
        self._bias_ppm = models.get("motor_bias_ppm") or 0
        self._noise_ppm = models.get("motor_noise_ppm") or 0
        if self._bias_ppm or self._noise_ppm:
            self._motor_rng = SimRng(r.seed ^ _MOTOR_SEED_XOR)
            r.board.motor.volume_fn = self._stroke_volume

    def _cell_and_crystal(self, models):
        # [models] battery and clock keys (docs/battery-and-clock.md), before the pump boots: the
        # crystal replaces the board's clock (the cell draws over its true time), the cell the
        # board's battery.  Imported here so a replay without them needs neither module.
        r = self.replay
        if "clock_drift_ppb" in models:
            if not r.simulated:
                raise ValueError("a drifting clock needs the simulated board")
            from sim.crystal import DriftingClock
            clock = DriftingClock(models["clock_drift_ppb"],
                                  models.get("clock_aging_ppb_per_year") or 0)
            r.board.clock = clock
            r.board.battery.clock = clock
            r.drifting_clock = clock
        if models.get("battery"):
            from sim import battery
            r.cell = battery.build(r.board, models, r.model, r.seed)

    def telemetry_session(self, pump):
        # Pump.telemetry_session, wrapped at boot when the true cell is modelled: the firmware
        # counts its nominal charge and the cell draws its own, whoever opened the session (a
        # direct action here, or firmware/telemetry.py over a [link]).
        counted = pump.telemetry_session
        cell = self.replay.cell

        def session():
            counted()
            cell.session()
        pump.telemetry_session = session

    def request(self, kind, pump):
        # A replayed action with the true cell modelled: a request is a telemetry session, as
        # it always is on a real pump, charged to both the firmware's count and the cell.
        if kind in _SESSION_ACTIONS:
            pump.telemetry_session()

    def _stroke_volume(self, nominal_nl):
        factor = _PPM + self._bias_ppm
        noise = self._noise_ppm
        if noise:
            factor += self._motor_rng.next_u32() % (2 * noise + 1) - noise
        if factor <= 0:
            return 0
        return nominal_nl * factor // _PPM

    def fill(self, volume_nl, concentration):
        # The clinician fills volume_nl (what the firmware is told); refill_error_ppm makes the
        # true volume differ (under- or over-fill; over-filling spills at capacity).
        reservoir = self.replay.board.reservoir
        true_nl = volume_nl * (_PPM + self.fill_error_ppm) // _PPM
        residual = reservoir.refill(true_nl, concentration)
        self.replay._sim_event("fill_error", entered_nl=volume_nl, true_nl=reservoir.volume_nl)
        return residual

    # -- [[faults]] --------------------------------------------------------------------------

    def perform(self, name, action):
        # A fault's action from the plan (sim/plan_faults.py): recorded, then applied.
        r = self.replay
        if action["occurrence"] > 1 or "rate_milli_per_year" in action["spec"]:
            r._sim_event(name, kind=action["kind"], fault=action["fault"],
                         occurrence=action["occurrence"])
        else:
            r._sim_event(name, kind=action["kind"], fault=action["fault"])
        self.fault(_PHASES[name], action["kind"], action["spec"])

    def fault(self, phase, kind, fault):
        # Apply a fault's phase; overlapping faults of one kind stay on until the last ends.
        active = self._faults_on.get(kind, 0)
        if phase == "start":
            active += 1
        elif phase == "end" and active > 0:
            active -= 1
        self._faults_on[kind] = active
        handler = getattr(self, kind, None) if kind in FAULT_KINDS else None
        if handler is None:
            raise ValueError("unknown fault kind %r" % kind)
        handler(active, phase, fault)

    def motor_stall(self, active, phase, fault):
        self._stall_rotor()

    def _stall_rotor(self):
        # The rotor turns only when no motor_stall fault, no MRI scan and no MRI recovery lag is
        # on: each kind ending must not free a rotor another still holds.
        on = self._faults_on
        self.replay.board.motor.stalled = (on.get("motor_stall", 0) > 0 or on.get("mri", 0) > 0
                                           or self._mri_lagging > 0)

    def mri(self, active, phase, fault):
        # The magnet stalls the rotor for the scan (start to end); after it the rotor stays
        # stalled for the entry's recover_ms (docs/clinical.md: recovery can lag 2-24 h), until its
        # "recovered" phase.  The firmware sees a stalled stroke: motor_stall, therapy halted
        # until a clinician interrogates the pump (clear_alarm), as docs/clinical.md says of a pump
        # put into telemetry mode by the field.  No recover_ms: the rotor turns at the scan's end.
        if phase == "end" and fault.get("recover_ms"):
            self._mri_lagging += 1
        elif phase == "recovered" and fault.get("recover_ms") and self._mri_lagging > 0:
            self._mri_lagging -= 1
        self._stall_rotor()

    def occlusion(self, active, phase, fault):
        self.replay.board.motor.occluded = active > 0

    def dislodgement(self, active, phase, fault):
        self.replay.board.motor.to_csf = active == 0

    def storage_fail(self, active, phase, fault):
        self.replay.board.storage.fail_writes = active > 0

    def link_noise(self, active, phase, fault):
        self.replay._fault_link_noise(active, phase, fault)

    def power_loss(self, active, phase, fault):
        r = self.replay
        self._faults_on["power_loss"] = 0
        if phase != "start" or not r.powered:
            return      # in a brown-out the supply is already off: nothing more to lose
        during = fault.get("during", "now")
        if during == "now":
            r._reboot("power_loss")
            return
        # Arm the cut: the next write into the slots (a commit: unmagic, body, magic) or the
        # log ring stops after a seeded number of bytes within its size, and the PowerLost it
        # raises reboots the pump (_guarded: cause "power_lost: ...").  A commit's size is
        # taken from the newest snapshot; should the next one be shorter than the draw, the
        # cut lands early in the commit after it (still mid-commit).
        persist = r.pump.persist
        storage = r.board.storage
        if during == "commit":
            size = self._slot_len(persist.slot) + _SLOT_OVERHEAD_BYTES + 2
            storage.cut_region = (0, persist.log_base)
        else:
            size = _REC_BYTES
            storage.cut_region = (persist.log_base, storage.size)
        storage.cut_after_bytes = self._storage_rng().next_u32() % size

    def bit_flip(self, active, phase, fault):
        # Flip seeded bits where the entry says; nothing tells the firmware (it reads storage
        # only at boot).  Each flip is a sim record: address, bit and what it hit.
        r = self.replay
        self._faults_on["bit_flip"] = 0
        if phase != "start":
            return
        persist = r.pump.persist
        region = fault.get("region", "any")
        rng = self._storage_rng()
        for _ in range(fault.get("bits", 1)):
            lo, hi = self._flip_span(region, persist, rng)
            addr = lo + rng.next_u32() % (hi - lo)
            bit = rng.next_u32() % 8
            r.board.storage.flip_bit(addr, bit)
            r._sim_event("bit_flip", addr=addr, bit=bit, part=self._storage_part(addr))

    def _flip_span(self, region, persist, rng):
        # The byte range one flip may hit: [lo, hi).
        if region == "snapshots":
            region = "snapshot"
            slot = rng.next_u32() & 1
        else:
            slot = persist.slot
        if region == "snapshot":
            if slot is None:
                return 0, persist.log_base
            base = slot * persist.slot_size
            return base, base + self._slot_len(slot) + _SLOT_OVERHEAD_BYTES
        if region == "log":
            last = persist.last_seq
            if last is None:
                return persist.log_base, self.replay.board.storage.size
            first = max(persist.first_seq, last - persist.log_capacity + 1)
            seq = first + rng.next_u32() % (last - first + 1)
            base = persist.log_base + (seq % persist.log_capacity) * _REC_BYTES
            return base, base + _REC_BYTES
        return 0, self.replay.board.storage.size

    def _slot_len(self, slot):
        # The payload length a slot's header gives (0 for no slot; at most what fits).
        if slot is None:
            return 0
        r = self.replay
        persist = r.pump.persist
        head = r.board.storage.read(slot * persist.slot_size + 6, 2)
        n = head[0] | (head[1] << 8)
        return min(n, persist.slot_capacity_bytes)

    def _storage_part(self, addr):
        persist = self.replay.pump.persist
        if addr < persist.slot_size:
            return "slot_a"
        if addr < persist.log_base:
            return "slot_b"
        return "log"

    def _storage_rng(self):
        if self._storage_rng_ is None:
            self._storage_rng_ = SimRng(self.replay.seed ^ _STORAGE_SEED_XOR)
        return self._storage_rng_

    def brown_out(self, active, phase, fault):
        # The MCU is held in reset while any brown-out lasts: the replay's _advance moves the
        # clock without running the firmware and _perform drops requests.  When the supply is
        # back it boots from storage, seeing the gap on its clock (the firmware logs an outage).
        r = self.replay
        if active > 0:
            r.powered = False
        elif phase == "end" and not r.powered:
            r.powered = True
            r._reboot("brown_out")
