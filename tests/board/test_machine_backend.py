"""hal.machine and the board entry (board/vpump_main.py, board/main.py) against the FAKE
`machine` stand-in (tests/board/fake_machine.py), on both interpreters.

The checks live in tests/board/checks.py and use plain asserts.  On CPython each runs here
in-process, with the stand-in in sys.modules["machine"] (removed afterwards); under MicroPython
1.27 (the WebAssembly port, tests/mp/mpsession.py) they all run in one session and each is
reported as its own test.
"""

import importlib
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BOARD = os.path.join(ROOT, "board")

sys.path.insert(0, os.path.join(ROOT, "tests", "mp"))
import mpsession  # noqa: E402  (tests/mp: the MicroPython harness)
sys.path.pop(0)


def _check_names():
    # The names without importing checks.py (it installs the stand-in as `machine`).
    names = []
    with open(os.path.join(HERE, "checks.py"), encoding="utf-8") as f:
        for line in f:
            if line.startswith("def check_"):
                names.append(line[4:line.index("(")])
    return sorted(names)


CHECKS = _check_names()


@pytest.fixture
def checks(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(BOARD)
    monkeypatch.syspath_prepend(HERE)
    saved = {name: sys.modules.get(name)
             for name in ("machine", "fake_machine", "checks", "hal.machine", "vpump_main")}
    for name in saved:
        sys.modules.pop(name, None)
    module = importlib.import_module("checks")
    module.setup(str(tmp_path))
    module.MAIN_PY = os.path.join(BOARD, "main.py")
    try:
        yield module
    finally:
        for name, old in saved.items():
            if old is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = old


@pytest.mark.parametrize("name", CHECKS)
def test_on_cpython(checks, name, capsys):
    getattr(checks, name)()


def test_hal_registry_names_machine_without_importing_it():
    import hal
    assert hal.BACKENDS["machine"] == ("hal.machine", "MachineBoard")
    assert "machine" not in sys.modules or sys.modules["machine"].__name__ == "fake_machine"


# -- the same under MicroPython -----------------------------------------------------------

MP_FILES = mpsession.PORTABLE_FILES + ["hal/machine.py"]


@pytest.fixture(scope="module")
def mp_results():
    problem = mpsession.skip_reason() or mpsession.missing_package()
    if problem:
        pytest.skip(problem)
    with mpsession.MicroPython(files=MP_FILES) as mp:
        for name in ("fake_machine.py", "checks.py"):
            with open(os.path.join(HERE, name), "rb") as f:
                mp.write("/lib/" + name, f.read())
        for name in ("vpump_main.py", "main.py"):
            with open(os.path.join(BOARD, name), "rb") as f:
                mp.write("/lib/" + name if name != "main.py" else "/board/main.py", f.read())
        out = mp.run("import os\n"
                     "try:\n    os.mkdir('/work')\nexcept OSError:\n    pass\n"
                     "import checks\n"
                     "checks.setup('/work')\n"
                     "checks.MAIN_PY = '/board/main.py'\n"
                     "checks.run_all()\n", timeout_s=600)
    results = {}
    current = None
    for line in out.splitlines():
        if line.startswith("PASS "):
            current = line[5:]
            results[current] = None
        elif line.startswith("FAIL "):
            current = line[5:].split(":", 1)[0]
            results[current] = line
        elif current is not None and results.get(current):
            results[current] += "\n" + line
    assert out.rstrip().splitlines()[-1].startswith("done"), out
    return results


@pytest.mark.parametrize("name", CHECKS)
def test_on_micropython(mp_results, name):
    assert name in mp_results, "%s did not run under MicroPython" % name
    assert mp_results[name] is None, mp_results[name]
