# Command codecs: every command round-trips, hand-checked byte vectors, sizes, NAKs, errors.
import os
import struct

import pytest
from hypothesis import given, settings, strategies as st

from protocol import commands as C
from protocol import fields as F
from protocol import frame, reasons, session
from protocol.errors import ProtocolError

SETTINGS = settings(derandomize=True, database=None, deadline=None, max_examples=100)

LIMITS = {"daily_dose_soft_ug": 1000, "daily_dose_hard_ug": 1500, "bolus_soft_ug": 100,
          "bolus_hard_ug": 200, "rate_increase_soft_pct": 30, "rate_increase_hard_pct": 100,
          "concentration_ug_per_ml": 2000}
FLEX_WEEK = [[[0, 400], [420, 600], [1320, 300]] for _ in range(5)] + [[[0, 450]], [[0, 450]]]

# code -> (request fields, response fields), as the pump and a programmer would use them.
SAMPLES = {
    C.IDENTIFY: ({}, {"model": "vpump-ib20", "serial": "VP-0001", "firmware_version": "0.1.0",
                      "protocol_version": 1}),
    C.SESSION_OPEN: ({"role": 1, "cn": bytes(range(16))},
                     {"pn": bytes(range(16, 32)), "session_id": 0xDEADBEEF}),
    C.SESSION_AUTH: ({"session_id": 0xDEADBEEF, "proof": b"\x5a" * 16}, {"proof": b"\xa5" * 16}),
    C.SESSION_CLOSE: ({}, {}),
    C.INTERROGATE: ({}, {
        "therapy": "lockout", "reservoir": "low_reservoir", "battery": "elective_replacement",
        "therapy_on": True, "mode": "continuous", "basal_ug_per_day": 450,
        "reservoir_nl": 1800000, "concentration_ug_per_ml": 2000,
        "low_reservoir_alarm_nl": 2000000, "hours_to_alarm": 0, "hours_to_empty": 192,
        "battery_remaining_nah": 3200000000000, "battery_mv": 2950, "days_to_replacement": -1,
        "alarms": ["low_reservoir", "elective_replacement"], "lockout_until_ms": 1700000900000,
        "delivered_ug": 123456789, "wall_ms": 1700000000000, "boot_count": 4}),
    C.READ_LOG: ({"start_seq": 100, "max_entries": 3},
                 {"next_seq": 103, "entries": [
                     {"seq": 100, "t_ms": 1700000000000, "code": 2, "args": [0, 1, 2, 5]},
                     {"seq": 101, "t_ms": 1700000001000, "code": 11, "args": [16, 0, -7, 0]},
                     {"seq": 102, "t_ms": 1700000002000, "code": 17, "args": [1, 1, 0, 0]}]}),
    C.READ_LIMITS: ({}, LIMITS),
    C.SET_LIMITS: (dict(LIMITS, concentration_ug_per_ml=0),
                   {"old": LIMITS, "new": dict(LIMITS, bolus_soft_ug=120)}),
    C.PROGRAM_CONTINUOUS: ({"basal_ug_per_day": 500, "confirm": False},
                           {"old_daily_ug": 450, "new_daily_ug": 500}),
    C.PROGRAM_FLEX: ({"confirm": True, "steps": FLEX_WEEK},
                     {"old_daily_ug": 500, "new_daily_ug": 476}),
    C.CLINICIAN_BOLUS: ({"dose_ug": 50, "duration_ms": 1800000, "confirm": False},
                        {"dose_ug": 50, "duration_ms": 1800000}),
    C.PATIENT_BOLUS: ({}, {"dose_ug": 25, "lockout_until_ms": 1700003600000}),
    C.SET_PATIENT_BOLUS: ({"enabled": True, "dose_ug": 25, "duration_ms": 600000,
                           "lockout_ms": 3600000, "max_per_24h": 4, "confirm": True},
                          {"old_enabled": False, "old_dose_ug": 0}),
    C.REFILL: ({"volume_nl": 20000000, "concentration_ug_per_ml": 2000, "bridge": True},
               {"old_estimate_nl": 1500000, "new_estimate_nl": 20000000}),
    C.STOP: ({}, {}),
    C.START: ({}, {}),
    C.SET_CLOCK: ({"wall_ms": 1700000000000}, {"old_wall_ms": 1699999990000}),
    C.SILENCE_ALARMS: ({"minutes": 60}, {"silenced": 1}),
    C.CLEAR_ALARM: ({}, {}),
    C.ALARM_TEST: ({}, {}),
    C.SET_LOW_RESERVOIR_ALARM: ({"volume_nl": 2500000}, {"old_volume_nl": 2000000}),
}

