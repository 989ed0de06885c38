"""`vpump fuzz URL --key-file F`: a stateful, CRC- and MAC-aware fuzzer for any pump that speaks
docs/protocol.md (ours behind `vpump serve`, a flashed board, or your own implementation).

It sends seeded batches of frames in five modes, and after each batch asks three oracles:

    modes      no_session   unauthenticated frames: every command code (and unknown ones), valid
                            and mutated payloads, OPEN then AUTH with the real session id and a
                            wrong proof
               patient      a patient session (the patient key), then every command with mutated
                            payloads, each with a valid MAC and counter (and some replays)
               clinician    the same in a clinician session
               tampered     clinician frames with a valid MAC, changed after the MAC (a bit of
                            the counter, payload or MAC, or the SEQ/CMD with a fresh CRC)
               garbage      random bytes, frames cut short, false frame starts, bad CRCs
    oracles    liveness     an IDENTIFY probe is answered within PROBE_S (2 s; resent every
                            0.5 s, so a frame the pump's inter-byte timeout dropped costs no
                            finding); the longest wait is the "worst unresponsive time"
               crash        the link dies (the server went away, the port closed)
               change       through a trusted clinician session, the pump's settings
                            (interrogate, limits) and its new log entries before and after each
                            batch: a batch that could not legitimately change a setting (every
                            mode but clinician; a patient may bolus and silence) and did is an
                            unauthorised change

Each finding is written as a reproducer (JSON: seed, mode, batch, what the oracle saw, and every
frame of the batch as hex with what it was meant to be) into --findings DIR, and --replay FILE
sends its batch again (a session's frames in a new session, tampered the same way) and asks the
oracles whether the finding shows again; the summary gives
frames, crashes, hangs, unauthorised changes and the worst unresponsive time, and --json prints
it as JSON.  The choices are drawn from the seed only (never from the pump's answers), so the
same seed against the same fresh pump sends the same frames (session nonces aside).

The anchor is boofuzz (stateful sessions, serial targets, a crash-only oracle); this one also
speaks valid MACs and watches the pump's state.
"""

import json
import os
import random
import struct
import time

from firmware import eventlog
from hal.errors import LinkError
from protocol import commands as C
from protocol import frame, reasons, session
from protocol.client import Programmer
from protocol.client_errors import ProgrammerError
from protocol.errors import ProtocolError
from sim.errors import SimError

MODES = ("no_session", "patient", "clinician", "tampered", "garbage")
PROBE_S = 2.0               # liveness: an IDENTIFY must be answered within this
_PROBE_RESEND_S = 0.5
_ANSWER_S = 0.25            # how long to wait for the answer to a well-formed frame
BATCH_FRAMES = 200

# A valid request per command: the starting point of the mutations.
SAMPLES = {
    C.IDENTIFY: {}, C.SESSION_OPEN: {"role": 1, "cn": bytes(16)},
    C.SESSION_AUTH: {"session_id": 1, "proof": bytes(16)}, C.SESSION_CLOSE: {},
    C.INTERROGATE: {}, C.READ_LOG: {"start_seq": 1, "max_entries": 8}, C.READ_LIMITS: {},
    C.SET_LIMITS: {"daily_dose_soft_ug": 800, "daily_dose_hard_ug": 2000, "bolus_soft_ug": 100,
                   "bolus_hard_ug": 200, "rate_increase_soft_pct": 30,
                   "rate_increase_hard_pct": 100},
    C.PROGRAM_CONTINUOUS: {"basal_ug_per_day": 300, "confirm": False},
    C.PROGRAM_FLEX: {"confirm": False, "steps": [[[0, 300], [720, 200]]] * 7},
    C.CLINICIAN_BOLUS: {"dose_ug": 50, "duration_ms": 1800000, "confirm": False},
    C.PATIENT_BOLUS: {},
    C.SET_PATIENT_BOLUS: {"enabled": True, "dose_ug": 25, "duration_ms": 600000,
                          "lockout_ms": 10800000, "max_per_24h": 4, "confirm": False},
    C.REFILL: {"volume_nl": 20000000, "concentration_ug_per_ml": 2000, "bridge": False},
    C.STOP: {}, C.START: {}, C.SET_CLOCK: {"wall_ms": 1767600000000},
    C.SILENCE_ALARMS: {"minutes": 60}, C.CLEAR_ALARM: {}, C.ALARM_TEST: {},
    C.SET_LOW_RESERVOIR_ALARM: {"volume_nl": 2000000},
}
_AUTH_CMDS = sorted(c for c in SAMPLES if C.COMMANDS[c].auth)
_INTERESTING = (0x00, 0x01, 0x7F, 0x80, 0xFE, 0xFF)

