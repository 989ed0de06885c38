"""The pump's side of the telemetry protocol (firmware/telemetry.py), frame by frame.

A small client written here from docs/protocol.md drives Telemetry.handle() directly, so every
byte is under the test's control (replays, tampering, lost responses) and time is virtual."""

import pytest

from firmware import eventlog
from firmware.dosing import MS_PER_DAY
from firmware.pump import Pump
from firmware.telemetry import SESSION_IDLE_MS, Telemetry
from hal.sim import SimBoard
from protocol import commands as C
from protocol import frame, reasons, session

MIN = 60000
KEYS = {"serial": "VP-TEST01", "clinician": bytes(range(32)), "patient": bytes(range(32, 64))}
CLINICIAN = session.ROLE_CLINICIAN
PATIENT = session.ROLE_PATIENT


def decode_one(data):
    items = frame.Decoder().feed(data)
    assert len(items) == 1, items
    return items[0]


class Client:
    """A programmer reduced to its protocol: builds frames, checks MACs, keeps the counter."""

    def __init__(self, tel):
        self.tel = tel
        self.seq = 0
        self.counter = 0
        self.key = None
        self.sent = []

    def exchange(self, data):
        self.sent.append(data)
        return self.tel.handle(decode_one(data))

    def frame(self, cmd, body=b""):
        self.seq = (self.seq + 1) & 0xFF
        return frame.encode(self.seq, cmd, body)

    def plain(self, cmd, fields=None):
        out = decode_one(self.exchange(self.frame(cmd, C.encode_request(cmd, fields or {}))))
        assert out[0] == reasons.OK and out[3] == cmd | 0x80
        return C.decode_response(cmd, out[4])

    def login(self, role=CLINICIAN, key=None):
        key = KEYS["clinician" if role == CLINICIAN else "patient"] if key is None else key
        cn = bytes([7] * 16)
        status, opened = self.plain(C.SESSION_OPEN, {"role": role, "cn": cn})
        if status:
            return status, opened
        proof = session.client_proof(key, opened["pn"], cn, role)
        status, reply = self.plain(C.SESSION_AUTH, {"session_id": opened["session_id"],
                                                    "proof": proof})
        if status == 0:
            assert reply["proof"] == session.pump_proof(key, cn, opened["pn"], role)
            self.key = session.session_key(key, opened["pn"], cn, role)
            self.counter = 0
        return status, reply

    def request(self, cmd, fields=None, counter=None):
        self.counter = self.counter + 1 if counter is None else counter
        body = C.encode_request(cmd, fields or {})
        self.seq = (self.seq + 1) & 0xFF
        return frame.encode(self.seq, cmd, session.wrap_request(
            self.key, frame.VERSION, self.seq, cmd, self.counter, body))

    def response(self, cmd, data):
        status, version, seq, resp_cmd, payload = decode_one(data)
        assert resp_cmd == cmd | 0x80
        parts = session.unwrap(payload)
        if parts is not None and self.key is not None and session.verify_response(
                self.key, version, seq, resp_cmd, parts[0], parts[1], parts[2]):
            return C.decode_response(cmd, parts[1])
        return C.decode_response(cmd, payload)      # an unauthenticated NAK

    def call(self, cmd, fields=None):
        return self.response(cmd, self.exchange(self.request(cmd, fields)))


@pytest.fixture
def pump():
    board = SimBoard(reservoir_capacity_nl=20000000)
    board.reservoir.refill(20000000, 2000)
    p = Pump(board)
    p.boot()
    assert p.refill(20000000, 2000) == reasons.OK
    return p


@pytest.fixture
def tel(pump):
    return Telemetry(pump, None, KEYS)


@pytest.fixture
def client(tel):
    return Client(tel)


def nak(result, reason):
    status, detail = result
    assert status == reason, (reasons.name(status), detail)
    return detail


def auth_events(pump):
    return [args for _, _, code, args in pump.persist.log_read(1, 10000) if code == eventlog.AUTH]


# -- unauthenticated ------------------------------------------------------------------------

def test_identify_needs_no_session(client):
    status, info = client.plain(C.IDENTIFY)
    assert status == 0
    assert info["serial"] == "VP-TEST01"
    assert info["model"] == "vpump-ib20"
    assert info["protocol_version"] == 1


@pytest.mark.req("SR-21")
def test_commands_need_a_session(client):
    client.key = bytes(32)
    nak(client.call(C.INTERROGATE), reasons.NOT_AUTHENTICATED)


