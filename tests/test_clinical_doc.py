"""Every clinical fact the project uses is stated with its source in docs/clinical.md, and
nothing in the project points at a reference outside it."""

import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = os.path.join(ROOT, "docs", "clinical.md")
# Built from pieces so this file does not match itself.
OUTSIDE = re.compile("(?<!docs/)" + "CLINICAL" + r"\.md|/work/" + "shared")
SEARCHED = ("docs", "firmware", "hal", "protocol", "sim", "tools", "scenarios", "bench",
            "board", "tests", "README.md", "Makefile", "pyproject.toml")


def _project_files():
    for top in SEARCHED:
        path = os.path.join(ROOT, top)
        if os.path.isfile(path):
            yield path
            continue
        for folder, dirs, names in os.walk(path):
            dirs[:] = [d for d in dirs if d not in ("__pycache__", "node_modules")]
            for name in names:
                if name.endswith((".py", ".md", ".toml", ".txt", ".json", ".mjs")):
                    yield os.path.join(folder, name)


def test_nothing_cites_a_reference_outside_the_project():
    hits = []
    for path in _project_files():
        with open(path, encoding="utf-8", errors="replace") as f:
            for n, line in enumerate(f, 1):
                if OUTSIDE.search(line):
                    hits.append("%s:%d: %s" % (os.path.relpath(path, ROOT), n, line.strip()))
    assert not hits, "cite docs/clinical.md instead:\n" + "\n".join(hits)


def _table_rows(text):
    for line in text.splitlines():
        if line.startswith("|") and not set(line) <= set("|- "):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if cells[0] in ("parameter", "limit", "setting", "fact"):
                continue        # a header
            yield cells


def test_every_row_of_the_clinical_doc_names_a_source():
    with open(DOC, encoding="utf-8") as f:
        rows = list(_table_rows(f.read()))
    assert len(rows) > 40
    for cells in rows:
        assert len(cells) == 3 and cells[2], "no source for %r" % (cells,)


def test_every_default_of_the_pump_model_and_drug_library_is_in_the_clinical_doc():
    from firmware.limits import BACLOFEN
    from firmware.pump import MODEL
    with open(DOC, encoding="utf-8") as f:
        doc = f.read()
    structural = ("name", "storage_slot_bytes", "drug", "concentrations_ug_per_ml")
    missing = [k for k in list(MODEL) + list(BACLOFEN) if k not in structural and k not in doc]
    assert not missing
    for conc in BACLOFEN["concentrations_ug_per_ml"]:
        assert str(conc) in doc.split("## Drug library")[1]


def test_the_patient_models_sourced_parameters_point_at_the_clinical_doc():
    from sim.patient import PARAMS
    for name, (_default, _lo, _hi, source) in PARAMS.items():
        if "UNSOURCED" in source or source.startswith("derived"):
            continue
        assert "docs/clinical.md" in source, name
