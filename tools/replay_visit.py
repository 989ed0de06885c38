"""`vpump replay CAPTURE [--scenario NAME_OR_FILE] [--seed N] | --against URL`: replay a
recorded visit and show what changed.

A capture (sim/capture.py, `vpump serve --capture` or `vpump prog --capture`) holds the
programmer's side of a visit: every request, and the pump's answers.  Replay sends the same
requests again (re-authenticating with its own key and fresh nonces: the recorded session's
nonces, MACs and counters cannot be reused, and need not be) to

  --scenario   an in-process pump (sim/virtual_pump.py) built from the scenario and seed, in
               virtual time: each request is sent at the pump time it was recorded at, so the
               same build answers exactly as recorded.  A capture written by `vpump serve`
               names its scenario and seed: then --scenario and --seed may be left out.
  --against    any pump on a link (a board, `vpump serve`), with --key-file; it is probed
               with INTERROGATE and READ_LOG after each command of the session.

and compares every response field, and, where the capture has the pump's state after each
answer (`vpump serve` writes it as a "pump state" comment), the pump's state and the log
entries each command added.  Differences are printed as a table; exit status 1 when there is
any, 0 when none, 2 for bad input.

Not compared: the handshake's nonces, session id and proofs, the serial number, and (with
--against, where the pump's time is not the recording's) the fields that move with time:
VOLATILE below.
"""

import json

from protocol import commands as C
from protocol import frame, reasons, session
from sim.errors import SimError
from tools.argtypes import seed as seed_arg

# Fields that differ on every replay: a fresh handshake, or the pump's identity.
HANDSHAKE = ("pn", "session_id", "proof", "serial")
# With --against the pump's clock, battery and reservoir are its own: fields moving with time.
VOLATILE = ("wall_ms", "old_wall_ms", "lockout_until_ms", "reservoir_nl", "hours_to_alarm",
            "hours_to_empty", "battery_remaining_nah", "battery_mv", "days_to_replacement",
            "delivered_ug", "old_estimate_nl", "boot_count", "t_ms", "seq", "next_seq")
_SESSION_CMDS = (C.SESSION_OPEN, C.SESSION_AUTH)


class ReplayError(SimError):
    """A capture that cannot be replayed, or bad options (exit 2)."""


# ---------------------------------------------------------------------- reading a capture

class Step:
    """One request of the visit and what the recording says about it."""

    def __init__(self, number, cmd, body, response, state, role=None, proof_ok=True):
        self.number = number
        self.cmd = cmd
        self.body = body            # the command payload (inside the session's wrapper)
        self.response = response    # decode_packet() of the recorded answer, or None
        self.state = state          # the "pump state" comment of the answer, or None
        self.role = role            # SESSION_OPEN's role
        self.wall_ms = None         # the pump's clock at the request (its comment), or None

    @property
    def name(self):
        spec = C.COMMANDS.get(self.cmd)
        return spec.name.upper() if spec is not None else "0x%02X" % self.cmd


def _pump_state(packet):
    from sim.capture import PUMP_STATE_PREFIX
    for comment in packet.comments:
        if comment.startswith(PUMP_STATE_PREFIX):
            return json.loads(comment[len(PUMP_STATE_PREFIX):])
    return None


def _wall_ms(packet):
    for comment in packet.comments:
        if comment.startswith("pump clock ") and "(wall_ms " in comment:
            return int(comment.split("(wall_ms ")[1].split(")")[0])
    return None