ALL = sorted(C.COMMANDS)


def ids(code):
    return C.COMMANDS[code].name


def decoded_response(fields):
    # What decode gives back for what was encoded: INTERROGATE also reports the raw alarm bits.
    out = dict(fields)
    if "alarms" in out:
        bits = 0
        for name in out["alarms"]:
            bits |= 1 << C.ALARMS.index(name)
        out["alarm_bits"] = bits
    return out


# --- registry -------------------------------------------------------------------------------

def test_codes_and_names():
    expected = {
        "identify": 0x01, "session_open": 0x02, "session_auth": 0x03, "session_close": 0x04,
        "interrogate": 0x10, "read_log": 0x11, "read_limits": 0x12, "set_limits": 0x13,
        "program_continuous": 0x20, "program_flex": 0x21, "clinician_bolus": 0x22,
        "patient_bolus": 0x23, "set_patient_bolus": 0x24, "refill": 0x25, "stop": 0x26,
        "start": 0x27, "set_clock": 0x28, "silence_alarms": 0x29, "clear_alarm": 0x2A,
        "alarm_test": 0x2B, "set_low_reservoir_alarm": 0x2C,
    }
    assert dict((c.name, code) for code, c in C.COMMANDS.items()) == expected
    for name, code in expected.items():
        assert getattr(C, name.upper()) == code
        assert C.COMMANDS[code].code == code
        assert C.by_name(name) == code
        assert C.by_name(name.upper().replace("_", "-")) == code


def test_auth_and_roles():
    open_to_anyone = {C.IDENTIFY, C.SESSION_OPEN, C.SESSION_AUTH}
    patient = {C.INTERROGATE, C.PATIENT_BOLUS, C.SILENCE_ALARMS, C.SESSION_CLOSE} | open_to_anyone
    for code, c in C.COMMANDS.items():
        assert c.auth == (code not in open_to_anyone), c
        assert c.patient == (code in patient), c
        assert code < frame.RESPONSE


def test_every_command_has_a_sample():
    assert sorted(SAMPLES) == ALL


def test_state_lists_match_the_firmware():
    from firmware import alarms
    from firmware.table import STATES as states

    assert list(C.THERAPY_STATES) == states["therapy"]
    assert list(C.RESERVOIR_STATES) == states["reservoir"]
    assert list(C.BATTERY_STATES) == states["battery"]
    assert C.ALARMS == alarms.NAMES
    assert len(C.ALARMS) <= 16      # a u16 bit set on the wire


def test_limits_match_the_firmware():
    from firmware import limits
    assert C.LIMITS[:-1] == limits.LIMIT_KEYS
    assert C.LIMITS[-1] == "concentration_ug_per_ml"


# --- round trips ----------------------------------------------------------------------------

@pytest.mark.parametrize("code", ALL, ids=ids)
def test_request_round_trip(code):
    request, _ = SAMPLES[code]
    body = C.encode_request(code, request)
    assert type(body) is bytes
    assert C.decode_request(code, body) == request
    assert len(body) <= C.COMMANDS[code].request.max_size


@pytest.mark.parametrize("code", ALL, ids=ids)
def test_response_round_trip(code):
    _, response = SAMPLES[code]
    body = C.encode_ack(code, response)
    assert body[0] == 0
    assert len(body) - 1 <= C.COMMANDS[code].response.max_size
    status, got = C.decode_response(code, body)
    assert status == 0
    assert got == decoded_response(response)
    # The response frame's CMD (bit 7 set) is accepted as well.
    assert C.decode_response(code | frame.RESPONSE, body) == (0, got)
    # What decode gives can be sent again unchanged.
    assert C.encode_ack(code, got) == body


@pytest.mark.parametrize("code", ALL, ids=ids)
def test_largest_payload_fits_a_frame_with_session_overhead(code):
    c = C.COMMANDS[code]
    assert c.request.max_size + session.OVERHEAD <= frame.MAX_PAYLOAD
    assert 1 + c.response.max_size + session.OVERHEAD <= frame.MAX_PAYLOAD


