"""`vpump scenarios`: the scenario library at a glance."""

import io
import json

from sim import scenario
from tools.cli import main


def cli(*argv):
    out, err = io.StringIO(), io.StringIO()
    status = main(list(argv), stdout=out, stderr=err)
    return status, out.getvalue(), err.getvalue()


def _entries(out):
    # {name: (first line, [the lines under it])}
    entries, name = {}, None
    for line in out.splitlines():
        if not line.startswith(" "):
            name = line.split()[0]
            entries[name] = (line, [])
        else:
            entries[name][1].append(line.strip())
    return entries


def test_lists_every_shipped_scenario_with_its_length_description_faults_and_models():
    status, out, err = cli("scenarios")
    assert status == 0, err
    assert all(len(line) <= 80 for line in out.splitlines()), out
    entries = _entries(out)
    assert list(entries) == scenario.available()
    config = scenario.load(scenario.find("catheter-dislodgement"))
    first, under = entries["catheter-dislodgement"]
    assert first.endswith("%d days" % config["days"])
    text = " ".join(under)
    assert config["description"] in text
    assert "faults: dislodgement" in text
    # [models] under the names the TOML file uses (pct, not the internal ppm)
    assert "models: motor_bias_pct, motor_noise_pct" in text
    battery = " ".join(entries["battery-end-of-service"][1])
    assert "models: battery, battery_capacity_spread_pct, battery_self_discharge_pct_per_year," \
        in battery and "clock_drift_ppm" in battery


def test_json_has_faults_and_models():
    status, out, _ = cli("scenarios", "--json")
    assert status == 0
    listing = json.loads(out)
    entry = [e for e in listing if e["name"] == "catheter-dislodgement"][0]
    assert entry["faults"] == ["dislodgement"]
    assert entry["models"] == ["motor_bias_pct", "motor_noise_pct"]


def test_a_broken_file_is_listed_with_its_error_and_exit_1(tmp_path, monkeypatch):
    (tmp_path / "broken.toml").write_text('[scenario]\nname = "b"\ndays = 0\n', encoding="utf-8")
    monkeypatch.setattr(scenario, "scenario_dirs", lambda: [str(tmp_path)])
    status, out, _ = cli("scenarios")
    assert status == 1
    assert out.startswith("broken  INVALID:\n") and "[drug] is missing" in out
