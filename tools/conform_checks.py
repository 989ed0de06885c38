"""The checks of `vpump conform` (tools/conform.py runs them; docs/bench-testing.md).

Each check is a function of a Context that returns a short text on success and raises Failed
or Skipped; CHECKS lists them in the order they run (later ones build on the pump's state the
earlier ones left: a program, a session).  Everything is what docs/protocol.md says a pump
does, checked on the bytes that come back, against any pump: ours, a board, or an
implementation of the document.

What the suite changes on the pump (so run it on a bench pump, not one in a patient): it
programs a continuous rate (the one the pump had, or 100 ug/day), gives a 1 ug clinician bolus
and a 1 ug patient bolus, enables the patient bolus, refills with the volume the pump already
estimates, sets the clock to the pump's own time, silences alarms for a minute and sounds the
alarm test.  At the end it puts back the limits, the alarm volume and the continuous rate,
leaves the patient bolus off (saying so when it was on) and stops therapy if it was stopped.
"""

import os
import time

from protocol import commands as C
from protocol import frame, reasons, session
from protocol.fields import FIELDS

_MS_PER_MIN = 60000


class Failed(Exception):
    """The pump does not do what docs/protocol.md says."""


class Skipped(Exception):
    """The check cannot run against this pump (its reason says why)."""


class Context:
    def __init__(self, wire, keys, gap_ms=100, latency_ms=100):
        self.wire = wire
        self.keys = keys
        self.gap_ms = gap_ms
        self.latency_ms = latency_ms
        self.session = None         # the clinician's session the command checks share
        self.limits = None
        self.start = None           # INTERROGATE before anything changed
        self.patient_bolus_was = None


# ---------------------------------------------------------------------- helpers

def expect(condition, text):
    if not condition:
        raise Failed(text)


def answered(answer, what):
    if answer is None:
        raise Failed("%s: no answer in time (docs/protocol.md: within 100 ms)" % what)
    return answer


def ok(answer, what):
    answered(answer, what)
    if answer.error:
        raise Failed("%s: the answer does not decode: %s" % (what, answer.error))
    if answer.status != reasons.OK:
        raise Failed("%s: refused, %s" % (what, answer.describe()))
    if answer.mac_ok is False:
        raise Failed("%s: accepted without a valid MAC" % what)
    return answer.fields


def nak(answer, what, reason, field=None, macced=None):
    """The answer is a NAK with this reason (and field); macced: True for a refusal of the
    request itself (MACed), False for a bare frame- or session-level NAK."""
    answered(answer, what)
    expect(answer.error is None or answer.status == reason,
           "%s: the answer does not decode: %s" % (what, answer.error))
    expect(answer.status == reason, "%s: expected NAK %s, got %s"
           % (what, reasons.name(reason), answer.describe()))
    n = answer.nak or {}
    if field is not None:
        expect(n.get("field") == field, "%s: NAK %s names field %s, expected %s"
               % (what, reasons.name(reason), n.get("field"), field))
    if macced is True:
        expect(answer.mac_ok is True, "%s: a refusal of the request must carry the session's "
               "MAC (docs/protocol.md, which NAKs carry a MAC)" % what)
    if macced is False:
        expect(answer.mac_ok is not True and len(answer.payload) == C.NAK_SIZE,
               "%s: a %s NAK is sent bare (26 bytes, no counter or MAC), got %d bytes"
               % (what, reasons.name(reason), len(answer.payload)))
    return n


def clinician(ctx):
    """The shared clinician session, opened when needed."""
    if ctx.session is None or ctx.session.session_key is None:
        s = _new_session(ctx, session.ROLE_CLINICIAN)
        problem = s.open()
        if problem:
            raise Failed("cannot open a clinician session: %s" % problem)
        ctx.session = s
    return ctx.session


def _new_session(ctx, role):
    from tools.conform_wire import Session
    name = "clinician" if role == session.ROLE_CLINICIAN else "patient"
    key = ctx.keys.get(name)
    if not key:
        raise Skipped("the key file has no %s key" % name)
    return Session(ctx.wire, key, role)


def run(ctx, cmd, fields=None, **kw):
    return clinician(ctx).command(cmd, fields, **kw)


def interrogate(ctx):
    return ok(run(ctx, C.INTERROGATE), "INTERROGATE")


def bolus_fields(dose_ug, confirm=False):
    return {"dose_ug": dose_ug, "duration_ms": 10 * _MS_PER_MIN, "confirm": confirm}


