"""`vpump conform`: every command accepted, every refusal with its field and range.

The checks here run in one clinician session (tools/conform_checks.py has the helpers and
says what they change on the pump); restore() puts the pump's settings back at the end.
"""

from protocol import commands as C
from protocol import reasons
from tools.conform_checks import (Failed, Skipped, baseline, bolus_fields, expect, interrogate,
                                  nak, ok, patient_bolus_fields, run)

_MS_PER_MIN = 60000


def _basal(ctx):
    baseline(ctx)
    return ctx.start["basal_ug_per_day"] if ctx.start["mode"] in (1, "continuous") else 100


# ---------------------------------------------------------------------- every command

def cmd_identify(ctx):
    fields = ok(ctx.wire.request(C.IDENTIFY), "IDENTIFY")
    return "model %s, serial %s" % (fields["model"], fields["serial"])


def cmd_interrogate(ctx):
    f = interrogate(ctx)
    return "therapy %s, reservoir %d nL, %d ug/day" % (f["therapy"], f["reservoir_nl"],
                                                        f["basal_ug_per_day"])


def cmd_read_log(ctx):
    f = ok(run(ctx, C.READ_LOG, {"start_seq": 1, "max_entries": 32}), "READ_LOG 1, 32")
    entries = f["entries"]
    expect(len(entries) <= 32, "READ_LOG gave %d entries for max 32" % len(entries))
    seqs = [e["seq"] for e in entries]
    expect(seqs == sorted(seqs), "READ_LOG entries are not in seq order: %s" % seqs)
    expect(not entries or f["next_seq"] == seqs[-1] + 1,
           "READ_LOG next seq %s after entries up to %s" % (f["next_seq"], seqs[-1:]))
    return "%d entries, next seq %d" % (len(entries), f["next_seq"])


def cmd_read_limits(ctx):
    f = ok(run(ctx, C.READ_LIMITS), "READ_LIMITS")
    expect(f["daily_dose_soft_ug"] <= f["daily_dose_hard_ug"] and
           f["bolus_soft_ug"] <= f["bolus_hard_ug"], "soft limits above hard ones: %s" % f)
    ctx.limits = f
    return ", ".join("%s %s" % item for item in sorted(f.items()))


def cmd_set_limits(ctx):
    baseline(ctx)
    same = dict(ctx.limits)
    same["concentration_ug_per_ml"] = 0
    f = ok(run(ctx, C.SET_LIMITS, same), "SET_LIMITS with the limits the pump has")
    expect(f["old"] == f["new"], "SET_LIMITS with the same values changed them: %s -> %s"
           % (f["old"], f["new"]))
    return "the same limits set again: old = new"


def cmd_program_continuous(ctx):
    basal = _basal(ctx)
    f = ok(run(ctx, C.PROGRAM_CONTINUOUS, {"basal_ug_per_day": basal, "confirm": True}),
           "PROGRAM_CONTINUOUS %d" % basal)
    expect(f["new_daily_ug"] == basal, "new daily ug %s, expected %d" % (f["new_daily_ug"], basal))
    return "%d -> %d ug/day" % (f["old_daily_ug"], f["new_daily_ug"])


def cmd_program_flex(ctx):
    basal = _basal(ctx)
    steps = [[[0, basal], [12 * 60, basal]]] * 7
    f = ok(run(ctx, C.PROGRAM_FLEX, {"steps": steps, "confirm": True}),
           "PROGRAM_FLEX (two steps a day at %d ug/day)" % basal)
    expect(f["new_daily_ug"] == basal, "flex average %s, expected %d" % (f["new_daily_ug"], basal))
    mode = interrogate(ctx)["mode"]
    expect(mode == "flex" or mode == 2, "INTERROGATE after PROGRAM_FLEX: mode %s" % mode)
    ok(run(ctx, C.PROGRAM_CONTINUOUS, {"basal_ug_per_day": basal, "confirm": True}),
       "PROGRAM_CONTINUOUS back")
    return "a flex week at %d ug/day accepted, then continuous again" % basal


def cmd_stop_start(ctx):
    ok(run(ctx, C.STOP), "STOP")
    expect(not interrogate(ctx)["therapy_on"], "therapy still on after STOP")
    ok(run(ctx, C.START), "START")
    expect(interrogate(ctx)["therapy_on"], "therapy not on after START")
    return "therapy off, then on"