@pytest.mark.parametrize("code", ALL, ids=ids)
def test_wrapped_in_a_session_and_a_frame(code):
    request, response = SAMPLES[code]
    key = bytes(range(32))
    payload = session.wrap_request(key, 1, 7, code, 1, C.encode_request(code, request))
    (item,) = frame.Decoder().feed(frame.encode(7, code, payload))
    counter, body, mac = session.unwrap(item[4])
    assert session.verify_request(key, 1, 7, code, counter, body, mac)
    assert C.decode_request(code, body) == request
    resp = session.wrap_response(key, 1, 7, code | 0x80, 1, C.encode_ack(code, response))
    counter, body, mac = session.unwrap(resp)
    assert session.verify_response(key, 1, 7, code | 0x80, counter, body, mac)
    assert C.decode_response(code, body) == (0, decoded_response(response))


def test_defaults_for_confirm_and_bridge():
    assert C.decode_request(C.PROGRAM_CONTINUOUS, C.encode_request(
        C.PROGRAM_CONTINUOUS, {"basal_ug_per_day": 10}))["confirm"] is False
    assert C.decode_request(C.REFILL, C.encode_request(
        C.REFILL, {"volume_nl": 1, "concentration_ug_per_ml": 2}))["bridge"] is False
    limits = dict(LIMITS)
    del limits["concentration_ug_per_ml"]
    assert C.decode_request(C.SET_LIMITS, C.encode_request(C.SET_LIMITS, limits))[
        "concentration_ug_per_ml"] == 0


def test_alternative_input_forms():
    # The pump side may pass indices and raw bits; decode always gives names.
    base = dict(SAMPLES[C.INTERROGATE][1])
    del base["alarms"]
    by_index = dict(base, therapy=3, reservoir=1, battery=1, mode=1, alarm_bits=0b11)
    assert C.encode_ack(C.INTERROGATE, by_index) == C.encode_ack(
        C.INTERROGATE, SAMPLES[C.INTERROGATE][1])
    ident = dict(SAMPLES[C.IDENTIFY][1], firmware_version=(0, 1, 0))
    assert C.encode_ack(C.IDENTIFY, ident) == C.encode_ack(C.IDENTIFY, SAMPLES[C.IDENTIFY][1])
    assert C.encode_request(C.SESSION_OPEN, {"role": "patient", "cn": bytes(16)}) == \
        C.encode_request(C.SESSION_OPEN, {"role": 2, "cn": bytes(16)})
    # Keys a command does not use are ignored (a status dict can be passed whole).
    assert C.encode_request(C.STOP, {"anything": 1}) == b""


def test_unknown_state_and_alarm_indices_get_names():
    body = bytearray(C.encode_ack(C.INTERROGATE, SAMPLES[C.INTERROGATE][1]))
    body[1] = 9                                    # therapy state index 9
    struct.pack_into(">H", body, 1 + 5 + 16 + 8 + 8 + 2 + 4, 0x8001)     # alarm bits 0, 15
    _, got = C.decode_response(C.INTERROGATE, bytes(body))
    assert got["therapy"] == "therapy_9"
    assert got["alarms"] == ["low_reservoir", "alarm_15"]
    assert got["alarm_bits"] == 0x8001


# --- byte vectors (checked by hand against docs/protocol.md) ----------------------------------

