# Session authentication: HMAC against the standard library, proofs, keys, MACs.
import hashlib
import hmac
import random

import pytest
from hypothesis import given, settings, strategies as st

from protocol import reasons, session
from protocol.errors import ProtocolError

SETTINGS = settings(derandomize=True, database=None, deadline=None, max_examples=300)

K_CLIN = bytes(range(32))
K_PAT = bytes(range(32, 64))
PN = bytes(range(100, 116))
CN = bytes(range(200, 216))


def test_roles():
    assert session.ROLE_CLINICIAN == 1 and session.ROLE_PATIENT == 2
    assert session.ROLES == {1: "clinician", 2: "patient"}


# --- HMAC-SHA256 ----------------------------------------------------------------------------

# RFC 4231 test cases 1, 2 and 6 (a 131-byte key, longer than the block).
RFC4231 = [
    (b"\x0b" * 20, b"Hi There",
     "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
    (b"Jefe", b"what do ya want for nothing?",
     "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
    (b"\xaa" * 131, b"Test Using Larger Than Block-Size Key - Hash Key First",
     "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"),
]


@pytest.mark.parametrize("key,msg,expected", RFC4231)
def test_rfc4231_vectors(key, msg, expected):
    assert session.hmac_sha256(key, msg).hex() == expected


@SETTINGS
@given(st.binary(max_size=200), st.binary(max_size=300))
def test_hmac_equals_the_standard_library(key, msg):
    assert session.hmac_sha256(key, msg) == hmac.new(key, msg, hashlib.sha256).digest()


def test_hmac_around_the_block_size():
    rng = random.Random(4231)
    for n in list(range(60, 70)) + [0, 1, 31, 32, 33, 127, 128, 129, 1000]:
        key = bytes(rng.randrange(256) for _ in range(n))
        msg = bytes(rng.randrange(256) for _ in range(rng.randrange(200)))
        assert session.hmac_sha256(key, msg) == hmac.new(key, msg, hashlib.sha256).digest(), n
        assert session.hmac_sha256(bytearray(key), memoryview(msg)) == \
            hmac.new(key, msg, hashlib.sha256).digest()


def test_compare():
    assert session.compare(b"abc", b"abc")
    assert session.compare(b"", b"")
    assert not session.compare(b"abc", b"abd")
    assert not session.compare(b"abc", b"ab")
    assert session.compare(bytearray(b"\x00\xff"), memoryview(b"\x00\xff"))
    for i in range(16):
        other = bytearray(16)
        other[i] = 1
        assert not session.compare(bytes(16), bytes(other))


# --- handshake ------------------------------------------------------------------------------

def test_proofs_and_key_follow_the_doc():
    role = b"\x01"
    assert session.client_proof(K_CLIN, PN, CN, 1) == \
        hmac.new(K_CLIN, b"vpump-auth" + PN + CN + role, hashlib.sha256).digest()[:16]
    assert session.pump_proof(K_CLIN, CN, PN, 1) == \
        hmac.new(K_CLIN, b"vpump-pump" + CN + PN + role, hashlib.sha256).digest()[:16]
    assert session.session_key(K_CLIN, PN, CN, 1) == \
        hmac.new(K_CLIN, b"vpump-key" + PN + CN + role, hashlib.sha256).digest()


def test_everything_differs_by_role_nonce_and_key():
    made = set()
    for key in (K_CLIN, K_PAT):
        for role in (1, 2):
            for pn in (PN, bytes(16)):
                for cn in (CN, bytes(16)):
                    made.add(session.client_proof(key, pn, cn, role))
                    made.add(session.pump_proof(key, cn, pn, role))
                    made.add(session.session_key(key, pn, cn, role))
    assert len(made) == 2 * 2 * 2 * 2 * 3
    # The client's proof is not the pump's: a pump cannot be fooled by an echo.
    assert session.client_proof(K_CLIN, PN, CN, 1) != session.pump_proof(K_CLIN, CN, PN, 1)
    # Swapping the nonces changes the proof.
    assert session.client_proof(K_CLIN, PN, CN, 1) != session.client_proof(K_CLIN, CN, PN, 1)


def test_sizes():
    assert len(session.client_proof(K_CLIN, PN, CN, 2)) == 16
    assert len(session.pump_proof(K_CLIN, CN, PN, 2)) == 16
    assert len(session.session_key(K_CLIN, PN, CN, 2)) == 32


@pytest.mark.parametrize("pn,cn,role,field", [
    (PN[:15], CN, 1, "pn"), (PN, CN + b"x", 1, "cn"), (PN, CN, 0, "role"), (PN, CN, 3, "role"),
])
def test_bad_handshake_inputs(pn, cn, role, field):
    for fn in (session.client_proof, session.session_key):
        with pytest.raises(ProtocolError) as info:
            fn(K_CLIN, pn, cn, role)
        assert info.value.field == field
        assert info.value.reason == reasons.OUT_OF_RANGE


# --- MACs -----------------------------------------------------------------------------------

S = session.session_key(K_CLIN, PN, CN, 1)


def test_wrap_layout_and_mac_input():
    body = b"\x00\x00\x01\xf4\x00"
    payload = session.wrap_request(S, 1, 7, 0x20, 5, body)
    assert payload[:4] == b"\x00\x00\x00\x05"
    assert payload[4:-8] == body
    assert payload[-8:] == hmac.new(S, b"Q\x01\x07\x20\x00\x00\x00\x05" + body,
                                    hashlib.sha256).digest()[:8]
    resp = session.wrap_response(S, 1, 7, 0xA0, 5, b"\x00")
    assert resp[-8:] == hmac.new(S, b"R\x01\x07\xa0\x00\x00\x00\x05\x00",
                                 hashlib.sha256).digest()[:8]


@SETTINGS
@given(st.integers(0, 255), st.integers(0, 0x7F), st.integers(0, 0xFFFFFFFF),
       st.binary(max_size=100))
def test_wrap_unwrap_verify(seq, cmd, counter, body):
    payload = session.wrap_request(S, 1, seq, cmd, counter, body)
    assert len(payload) == len(body) + session.OVERHEAD
    got_counter, got_body, mac = session.unwrap(payload)
    assert (got_counter, got_body) == (counter, body)
    assert session.verify_request(S, 1, seq, cmd, got_counter, got_body, mac)
    resp = session.wrap_response(S, 1, seq, cmd | 0x80, counter, body)
    c, b, m = session.unwrap(resp)
    assert session.verify_response(S, 1, seq, cmd | 0x80, c, b, m)


def test_unwrap_too_short():
    assert session.unwrap(b"") is None
    assert session.unwrap(bytes(11)) is None
    assert session.unwrap(bytes(12)) == (0, b"", bytes(8))


def test_every_flipped_bit_fails():
    version, seq, cmd, counter, body = 1, 42, 0x22, 1000, b"\x00\x00\x00\x32\x00\x00\xea\x60\x00"
    payload = session.wrap_request(S, version, seq, cmd, counter, body)
    # In the payload: counter, body and MAC.
    for bit in range(8 * len(payload)):
        damaged = bytearray(payload)
        damaged[bit // 8] ^= 1 << (bit % 8)
        c, b, m = session.unwrap(bytes(damaged))
        assert not session.verify_request(S, version, seq, cmd, c, b, m), bit
    # In the frame header the MAC covers: version, seq, cmd.
    c, b, m = session.unwrap(payload)
    for bit in range(8):
        assert not session.verify_request(S, version ^ (1 << bit), seq, cmd, c, b, m)
        assert not session.verify_request(S, version, seq ^ (1 << bit), cmd, c, b, m)
        assert not session.verify_request(S, version, seq, cmd ^ (1 << bit), c, b, m)
    # And the key.
    for bit in range(8 * 32):
        key = bytearray(S)
        key[bit // 8] ^= 1 << (bit % 8)
        assert not session.verify_request(bytes(key), version, seq, cmd, c, b, m)
    assert session.verify_request(S, version, seq, cmd, c, b, m)


def test_response_mac_differs_from_request_mac():
    for cmd in (0x10, 0x90):
        req = session.wrap_request(S, 1, 3, cmd, 9, b"same")
        resp = session.wrap_response(S, 1, 3, cmd, 9, b"same")
        assert req[:-8] == resp[:-8]
        assert req[-8:] != resp[-8:]
        c, b, m = session.unwrap(req)
        assert not session.verify_response(S, 1, 3, cmd, c, b, m)
        c, b, m = session.unwrap(resp)
        assert not session.verify_request(S, 1, 3, cmd, c, b, m)


def test_other_session_fails():
    other = session.session_key(K_CLIN, PN, bytes(16), 1)
    c, b, m = session.unwrap(session.wrap_request(S, 1, 1, 0x10, 1, b""))
    assert not session.verify_request(other, 1, 1, 0x10, c, b, m)


@pytest.mark.parametrize("args,field", [
    ((1, 256, 0x10, 1), "seq"), ((1, 0, 0x100, 1), "cmd"), ((256, 0, 0x10, 1), "version"),
    ((1, 0, 0x10, 1 << 32), "counter"), ((1, 0, 0x10, -1), "counter"),
])
def test_wrap_refuses_out_of_range(args, field):
    with pytest.raises(ProtocolError) as info:
        session.wrap_request(S, *(args + (b"",)))
    assert info.value.field == field


def test_a_prepared_key_gives_the_same_macs_as_the_bytes():
    import random
    rng = random.Random(3)
    for size in (0, 1, 32, 64, 65, 200):
        key = bytes(rng.randrange(256) for _ in range(size))
        prepared = session.HmacKey(key)
        for n in (0, 5, 64, 300):
            msg = bytes(rng.randrange(256) for _ in range(n))
            assert prepared.digest(msg) == session.hmac_sha256(key, msg)
            assert prepared.digest(msg) == prepared.digest(msg)      # no state carried over
        body = b"\x01\x02"
        assert session.wrap_request(prepared, 1, 2, 0x10, 7, body) == \
            session.wrap_request(key, 1, 2, 0x10, 7, body)


def test_the_micropython_compare_agrees_with_the_c_one():
    for a, b in ((b"12345678", b"12345678"), (b"12345678", b"12345679"), (b"", b""),
                 (b"1234", b"12345"), (bytearray(b"ab"), b"ab")):
        assert session._compare_loop(a, b) == session.compare(a, b) == (bytes(a) == bytes(b))