def patient_bolus_fields(enabled):
    return {"enabled": enabled, "dose_ug": 1 if enabled else 0,
            "duration_ms": _MS_PER_MIN if enabled else 0,
            "lockout_ms": 15 * _MS_PER_MIN if enabled else 0,
            "max_per_24h": 4 if enabled else 0, "confirm": False}


# ---------------------------------------------------------------------- framing

def worked_example(ctx):
    # docs/protocol.md's worked example, byte for byte: IDENTIFY with SEQ 7.
    w = ctx.wire
    w.send(bytes.fromhex("A55A0003010701" "3456"))
    answer = answered(w.await_answer(7, C.IDENTIFY), "IDENTIFY A5 5A 00 03 01 07 01 34 56")
    fields = ok(answer.decode(C.IDENTIFY, answer.payload), "IDENTIFY")
    expect(fields["protocol_version"] == 1, "IDENTIFY: protocol version %s, expected 1"
           % fields["protocol_version"])
    ctx.identity = fields
    return "%s %s, firmware %s" % (fields["model"], fields["serial"], fields["firmware_version"])


def bad_crc(ctx):
    w = ctx.wire
    seq = w.next_seq()
    data = bytearray(frame.encode(seq, C.IDENTIFY, b""))
    data[-1] ^= 0x5A
    w.send(data)
    answer = w.await_answer(seq, C.IDENTIFY)
    if answer is not None:
        answer.decode(C.IDENTIFY, answer.payload)
    n = nak(answer, "a frame with a bad CRC", reasons.BAD_CRC, macced=False)
    ok(w.request(C.IDENTIFY), "IDENTIFY after the bad frame")
    return "NAK bad_crc (reason %d), then a good frame answered" % n["reason"]


def resync(ctx):
    w = ctx.wire
    seq = w.next_seq()
    garbage = bytes([0x00, 0xA5, 0x13, 0xFF, 0xA5, 0xA5, 0x5A, 0x00, 0x00]) + os.urandom(24)
    w.send(garbage.replace(b"\xa5\x5a", b"\xa5\x00") + frame.encode(seq, C.IDENTIFY, b""))
    answer = w.await_answer(seq, C.IDENTIFY, 3 * ctx.gap_ms / 1000.0 + 1.0)
    ok(answered(answer, "IDENTIFY after garbage").decode(C.IDENTIFY, answer.payload), "IDENTIFY")
    w.drain()
    return "found the frame after %d bytes of garbage" % len(garbage)


def length_out_of_range(ctx):
    w = ctx.wire
    out = []
    for length in (2, frame.MAX_PAYLOAD + 4):
        seq = w.next_seq()
        head = bytes([0xA5, 0x5A, length >> 8, length & 0xFF, 1, seq, C.IDENTIFY])
        good = w.next_seq()
        w.send(head + frame.encode(good, C.IDENTIFY, b""))
        answer = w.await_answer(good, C.IDENTIFY)
        ok(answered(answer, "IDENTIFY after a LEN of %d" % length).decode(
            C.IDENTIFY, answer.payload), "IDENTIFY")
        stray = [a for a in w.answers(0.15) if a.seq == seq]
        expect(not stray, "a frame with LEN %d (outside 3..1027) was answered" % length)
        out.append(str(length))
    return "LEN %s ignored, the next frame answered" % " and ".join(out)


def two_frames(ctx):
    w = ctx.wire
    a, b = w.next_seq(), w.next_seq()
    w.send(frame.encode(a, C.IDENTIFY, b"") + frame.encode(b, C.IDENTIFY, b""))
    answered(w.await_answer(a, C.IDENTIFY), "the first of two frames in one write")
    answered(w.await_answer(b, C.IDENTIFY), "the second of two frames in one write")
    return "both answered, in order"


def bad_version(ctx):
    n = nak(ctx.wire.request(C.IDENTIFY, b"", version=2), "VER 2", reasons.BAD_VERSION,
            macced=False)
    expect(n["value"] == 2 and n["lo"] <= 1 <= n["hi"], "bad_version: value %s, allowed "
           "%s..%s; expected the frame's 2 and a range holding 1" % (n["value"], n["lo"], n["hi"]))
    return "NAK bad_version, value 2, allowed %s..%s" % (n["lo"], n["hi"])


def unknown_command(ctx):
    n = nak(ctx.wire.request(0x7E, b""), "CMD 0x7E", reasons.UNKNOWN_COMMAND, macced=False)
    expect(n["value"] in (0, 0x7E), "unknown_command: value %s" % n["value"])
    return "NAK unknown_command"


