# Session authentication (docs/protocol.md, "Sessions and authentication").
#
#   hmac_sha256(key, msg)                   RFC 2104 over hashlib.sha256 (MicroPython has no hmac)
#   compare(a, b)                           equality whose time does not depend on where a and b
#                                           differ (proofs and MACs)
#   client_proof(K, pn, cn, role)           HMAC(K, "vpump-auth" || pn || cn || role)[:16]
#   pump_proof(K, cn, pn, role)             HMAC(K, "vpump-pump" || cn || pn || role)[:16]
#   session_key(K, pn, cn, role)            HMAC(K, "vpump-key" || pn || cn || role)
#   wrap_request(S, ver, seq, cmd, counter, body)       counter u32 || body || mac (8)
#   wrap_response(S, ver, seq, resp_cmd, counter, body) the same with "R"; resp_cmd = cmd | 0x80
#   unwrap(payload) -> (counter, body, mac), or None when shorter than counter + mac
#   mac(S, signed) -> the MAC of "R"/"Q" || VER || SEQ || CMD || counter || body, laid out
#   verify_request(S, ver, seq, cmd, counter, body, mac) -> bool
#   verify_response(S, ver, seq, resp_cmd, counter, body, mac) -> bool
#
# mac = HMAC(S, "Q" || VER || SEQ || CMD || counter || body)[:8] for requests, "R" for
# responses: the direction byte keeps a response from being replayed as a request.
# K is the role's 32-byte key, S the session key; nonces are 16 bytes; role is 1 or 2.

import hashlib
import struct

from protocol import reasons
from protocol.errors import ProtocolError

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

ROLE_CLINICIAN = const(1)
ROLE_PATIENT = const(2)
ROLES = {ROLE_CLINICIAN: "clinician", ROLE_PATIENT: "patient"}

NONCE_SIZE = const(16)
PROOF_SIZE = const(16)
MAC_SIZE = const(8)
COUNTER_SIZE = const(4)
OVERHEAD = const(12)            # counter + mac around a command payload

_BLOCK = const(64)

_sha256 = hashlib.sha256
_pack = struct.pack


# XOR of every byte with 0x36 / 0x5C as translate() tables where bytes has translate()
# (CPython: the pads in C, a third of an HMAC's time otherwise); MicroPython XORs byte by byte.
if hasattr(bytes, "translate"):
    _IPAD = bytes(b ^ 0x36 for b in range(256))
    _OPAD = bytes(b ^ 0x5C for b in range(256))

    def _pads(key):
        key = bytes(key) + bytes(_BLOCK - len(key))
        return key.translate(_IPAD), key.translate(_OPAD)
else:
    def _pads(key):
        # Two buffers and nothing else: a board's heap sees 128 bytes per HMAC, not a dozen
        # temporaries (copies, the zero padding, generators).
        n = len(key)
        ipad = bytearray(_BLOCK)
        opad = bytearray(_BLOCK)
        for i in range(_BLOCK):
            b = key[i] if i < n else 0
            ipad[i] = b ^ 0x36
            opad[i] = b ^ 0x5C
        return ipad, opad


def hmac_sha256(key, msg):
    if len(key) > _BLOCK:
        key = _sha256(key).digest()
    # MicroPython's sha256 has no copy(), so nothing can be kept from one call to the next
    # except the padded key; it is cheap enough to redo.
    ipad, opad = _pads(key)
    inner = _sha256(ipad)
    inner.update(msg)
    outer = _sha256(opad)
    outer.update(inner.digest())
    return outer.digest()


class HmacKey:
    """A key prepared once for many HMACs (a session key: two per frame).  Where the hash
    object can be copied (CPython) the padded key's hash states are kept and copied, which
    halves the work; MicroPython's sha256 cannot be, so there it keeps the pads only.
    Accepted wherever a MAC key is (wrap_*, verify_*)."""

    def __init__(self, key):
        if len(key) > _BLOCK:
            key = _sha256(key).digest()
        self._ipad, self._opad = _pads(key)
        inner = _sha256(self._ipad)
        self._copy = hasattr(inner, "copy")
        if self._copy:
            self._inner = inner
            self._outer = _sha256(self._opad)

    def digest(self, msg):
        if self._copy:
            inner = self._inner.copy()
            inner.update(msg)
            outer = self._outer.copy()
        else:
            inner = _sha256(self._ipad)
            inner.update(msg)
            outer = _sha256(self._opad)
        outer.update(inner.digest())
        return outer.digest()


