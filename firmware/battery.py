# Battery: the charge the pump has used (counted, not measured: strokes, the standing current,
# telemetry sessions), the elective replacement indicator (ERI) and end of service (EOS).  The
# table's "battery.*" guard and action; the end-of-service halt itself is Therapy's.

from firmware import alarms, table

_MS_PER_HOUR = 3600000

# Battery levels (level()).
OK = 0
ERI = 1
EOS = 2


class Battery:
    def __init__(self, pump):
        self.pump = pump
        self.base_nah = 0           # quiescent and telemetry charge, and strokes before boot
        self.service_start_ms = pump.sched.now_ms()
        self.eri_ms = 0
        self._standing_rem = 0      # nA x ms not yet counted as a whole nAh

    def used_nah(self):
        p = self.pump
        return self.base_nah + p.doser.strokes * p.model["stroke_charge_nah"]

    def level(self, now):
        # OK, ERI (elective replacement) or EOS (end of service).
        p = self.pump
        m = p.model
        left = m["battery_capacity_nah"] - self.used_nah()
        mv = p.board.battery.read_mv()
        if left <= m["eos_remaining_nah"] or mv <= m["eos_mv"] or \
                now - self.service_start_ms >= m["max_service_ms"] or \
                (self.eri_ms and now - self.eri_ms >= m["eos_after_eri_ms"]):
            return EOS
        if left <= m["eri_remaining_nah"] or mv <= m["eri_mv"]:
            return ERI
        return OK

    def days_to_replacement(self):
        # Days until the elective replacement indicator at today's use (program plus every
        # allowed patient bolus, as the reservoir projection): 0 once reached, -1 if no use.
        p = self.pump
        m = p.model
        if p.machine.states["battery"] != table.BATTERY_OK:
            return 0
        left = m["battery_capacity_nah"] - self.used_nah() - m["eri_remaining_nah"]
        if left <= 0:
            return 0
        strokes_per_day = p.therapy.projected_daily_nl() // p.doser.stroke_nl
        daily_nah = m["quiescent_na"] * 24 + strokes_per_day * m["stroke_charge_nah"]
        if daily_nah <= 0:
            return -1
        return left // daily_nah

    def check(self, now):
        # Housekeeping: the standing current over one period (nA x ms -> nAh, remainder kept),
        # then the ERI and EOS events when their level is reached.
        p = self.pump
        m = p.model
        charge = m["quiescent_na"] * m["commit_interval_ms"] + self._standing_rem
        self.base_nah += charge // _MS_PER_HOUR
        self._standing_rem = charge % _MS_PER_HOUR
        state = self.level(now)
        if state >= ERI and p.machine.states["battery"] == table.BATTERY_OK:
            p.event("battery_level")
        if state == EOS and p.machine.states["therapy"] != table.BATTERY_DEPLETED:
            p.event("battery_eos")

    def telemetry_session(self):
        # Each session costs radio charge.
        self.base_nah += self.pump.model["telemetry_session_nah"]

    # ----------------------------------------------------------------- table

    def at_eri(self, arg):
        return self.level(self.pump.sched.now_ms()) >= ERI

    def raise_elective_replacement(self, arg):
        self.eri_ms = self.pump.sched.now_ms()
        self.pump.alarms.raise_alarm(alarms.ELECTIVE_REPLACEMENT)
        self.pump.dirty = True
