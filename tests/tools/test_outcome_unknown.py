"""Finding 5, the programmer's half: a `program` the programmer reported as a link failure was
carried out.  Now a command that changes the pump and gets no answer is "outcome unknown" (never
"failed"), and resend() settles it through the pump's cached answer, without doing it twice."""

import pytest

from firmware import eventlog
from protocol import commands as C
from protocol import frame
from protocol.client import Programmer
from protocol.client_errors import LinkFailure, OutcomeUnknown, ProgrammerError
from sim.links import LoopPair, Manipulator
from tests.tools.test_prog import KEYS, MIN, PumpThread


def losing(cmd, count):
    # A Manipulator fn that drops the pump's first `count` answers to cmd.
    lost = []

    def fn(direction, data):
        for item in frame.Decoder().feed(data):
            if item[3] == cmd | frame.RESPONSE and len(lost) < count:
                lost.append(data)
                return None
        return data
    return fn, lost


def test_a_lost_answer_is_outcome_unknown_and_resend_settles_it_without_a_second_bolus():
    pair = LoopPair()
    fn, lost = losing(C.CLINICIAN_BOLUS, 2)
    server = PumpThread(Manipulator(pair.pump_end, fn=fn), basal=100)
    try:
        with Programmer(pair.programmer_end, key=KEYS["clinician"], timeout_s=0.2,
                        retries=1) as p:
            with pytest.raises(OutcomeUnknown) as unknown:
                p.clinician_bolus(50, 30 * MIN)
            text = str(unknown.value)
            assert text.startswith("outcome unknown: CLINICIAN_BOLUS was sent")
            assert "may or may not have done it" in text and "failed" not in text
            assert isinstance(unknown.value, LinkFailure)        # exit status 1 as before
            assert p.outcome_unknown == "CLINICIAN_BOLUS"
            assert len(server.named("bolus_start")) == 1         # the pump did it
            assert p.resend() == {"dose_ug": 50, "duration_ms": 30 * MIN}   # its cached answer
            assert p.outcome_unknown is None
            with pytest.raises(ProgrammerError):
                p.resend()                                       # nothing left to settle
    finally:
        server.stop()
        pair.close()
    assert len(lost) == 2
    assert len(server.named("bolus_start")) == 1                 # and not twice


def test_a_lost_request_is_also_outcome_unknown_and_resend_does_it_once():
    pair = LoopPair()
    dropped = []

    def lose_requests(direction, data):
        for item in frame.Decoder().feed(data):
            if item[3] == C.PROGRAM_CONTINUOUS and len(dropped) < 2:
                dropped.append(data)
                return None
        return data
    end = Manipulator(pair.programmer_end, fn=lose_requests)
    server = PumpThread(pair.pump_end)
    try:
        with Programmer(end, key=KEYS["clinician"], timeout_s=0.2, retries=1) as p:
            with pytest.raises(OutcomeUnknown):
                p.program_continuous(300)
            assert server.pump.therapy.program is None                   # it really was not done
            assert p.resend()["new_daily_ug"] == 300
    finally:
        server.stop()
        pair.close()
    assert server.named("program") and len(server.named("program")) == 1


def test_read_only_commands_are_a_plain_link_failure():
    pair = LoopPair()
    fn, lost = losing(C.INTERROGATE, 5)
    server = PumpThread(Manipulator(pair.pump_end, fn=fn))
    try:
        with Programmer(pair.programmer_end, key=KEYS["clinician"], timeout_s=0.1,
                        retries=1) as p:
            with pytest.raises(LinkFailure) as failure:
                p.interrogate()
            assert not isinstance(failure.value, OutcomeUnknown)
    finally:
        server.stop()
        pair.close()
