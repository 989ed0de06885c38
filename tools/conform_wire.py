"""The conformance suite's view of a link: raw frames in and out, and sessions done by hand.

`vpump conform` must be able to send what a well-behaved programmer never sends (a bad CRC, a
replayed counter, half a frame), and to look at exactly what comes back, so it does not use
protocol/client.py: this is docs/protocol.md spelled out with protocol/'s frame and session
helpers.  Times are the host's monotonic clock; `latency` is measured here.
"""

import os
import time

from protocol import commands as C
from protocol import frame, reasons, session
from protocol.errors import ProtocolError

_POLL_S = 0.02


class Answer:
    """One response frame: seq, cmd, the raw payload, and what it says.

    For a session's command: mac_ok (None for a bare frame), counter; status (0 accepted, a
    reason code for a NAK); fields (accepted) or nak (reason, reason_name, field, value, lo,
    hi); error when the body does not decode; raw the whole frame's bytes."""

    def __init__(self, version, seq, cmd, payload, raw):
        self.version = version
        self.seq = seq
        self.cmd = cmd
        self.payload = bytes(payload)
        self.raw = raw
        self.mac_ok = None
        self.counter = None
        self.status = None
        self.fields = None
        self.nak = None
        self.error = None

    def decode(self, cmd, body):
        try:
            self.status, result = C.decode_response(cmd, bytes(body))
        except ProtocolError as exc:
            self.error = str(exc)
            self.status = body[0] if body else None
            return self
        if self.status == reasons.OK:
            self.fields = result
        else:
            self.nak = result
        return self

    @property
    def reason_name(self):
        return reasons.name(self.status) if self.status is not None else "no status"

    def describe(self):
        if self.error:
            return "undecodable answer (%s)" % self.error
        if self.status == reasons.OK:
            return "accepted"
        n = self.nak or {}
        text = "NAK %s" % self.reason_name
        if n.get("field"):
            text += " field=%s value=%s allowed %s..%s" % (n["field"], n.get("value"),
                                                           n.get("lo"), n.get("hi"))
        return text + ("" if self.mac_ok is None else " (MAC %s)" % ("ok" if self.mac_ok
                                                                     else "WRONG"))


class Wire:
    """Frames over one link.  send(data) writes bytes as they are; answers(timeout_s) collects
    the frames that arrive; request(...) sends one frame and waits for its answer."""

    def __init__(self, link, timeout_s=1.0, clock=time.monotonic):
        self.link = link
        self.timeout_s = timeout_s
        self.clock = clock
        self._decoder = frame.Decoder()
        self._seq = 0x40
        self.pending = []           # frames that came while waiting for another one
        self.bad_frames = 0         # frames from the pump whose CRC failed

    def next_seq(self):
        self._seq = (self._seq + 1) & 0xFF
        return self._seq

    def send(self, data):
        self.link.write(bytes(data))

    def _pump(self, timeout_s):
        wait = getattr(self.link, "wait", None)
        if wait is not None:
            wait(timeout_s)
        else:
            time.sleep(min(timeout_s, _POLL_S))
        data = self.link.read(4096)
        for status, version, seq, cmd, payload in self._decoder.feed(data):
            if status != reasons.OK:
                self.bad_frames += 1
                continue
            raw = frame.encode(seq, cmd, payload, version)
            self.pending.append(Answer(version, seq, cmd, payload, raw))

    def answers(self, timeout_s):
        """Every frame that arrives within timeout_s (waits the whole time)."""
        end = self.clock() + timeout_s
        while True:
            left = end - self.clock()
            if left <= 0:
                break
            self._pump(min(left, _POLL_S))
        got, self.pending = self.pending, []
        return got

    def idle(self, seconds):
        """Let seconds of link time pass without sending (frames that come are kept)."""
        end = self.clock() + seconds
        while True:
            left = end - self.clock()
            if left <= 0:
                return
            self._pump(min(left, _POLL_S))

    def drain(self, quiet_s=0.15):
        """Forget whatever is in flight (after a check that may leave answers behind)."""
        self.answers(quiet_s)

    def await_answer(self, seq, cmd, timeout_s=None):
        """The first frame with this seq and cmd | 0x80 within timeout_s, else None; other
        frames stay in pending."""
        end = self.clock() + (self.timeout_s if timeout_s is None else timeout_s)
        want = (cmd | frame.RESPONSE) & 0xFF
        while True:
            for i, answer in enumerate(self.pending):
                if answer.seq == seq and answer.cmd == want:
                    del self.pending[i]
                    return answer
            left = end - self.clock()
            if left <= 0:
                return None
            self._pump(min(left, _POLL_S))

    def request(self, cmd, payload=b"", seq=None, version=frame.VERSION, timeout_s=None):
        """Send one plain frame; its Answer (decoded as cmd's response) or None."""
        seq = self.next_seq() if seq is None else seq
        self.send(frame.encode(seq, cmd, payload, version))
        answer = self.await_answer(seq, cmd, timeout_s)
        if answer is not None:
            answer.decode(cmd, answer.payload)
        return answer


