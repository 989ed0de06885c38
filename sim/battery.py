# A lithium primary cell as an implanted pump carries it: the true cell behind the firmware's
# coulomb count (docs/battery-and-clock.md).
#
# Portable: runs unchanged on CPython and MicroPython 1.27 (sim/replay.py builds it from a
# scenario's [models] table, and tests/golden replays those scenarios on both), so it is plain:
# integer arithmetic only, no float, no dataclasses/enum/typing.
#
# What differs from hal/sim.py SimBattery (a fixed capacity with a flat-then-knee voltage):
#   - the true capacity differs from the nominal one the firmware counts against: a fixed error
#     plus a seeded uniform draw within +-spread (cell-to-cell variation);
#   - self-discharge: a fixed fraction of the capacity per year of true time, whatever the load;
#   - the open-circuit voltage (OCV) follows the chemistry's curve against depth of discharge
#     (DoD), a small table interpolated in integers;
#   - the internal resistance rises with DoD, so the voltage read under a motor stroke's current
#     sags below the OCV, more so late in life;
#   - the charge of telemetry sessions (session()), beside the strokes' (SimMotor adds them to
#     used_nah) and the quiescent current.
# The firmware's own ERI/EOS logic (firmware/battery.py) stays the judge: it counts charge against
# its nominal capacity and compares read_mv() with eri_mv/eos_mv.  The two can disagree, which is
# the point.
#
# When does the firmware's read happen?  read_mv() is called by the pump's hourly housekeeping
# (and by status()), which in virtual time falls between strokes.  A real pump's battery check
# is worth most under the load that has to be carried, so by default the cell answers as if the
# reading were taken during a motor stroke (read = "loaded": OCV - stroke current x internal
# resistance), the conservative choice; read = "rest" answers with the OCV less the quiescent
# current's drop.  Both are UNSOURCED design decisions (no public description of when an
# implanted pump samples its battery was found); the mode is a [models] key.

from hal.sim import SimBattery, SimRng

_PPM = 1000000
_MS_PER_HOUR = 3600000
MS_PER_YEAR = 365 * 24 * _MS_PER_HOUR     # 365-day years: the model's own unit of ageing
_CELL_SEED_XOR = 0xCE11CE11

READ_MODES = ("loaded", "rest")

# Chemistries: depth of discharge (per mille of the true capacity) -> open-circuit mV, and ->
# internal resistance (milliohm); defaults for self-discharge and the stroke's load current.
# Shapes follow the public descriptions cited in docs/battery-and-clock.md; the exact numbers
# are UNSOURCED (read off no published curve): treat them as documented defaults.
CHEMISTRIES = {
    # Lithium / hybrid CFx + silver vanadium oxide (Medtronic's hybrid cathode: Chen et al.,
    # J. Power Sources 162 (2006) 837): SVO's higher voltage first, then a long, nearly flat
    # CFx-dominated plateau, then the knee at the end of life.  The resistance stays low and
    # rises late.
    "li-cfx-svo": {
        "ocv_mv": ((0, 3250), (50, 3150), (150, 3060), (300, 3010), (500, 2990), (700, 2970),
                   (850, 2950), (920, 2930), (950, 2900), (970, 2850), (985, 2750),
                   (1000, 2400)),
        "resistance_mohm": ((0, 30000), (500, 32000), (800, 40000), (900, 50000),
                            (950, 70000), (980, 110000), (1000, 250000)),
        "self_discharge_ppm_per_year": 10000,       # 1 %/year (UNSOURCED)
        "stroke_load_ua": 2000,                     # 2 mA motor pulse (UNSOURCED)
    },
    # Lithium / silver vanadium oxide (ICD cells): two plateaus, near 3.2 V and near 2.6 V, the
    # drop between them around middle of life (Medtronic performance note, GEM II/III ICD
    # battery discharge behaviour: plateaus 3.2 V and 2.6 V, ERI at 2.55 V); resistance (Rdc)
    # grows from about 25-35 % to 70 % DoD (Greatbatch, US 6,930,468 and US 2004/0151976).
    # With the firmware's default eri_mv = 2800 such a cell raises ERI at middle of life: the
    # thresholds must match the chemistry (the GEM note's warning).
    "li-svo": {
        "ocv_mv": ((0, 3240), (100, 3200), (300, 3170), (400, 3000), (480, 2750),
                   (550, 2640), (800, 2600), (900, 2560), (950, 2480), (980, 2300),
                   (1000, 2000)),
        "resistance_mohm": ((0, 30000), (250, 35000), (500, 60000), (700, 90000),
                            (900, 100000), (970, 150000), (1000, 300000)),
        "self_discharge_ppm_per_year": 10000,       # 1 %/year (UNSOURCED)
        "stroke_load_ua": 2000,                     # 2 mA motor pulse (UNSOURCED)
    },
}


def interpolate(table, x):
    # Piecewise-linear through ((x0, y0), (x1, y1), ...), x ascending; clamped at both ends.
    # Integer: rounds towards the lower-x point's value (deterministic on either interpreter).
    if x <= table[0][0]:
        return table[0][1]
    for i in range(1, len(table)):
        x1, y1 = table[i]
        if x <= x1:
            x0, y0 = table[i - 1]
            return y0 + (y1 - y0) * (x - x0) // (x1 - x0)
    return table[-1][1]


