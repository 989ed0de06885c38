"""protocol/reasons.py names the reason codes; protocol/reason_texts.py says what each means for
the person holding the programmer, and is left out of a board's bundle (tools/flash.py)."""

import sys

from protocol import reasons
from protocol.reason_texts import DESCRIPTIONS


def test_every_reason_has_words():
    assert sorted(DESCRIPTIONS) == sorted(reasons.TEXT.values())
    assert reasons.describe(reasons.BAD_CRC) == "frame CRC did not match; resend"
    assert reasons.describe(200) == "unknown reason 200"


def test_without_the_words_the_name_stands_in(monkeypatch):
    # What a board does: the module is not there, so importing it raises ImportError.
    monkeypatch.setitem(sys.modules, "protocol.reason_texts", None)
    assert reasons.describe(reasons.OVER_HARD_LIMIT) == "over hard limit"
    assert reasons.describe(200) == "unknown reason 200"
    assert reasons.name(reasons.OVER_HARD_LIMIT) == "over_hard_limit"