class Session:
    """A session opened by hand: open() does SESSION_OPEN and SESSION_AUTH and checks the
    pump's proof; command() wraps a command with the next counter and checks the answer's MAC.
    The last request frame is kept (`last_frame`) for the resend checks."""

    def __init__(self, wire, key, role=session.ROLE_CLINICIAN):
        self.wire = wire
        self.key = key
        self.role = role
        self.counter = 0
        self.session_key = None
        self.session_id = None
        self.last_frame = None
        self.auth_frame = None
        self.auth_answer = None

    def open(self):
        """Returns None when the session is open, else what went wrong (text)."""
        cn = os.urandom(16)
        opened = self.wire.request(C.SESSION_OPEN, C.encode_request(
            C.SESSION_OPEN, {"role": self.role, "cn": cn}))
        if opened is None:
            return "no answer to SESSION_OPEN"
        if opened.status != reasons.OK:
            return "SESSION_OPEN: %s" % opened.describe()
        pn = bytes(opened.fields["pn"])
        self.session_id = opened.fields["session_id"]
        proof = session.client_proof(self.key, pn, cn, self.role)
        seq = self.wire.next_seq()
        self.auth_frame = frame.encode(seq, C.SESSION_AUTH, C.encode_request(
            C.SESSION_AUTH, {"session_id": self.session_id, "proof": proof}))
        self.wire.send(self.auth_frame)
        answer = self.wire.await_answer(seq, C.SESSION_AUTH)
        if answer is None:
            return "no answer to SESSION_AUTH"
        answer.decode(C.SESSION_AUTH, answer.payload)
        self.auth_answer = answer
        if answer.status != reasons.OK:
            return "SESSION_AUTH with the right proof: %s" % answer.describe()
        if bytes(answer.fields["proof"]) != session.pump_proof(self.key, cn, pn, self.role):
            return "the pump's proof is wrong (HMAC(K, \"vpump-pump\" || cn || pn || role))"
        self.session_key = session.HmacKey(session.session_key(self.key, pn, cn, self.role))
        self.counter = 0
        return None

    def frame_for(self, cmd, body, counter=None, seq=None):
        """The bytes of an authenticated request (counter: the next one unless given)."""
        if counter is None:
            self.counter += 1
            counter = self.counter
        seq = self.wire.next_seq() if seq is None else seq
        payload = session.wrap_request(self.session_key, frame.VERSION, seq, cmd, counter,
                                       bytes(body))
        return seq, frame.encode(seq, cmd, payload)

    def command(self, cmd, fields=None, body=None, counter=None, timeout_s=None):
        """Send a command of the session; its Answer (None: no answer).  fields are encoded
        with protocol/commands.py; body is the raw command payload instead."""
        if body is None:
            body = C.encode_request(cmd, fields or {})
        seq, data = self.frame_for(cmd, body, counter)
        self.last_frame = (seq, cmd, data)
        self.wire.send(data)
        return self.read_answer(seq, cmd, timeout_s)

    def read_answer(self, seq, cmd, timeout_s=None):
        answer = self.wire.await_answer(seq, cmd, timeout_s)
        if answer is None:
            return None
        return self.unwrap(answer, seq, cmd)

    def unwrap(self, answer, seq, cmd):
        parts = session.unwrap(answer.payload)
        if parts is not None and self.session_key is not None:
            counter, body, mac = parts
            if session.verify_response(self.session_key, answer.version, seq,
                                       (cmd | frame.RESPONSE) & 0xFF, counter, body, mac):
                answer.mac_ok = True
                answer.counter = counter
                return answer.decode(cmd, body)
        # A bare answer: only a NAK (26 bytes) can be one.
        answer.decode(cmd, answer.payload)
        if answer.status == reasons.OK or answer.status is None:
            answer.mac_ok = False
        return answer

    def resend_last(self, timeout_s=None):
        seq, cmd, data = self.last_frame
        self.wire.send(data)
        return self.read_answer(seq, cmd, timeout_s)

    def log_count(self):
        """How many entries READ_LOG gives from seq 1 (paging), or None when it fails."""
        count, start = 0, 1
        for _ in range(10000):
            answer = self.command(C.READ_LOG, {"start_seq": start, "max_entries": 32})
            if answer is None or answer.status != reasons.OK:
                return None
            entries = answer.fields["entries"]
            count += len(entries)
            if not entries or answer.fields["next_seq"] <= start:
                return count
            start = answer.fields["next_seq"]
        return count

    def close(self):
        if self.session_key is not None:
            self.command(C.SESSION_CLOSE, {})
            self.session_key = None
