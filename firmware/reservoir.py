# Reservoir: refill, the watch on the reservoir estimate (the stroke engine reports the stroke
# that crosses a watched level), the low-reservoir alarm and the totals delivered.  The table's
# "reservoir.*" guards and actions; the reservoir_empty halt itself is Therapy's, and a refill
# with a bridge bolus is firmware/bolus.py's.

from protocol import reasons
from firmware import alarms, eventlog, limits, table


class Reservoir:
    def __init__(self, pump):
        self.pump = pump
        self.low_reservoir_alarm_nl = pump.model["low_reservoir_alarm_nl"]
        self.delivered_base_nl = 0      # before this boot
        self.delivered_base_ng = 0      # before the current concentration (or this boot)
        self._dose_epoch_strokes = 0

    # ----------------------------------------------------------------- requests

    def refill(self, volume_nl, concentration_ug_per_ml, bridge):
        p = self.pump
        entry = limits.library_entry(p.drug)
        allowed = entry["concentrations_ug_per_ml"]
        if concentration_ug_per_ml not in allowed:
            return p.refuse("refill", (reasons.OUT_OF_RANGE, "concentration_ug_per_ml",
                                       concentration_ug_per_ml, allowed[0], allowed[-1]))
        bad = limits.check_range("volume_nl", volume_nl, 0, p.model["reservoir_capacity_nl"])
        return p.request("refill", {"volume_nl": volume_nl,
                                    "concentration_ug_per_ml": concentration_ug_per_ml,
                                    "bridge": bool(bridge)}, bad)

    def set_low_reservoir_alarm(self, volume_nl):
        p = self.pump
        bad = limits.check_range("low_reservoir_alarm_nl", volume_nl, 0,
                                 p.model["reservoir_capacity_nl"])
        if bad:
            return p.refuse("set_low_reservoir_alarm", bad)
        p.refusal = None
        self.low_reservoir_alarm_nl = volume_nl
        p.log.log(eventlog.ALARM_VOLUME_SET, volume_nl // 1000)
        self.update_watch()
        p.machine.dispatch("reservoir_level")
        return p.accepted()

    # ----------------------------------------------------------------- guards

    def below_low_reservoir(self, arg):
        return self.pump.doser.reservoir_nl() <= self.low_reservoir_alarm_nl

    def above_low_reservoir(self, arg):
        return self.pump.doser.reservoir_nl() > self.low_reservoir_alarm_nl

    # ----------------------------------------------------------------- actions

    def accept_refill(self, arg):
        p = self.pump
        d = p.doser
        before = d.reservoir_nl()
        volume_nl = arg["volume_nl"]
        concentration = arg["concentration_ug_per_ml"]
        self._fold_dose()
        d.set_reservoir(volume_nl, concentration)
        p.log.log(eventlog.REFILL, volume_nl // 1000, concentration,
                  1 if arg.get("bridge") else 0, max(0, before) // 1000)
        p.therapy.select_basal(p.sched.now_ms())
        p.therapy.apply_flows()
        self.update_watch()
        p.machine.post("reservoir_level")
        p.dirty = True

    def refill_after_empty(self, arg):
        self.accept_refill(arg)
        self.pump.alarms.clear(alarms.RESERVOIR_EMPTY)

    def raise_low_reservoir(self, arg):
        self.pump.alarms.raise_alarm(alarms.LOW_RESERVOIR)
        self.pump.dirty = True

    def clear_low_reservoir(self, arg):
        self.pump.alarms.clear(alarms.LOW_RESERVOIR)
        self.pump.dirty = True

    # ----------------------------------------------------------------- the watch

    def update_watch(self):
        # Watch the alarm volume while above it (reservoir_ok), else the last whole stroke.
        p = self.pump
        d = p.doser
        level = d.reservoir_nl()
        if p.machine.states["reservoir"] == table.RESERVOIR_OK and level > self.low_reservoir_alarm_nl:
            d.watch_level(self.low_reservoir_alarm_nl)
        elif level >= d.stroke_nl:
            d.watch_level(d.stroke_nl - 1)
        else:
            d.watch_level(None)
            if d.concentration_ug_per_ml:
                # Empty however it got there (a refill of nothing, a boot, a cleared alarm):
                # halt and alarm now, not at a stroke that may never come.
                p.machine.post("reservoir_empty")

    def on_watch(self):
        # The stroke engine's report: the estimate crossed the watched level.
        p = self.pump
        d = p.doser
        p.machine.post("reservoir_level")
        if d.reservoir_nl() < d.stroke_nl:
            p.machine.post("reservoir_empty")
        self.update_watch()
        p.commit()

    # ----------------------------------------------------------------- delivered totals

    def delivered_nl(self):
        d = self.pump.doser
        return self.delivered_base_nl + d.strokes * d.stroke_nl

    def delivered_ng(self):
        d = self.pump.doser
        strokes = d.strokes - self._dose_epoch_strokes
        return self.delivered_base_ng + strokes * d.stroke_nl * d.concentration_ug_per_ml // 1000

    def _fold_dose(self):
        # Before the concentration changes, bank the dose delivered at the old one.
        self.delivered_base_ng = self.delivered_ng()
        self._dose_epoch_strokes = self.pump.doser.strokes