def draw_capacity_nah(nominal_nah, error_ppm, spread_ppm, seed):
    # This cell's true capacity: nominal x (1 + error + U(-spread, +spread)), the draw from its
    # own SimRng (so the patient's presses or the motor noise do not move it).
    deviation = error_ppm
    if spread_ppm:
        deviation += SimRng(seed ^ _CELL_SEED_XOR).next_u32() % (2 * spread_ppm + 1) - spread_ppm
    capacity = nominal_nah * (_PPM + deviation) // _PPM
    return capacity if capacity > 0 else 1


class PrimaryCell(SimBattery):
    # The interface of SimBattery (read_mv(), remaining_nah(), used_nah, capacity_nah), so the
    # board, SimMotor and the firmware take it unchanged.  capacity_nah is the TRUE capacity;
    # nominal_capacity_nah what the label (and the firmware) says.
    #   chemistry                 a key of CHEMISTRIES
    #   capacity_nah              the true capacity (draw_capacity_nah)
    #   quiescent_na              the standing current, drawn over true time
    #   self_discharge_ppm_per_year   None: the chemistry's default
    #   stroke_load_ua            current during a motor stroke (None: the chemistry's default)
    #   session_nah               charge of one telemetry session (session())
    #   read                      "loaded" or "rest" (see the top of this file)
    def __init__(self, clock, chemistry, capacity_nah, nominal_capacity_nah=None,
                 quiescent_na=0, self_discharge_ppm_per_year=None, stroke_load_ua=None,
                 session_nah=0, read="loaded"):
        if chemistry not in CHEMISTRIES:
            raise ValueError("battery chemistry %r unknown; known: %s"
                             % (chemistry, ", ".join(sorted(CHEMISTRIES))))
        if read not in READ_MODES:
            raise ValueError("battery read %r unknown; known: %s" % (read, ", ".join(READ_MODES)))
        SimBattery.__init__(self, clock, capacity_nah, quiescent_na)
        spec = CHEMISTRIES[chemistry]
        self.chemistry = chemistry
        self.nominal_capacity_nah = capacity_nah if nominal_capacity_nah is None \
            else nominal_capacity_nah
        self.ocv_table = spec["ocv_mv"]
        self.resistance_table = spec["resistance_mohm"]
        self.self_discharge_ppm_per_year = spec["self_discharge_ppm_per_year"] \
            if self_discharge_ppm_per_year is None else self_discharge_ppm_per_year
        self.stroke_load_ua = spec["stroke_load_ua"] if stroke_load_ua is None else stroke_load_ua
        self.session_nah = session_nah
        self.read = read
        self.full_mv = self.ocv_table[0][1]
        self.empty_mv = self.ocv_table[-1][1]
        self.sessions = 0
        self.reads = 0

    # -- charge ----------------------------------------------------------------------------

    def session(self):
        # One telemetry session: the radio's charge (the firmware counts its own nominal value
        # in Pump.telemetry_session; sim/replay.py calls both).
        self.sessions += 1
        self.used_nah += self.session_nah

    def quiescent_nah(self):
        return self.quiescent_na * self.clock.true_ms // _MS_PER_HOUR

    def self_discharged_nah(self):
        # Linear in true time, a fixed fraction of the capacity per year.
        return self.capacity_nah * self.self_discharge_ppm_per_year * self.clock.true_ms \
            // (_PPM * MS_PER_YEAR)

    def remaining_nah(self):
        left = self.capacity_nah - self.used_nah - self.quiescent_nah() - self.self_discharged_nah()
        return left if left > 0 else 0

    def depth_ppm(self):
        # Depth of discharge, ppm of the true capacity (0 fresh, 1000000 empty).
        return (self.capacity_nah - self.remaining_nah()) * _PPM // self.capacity_nah

    # -- voltage ---------------------------------------------------------------------------

    def ocv_mv(self):
        return interpolate(self.ocv_table, self.depth_ppm() // 1000)

    def resistance_mohm(self):
        return interpolate(self.resistance_table, self.depth_ppm() // 1000)

    def mv_at(self, load_ua):
        # Terminal voltage under load_ua: OCV - I x R (uA x mOhm = nV).
        mv = self.ocv_mv() - load_ua * self.resistance_mohm() // _PPM
        return mv if mv > 0 else 0

    def rest_mv(self):
        return self.mv_at(self.quiescent_na // 1000)

    def loaded_mv(self):
        return self.mv_at(self.stroke_load_ua)

    def _read_mv_internal(self):
        self.reads += 1
        return self.loaded_mv() if self.read == "loaded" else self.rest_mv()


def build(board, models, model, seed):
    # The cell a scenario's [models] describes (sim/scenario/models.py: integer units), put into the
    # board in place of its SimBattery: the board's battery and the motor's both point at it.
    nominal = model["battery_capacity_nah"]
    capacity = draw_capacity_nah(nominal, models.get("battery_capacity_error_ppm") or 0,
                                 models.get("battery_capacity_spread_ppm") or 0, seed)
    cell = PrimaryCell(board.clock, models["battery"], capacity, nominal,
                       quiescent_na=model["quiescent_na"],
                       self_discharge_ppm_per_year=models.get("battery_self_discharge_ppm_per_year"),
                       stroke_load_ua=models.get("battery_stroke_load_ua"),
                       session_nah=model["telemetry_session_nah"],
                       read=models.get("battery_read") or "loaded")
    board.battery.close()
    board.battery = cell
    board.motor.battery = cell
    return cell
