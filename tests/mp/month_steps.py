"""The board's side of tests/mp/board_month.py's month: what runs in the MicroPython heap.

Portable: CPython and MicroPython 1.27.  Kept apart from the host-side drivers in board_month.py
so that their code (the session set-up, the bundle build, the sampling) is not compiled into the
heap it measures.  See board_month.py for what the month is.
"""

from firmware.telemetry import Telemetry
from hal.base import Link
from hal.file_storage import FileStorage
from protocol import commands as C
from protocol import frame, keys, session
from sim.replay import Replay, trace_line

SCENARIO = "adult-sci-continuous"
HOUR_MS = 3600000
DAY_MS = 24 * HOUR_MS
DAYS = 30
SESSION_EVERY_DAYS = 7
SESSION_AT_MS = 10 * HOUR_MS            # a clinic visit in the morning
STORAGE_BYTES = 32768                   # hal/machine.py's default storage_size
# Fixed keys (and the scenario's seeded nonces): the same bytes on every run.
KEYS_TEXT = ('{"serial": "VP-MONTH1", "clinician": "' + "11" * 32 + '", "patient": "'
             + "22" * 32 + '"}')


class LoopLink(Link):
    # Two byte queues between the handheld and the pump.
    def __init__(self):
        Link.__init__(self)
        self.to_pump = bytearray()
        self.to_handheld = bytearray()

    def _write_internal(self, data):
        self.to_handheld.extend(data)
        return len(data)

    def _read_internal(self, max_bytes):
        data = bytes(self.to_pump[:max_bytes])
        self.to_pump = self.to_pump[max_bytes:]
        return data


def canon(value):
    # A decoded answer as text, the same on both interpreters (dict order differs).
    if isinstance(value, dict):
        return "{" + ", ".join("%s: %s" % (k, canon(value[k])) for k in sorted(value)) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(canon(v) for v in value) + "]"
    if isinstance(value, (bytes, bytearray)):
        return "0x" + "".join("%02x" % b for b in value)
    return repr(value)


class Handheld:
    # The clinician's side of one routine session (docs/protocol.md), as a programmer runs it.
    def __init__(self, telemetry, link, key, cn):
        self.telemetry = telemetry
        self.link = link
        self.key = key
        self.cn = cn
        self.seq = 0
        self.counter = 0
        self.session_key = None
        self.opened = None

    # An exchange is three steps: the handheld sends (send_*), the pump answers (pump_poll),
    # the handheld reads the answer (receive).  On a board the handheld is another device, so
    # under the WebAssembly port each is a program of its own: the pump's step holds only the
    # pump's garbage (and the request's bytes).

    def _send(self, cmd, body):
        self.seq = (self.seq + 1) & 0xFF
        self.cmd = cmd
        self.link.to_pump.extend(frame.encode(self.seq, cmd, body))

    def pump_poll(self):
        self.telemetry.poll()

    def _answer(self):
        items = frame.Decoder().feed(bytes(self.link.to_handheld))
        self.link.to_handheld = bytearray()
        if len(items) != 1 or items[0][0] != 0 or items[0][2] != self.seq:
            raise ValueError("no single answer to command 0x%02x: %r" % (self.cmd, items))
        return items[0][3], items[0][4]

    def send_plain(self, cmd, fields=None):
        self._send(cmd, C.encode_request(cmd, fields))

    def receive_plain(self):
        resp_cmd, payload = self._answer()
        return C.decode_response(resp_cmd, payload)

    def send_authenticated(self, cmd, fields=None):
        self.counter += 1
        self._send(cmd, session.wrap_request(self.session_key, frame.VERSION, (self.seq + 1) & 0xFF,
                                             cmd, self.counter, C.encode_request(cmd, fields)))

    def receive_authenticated(self):
        resp_cmd, payload = self._answer()
        parts = session.unwrap(payload)
        if parts is None:
            return C.decode_response(resp_cmd, payload)     # a NAK sent without a MAC
        counter, answer, mac = parts
        if not session.verify_response(self.session_key, frame.VERSION, self.seq, resp_cmd,
                                       counter, answer, mac):
            raise ValueError("the answer to command 0x%02x does not verify" % self.cmd)
        return C.decode_response(resp_cmd, answer)

    # The routine session: these exchanges, each sent, answered and received.
    STEPS = ("identify", "open", "authenticate", "interrogate", "read_log", "close")

    def send(self, name, log_from):
        role = session.ROLE_CLINICIAN
        if name == "identify":
            self.send_plain(C.IDENTIFY)
        elif name == "open":
            self.send_plain(C.SESSION_OPEN, {"role": role, "cn": self.cn})
        elif name == "authenticate":
            self.send_plain(C.SESSION_AUTH, {
                "session_id": self.opened["session_id"],
                "proof": session.client_proof(self.key, self.opened["pn"], self.cn, role)})
        elif name == "interrogate":
            self.send_authenticated(C.INTERROGATE)
        elif name == "read_log":
            self.send_authenticated(C.READ_LOG, {"start_seq": log_from, "max_entries": 32})
        else:
            self.send_authenticated(C.SESSION_CLOSE)

    def receive(self, name):
        # What the handheld heard (for the trace).
        role = session.ROLE_CLINICIAN
        if name in ("identify", "open", "authenticate"):
            status, fields = self.receive_plain()
            if name == "identify":
                return status, fields
            if name == "open":
                if status:
                    raise ValueError("SESSION_OPEN refused: %r" % (fields,))
                self.opened = fields
                return status, fields["session_id"]
            pn = self.opened["pn"]
            if status or fields["proof"] != session.pump_proof(self.key, self.cn, pn, role):
                raise ValueError("authentication failed: %r" % (fields,))
            self.session_key = session.session_key(self.key, pn, self.cn, role)
            self.counter = 0
            self.opened = None
            return status
        heard = self.receive_authenticated()
        if name == "read_log":
            status, page = heard
            return status, page["next_seq"], [e["code"] for e in page["entries"]]
        if name == "close":
            self.session_key = None
        return heard


