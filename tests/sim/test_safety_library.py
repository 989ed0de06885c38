"""Every shipped scenario keeps every safety requirement the invariant monitor checks
(sim/monitor.py, docs/safety.md): zero violations, and none in events.jsonl."""

import pytest

from sim import scenario
from sim.runner import Run

# battery-end-of-service runs for three years (its end of service is tests/sim/test_battery.py's
# and the firmware tests'); here its first 200 days, with ERI's run-up.
DAYS = {"battery-end-of-service": 200}


@pytest.mark.req("SR-01", "SR-02", "SR-03", "SR-04", "SR-05", "SR-06", "SR-07", "SR-08",
                 "SR-09", "SR-10", "SR-11", "SR-12", "SR-13", "SR-14", "SR-15", "SR-16", "SR-17")
@pytest.mark.parametrize("name", scenario.available())
def test_a_shipped_scenario_breaks_no_safety_rule(name):
    config = scenario.load(scenario.find(name))
    events = []
    summary = Run(config, days=DAYS.get(name), sink=events.append).run()
    assert summary["violations"] == [], summary["violations"][:3]
    assert not [e for e in events if e["event"] == "violation"]
