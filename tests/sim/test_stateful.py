"""Property-based stateful tests (Hypothesis RuleBasedStateMachine): random sequences of
programmer commands, patient presses, refills, faults, resets and time steps, driven through the
simulator on the real firmware, with the invariant monitor's rules (sim/monitor.py) as
invariants after every step.  Bounded: a few dozen sequences of a few dozen steps."""

import pytest
from hypothesis import HealthCheck, settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from sim.runner import Run
from simtest import MS_PER_HOUR, base_config

MS_PER_MIN = 60000
FAULT_KINDS = ("motor_stall", "occlusion", "storage_fail", "brown_out", "dislodgement")
PATIENT_BOLUS = {"dose_ug": 25, "duration_ms": 10 * MS_PER_MIN, "lockout_ms": 60 * MS_PER_MIN,
                 "max_per_24h": 3}


class PumpMachine(RuleBasedStateMachine):
    """One pump's life: 400 ug/day of 500 ug/mL, 3 mL filled (empty within days), patient
    boluses on; every rule is one action of the run, as a scenario's timeline would do it."""

    @initialize(fill_ml=st.sampled_from([1, 3, 20]), drift=st.booleans())
    def setup(self, fill_ml, drift):
        cfg = base_config(days=3650, fill_nl=fill_ml * 1000000, patient_bolus=PATIENT_BOLUS)
        if drift:
            cfg["models"] = {"clock_drift_ppb": 50000}
        self.run = Run(cfg)
        self.run.start()
        self.faults = {}        # kind -> its fault_start action, while on
        self.number = 0

    def _do(self, name, **fields):
        action = {"action": name}
        action.update(fields)
        self.run._guarded(self.run._perform, action)
        self.run._after_action()

    # -- the programmer and the patient ----------------------------------------------------

    @rule(basal=st.sampled_from([0, 100, 400, 900, 2500]), confirm=st.booleans())
    def program(self, basal, confirm):
        self._do("program", basal_ug_per_day=basal, confirm=confirm)

    @rule(low=st.sampled_from([0, 200, 600]), high=st.sampled_from([300, 800, 1500]))
    def program_flex(self, low, high):
        day = [[0, low], [480, high], [1200, low]]
        self._do("program_flex", steps=[day] * 7, confirm=True)

    @rule(dose=st.sampled_from([5, 50, 150, 250]), minutes=st.sampled_from([1, 10, 120]),
          confirm=st.booleans())
    def clinician_bolus(self, dose, minutes, confirm):
        self._do("clinician_bolus", dose_ug=dose, duration_ms=minutes * MS_PER_MIN,
                 confirm=confirm)

    @rule()
    def patient_press(self):
        self._do("patient_bolus")

    @rule(volume_ml=st.sampled_from([0, 1, 5, 20]), concentration=st.sampled_from([500, 2000]),
          bridge=st.booleans())
    def refill(self, volume_ml, concentration, bridge):
        self._do("refill", volume_nl=volume_ml * 1000000, concentration_ug_per_ml=concentration,
                 bridge=bridge)

    @rule(name=st.sampled_from(["start", "stop", "clear_alarm"]))
    def simple(self, name):
        self._do(name)

    @rule(minutes=st.sampled_from([10, 600]))
    def silence(self, minutes):
        self._do("silence_alarms", silence_ms=minutes * MS_PER_MIN)

    @rule(volume_ml=st.sampled_from([0, 1, 2, 4]))
    def set_low_reservoir_alarm(self, volume_ml):
        self._do("set_low_reservoir_alarm", volume_nl=volume_ml * 1000000)

    @rule(dose=st.sampled_from([10, 60, 150]), lockout_min=st.sampled_from([15, 180]),
          most=st.sampled_from([1, 6]))
    def set_patient_bolus(self, dose, lockout_min, most):
        self._do("set_patient_bolus", dose_ug=dose, duration_ms=10 * MS_PER_MIN,
                 lockout_ms=lockout_min * MS_PER_MIN, max_per_24h=most, confirm=True)

    @rule(daily_hard=st.sampled_from([300, 2000]), bolus_hard=st.sampled_from([20, 200]))
    def set_limits(self, daily_hard, bolus_hard):
        # Not a timeline action: the programmer's set_limits, straight to the pump.
        if self.run.powered:
            self.run.monitor.check()
            self.run._guarded(self.run.pump.set_limits, {
                "daily_dose_soft_ug": min(800, daily_hard), "daily_dose_hard_ug": daily_hard,
                "bolus_soft_ug": min(100, bolus_hard), "bolus_hard_ug": bolus_hard})
            self.run._after_action()

    # -- faults and resets -------------------------------------------------------------------

    @rule(kind=st.sampled_from(FAULT_KINDS))
    def fault_on(self, kind):
        if kind in self.faults:
            return
        self.number += 1
        action = {"action": "fault_start", "kind": kind, "fault": self.number, "occurrence": 1,
                  "spec": {"kind": kind, "number": self.number}}
        self.faults[kind] = action
        self.run._guarded(self.run._perform, action)
        self.run._after_action()

    @precondition(lambda self: self.faults)
    @rule(data=st.data())
    def fault_off(self, data):
        kind = data.draw(st.sampled_from(sorted(self.faults)))
        action = dict(self.faults.pop(kind), action="fault_end")
        self.run._guarded(self.run._perform, action)
        self.run._after_action()

    @rule(during=st.sampled_from(["now", "commit", "log"]))
    def power_loss(self, during):
        self.number += 1
        spec = {"kind": "power_loss", "number": self.number, "during": during}
        self._do("fault_start", kind="power_loss", fault=self.number, occurrence=1, spec=spec)

    @rule(region=st.sampled_from(["snapshot", "log", "any"]))
    def bit_flip_and_reset(self, region):
        self.number += 1
        spec = {"kind": "bit_flip", "number": self.number, "bits": 1, "region": region}
        self._do("fault_start", kind="bit_flip", fault=self.number, occurrence=1, spec=spec)
        self._do("reset")

    @rule()
    def reset(self):
        self._do("reset")

    # -- time ------------------------------------------------------------------------------

    @rule(minutes=st.sampled_from([1, 7, 45, 180, 1440, 4 * 1440]))
    def wait(self, minutes):
        self.run.run_to(self.run.board.clock.true_ms + minutes * MS_PER_MIN)

    # -- the monitor's rules ---------------------------------------------------------------

    def _quiet(self):
        assert self.run.monitor.violations == []

    @invariant()
    def halts(self):
        if self.run.powered:
            self.run.monitor.check_halts()
        self._quiet()

    @invariant()
    def therapy_state(self):
        if self.run.powered:
            self.run.monitor.check_therapy_state()
        self._quiet()

    @invariant()
    def reservoir_alarms(self):
        if self.run.powered:
            self.run.monitor.check_reservoir()
        self._quiet()

    @invariant()
    def program_within_hard_limits(self):
        if self.run.powered:
            self.run.monitor.check_program()
        self._quiet()

    @invariant()
    def end_of_service(self):
        if self.run.powered:
            self.run.monitor.check_battery()
        self._quiet()


PumpMachine.TestCase.settings = settings(
    max_examples=60, stateful_step_count=40, deadline=None, derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])

TestPumpMachine = pytest.mark.req(
    "SR-01", "SR-02", "SR-03", "SR-04", "SR-05", "SR-06", "SR-07", "SR-08", "SR-09", "SR-10",
    "SR-11", "SR-12", "SR-13", "SR-14", "SR-15", "SR-16", "SR-17")(PumpMachine.TestCase)
