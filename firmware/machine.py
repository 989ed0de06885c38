# Interpreter for firmware/table.py: run to completion, one event at a time, with a queue.
#
# dispatch(trigger, arg) handles the event in every region whose alphabet has it (table order of
# regions), then drains events that actions posted meanwhile, and returns the outcome of the
# event it was given: OK, or the reason code of a refusal.  A trigger no region knows is an
# error (a bug in the caller), never silence.

from protocol import reasons
from firmware.table import REGIONS, expand
from firmware.errors import FirmwareError

OK = reasons.OK


class Machine:
    def __init__(self, context, regions=REGIONS):
        # context: the object whose methods the table's guards and actions name; it may define
        # on_state_change(region, source, dest, trigger), called after each state change.
        self.context = context
        self.region_names = []
        self.states = {}
        self._rows = {}     # (region, state, trigger) -> list of (dest, guard fn, action fn or code)
        self._regions_of = {}   # trigger -> regions that handle it, in order
        self._queue = []
        self._busy = False
        for region, states, initial, rows in regions:
            self.region_names.append(region)
            self.states[region] = initial
            for source, trigger, dest, guard, action in expand(rows):
                key = (region, source, trigger)
                self._rows.setdefault(key, []).append(
                    (dest, self._bind(guard), self._bind_action(action)))
                handled = self._regions_of.setdefault(trigger, [])
                if region not in handled:
                    handled.append(region)

    def _bind(self, name):
        if name is None:
            return None
        try:
            return getattr(self.context, name)
        except AttributeError:
            raise FirmwareError("state table names %r, which the pump does not define" % name)

    def _bind_action(self, action):
        if action is not None and action[0] == "!":
            return reasons.code(action[1:])
        return self._bind(action)

    def triggers(self):
        return list(self._regions_of)

    def state(self, region="therapy"):
        return self.states[region]

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
        queue = self._queue
        while queue and not self._busy:
            trigger, arg = queue.pop(0)
            self._busy = True
            try:
                self._handle(trigger, arg)
            finally:
                self._busy = False

    def _handle(self, trigger, arg):
        regions = self._regions_of.get(trigger)
        if regions is None:
            raise FirmwareError("unknown event %r; the table knows %s"
                                % (trigger, ", ".join(sorted(self._regions_of))))
        outcome = OK
        for region in regions:
            source = self.states[region]
            rows = self._rows.get((region, source, trigger))
            if rows is None:
                raise FirmwareError("no row for (%s, %s, %s): the table is not total"
                                    % (region, source, trigger))
            for dest, guard, action in rows:
                if guard is not None and not guard(arg):
                    continue
                if action is None:
                    result = None
                elif isinstance(action, int):
                    result = action
                else:
                    result = action(arg)
                if result:
                    # Refused: nothing changed, and later regions do not see the event.
                    return result
                if dest is not None and dest != source:
                    self.states[region] = dest
                    hook = getattr(self.context, "on_state_change", None)
                    if hook is not None:
                        hook(region, source, dest, trigger)
                break
            else:
                raise FirmwareError("every guard failed for (%s, %s, %s): the table needs an "
                                    "unguarded last row" % (region, source, trigger))
        return outcome
