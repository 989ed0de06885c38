# Interpreter for firmware/table.py: run to completion, one event at a time, with a queue.
#
# dispatch(trigger, arg) handles the event in every region whose alphabet has it (table order of
# regions), then drains events that actions posted meanwhile, and returns the outcome of the
# event it was given: OK, or the reason code of a refusal.  A trigger no region knows is an
# error (a bug in the caller), never silence.

from protocol import reasons
from firmware.table import REGIONS, bound
from firmware.errors import FirmwareError

OK = reasons.OK


class Machine:
    # The rows are not copied or indexed: dispatch scans the table's own tuples (a region has a
    # few dozen rows, and events come a few times a day), and guards and actions are looked up
    # by name when they run.  On MicroPython that keeps the interpreter's RAM to a few hundred
    # bytes instead of ~14 KB of per-(state, trigger) lists and bound methods.

    def __init__(self, context, regions=REGIONS):
        # context: the object whose parts' methods the table's guards and actions name
        # ("part.method", firmware/table.py); it may define
        # on_state_change(region, source, dest, trigger), called after each state change.
        self.context = context
        self.states = {}
        self._regions = []      # (region, rows) in table order
        self._queue = []
        self._busy = False
        for region, states, initial, rows in regions:
            self.states[region] = initial
            self._regions.append((region, rows))
            for source, trigger, dest, guard, action in rows:
                self._check_name(guard)
                if action is not None and action[0] == "!":
                    reasons.code(action[1:])        # KeyError now, not at the first refusal
                else:
                    self._check_name(action)

    def _check_name(self, name):
        if name is None:
            return
        try:
            ok = callable(bound(self.context, name))
        except AttributeError:
            ok = False
        if not ok:
            raise FirmwareError("state table names %r, which the pump does not define" % name)

    def triggers(self):
        seen = []
        for region, rows in self._regions:
            for row in rows:
                triggers = row[1] if isinstance(row[1], tuple) else (row[1],)
                for t in triggers:
                    if t not in seen:
                        seen.append(t)
        return seen

    def post(self, trigger, arg=None):
        # For actions: queue an event to run after the current one completes.
        self._queue.append((trigger, arg))
        if not self._busy:
            self._drain()

    def dispatch(self, trigger, arg=None):
        if self._busy:
            raise FirmwareError("dispatch(%r) inside an action: use post()" % trigger)
        self._busy = True
        try:
            outcome = self._handle(trigger, arg)
        finally:
            self._busy = False
        self._drain()
        return outcome

    def _drain(self):
        # A queued event's outcome has no caller to go to; the table never refuses the events
        # the pump queues (tests/firmware/test_table.py test_internal_events_are_never_refused).
        queue = self._queue
        while queue and not self._busy:
            trigger, arg = queue.pop(0)
            self._busy = True
            try:
                self._handle(trigger, arg)
            finally:
                self._busy = False

    def _handle(self, trigger, arg):
        # Every region whose alphabet has the trigger, in table order; in a region the first
        # row for (state, trigger) whose guard passes.
        context = self.context
        known = False
        for region, rows in self._regions:
            source = self.states[region]
            in_alphabet = False
            candidates = 0
            for row in rows:
                t = row[1]
                if t != trigger and not (isinstance(t, tuple) and trigger in t):
                    continue
                in_alphabet = True
                src = row[0]
                if src != source and not (isinstance(src, tuple) and source in src):
                    continue
                candidates += 1
                guard = row[3]
                if guard is not None and not bound(context, guard)(arg):
                    continue
                action = row[4]
                if action is None:
                    result = None
                elif action[0] == "!":
                    result = reasons.code(action[1:])
                else:
                    result = bound(context, action)(arg)
                if result:
                    # Refused: nothing changed, and later regions do not see the event.
                    return result
                dest = row[2]
                # A dest equal to the source is a self-transition: logged like any change.
                if dest is not None:
                    self.states[region] = dest
                    hook = getattr(context, "on_state_change", None)
                    if hook is not None:
                        hook(region, source, dest, trigger)
                break
            else:
                if candidates:
                    # (the table needs an unguarded last row)
                    raise FirmwareError("every guard failed for (%s, %s, %s)"
                                        % (region, source, trigger))
                if in_alphabet:
                    # (the table is not total)
                    raise FirmwareError("no row for (%s, %s, %s)" % (region, source, trigger))
            known = known or in_alphabet
        if not known:
            raise FirmwareError("unknown event %r; the table knows %s"
                                % (trigger, ", ".join(sorted(self.triggers()))))
        return OK
