"""The fleet-year campaign's repro files (campaigns/repro/, written by `vpump campaign` before the
firmware safety fixes) each showed a broken safety requirement; after the fixes each runs clean.
They stay as regression scenarios: each is the smallest run that once broke its requirement."""

import glob
import os

import pytest

from sim import scenario
from sim.runner import Run

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REPROS = sorted(glob.glob(os.path.join(ROOT, "campaigns", "repro", "fleet-year-SR-*.toml")))


def test_the_repro_files_are_there():
    names = [os.path.basename(p) for p in REPROS]
    assert names == ["fleet-year-SR-%s.toml" % n for n in ("01", "06", "11", "12", "15")]


@pytest.mark.req("SR-01", "SR-06", "SR-11", "SR-12", "SR-15")
@pytest.mark.parametrize("path", REPROS, ids=os.path.basename)
def test_a_campaign_repro_no_longer_breaks_its_rule(path):
    events = []
    summary = Run(scenario.load(path), sink=events.append).run()
    assert summary["violations"] == [], summary["violations"][:3]
    assert not [e for e in events if e["event"] == "violation"]
