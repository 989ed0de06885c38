# Therapy: the prescribed program (continuous or flex), the basal rate it selects now, starting
# and stopping, the critical halts and their clearing, and the motor flow that results (basal
# plus any bolus).  The table's "therapy.*" guards and actions.  Boluses and the lockout are
# firmware/bolus.py; a halt or a stop cuts a running bolus there (Boluses.cut).

from protocol import reasons
from firmware import alarms, bolus, eventlog, limits, table
from firmware.dosing import UG_RATE_Q, MS_PER_DAY

_MS_PER_MIN = 60000
_DELIVERY_STATES = (table.INFUSING, table.BOLUS, table.LOCKOUT)


def daily_ug(program):
    # A program's daily dose as the limits see it (flex: its heaviest day).
    if program["mode"] == "continuous":
        return program["basal_ug_per_day"]
    top = 0
    for day in program["steps"]:
        dose = limits.flex_daily_ug(day)
        if dose > top:
            top = dose
    return top


class Therapy:
    def __init__(self, pump):
        self.pump = pump
        self.on = False                 # therapy started (and not stopped or faulted)
        self.program = None             # {"mode": "continuous", "basal_ug_per_day"} or flex steps
        self.current_basal_ug_per_day = 0
        self.dose_history = []          # [ms, daily_ug] programmed in the last 24 h
        self._flex_handle = None

    # ----------------------------------------------------------------- requests

    def program_continuous(self, basal_ug_per_day, confirm):
        bad = limits.check_range("basal_ug_per_day", basal_ug_per_day, 0, limits.MAX_UG)
        if bad:
            return self.pump.refuse("program", bad)
        program = {"mode": "continuous", "basal_ug_per_day": basal_ug_per_day}
        return self._program(program, basal_ug_per_day, confirm)

    def program_flex(self, steps, confirm):
        bad = limits.check_flex(steps)
        if bad:
            return self.pump.refuse("program", bad)
        program = {"mode": "flex", "steps": [[[s[0], s[1]] for s in day] for day in steps]}
        return self._program(program, daily_ug(program), confirm)

    def _program(self, program, daily_ug, confirm):
        p = self.pump
        bad = limits.check_daily(p.limits, daily_ug, self.dose_baseline(p.sched.now_ms()), confirm)
        return p.request("program", (program, daily_ug, confirm), bad)

    # ----------------------------------------------------------------- guards

    def has_program(self, arg):
        return self.program is not None

    def is_on(self, arg):
        return self.on

    # ----------------------------------------------------------------- actions

    def start_basal(self, arg):
        self.on = True
        self.select_basal(self.pump.sched.now_ms())
        self.pump.dirty = True

    def stop(self, arg):
        # Also while halted: once the alarm is cleared the pump stays stopped, and an empty
        # reservoir's minimum rate stops too.
        self.on = False
        self.pump.bolus.cut()
        self.apply_flows()
        self.pump.dirty = True

    def program_and_start(self, arg):
        self.on = True
        return self.apply_program(arg)

    def apply_program(self, arg):
        program, daily_ug, confirmed = arg
        p = self.pump
        now = p.sched.now_ms()
        self.program = program
        self.record_dose(now, daily_ug)
        self.select_basal(now)
        self.apply_flows()
        p.log.log(eventlog.PROGRAM, 0 if program["mode"] == "continuous" else 1, daily_ug,
                  1 if confirmed else 0)
        p.dirty = True

    def _halt(self, alarm):
        # A critical alarm: any bolus is cut (its delivered part logged), the table moves to
        # the halted state, and the flow becomes the halted state's (apply_flows).
        self.pump.bolus.cut()
        self.pump.alarms.raise_alarm(alarm)
        self.pump.dirty = True

    def halt_reservoir_empty(self, arg):
        self._halt(alarms.RESERVOIR_EMPTY)

    def halt_motor_stall(self, arg):
        self._halt(alarms.MOTOR_STALL)

    def halt_end_of_service(self, arg):
        self._halt(alarms.END_OF_SERVICE)

    def halt_fault(self, arg):
        self._halt(alarms.MEMORY_FAULT)

    def clear_motor_stall(self, arg):
        # The stroke the stall left owed is tried first: a motor that still does not turn (a
        # rotor still held after an MRI) refuses the clear, the alarm stays, and the clinician
        # is told why instead of seeing the alarm come back at once.
        if self.pump.doser.retry_owed() is False:
            return reasons.MOTOR_STILL_STALLED
        self.pump.alarms.clear(alarms.MOTOR_STALL)
        self.pump.dirty = True

    def clear_fault(self, arg):
        self.pump.alarms.clear(alarms.MEMORY_FAULT)
        self.on = False
        self.pump.dirty = True

    def on_stall(self):
        # The stroke engine's report: the motor did not turn.
        self.pump.event("motor_stall")

    # ----------------------------------------------------------------- basal rate and flow

    def select_basal(self, now):
        # The basal rate in effect now (flex: the step of this weekday and minute), and the
        # timer for the next flex step.
        program = self.program
        sched = self.pump.sched
        sched.cancel(self._flex_handle)
        self._flex_handle = None
        if program is None:
            self.current_basal_ug_per_day = 0
            return
        if program["mode"] == "continuous":
            self.current_basal_ug_per_day = program["basal_ug_per_day"]
            return
        offset = self.pump.clock_offset_ms
        wall = now + offset
        day_index = wall // MS_PER_DAY
        weekday = (day_index + 3) % 7           # 1970-01-01 was a Thursday; Monday is 0
        minute = (wall % MS_PER_DAY) // _MS_PER_MIN
        steps = program["steps"][weekday]
        rate = steps[0][1]
        next_start = None
        for start, ug in steps:
            if start <= minute:
                rate = ug
            else:
                next_start = start
                break
        if next_start is None:
            boundary = (day_index + 1) * MS_PER_DAY       # next midnight: next day's first step
        else:
            boundary = day_index * MS_PER_DAY + next_start * _MS_PER_MIN
        self.current_basal_ug_per_day = rate
        self._flex_handle = sched.at(boundary - offset, self._flex_timer)

    def _flex_timer(self):
        before = self.current_basal_ug_per_day
        self.select_basal(self.pump.sched.due_ms)
        if self.current_basal_ug_per_day != before:
            self.pump.log.log(eventlog.FLEX_STEP, self.current_basal_ug_per_day)
            self.apply_flows()

    def apply_flows(self):
        # The motor's rate for the therapy state: basal (unless a bridge bolus is clearing the
        # old drug) plus the bolus while delivering; the minimum rate that keeps the catheter
        # open while the reservoir is empty; nothing otherwise.
        p = self.pump
        state = p.machine.states["therapy"]
        d = p.doser
        rate = 0
        running = p.bolus.current
        if state in _DELIVERY_STATES:
            if self.on and not (running is not None and running[0] == bolus.BRIDGE):
                rate = self.current_basal_ug_per_day * UG_RATE_Q
            if running is not None:
                rate += running[5]
        elif state == table.RESERVOIR_EMPTY and self.on:
            rate = d.volume_rate_q(p.model["min_rate_nl_per_day"])
        # Stopped or halted: a whole stroke owed from before waits for therapy to resume.
        d.hold = not rate and state not in _DELIVERY_STATES
        d.set_rate(rate)

    def projected_daily_nl(self):
        # Worst case, as Prometra projects it: the program plus every allowed patient bolus.
        c = self.pump.doser.concentration_ug_per_ml
        if not c or not self.on or self.program is None:
            return 0
        program = self.program
        if program["mode"] == "continuous":
            daily_ug = program["basal_ug_per_day"]
        else:
            total = 0
            for day in program["steps"]:
                total += limits.flex_daily_ug(day)
            daily_ug = total // 7
        s = self.pump.bolus.settings
        if s is not None:
            daily_ug += s["dose_ug"] * s["max_per_24h"]
        return daily_ug * 1000000 // c

    # ----------------------------------------------------------------- rate-change limit

    def record_dose(self, now, daily_ug):
        # Rolling 24 h history of programmed daily doses, for the rate-change limit.
        history = self.dose_history
        history.append([now, daily_ug])
        while len(history) > 1 and history[1][0] <= now - MS_PER_DAY:
            history.pop(0)
        if len(history) > 16:
            # Keep the lowest of the oldest two: the limit stays conservative.
            if history[0][1] < history[1][1]:
                history[1][1] = history[0][1]
            history.pop(0)

    def dose_baseline(self, now):
        history = self.dose_history
        if not history:
            return None
        lowest = None
        for i in range(len(history)):
            t, dose = history[i]
            later = history[i + 1][0] if i + 1 < len(history) else now + 1
            if later > now - MS_PER_DAY and (lowest is None or dose < lowest):
                lowest = dose
        return lowest
