"""docs/state-machine.md is generated from firmware/table.py and must match it."""

import io
import os

from tools import diagram


def test_state_machine_doc_is_current():
    path = diagram.DEFAULT_OUTPUT
    assert os.path.exists(path), (
        "%s is missing: run `vpump diagram` (or `make diagram`)" % path)
    with io.open(path, encoding="utf-8", newline="") as f:
        current = f.read()
    assert current == diagram.render_markdown(), (
        "docs/state-machine.md is stale (firmware/table.py changed): run `vpump diagram` "
        "(or `make diagram`) and commit the result")


def test_render_is_deterministic():
    assert diagram.render_markdown() == diagram.render_markdown()


def test_main_check_and_write(tmp_path, capsys):
    out = str(tmp_path / "sm.md")
    assert diagram.main(["--check", "--output", out]) == 1
    assert "missing" in capsys.readouterr().err
    assert diagram.main(["--output", out]) == 0
    assert "wrote" in capsys.readouterr().err
    assert diagram.main(["--check", "--output", out]) == 0
    with open(out, "a") as f:
        f.write("edited by hand\n")
    assert diagram.main(["--check", "--output", out]) == 1
    assert "vpump diagram" in capsys.readouterr().err
