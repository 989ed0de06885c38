"""The programmer: the client side of docs/protocol.md, the library a handheld app embeds.

    with Programmer("/dev/pts/7", role="clinician", key=key) as prog:
        prog.identify()                     # no session needed
        prog.open_session()                 # challenge-response; checks the pump's proof too
        prog.program_continuous(450)        # {"old_daily_ug": 400, "new_daily_ug": 450}
        prog.clinician_bolus(50, 30 * 60000, confirm=True)

Every command is one method; each returns the response fields as a dict (firmware units: ug,
ug/day, nL, ms, wall-clock ms since 1970 UTC).  A refusal raises Refused (the NAK's reason,
field, value and allowed range); a link that fails or a pump that stops answering raises
LinkFailure, as does a response whose MAC does not verify.  For a command that changes the pump
(everything but interrogate, read_log, read_limits and the session commands) a lost answer is
OutcomeUnknown, never a failure: the pump may have done it.  resend() sends that very frame again
and returns the pump's answer (from its cache if it had done it: not done twice).
protocol/client_errors.py draws the tree.

Reliability: SEQ counts 0..255 and wraps; the session counter grows with every NEW request.  When
no response comes within timeout_s, the programmer resends the very same frame bytes (same SEQ,
same counter) up to `retries` times: the pump answers a repeated frame from its cache without
running the command again, so a lost response never turns into a second bolus.

spy: None, or fn(direction, text) called for every frame sent ("tx") or received ("rx") with a
decoded description (the `vpump prog --spy` option prints them).

Host only (CPython): a board answers the protocol, it does not speak it as a client, so nothing the
board entry imports reaches this module and tools/flash.py leaves it out of the bundle, like
protocol/keygen.py.  It sits next to the protocol it speaks, below sim/ and tools/, which both use
it (the headless runs' [link] sessions in sim/telemetry_link.py; `vpump prog`; the benchmarks).
Its links are hal's (hal/serial_link.py for a URL, or any object with read/write/wait).

capture: None, or an object given every byte written (.outbound(data)) and read (.inbound(data)):
sim/capture.py's Capture for `vpump prog --capture FILE`.  The caller closes it.
"""

import hmac
import os
import time

from hal.errors import LinkError
from protocol import commands as C
from protocol import frame, reasons, session
from protocol.errors import ProtocolError
from protocol.fields import field_name
from protocol.keyfile import load_key_file  # noqa: F401  (part of the client's API)
from protocol.client_errors import (KeyFileError, LinkFailure, OutcomeUnknown, ProgrammerError,
                                    Refused)

ROLES = {"clinician": session.ROLE_CLINICIAN, "patient": session.ROLE_PATIENT}

# Reason codes below this are frame and session level: the pump sends them without a MAC
# (it could not or need not authenticate the request).  Anything else must carry a valid MAC.
_FIRST_REQUEST_REASON = 16
_LOG_PAGE = 32
_MAX_LOG_PAGES = 100000
_POLL_S = 0.05
# adaptive=True (vpump prog): resend after a few round trips instead of a fixed timeout_s, so a
# pump served at --speed 600 (1 s of real time is 10 min of its time, its session's idle limit)
# is not left waiting; the whole wait stays about (1 + retries) x timeout_s.
_RTT_FACTOR = 4
_MIN_RESEND_S = 0.05
_FIRST_WAIT_S = 0.25
_MAX_TRIES = 40
# How often a session the pump has forgotten (not_authenticated: it idled out, or the pump
# rebooted) is opened again before a command gives up.
_REOPENS = 2
_NAK_LEN = C.NAK_SIZE      # reason u8, field u8, value, lo, hi i64 (docs/protocol.md)
# Commands after which a lost answer leaves nothing unknown: they change nothing.
_READ_ONLY = (C.INTERROGATE, C.READ_LOG, C.READ_LIMITS, C.SESSION_CLOSE)


def _hex(data, limit=8):
    data = bytes(data)
    text = data[:limit].hex()
    return text + ("..." if len(data) > limit else "")


def _describe_fields(fields):
    parts = []
    for name, value in fields.items():
        if isinstance(value, (bytes, bytearray)):
            value = _hex(value)
        elif isinstance(value, dict):
            value = "{%s}" % _describe_fields(value)
        elif isinstance(value, list) and (len(value) > 4 or any(
                isinstance(v, (dict, list)) for v in value)):
            value = "[%d items]" % len(value)
        parts.append("%s=%s" % (name, value))
    return " ".join(parts)