def bad_length(ctx):
    nak(ctx.wire.request(C.IDENTIFY, b"\x00"), "IDENTIFY with 1 payload byte",
        reasons.BAD_LENGTH, macced=False)
    nak(ctx.wire.request(C.SESSION_OPEN, b"\x01\x02\x03"), "SESSION_OPEN with 3 bytes",
        reasons.BAD_LENGTH, macced=False)
    return "NAK bad_length for IDENTIFY and SESSION_OPEN of the wrong size"


def inter_byte_timeout(ctx):
    # A frame start whose LEN asks for 32 more bytes, then silence past the gap: the pump must
    # drop it, so the whole frame after the silence is answered, and nothing else.
    w = ctx.wire
    stale = w.next_seq()
    w.send(bytes([0xA5, 0x5A, 0x00, 0x23, 0x01, stale, C.IDENTIFY]))
    w.idle(ctx.gap_ms * 3 / 1000.0 + 0.05)
    seq = w.next_seq()
    w.send(frame.encode(seq, C.IDENTIFY, b""))
    answer = w.await_answer(seq, C.IDENTIFY)
    expect(answer is not None, "a frame sent %d ms after a partial frame was not answered: the "
           "partial frame was not dropped after a %d ms silence" % (ctx.gap_ms * 3 + 50,
                                                                    ctx.gap_ms))
    stray = [a for a in w.answers(0.15) if a.seq == stale]
    expect(not stray, "the dropped partial frame was answered (%s)" % stray[0].describe()
           if stray else "")
    return "a partial frame dropped after %d ms of silence" % (ctx.gap_ms * 3 + 50)