VECTORS = [
    (C.PROGRAM_CONTINUOUS, "request", {"basal_ug_per_day": 500, "confirm": True},
     "000001f4 01"),
    (C.SESSION_OPEN, "request", {"role": 1, "cn": bytes(range(16))},
     "01 000102030405060708090a0b0c0d0e0f"),
    (C.READ_LOG, "request", {"start_seq": 7, "max_entries": 32}, "00000007 20"),
    (C.CLINICIAN_BOLUS, "request", {"dose_ug": 50, "duration_ms": 60000, "confirm": False},
     "00000032 0000ea60 00"),
    (C.SET_PATIENT_BOLUS, "request", {"enabled": True, "dose_ug": 25, "duration_ms": 600000,
                                      "lockout_ms": 3600000, "max_per_24h": 4, "confirm": False},
     "01 00000019 000927c0 0036ee80 04 00"),
    (C.SILENCE_ALARMS, "request", {"minutes": 90}, "005a"),
    (C.PROGRAM_FLEX, "request", {"confirm": False, "steps": [[[0, 480]]] * 7},
     "00" + " 01 0000 000001e0" * 7),
    (C.IDENTIFY, "response", {"model": "vpump-ib20", "serial": "VP-0001",
                              "firmware_version": "1.2.3", "protocol_version": 1},
     "00 7670756d702d69623230 000000000000 56502d30303031 000000000000000000 010203 01"),
    (C.SET_CLOCK, "response", {"old_wall_ms": 1700000000000}, "00 0000018bcfe56800"),
    (C.PATIENT_BOLUS, "response", {"dose_ug": 25, "lockout_until_ms": 0},
     "00 00000019 0000000000000000"),
    (C.READ_LOG, "response",
     {"next_seq": 6, "entries": [{"seq": 5, "t_ms": 1000, "code": 8, "args": [3, -1]}]},
     "00 01 00000006 00000005 00000000000003e8 08 00000003 ffffffff 00000000 00000000"),
    (C.INTERROGATE, "response", {
        "therapy": "infusing", "reservoir": "reservoir_ok", "battery": "battery_ok",
        "therapy_on": True, "mode": "continuous", "basal_ug_per_day": 500,
        "reservoir_nl": 20000000, "concentration_ug_per_ml": 2000,
        "low_reservoir_alarm_nl": 2000000, "hours_to_alarm": -1, "hours_to_empty": 960,
        "battery_remaining_nah": 1, "battery_mv": 3000, "days_to_replacement": 2000,
        "alarms": ["reservoir_empty"], "lockout_until_ms": 0, "delivered_ug": 2,
        "wall_ms": 3, "boot_count": 1},
     "00 01 00 00 01 01 000001f4 01312d00 000007d0 001e8480 ffffffff 000003c0"
     " 0000000000000001 0bb8 000007d0 0004 0000000000000000 0000000000000002"
     " 0000000000000003 0001"),
]


@pytest.mark.parametrize("code,part,fields,hexbytes", VECTORS,
                         ids=["%s-%s" % (C.COMMANDS[v[0]].name, v[1]) for v in VECTORS])
def test_byte_vectors(code, part, fields, hexbytes):
    expected = bytes.fromhex(hexbytes.replace(" ", ""))
    if part == "request":
        assert C.encode_request(code, fields) == expected
        assert C.encode_request(code, C.decode_request(code, expected)) == expected
    else:
        assert C.encode_ack(code, fields) == expected
        status, got = C.decode_response(code, expected)
        assert status == 0 and C.encode_ack(code, got) == expected


def test_nak_byte_vector():
    nak = C.encode_nak(reasons.OUT_OF_RANGE, "basal_ug_per_day", 5000, 0, 3000)
    assert nak == bytes.fromhex("10 01 0000000000001388 0000000000000000 0000000000000bb8"
                                .replace(" ", ""))
    assert len(nak) == C.NAK_SIZE
    assert C.encode_nak(reasons.BAD_CRC) == b"\x01" + bytes(25)
    assert C.encode_nak(reasons.REPLAY, "counter", -1)[2:10] == b"\xff" * 8


# --- NAKs -----------------------------------------------------------------------------------

@pytest.mark.parametrize("reason", sorted(r for r in reasons.TEXT if r != reasons.OK))
def test_nak_round_trip_every_reason(reason):
    nak = C.encode_nak(reason, "bolus_dose_ug", 300, 1, 200)
    status, info = C.decode_response(C.CLINICIAN_BOLUS, nak)
    assert status == reason
    assert info == {"reason": reason, "reason_name": reasons.name(reason), "field": "bolus_dose_ug",
                    "value": 300, "lo": 1, "hi": 200}
    # A NAK decodes whatever the command, even one this side does not know.
    assert C.decode_response(0x7E, nak)[0] == reason


@pytest.mark.parametrize("field", F.FIELDS)
def test_nak_carries_every_field_id(field):
    _, info = C.decode_response(C.REFILL, C.encode_nak(reasons.OUT_OF_RANGE, field or None))
    assert info["field"] == (field or None)