# What a batch may change without the clinician key: settings compared through interrogate and
# read_limits, and log entries that only a change of them writes.
SETTINGS = ("therapy_on", "mode", "basal_ug_per_day", "concentration_ug_per_ml",
            "low_reservoir_alarm_nl")
_FORBIDDEN_CODES = {eventlog.PROGRAM: "program", eventlog.REFILL: "refill",
                    eventlog.LIMITS_SET: "limits_set",
                    eventlog.PATIENT_BOLUS_SET: "patient_bolus_set",
                    eventlog.ALARM_VOLUME_SET: "alarm_volume_set",
                    eventlog.CLOCK_SET: "clock_set"}
_PATIENT_KIND = 1           # BOLUS_START's kind for a patient bolus (eventlog.BOLUS_KINDS)


class FuzzError(Exception):
    """A fuzz run that cannot start (no trusted session with the key file's clinician key):
    exit 1."""


class FuzzUsage(SimError):
    """Bad input to vpump fuzz (a key file that cannot be used): exit 2."""


class Crash(Exception):
    """The link died under the fuzzer."""


def mutate(rng, body):
    """One of: a flipped bit, an interesting byte, cut short, grown, random, or unchanged."""
    body = bytearray(body)
    kind = rng.randrange(7)
    if kind == 0 and body:
        i = rng.randrange(len(body))
        body[i] ^= 1 << rng.randrange(8)
    elif kind == 1 and body:
        body[rng.randrange(len(body))] = rng.choice(_INTERESTING)
    elif kind == 2 and body:
        del body[rng.randrange(len(body)):]
    elif kind == 3:
        body += bytes(rng.randrange(256) for _ in range(rng.randrange(1, 9)))
    elif kind == 4:
        body = bytearray(rng.randrange(256) for _ in range(rng.randrange(0, 40)))
    elif kind == 5 and body:
        i = rng.randrange(len(body))
        body[i] = (body[i] + rng.choice((1, -1))) & 0xFF
    return bytes(body)