def read_visit(path):
    """The requests of a capture in order, each with its recorded answer: [Step]."""
    from sim.capture import CaptureError, decode_packet, read_capture
    try:
        packets = read_capture(path)
    except CaptureError as exc:
        raise ReplayError(str(exc)) from None
    steps = []
    seen = set()
    waiting = {}                    # (seq, cmd) -> the step awaiting its answer
    for packet in packets:
        d = decode_packet(packet.data)
        if d["kind"] != "frame":
            continue                # garbage, a damaged frame: the link's, not the visit's
        if d["response"]:
            step = waiting.pop((d["seq"], d["cmd"] & 0x7F), None)
            if step is not None and step.response is None:
                step.response = d
                step.state = _pump_state(packet)
            continue
        if packet.data in seen and (d["seq"], d["cmd"]) in waiting:
            continue                # a resend of a frame still waiting: one request
        seen.add(packet.data)
        payload = packet.data[7:-2]
        spec = C.COMMANDS.get(d["cmd"])
        body = payload
        if spec is not None and spec.auth and session.unwrap(payload) is not None:
            body = session.unwrap(payload)[1]
        step = Step(len(steps) + 1, d["cmd"], bytes(body), None, None)
        step.wall_ms = _wall_ms(packet)
        if d["cmd"] == C.SESSION_OPEN and len(body) >= 1:
            step.role = body[0]
        steps.append(step)
        waiting[(d["seq"], d["cmd"])] = step
    if not steps:
        raise ReplayError("%s: no request in it (a capture of a programmer's visit has "
                          "IDENTIFY, SESSION_OPEN and commands)" % path)
    return steps


def recorded_scenario(steps):
    """(scenario name, seed, start_wall_ms) a `vpump serve` capture names, or Nones."""
    for step in steps:
        if step.state:
            s = step.state
            return s.get("scenario"), s.get("seed"), s.get("start_wall_ms")
    return None, None, None


# ---------------------------------------------------------------------- comparing

def _flatten(value, prefix, out):
    if isinstance(value, dict):
        for key in sorted(value):
            _flatten(value[key], "%s.%s" % (prefix, key) if prefix else key, out)
    elif isinstance(value, list) and value and isinstance(value[0], (dict, list)):
        out[prefix + ".count"] = len(value)
        for i, item in enumerate(value):
            _flatten(item, "%s[%d]" % (prefix, i), out)
    elif isinstance(value, (bytes, bytearray)):
        out[prefix] = bytes(value).hex()
    else:
        out[prefix] = value
    return out


def _ignored(key, volatile):
    last = key.split(".")[-1].split("[")[0]
    return last in HANDSHAKE or (volatile and last in VOLATILE)


def outcome(decoded):
    """A response's outcome as text: "accepted" or "NAK reason (field = value, allowed lo..hi)"."""
    if decoded is None:
        return "no answer"
    status = decoded.get("status")
    if status == reasons.OK:
        return "accepted"
    n = decoded.get("nak") or {}
    text = "NAK %s" % reasons.name(status) if status is not None else "undecodable"
    if n.get("field"):
        text += " (%s = %s, allowed %s..%s)" % (n["field"], n["value"], n["lo"], n["hi"])
    return text


def compare_response(recorded, replayed, volatile):
    """[(field, recorded, replayed)] where the two answers differ."""
    a, b = outcome(recorded), outcome(replayed)
    if a != b:
        return [("outcome", a, b)]
    if recorded is None or recorded.get("status") != reasons.OK:
        return []
    left = _flatten(recorded.get("fields") or {}, "", {})
    right = _flatten(replayed.get("fields") or {}, "", {})
    out = []
    for key in sorted(set(left) | set(right)):
        if _ignored(key, volatile):
            continue
        if left.get(key) != right.get(key):
            out.append((key, left.get(key, "(none)"), right.get(key, "(none)")))
    return out


def compare_state(recorded, replayed, volatile):
    left = _flatten(recorded, "", {})
    right = _flatten(replayed, "", {})
    return [(key, left.get(key), right.get(key)) for key in sorted(set(left) | set(right))
            if not _ignored(key, volatile) and left.get(key) != right.get(key)]


def describe_entry(entry):
    from sim.events import decode
    d = decode(entry[0], entry[1], entry[2], list(entry[3:]))
    return " ".join("%s=%s" % (k, v) for k, v in d.items()
                    if k not in ("seq", "t_ms", "time", "src"))