def cmd_refill(ctx):
    f = interrogate(ctx)
    volume, conc = f["reservoir_nl"], f["concentration_ug_per_ml"]
    r = ok(run(ctx, C.REFILL, {"volume_nl": volume, "concentration_ug_per_ml": conc,
                               "bridge": False}), "REFILL %d nL of %d ug/mL" % (volume, conc))
    return "estimate %d -> %d nL" % (r["old_estimate_nl"], r["new_estimate_nl"])


def cmd_set_clock(ctx):
    wall = interrogate(ctx)["wall_ms"]
    f = ok(run(ctx, C.SET_CLOCK, {"wall_ms": wall}), "SET_CLOCK to the pump's own time")
    expect(abs(f["old_wall_ms"] - wall) < 600000, "SET_CLOCK old wall %s, the pump said %s"
           % (f["old_wall_ms"], wall))
    return "old wall ms %d" % f["old_wall_ms"]


def cmd_silence_alarms(ctx):
    f = ok(run(ctx, C.SILENCE_ALARMS, {"minutes": 1}), "SILENCE_ALARMS 1 minute")
    return "%d alarms silenced" % f["silenced"]


def cmd_clear_alarm(ctx):
    answer = run(ctx, C.CLEAR_ALARM)
    if answer is not None and answer.status not in (reasons.OK, None) and answer.mac_ok:
        return "refused with MAC (%s): nothing to clear" % answer.describe()
    ok(answer, "CLEAR_ALARM")
    return "accepted"


def cmd_alarm_test(ctx):
    ok(run(ctx, C.ALARM_TEST), "ALARM_TEST")
    return "accepted"


def cmd_set_low_reservoir_alarm(ctx):
    baseline(ctx)
    volume = ctx.start["low_reservoir_alarm_nl"]
    f = ok(run(ctx, C.SET_LOW_RESERVOIR_ALARM, {"volume_nl": volume}),
           "SET_LOW_RESERVOIR_ALARM %d nL" % volume)
    expect(f["old_volume_nl"] == volume, "old volume %s, INTERROGATE said %d"
           % (f["old_volume_nl"], volume))
    return "%d nL" % volume


def cmd_boluses(ctx):
    # CLINICIAN_BOLUS, SET_PATIENT_BOLUS, PATIENT_BOLUS accepted, with the refusals only a
    # running bolus or a stopped therapy give (each a NAK check of its own: ctx.naks).
    ok(run(ctx, C.CLINICIAN_BOLUS, bolus_fields(1)), "CLINICIAN_BOLUS 1 ug over 10 min")
    ctx.naks["bolus_in_progress"] = nak(run(ctx, C.CLINICIAN_BOLUS, bolus_fields(1)),
                                        "a second CLINICIAN_BOLUS", reasons.BOLUS_IN_PROGRESS,
                                        macced=True)
    ok(run(ctx, C.STOP), "STOP (ends the bolus)")
    f = ok(run(ctx, C.SET_PATIENT_BOLUS, patient_bolus_fields(True)),
           "SET_PATIENT_BOLUS 1 ug over 1 min, lockout 15 min, 4 a day")
    if ctx.patient_bolus_was is None:
        ctx.patient_bolus_was = f["old_enabled"]
        ctx.patient_bolus_old_dose = f["old_dose_ug"]
    ctx.naks["therapy_stopped"] = nak(run(ctx, C.PATIENT_BOLUS), "PATIENT_BOLUS while stopped",
                                      reasons.THERAPY_STOPPED, macced=True)
    ok(run(ctx, C.START), "START")
    got = ok(run(ctx, C.PATIENT_BOLUS), "PATIENT_BOLUS")
    expect(got["dose_ug"] == 1, "PATIENT_BOLUS dose %s, the settings say 1" % got["dose_ug"])
    ok(run(ctx, C.STOP), "STOP (ends the patient's bolus)")
    ok(run(ctx, C.START), "START")
    ctx.naks["lockout_active"] = nak(run(ctx, C.PATIENT_BOLUS), "PATIENT_BOLUS in its lockout",
                                     reasons.LOCKOUT_ACTIVE, macced=True)
    ok(run(ctx, C.SET_PATIENT_BOLUS, patient_bolus_fields(False)), "SET_PATIENT_BOLUS off")
    ctx.naks["patient_bolus_disabled"] = nak(run(ctx, C.PATIENT_BOLUS),
                                             "PATIENT_BOLUS when disabled",
                                             reasons.PATIENT_BOLUS_DISABLED, macced=True)
    return "a clinician bolus and a patient bolus given, each stopped"


# ---------------------------------------------------------------------- refusals