def _hmac(key, msg):
    if isinstance(key, HmacKey):
        return key.digest(msg)
    return hmac_sha256(key, msg)


def _compare_loop(a, b):
    # Lengths are public (a MAC is always 8 bytes): only the contents must not leak timing.
    if len(a) != len(b):
        return False
    diff = 0
    for i in range(len(a)):
        diff |= a[i] ^ b[i]
    return diff == 0


# CPython's hmac.compare_digest does the same in C.  MicroPython's hmac, where a port ships
# micropython-lib's, has no compare_digest: it is not imported there (told apart as above, by
# bytes.translate), so that its code does not sit in the heap for nothing (the WebAssembly port
# keeps ~430 bytes of it).
_compare_digest = None
if hasattr(bytes, "translate"):
    try:
        from hmac import compare_digest as _compare_digest
    except ImportError:
        pass


def compare(a, b):
    if _compare_digest is not None:
        return _compare_digest(bytes(a), bytes(b))
    return _compare_loop(a, b)


def _check(pn, cn, role):
    if len(pn) != NONCE_SIZE or len(cn) != NONCE_SIZE:
        bad = "pn" if len(pn) != NONCE_SIZE else "cn"
        n = len(pn) if bad == "pn" else len(cn)
        raise ProtocolError(reasons.OUT_OF_RANGE,
                            "%s: %d bytes; a nonce has %d bytes" % (bad, n, NONCE_SIZE),
                            bad, n, NONCE_SIZE, NONCE_SIZE)
    if role not in ROLES:
        raise ProtocolError(reasons.OUT_OF_RANGE,
                            "role %r is out of range; allowed: 1 (clinician), 2 (patient)"
                            % (role,), "role", role, 1, 2)
    return bytes((role,))


def client_proof(key, pn, cn, role):
    r = _check(pn, cn, role)
    return hmac_sha256(key, b"vpump-auth" + pn + cn + r)[:PROOF_SIZE]


def pump_proof(key, cn, pn, role):
    r = _check(pn, cn, role)
    return hmac_sha256(key, b"vpump-pump" + cn + pn + r)[:PROOF_SIZE]


def session_key(key, pn, cn, role):
    r = _check(pn, cn, role)
    return hmac_sha256(key, b"vpump-key" + pn + cn + r)


def _mac(direction, key, version, seq, cmd, counter, body):
    if not (0 <= version <= 255 and 0 <= seq <= 255 and 0 <= cmd <= 255
            and 0 <= counter <= 0xFFFFFFFF):
        for name, value, hi in (("version", version, 255), ("seq", seq, 255), ("cmd", cmd, 255),
                                ("counter", counter, 0xFFFFFFFF)):
            if not 0 <= value <= hi:
                raise ProtocolError(reasons.OUT_OF_RANGE,
                                    "%s %d is out of range; allowed: 0..%d" % (name, value, hi),
                                    name, value, 0, hi)
    return _hmac(key, direction + _pack(">BBBI", version, seq, cmd, counter) + body)[:MAC_SIZE]


def mac(key, signed):
    # The MAC of a message already laid out as _mac() lays it out (direction, VER, SEQ, CMD,
    # counter, body): the pump signs its answers in the frame's own buffer (firmware/telemetry.py).
    return _hmac(key, signed)[:MAC_SIZE]


def unwrap(payload):
    n = len(payload)
    if n < OVERHEAD:
        return None
    return (struct.unpack_from(">I", payload, 0)[0], payload[COUNTER_SIZE:n - MAC_SIZE],
            payload[n - MAC_SIZE:])


def verify_request(key, version, seq, cmd, counter, body, mac):
    return compare(_mac(b"Q", key, version, seq, cmd, counter, body), mac)


# The programmer's half (wrap a request, verify an answer; the pump builds its answers in place:
# firmware/telemetry.py) is in protocol/session_host.py: a board's .mpy bundle leaves it out
# (tools/flash.py skips imports guarded by ImportError).
try:
    from protocol.session_host import wrap_request, wrap_response, verify_response  # noqa: F401
except ImportError:
    pass
