# Telemetry: the pump's side of docs/protocol.md.  Bytes from the link HAL part go through the
# frame decoder; each complete frame gets exactly one response frame.  Sessions are
# challenge-response per role (clinician, patient) with HMAC-SHA256; every authenticated request
# carries a growing counter and a MAC.  The last request of a session and its response are kept,
# so a programmer that lost a response can resend the same frame and get the same answer
# without the pump running the command twice (no double bolus).  What a command does and
# answers is firmware/answers.py; the answer's frame is built here, in one buffer (_sealed).
#
# Runs on the board as it is (MicroPython): integer pump time from the scheduler, no threads.
#
# Security (docs/threat-model.md): an OPEN only adds a challenge (up to _PENDING, the oldest
# dropped): the session running goes on until a party authenticates, and only then is it
# replaced (logged).  A wrong proof costs its challenge and nothing else: no lockout, because
# with 128-bit proofs a lockout protects nothing and locks the clinician out.  The radio's
# session charge is paid for authenticated sessions only.  What anyone can repeat at will
# (wrong proofs, a patient's sessions) is logged coalesced: the 1st, 2nd, 4th, ... since the
# last clinician login, each with its count, so floods never push therapy history out.
# Nonces come from os.urandom, with the boot count and a per-boot count in them, so even a
# deterministic source (nonce=, an insecure test option) never repeats one across restarts.

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

try:
    from os import urandom
except ImportError:     # a port without one: the board's hal Rng (hal/machine.py: urandom=)
    urandom = None

from firmware import answers, eventlog
from protocol import commands as C
from protocol import frame, reasons, session
from protocol.errors import ProtocolError

FIRMWARE_VERSION = "0.1.0"

SESSION_IDLE_MS = const(600000)         # a session ends after 10 min without a valid request
_PENDING = const(4)                     # challenges open at once (OPEN ... AUTH)

# AUTH log entry "result" argument.
AUTH_FAILED = const(0)
AUTH_OK = const(1)
# SESSION_END log entry "cause" argument.
END_CLOSED = const(0)
END_IDLE = const(1)
END_REPLACED = const(2)
# Coalesced security events (Telemetry.counts).
_FAILED = const(0)
_PATIENT_OK = const(1)
_PATIENT_END = const(2)

_READ_CHUNK = const(256)
# An authenticated answer's frame: sync 2, LEN 2, VER SEQ CMD, counter 4, body, MAC 8, CRC 2.
_SEALED_HEAD = const(11)
_SEALED_OVERHEAD = const(21)
_R = const(0x52)                        # "R": the direction byte of an answer's MAC


