"""`vpump scenarios`: the scenario library at a glance."""

import io
import json

from sim import scenario
from tools.cli import main


def cli(*argv):
    out, err = io.StringIO(), io.StringIO()
    status = main(list(argv), stdout=out, stderr=err)
    return status, out.getvalue(), err.getvalue()


def test_lists_every_shipped_scenario_with_its_length_and_description():
    status, out, err = cli("scenarios")
    assert status == 0, err
    lines = out.splitlines()
    assert [line.split()[0] for line in lines] == scenario.available()
    config = scenario.load(scenario.find("catheter-dislodgement"))
    line = [x for x in lines if x.startswith("catheter-dislodgement")][0]
    assert "%d days" % config["days"] in line and config["description"] in line
    assert line.endswith("faults: dislodgement")


def test_json_has_faults_and_models():
    status, out, _ = cli("scenarios", "--json")
    assert status == 0
    listing = json.loads(out)
    entry = [e for e in listing if e["name"] == "catheter-dislodgement"][0]
    assert entry["faults"] == ["dislodgement"]
    assert entry["models"] == ["motor_bias_ppm", "motor_noise_ppm"]


def test_a_broken_file_is_listed_with_its_error_and_exit_1(tmp_path, monkeypatch):
    (tmp_path / "broken.toml").write_text('[scenario]\nname = "b"\ndays = 0\n', encoding="utf-8")
    monkeypatch.setattr(scenario, "scenario_dirs", lambda: [str(tmp_path)])
    status, out, _ = cli("scenarios")
    assert status == 1
    assert out.startswith("broken  INVALID: ") and "[drug] is missing" in out