@pytest.mark.req("SR-19")
def test_nak_never_fails_on_odd_values():
    # The pump's error path must always produce a NAK.
    nak = C.encode_nak(reasons.OUT_OF_RANGE, "no_such_field", "text", None, 1 << 70)
    _, info = C.decode_response(C.REFILL, nak)
    assert info["field"] is None
    assert (info["value"], info["lo"], info["hi"]) == (0, 0, (1 << 63) - 1)
    assert C.decode_response(C.REFILL, C.encode_nak(reasons.BUSY, None, True))[1]["value"] == 1
    assert C.decode_response(C.REFILL, C.encode_nak(reasons.BUSY, 13))[1]["field"] == \
        "flex_steps_per_day"


@pytest.mark.parametrize("reason", [0, 256, -1, None])
def test_nak_reason_must_be_a_refusal(reason):
    with pytest.raises(ProtocolError) as info:
        C.encode_nak(reason)
    assert info.value.field == "reason"


def test_unknown_reason_decodes():
    _, info = C.decode_response(C.STOP, C.encode_nak(200))
    assert info["reason_name"] == "reason_200"


def test_nak_of_wrong_size():
    for body in (b"\x10", C.encode_nak(16) + b"\x00"):
        with pytest.raises(ProtocolError) as info:
            C.decode_response(C.STOP, body)
        assert info.value.reason == reasons.BAD_LENGTH


# --- errors ---------------------------------------------------------------------------------

def fixed_size_requests():
    return [code for code in ALL if code != C.PROGRAM_FLEX]


@pytest.mark.parametrize("code", fixed_size_requests(), ids=ids)
def test_request_of_wrong_size(code):
    good = C.encode_request(code, SAMPLES[code][0])
    for body in (good + b"\x00", good[:-1] if good else None):
        if body is None:
            continue
        with pytest.raises(ProtocolError) as info:
            C.decode_request(code, body)
        e = info.value
        assert e.reason == reasons.BAD_LENGTH
        assert e.value == len(body)
        assert e.lo == e.hi == len(good)
        assert C.COMMANDS[code].name.upper() in str(e)


@pytest.mark.parametrize("code", ALL, ids=ids)
def test_response_of_wrong_size(code):
    good = C.encode_ack(code, SAMPLES[code][1])
    for body in (good + b"\x00", good[:-1] if len(good) > 1 else None):
        if body is None:
            continue
        with pytest.raises(ProtocolError) as info:
            C.decode_response(code, body)
        assert info.value.reason == reasons.BAD_LENGTH
    with pytest.raises(ProtocolError) as info:
        C.decode_response(code, b"")
    assert info.value.reason == reasons.BAD_LENGTH


def test_flex_of_wrong_size():
    good = C.encode_request(C.PROGRAM_FLEX, SAMPLES[C.PROGRAM_FLEX][0])
    for cut in range(len(good)):
        with pytest.raises(ProtocolError) as info:
            C.decode_request(C.PROGRAM_FLEX, good[:cut])
        assert info.value.reason == reasons.BAD_LENGTH, cut
    with pytest.raises(ProtocolError) as info:
        C.decode_request(C.PROGRAM_FLEX, good + b"\x00")
    assert info.value.reason == reasons.BAD_LENGTH


def test_unknown_command():
    for fn, args in ((C.decode_request, (0x05, b"")), (C.encode_request, (0x7F, {})),
                     (C.encode_ack, (0x30, {})), (C.decode_response, (0x85, b"\x00")),
                     (C.by_name, ("bolus",))):
        with pytest.raises(ProtocolError) as info:
            fn(*args)
        assert info.value.reason == reasons.UNKNOWN_COMMAND
        assert "program_continuous" in str(info.value)      # lists the known ones


@pytest.mark.parametrize("code,body,field,lo,hi", [
    (C.SESSION_OPEN, b"\x00" + bytes(16), "role", 1, 2),
    (C.SESSION_OPEN, b"\x03" + bytes(16), "role", 1, 2),
    (C.READ_LOG, b"\x00\x00\x00\x00\x00", "max_entries", 1, 32),
    (C.READ_LOG, b"\x00\x00\x00\x00\x21", "max_entries", 1, 32),
    (C.PROGRAM_CONTINUOUS, b"\x00\x00\x00\x01\x02", "confirm", 0, 1),
    (C.REFILL, bytes(8) + b"\x07", "bridge", 0, 1),
    (C.PROGRAM_FLEX, b"\x00" + b"\x00" + bytes(6 * 7), "flex_steps_per_day", 1, 13),
    (C.PROGRAM_FLEX, b"\x00" + b"\x0e" + bytes(6 * 14) + b"\x01" + bytes(6) * 6,
     "flex_steps_per_day", 1, 13),
])
def test_decode_out_of_range(code, body, field, lo, hi):
    with pytest.raises(ProtocolError) as info:
        C.decode_request(code, body)
    e = info.value
    assert e.reason == reasons.OUT_OF_RANGE
    assert (e.field, e.lo, e.hi) == (field, lo, hi)
    assert field in str(e)


