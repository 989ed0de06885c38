"""Findings 1-4 and 7 of the security review (docs/threat-model.md), each as the attack that
worked against the old firmware: battery drain, the auth lockout as a denial of service, failed
logins evicting therapy history, one frame ending anyone's session, predictable nonces."""

from firmware import eventlog
from firmware.pump import Pump
from firmware.telemetry import SESSION_IDLE_MS, Telemetry
from hal.sim import SimBoard
from protocol import commands as C
from protocol import frame, reasons, session
from tests.firmware.test_telemetry import (  # noqa: F401  (pump is a fixture)
    CLINICIAN, KEYS, PATIENT, Client, auth_events, decode_one, nak, pump)

MIN = 60000


def attacker_open(tel, role=CLINICIAN, seq=1):
    data = frame.encode(seq, C.SESSION_OPEN, C.encode_request(
        C.SESSION_OPEN, {"role": role, "cn": bytes(16)}))
    return C.decode_response(C.SESSION_OPEN, decode_one(tel.handle(decode_one(data)))[4])


def attacker_auth(tel, sid, seq=2):
    data = frame.encode(seq, C.SESSION_AUTH, C.encode_request(
        C.SESSION_AUTH, {"session_id": sid, "proof": bytes(16)}))
    return C.decode_response(C.SESSION_AUTH, decode_one(tel.handle(decode_one(data)))[4])


def test_unauthenticated_opens_and_wrong_proofs_cost_no_session_charge(pump):
    # Finding 1: every accepted SESSION_OPEN charged a whole session (50,000 nAh): about 30,000
    # frames ran the cell to end of service.
    tel = Telemetry(pump, None, KEYS)
    before = pump.battery.used_nah()
    for i in range(3000):
        status, opened = attacker_open(tel, seq=i & 0xFF)
        assert status == 0
        nak(attacker_auth(tel, opened["session_id"]), reasons.BAD_MAC)
    assert pump.battery.used_nah() == before
    client = Client(tel)
    assert client.login()[0] == 0                   # a real session is charged, once
    assert pump.battery.used_nah() == before + pump.model["telemetry_session_nah"]


def test_wrong_proofs_never_keep_the_clinician_out(pump):
    # Finding 2: ten wrong proofs every 10 min kept the clinician out of 120 of 120 logins.
    tel = Telemetry(pump, None, KEYS)
    clinician = Client(tel)
    for _ in range(12):
        for _ in range(10):
            status, opened = attacker_open(tel)
            nak(attacker_auth(tel, opened["session_id"]), reasons.BAD_MAC)
        assert clinician.login()[0] == 0
        assert clinician.call(C.INTERROGATE)[0] == 0
        pump.sched.run_until(pump.sched.now_ms() + 10 * MIN)


def test_failed_logins_never_evict_therapy_history(pump):
    # Finding 3: 1,455 failures left the 896-entry log holding nothing else.
    tel = Telemetry(pump, None, KEYS)
    first_seq = pump.persist.log_read(1, 10000)[0][0]
    assert pump.program_continuous(400) == reasons.OK
    for i in range(1455):
        status, opened = attacker_open(tel, seq=i & 0xFF)
        attacker_auth(tel, opened["session_id"])
    log = pump.persist.log_read(1, 10000)
    assert log[0][0] == first_seq                   # nothing evicted
    assert any(code == eventlog.PROGRAM for _, _, code, _ in log)
    failed = [args for args in auth_events(pump) if args[1] == 0]
    assert [args[2] for args in failed] == [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]


def test_an_open_does_not_end_a_running_session(pump):
    # Finding 4a: a SESSION_OPEN for role clinician ended the clinician's session, silently.
    tel = Telemetry(pump, None, KEYS)
    clinician = Client(tel)
    assert clinician.login()[0] == 0
    for _ in range(10):
        assert attacker_open(tel)[0] == 0
    assert clinician.call(C.INTERROGATE)[0] == 0
    # A patient's session likewise survives a clinician-role OPEN that never authenticates.
    pump.sched.run_until(pump.sched.now_ms() + SESSION_IDLE_MS + 1)
    patient = Client(tel)
    assert patient.login(PATIENT)[0] == 0
    assert attacker_open(tel)[0] == 0
    assert patient.call(C.INTERROGATE)[0] == 0


