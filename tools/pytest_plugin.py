"""vpump's pytest plugin: virtual pumps behind fixtures, for the test suite of your own app.

Installed with vpump (a `pytest11` entry point), so any project whose environment has vpump
gets these fixtures without a conftest.py (docs/testing-your-app.md):

    vpump_pump            an in-process pump on a loop link, in virtual time the test moves
                          (sim/virtual_pump.py VirtualPump: .link, .clock, .keys, .advance(days=),
                          .status(), .log(), .interrogate(), .events)
    vpump_served          `vpump serve` in a subprocess on a socket or a pty (ServedPump: .url,
                          .key_file, .keys, and a back-channel: .status(), .log(), .events())
    vpump_pump_factory    make_pump(**options) -> another VirtualPump (closed after the test)
    vpump_served_factory  serve(**options) -> another ServedPump (stopped after the test)

Options come from a marker on the test (or its module or class) or from the factories:

    @pytest.mark.vpump(scenario="adult-sci-continuous", seed=3, noise="drop_pct=5", days=30)
    @pytest.mark.vpump_serve(scenario=None, seed=None, link="socket", speed=1.0,
                             noise="corrupt_pct=2,seed=7")

scenario is a name from `vpump scenarios`, a scenario file, or None for a fresh pump (20 mL of
2000 ug/mL, no program).  noise is `vpump serve --noise`'s KEY=VALUE text or a dict of the same
keys (drop_pct, corrupt_pct, corrupt_bits, delay_ms, delay_pct, direction; seed).

The anchor is pytest-embedded's idea: each service (here a pump) is set up and torn down by a
fixture, and what the test needs of it (its port, its keys, its console) is an attribute.
"""

import json
import os
import select
import subprocess
import sys
import time

import pytest

_START_TIMEOUT_S = 60.0         # `vpump serve` is up in well under a second; a loaded CI box
_ANSWER_TIMEOUT_S = 30.0
_STOP_TIMEOUT_S = 30.0
_PUMP_OPTIONS = ("scenario", "seed", "noise", "days", "keys")
_SERVE_OPTIONS = ("scenario", "seed", "link", "speed", "noise", "key_file", "args")


class ServedPumpError(Exception):
    """`vpump serve` did not start, did not answer the back-channel, or died."""


def parse_noise(noise):
    """`--noise` text or a dict -> (the link_noise options dict as given, seed)."""
    if not noise:
        return None, 0
    if isinstance(noise, dict):
        options = dict(noise)
        seed = options.pop("seed", 0)
        return options, seed
    from tools.serve import parse_noise as parse_text
    options, seed = parse_text(str(noise))
    return options, seed


def make_virtual_pump(scenario=None, seed=None, noise=None, days=None, keys=None):
    from sim.virtual_pump import VirtualPump
    options, noise_seed = parse_noise(noise)
    return VirtualPump(scenario, seed=seed, keys=keys, noise=options, noise_seed=noise_seed,
                       days=days)