def _range(n, what, refused_value):
    expect(n["value"] == refused_value, "%s: NAK value %s, the request had %s"
           % (what, n["value"], refused_value))
    expect(n["lo"] <= n["hi"] and not n["lo"] <= n["value"] <= n["hi"],
           "%s: NAK range %s..%s does not exclude the value %s" % (what, n["lo"], n["hi"],
                                                                 n["value"]))
    return "field %s = %s, allowed %s..%s" % (n["field"], n["value"], n["lo"], n["hi"])


def nak_out_of_range(ctx):
    huge = 0xFFFFFFFF
    n = nak(run(ctx, C.SET_LOW_RESERVOIR_ALARM, {"volume_nl": huge}),
            "SET_LOW_RESERVOIR_ALARM %d" % huge, reasons.OUT_OF_RANGE,
            field="low_reservoir_alarm_nl", macced=True)
    text = _range(n, "low_reservoir_alarm_nl", huge)
    n = nak(run(ctx, C.CLINICIAN_BOLUS, {"dose_ug": 1, "duration_ms": 10, "confirm": False}),
            "CLINICIAN_BOLUS over 10 ms", reasons.OUT_OF_RANGE, field="bolus_duration_ms",
            macced=True)
    return "%s; %s" % (text, _range(n, "bolus_duration_ms", 10))


def nak_over_hard_limit(ctx):
    baseline(ctx)
    hard = ctx.limits["bolus_hard_ug"]
    n = nak(run(ctx, C.CLINICIAN_BOLUS, bolus_fields(hard + 1, confirm=True)),
            "CLINICIAN_BOLUS %d ug (hard limit %d)" % (hard + 1, hard), reasons.OVER_HARD_LIMIT,
            field="bolus_dose_ug", macced=True)
    expect(n["hi"] == hard, "over_hard_limit: hi %s, READ_LIMITS says %d" % (n["hi"], hard))
    text = _range(n, "bolus_dose_ug", hard + 1)
    daily = ctx.limits["daily_dose_hard_ug"]
    n = nak(run(ctx, C.PROGRAM_CONTINUOUS, {"basal_ug_per_day": daily + 1, "confirm": True}),
            "PROGRAM_CONTINUOUS %d ug/day (hard limit %d)" % (daily + 1, daily),
            reasons.OVER_HARD_LIMIT, field="daily_dose_ug", macced=True)
    expect(n["hi"] == daily, "over_hard_limit: hi %s, READ_LIMITS says %d" % (n["hi"], daily))
    return "%s; %s" % (text, _range(n, "daily_dose_ug", daily + 1))


def nak_soft_limit(ctx):
    baseline(ctx)
    soft = ctx.limits["bolus_soft_ug"]
    if soft >= ctx.limits["bolus_hard_ug"]:
        raise Skipped("the bolus soft limit equals the hard one: no dose is between")
    n = nak(run(ctx, C.CLINICIAN_BOLUS, bolus_fields(soft + 1)),
            "CLINICIAN_BOLUS %d ug without confirm (soft limit %d)" % (soft + 1, soft),
            reasons.SOFT_LIMIT_NEEDS_CONFIRM, field="bolus_dose_ug", macced=True)
    expect(n["hi"] == soft, "soft_limit_needs_confirm: hi %s, READ_LIMITS says %d"
           % (n["hi"], soft))
    return _range(n, "bolus_dose_ug", soft + 1)


def nak_no_program(ctx):
    if baseline(ctx)["mode"] not in (0, "none"):
        raise Skipped("the pump already has a program (only a pump without one refuses START "
                      "with no_program)")
    nak(run(ctx, C.START), "START without a program", reasons.NO_PROGRAM, macced=True)
    return "START refused: no_program"


def _from_boluses(name):
    def check(ctx):
        n = ctx.naks.get(name)
        if n is None:
            raise Failed("not reached: command.boluses failed before it")
        return "NAK %s, MACed" % name
    check.__name__ = "nak_" + name
    return check


def _unreachable(why):
    def check(ctx):
        raise Skipped(why)
    return check


_FAULT = "needs a hardware fault (%s): not reachable over the link"

