"""The pytest plugin (tools/pytest_plugin.py): its fixtures from a pytest run in a temporary
project, with the example of docs/testing-your-app.md as it stands there."""

import os
import re
import subprocess
import sys

import pytest

from tools.pytest_plugin import ServedPump, ServedPumpError

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_DOC = os.path.join(_ROOT, "docs", "testing-your-app.md")


def doc_files():
    """{file name: text} of the doc's ```python blocks that start with `# file: NAME`."""
    with open(_DOC, encoding="utf-8") as f:
        text = f.read()
    files = {}
    for block in re.findall(r"```python\n(.*?)```", text, re.S):
        first, _, rest = block.partition("\n")
        if first.startswith("# file: "):
            files[first[len("# file: "):].strip()] = block
    return files


def run_pytest(project, *args):
    # A pytest of its own, in a folder outside this repository: the plugin must come from the
    # installed package's entry point, not from this suite's conftest or rootdir.
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env.pop("PYTEST_ADDOPTS", None)
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "-o", "timeout=120"] + list(args), cwd=str(project), env=env,
                          capture_output=True, text=True, timeout=300)


def test_the_docs_example_runs_in_a_fresh_project(tmp_path):
    files = doc_files()
    assert sorted(files) == ["test_tinyprog.py", "tinyprog.py"]
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    result = run_pytest(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout


def test_fixtures_listed_and_bad_marker_options_named(tmp_path):
    (tmp_path / "test_marker.py").write_text(
        "import pytest\n\n"
        "@pytest.mark.vpump(scenario=None, sped=3)\n"
        "def test_typo(vpump_pump):\n"
        "    pass\n\n"
        "@pytest.mark.vpump(scenario='adult-sci-continuous', seed=4, days=3)\n"
        "def test_scenario(vpump_pump):\n"
        "    assert vpump_pump.status()['therapy'] == 'infusing'\n"
        "    vpump_pump.advance(days=2)\n"
        "    with pytest.raises(Exception, match='past the run'):\n"
        "        vpump_pump.advance(days=2)\n")
    result = run_pytest(tmp_path, "-rE")
    assert "1 passed" in result.stdout and "1 error" in result.stdout, result.stdout
    assert "unknown option sped" in result.stdout
    listed = run_pytest(tmp_path, "--fixtures")
    for name in ("vpump_pump", "vpump_served", "vpump_pump_factory", "vpump_served_factory"):
        assert name in listed.stdout


def test_in_process_pump_advances_and_logs(vpump_pump_factory):
    from protocol.client import Programmer
    vp = vpump_pump_factory(seed=2)
    prog = Programmer(vp.link, key=vp.keys["clinician"], clock=vp.clock)
    prog.program_continuous(480)
    vp.advance(hours=12)
    assert vp.now_ms == 12 * 3600000
    assert vp.interrogate()["delivered_ug"] == vp.status()["delivered_ug"] >= 239
    assert [e["event"] for e in vp.log()].count("program") == 1
    # The session timed out in those hours: the programmer is told so, and opens a new one.
    prog.open_session()
    assert prog.interrogate()["basal_ug_per_day"] == 480


def test_served_pump_back_channel_and_stop(tmp_path):
    with ServedPump(tmp_path, seed=9, speed=100.0) as served:
        assert served.url.startswith("socket://127.0.0.1:")
        assert served.status()["therapy"] == "idle"
        assert served.interrogate()["reservoir_nl"] == 20000000
        assert {"boot", "fill"} <= set(e["event"] for e in served.events())
        assert served.log()[0]["seq"] == 1
        with pytest.raises(ServedPumpError, match="unknown request"):
            served.ask("explode")
        assert served.now_ms() > 0
    assert any(line.startswith("stopped: 0 frames answered") for line in served.output)
    with pytest.raises(ServedPumpError, match="has ended"):
        served.status()


def test_served_pump_on_a_pty(vpump_served_factory):
    from protocol.client import Programmer
    served = vpump_served_factory(link="pty", seed=2, speed=10.0)
    assert served.url.startswith("/dev/")
    with Programmer(served.url, key=served.keys["clinician"], timeout_s=5.0) as prog:
        assert prog.program_continuous(300)["new_daily_ug"] == 300
    assert served.interrogate()["basal_ug_per_day"] == 300
    assert "program" in [e["event"] for e in served.log()]
