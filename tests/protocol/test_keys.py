# Key files: parse/format round trip, generation, and errors that name the field.
import json
import os
import random

import pytest

from protocol import keygen, keys

CLIN = bytes(range(32))
PAT = bytes(range(32, 64))
GOOD = {"serial": "VP-0001", "clinician": CLIN, "patient": PAT}


def test_round_trip():
    text = keygen.format_keys(GOOD)
    assert keys.parse_keys(text) == GOOD
    assert text.endswith("}\n")
    data = json.loads(text)
    assert data == {"serial": "VP-0001", "clinician": CLIN.hex(), "patient": PAT.hex()}
    assert list(data) == ["serial", "clinician", "patient"]


def test_parse_accepts_upper_case_hex_and_extra_fields():
    text = json.dumps({"serial": "X", "clinician": CLIN.hex().upper(), "patient": PAT.hex(),
                       "comment": "bench pump"})
    assert keys.parse_keys(text) == {"serial": "X", "clinician": CLIN, "patient": PAT}


def test_generate():
    rng = random.Random(1)
    k = keygen.generate_keys(lambda n: bytes(rng.randrange(256) for _ in range(n)), "VP-0042")
    assert k["serial"] == "VP-0042"
    assert len(k["clinician"]) == len(k["patient"]) == 32
    assert k["clinician"] != k["patient"]
    assert keys.parse_keys(keygen.format_keys(k)) == k
    assert keygen.generate_keys(os.urandom, "VP-1")["clinician"] != k["clinician"]


def test_generate_refuses_a_broken_random_source():
    with pytest.raises(ValueError, match="same key twice"):
        keygen.generate_keys(lambda n: bytes(n), "VP-1")
    with pytest.raises(ValueError, match="16 bytes"):
        keygen.generate_keys(lambda n: bytes(16), "VP-1")


def dump(**changes):
    data = {"serial": "VP-0001", "clinician": CLIN.hex(), "patient": PAT.hex()}
    for k, v in changes.items():
        if v is None:
            del data[k]
        else:
            data[k] = v
    return json.dumps(data)


@pytest.mark.parametrize("text,field,hint", [
    (dump(clinician=None), "clinician", "missing"),
    (dump(patient=None), "patient", "missing"),
    (dump(serial=None), "serial", "1 to 16"),
    (dump(clinician=CLIN.hex()[:-2]), "clinician", "62 characters"),
    (dump(patient=PAT.hex() + "00"), "patient", "66 characters"),
    (dump(patient="zz" * 32), "patient", "not hexadecimal"),
    (dump(clinician=12), "clinician", "64 hex digits"),
    (dump(serial=""), "serial", "1 to 16"),
    (dump(serial="x" * 17), "serial", "1 to 16"),
    (dump(serial="tab\there"), "serial", "printable ASCII"),
    (dump(serial=7), "serial", "1 to 16"),
    (dump(patient=CLIN.hex()), "patient", "same key as clinician"),
])
def test_errors_name_the_field(text, field, hint):
    with pytest.raises(ValueError) as info:
        keys.parse_keys(text)
    msg = str(info.value)
    assert field in msg and hint in msg
    assert "64 hex" in msg or field == "serial" or "same key" in msg


@pytest.mark.parametrize("text", ["", "not json", "[1, 2]", "\"x\""])
def test_not_a_key_file(text):
    with pytest.raises(ValueError) as info:
        keys.parse_keys(text)
    assert "key file" in str(info.value)


def test_format_refuses_bad_keys():
    with pytest.raises(ValueError, match="clinician"):
        keygen.format_keys(dict(GOOD, clinician=b"short"))
    with pytest.raises(ValueError, match="patient"):
        keygen.format_keys(dict(GOOD, patient=CLIN))
    with pytest.raises(ValueError, match="serial"):
        keygen.format_keys(dict(GOOD, serial=""))