@pytest.mark.parametrize("code,fields,field", [
    (C.PROGRAM_CONTINUOUS, {"basal_ug_per_day": -1}, "basal_ug_per_day"),
    (C.PROGRAM_CONTINUOUS, {"basal_ug_per_day": 1 << 32}, "basal_ug_per_day"),
    (C.PROGRAM_CONTINUOUS, {"basal_ug_per_day": "500"}, "basal_ug_per_day"),
    (C.PROGRAM_CONTINUOUS, {"basal_ug_per_day": True}, "basal_ug_per_day"),
    (C.PROGRAM_CONTINUOUS, {}, "basal_ug_per_day"),
    (C.PROGRAM_CONTINUOUS, {"basal_ug_per_day": 1, "confirm": 2}, "confirm"),
    (C.SILENCE_ALARMS, {"minutes": 65536}, "minutes"),
    (C.SESSION_OPEN, {"role": 3, "cn": bytes(16)}, "role"),
    (C.SESSION_OPEN, {"role": "nurse", "cn": bytes(16)}, "role"),
    (C.SESSION_OPEN, {"role": 1, "cn": bytes(15)}, "cn"),
    (C.READ_LOG, {"start_seq": 0, "max_entries": 33}, "max_entries"),
    (C.PROGRAM_FLEX, {"steps": FLEX_WEEK[:6]}, "flex_days"),
    (C.PROGRAM_FLEX, {"steps": [[]] * 7}, "flex_steps_per_day"),
    (C.PROGRAM_FLEX, {"steps": [[[0, 1]] * 14] * 7}, "flex_steps_per_day"),
    (C.PROGRAM_FLEX, {"steps": [[[70000, 1]]] * 7}, "flex_start_minute"),
    (C.PROGRAM_FLEX, {"steps": [[[0, -1]]] * 7}, "flex_ug_per_day"),
    (C.PROGRAM_FLEX, {"steps": [[[0]]] * 7}, "flex_start_minute"),
])
def test_encode_request_refuses(code, fields, field):
    with pytest.raises(ProtocolError) as info:
        C.encode_request(code, fields)
    assert info.value.reason == reasons.OUT_OF_RANGE
    assert info.value.field == field
    assert field in str(info.value)


@pytest.mark.parametrize("code,fields,field", [
    (C.IDENTIFY, dict(SAMPLES[C.IDENTIFY][1], model="x" * 17), "model"),
    (C.IDENTIFY, dict(SAMPLES[C.IDENTIFY][1], serial="caf\u00e9"), "serial"),
    (C.IDENTIFY, dict(SAMPLES[C.IDENTIFY][1], firmware_version="1.2"), "firmware_version"),
    (C.IDENTIFY, dict(SAMPLES[C.IDENTIFY][1], firmware_version="1.2.256"), "firmware_version"),
    (C.INTERROGATE, dict(SAMPLES[C.INTERROGATE][1], therapy="asleep"), "therapy"),
    (C.INTERROGATE, dict(SAMPLES[C.INTERROGATE][1], therapy=8), "therapy"),
    (C.INTERROGATE, dict(SAMPLES[C.INTERROGATE][1], alarms=["fire"]), "alarms"),
    (C.INTERROGATE, dict(SAMPLES[C.INTERROGATE][1], hours_to_alarm=1 << 31), "hours_to_alarm"),
    (C.READ_LOG, {"next_seq": 0, "entries": [{"seq": 0, "t_ms": 0, "code": 1}] * 33},
     "entries"),
    (C.READ_LOG, {"next_seq": 0, "entries": [{"seq": 0, "t_ms": 0, "code": 1,
                                              "args": [1, 2, 3, 4, 5]}]}, "args"),
    (C.READ_LOG, {"next_seq": 0, "entries": [{"seq": 0, "t_ms": 0, "code": 256}]}, "code"),
    (C.SET_LIMITS, {"old": LIMITS}, "new"),
])
def test_encode_ack_refuses(code, fields, field):
    with pytest.raises(ProtocolError) as info:
        C.encode_ack(code, fields)
    assert info.value.reason == reasons.OUT_OF_RANGE
    assert info.value.field == field


