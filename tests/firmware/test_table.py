"""The state table (firmware/table.py) is total, reachable, names real things, and every row does
what it says when firmware/machine.py interprets it."""

import pytest

from firmware import table
from firmware.errors import FirmwareError
from firmware.machine import OK, Machine
from protocol import reasons

REGIONS = table.REGIONS
REGION_BY_NAME = dict((r[0], r) for r in REGIONS)


def _keyed(rows):
    # (state, trigger) -> [(index in expanded order, dest, guard, action)], in table order.
    keyed = {}
    for i, (source, trigger, dest, guard, action) in enumerate(table.expand(rows)):
        keyed.setdefault((source, trigger), []).append((i, dest, guard, action))
    return keyed


def _alphabet(rows):
    seen = []
    for row in table.expand(rows):
        if row[1] not in seen:
            seen.append(row[1])
    return seen


def _all_rows():
    for region, states, initial, rows in REGIONS:
        for i, row in enumerate(table.expand(rows)):
            yield region, i, row


def _names(kind):
    # kind 3: guards, 4: actions (method names, not "!reason" refusals)
    names = set()
    for region, i, row in _all_rows():
        name = row[kind]
        if name is not None and not name.startswith("!"):
            names.add(name)
    return sorted(names)


@pytest.mark.parametrize("region", [r[0] for r in REGIONS])
def test_states_are_declared(region):
    _, states, initial, rows = REGION_BY_NAME[region]
    assert len(set(states)) == len(states), "duplicate state in %s" % region
    assert initial in states
    for source, trigger, dest, guard, action in table.expand(rows):
        assert source in states, "%s: row source %r is not a state" % (region, source)
        assert dest is None or dest in states, "%s: row dest %r is not a state" % (region, dest)


@pytest.mark.req("SR-28")
@pytest.mark.parametrize("region", [r[0] for r in REGIONS])
def test_every_state_and_trigger_has_a_defined_outcome(region):
    # Totality: every (state, trigger of this region's alphabet) has rows, and the last one is
    # unguarded, so whatever the guards say some row applies.
    _, states, initial, rows = REGION_BY_NAME[region]
    keyed = _keyed(rows)
    missing = [(region, s, t) for s in states for t in _alphabet(rows) if (s, t) not in keyed]
    assert not missing, "no row for (region, state, trigger): %s" % missing
    open_ended = [(region, s, t) for (s, t), entries in sorted(keyed.items())
                  if entries[-1][2] is not None]
    assert not open_ended, "rows end with a guarded row (no fallback): %s" % open_ended


@pytest.mark.parametrize("region", [r[0] for r in REGIONS])
def test_no_row_is_shadowed(region):
    # A row after an unguarded row, or repeating an earlier row's guard, can never be chosen.
    _, states, initial, rows = REGION_BY_NAME[region]
    dead = []
    for (s, t), entries in sorted(_keyed(rows).items()):
        seen_guards = set()
        for n, (i, dest, guard, action) in enumerate(entries):
            if n and (entries[n - 1][2] is None or guard in seen_guards):
                dead.append((region, s, t, dest, guard, action))
            seen_guards.add(guard)
    assert not dead, "rows that can never be chosen: %s" % dead


@pytest.mark.parametrize("region", [r[0] for r in REGIONS])
def test_every_state_is_reachable(region):
    _, states, initial, rows = REGION_BY_NAME[region]
    edges = {}
    for source, trigger, dest, guard, action in table.expand(rows):
        if dest is not None:
            edges.setdefault(source, set()).add(dest)
    reached = {initial}
    frontier = [initial]
    while frontier:
        for dest in edges.get(frontier.pop(), ()):
            if dest not in reached:
                reached.add(dest)
                frontier.append(dest)
    unreachable = [s for s in states if s not in reached]
    assert not unreachable, "%s: unreachable from %s: %s" % (region, initial, unreachable)


def test_refusals_name_known_reasons():
    known = set(reasons.TEXT.values())
    unknown = sorted(set(row[4][1:] for region, i, row in _all_rows()
                         if row[4] is not None and row[4].startswith("!")) - known)
    assert not unknown, "refusal reasons not in protocol/reasons.py: %s" % unknown
    for region, i, row in _all_rows():
        if row[4] is not None and row[4].startswith("!"):
            assert reasons.code(row[4][1:]) != OK


# Events the pump raises itself (timers, the doser, housekeeping, a failed commit) rather than a
# request: the machine queues some of them (post) and nobody would hear a refusal.
INTERNAL_TRIGGERS = ("bolus_done", "lockout_done", "reservoir_level", "reservoir_empty",
                     "motor_stall", "battery_level", "battery_eos", "fault")


