"""Security measurements for the benchmarks (helpers; bench/run.py turns them into figures).

fuzz(frames, seed)            `vpump serve` on socket://127.0.0.1:0 in a subprocess, tools/fuzz.py
                              against it: (frames/s, findings, summary)
unauth_flood_battery_days(hours)
                              the firmware's battery count after `hours` of pump time under a
                              flood of unauthenticated frames at the full rate of a 9600-baud
                              link, against the same pump left alone; the difference as days of
                              that pump's own consumption, scaled to a 24 h flood
clinician_lockout_max_s()     the longest a clinician with the right key waits, in pump seconds,
                              while an attacker without it does its worst (four strategies)
"""

import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from firmware.pump import MODEL, Pump  # noqa: E402
from firmware.telemetry import Telemetry  # noqa: E402
from hal.sim import SimBoard  # noqa: E402
from protocol import commands as C  # noqa: E402
from protocol import frame, session  # noqa: E402

KEYS = {"serial": "VP-BENCH1", "clinician": bytes(range(32)), "patient": bytes(range(32, 64))}
BAUD = 9600
_BYTE_MS = 10000.0 / BAUD          # 8N1: 10 bits a byte, in ms
MS_PER_HOUR = 3600000


# -- fuzzing --------------------------------------------------------------------------------

def fuzz(frames, seed=1):
    from hal.serial_link import SerialLink
    from protocol.keygen import format_keys
    from tools.fuzz import Fuzzer
    vpump = os.path.join(os.path.dirname(sys.executable), "vpump")
    with tempfile.TemporaryDirectory() as tmp:
        keys = os.path.join(tmp, "keys.json")
        with open(keys, "w", encoding="utf-8") as f:
            f.write(format_keys(KEYS))
        server = subprocess.Popen([vpump, "serve", "--link", "socket://127.0.0.1:0",
                                   "--keys", keys], stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, text=True)
        try:
            url = server.stdout.readline().split(": ", 1)[1].strip()
            link = SerialLink(url)
            try:
                summary = Fuzzer(link, KEYS, seed,
                                 findings_dir=os.path.join(tmp, "findings")).run(frames)
            finally:
                link.close()
        finally:
            server.terminate()
            server.communicate(timeout=60)
    findings = summary["crashes"] + summary["hangs"] + summary["unauthorised_changes"]
    return summary["frames_per_s"], findings, summary


# -- battery --------------------------------------------------------------------------------

def _pump():
    m = MODEL
    board = SimBoard(stroke_nl=m["stroke_nl"], battery_capacity_nah=m["battery_capacity_nah"],
                     battery_quiescent_na=m["quiescent_na"],
                     stroke_charge_nah=m["stroke_charge_nah"])
    board.reservoir.refill(20000000, 2000)
    pump = Pump(board)
    pump.boot()
    pump.refill(20000000, 2000)
    pump.program_continuous(500)
    return pump


def _attack_frames(seq, sid):
    # What an attacker without a key can make the pump do: an OPEN (a challenge), a wrong proof
    # for that challenge, an authenticated command without a session.
    yield frame.encode(seq, C.SESSION_OPEN, C.encode_request(
        C.SESSION_OPEN, {"role": 1, "cn": bytes(16)}))
    yield frame.encode(seq, C.SESSION_AUTH, C.encode_request(
        C.SESSION_AUTH, {"session_id": sid, "proof": bytes(16)}))
    yield frame.encode(seq, C.PROGRAM_CONTINUOUS, bytes(20))


def unauth_flood_battery_days(hours):
    """(days of service a 24 h flood costs, frames sent in `hours`, detail)."""
    flooded, quiet = _pump(), _pump()
    tel = Telemetry(flooded, None, KEYS)
    decoder = frame.Decoder()
    end = hours * MS_PER_HOUR
    t = 0.0
    frames = 0
    sid = 0
    while t < end:
        for data in _attack_frames(frames & 0xFF, sid):
            answer = tel.handle(decoder.feed(data)[0])
            if data[6] == C.SESSION_OPEN:
                status, fields = C.decode_response(C.SESSION_OPEN,
                                                   frame.Decoder().feed(answer)[0][4])
                sid = fields["session_id"] if status == 0 else 0
            # The link is busy with the request and its answer: the next frame comes after.
            t += (len(data) + len(answer)) * _BYTE_MS
            frames += 1
            flooded.sched.run_until(int(t))
    quiet.sched.run_until(int(t))
    extra = flooded.battery.used_nah() - quiet.battery.used_nah()
    day = _pump()                   # a day of service: the same pump, one day, left alone
    used = day.battery.used_nah()
    day.sched.run_until(24 * MS_PER_HOUR)
    per_day = day.battery.used_nah() - used
    days = extra / per_day * (24.0 * MS_PER_HOUR / t)
    return days, frames, ("%d unauthenticated frames in %.2f h of pump time at %d baud (%.0f an "
                          "hour, request and answer back to back); %d nAh more than the same "
                          "pump left alone, whose own use is %.0f nAh a day"
                          % (frames, t / MS_PER_HOUR, BAUD, frames * MS_PER_HOUR / t, extra,
                             per_day))


