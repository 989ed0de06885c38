# Pump key files (docs/protocol.md, "Sessions and authentication"): JSON
#
#   {"serial": "VP-0001", "clinician": "<64 hex digits>", "patient": "<64 hex digits>"}
#
#   parse_keys(text) -> {"serial": str, "clinician": 32 bytes, "patient": 32 bytes}
#
# Writing and generating key files (format_keys, generate_keys) is in protocol/keygen.py: the
# host does it (vpump serve, vpump flash), so a board's bundle carries only the reading.
#
# A bad file raises ValueError naming the field and what is allowed: this is configuration
# read by people, not protocol data.  The two keys must differ: the proof covers the role byte,
# but with one key for both a patient could compute the clinician's proof.

import binascii
import json

KEY_SIZE = 32
SERIAL_MAX = 16                 # IDENTIFY carries the serial in 16 bytes
ROLES = ("clinician", "patient")


def _check_serial(serial, where):
    if not isinstance(serial, str) or not 1 <= len(serial) <= SERIAL_MAX:
        raise ValueError("%sserial %s: give 1 to %d printable ASCII characters"
                         % (where, json.dumps(serial) if isinstance(serial, str) else repr(serial),
                            SERIAL_MAX))
    for ch in serial:
        if not " " <= ch <= "~":
            raise ValueError("%sserial %s: give 1 to %d printable ASCII characters"
                             % (where, json.dumps(serial), SERIAL_MAX))
    return serial


def _check_distinct(clinician, patient, where):
    if clinician == patient:
        raise ValueError("%spatient: the same key as clinician; each role needs its own key"
                         % where)


def parse_keys(text):
    where = "key file: "
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ValueError("%snot JSON (%s); expected {\"serial\": ..., \"clinician\": "
                         "\"<64 hex>\", \"patient\": \"<64 hex>\"}" % (where, exc))
    if not isinstance(data, dict):
        raise ValueError("%sexpected a JSON object with serial, clinician and patient" % where)
    keys = {"serial": _check_serial(data.get("serial"), where)}
    for role in ROLES:
        raw = data.get(role)
        if not isinstance(raw, str) or len(raw) != 2 * KEY_SIZE:
            shown = json.dumps(raw) if isinstance(raw, str) else ("missing" if raw is None
                                                                  else repr(raw))
            if isinstance(raw, str):
                shown = "%d characters" % len(raw)
            raise ValueError("%s%s: %s; give %d hex digits (a %d-byte key)"
                             % (where, role, shown, 2 * KEY_SIZE, KEY_SIZE))
        try:
            keys[role] = binascii.unhexlify(raw)
        except ValueError:      # binascii.Error on CPython is a ValueError
            raise ValueError("%s%s: not hexadecimal; give %d hex digits 0-9 a-f (a %d-byte key)"
                             % (where, role, 2 * KEY_SIZE, KEY_SIZE))
    _check_distinct(keys["clinician"], keys["patient"], where)
    return keys