@pytest.mark.req("SR-19")
def test_bad_crc_unknown_command_bad_version_and_bad_length(client, tel):
    data = bytearray(client.frame(C.IDENTIFY))
    data[-1] ^= 0x01
    items = frame.Decoder().feed(bytes(data))
    assert items[0][0] == reasons.BAD_CRC
    assert C.decode_response(C.IDENTIFY, decode_one(tel.handle(items[0]))[4])[0] == \
        reasons.BAD_CRC
    out = decode_one(tel.handle(decode_one(frame.encode(9, 0x7E, b""))))
    assert C.decode_response(C.IDENTIFY, out[4])[0] == reasons.UNKNOWN_COMMAND
    out = decode_one(tel.handle(decode_one(frame.encode(9, C.IDENTIFY, b"", version=2))))
    assert C.decode_response(C.IDENTIFY, out[4])[0] == reasons.BAD_VERSION
    out = decode_one(tel.handle(decode_one(frame.encode(9, C.SESSION_OPEN, b"\x01"))))
    assert C.decode_response(C.SESSION_OPEN, out[4])[0] == reasons.BAD_LENGTH


# -- sessions --------------------------------------------------------------------------------

def test_clinician_session_programs_and_shows_old_and_new(client, pump):
    assert client.login()[0] == 0
    status, reply = client.call(C.PROGRAM_CONTINUOUS, {"basal_ug_per_day": 400, "confirm": False})
    assert status == 0 and reply["old_daily_ug"] == 0 and reply["new_daily_ug"] == 400
    status, reply = client.call(C.PROGRAM_CONTINUOUS, {"basal_ug_per_day": 440, "confirm": False})
    assert (reply["old_daily_ug"], reply["new_daily_ug"]) == (400, 440)
    assert pump.therapy.program == {"mode": "continuous", "basal_ug_per_day": 440}
    status, info = client.call(C.INTERROGATE)
    assert status == 0
    assert info["therapy"] == "infusing" and info["basal_ug_per_day"] == 440
    assert info["reservoir_nl"] == 20000000
    assert info["hours_to_empty"] > 0 and info["days_to_replacement"] > 365


@pytest.mark.req("SR-19", "SR-14")
def test_limits_refused_with_field_and_range(client, pump):
    client.login()
    detail = nak(client.call(C.PROGRAM_CONTINUOUS, {"basal_ug_per_day": 50000, "confirm": True}),
                 reasons.OVER_HARD_LIMIT)
    assert detail["field"] == "daily_dose_ug" and detail["value"] == 50000 and detail["hi"] == 2000
    assert pump.therapy.program is None                             # refused: nothing changed
    detail = nak(client.call(C.PROGRAM_CONTINUOUS, {"basal_ug_per_day": 900, "confirm": False}),
                 reasons.SOFT_LIMIT_NEEDS_CONFIRM)
    assert detail["field"] == "daily_dose_ug" and detail["hi"] == 800
    assert client.call(C.PROGRAM_CONTINUOUS, {"basal_ug_per_day": 900, "confirm": True})[0] == 0
    detail = nak(client.call(C.REFILL, {"volume_nl": 30000000, "concentration_ug_per_ml": 2000,
                                        "bridge": False}), reasons.OUT_OF_RANGE)
    assert detail["field"] == "volume_nl" and detail["hi"] == 20000000


def test_state_refusals_travel_as_naks(client, pump):
    client.login()
    nak(client.call(C.START), reasons.NO_PROGRAM)
    nak(client.call(C.PATIENT_BOLUS), reasons.THERAPY_STOPPED)
    client.call(C.PROGRAM_CONTINUOUS, {"basal_ug_per_day": 400, "confirm": False})
    nak(client.call(C.PATIENT_BOLUS), reasons.PATIENT_BOLUS_DISABLED)
    assert client.call(C.CLINICIAN_BOLUS, {"dose_ug": 50, "duration_ms": 30 * MIN,
                                           "confirm": False})[0] == 0
    nak(client.call(C.CLINICIAN_BOLUS, {"dose_ug": 50, "duration_ms": 30 * MIN,
                                        "confirm": False}), reasons.BOLUS_IN_PROGRESS)
    pump.sched.run_until(pump.sched.now_ms() + 31 * MIN)
    client.login()                                          # the idle session timed out
    assert client.call(C.SET_PATIENT_BOLUS, {"enabled": True, "dose_ug": 25, "duration_ms": 10 * MIN,
                                             "lockout_ms": 180 * MIN, "max_per_24h": 4,
                                             "confirm": False})[0] == 0
    assert client.call(C.PATIENT_BOLUS)[0] == 0
    pump.sched.run_until(pump.sched.now_ms() + 9 * MIN)
    nak(client.call(C.PATIENT_BOLUS), reasons.BOLUS_IN_PROGRESS)
    pump.sched.run_until(pump.sched.now_ms() + 2 * MIN)
    nak(client.call(C.PATIENT_BOLUS), reasons.LOCKOUT_ACTIVE)