def compare_log(recorded, replayed, volatile):
    """The entries each side added, compared in order by event and arguments (and, without
    volatile, by seq and time too)."""
    def key(entry):
        return tuple(entry[2:]) if volatile else tuple(entry)
    out = []
    for i in range(max(len(recorded), len(replayed))):
        a = recorded[i] if i < len(recorded) else None
        b = replayed[i] if i < len(replayed) else None
        if a is None or b is None or key(a) != key(b):
            out.append(("log[%d]" % i, describe_entry(a) if a else "(none)",
                        describe_entry(b) if b else "(none)"))
    return out


def format_table(differences):
    """The differences as an aligned text table."""
    head = ("step", "command", "what", "field", "recorded", "replayed")
    rows = [head] + [(str(d["step"]), d["command"], d["what"], d["field"], str(d["recorded"]),
                      str(d["replayed"])) for d in differences]
    widths = [min(max(len(r[i]) for r in rows), 60) for i in range(len(head))]
    lines = []
    for n, row in enumerate(rows):
        cells = [c if len(c) <= widths[i] else c[:widths[i] - 3] + "..."
                 for i, c in enumerate(row)]
        lines.append("  ".join(c.ljust(widths[i]) for i, c in enumerate(cells)).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


# ---------------------------------------------------------------------- replaying

def _as_decoded(answer):
    # A conform_wire Answer -> the shape decode_packet gives (status, fields or nak).
    if answer is None:
        return None
    return {"status": answer.status, "fields": answer.fields, "nak": answer.nak}


class _Replayer:
    """Sends the steps to a pump through a Wire, one session at a time, as the recording did."""

    def __init__(self, wire, keys):
        from tools.conform_wire import Session
        self.wire = wire
        self.keys = keys
        self.session = Session(wire, None)
        self.pending = None         # (role, cn, pn, session id) between OPEN and AUTH

    @property
    def in_session(self):
        return self.session.session_key is not None

    def send(self, step):
        import os
        cmd = step.cmd
        if cmd == C.SESSION_OPEN and step.role in (session.ROLE_CLINICIAN, session.ROLE_PATIENT):
            cn = os.urandom(16)
            answer = self.wire.request(cmd, C.encode_request(cmd, {"role": step.role, "cn": cn}))
            if answer is not None and answer.status == reasons.OK:
                self.pending = (step.role, cn, bytes(answer.fields["pn"]),
                                answer.fields["session_id"])
            return _as_decoded(answer)
        if cmd == C.SESSION_AUTH and self.pending is not None:
            role, cn, pn, sid = self.pending
            name = session.ROLES[role]
            key = self.keys.get(name)
            if key is None:
                raise ReplayError("the key file has no %s key, and the visit opens a %s "
                                  "session" % (name, name))
            recorded = step.response or {}
            proof = session.client_proof(key, pn, cn, role)
            if recorded.get("status") == reasons.BAD_MAC:
                proof = bytes(16)   # the recorded programmer's proof was wrong: so is ours
            answer = self.wire.request(cmd, C.encode_request(cmd, {"session_id": sid,
                                                                   "proof": proof}))
            if answer is not None and answer.status == reasons.OK:
                self.session.key = key
                self.session.role = role
                self.session.session_key = session.HmacKey(session.session_key(key, pn, cn,
                                                                               role))
                self.session.counter = 0
            self.pending = None
            return _as_decoded(answer)
        spec = C.COMMANDS.get(cmd)
        if spec is not None and spec.auth and self.in_session:
            answer = self.session.command(cmd, body=step.body)
            if cmd == C.SESSION_CLOSE:
                self.session.session_key = None
            return _as_decoded(answer)
        return _as_decoded(self.wire.request(cmd, step.body))

    def probe(self, from_seq):
        """(INTERROGATE fields, log entries from from_seq) in the open session, or None."""
        if not self.in_session:
            return None
        answer = self.session.command(C.INTERROGATE, {})
        if answer is None or answer.status != reasons.OK:
            return None
        entries = []
        start = from_seq
        while True:
            page = self.session.command(C.READ_LOG, {"start_seq": start, "max_entries": 32})
            if page is None or page.status != reasons.OK or not page.fields["entries"]:
                break
            for e in page.fields["entries"]:
                entries.append([e["seq"], e["t_ms"], e["code"]] + list(e["args"]))
            if page.fields["next_seq"] <= start:
                break
            start = page.fields["next_seq"]
        return answer.fields, entries


def _state_of(recorded):
    return recorded.get("interrogate") if recorded else None


def replay_steps(steps, target, volatile):
    """Replay steps through target (ScenarioTarget or AgainstTarget); the differences."""
    differences = []
    owed_log = []                   # recorded entries of steps the target could not be probed at
    standing = {}                   # state field -> (recorded, replayed) shown already
    for step in steps:
        target.before(step)
        got = target.send(step)
        rows = [("response", f, a, b) for f, a, b in compare_response(step.response, got,
                                                                      volatile)]
        if step.state is not None:
            owed_log += step.state.get("log") or []
            seen = target.after(step)
            if seen is not None:
                state, log = seen
                # A state difference is shown where it starts or changes, not again at
                # every later step while it stands.
                now = dict((f, (a, b)) for f, a, b in compare_state(
                    _state_of(step.state), state, volatile))
                rows += [("state", f, a, b) for f, (a, b) in sorted(now.items())
                         if standing.get(f) != (a, b)]
                standing = now
                if log is not None:
                    rows += [("log", f, a, b) for f, a, b in compare_log(owed_log, log,
                                                                         volatile)]
                owed_log = []
        for what, field, a, b in rows:
            differences.append({"step": step.number, "command": step.name, "what": what,
                                "field": field, "recorded": a, "replayed": b})
    return differences


class ScenarioTarget:
    """An in-process pump (sim/virtual_pump.py) from a scenario, in the recording's time."""

    def __init__(self, scenario, seed, start_wall_ms):
        from sim.virtual_pump import VirtualPump
        from tools.conform_wire import Wire
        self.pump = VirtualPump(scenario, seed=seed, start_wall_ms=start_wall_ms)
        self.replayer = _Replayer(Wire(self.pump.link, clock=self.pump.clock), self.pump.keys)
        self.log_seq = 0

    def before(self, step):
        # Send the request at the pump time it was recorded at (the answer's virtual ms, or
        # the pump's clock on the request): never back.
        pump = self.pump
        if step.state is not None and "now_ms" in step.state:
            target = step.state["now_ms"]
        elif step.wall_ms is not None:
            target = pump.now_ms + step.wall_ms - pump.status()["wall_ms"]
        else:
            return
        if target > pump.now_ms:
            pump.advance_to(min(target, pump.end_ms))

    def send(self, step):
        return self.replayer.send(step)

    def after(self, step):
        entries = []
        for seq, t_ms, code, args in self._log_since():
            entries.append([seq, t_ms, code] + (list(args) + [0, 0, 0, 0])[:4])
        # As a programmer decodes INTERROGATE (names, the alarm list), as serve records it.
        status, state = C.decode_response(C.INTERROGATE, C.encode_ack(
            C.INTERROGATE, self.pump.interrogate()))
        return state, entries

    def _log_since(self):
        out = []
        persist = self.pump.run.pump.persist
        while True:
            records = persist.log_read(self.log_seq + 1, 32)
            if not records:
                return out
            out.extend(records)
            self.log_seq = records[-1][0]

    def close(self):
        self.pump.close()


class AgainstTarget:
    """A pump on a link: probed with INTERROGATE and READ_LOG while the visit's session is
    open.  The first probe's log holds the pump's history: it only sets where to read on."""

    def __init__(self, link, keys):
        from tools.conform_wire import Wire
        self.link = link
        self.replayer = _Replayer(Wire(link), keys)
        self.log_seq = None

    def before(self, step):
        pass

    def send(self, step):
        return self.replayer.send(step)

    def after(self, step):
        seen = self.replayer.probe(1 if self.log_seq is None else self.log_seq + 1)
        if seen is None:
            return None
        state, entries = seen
        first = self.log_seq is None
        if entries:
            self.log_seq = entries[-1][0]
        elif first:
            self.log_seq = 0
        return state, None if first else entries

    def close(self):
        self.link.close()


# ---------------------------------------------------------------------- the command

def add_parser(commands):
    p = commands.add_parser(
        "replay", help="replay a recorded visit (a capture) against a pump and show what changed",
        description="Replay the programmer's side of a capture (vpump serve/prog --capture) "
                    "against a pump, re-authenticating with fresh nonces, and compare every "
                    "response field, and the pump's state and log after each command where the "
                    "capture has them, with the recording.  Prints a table of differences; "
                    "exit 1 when there is any.  docs/replay.md.")
    p.add_argument("capture", metavar="CAPTURE", help="a .pcapng capture of a visit")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--scenario", metavar="NAME_OR_FILE",
                       help="replay against an in-process pump of this scenario (or 'fresh' "
                            "for a pump fresh from implant) in virtual time; default: the "
                            "scenario a `vpump serve` capture names")
    where.add_argument("--against", metavar="URL",
                       help="replay against the pump on this link (a board, vpump serve); "
                            "needs --key-file")
    p.add_argument("--seed", type=seed_arg, metavar="N",
                   help="the scenario's seed (default: the capture's, else the scenario's)")
    p.add_argument("--key-file", metavar="FILE", help="the key file of the --against pump")
    p.add_argument("--json", action="store_true", help="print the differences as JSON")
    return p