# -- clinician lockout ----------------------------------------------------------------------

class _Party:
    # One side of the link in pump time: frames go through Telemetry.handle.
    def __init__(self, tel, key=None, role=1):
        self.tel = tel
        self.key = key
        self.role = role
        self.seq = 0

    def send(self, cmd, fields):
        self.seq = (self.seq + 1) & 0xFF
        data = frame.encode(self.seq, cmd, C.encode_request(cmd, fields))
        answer = self.tel.handle(frame.Decoder().feed(data)[0])
        return C.decode_response(cmd, frame.Decoder().feed(answer)[0][4])


def _clinician_login(pump, tel, attacker_between):
    # A clinician's OPEN, the attacker's frames that fit in its round trip, then its proof.
    clinician = _Party(tel, KEYS["clinician"])
    cn = bytes(range(16))
    status, opened = clinician.send(C.SESSION_OPEN, {"role": 1, "cn": cn})
    if status:
        return False
    attacker_between()
    proof = session.client_proof(KEYS["clinician"], opened["pn"], cn, 1)
    status, _ = clinician.send(C.SESSION_AUTH, {"session_id": opened["session_id"],
                                                "proof": proof})
    return status == 0


def clinician_lockout_max_s():
    """(longest wait in pump seconds over the strategies, {strategy: wait})."""
    waits = {}
    for name, strategy in _STRATEGIES:
        pump = _pump()
        tel = Telemetry(pump, None, KEYS)
        attacker = _Party(tel)
        start = pump.sched.now_ms()
        # The clinician tries every 10 s of pump time for up to an hour; the attacker acts
        # before each try and inside the clinician's round trip.
        waited = None
        for attempt in range(360):
            strategy(attacker, pump)
            if _clinician_login(pump, tel, lambda: strategy(attacker, pump)):
                waited = (pump.sched.now_ms() - start) / 1000.0
                break
            pump.sched.run_until(pump.sched.now_ms() + 10000)
        waits[name] = waited if waited is not None else 3600.0
    return max(waits.values()), waits


def _wrong_proofs(attacker, pump):
    # Ten wrong proofs, each for a real challenge (the old firmware locked both roles at five).
    for _ in range(10):
        status, opened = attacker.send(C.SESSION_OPEN, {"role": 1, "cn": bytes(16)})
        if status == 0:
            attacker.send(C.SESSION_AUTH, {"session_id": opened["session_id"],
                                           "proof": bytes(16)})


def _open_flood(attacker, pump):
    # Clinician-role OPENs as fast as the link allows within a round trip (about 3 at 9600).
    for _ in range(3):
        attacker.send(C.SESSION_OPEN, {"role": 1, "cn": bytes(16)})


def _wrong_session_ids(attacker, pump):
    for sid in range(0, 1 << 32, 1 << 28):
        attacker.send(C.SESSION_AUTH, {"session_id": sid, "proof": bytes(16)})


def _patient_session(attacker, pump):
    # Someone with the patient key holds a patient session open.
    patient = _Party(attacker.tel)
    cn = bytes(16)
    status, opened = patient.send(C.SESSION_OPEN, {"role": 2, "cn": cn})
    if status == 0:
        proof = session.client_proof(KEYS["patient"], opened["pn"], cn, 2)
        patient.send(C.SESSION_AUTH, {"session_id": opened["session_id"], "proof": proof})


_STRATEGIES = (("wrong_proofs", _wrong_proofs), ("open_flood", _open_flood),
               ("wrong_session_ids", _wrong_session_ids),
               ("patient_key_session", _patient_session))
