"""docs/traceability.md is current and complete: every requirement of docs/safety.md has a test
that names it (@pytest.mark.req), no test names an unknown one, the scenarios named exist, and
the generated file matches (tools/traceability.py)."""

import os

import pytest

from tools import traceability


def test_traceability_is_current_and_complete():
    reqs = traceability.requirements()
    marks = traceability.test_marks()
    assert traceability.problems(reqs, marks) == []
    with open(os.path.join(traceability.ROOT, traceability.OUTPUT), encoding="utf-8") as f:
        assert f.read() == traceability.render(reqs, marks), \
            "docs/traceability.md is stale: run `vpump traceability` (or `make traceability`)"


def test_the_monitor_checks_the_requirements_safety_md_says_it_does():
    from sim.monitor import REQUIREMENTS
    reqs = dict((rid, text) for rid, text, _ in traceability.requirements())
    assert set(REQUIREMENTS) <= set(reqs)
    with open(os.path.join(traceability.ROOT, traceability.SAFETY), encoding="utf-8") as f:
        rows = [line.split("|") for line in f if line.startswith("| SR-")]
    monitored = sorted(set(r[1].strip() for r in rows if r[3].strip() == "yes"))
    assert monitored == sorted(REQUIREMENTS)


def test_an_unknown_requirement_or_an_untested_one_is_reported(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "scenarios").mkdir()
    (tmp_path / "tests").mkdir()
    (tmp_path / "docs" / "safety.md").write_text(
        "| ID | requirement | monitor | scenarios |\n|---|---|---|---|\n"
        "| SR-01 | one | yes | `nowhere` |\n| SR-02 | two | no | - |\n", encoding="utf-8")
    (tmp_path / "tests" / "test_x.py").write_text(
        "import pytest\n\n@pytest.mark.req('SR-01', 'SR-99')\ndef test_a():\n    pass\n",
        encoding="utf-8")
    root = str(tmp_path)
    found = traceability.problems(traceability.requirements(root), traceability.test_marks(root),
                                  root)
    assert any("SR-99" in p and "test_a" in p for p in found)
    assert any(p.startswith("SR-02") and "no test" in p for p in found)
    assert any("nowhere" in p for p in found)
    assert traceability.main(["--check"], root=root) == 1          # stale (no file) and gaps
    assert traceability.main([], root=root) == 1                   # written, gaps remain
    assert (tmp_path / "docs" / "traceability.md").exists()


@pytest.mark.req("SR-19")
def test_vpump_traceability_check_passes_on_the_repository():
    from tools import cli
    import io
    out, err = io.StringIO(), io.StringIO()
    assert cli.main(["traceability", "--check"], out, err) == 0, err.getvalue()