class Telemetry:
    # keys: {"clinician": 32 bytes, "patient": 32 bytes, "serial": str (optional)}.
    # link_ms: the link's clock in ms (what its bytes arrive by: the wall clock behind a paced
    # `vpump serve`); default the pump's clock, which is the link's on a board.
    # nonce: n -> n bytes for challenges; default os.urandom.  Anything else (a seeded source
    # for reproducible runs) is the insecure test option of docs/threat-model.md.
    def __init__(self, pump, link, keys, serial=None, link_ms=None, nonce=None):
        self.pump = pump
        self.link = link
        self._keys = {session.ROLE_CLINICIAN: keys["clinician"],
                      session.ROLE_PATIENT: keys["patient"]}
        self.serial = serial or keys.get("serial") or "VP-0000"
        baud = getattr(link, "baud", None)
        gap_ms, char_us = frame.link_timing(baud) if baud else (frame.SOCKET_GAP_MS, 0)
        self._decoder = frame.Decoder(frame.MAX_PAYLOAD, gap_ms, char_us)
        self._link_ms = link_ms or pump.now_ms
        self._nonce = nonce or urandom or pump.board.rng.random_bytes
        self.frames = 0
        self.opened = 0
        self.counts = [0, 0, 0]
        self._pending = []          # [(session_id, role, cn, pn)] between OPEN and AUTH
        self._key = None
        self._end(0)

    # -- link ---------------------------------------------------------------------------

    def poll(self):
        # Handles every complete frame the link has; returns how many.  Never blocks.
        handled = 0
        now = self._link_ms()
        if self._key is not None and self.pump.now_ms() - self._last_valid_ms > SESSION_IDLE_MS:
            self._end(END_IDLE)
        data = self.link.read(_READ_CHUNK)
        if not data:
            self._decoder.idle(now)
        while data:
            for item in self._decoder.feed(data, now):
                response = self.handle(item)
                if response is not None:
                    self.link.write(response)
                handled += 1
            if len(data) < _READ_CHUNK:
                break               # drained: spare the link an empty read
            data = self.link.read(_READ_CHUNK)
        return handled

    def handle(self, item):
        # item: (status, version, seq, cmd, payload) from frame.Decoder.  Returns the response
        # frame (bytes).
        status, version, seq, cmd, payload = item
        self.frames += 1
        if status != reasons.OK:
            # A damaged frame: its SEQ and CMD are a guess; the programmer retries anyway.
            return self._plain(seq, cmd, C.encode_nak(status))
        if version != frame.VERSION:
            return self._plain(seq, cmd, C.encode_nak(reasons.BAD_VERSION, None, version,
                                                      frame.VERSION, frame.VERSION))
        spec = C.COMMANDS.get(cmd)
        if spec is None:
            return self._plain(seq, cmd, C.encode_nak(reasons.UNKNOWN_COMMAND, None, cmd))
        if spec.auth:
            return self._authenticated(seq, cmd, payload)
        try:
            request = C.decode_request(cmd, payload)
        except ProtocolError as exc:
            return self._plain(seq, cmd, _nak_of(exc))
        if cmd == C.IDENTIFY:
            body = C.encode_ack(cmd, {"model": self.pump.model["name"], "serial": self.serial,
                                      "firmware_version": FIRMWARE_VERSION,
                                      "protocol_version": frame.VERSION})
        elif cmd == C.SESSION_OPEN:
            body = self._open(request)
        else:
            if self._key is not None and self._last_request == (seq, cmd, bytes(payload)):
                # The programmer did not hear the proof it was given and resent the very same
                # frame: the same answer again (it grants nothing new), not a lost session.
                return self._last_response
            body = self._authenticate(request)
            if self._key is not None:
                response = self._plain(seq, cmd, body)
                self._last_request = (seq, cmd, bytes(payload))
                self._last_response = response
                return response
        return self._plain(seq, cmd, body)

    def _plain(self, seq, cmd, body):
        return frame.encode(seq, (cmd | frame.RESPONSE) & 0xFF, body)

    # -- sessions -----------------------------------------------------------------------

    def _end(self, cause):
        # Ends the session, logged with its cause (a patient's coalesced).
        if self._key is not None:
            self._log(_PATIENT_END if self._role == session.ROLE_PATIENT else -1,
                      eventlog.SESSION_END, self._role, cause)
        self._role = 0
        self._key = None
        self._counter = 0
        self._last_request = None
        self._last_response = None
        self._last_valid_ms = 0

    def _log(self, kind, code, role, arg):
        # kind -1: always logged (the clinician's own sessions).  Otherwise counted, and logged
        # at the 1st, 2nd, 4th, 8th ... since the last clinician login, with the count.
        n = 1
        if kind >= 0:
            n = self.counts[kind] + 1
            self.counts[kind] = n
            if n & (n - 1):
                return
        self.pump.log.log(code, role, arg, n)

    def _busy(self, role):
        # A patient's remote may not cut into a clinician's programming session.
        now = self.pump.now_ms()
        if role == session.ROLE_PATIENT and self._role == session.ROLE_CLINICIAN and \
                now - self._last_valid_ms <= SESSION_IDLE_MS:
            return C.encode_nak(reasons.BUSY, None, 0, 0,
                                self._last_valid_ms + SESSION_IDLE_MS - now)
        return None

    def _open(self, request):
        role = request["role"]
        if role not in self._keys:
            return C.encode_nak(reasons.OUT_OF_RANGE, "role", role, 1, 2)
        busy = self._busy(role)
        if busy:
            return busy
        # 8 random bytes, the boot count and the sessions opened in this boot: unique even
        # from a deterministic source, and a recorded session never fits after a restart.
        pn = bytes(self._nonce(8)) + (self.pump.boot_count & 0xFFFFFFFF).to_bytes(4, "big") + \
            (self.opened & 0xFFFFFFFF).to_bytes(4, "big")
        self.opened += 1
        sid = int.from_bytes(bytes(self._nonce(4)), "big")
        pending = self._pending
        if len(pending) >= _PENDING:
            pending.pop(0)
        pending.append((sid, role, bytes(request["cn"]), pn))
        return C.encode_ack(C.SESSION_OPEN, {"pn": pn, "session_id": sid})

    def _authenticate(self, request):
        for pending in self._pending:
            if pending[0] == request["session_id"]:
                break
        else:
            # Someone else's challenges stay: a wrong session id spoils nothing.
            return C.encode_nak(reasons.NOT_AUTHENTICATED, None)
        self._pending.remove(pending)   # one proof per challenge: a guess needs a new open
        sid, role, cn, pn = pending
        key = self._keys[role]
        if not session.compare(session.client_proof(key, pn, cn, role), request["proof"]):
            self._log(_FAILED, eventlog.AUTH, role, AUTH_FAILED)
            return C.encode_nak(reasons.BAD_MAC, None)
        busy = self._busy(role)
        if busy:
            return busy
        self._end(END_REPLACED)     # only now: the new party has proved its key
        self._role = role
        self._key = session.HmacKey(session.session_key(key, pn, cn, role))
        self._last_valid_ms = self.pump.now_ms()
        if role == session.ROLE_CLINICIAN:
            self.counts = [0, 0, 0]
            self._log(-1, eventlog.AUTH, role, AUTH_OK)
        else:
            self._log(_PATIENT_OK, eventlog.AUTH, role, AUTH_OK)
        self.pump.telemetry_session()   # the radio's session charge: authenticated ones only
        return C.encode_ack(C.SESSION_AUTH, {"proof": session.pump_proof(key, cn, pn, role)})

    def _authenticated(self, seq, cmd, payload):
        now = self.pump.now_ms()
        key = self._key
        if key is not None and now - self._last_valid_ms > SESSION_IDLE_MS:
            self._end(END_IDLE)
            key = None
        if key is None:
            return self._plain(seq, cmd, C.encode_nak(reasons.NOT_AUTHENTICATED, None))
        parts = session.unwrap(payload)
        if parts is None:
            return self._plain(seq, cmd, C.encode_nak(reasons.BAD_LENGTH, None, len(payload), 12))
        counter, body, mac = parts
        if not session.verify_request(key, frame.VERSION, seq, cmd, counter, body, mac):
            return self._plain(seq, cmd, C.encode_nak(reasons.BAD_MAC, None))
        if counter <= self._counter:
            if counter == self._counter and self._last_request == (seq, cmd, bytes(payload)):
                return self._last_response      # a retry: same answer, nothing run twice
            return self._plain(seq, cmd, C.encode_nak(reasons.REPLAY, "counter", counter,
                                                      self._counter + 1, 0xFFFFFFFF))
        self._counter = counter
        self._last_valid_ms = now
        spec = C.COMMANDS[cmd]
        request = None
        if self._role != session.ROLE_CLINICIAN and not spec.patient:
            result = C.encode_nak(reasons.ROLE_NOT_ALLOWED, "role", self._role)
        else:
            try:
                request = C.decode_request(cmd, body)
                result = self._run(cmd, request)
            except ProtocolError as exc:
                result = _nak_of(exc)
        out = self._sealed(key, seq, cmd, counter, result, request)
        self._last_request = (seq, cmd, bytes(payload))
        self._last_response = out
        if cmd == C.SESSION_CLOSE:
            self._end(END_CLOSED)
        return out

    def _sealed(self, key, seq, cmd, counter, body, request):
        # The answer's frame, built in one buffer: the body (or, body None, READ_LOG's page
        # written from storage), then the MAC and the frame's CRC over it in place.
        if body is None:
            pump = self.pump
            start = request["start_seq"]
            most = request["max_entries"]
            out = bytearray(_SEALED_OVERHEAD + answers.LOG_HEAD_BYTES
                            + answers.LOG_ENTRY_BYTES * pump.persist.log_room(start, most))
            n = answers.log_page(pump, start, most, out, _SEALED_HEAD)
            if _SEALED_OVERHEAD + n < len(out):     # a decayed record was skipped
                out = out[:_SEALED_OVERHEAD + n]
        else:
            n = len(body)
            out = bytearray(_SEALED_OVERHEAD + n)
            out[_SEALED_HEAD:_SEALED_HEAD + n] = body
        out[4] = frame.VERSION
        out[5] = seq
        out[6] = (cmd | frame.RESPONSE) & 0xFF
        for k in range(4):
            out[7 + k] = (counter >> (24 - 8 * k)) & 0xFF
        # The MAC covers "R" VER SEQ CMD counter body (protocol/session.py): with "R" over
        # LEN's low byte for the while, that is the frame's own bytes 3 .. end of body.
        end = _SEALED_HEAD + n
        out[3] = _R
        out[end:end + session.MAC_SIZE] = session.mac(key, memoryview(out)[3:end])
        return frame.finish(out)

    # -- commands -----------------------------------------------------------------------

    def _run(self, cmd, f):
        # The answer's body (firmware/answers.py); None for READ_LOG, whose page _sealed()
        # writes straight into the frame.
        return answers.run(self.pump, cmd, f)


def _nak_of(exc):
    return C.encode_nak(exc.reason, exc.field, exc.value or 0, exc.lo or 0, exc.hi or 0)