class Month:
    def __init__(self, config, storage_path, trace_path, days=DAYS):
        self.trace = open(trace_path, "w")
        self.replay = Replay(config, days=days, on_log=self._log,
                             storage=FileStorage(storage_path, STORAGE_BYTES))
        self.replay.start()
        board = self.replay.board
        self.link = LoopLink()
        parsed = keys.parse_keys(KEYS_TEXT)
        # The board's seeded source for the challenges: reproducible (docs/threat-model.md's
        # test option; a board draws them from os.urandom).
        self.telemetry = Telemetry(self.replay.pump, self.link, parsed,
                                   nonce=board.rng.random_bytes)
        self.handheld = Handheld(self.telemetry, self.link, parsed["clinician"], b"c" * 16)
        self.t_ms = 0
        self.days = days
        self.sessions = 0

    def _log(self, seq, t_ms, code, args):
        self.trace.write(trace_line(seq, t_ms, code, args) + "\n")

    def hours(self):
        return self.days * 24

    def session_due(self):
        day = self.t_ms // DAY_MS
        return day > 0 and day % SESSION_EVERY_DAYS == 0 and self.t_ms % DAY_MS == SESSION_AT_MS

    def hour(self):
        # One hour of the month: the firmware and the simulated board run to its end.
        self.advance(HOUR_MS)

    def advance(self, ms):
        # ms more of the month (a part of an hour: the drivers' unit of work).
        self.t_ms += ms
        self.replay.run_to(self.t_ms)

    # This hour's session, in steps: exchange i is send_step(i), the pump's pump_step(), then
    # receive_step(i) (its answer into the trace).
    def send_step(self, i):
        if i == 0:
            self.sessions += 1
        self.handheld.send(Handheld.STEPS[i], 1 + 32 * (self.sessions - 1))

    def pump_step(self):
        self.handheld.pump_poll()

    def receive_step(self, i):
        name = Handheld.STEPS[i]
        heard = self.handheld.receive(name)
        self.trace.write("session %d %s at %d: %s\n" % (self.sessions, name, self.t_ms,
                                                        canon(heard)))

    def finish(self):
        self.trace.close()
        self.replay.board.storage.close()