class ServedPump:
    """`vpump serve --control` in a subprocess.

    url: what a programmer opens (socket://127.0.0.1:PORT or a pty path); key_file: the key
    file it serves with; keys: its contents ({"serial", "clinician", "patient"}, keys as bytes).
    The back-channel reads the pump without the protocol: status(), interrogate(), log(),
    events().  stop() ends it with its state committed and returns its last output lines."""

    def __init__(self, directory, scenario=None, seed=None, link="socket", speed=1.0,
                 noise=None, key_file=None, args=()):
        if key_file is None:
            from protocol.keygen import format_keys, generate_keys
            key_file = os.path.join(str(directory), "vpump-served-keys.json")
            with open(key_file, "w", encoding="utf-8") as f:
                f.write(format_keys(generate_keys(os.urandom, "VP-TEST01")))
        self.key_file = str(key_file)
        from protocol.keys import parse_keys
        with open(self.key_file, encoding="utf-8") as f:
            self.keys = parse_keys(f.read())
        if link == "socket":
            link = "socket://127.0.0.1:0"
        command = [sys.executable, "-m", "tools.cli", "serve", "--link", str(link),
                   "--keys", self.key_file, "--speed", repr(float(speed)), "--control"]
        if scenario is not None:
            command.insert(4, str(scenario))
        if seed is not None:
            command += ["--seed", str(int(seed))]
        if noise is not None:
            if isinstance(noise, dict):
                noise = ",".join("%s=%s" % item for item in noise.items())
            command += ["--noise", str(noise)]
        command += [str(a) for a in args]
        self.command = command
        self._buffer = b""
        self.output = []            # stdout lines that were not back-channel answers
        self.proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        try:
            header = {}
            while "keys" not in header:
                line = self._line(_START_TIMEOUT_S)
                key, _, value = line.partition(": ")
                header[key] = value.strip()
            self.url = header["link"]
        except ServedPumpError:
            self.stop()
            raise

    # -- the subprocess's output ---------------------------------------------------------

    def _line(self, timeout_s):
        deadline = time.monotonic() + timeout_s
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ServedPumpError("vpump serve: no answer in %.0f s (%s)"
                                      % (timeout_s, " ".join(self.command)))
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                err = self.proc.stderr.read().decode("utf-8", "replace") if \
                    self.proc.poll() is not None else ""
                raise ServedPumpError("vpump serve ended (exit %s): %s"
                                      % (self.proc.poll(), err.strip() or "no message"))
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode("utf-8", "replace")

    def ask(self, request):
        """One back-channel request (a word, or a dict with "cmd") -> its answer dict."""
        if self.proc.poll() is not None:
            raise ServedPumpError("vpump serve has ended (exit %s)" % self.proc.returncode)
        line = request if isinstance(request, str) else json.dumps(request)
        self.proc.stdin.write(line.encode("utf-8") + b"\n")
        self.proc.stdin.flush()
        while True:
            text = self._line(_ANSWER_TIMEOUT_S)
            if text.startswith("{"):
                answer = json.loads(text)
                if not answer.get("ok"):
                    raise ServedPumpError("back-channel: %s" % answer.get("error"))
                return answer
            self.output.append(text)

    def status(self):
        """The firmware's own status (therapy, reservoir_nl, alarms, program, ...)."""
        return self.ask("status")["status"]

    def interrogate(self):
        """What INTERROGATE would answer, decoded."""
        return self.ask("status")["interrogate"]

    def now_ms(self):
        """The pump's virtual ms since implant (it runs at --speed times real time)."""
        return self.ask("status")["now_ms"]

    def log(self, start_seq=1):
        """The pump's event log from start_seq, decoded (as in events.jsonl)."""
        return self.ask({"cmd": "log", "from": start_seq})["log"]

    def events(self, start=0):
        """Every record since the start (pump log entries and the simulator's), from index
        start."""
        return self.ask({"cmd": "events", "from": start})["events"]

    def key(self, role="clinician"):
        return self.keys[role]

    def stop(self):
        """Stop the pump (state committed); returns what it printed after the header."""
        proc = self.proc
        if proc.returncode is not None and proc.stdout.closed:
            return self.output          # stopped before
        try:
            # communicate() closes stdin first: with --control, end of input stops the pump.
            out, err = proc.communicate(timeout=_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        text = (self._buffer + (out or b"")).decode("utf-8", "replace")
        self._buffer = b""
        self.output.extend(line for line in text.splitlines() if not line.startswith("{"))
        self.stderr = (err or b"").decode("utf-8", "replace")
        return self.output

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        return False


def _marker_options(request, name, allowed):
    marker = request.node.get_closest_marker(name)
    if marker is None:
        return {}
    if marker.args:
        raise pytest.UsageError("@pytest.mark.%s takes keyword options only (%s)"
                                % (name, ", ".join(allowed)))
    unknown = sorted(set(marker.kwargs) - set(allowed))
    if unknown:
        raise pytest.UsageError("@pytest.mark.%s: unknown option %s; allowed: %s"
                                % (name, ", ".join(unknown), ", ".join(allowed)))
    return dict(marker.kwargs)


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "vpump(scenario=None, seed=None, noise=None, days=None, keys=None): "
                   "options of the vpump_pump fixture's in-process pump")
    config.addinivalue_line(
        "markers", "vpump_serve(scenario=None, seed=None, link='socket', speed=1.0, "
                   "noise=None, key_file=None, args=()): options of the vpump_served "
                   "fixture's `vpump serve`")


@pytest.fixture
def vpump_pump_factory():
    """make_pump(scenario=None, seed=None, noise=None, days=None, keys=None) -> a VirtualPump."""
    made = []

    def make_pump(**options):
        unknown = sorted(set(options) - set(_PUMP_OPTIONS))
        if unknown:
            raise TypeError("make_pump: unknown option %s; allowed: %s"
                            % (", ".join(unknown), ", ".join(_PUMP_OPTIONS)))
        made.append(make_virtual_pump(**options))
        return made[-1]
    yield make_pump
    for pump in made:
        pump.close()


@pytest.fixture
def vpump_pump(request, vpump_pump_factory):
    """An in-process pump on a loop link, in virtual time (@pytest.mark.vpump for options)."""
    return vpump_pump_factory(**_marker_options(request, "vpump", _PUMP_OPTIONS))


@pytest.fixture
def vpump_served_factory(tmp_path_factory):
    """serve(scenario=None, seed=None, link="socket", speed=1.0, noise=None, key_file=None,
    args=()) -> a ServedPump (`vpump serve` in a subprocess), stopped after the test."""
    served = []

    def serve(**options):
        unknown = sorted(set(options) - set(_SERVE_OPTIONS))
        if unknown:
            raise TypeError("serve: unknown option %s; allowed: %s"
                            % (", ".join(unknown), ", ".join(_SERVE_OPTIONS)))
        served.append(ServedPump(tmp_path_factory.mktemp("vpump-served"), **options))
        return served[-1]
    yield serve
    for pump in served:
        pump.stop()


@pytest.fixture
def vpump_served(request, vpump_served_factory):
    """`vpump serve` in a subprocess (@pytest.mark.vpump_serve for options)."""
    return vpump_served_factory(**_marker_options(request, "vpump_serve", _SERVE_OPTIONS))