class Fuzzer:
    def __init__(self, link, keys, seed, findings_dir=None, gap_s=None, clock=time.monotonic,
                 on_batch=None, probe_s=PROBE_S):
        self.link = link
        self.keys = keys
        self.seed = seed
        self.rng = random.Random(seed)
        self.findings_dir = findings_dir
        baud = getattr(link, "baud", None)
        self.gap_s = gap_s if gap_s is not None else (
            frame.link_timing(baud)[0] / 1000.0 if baud else frame.SOCKET_GAP_MS / 1000.0)
        self._clock = clock
        self.on_batch = on_batch
        self.probe_s = probe_s      # the liveness limit (and the trusted session's patience)
        self._decoder = frame.Decoder()
        self._seq = 0
        self._session = None        # (key, role) of the fuzz session
        self._counter = 0
        self._log_next = 1
        self.frames = 0
        self.batches = 0
        self.answers = 0
        self.crashes = 0
        self.hangs = 0
        self.unauthorised = 0
        self.worst_unresponsive_s = 0.0
        self.findings = []
        self._batch_frames = []

    # -- the link -------------------------------------------------------------------------

    def _write(self, data, intent):
        try:
            self.link.write(data)
        except LinkError as exc:
            raise Crash("the link failed while sending: %s" % exc) from None
        self.frames += 1
        self._batch_frames.append({"hex": bytes(data).hex(), "intent": intent})

    def _items(self, timeout_s, want=None):
        # Answers that come within timeout_s (until `want`(item) is true, if given).
        end = self._clock() + timeout_s
        got = []
        while True:
            try:
                data = self.link.read(4096)
            except LinkError as exc:
                raise Crash("the link failed while receiving: %s" % exc) from None
            for item in self._decoder.feed(data):
                got.append(item)
                self.answers += 1
                if want is not None and want(item):
                    return got
            left = end - self._clock()
            if left <= 0 or (want is None and got):
                return got
            try:
                self.link.wait(min(left, 0.05))
            except LinkError as exc:
                raise Crash("the link failed while waiting: %s" % exc) from None

    def _send(self, cmd, payload, intent):
        # A frame whose answer nothing depends on: sent without waiting (answers are read as
        # they come, and drained before the oracles), so the pump is kept busy.
        self._write(frame.encode(self._next_seq(), cmd, payload), intent)
        self._items(0)

    def _drain(self):
        # The batch's remaining answers: read until the link has been quiet for a moment.
        while self._items(0.05):
            pass

    def _next_seq(self):
        self._seq = (self._seq + 1) & 0xFF
        return self._seq

    def _exchange(self, cmd, payload, intent):
        seq = self._next_seq()
        self._write(frame.encode(seq, cmd, payload), intent)
        resp = (cmd | frame.RESPONSE) & 0xFF
        for item in self._items(_ANSWER_S, lambda i: i[2] == seq and i[3] == resp):
            if item[0] == reasons.OK and item[2] == seq and item[3] == resp:
                return item[4]
        return None

    # -- sessions -------------------------------------------------------------------------

    def _login(self, role):
        key = self.keys[session.ROLES[role]]
        cn = bytes(self.rng.randrange(256) for _ in range(16))
        answer = self._exchange(C.SESSION_OPEN, C.encode_request(
            C.SESSION_OPEN, {"role": role, "cn": cn}), {"cmd": "SESSION_OPEN", "role": role})
        self._session = None
        try:
            status, opened = C.decode_response(C.SESSION_OPEN, answer or b"")
        except ProtocolError:
            return False
        if status:
            return False
        proof = session.client_proof(key, opened["pn"], cn, role)
        answer = self._exchange(C.SESSION_AUTH, C.encode_request(
            C.SESSION_AUTH, {"session_id": opened["session_id"], "proof": proof}),
            {"cmd": "SESSION_AUTH", "role": role})
        try:
            status, _ = C.decode_response(C.SESSION_AUTH, answer or b"")
        except ProtocolError:
            return False
        if status:
            return False
        self._session = (session.HmacKey(session.session_key(key, opened["pn"], cn, role)), role)
        self._counter = 0
        return True

    def _wrapped(self, cmd, body, counter=None):
        key = self._session[0]
        if counter is None:
            self._counter += 1
            counter = self._counter
        seq = self._next_seq()
        return seq, counter, session.wrap_request(key, frame.VERSION, seq, cmd, counter, body)

    # -- batches --------------------------------------------------------------------------

    def _body(self, cmd):
        body = C.encode_request(cmd, SAMPLES[cmd])
        return body if self.rng.random() < 0.3 else mutate(self.rng, body)

    def _batch(self, mode, n):
        rng = self.rng
        if mode in ("patient", "clinician", "tampered"):
            role = session.ROLE_PATIENT if mode == "patient" else session.ROLE_CLINICIAN
            if not self._login(role):
                return
        for _ in range(n):
            if mode == "no_session":
                self._no_session_frame()
            elif mode == "garbage":
                self._garbage_frame()
            elif self._session is not None:
                self._session_frame(mode == "tampered")

    def _no_session_frame(self):
        rng = self.rng
        roll = rng.random()
        if roll < 0.15:
            # Stateful: a real challenge, then a wrong proof for its session id.
            role = rng.choice((1, 2))
            answer = self._exchange(C.SESSION_OPEN, C.encode_request(
                C.SESSION_OPEN, {"role": role, "cn": bytes(16)}), {"cmd": "SESSION_OPEN"})
            sid = rng.randrange(1 << 32)
            try:
                status, opened = C.decode_response(C.SESSION_OPEN, answer or b"")
                if status == 0:
                    sid = opened["session_id"]
            except ProtocolError:
                pass
            proof = bytes(rng.randrange(256) for _ in range(16))
            self._exchange(C.SESSION_AUTH, C.encode_request(
                C.SESSION_AUTH, {"session_id": sid, "proof": proof}),
                {"cmd": "SESSION_AUTH", "proof": "random"})
            return
        if roll < 0.25:
            cmd = rng.randrange(256)
            body = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 30)))
        else:
            cmd = rng.choice(sorted(SAMPLES))
            body = self._body(cmd)
            if C.COMMANDS[cmd].auth and rng.random() < 0.5:
                # A session wrapper with a made-up counter and MAC.
                body = struct.pack(">I", rng.randrange(1 << 32)) + body + \
                    bytes(rng.randrange(256) for _ in range(8))
        self._send(cmd, body[:frame.MAX_PAYLOAD],
                   {"cmd": cmd, "body": body[:frame.MAX_PAYLOAD].hex(), "mode": "no_session"})

    def _session_frame(self, tamper):
        rng = self.rng
        cmd = rng.choice(_AUTH_CMDS)
        body = self._body(cmd)[:frame.MAX_PAYLOAD - session.OVERHEAD]
        replay = (not tamper) and self._counter > 1 and rng.random() < 0.05
        counter = rng.randrange(1, self._counter + 1) if replay else None
        seq, counter, payload = self._wrapped(cmd, body, counter)
        intent = {"cmd": C.COMMANDS[cmd].name, "code": cmd, "body": body.hex(),
                  "counter": counter, "session_role": self._session[1]}
        if not tamper:
            if replay:
                intent["replay"] = True
            self._write(frame.encode(seq, cmd, payload), intent)
            self._items(0)
            return
        payload = bytearray(payload)
        where = rng.randrange(4)
        at = None
        if where == 0:      # a bit of the counter
            at = rng.randrange(4)
            intent["tamper"] = "counter bit"
        elif where == 1 and len(payload) > session.OVERHEAD:     # a bit of the body
            at = 4 + rng.randrange(len(payload) - session.OVERHEAD)
            intent["tamper"] = "body bit"
        elif where == 2:    # a bit of the MAC
            at = len(payload) - 1 - rng.randrange(8)
            intent["tamper"] = "mac bit"
        else:               # the header the MAC covers, with a CRC that fits again
            other = rng.choice([c for c in _AUTH_CMDS if c != cmd])
            intent["tamper"] = "cmd %s -> %s" % (C.COMMANDS[cmd].name, C.COMMANDS[other].name)
            intent["as_code"] = other
            cmd = other
        if at is not None:
            mask = 1 << rng.randrange(8)
            payload[at] ^= mask
            intent["tamper_at"], intent["tamper_mask"] = at, mask
        self._write(frame.encode(seq, cmd, bytes(payload)), intent)
        self._items(0)

    def _garbage_frame(self):
        rng = self.rng
        roll = rng.random()
        if roll < 0.3:
            data = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 120)))
            what = "random bytes"
        elif roll < 0.6:
            whole = frame.encode(self._next_seq(), rng.choice(sorted(SAMPLES)),
                                 self._body(rng.choice(sorted(SAMPLES))))
            data = whole[:rng.randrange(1, len(whole))]
            what = "a frame cut short"
        elif roll < 0.8:
            data = frame.SYNC + struct.pack(">H", rng.randrange(0x10000)) + \
                bytes(rng.randrange(256) for _ in range(rng.randrange(0, 8)))
            what = "a false frame start"
        else:
            data = bytearray(frame.encode(self._next_seq(), C.IDENTIFY))
            data[-1] ^= 1 << rng.randrange(8)
            data = bytes(data)
            what = "a bad CRC"
        try:
            self.link.write(data)
        except LinkError as exc:
            raise Crash("the link failed while sending: %s" % exc) from None
        self.frames += 1
        self._batch_frames.append({"hex": data.hex(), "intent": {"garbage": what}})

    # -- oracles --------------------------------------------------------------------------

    def probe(self, settle=False):
        """Seconds until an IDENTIFY was answered, or None after PROBE_S (a hang).  settle:
        first let a partial frame the batch left time out (the pump's inter-byte gap)."""
        start = self._clock()
        if settle:
            self._items(self.gap_s * 1.5)
        while True:
            seq = self._next_seq()
            data = frame.encode(seq, C.IDENTIFY)
            try:
                self.link.write(data)
            except LinkError as exc:
                raise Crash("the link failed while sending the probe: %s" % exc) from None
            resp = C.IDENTIFY | frame.RESPONSE
            got = self._items(_PROBE_RESEND_S,
                              lambda i: i[0] == reasons.OK and i[2] == seq and i[3] == resp)
            if got and got[-1][0] == reasons.OK and got[-1][2] == seq and got[-1][3] == resp:
                return self._clock() - start
            if self._clock() - start > self.probe_s:
                return None

    def observe(self):
        """(settings, new log entries) through a trusted clinician session."""
        self._items(self.gap_s * 1.5)
        self._session = None
        try:
            with Programmer(self.link, key=self.keys["clinician"],
                            timeout_s=max(1.0, self.probe_s / 2), retries=2) as p:
                status = p.interrogate()
                limits = p.read_limits()
                entries = p.read_all_log(self._log_next)
        except LinkError as exc:
            raise Crash("the link failed during the trusted session: %s" % exc) from None
        if entries:
            self._log_next = entries[-1]["seq"] + 1
        settings = dict((k, status[k]) for k in SETTINGS)
        settings["limits"] = limits
        settings["reservoir_nl"] = status["reservoir_nl"]
        return settings, entries

    def changes(self, mode, before, after, entries):
        """What the batch changed that its mode may not change (a list of sentences)."""
        if mode == "clinician":
            return []
        out = []
        for key in SETTINGS + ("limits",):
            if before[key] != after[key]:
                out.append("%s changed from %r to %r" % (key, before[key], after[key]))
        if after["reservoir_nl"] > before["reservoir_nl"]:
            out.append("reservoir_nl grew from %d to %d (a refill)"
                       % (before["reservoir_nl"], after["reservoir_nl"]))
        for e in entries:
            code = e["code"]
            if code in _FORBIDDEN_CODES:
                out.append("log %d: %s" % (e["seq"], _FORBIDDEN_CODES[code]))
            elif code == eventlog.BOLUS_START and not (mode == "patient"
                                                       and e["args"][0] == _PATIENT_KIND):
                out.append("log %d: bolus_start (kind %d)" % (e["seq"], e["args"][0]))
            elif code == eventlog.ALARM_SILENCED and mode != "patient":
                out.append("log %d: alarm_silenced" % e["seq"])
        return out

    # -- the run --------------------------------------------------------------------------

    def run(self, frames, seconds=None):
        start = self._clock()
        try:
            before, _ = self.observe()
        except ProgrammerError as exc:
            raise FuzzError("no trusted clinician session: %s (check --key-file and the URL)"
                            % exc) from None
        try:
            while self.frames < frames and (seconds is None or self._clock() - start < seconds):
                mode = self.rng.choice(MODES)
                self._batch_frames = []
                self.batches += 1
                self._batch(mode, min(BATCH_FRAMES, frames - self.frames))
                self._drain()
                waited = self.probe(settle=mode == "garbage")
                if waited is None:
                    self.hangs += 1
                    self._finding("hang", mode, "no answer to IDENTIFY within %.1f s"
                                  % self.probe_s)
                    self.worst_unresponsive_s = max(self.worst_unresponsive_s, self.probe_s)
                    continue
                self.worst_unresponsive_s = max(self.worst_unresponsive_s, waited)
                try:
                    after, entries = self.observe()
                except ProgrammerError as exc:
                    self.hangs += 1
                    self._finding("hang", mode, "the trusted session failed: %s" % exc)
                    continue
                wrong = self.changes(mode, before, after, entries)
                if wrong:
                    self.unauthorised += 1
                    self._finding("unauthorised_change", mode, "; ".join(wrong))
                before = after
                if self.on_batch is not None:
                    self.on_batch(self)
        except Crash as exc:
            self.crashes += 1
            self._finding("crash", "-", str(exc))
        self.elapsed_s = self._clock() - start
        return self.summary()

    def replay(self, record):
        """Send a reproducer's frames again, then ask the oracles.  Frames outside a session go
        verbatim; a session's frames are wrapped again in a new session of the same role (new
        nonces, so new MACs) with the same tampering.  Returns {"reproduced", "hang", "changes"}."""
        before, _ = self.observe()
        self._batch_frames = []
        try:
            for item in record["frames"]:
                intent = item["intent"]
                role = intent.get("session_role")
                if role is None:
                    if "role" in intent:
                        continue        # the recorded session's own login: done again below
                    data = bytes.fromhex(item["hex"])
                    try:
                        self.link.write(data)
                    except LinkError as exc:
                        raise Crash("the link failed while sending: %s" % exc) from None
                    self.frames += 1
                    self._items(0)
                    continue
                if self._session is None or self._session[1] != role:
                    if not self._login(role):
                        continue
                code = intent["code"]
                seq, counter, payload = self._wrapped(
                    code, bytes.fromhex(intent["body"]),
                    max(1, self._counter) if intent.get("replay") else None)
                payload = bytearray(payload)
                if "tamper_at" in intent and intent["tamper_at"] < len(payload):
                    payload[intent["tamper_at"]] ^= intent["tamper_mask"]
                self._write(frame.encode(seq, intent.get("as_code", code), bytes(payload)),
                            intent)
                self._items(0)
            self._drain()
            waited = self.probe(settle=True)
            if waited is None:
                return {"reproduced": True, "hang": True, "changes": []}
            after, entries = self.observe()
        except Crash as exc:
            return {"reproduced": True, "hang": False, "crash": str(exc), "changes": []}
        wrong = self.changes(record["mode"], before, after, entries)
        return {"reproduced": bool(wrong), "hang": False, "changes": wrong}

    def _finding(self, kind, mode, detail):
        record = {"finding": kind, "mode": mode, "seed": self.seed, "batch": self.batches,
                  "detail": detail, "frames": list(self._batch_frames),
                  "reproduce": "vpump fuzz URL --key-file F --replay THIS_FILE sends this "
                               "batch again; or, the run being seeded, vpump fuzz URL --key-file "
                               "F --seed %d --frames %d against the same fresh pump sends every "
                               "batch up to this one (%d) again"
                               % (self.seed, self.frames, self.batches)}
        if self.findings_dir:
            os.makedirs(self.findings_dir, exist_ok=True)
            path = os.path.join(self.findings_dir, "finding-%d-%s-batch%d.json"
                                % (self.seed, kind, self.batches))
            with open(path, "w", encoding="utf-8") as f:
                json.dump(record, f, indent=1)
            record = dict(record, path=path)
        self.findings.append({"finding": kind, "mode": mode, "batch": self.batches,
                              "detail": detail, "path": record.get("path")})

    def summary(self):
        elapsed = getattr(self, "elapsed_s", 0.0) or 1e-9
        return {"seed": self.seed, "frames": self.frames, "batches": self.batches,
                "answers": self.answers, "crashes": self.crashes, "hangs": self.hangs,
                "unauthorised_changes": self.unauthorised,
                "worst_unresponsive_s": round(self.worst_unresponsive_s, 3),
                "seconds": round(elapsed, 2), "frames_per_s": round(self.frames / elapsed, 1),
                "findings": self.findings}
