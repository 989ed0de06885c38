"""docs/traceability.md from docs/safety.md and the tests' requirement marks.

The requirements (SR-nn) and the scenarios that show each come from docs/safety.md's table of
requirements (its rows `| SR-nn | ... | scenarios |`); the tests that prove each come from the
`@pytest.mark.req("SR-nn", ...)` marks in tests/ (read from the source, so nothing runs).

    vpump traceability            # rewrite docs/traceability.md
    vpump traceability --check    # exit 1 if it is stale, a requirement has no test, or a
                                  # test names a requirement docs/safety.md does not have
"""

import ast
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAFETY = os.path.join("docs", "safety.md")
OUTPUT = os.path.join("docs", "traceability.md")
_ROW = re.compile(r"^\|\s*(SR-\d\d)\s*\|(.*)\|\s*$")
_ID = re.compile(r"^SR-\d\d$")


class TraceabilityError(Exception):
    """docs/safety.md cannot be read as a requirement table."""


def requirements(root=ROOT):
    """[(id, text, [scenario names])] in the order of docs/safety.md's requirement table: the
    rows whose first cell is an SR-nn; the second cell is the requirement, the last the
    scenarios (comma-separated names in backticks, or a dash)."""
    out = []
    seen = set()
    with open(os.path.join(root, SAFETY), encoding="utf-8") as f:
        for line in f:
            m = _ROW.match(line.rstrip("\n"))
            if not m:
                continue
            cells = [c.strip() for c in m.group(2).split("|")]
            rid = m.group(1)
            if rid in seen:
                continue        # the hazard tables name requirements again: the first row wins
            seen.add(rid)
            scenarios = re.findall(r"`([a-z0-9-]+)`", cells[-1]) if len(cells) > 1 else []
            out.append((rid, cells[0], scenarios))
    if not out:
        raise TraceabilityError("%s has no requirement rows (| SR-nn | ... |)" % SAFETY)
    return out


def _req_ids(node):
    # The SR ids of a pytest.mark.req(...) call, or None if node is not one.
    if not isinstance(node, ast.Call):
        return None
    f = node.func
    if not (isinstance(f, ast.Attribute) and f.attr == "req" and isinstance(f.value, ast.Attribute)
            and f.value.attr == "mark"):
        return None
    return [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]


def _marks_in(node):
    ids = []
    for sub in ast.walk(node):
        found = _req_ids(sub)
        if found:
            ids.extend(found)
    return ids


def test_marks(root=ROOT):
    """{test id: [SR ids]}: each test function or class with a req mark (as a decorator, or
    `Name = pytest.mark.req(...)(...)` at module level, or a module's pytestmark)."""
    out = {}
    tests_dir = os.path.join(root, "tests")
    for dirpath, dirnames, filenames in os.walk(tests_dir):
        dirnames.sort()
        for name in sorted(filenames):
            if not (name.startswith("test_") and name.endswith(".py")):
                continue
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root).replace(os.sep, "/")
            with open(path, encoding="utf-8") as f:
                tree = ast.parse(f.read(), filename=rel)
            module_ids = []
            for node in tree.body:
                if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                    ids = []
                    for dec in node.decorator_list:
                        ids.extend(_marks_in(dec))
                    if isinstance(node, ast.ClassDef):
                        for item in node.body:
                            if isinstance(item, ast.FunctionDef) and item.name.startswith("test"):
                                sub = []
                                for dec in item.decorator_list:
                                    sub.extend(_marks_in(dec))
                                if sub or ids:
                                    out["%s::%s::%s" % (rel, node.name, item.name)] = ids + sub
                    elif ids:
                        out["%s::%s" % (rel, node.name)] = ids
                elif isinstance(node, ast.Assign) and len(node.targets) == 1 and \
                        isinstance(node.targets[0], ast.Name):
                    ids = _marks_in(node.value)
                    if ids and node.targets[0].id == "pytestmark":
                        module_ids = ids
                    elif ids:
                        out["%s::%s" % (rel, node.targets[0].id)] = ids
            if module_ids:
                out["%s (every test)" % rel] = module_ids
    return out


def problems(reqs, marks, root=ROOT):
    """What makes the trace incomplete: unknown ids in tests, requirements without a test,
    scenarios that do not exist."""
    known = set(r[0] for r in reqs)
    out = []
    for test, ids in sorted(marks.items()):
        for rid in ids:
            if rid not in known:
                out.append("%s names %s, which %s does not define" % (test, rid, SAFETY))
    covered = set(rid for ids in marks.values() for rid in ids)
    for rid, text, scenarios in reqs:
        if rid not in covered:
            out.append("%s (%s) has no test: mark one with @pytest.mark.req(%r)" % (rid, text, rid))
        for name in scenarios:
            if not os.path.exists(os.path.join(root, "scenarios", name + ".toml")):
                out.append("%s names scenario %s, which scenarios/ does not have" % (rid, name))
    return out


def render(reqs, marks):
    by_req = {}
    for test, ids in sorted(marks.items()):
        for rid in ids:
            by_req.setdefault(rid, []).append(test)
    lines = [
        "# Traceability: requirement -> tests -> scenarios",
        "",
        "Generated by `vpump traceability` (tools/traceability.py) from the requirement table of",
        "[safety.md](safety.md) and the `@pytest.mark.req` marks in `tests/`; do not edit by hand",
        "(`make traceability` regenerates it, and `tests/test_traceability.py` fails when it is",
        "stale, when a requirement has no test or when a test names an unknown requirement).",
        "Requirements SR-01 to SR-17 are also checked by the invariant monitor (`sim/monitor.py`, rules in `sim/monitor_rules.py`)",
        "after every event of every `vpump run`, and so in every scenario and campaign run.",
        "",
        "| requirement | tests | scenarios |",
        "|---|---|---|",
    ]
    for rid, text, scenarios in reqs:
        tests = by_req.get(rid, [])
        lines.append("| **%s** %s | %s | %s |" % (
            rid, text, "<br>".join("`%s`" % t for t in tests) or "**none**",
            ", ".join("`%s`" % s for s in scenarios) or "-"))
    lines.append("")
    lines.append("%d requirements, %d marked tests." % (len(reqs), len(marks)))
    lines.append("")
    return "\n".join(lines)


def main(argv=None, root=ROOT):
    argv = list(sys.argv[1:] if argv is None else argv)
    check = "--check" in argv
    unknown = [a for a in argv if a != "--check"]
    if unknown:
        sys.stderr.write("vpump traceability: unknown argument %s; allowed: --check\n" % unknown[0])
        return 2
    try:
        reqs = requirements(root)
    except (OSError, TraceabilityError) as exc:
        sys.stderr.write("vpump traceability: %s\n" % exc)
        return 1
    marks = test_marks(root)
    text = render(reqs, marks)
    found = problems(reqs, marks, root)
    path = os.path.join(root, OUTPUT)
    for p in found:
        sys.stderr.write("vpump traceability: %s\n" % p)
    if check:
        try:
            with open(path, encoding="utf-8") as f:
                current = f.read()
        except OSError:
            current = None
        if current != text:
            sys.stderr.write("vpump traceability: %s is out of date: run `vpump traceability` "
                             "(or `make traceability`)\n" % OUTPUT)
            return 1
        return 1 if found else 0
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
    sys.stderr.write("wrote %s (%d requirements, %d marked tests)\n" % (OUTPUT, len(reqs), len(marks)))
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