# name, function, the reason codes it shows (for the NAK coverage table).
COMMAND_CHECKS = [
    ("command.identify", cmd_identify, ()),
    ("command.interrogate", cmd_interrogate, ()),
    ("command.read_log", cmd_read_log, ()),
    ("command.read_limits", cmd_read_limits, ()),
    ("command.set_limits", cmd_set_limits, ()),
    ("command.program_continuous", cmd_program_continuous, ()),
    ("command.program_flex", cmd_program_flex, ()),
    ("command.stop_start", cmd_stop_start, ()),
    ("command.refill", cmd_refill, ()),
    ("command.set_clock", cmd_set_clock, ()),
    ("command.silence_alarms", cmd_silence_alarms, ()),
    ("command.clear_alarm", cmd_clear_alarm, ()),
    ("command.alarm_test", cmd_alarm_test, ()),
    ("command.set_low_reservoir_alarm", cmd_set_low_reservoir_alarm, ()),
    ("nak.out_of_range", nak_out_of_range, (reasons.OUT_OF_RANGE,)),
    ("nak.over_hard_limit", nak_over_hard_limit, (reasons.OVER_HARD_LIMIT,)),
    ("nak.soft_limit_needs_confirm", nak_soft_limit, (reasons.SOFT_LIMIT_NEEDS_CONFIRM,)),
    ("command.boluses", cmd_boluses, ()),
    ("nak.bolus_in_progress", _from_boluses("bolus_in_progress"), (reasons.BOLUS_IN_PROGRESS,)),
    ("nak.therapy_stopped", _from_boluses("therapy_stopped"), (reasons.THERAPY_STOPPED,)),
    ("nak.lockout_active", _from_boluses("lockout_active"), (reasons.LOCKOUT_ACTIVE,)),
    ("nak.patient_bolus_disabled", _from_boluses("patient_bolus_disabled"),
     (reasons.PATIENT_BOLUS_DISABLED,)),
    ("nak.max_activations", _unreachable(
        "needs the patient's boluses of a day, each after its lockout (hours of pump time)"),
     (reasons.MAX_ACTIVATIONS,)),
    ("nak.state_does_not_allow", _unreachable(
        "no request is refused this way on a pump without an alarm"),
     (reasons.STATE_DOES_NOT_ALLOW,)),
    ("nak.therapy_halted", _unreachable(_FAULT % "a critical alarm"), (reasons.THERAPY_HALTED,)),
    ("nak.refill_first", _unreachable(_FAULT % "an empty reservoir"), (reasons.REFILL_FIRST,)),
    ("nak.motor_still_stalled", _unreachable(_FAULT % "a stalled motor"),
     (reasons.MOTOR_STILL_STALLED,)),
    ("nak.end_of_service", _unreachable(_FAULT % "a battery at end of service"),
     (reasons.END_OF_SERVICE,)),
    ("nak.storage_failed", _unreachable(_FAULT % "a failing memory"), (reasons.STORAGE_FAILED,)),
    ("nak.auth_locked_out", _unreachable(
        "docs/protocol.md: not sent by this firmware (a wrong proof costs its challenge only)"),
     (reasons.AUTH_LOCKED_OUT,)),
]


def restore(ctx):
    """Put back what the checks changed (best effort; returns what could not be)."""
    if ctx.start is None or ctx.limits is None:
        return []
    problems = []
    steps = []
    limits = dict(ctx.limits)
    limits["concentration_ug_per_ml"] = 0
    steps.append(("limits", C.SET_LIMITS, limits))
    steps.append(("low-reservoir alarm", C.SET_LOW_RESERVOIR_ALARM,
                  {"volume_nl": ctx.start["low_reservoir_alarm_nl"]}))
    if ctx.start["mode"] in (1, "continuous"):
        steps.append(("program", C.PROGRAM_CONTINUOUS,
                      {"basal_ug_per_day": ctx.start["basal_ug_per_day"], "confirm": True}))
    if ctx.patient_bolus_was is False:
        steps.append(("patient bolus off", C.SET_PATIENT_BOLUS, patient_bolus_fields(False)))
    elif ctx.patient_bolus_was:
        # SET_PATIENT_BOLUS answers only the old dose: the old duration, lockout and maximum
        # cannot be read back, so the clinician programs them again.
        problems.append("patient bolus: it was on (%d ug); conform leaves it off: program its "
                        "settings again" % ctx.patient_bolus_old_dose)
    if not ctx.start["therapy_on"]:
        steps.append(("therapy stopped", C.STOP, {}))
    for name, cmd, fields in steps:
        try:
            answer = run(ctx, cmd, fields)
        except (Failed, Skipped) as exc:
            problems.append("%s: %s" % (name, exc))
            continue
        if answer is None or answer.status != reasons.OK:
            problems.append("%s: %s" % (name, answer.describe() if answer else "no answer"))
    return problems
