# Runs on CPython and on MicroPython; tests/protocol/test_micropython.py compares the output.
# Deterministic: its own LCG, no random module.
import binascii
import hashlib

from protocol import commands as C
from protocol import frame, keygen, keys, reasons, session
from protocol.errors import ProtocolError

_x = [12345]


def rnd():
    _x[0] = (_x[0] * 1103515245 + 12345) & 0x7FFFFFFF
    return _x[0] >> 16


def canon(v):
    # repr with dict keys sorted: dict order differs between the two interpreters.
    if isinstance(v, dict):
        return "{" + ", ".join("%r: %s" % (k, canon(v[k])) for k in sorted(v)) + "}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(canon(x) for x in v) + "]"
    return repr(v)


def digest(items):
    h = hashlib.sha256()
    for item in items:
        h.update(canon(item).encode())
    return binascii.hexlify(h.digest()).decode()


# Frames: a stream of good, garbage and damaged frames in random pieces.
d = frame.Decoder()
got = []
for _ in range(300):
    parts = []
    for _ in range(rnd() % 4):
        payload = bytes(rnd() & 255 for _ in range(rnd() % 40))
        parts.append(frame.encode(rnd() & 255, rnd() & 255, payload))
        if rnd() % 3 == 0:
            parts.append(bytes(rnd() & 255 for _ in range(rnd() % 10)) + b"\xa5\x5a")
    stream = bytearray(b"".join(parts))
    if stream and rnd() % 4 == 0:
        i = rnd() % len(stream)
        stream[i] ^= 1 << (rnd() % 8)
    pos = 0
    while pos < len(stream):
        n = 1 + rnd() % 50
        got.extend(d.feed(bytes(stream[pos:pos + n])))
        pos += n
print("frames", d.frames, d.crc_errors, d.length_errors, d.dropped_bytes, d.buffered, digest(got))
print("example", binascii.hexlify(frame.encode(7, C.IDENTIFY)).decode())

# Commands: every request and response, and a NAK for every reason.
week = [[[m * 60, 100 + m] for m in range(1 + day)] for day in range(7)]
entries = [{"seq": i, "t_ms": 1700000000000 + i, "code": 2, "args": [i, -i, 0, 1]}
           for i in range(32)]
limits = {}
for i in range(len(C.LIMITS)):
    limits[C.LIMITS[i]] = 100 * (i + 1)
samples = {
    C.IDENTIFY: ({}, {"model": "vpump-ib20", "serial": "VP-1", "firmware_version": "0.1.0"}),
    C.SESSION_OPEN: ({"role": 2, "cn": b"c" * 16}, {"pn": b"p" * 16, "session_id": 7}),
    C.SESSION_AUTH: ({"session_id": 7, "proof": b"q" * 16}, {"proof": b"r" * 16}),
    C.INTERROGATE: ({}, {
        "therapy": "bolus", "reservoir": 1, "battery": "battery_ok", "therapy_on": True,
        "mode": "flex", "basal_ug_per_day": 500, "reservoir_nl": 1, "concentration_ug_per_ml": 2,
        "low_reservoir_alarm_nl": 3, "hours_to_alarm": -1, "hours_to_empty": -1,
        "battery_remaining_nah": 1 << 40, "battery_mv": 3000, "days_to_replacement": -1,
        "alarms": ["low_reservoir", "low_battery_reset"], "lockout_until_ms": 1 << 63,
        "delivered_ug": (1 << 64) - 1, "wall_ms": 1700000000000, "boot_count": 3}),
    C.READ_LOG: ({"start_seq": 0, "max_entries": 32}, {"next_seq": 32, "entries": entries}),
    C.READ_LIMITS: ({}, limits),
    C.SET_LIMITS: (limits, {"old": limits, "new": limits}),
    C.PROGRAM_CONTINUOUS: ({"basal_ug_per_day": 500, "confirm": True},
                           {"old_daily_ug": 1, "new_daily_ug": 2}),
    C.PROGRAM_FLEX: ({"confirm": False, "steps": week}, {"old_daily_ug": 1, "new_daily_ug": 2}),
    C.CLINICIAN_BOLUS: ({"dose_ug": 50, "duration_ms": 60000}, {"dose_ug": 50,
                                                                "duration_ms": 60000}),
    C.PATIENT_BOLUS: ({}, {"dose_ug": 25, "lockout_until_ms": 5}),
    C.SET_PATIENT_BOLUS: ({"enabled": True, "dose_ug": 1, "duration_ms": 2, "lockout_ms": 3,
                           "max_per_24h": 4}, {"old_enabled": False, "old_dose_ug": 0}),
    C.REFILL: ({"volume_nl": 1, "concentration_ug_per_ml": 2, "bridge": True},
               {"old_estimate_nl": 3, "new_estimate_nl": 4}),
    C.SET_CLOCK: ({"wall_ms": 1 << 41}, {"old_wall_ms": 1 << 42}),
    C.SILENCE_ALARMS: ({"minutes": 60}, {"silenced": 2}),
    C.SET_LOW_RESERVOIR_ALARM: ({"volume_nl": 9}, {"old_volume_nl": 8}),
}
out = []
for code in sorted(C.COMMANDS):
    request, response = samples.get(code, ({}, {}))
    body = C.encode_request(code, request)
    ack = C.encode_ack(code, response)
    out.append((code, body, ack, C.decode_request(code, body), C.decode_response(code, ack)))
