"""`vpump diagram`: docs/state-machine.md, generated from the pump's state table.

The firmware interprets firmware/table.py itself (firmware/machine.py).  This host-only module
builds the same rows into one `transitions` machine per region, and

* draws each machine as a mermaid ``stateDiagram-v2`` (transitions' GraphMachine, mermaid engine):
  edges are the state-changing rows, labelled ``trigger [guard]``;
* lists the rows that keep the state (transitions' internal transitions, ``dest=None``) in compact
  tables under each diagram: refusals (with the reason's name and text), actions that run without
  a state change, and explicit ignores;
* serves as a test oracle (tests/firmware/test_oracle.py): run with a model from
  ``model_factory``, it behaves like the firmware's interpreter region by region.

Row semantics carried into the transitions machine (``send_event=True``):
  guard   ``conditions=[_Guard(name)]``: calls ``model.<part>.<method>(arg)`` for "part.method"
  action  ``before=[_Action(name)]``: calls ``model.<part>.<method>(arg)``; a truthy result (a
          reason code) raises Refused before the state changes, as the firmware refuses
  !reason ``before=[_Refuse(code)]``: raises Refused(code)
"""

import argparse
import os
import sys

from transitions import Machine
from transitions.extensions import GraphMachine

from firmware.table import REGIONS, bound, expand
from protocol import reasons

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUTPUT = os.path.join(REPO_ROOT, "docs", "state-machine.md")


class Refused(Exception):
    # Raised by a transition's `before` callback when the row refuses; the state is unchanged.
    def __init__(self, reason):
        Exception.__init__(self, reason)
        self.reason = reason


class _Guard(object):
    # A condition that asks the model: model.<part>.<method>(arg) -> bool.
    def __init__(self, name):
        self.name = self.__name__ = name

    def __call__(self, event):
        return bool(bound(event.model, self.name)(*event.args))

    def __repr__(self):
        return "_Guard(%r)" % self.name


class _Action(object):
    # A `before` callback: model.<part>.<method>(arg) returns None (accepted) or a reason code
    # (refused).
    def __init__(self, name):
        self.name = self.__name__ = name

    def __call__(self, event):
        result = bound(event.model, self.name)(*event.args)
        if result:
            raise Refused(result)

    def __repr__(self):
        return "_Action(%r)" % self.name


class _Refuse(object):
    # A `before` callback for a "!reason" row: always refuses with that reason.
    def __init__(self, reason_name):
        self.reason = reasons.code(reason_name)
        self.reason_name = reason_name
        self.name = self.__name__ = "!" + reason_name

    def __call__(self, event):
        raise Refused(self.reason)

    def __repr__(self):
        return "_Refuse(%r)" % self.reason_name


def _callback(action):
    if action is None:
        return []
    if action[0] == "!":
        return [_Refuse(action[1:])]
    return [_Action(action)]


def build_machines(model_factory=None, regions=REGIONS, graph=None):
    """One `transitions` machine per region, from the table's rows (expanded, in table order).

    model_factory(region) -> model: the object whose methods the guards and actions name (one
    per region); its `state` attribute tracks the region's state.  Without it each machine is its
    own model (enough to draw it).  graph: build GraphMachines (mermaid engine); by default only
    when there is no model_factory, since the graph bookkeeping slows a running machine down.

    Returns a dict region -> machine, in region order.
    """
    if graph is None:
        graph = model_factory is None
    machines = {}
    for region, states, initial, rows in regions:
        kwargs = dict(
            states=list(states), initial=initial, auto_transitions=False, send_event=True,
            ignore_invalid_triggers=False, queued=False)
        if model_factory is None:
            kwargs["model"] = "self"
        else:
            kwargs["model"] = model_factory(region)
        if graph:
            machine = GraphMachine(title=region, graph_engine="mermaid", show_conditions=True,
                                   **kwargs)
        else:
            machine = Machine(**kwargs)
        for source, trigger, dest, guard, action in expand(rows):
            machine.add_transition(
                trigger, source, dest,
                conditions=[_Guard(guard)] if guard is not None else None,
                before=_callback(action))
        machines[region] = machine
    return machines


def _rows_of(machine):
    # (source, trigger, transition) for every transition, in the order they were added per
    # trigger (events in first-use order): the order the tables list them in.
    for trigger, event in machine.events.items():
        for source, transitions in event.transitions.items():
            for transition in transitions:
                yield source, trigger, transition


def _guard_of(transition):
    return " & ".join(c.func.name for c in transition.conditions) if transition.conditions else ""


def _mermaid(machine):
    # transitions' own mermaid, minus what depends on the model's current state (node classes and
    # their definitions), the title front matter (the markdown heading names the region) and
    # self-loops (internal transitions, and self-transitions: listed in the tables instead).
    text = machine.get_graph().draw(None)
    out = []
    front = 0
    for line in text.splitlines():
        bare = line.strip()
        if front < 2:
            if bare == "---":
                front += 1
            continue
        if bare.startswith("Class ") or bare.startswith("classDef "):
            continue
        if "-->" in bare and ":" in bare:
            ends = bare.split(":", 1)[0].split("-->")
            if ends[0].strip() == ends[1].strip():
                continue
        if not bare and out and not out[-1].strip():
            continue
        out.append(line.rstrip())
    while out and not out[-1].strip():
        out.pop()
    return "\n".join(out)


def _group(items):
    # [(key, state)] -> [(key, [states])], keys in first-seen order.
    keys = []
    grouped = {}
    for key, state in items:
        if key not in grouped:
            keys.append(key)
            grouped[key] = []
        if state not in grouped[key]:
            grouped[key].append(state)
    return [(key, grouped[key]) for key in keys]