def _command_name(cmd):
    spec = C.COMMANDS.get(cmd & 0x7F)
    return spec.name.upper() if spec is not None else "0x%02X" % cmd


def nak_fields(nak):
    """A decoded NAK dict -> (reason, reason_name, field, value, lo, hi), the field as a name."""
    reason = nak.get("reason")
    field = nak.get("field")
    if isinstance(field, int):          # decode_response gives names; an id is accepted too
        field = field_name(field) if field else None
    return (reason, nak.get("reason_name") or reasons.name(reason), field or None,
            nak.get("value", 0), nak.get("lo", 0), nak.get("hi", 0))


class Programmer:
    """A programmer talking to one pump over one link.  See the module docstring."""

    _closed = True

    def __init__(self, url_or_link, role="clinician", key=None, timeout_s=1.0, retries=3,
                 spy=None, clock=time.monotonic, random_bytes=os.urandom, capture=None,
                 adaptive=False):
        if role not in ROLES:
            raise ProgrammerError("role %r unknown; allowed: %s" % (role, ", ".join(ROLES)))
        if not timeout_s > 0:
            raise ProgrammerError("timeout_s = %r: must be more than 0 seconds" % (timeout_s,))
        if not isinstance(retries, int) or retries < 0:
            raise ProgrammerError("retries = %r: must be a whole number >= 0" % (retries,))
        if key is not None and len(key) != 32:
            raise KeyFileError("the %s key must be 32 bytes, got %d" % (role, len(key)))
        self.role = role
        self.key = bytes(key) if key is not None else None
        self.timeout_s = timeout_s
        self.retries = retries
        self.spy = spy
        self.capture = capture
        # clock() in seconds times the waits for answers; random_bytes(n) draws session nonces.
        # A simulation passes its virtual clock and a seeded generator (sim/telemetry_link.py):
        # the same run, the same frames, and no real waiting.
        self._clock = clock
        self._random_bytes = random_bytes
        if isinstance(url_or_link, str):
            from hal.serial_link import SerialLink
            try:
                self.link = SerialLink(url_or_link)
            except LinkError as exc:
                raise LinkFailure("cannot open the link %s: %s" % (url_or_link, exc)) from None
            self._owns_link = True
            self.url = url_or_link
        else:
            self.link = url_or_link
            self._owns_link = False
            self.url = getattr(url_or_link, "url", None)
        self._decoder = frame.Decoder()
        self._seq = 0
        self._counter = 0
        self._session_key = None
        self.session_id = None
        self.identity = None
        self.retried = 0            # frames resent, over this programmer's life (for tests, UIs)
        self.reopened = 0           # sessions opened again after the pump forgot one
        self.adaptive = adaptive
        self.rtt_s = None           # smoothed round trip of first-try answers (adaptive)
        self._last_tries = 0
        self._link_failed = False   # the last exchange got no answer: close() does not wait again
        self._unknown = None        # (cmd, seq, counter, frame) of an OutcomeUnknown request
        self._closed = False

    # -------------------------------------------------------------------- life cycle

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    @property
    def in_session(self):
        return self._session_key is not None

    def close(self):
        """End the session (best effort) and close the link if this programmer opened it.
        Safe to call twice."""
        if self._closed:
            return
        try:
            if self._session_key is not None:
                if not self._link_failed:
                    try:
                        self._authenticated(C.SESSION_CLOSE, {}, retries=0)
                    except ProgrammerError:
                        pass    # the pump ends idle sessions by itself after 10 minutes
                self._session_key = None
        finally:
            self._closed = True
            if self._owns_link:
                self.link.close()

    # -------------------------------------------------------------------- sessions

    def identify(self):
        """IDENTIFY (no session): {"model", "serial", "firmware_version", "protocol_version"}."""
        self.identity = self._plain(C.IDENTIFY, {})
        return self.identity

    def open_session(self):
        """SESSION_OPEN then SESSION_AUTH with the role's key.  Raises Refused (bad_mac for a
        wrong key, auth_locked_out after five failures) or LinkFailure when the pump's own
        proof is wrong (it does not hold the key: an impostor)."""
        if self.key is None:
            raise KeyFileError("a session needs the %s key: none was given" % self.role)
        for attempt in range(_REOPENS + 1):
            try:
                return self._open_session_once()
            except Refused as exc:
                # The pump forgot the half-open session (it idled out while an answer was
                # lost): nothing ran, so open a new one.
                if exc.reason != reasons.NOT_AUTHENTICATED or attempt == _REOPENS:
                    raise
                self.reopened += 1
                self._spy("tx", "the pump forgot the session being opened; opening a new one")

    def _open_session_once(self):
        role = ROLES[self.role]
        self._session_key = None
        cn = self._random_bytes(16)
        opened = self._plain(C.SESSION_OPEN, {"role": role, "cn": cn})
        pn = bytes(opened["pn"])
        sid = opened["session_id"]
        proof = session.client_proof(self.key, pn, cn, role)
        answer = self._plain(C.SESSION_AUTH, {"session_id": sid, "proof": proof})
        expected = session.pump_proof(self.key, cn, pn, role)
        if not hmac.compare_digest(expected, bytes(answer["proof"])):
            raise LinkFailure("the pump's proof is wrong: it does not hold the %s key (an "
                              "impostor?); session not opened" % self.role)
        self._session_key = session.HmacKey(session.session_key(self.key, pn, cn, role))
        self.session_id = sid
        self._counter = 0
        return {"session_id": sid, "role": self.role}

    def close_session(self):
        """SESSION_CLOSE: the pump forgets the session key."""
        try:
            return self._authenticated(C.SESSION_CLOSE, {})
        finally:
            self._session_key = None

    # -------------------------------------------------------------------- commands

    def interrogate(self):
        return self._authenticated(C.INTERROGATE, {})

    def read_log(self, start_seq=1, max_entries=_LOG_PAGE):
        """One page: {"next_seq", "entries": [{"seq", "t_ms", "code", "args"}, ...]}."""
        return self._authenticated(C.READ_LOG, {"start_seq": start_seq,
                                                "max_entries": max_entries})

    def read_all_log(self, start_seq=1, limit=None):
        """Every entry from start_seq (at most `limit`), paging READ_LOG 32 entries at a time."""
        entries = []
        seq = start_seq
        for _ in range(_MAX_LOG_PAGES):
            want = _LOG_PAGE if limit is None else min(_LOG_PAGE, limit - len(entries))
            if want <= 0:
                break
            page = self.read_log(seq, want)
            got = page["entries"]
            entries.extend(got)
            if not got or page["next_seq"] <= seq:
                break
            seq = page["next_seq"]
        return entries

    def read_limits(self):
        return self._authenticated(C.READ_LIMITS, {})

    def set_limits(self, daily_dose_soft_ug=None, daily_dose_hard_ug=None, bolus_soft_ug=None,
                   bolus_hard_ug=None, rate_increase_soft_pct=None, rate_increase_hard_pct=None):
        """Changes the limits given; the others keep their values (read first).  Returns
        {"old": {...}, "new": {...}}."""
        given = {"daily_dose_soft_ug": daily_dose_soft_ug, "daily_dose_hard_ug": daily_dose_hard_ug,
                 "bolus_soft_ug": bolus_soft_ug, "bolus_hard_ug": bolus_hard_ug,
                 "rate_increase_soft_pct": rate_increase_soft_pct,
                 "rate_increase_hard_pct": rate_increase_hard_pct}
        fields = dict(self.read_limits())
        for name, value in given.items():
            if value is not None:
                fields[name] = value
        fields["concentration_ug_per_ml"] = 0
        return self._authenticated(C.SET_LIMITS, fields)

    def program_continuous(self, basal_ug_per_day, confirm=False):
        return self._authenticated(C.PROGRAM_CONTINUOUS, {"basal_ug_per_day": basal_ug_per_day,
                                                          "confirm": bool(confirm)})

    def program_flex(self, steps, confirm=False):
        """steps: 7 lists (Monday first) of [start_minute, ug_per_day]."""
        return self._authenticated(C.PROGRAM_FLEX, {"steps": steps, "confirm": bool(confirm)})

    def clinician_bolus(self, dose_ug, duration_ms, confirm=False):
        return self._authenticated(C.CLINICIAN_BOLUS, {"dose_ug": dose_ug,
                                                       "duration_ms": duration_ms,
                                                       "confirm": bool(confirm)})

    def patient_bolus(self):
        return self._authenticated(C.PATIENT_BOLUS, {})

    def set_patient_bolus(self, enabled, dose_ug=0, duration_ms=0, lockout_ms=0, max_per_24h=0,
                          confirm=False):
        return self._authenticated(C.SET_PATIENT_BOLUS, {
            "enabled": bool(enabled), "dose_ug": dose_ug, "duration_ms": duration_ms,
            "lockout_ms": lockout_ms, "max_per_24h": max_per_24h, "confirm": bool(confirm)})

    def refill(self, volume_nl, concentration_ug_per_ml, bridge=False):
        return self._authenticated(C.REFILL, {"volume_nl": volume_nl,
                                              "concentration_ug_per_ml": concentration_ug_per_ml,
                                              "bridge": bool(bridge)})

    def stop(self):
        return self._authenticated(C.STOP, {})

    def start(self):
        return self._authenticated(C.START, {})

    def set_clock(self, wall_ms):
        return self._authenticated(C.SET_CLOCK, {"wall_ms": wall_ms})

    def silence_alarms(self, minutes):
        return self._authenticated(C.SILENCE_ALARMS, {"minutes": minutes})

    def clear_alarm(self):
        return self._authenticated(C.CLEAR_ALARM, {})

    def alarm_test(self):
        return self._authenticated(C.ALARM_TEST, {})

    def set_low_reservoir_alarm(self, volume_nl):
        return self._authenticated(C.SET_LOW_RESERVOIR_ALARM, {"volume_nl": volume_nl})

    # -------------------------------------------------------------------- requests

    def _check_open(self):
        if self._closed:
            raise ProgrammerError("this programmer is closed; open a new one")

    def _next_seq(self):
        seq = self._seq
        self._seq = (seq + 1) & 0xFF
        return seq

    def _encode(self, cmd, fields):
        try:
            return C.encode_request(cmd, fields)
        except ProtocolError as exc:
            # A value that does not fit its wire field: the caller's mistake, nothing was sent.
            raise ProgrammerError("not sent: %s" % exc) from None

    def _plain(self, cmd, fields):
        # A command outside a session (IDENTIFY, SESSION_OPEN, SESSION_AUTH).
        self._check_open()
        body = self._encode(cmd, fields)
        seq = self._next_seq()
        if self.spy is not None:        # formatting costs as much as the HMAC: only when asked
            self._spy("tx", "%s seq=%d %s" % (_command_name(cmd), seq, _describe_fields(fields)))
        version, payload = self._exchange(seq, cmd, frame.encode(seq, cmd, body), self.retries)
        status, result = self._decode(cmd, payload)
        if self.spy is not None:
            self._spy("rx", "%s|RESPONSE seq=%d %s" % (_command_name(cmd), seq,
                                                       self._describe_result(status, result)))
        if status != reasons.OK:
            self._refuse(cmd, result)
        return result

    def _authenticated(self, cmd, fields, retries=None):
        for attempt in range(_REOPENS + 1):
            try:
                return self._authenticated_once(cmd, fields, retries)
            except Refused as exc:
                # not_authenticated: the pump no longer knows the session (it idled out, or the
                # pump rebooted), so it did not run this frame.  Safe to open a new session and
                # send the command again when the first try was answered so (nothing else can
                # have run) or the command only reads.  After resends of a command that changes
                # the pump, the first frame may have run and only its answer was lost: its
                # outcome is unknown, never a refusal.
                if exc.reason != reasons.NOT_AUTHENTICATED or cmd == C.SESSION_CLOSE:
                    raise
                if self._last_tries != 1 and cmd not in _READ_ONLY:
                    raise OutcomeUnknown(_command_name(cmd), "the pump forgot the session "
                                         "while an answer was lost") from None
                if attempt == _REOPENS:
                    raise
                self.reopened += 1
                self._spy("tx", "the pump forgot the session (idle or rebooted); opening a new "
                                "one and sending %s again" % _command_name(cmd))

    def _authenticated_once(self, cmd, fields, retries=None):
        self._check_open()
        if self._session_key is None:
            self.open_session()
        key = self._session_key
        body = self._encode(cmd, fields)
        self._counter += 1
        counter = self._counter
        seq = self._next_seq()
        payload = session.wrap_request(key, frame.VERSION, seq, cmd, counter, body)
        if self.spy is not None:
            self._spy("tx", "%s seq=%d counter=%d %s" % (_command_name(cmd), seq, counter,
                                                         _describe_fields(fields)))
        data = frame.encode(seq, cmd, payload)
        self._unknown = None
        try:
            return self._answer(cmd, key, seq, counter, data,
                                self.retries if retries is None else retries)
        except LinkFailure as exc:
            if cmd in _READ_ONLY or isinstance(exc, OutcomeUnknown):
                raise
            # Sent, and no usable answer: the pump may have done it.  Never "failed".
            self._unknown = (cmd, seq, counter, data)
            raise OutcomeUnknown(_command_name(cmd), str(exc)) from None

    def resend(self):
        """Resend the request whose outcome is unknown (the last OutcomeUnknown): the very same
        frame, same SEQ and counter.  A pump that did it answers from its memory of the
        session's last request without doing it again; one that never got it does it now.
        Returns the response fields (or raises Refused / OutcomeUnknown again)."""
        self._check_open()
        if self._unknown is None:
            raise ProgrammerError("nothing to resend: no request is waiting for its outcome")
        if self._session_key is None:
            raise ProgrammerError("cannot resend: the session ended, so the pump no longer "
                                  "remembers the request; check with `status` and `log`")
        cmd, seq, counter, data = self._unknown
        self._unknown = None
        try:
            return self._answer(cmd, self._session_key, seq, counter, data, self.retries)
        except LinkFailure as exc:
            self._unknown = (cmd, seq, counter, data)
            raise OutcomeUnknown(_command_name(cmd), str(exc)) from None

    @property
    def outcome_unknown(self):
        """The name of the command whose outcome is unknown, or None."""
        return _command_name(self._unknown[0]) if self._unknown else None

    def _answer(self, cmd, key, seq, counter, data, retries):
        version, answer = self._exchange(seq, cmd, data, retries)
        resp_cmd = (cmd | frame.RESPONSE) & 0xFF
        parts = session.unwrap(answer)
        if parts is not None:
            got_counter, resp_body, mac = parts
            if got_counter == counter and session.verify_response(
                    key, version, seq, resp_cmd, counter, resp_body, mac):
                status, result = self._decode(cmd, resp_body)
                if self.spy is not None:
                    self._spy("rx", "%s|RESPONSE seq=%d counter=%d mac ok %s" % (
                        _command_name(cmd), seq, counter, self._describe_result(status, result)))
                if status != reasons.OK:
                    self._refuse(cmd, result)
                return result
        # Without a valid MAC only a frame- or session-level NAK is believed (it refuses; it
        # cannot make us think a command was refused that the pump may have run).
        if answer and 0 < answer[0] < _FIRST_REQUEST_REASON:
            try:
                status, result = C.decode_response(cmd, bytes(answer))
            except ProtocolError:
                status = None
            if status:
                self._spy("rx", "%s|RESPONSE seq=%d (no MAC) %s" % (
                    _command_name(cmd), seq, self._describe_result(status, result)))
                if status in (reasons.NOT_AUTHENTICATED, reasons.BAD_MAC):
                    # The pump no longer knows our session (it ended, or it rebooted).
                    self._session_key = None
                self._refuse(cmd, result)
        self._spy("rx", "%s|RESPONSE seq=%d: MAC does not verify" % (_command_name(cmd), seq))
        raise LinkFailure("the response to %s failed authentication (its MAC does not verify): "
                          "the frame was altered or does not come from this pump"
                          % _command_name(cmd))

    def _decode(self, cmd, body):
        try:
            return C.decode_response(cmd, bytes(body))
        except ProtocolError as exc:
            raise LinkFailure("the response to %s cannot be decoded: %s"
                              % (_command_name(cmd), exc)) from None

    def _refuse(self, cmd, nak):
        reason, reason_name, field, value, lo, hi = nak_fields(nak)
        raise Refused(reason, reason_name, field, value, lo, hi, command=_command_name(cmd))

    def _describe_result(self, status, result):
        if status == reasons.OK:
            return "ok %s" % _describe_fields(result)
        reason, reason_name, field, value, lo, hi = nak_fields(result)
        text = "NAK %s" % reason_name
        if field:
            text += " field=%s value=%s allowed=%s..%s" % (field, value, lo, hi)
        return text

    # -------------------------------------------------------------------- the link

    def _spy(self, direction, text):
        if self.spy is not None:
            self.spy(direction, text)

    def _exchange(self, seq, cmd, data, retries):
        # Send `data` and wait for its response; resend the same bytes on a timeout or a bad_crc
        # NAK.  Returns (version, payload) of the response.
        resp_cmd = (cmd | frame.RESPONSE) & 0xFF
        wait_s, tries = self._pace(retries)
        for attempt in range(tries):
            if attempt:
                self.retried += 1
                self._spy("tx", "%s seq=%d: resend %d of %d (same frame)"
                          % (_command_name(cmd), seq, attempt, tries - 1))
            self._write(data)
            sent = self._clock()
            got = self._await(seq, resp_cmd, sent + wait_s)
            if got is not None:
                self._link_failed = False
                self._last_tries = attempt + 1
                # Since the last send: an answer to an earlier copy only makes it shorter,
                # and _MIN_RESEND_S keeps a short one sane.
                self._learn_rtt(self._clock() - sent)
                return got
        self._link_failed = True
        raise LinkFailure("no answer from the pump to %s after %d tries, %s s each%s"
                          % (_command_name(cmd), tries,
                             "%.1f" % wait_s if wait_s >= 0.1 else "%.2f" % wait_s,
                             " (%s)" % self.url if self.url else ""))

    def _pace(self, retries):
        # (seconds to wait for each answer, tries): timeout_s and 1 + retries, or with
        # adaptive a few round trips each and as many tries as fit the same total wait.
        tries = 1 + retries
        if not self.adaptive or retries == 0:
            return self.timeout_s, tries
        # Before the first answer: a quarter second, already generous for a local link, and a
        # slower one answers a resend from the pump's cache.
        rtt_wait = _FIRST_WAIT_S if self.rtt_s is None else _RTT_FACTOR * self.rtt_s
        wait_s = min(self.timeout_s, max(_MIN_RESEND_S, rtt_wait))
        return wait_s, max(tries, min(_MAX_TRIES, int(tries * self.timeout_s / wait_s)))

    def _learn_rtt(self, rtt_s):
        # Smoothed as TCP does (7/8 old, 1/8 new); the first sample stands alone.  Only with
        # adaptive: a simulation's virtual clock keeps its fixed timeout_s.
        rtt_s = max(0.0, rtt_s)
        self.rtt_s = rtt_s if self.rtt_s is None else self.rtt_s * 0.875 + rtt_s * 0.125

    def _await(self, seq, resp_cmd, deadline):
        # (version, payload) of the response, or None at the deadline or on a bad_crc NAK.
        while True:
            # Wait first: just after a write the answer cannot be there yet, and an empty read
            # of a serial port costs as much as a wait.
            remaining = deadline - self._clock()
            if remaining <= 0:
                return None
            self._wait(min(remaining, _POLL_S))
            for status, version, got_seq, got_cmd, payload in self._decoder.feed(self._read()):
                if status != reasons.OK:
                    self._spy("rx", "a frame with a bad CRC (ignored)")
                    continue
                if len(payload) == _NAK_LEN and payload[0] == reasons.BAD_CRC and \
                        got_cmd & frame.RESPONSE:
                    # Our frame reached the pump damaged (its SEQ and CMD are a guess): resend.
                    self._spy("rx", "NAK bad_crc: our frame was damaged on the way; resending")
                    return None
                if got_seq != seq or got_cmd != resp_cmd:
                    self._spy("rx", "%s seq=%d: not the awaited response (ignored)"
                              % (_command_name(got_cmd), got_seq))
                    continue
                return version, payload

    def _write(self, data):
        try:
            self.link.write(data)
        except LinkError as exc:
            self._link_failed = True
            raise LinkFailure("the link failed while sending: %s" % exc) from None
        if self.capture is not None:
            self.capture.outbound(data)

    def _read(self):
        try:
            data = self.link.read(4096)
        except LinkError as exc:
            self._link_failed = True
            raise LinkFailure("the link failed while receiving: %s" % exc) from None
        if self.capture is not None:
            self.capture.inbound(data)      # b"" too: a quiet link ends a run of garbage
        return data

    def _wait(self, timeout_s):
        wait = getattr(self.link, "wait", None)
        try:
            if wait is not None:
                wait(timeout_s)
            else:
                time.sleep(min(timeout_s, 0.005))
        except LinkError as exc:
            self._link_failed = True
            raise LinkFailure("the link failed while waiting: %s" % exc) from None