@pytest.mark.req("SR-21")
def test_patient_role_may_only_interrogate_bolus_and_silence(client, tel, pump):
    pump.program_continuous(400)
    pump.set_patient_bolus(25, 10 * MIN, 180 * MIN, 4)
    assert client.login(PATIENT)[0] == 0
    assert client.call(C.INTERROGATE)[0] == 0
    nak(client.call(C.PROGRAM_CONTINUOUS, {"basal_ug_per_day": 2000, "confirm": True}),
        reasons.ROLE_NOT_ALLOWED)
    nak(client.call(C.REFILL, {"volume_nl": 1, "concentration_ug_per_ml": 2000, "bridge": False}),
        reasons.ROLE_NOT_ALLOWED)
    status, reply = client.call(C.PATIENT_BOLUS)
    assert status == 0 and reply["dose_ug"] == 25
    assert client.call(C.SILENCE_ALARMS, {"minutes": 60})[0] == 0
    assert pump.therapy.program["basal_ug_per_day"] == 400


def test_a_patient_cannot_cut_into_a_clinician_session(tel, pump):
    clinician, patient = Client(tel), Client(tel)
    assert clinician.login()[0] == 0
    nak(patient.login(PATIENT), reasons.BUSY)
    pump.sched.run_until(pump.sched.now_ms() + SESSION_IDLE_MS + 1)
    assert patient.login(PATIENT)[0] == 0


@pytest.mark.req("SR-22")
def test_wrong_key_is_bad_mac_and_failures_never_lock_the_right_key_out(client, pump):
    # The old firmware locked both roles for 10 min after five failures (security finding 2).
    for _ in range(5):
        nak(client.login(key=bytes(32)), reasons.BAD_MAC)
    assert client.login()[0] == 0
    # Failures are logged coalesced (1st, 2nd, 4th with their count), then the clinician's login.
    assert auth_events(pump) == [(CLINICIAN, 0, 1), (CLINICIAN, 0, 2), (CLINICIAN, 0, 4),
                                 (CLINICIAN, 1, 1)]
    from sim.events import decode
    last = pump.persist.log_read(1, 10000)[-1]
    assert decode(*last)["role"] == "clinician" and decode(*last)["result"] == "ok"


@pytest.mark.req("SR-21")
def test_tampered_frames_fail_their_mac_and_old_frames_are_replays(client, tel, pump):
    client.login()
    first = client.request(C.PROGRAM_CONTINUOUS, {"basal_ug_per_day": 400, "confirm": False})
    tampered = bytearray(decode_one(first)[4])
    tampered[7] ^= 0x01                                     # the basal's low byte
    out = tel.handle((reasons.OK, 1, client.seq, C.PROGRAM_CONTINUOUS, bytes(tampered)))
    nak(client.response(C.PROGRAM_CONTINUOUS, out), reasons.BAD_MAC)
    assert client.response(C.PROGRAM_CONTINUOUS, client.exchange(first))[0] == 0
    assert client.call(C.PROGRAM_CONTINUOUS, {"basal_ug_per_day": 420, "confirm": False})[0] == 0
    # The captured first frame, replayed later, is refused and changes nothing.
    detail = nak(client.response(C.PROGRAM_CONTINUOUS, client.exchange(first)), reasons.REPLAY)
    assert detail["field"] == "counter"
    assert pump.therapy.program["basal_ug_per_day"] == 420
    # A frame of an earlier session fails its MAC in the next one.
    client.login()
    nak(client.response(C.PROGRAM_CONTINUOUS, client.exchange(first)), reasons.BAD_MAC)


@pytest.mark.req("SR-31")
def test_a_retried_bolus_is_answered_again_but_delivered_once(client, pump):
    client.login()
    client.call(C.PROGRAM_CONTINUOUS, {"basal_ug_per_day": 400, "confirm": False})
    data = client.request(C.CLINICIAN_BOLUS, {"dose_ug": 50, "duration_ms": 30 * MIN,
                                              "confirm": False})
    first = client.exchange(data)                           # the response is "lost"
    again = client.exchange(data)                           # the programmer resends
    assert again == first
    assert client.response(C.CLINICIAN_BOLUS, again)[0] == 0
    boluses = [r for r in pump.persist.log_read(1, 10000) if r[2] == eventlog.BOLUS_START]
    assert len(boluses) == 1


