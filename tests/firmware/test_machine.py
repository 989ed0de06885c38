"""firmware/machine.py's own errors: a broken table is caught loudly, never silently ignored.
(Every row of the real table is exercised in test_table.py and against an oracle in
test_oracle.py.)"""

import pytest

from firmware.errors import FirmwareError
from firmware.machine import OK, Machine
from protocol import reasons


class Part(object):
    def __init__(self, **guards):
        self.calls = []
        self.guards = guards

    def ok(self, arg):
        return self.guards.get("ok", True)

    def act(self, arg):
        self.calls.append(arg)


class Context(object):
    # The table names "part.method": here one part, p.
    def __init__(self, **guards):
        self.p = Part(**guards)
        self.calls = self.p.calls


def region(rows, states=("a", "b")):
    return (("r", states, states[0], rows),)


def test_a_name_the_context_lacks_is_an_error_at_construction():
    with pytest.raises(FirmwareError, match="names 'p.missing'"):
        Machine(Context(), regions=region((("a", "go", "b", "p.missing", None),)))
    with pytest.raises(FirmwareError, match="names 'p.nope'"):
        Machine(Context(), regions=region((("a", "go", "b", None, "p.nope"),)))


def test_an_unknown_refusal_reason_is_an_error_at_construction():
    with pytest.raises(KeyError):
        Machine(Context(), regions=region((("a", "go", None, None, "!no_such_reason"),)))


def test_a_state_without_a_row_for_a_known_trigger_is_an_error():
    m = Machine(Context(), regions=region((("a", "go", "b", None, "p.act"),)))
    assert m.dispatch("go", 1) == OK and m.states["r"] == "b"
    with pytest.raises(FirmwareError, match=r"no row for \(r, b, go\)"):
        m.dispatch("go")


def test_every_guard_failing_is_an_error():
    m = Machine(Context(ok=False), regions=region((("a", "go", "b", "p.ok", "p.act"),)))
    with pytest.raises(FirmwareError, match="every guard failed"):
        m.dispatch("go")


def test_rows_with_tuples_of_sources_and_triggers_and_refusals():
    rows = ((("a", "b"), ("go", "run"), None, None, "p.act"),
            ("a", "stop", None, None, "!therapy_halted"))
    context = Context()
    m = Machine(context, regions=region(rows))
    assert m.dispatch("run", 5) == OK and context.calls == [5]
    assert m.dispatch("stop") == reasons.code("therapy_halted")
    assert m.triggers() == ["go", "run", "stop"]
    with pytest.raises(FirmwareError, match="unknown event 'fly'; the table knows go, run, stop"):
        m.dispatch("fly")