@pytest.mark.req("SR-28")
def test_internal_events_are_never_refused():
    import inspect
    from firmware import battery, bolus, pump, reservoir, therapy
    source = "".join(inspect.getsource(m) for m in (pump, therapy, bolus, reservoir, battery))
    for trigger in INTERNAL_TRIGGERS:
        assert ('post("%s")' % trigger in source) or ('event("%s")' % trigger in source) or \
            ('dispatch("%s")' % trigger in source), trigger
    for region, i, (state, trigger, dest, guard, action) in _all_rows():
        if trigger in INTERNAL_TRIGGERS:
            assert not (action and action.startswith("!")), \
                "%s row %d refuses the internal event %s in %s" % (region, i, trigger, state)


def test_guards_and_actions_are_pump_methods():
    try:
        from firmware.pump import Pump
    except ImportError as err:
        pytest.skip("firmware.pump cannot be imported yet (%s): guard/action names unchecked"
                    % err)
    from hal.sim import SimBoard
    pump = Pump(SimBoard())
    missing = []
    for name in _names(3) + _names(4):
        try:
            if not callable(table.bound(pump, name)):
                missing.append(name)
        except AttributeError:
            missing.append(name)
    assert not missing, "the table names methods the pump's parts do not define: %s" % missing


def test_an_unknown_trigger_is_an_error():
    machine = Machine(ScriptedContext())
    with pytest.raises(FirmwareError, match="unknown event"):
        machine.dispatch("no_such_event")


# ---------------------------------------------------------------- every row, one at a time


class ScriptedContext(object):
    """Has every guard and action the table names.  Guards answer from `guards` (name -> bool,
    default False); actions record (name, arg) in `calls` and return `results.get(name)`."""

    def __init__(self, guards=None, results=None):
        self.guards = dict(guards or {})
        self.results = dict(results or {})
        self.calls = []
        self.changes = []
        for name in _names(3):
            self._put(name, self._guard(name))
        for name in _names(4):
            self._put(name, self._action(name))

    def _put(self, name, method):
        # Table names are "part.method": the method goes on the context's part.
        part, method_name = name.split(".")
        if not hasattr(self, part):
            setattr(self, part, type("Part", (object,), {})())
        setattr(getattr(self, part), method_name, method)

    def _guard(self, name):
        def guard(arg):
            self.calls.append(("guard", name, arg))
            return self.guards.get(name, False)
        return guard

    def _action(self, name):
        def action(arg):
            self.calls.append(("action", name, arg))
            return self.results.get(name)
        return action

    def on_state_change(self, region, source, dest, trigger):
        self.changes.append((region, source, dest, trigger))


def _row_ids():
    ids = []
    for region, i, (source, trigger, dest, guard, action) in _all_rows():
        ids.append("%s-%d-%s-%s" % (region, i, source, trigger))
    return ids


def _setup(region, index):
    # A single-region firmware machine (so the row is the only thing the trigger does) in the
    # row's source state, with guards set so that this row is the first whose guard passes.
    spec = REGION_BY_NAME[region]
    rows = list(table.expand(spec[3]))
    source, trigger, dest, guard, action = rows[index]
    earlier = [r[3] for r in rows[:index] if r[0] == source and r[1] == trigger]
    assert None not in earlier and guard not in earlier, "row is shadowed by an earlier row"
    guards = dict((name, name not in earlier) for name in _names(3))
    context = ScriptedContext(guards)
    machine = Machine(context, regions=(spec,))
    machine.states[region] = source
    return machine, context, rows[index]


@pytest.mark.parametrize("region,index", [(r, i) for r, i, row in _all_rows()], ids=_row_ids())
def test_row_is_exercised(region, index):
    machine, context, (source, trigger, dest, guard, action) = _setup(region, index)
    arg = object()
    outcome = machine.dispatch(trigger, arg)

    actions = [c for c in context.calls if c[0] == "action"]
    if action is not None and action.startswith("!"):
        assert outcome == reasons.code(action[1:])
        assert machine.states[region] == source
        assert actions == [] and context.changes == []
        return
    assert outcome == OK
    assert actions == ([("action", action, arg)] if action is not None else [])
    if guard is not None:
        assert ("guard", guard, arg) in context.calls
    expected = source if dest is None else dest
    assert machine.states[region] == expected
    if dest is not None:
        # A state change, or a self-transition (dest is the source): the hook logs it.
        assert context.changes == [(region, source, dest, trigger)]
    else:
        assert context.changes == []


@pytest.mark.parametrize(
    "region,index",
    [(r, i) for r, i, row in _all_rows() if row[4] is not None and not row[4].startswith("!")],
    ids=[i for i, (r, n, row) in zip(_row_ids(), _all_rows())
         if row[4] is not None and not row[4].startswith("!")])
def test_row_action_can_refuse(region, index):
    # An action that returns a reason refuses: the reason comes back and the state stays.
    machine, context, (source, trigger, dest, guard, action) = _setup(region, index)
    context.results[action] = reasons.STATE_DOES_NOT_ALLOW
    assert machine.dispatch(trigger, None) == reasons.STATE_DOES_NOT_ALLOW
    assert machine.states[region] == source
    assert context.changes == []