def test_a_lost_auth_answer_is_answered_again_until_the_first_command(client, pump):
    cn = bytes([7] * 16)
    key = KEYS["clinician"]
    status, opened = client.plain(C.SESSION_OPEN, {"role": CLINICIAN, "cn": cn})
    auth = client.frame(C.SESSION_AUTH, C.encode_request(C.SESSION_AUTH, {
        "session_id": opened["session_id"],
        "proof": session.client_proof(key, opened["pn"], cn, CLINICIAN)}))
    first = client.exchange(auth)                           # the answer is "lost"
    assert client.exchange(auth) == first                   # the resend: the same answer
    assert len(auth_events(pump)) == 1                      # authenticated once
    client.key = session.session_key(key, opened["pn"], cn, CLINICIAN)
    client.counter = 0
    assert client.call(C.INTERROGATE)[0] == 0
    # The session's first command shows the programmer heard it: no more answers to that frame.
    again = decode_one(client.exchange(auth))
    assert C.decode_response(C.SESSION_AUTH, again[4])[0] == reasons.NOT_AUTHENTICATED


def test_session_ends_after_ten_idle_minutes_and_on_close(client, pump):
    client.login()
    pump.sched.run_until(pump.sched.now_ms() + SESSION_IDLE_MS + 1)
    nak(client.call(C.INTERROGATE), reasons.NOT_AUTHENTICATED)
    client.login()
    assert client.call(C.SESSION_CLOSE)[0] == 0
    nak(client.call(C.INTERROGATE), reasons.NOT_AUTHENTICATED)


def test_read_log_pages_through_everything(client, pump):
    pump.program_continuous(400)
    pump.sched.run_until(3 * MS_PER_DAY)
    client.login()
    seen = []
    start = 1
    while True:
        status, page = client.call(C.READ_LOG, {"start_seq": start, "max_entries": 5})
        assert status == 0
        if not page["entries"]:
            break
        seen.extend(e["seq"] for e in page["entries"])
        start = page["next_seq"]
    assert seen == list(range(1, pump.log.next_seq))


def test_limits_clock_alarm_volume_and_refill_round_trip(client, pump):
    client.login()
    status, lim = client.call(C.READ_LIMITS)
    assert status == 0 and lim["daily_dose_hard_ug"] == 2000
    new = dict(lim, daily_dose_soft_ug=700)
    status, reply = client.call(C.SET_LIMITS, new)
    assert status == 0 and pump.limits["daily_dose_soft_ug"] == 700
    status, reply = client.call(C.SET_CLOCK, {"wall_ms": 1767600000000})
    assert status == 0 and pump.wall_ms() == 1767600000000
    status, reply = client.call(C.SET_LOW_RESERVOIR_ALARM, {"volume_nl": 3000000})
    assert status == 0 and reply["old_volume_nl"] == 2000000
    status, reply = client.call(C.REFILL, {"volume_nl": 18000000, "concentration_ug_per_ml": 2000,
                                           "bridge": False})
    assert status == 0 and reply["new_estimate_nl"] == 18000000
    tones = dict(pump.board.annunciator.counts)
    assert client.call(C.ALARM_TEST)[0] == 0
    assert pump.board.annunciator.counts[1] > tones[1] and pump.board.annunciator.counts[2] > tones[2]


@pytest.mark.req("SR-03")
def test_a_halted_pump_refuses_therapy_commands_until_refilled(client, pump):
    client.login()
    client.call(C.REFILL, {"volume_nl": 1000000, "concentration_ug_per_ml": 2000,
                           "bridge": False})
    pump.board.reservoir.refill(1000000, 2000)
    client.call(C.PROGRAM_CONTINUOUS, {"basal_ug_per_day": 500, "confirm": False})
    pump.sched.run_until(5 * MS_PER_DAY)
    client.login()
    status, info = client.call(C.INTERROGATE)
    assert info["therapy"] == "reservoir_empty" and "reservoir_empty" in info["alarms"]
    nak(client.call(C.CLINICIAN_BOLUS, {"dose_ug": 50, "duration_ms": 30 * MIN,
                                        "confirm": False}), reasons.THERAPY_HALTED)
    nak(client.call(C.CLEAR_ALARM), reasons.REFILL_FIRST)
    assert client.call(C.REFILL, {"volume_nl": 20000000, "concentration_ug_per_ml": 2000,
                                  "bridge": False})[0] == 0
    assert client.call(C.INTERROGATE)[1]["therapy"] == "infusing"