def _states(names, order):
    return ", ".join(sorted(names, key=order.index))


def _tables(machine, order):
    changes, refusals, actions, ignores = [], [], [], []
    for source, trigger, transition in _rows_of(machine):
        guard = _guard_of(transition)
        before = transition.before
        if transition.dest is not None:
            name = before[0].name if before else ""
            changes.append(((trigger, guard, transition.dest, name), source))
        elif before and isinstance(before[0], _Refuse):
            refusals.append(((trigger, guard, before[0].reason_name), source))
        elif before:
            actions.append(((trigger, guard, before[0].name), source))
        else:
            ignores.append(((trigger, guard), source))
    lines = []

    def table(title, header, rows):
        if not rows:
            return
        lines.extend(["", "**%s**" % title, "", "| " + " | ".join(header) + " |",
                      "|" + "---|" * len(header)])
        for row in rows:
            lines.append("| " + " | ".join(row) + " |")

    def code(text):
        return "`%s`" % text if text else ""

    table("State changes", ("trigger", "from", "guard", "to", "action"),
          [(code(t), _states(s, order), code(g), code(d), code(a))
           for (t, g, d, a), s in _group(changes)])
    table("Refused (state unchanged)", ("trigger", "in", "guard", "reason", "meaning"),
          [(code(t), _states(s, order), code(g), code(r),
            reasons.describe(reasons.code(r)))
           for (t, g, r), s in _group(refusals)])
    table("Handled without a state change (the action may still refuse)",
          ("trigger", "in", "guard", "action"),
          [(code(t), _states(s, order), code(g), code(a)) for (t, g, a), s in _group(actions)])
    table("Ignored (explicitly: nothing happens)", ("trigger", "in", "guard"),
          [(code(t), _states(s, order), code(g)) for (t, g), s in _group(ignores)])
    return lines


def render_markdown(regions=REGIONS):
    """The full text of docs/state-machine.md."""
    machines = build_machines(regions=regions, graph=True)
    lines = [
        "# Pump state machine",
        "",
        "Generated by `vpump diagram` from `firmware/table.py`; do not edit by hand.",
        "",
        "The pump's state table has %d orthogonal regions, each always in exactly one state. "
        "An event goes to every region whose alphabet has it, in this order; rows are tried in "
        "table order and the first whose guard passes wins. A refusal (a `!reason` row, or an "
        "action that returns a reason code) leaves that region's state as it was, and later "
        "regions do not see the event. Every (state, event) pair of a region has a row, so every event has a defined "
        "outcome: a state change, an action without a state change, a refusal, or an explicit "
        "ignore. The diagrams show state changes as `trigger [guard]`; the tables under each "
        "list the rest. A row whose destination is the state it leaves (a self-transition) is "
        "logged as a state change; the diagrams leave it out and the state-change table lists "
        "it." % len(regions),
        "",
        "Guards and actions are named `part.method`: the method of the pump's part in "
        "`firmware/<part>.py` (`therapy`: the program, basal rate, start and stop, critical "
        "halts; `bolus`: every way a bolus starts or stops, and the lockout; `reservoir`: "
        "refill and the low-reservoir alarm; `battery`: the elective replacement indicator). "
        "`firmware/pump.py` coordinates them: boot, the request API, commit.",
    ]
    for region, states, initial, rows in regions:
        machine = machines[region]
        order = list(machine.states)
        alphabet = list(machine.events)
        lines.extend([
            "",
            "## Region `%s`" % region,
            "",
            "States: %s. Initial: `%s`. Events: %s." % (
                ", ".join("`%s`" % s for s in order), initial,
                ", ".join("`%s`" % t for t in alphabet)),
            "",
            "```mermaid",
            _mermaid(machine),
            "```",
        ])
        lines.extend(_tables(machine, order))
    lines.append("")
    return "\n".join(lines)


def _display(path):
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path
    return path if rel.startswith("..") else rel


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="vpump diagram",
        description="Regenerate docs/state-machine.md (mermaid diagrams and tables) from the "
                    "pump's state table, firmware/table.py.")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 if the file differs from what would be "
                             "generated, 0 if it is current")
    parser.add_argument("--output", metavar="PATH", default=DEFAULT_OUTPUT,
                        help="where to write (default: docs/state-machine.md in the repository)")
    args = parser.parse_args(argv)
    text = render_markdown()
    shown = _display(args.output)
    if os.path.isdir(args.output):
        # A user's mistake (exit 2, one line), as every other vpump command reports one.
        print("vpump diagram: --output %s: is a folder; give the file to write, e.g. %s"
              % (args.output, os.path.join(args.output, "state-machine.md")), file=sys.stderr)
        return 2
    if args.check:
        try:
            with open(args.output, encoding="utf-8", newline="") as f:
                current = f.read()
        except FileNotFoundError:
            current = None
        except (OSError, UnicodeDecodeError) as err:
            print("vpump diagram: --output %s: cannot read it: %s"
                  % (args.output, getattr(err, "strerror", None) or err), file=sys.stderr)
            return 2
        if current != text:
            print("%s is %s: run `vpump diagram` (or `make diagram`) to regenerate it"
                  % (shown, "missing" if current is None else "out of date"), file=sys.stderr)
            return 1
        print("%s is up to date" % shown, file=sys.stderr)
        return 0
    try:
        directory = os.path.dirname(os.path.abspath(args.output))
        os.makedirs(directory, exist_ok=True)
        with open(args.output, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
    except OSError as err:
        print("vpump diagram: --output %s: cannot write it: %s"
              % (args.output, err.strerror or err), file=sys.stderr)
        return 2
    print("wrote %s" % shown, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