# --- the variable-length payloads -----------------------------------------------------------

def test_flex_13_steps_a_day_round_trips():
    week = [[[m * 100 + d, 1000 * m + d] for m in range(13)] for d in range(7)]
    body = C.encode_request(C.PROGRAM_FLEX, {"confirm": True, "steps": week})
    assert len(body) == 1 + 7 * (1 + 13 * 6) == C.COMMANDS[C.PROGRAM_FLEX].request.max_size
    assert C.decode_request(C.PROGRAM_FLEX, body) == {"confirm": True, "steps": week}
    # Lists, as firmware.limits.check_flex wants them.
    got = C.decode_request(C.PROGRAM_FLEX, body)["steps"]
    assert type(got) is list and type(got[0]) is list and type(got[0][0]) is list
    assert len(body) + session.OVERHEAD <= frame.MAX_PAYLOAD


def test_read_log_32_entries_fit():
    entries = [{"seq": 0xFFFFFFE0 + i, "t_ms": (1 << 64) - 1 - i, "code": 255,
                "args": [-(1 << 31), (1 << 31) - 1, 0, i]} for i in range(C.READ_LOG_MAX_ENTRIES)]
    body = C.encode_ack(C.READ_LOG, {"next_seq": 0xFFFFFFFF, "entries": entries})
    assert len(body) == 1 + 5 + 32 * 29
    assert len(body) + session.OVERHEAD <= frame.MAX_PAYLOAD
    assert C.decode_response(C.READ_LOG, body) == (0, {"next_seq": 0xFFFFFFFF,
                                                        "entries": entries})
    wrapped = session.wrap_response(bytes(32), 1, 1, C.READ_LOG | 0x80, 1, body)
    assert frame.Decoder().feed(frame.encode(1, C.READ_LOG | 0x80, wrapped))[0][4] == wrapped


def test_read_log_empty_and_short_args():
    body = C.encode_ack(C.READ_LOG, {"next_seq": 9, "entries": []})
    assert body == bytes.fromhex("00 00 00000009".replace(" ", ""))
    assert C.decode_response(C.READ_LOG, body) == (0, {"next_seq": 9, "entries": []})


@SETTINGS
@given(st.lists(st.lists(st.tuples(st.integers(0, 0xFFFF), st.integers(0, 0xFFFFFFFF))
                         .map(list), min_size=1, max_size=13), min_size=7, max_size=7),
       st.booleans())
def test_flex_round_trip_property(week, confirm):
    body = C.encode_request(C.PROGRAM_FLEX, {"confirm": confirm, "steps": week})
    assert C.decode_request(C.PROGRAM_FLEX, body) == {"confirm": confirm, "steps": week}


@SETTINGS
@given(st.sampled_from(ALL), st.binary(max_size=80))
def test_decoding_random_bodies_only_raises_protocol_error(code, body):
    for fn in (C.decode_request, C.decode_response):
        try:
            fn(code, body)
        except ProtocolError as e:
            assert e.reason in (reasons.BAD_LENGTH, reasons.OUT_OF_RANGE)


def test_the_programmers_half_restates_the_response_kinds():
    # protocol/commands_host.py decodes the value kinds only responses carry; MicroPython drops
    # commands.py's _-named consts, so the host module restates them: the same numbers.
    from protocol import commands_host as H
    assert (H.TEXT_KIND, H.VERSION_KIND, H.ENUM_KIND, H.BITS_KIND) == (
        C._TEXT, C._VERSION, C._ENUM, C._BITS)


def test_the_programmers_half_loads_first_too():
    # Imported before protocol.commands, it still hands its functions to commands.
    import subprocess
    import sys
    out = subprocess.run(
        [sys.executable, "-c", "import protocol.commands_host\nfrom protocol import commands\n"
         "print(commands.by_name('stop'), len(commands.encode_request(commands.STOP)))"],
        capture_output=True, text=True, timeout=60,
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    assert out.stdout.split() == [str(C.STOP), "0"], out.stderr
