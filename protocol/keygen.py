# Writing and generating pump key files (the format: protocol/keys.py, docs/protocol.md).  The
# host's side (vpump serve, vpump flash --new-keys); portable, but not in a board's bundle, which
# only reads its keys.json.
#
#   format_keys(keys) -> the JSON text (one field a line, newline at the end)
#   generate_keys(random_bytes, serial) -> keys, with random_bytes(n) -> n random bytes (pass
#                                          os.urandom on a host, a board's RNG on a pump)

import binascii
import json

from protocol.keys import KEY_SIZE, ROLES, _check_distinct, _check_serial


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