def latency(ctx):
    w = ctx.wire
    times = []
    for _ in range(20):
        t0 = time.monotonic()
        answered(w.request(C.IDENTIFY), "IDENTIFY")
        times.append((time.monotonic() - t0) * 1000.0)
    times.sort()
    median, p95, worst = times[len(times) // 2], times[18], times[-1]
    text = "median %.1f ms, 95th percentile %.1f ms, max %.1f ms over 20 IDENTIFY" % (
        median, p95, worst)
    expect(median <= ctx.latency_ms, "answers too slow: %s (limit %d ms)"
           % (text, ctx.latency_ms))
    return text


# ---------------------------------------------------------------------- sessions

def handshake(ctx):
    s = _new_session(ctx, session.ROLE_CLINICIAN)
    problem = s.open()
    expect(problem is None, problem or "")
    ctx.session = s
    return "session %08x open; the pump's proof verifies" % s.session_id


def baseline(ctx):
    """The pump's state and limits before the checks change them (read once)."""
    if ctx.start is None:
        ctx.start = interrogate(ctx)
        ctx.limits = ok(run(ctx, C.READ_LIMITS), "READ_LIMITS")
    return ctx.start


def auth_resend(ctx):
    s = clinician(ctx)
    w = ctx.wire
    w.send(s.auth_frame)
    seq = s.auth_frame[5]
    again = answered(w.await_answer(seq, C.SESSION_AUTH), "a resent SESSION_AUTH")
    expect(again.raw == s.auth_answer.raw, "a resent SESSION_AUTH got a different answer "
           "(%s): docs/protocol.md, Retries" % again.decode(C.SESSION_AUTH, again.payload)
           .describe())
    return "the same answer again, byte for byte"


def wrong_proof(ctx):
    s = clinician(ctx)
    other = _new_session(ctx, session.ROLE_CLINICIAN)
    other.key = bytes(32) if s.key != bytes(32) else b"\x01" * 32
    problem = other.open()
    expect(problem is not None and "bad_mac" in problem,
           "a wrong proof: expected NAK bad_mac, got %s" % (problem or "a session"))
    ok(s.command(C.INTERROGATE), "INTERROGATE in the session opened before the wrong proof")
    return "NAK bad_mac; the running session goes on"


def unknown_session_id(ctx):
    s = clinician(ctx)
    w = ctx.wire
    body = C.encode_request(C.SESSION_AUTH, {"session_id": (s.session_id + 1) & 0xFFFFFFFF,
                                             "proof": bytes(16)})
    nak(w.request(C.SESSION_AUTH, body), "SESSION_AUTH for an unknown session id",
        reasons.NOT_AUTHENTICATED, macced=False)
    return "NAK not_authenticated"


def bad_mac(ctx):
    s = clinician(ctx)
    seq, data = s.frame_for(C.INTERROGATE, b"")
    data = bytearray(data)
    data[-3] ^= 0x01                # the MAC's last byte (the CRC is recomputed below)
    data = frame.encode(seq, C.INTERROGATE, bytes(data[7:-2]))
    ctx.wire.send(data)
    nak(s.read_answer(seq, C.INTERROGATE), "a frame with a wrong MAC", reasons.BAD_MAC,
        macced=False)
    ok(s.command(C.INTERROGATE), "INTERROGATE after the wrong MAC")
    return "NAK bad_mac, bare; the session goes on"


def replay(ctx):
    s = clinician(ctx)
    ok(s.command(C.INTERROGATE), "INTERROGATE")
    last = s.counter
    n = nak(s.command(C.READ_LIMITS, counter=last), "READ_LIMITS with the last counter again",
            reasons.REPLAY, field="counter", macced=False)
    expect(n["value"] == last and n["lo"] == last + 1, "replay: value %s, allowed %s..; expected "
           "the counter %d and %d.." % (n["value"], n["lo"], last, last + 1))
    return "NAK replay, field counter = %d, allowed %d..%d" % (n["value"], n["lo"], n["hi"])


def reorder(ctx):
    s = clinician(ctx)
    ok(s.command(C.INTERROGATE), "INTERROGATE")
    ok(s.command(C.INTERROGATE), "INTERROGATE")
    n = nak(s.command(C.INTERROGATE, counter=s.counter - 1),
            "a frame with an older counter", reasons.REPLAY, field="counter", macced=False)
    ok(s.command(C.INTERROGATE, counter=s.counter + 1), "INTERROGATE with a newer counter")
    s.counter += 1
    return "an older counter refused (NAK replay, value %d); a newer one accepted" % n["value"]


def cached_answer(ctx):
    # A clinician bolus, its frame resent as a programmer that lost the answer does: the same
    # answer, byte for byte, and the log grows as much as for one bolus (measured after).
    start = baseline(ctx)
    s = clinician(ctx)
    basal = start["basal_ug_per_day"] if start["mode"] in (1, "continuous") else 100
    ok(s.command(C.PROGRAM_CONTINUOUS, {"basal_ug_per_day": basal, "confirm": True}),
       "PROGRAM_CONTINUOUS %d" % basal)
    ok(s.command(C.START), "START")
    deltas = []
    for round_ in (1, 2):
        before = s.log_count()
        first = s.command(C.CLINICIAN_BOLUS, bolus_fields(1))
        ok(first, "CLINICIAN_BOLUS 1 ug")
        if round_ == 1:
            again = answered(s.resend_last(), "the same CLINICIAN_BOLUS frame, resent")
            expect(again.raw == first.raw, "the resent frame got a different answer (%s): it "
                   "was run again" % again.describe())
        deltas.append(s.log_count() - before)
        ok(s.command(C.STOP), "STOP (ends the bolus)")
        ok(s.command(C.START), "START")
    expect(deltas[0] == deltas[1], "the log grew by %d entries for a bolus and its resent "
           "frame, by %d for a bolus alone: the resent frame was run again" % tuple(deltas))
    return "the same answer, byte for byte; the bolus ran once (log +%d, as for one)" % (
        deltas[0])


def role_not_allowed(ctx):
    if ctx.session is not None:
        ctx.session.close()
    p = _new_session(ctx, session.ROLE_PATIENT)
    problem = p.open()
    expect(problem is None, "patient session: %s" % problem)
    ok(p.command(C.INTERROGATE), "the patient's INTERROGATE")
    nak(p.command(C.PROGRAM_CONTINUOUS, {"basal_ug_per_day": 100, "confirm": False}),
        "PROGRAM_CONTINUOUS in a patient's session", reasons.ROLE_NOT_ALLOWED, field="role",
        macced=True)
    p.close()
    return "the patient's PROGRAM_CONTINUOUS refused, MACed, field role"


def busy(ctx):
    ok(run(ctx, C.INTERROGATE), "INTERROGATE")
    p = _new_session(ctx, session.ROLE_PATIENT)
    problem = p.open()
    expect(problem is not None and "busy" in problem,
           "a patient's SESSION_OPEN during a clinician's session: expected NAK busy, got %s"
           % (problem or "a session"))
    ok(run(ctx, C.INTERROGATE), "the clinician's INTERROGATE after the patient's attempt")
    return "NAK busy; the clinician's session goes on"


def close(ctx):
    s = clinician(ctx)
    ok(s.command(C.SESSION_CLOSE), "SESSION_CLOSE")
    key, s.session_key = s.session_key, None
    s.session_key = key             # frames of the closed session, MACed with its key
    nak(s.command(C.INTERROGATE), "INTERROGATE in a closed session", reasons.NOT_AUTHENTICATED,
        macced=False)
    s.session_key = None
    ctx.session = None
    return "SESSION_CLOSE accepted; the closed session's next frame: NAK not_authenticated"
