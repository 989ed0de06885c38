"""The scenario format's JSON Schema (sim/scenario/schema.py, `vpump schema`): built from the
validator's own field specs, shipped fresh as scenarios/scenario.schema.json, valid draft 2020-12,
accepting every shipped scenario, and rejecting what the validator rejects."""

import datetime
import glob
import io
import json
import os

import jsonschema
import pytest

from sim import scenario
from sim.errors import ScenarioError
from sim.scenario import schema
from tools.cli import main

ROOT = scenario.repo_root()
SHIPPED = os.path.join(ROOT, "scenarios", schema.SCHEMA_FILE)
VALIDATOR = jsonschema.Draft202012Validator(schema.build())


def as_json(value):
    # What a TOML-aware editor hands the schema: dates and times as their ISO text.
    if isinstance(value, dict):
        return dict((k, as_json(v)) for k, v in value.items())
    if isinstance(value, list):
        return [as_json(v) for v in value]
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    return value


def schema_errors(raw):
    return [e.message for e in VALIDATOR.iter_errors(as_json(raw))]


def read_toml(path):
    with open(path, "rb") as f:
        return scenario.tomllib.loads(f.read().decode("utf-8"))


def test_the_shipped_schema_is_current():
    with open(SHIPPED, encoding="utf-8") as f:
        assert f.read() == schema.text(), (
            "scenarios/scenario.schema.json is stale (a field spec in sim/scenario/ changed): "
            "run `vpump schema > scenarios/scenario.schema.json` and commit it")


def test_vpump_schema_prints_it_and_check_finds_a_stale_copy(tmp_path):
    out, err = io.StringIO(), io.StringIO()
    assert main(["schema"], stdout=out, stderr=err) == 0
    assert out.getvalue() == schema.text()
    assert main(["schema", "--check"], stdout=out, stderr=err) == 0
    stale = tmp_path / "old.schema.json"
    stale.write_text(schema.text().replace('"maximum": 3650', '"maximum": 365'))
    err = io.StringIO()
    assert main(["schema", "--check", str(stale)], stdout=io.StringIO(), stderr=err) == 1
    assert "is stale: run `vpump schema > %s`" % stale in err.getvalue()
    assert main(["schema", "--check", str(tmp_path / "none.json")], stdout=io.StringIO(),
                stderr=io.StringIO()) == 2


def test_it_is_a_valid_draft_2020_12_schema_of_every_table():
    doc = schema.build()
    jsonschema.Draft202012Validator.check_schema(doc)
    assert doc["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert tuple(doc["properties"]) == scenario.TABLES
    assert doc["required"] == list(scenario.REQUIRED_TABLES)
    # The same words as the validator's messages describe each field.
    days = doc["properties"]["scenario"]["properties"]["days"]
    assert days["minimum"] == 1 and days["maximum"] == scenario.MAX_DAYS
    assert "a whole number of days from 1 to 3650" in days["description"]
    actions = doc["properties"]["timeline"]["items"]["properties"]["action"]["enum"]
    assert actions == list(scenario.ACTIONS)


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(ROOT, "scenarios", "*.toml"))),
                         ids=os.path.basename)
def test_every_shipped_scenario_matches_the_schema(path):
    raw = read_toml(path)
    scenario.validate(raw, source=path)
    assert schema_errors(raw) == []


def test_the_docs_complete_examples_match_the_schema():
    with open(os.path.join(ROOT, "docs", "scenarios.md"), encoding="utf-8") as f:
        blocks = [part.split("```", 1)[0] for part in f.read().split("```toml\n")[1:]]
    complete = [b for b in blocks if "[scenario]" in b]
    assert complete
    for block in complete:
        assert schema_errors(scenario.tomllib.loads(block)) == [], block


BASE = """\
[scenario]
name = "bad"
days = 10

[drug]
concentration_ug_per_ml = 2000

[therapy]
mode = "continuous"
basal_ug_per_day = 400
"""

# (what is wrong, TOML text): the validator refuses each, and so does the schema.
BAD = [
    ("a typo in a key", BASE.replace("days = 10", "dayz = 10")),
    ("an unknown table", BASE + "\n[pumpp]\nstroke_nl = 1000\n"),
    ("a number out of range", BASE.replace("days = 10", "days = 0")),
    ("a string for a number", BASE.replace("days = 10", 'days = "ten"')),
    ("a concentration not in the library", BASE.replace("= 2000", "= 3000")),
    ("flex mode without a schedule", BASE.replace('"continuous"\nbasal_ug_per_day = 400',
                                                  '"flex"')),
    ("a key of another mode", BASE.replace('"continuous"', '"stopped"')),
    ("an unknown action", BASE + '\n[[timeline]]\nday = 1\naction = "bolus"\ndose_ug = 5\n'),
    ("a field of another action", BASE + '\n[[timeline]]\nday = 1\naction = "stop"\n'
                                         'dose_ug = 5\n'),
    ("a bad time of day", BASE + '\n[[timeline]]\nday = 1\ntime = "9:00"\naction = "stop"\n'),
    ("another kind's fault option", BASE + '\n[[faults]]\nday = 1\nkind = "occlusion"\n'
                                           'bits = 3\n'),
    ("an instant fault with a duration", BASE + '\n[[faults]]\nday = 1\nkind = "power_loss"\n'
                                                "duration_hours = 2\n"),
    ("a random fault with a day", BASE + '\n[[faults]]\nday = 1\nrate_per_year = 2\n'
                                         'kind = "occlusion"\n'),
    ("a cell detail without the cell", BASE + "\n[models]\nbattery_capacity_error_pct = 5\n"),
    ("a link too slow", BASE + '\n[link]\nclinician = "telemetry"\nbaud = 100\n'),
    ("a flex step without its rate", BASE.replace(
        'mode = "continuous"\nbasal_ug_per_day = 400',
        'mode = "flex"\n[[therapy.flex]]\ndays = ["all"]\nsteps = [["00:00"]]')),
]


@pytest.mark.parametrize("why, text", BAD, ids=[b[0] for b in BAD])
def test_a_bad_file_is_rejected_by_the_validator_and_the_schema(why, text):
    raw = scenario.tomllib.loads(text)
    with pytest.raises(ScenarioError):
        scenario.validate(raw, source="bad.toml")
    assert schema_errors(raw), why


def test_the_good_base_passes_both():
    raw = scenario.tomllib.loads(BASE)
    scenario.validate(raw, source="base.toml")
    assert schema_errors(raw) == []


def test_the_repository_associates_scenarios_with_the_schema():
    # Taplo (and Even Better TOML, which runs it) reads .taplo.toml at the repository's root.
    taplo = scenario.tomllib.loads(open(os.path.join(ROOT, ".taplo.toml"),
                                        encoding="utf-8").read())
    rules = [r for r in taplo["rule"] if "scenarios/*.toml" in r.get("include", [])]
    assert rules and rules[0]["schema"]["path"] == "./scenarios/" + schema.SCHEMA_FILE
    assert json.loads(schema.text()) == schema.build()
