# The programmer's half of session authentication (protocol/session.py, which imports it under
# an ImportError guard so that a board's .mpy bundle leaves it out): wrap a request in its
# counter and MAC, verify an answer's MAC; and wrap_response, the answer as the pump sends it
# (the pump itself builds it in place: firmware/telemetry.py).  Callers use these names through
# protocol.session.  Portable all the same (the tests' programmer runs on MicroPython too).

from protocol import session

_pack = session._pack


def wrap_request(key, version, seq, cmd, counter, body):
    mac = session._mac(b"Q", key, version, seq, cmd, counter, body)     # checks the ranges first
    return _pack(">I", counter) + body + mac


def wrap_response(key, version, seq, resp_cmd, counter, body):
    mac = session._mac(b"R", key, version, seq, resp_cmd, counter, body)
    return _pack(">I", counter) + body + mac


def verify_response(key, version, seq, resp_cmd, counter, body, mac):
    return session.compare(session._mac(b"R", key, version, seq, resp_cmd, counter, body), mac)