def test_a_wrong_session_id_does_not_spoil_a_pending_challenge(pump):
    # Finding 4b: a SESSION_AUTH with a wrong session id threw the clinician's challenge away.
    tel = Telemetry(pump, None, KEYS)
    client = Client(tel)
    cn = bytes([7] * 16)
    status, opened = client.plain(C.SESSION_OPEN, {"role": CLINICIAN, "cn": cn})
    nak(attacker_auth(tel, opened["session_id"] ^ 1), reasons.NOT_AUTHENTICATED)
    proof = session.client_proof(KEYS["clinician"], opened["pn"], cn, CLINICIAN)
    status, _ = client.plain(C.SESSION_AUTH, {"session_id": opened["session_id"],
                                              "proof": proof})
    assert status == 0


def test_every_session_end_is_logged_with_its_cause(pump):
    tel = Telemetry(pump, None, KEYS)
    a, b = Client(tel), Client(tel)
    assert a.login()[0] == 0
    assert b.login()[0] == 0                        # replaces a's session: logged
    assert b.call(C.SESSION_CLOSE)[0] == 0          # closed
    assert a.login()[0] == 0
    pump.sched.run_until(pump.sched.now_ms() + SESSION_IDLE_MS + 1)
    tel.link = _Quiet()
    tel.poll()                                      # idle: noticed without any frame
    ends = [args for _, _, code, args in pump.persist.log_read(1, 10000)
            if code == eventlog.SESSION_END]
    assert ends == [(CLINICIAN, 2, 1), (CLINICIAN, 0, 1), (CLINICIAN, 1, 1)]
    from sim.events import decode
    last = [r for r in pump.persist.log_read(1, 10000) if r[2] == eventlog.SESSION_END][-1]
    assert decode(*last)["cause"] == "idle"


class _Quiet:
    def read(self, n):
        return b""


def _pump_on(board):
    p = Pump(board)
    p.boot()
    return p


def test_nonces_come_from_os_urandom_not_the_seeded_board(pump):
    # Finding 7: nonces came from the board's seeded xorshift: the same seed, the same nonces.
    pns = []
    for _ in range(2):
        p = _pump_on(SimBoard(seed=5))
        pns.append(attacker_open(Telemetry(p, None, KEYS))[1]["pn"])
    assert pns[0] != pns[1]


def test_a_recorded_session_is_useless_after_a_restart_even_with_seeded_nonces():
    board = SimBoard(seed=5)
    p = _pump_on(board)
    tel = Telemetry(p, None, KEYS, nonce=SimBoard(seed=9).rng.random_bytes)
    client = Client(tel)
    assert client.login()[0] == 0
    assert client.call(C.STOP)[0] in (0, reasons.STATE_DOES_NOT_ALLOW, reasons.NO_PROGRAM)
    recorded = list(client.sent)
    # The same flash, restarted, the same deterministic nonce source from the start.
    again = SimBoard(seed=5)
    again.storage.mem[:] = board.storage.mem
    p2 = _pump_on(again)
    assert p2.boot_count == p.boot_count + 1
    tel2 = Telemetry(p2, None, KEYS, nonce=SimBoard(seed=9).rng.random_bytes)
    answers = [decode_one(tel2.handle(decode_one(data))) for data in recorded]
    statuses = [a[4][0] for a in answers]
    assert statuses[0] == 0                         # the OPEN is answered (a new challenge)
    assert statuses[1] == reasons.BAD_MAC           # the recorded proof fits the old one only
    assert all(s == reasons.NOT_AUTHENTICATED for s in statuses[2:])