for reason in sorted(reasons.TEXT):
    if reason:
        nak = C.encode_nak(reason, "bolus_dose_ug", -reason, 1, 1 << 62)
        info = C.decode_response(C.STOP, nak)[1]
        out.append((nak, info))
print("commands", digest(out))

# Errors: the same refusal, field and range.
errors = []
for code, body in ((C.PROGRAM_CONTINUOUS, b"\x00"), (C.SESSION_OPEN, b"\x03" + bytes(16)),
                   (C.PROGRAM_FLEX, b"\x00\x0e"), (0x7F, b""), (C.READ_LOG, bytes(5))):
    try:
        C.decode_request(code, body)
        errors.append(None)
    except ProtocolError as e:
        errors.append((e.reason, e.field, e.value, e.lo, e.hi, str(e)))
for fields in ({"dose_ug": 1 << 32, "duration_ms": 1}, {"dose_ug": True, "duration_ms": 1},
               {"duration_ms": 1}):
    try:
        C.encode_request(C.CLINICIAN_BOLUS, fields)
        errors.append(None)
    except ProtocolError as e:
        errors.append((e.reason, e.field, str(e)))
print("errors", digest(errors))

# Sessions.
k = bytes(range(32))
pn, cn = b"p" * 16, b"c" * 16
s = session.session_key(k, pn, cn, 2)
w = session.wrap_request(s, 1, 3, 0x10, 77, b"xyz")
c, b, m = session.unwrap(w)
print("session", binascii.hexlify(session.client_proof(k, pn, cn, 1)).decode(),
      binascii.hexlify(session.pump_proof(k, cn, pn, 2)).decode(), binascii.hexlify(w).decode(),
      session.verify_request(s, 1, 3, 0x10, c, b, m), session.verify_response(s, 1, 3, 0x10, c, b, m))
print("hmac", binascii.hexlify(session.hmac_sha256(b"\xaa" * 131, b"x" * 200)).decode())

# Key files.
kf = keygen.format_keys({"serial": "VP-1", "clinician": bytes(32), "patient": b"\x01" * 32})
print("keys", keys.parse_keys(kf) == {"serial": "VP-1", "clinician": bytes(32),
                                      "patient": b"\x01" * 32}, digest([kf]))
for text in ('{"serial": "x", "clinician": "zz", "patient": 1}', "[1]",
             '{"serial": "x", "clinician": "' + "g" * 64 + '"}'):
    try:
        keys.parse_keys(text)
        print("no error")
    except ValueError as e:
        print("error", str(e).split(":")[1].strip())
print("done")
