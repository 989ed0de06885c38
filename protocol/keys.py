# Pump key files (docs/protocol.md, "Sessions and authentication"): JSON
#
#   {"serial": "VP-0001", "clinician": "<64 hex digits>", "patient": "<64 hex digits>"}
#
#   parse_keys(text) -> {"serial": str, "clinician": 32 bytes, "patient": 32 bytes}
#   format_keys(keys) -> the JSON text (one field a line, newline at the end)
#   generate_keys(random_bytes, serial) -> keys, with random_bytes(n) -> n random bytes (pass
#                                          os.urandom on a host, the board's RNG on a pump)
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


def format_keys(keys):
    # By hand, not json.dumps(indent=...): MicroPython's json has no indent.
    serial = _check_serial(keys.get("serial"), "")
    lines = ["{", "  \"serial\": %s," % json.dumps(serial)]
    for role in ROLES:
        key = keys.get(role)
        if not isinstance(key, (bytes, bytearray)) or len(key) != KEY_SIZE:
            raise ValueError("%s: give a %d-byte key" % (role, KEY_SIZE))
        lines.append("  \"%s\": \"%s\"%s" % (role, binascii.hexlify(key).decode(),
                                             "," if role != ROLES[-1] else ""))
    _check_distinct(keys["clinician"], keys["patient"], "")
    lines.append("}")
    return "\n".join(lines) + "\n"


def generate_keys(random_bytes, serial):
    _check_serial(serial, "")
    keys = {"serial": serial}
    for role in ROLES:
        key = bytes(random_bytes(KEY_SIZE))
        if len(key) != KEY_SIZE:
            raise ValueError("random source gave %d bytes for the %s key; %d are needed"
                             % (len(key), role, KEY_SIZE))
        keys[role] = key
    if keys["clinician"] == keys["patient"]:
        raise ValueError("random source gave the same key twice: it is not random")
    return keys