def _keys(path):
    from protocol.client import load_key_file
    from protocol.client_errors import KeyFileError
    keys = {}
    for role in ("clinician", "patient"):
        try:
            keys[role] = load_key_file(path, role)
        except KeyFileError as exc:
            if role == "clinician":
                raise ReplayError("--key-file %s" % exc) from None
    return keys


def make_target(args, steps):
    if args.against:
        if not args.key_file:
            raise ReplayError("--against %s: give the pump's --key-file (the replay "
                              "authenticates with it)" % args.against)
        keys = _keys(args.key_file)
        from hal.errors import LinkError
        from hal.serial_link import SerialLink
        try:
            link = SerialLink(args.against)
        except LinkError as exc:
            raise ReplayError("--against %s: %s" % (args.against, exc)) from None
        return AgainstTarget(link, keys), True
    name, seed, start_wall_ms = recorded_scenario(steps)
    scenario = args.scenario or name
    if scenario is None:
        raise ReplayError("%s: the capture does not name its scenario (a `vpump prog` capture): "
                          "give --scenario NAME_OR_FILE or --against URL" % args.capture)
    if scenario in ("fresh", "fresh-implant"):
        scenario = None
    elif args.scenario is None and name is not None:
        scenario = name
    from sim.scenario import ScenarioError
    try:
        target = ScenarioTarget(scenario, args.seed if args.seed is not None else seed,
                                start_wall_ms)
    except (ScenarioError, OSError) as exc:
        raise ReplayError("--scenario %s: %s" % (args.scenario or name, exc)) from None
    return target, False


def run(args, stdout, stderr):
    steps = read_visit(args.capture)
    target, volatile = make_target(args, steps)
    try:
        differences = replay_steps(steps, target, volatile)
    finally:
        target.close()
    compared = sum(1 for s in steps if s.state is not None)
    if args.json:
        stdout.write(json.dumps({"capture": args.capture, "steps": len(steps),
                                 "states_compared": compared, "differences": differences},
                                indent=2, default=str) + "\n")
    elif differences:
        stdout.write(format_table(differences) + "\n")
        stdout.write("%d differences in %d requests replayed\n" % (len(differences), len(steps)))
    else:
        stdout.write("no differences: %d requests replayed, every response field%s as "
                     "recorded\n" % (len(steps), " and the pump's state and log after %d "
                                     "answers" % compared if compared else ""))
    if not compared and not args.json:
        stdout.write("(the capture has no pump state: responses only; `vpump serve "
                     "--capture` records the state too)\n")
    return 1 if differences else 0
