"""The layering rules of docs/architecture.md, checked on the source (the AST of every .py file):

- firmware/, hal/, protocol/ and board/ never import sim/ or tools/; sim/ never imports tools/.
- protocol/ imports no firmware/ (the wire format sits below the pump that speaks it).
- firmware/ uses only hal's interfaces (hal/base.py, hal/errors.py), never a backend.
- firmware/ and protocol/ import no CPython-only module (dataclasses, enum, typing, ...) except
  under `if TYPE_CHECKING:`; they run unchanged on MicroPython.
- What a board runs (the bundle tools/flash.py builds) imports, outside `try: ... except
  ImportError`, only our own packages and modules MicroPython 1.27 has built in.

Imports anywhere in a file count (a lazy import inside a function is still a dependency).
"""

import ast
import os
import sys

import pytest

from tools import flash

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("firmware", "hal", "protocol", "sim", "tools", "board")

# May not import these top-level packages.
FORBIDDEN = {
    "firmware": ("sim", "tools"),
    "hal": ("sim", "tools", "firmware"),
    "protocol": ("sim", "tools", "firmware"),
    "board": ("sim", "tools"),
    "sim": ("tools",),
}
HAL_INTERFACES = ("hal", "hal.base", "hal.errors")
CPYTHON_ONLY = ("dataclasses", "enum", "typing", "threading", "abc", "pathlib", "logging",
                "functools", "itertools", "contextlib", "subprocess", "multiprocessing",
                "inspect", "importlib", "decimal", "datetime", "argparse", "tomllib")
# Modules MicroPython 1.27 has built in on the ports vpump targets (rp2, esp32, webassembly).
MICROPYTHON_BUILTINS = ("array", "asyncio", "binascii", "builtins", "cmath", "collections",
                        "cryptolib", "deflate", "errno", "gc", "hashlib", "heapq", "io", "json",
                        "machine", "math", "micropython", "os", "platform", "random", "re",
                        "select", "socket", "ssl", "struct", "sys", "time", "uctypes", "vfs")
# Imports in a branch only CPython takes (the tests run the board entry on CPython too).
HOST_BRANCHES = {
    # _print_exception: MicroPython has sys.print_exception, CPython's branch uses traceback.
    os.path.join("board", "vpump_main.py"): ("traceback",),
}


def _sources():
    for package in PACKAGES:
        for folder, dirs, files in os.walk(os.path.join(ROOT, package)):
            dirs[:] = [d for d in dirs if d != "__pycache__"]
            for name in sorted(files):
                if name.endswith(".py"):
                    path = os.path.join(folder, name)
                    yield package, os.path.relpath(path, ROOT)


SOURCES = sorted(_sources())


def _parse(rel):
    with open(os.path.join(ROOT, rel), encoding="utf-8") as f:
        return ast.parse(f.read(), rel)


def _module_name(rel):
    parts = rel[:-3].split(os.sep)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking_only(tree):
    # Nodes inside `if TYPE_CHECKING:` (or `if typing.TYPE_CHECKING:`): never run.
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            test = node.test
            name = test.id if isinstance(test, ast.Name) else \
                test.attr if isinstance(test, ast.Attribute) else None
            if name == "TYPE_CHECKING":
                for stmt in node.body:
                    for inner in ast.walk(stmt):
                        skip.add(id(inner))
    return skip


def imports(rel, tree=None, skip=()):
    """(line, absolute module name) of every import in the file, relative ones resolved."""
    tree = tree or _parse(rel)
    package = _module_name(rel).split(".")
    if not rel.endswith("__init__.py"):
        package = package[:-1]
    found = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            found.append((node.lineno, module))
            # `from hal import sim` imports the module hal.sim.
            found += [(node.lineno, module + "." + alias.name) for alias in node.names
                      if os.path.isfile(os.path.join(ROOT, *(module + "." + alias.name)
                                                     .split(".")) + ".py")]
    return found


def test_the_sources_are_found():
    names = [rel for _, rel in SOURCES]
    for must in ("firmware/pump.py", "protocol/client.py", "sim/telemetry_link.py",
                 "tools/cli.py", "board/vpump_main.py", "hal/base.py"):
        assert must.replace("/", os.sep) in names
    # The checks see relative imports, `from package import module` and lazy imports.
    tree = ast.parse("from . import frame\nfrom hal import sim\ndef f():\n    import tools.cli\n")
    found = [m for _, m in imports(os.path.join("protocol", "x.py"), tree)]
    assert sorted(found) == ["hal", "hal.sim", "protocol", "protocol.frame", "tools.cli"]


def test_imports_run_down_the_layers():
    wrong = []
    for package, rel in SOURCES:
        for line, module in imports(rel):
            top = module.split(".")[0]
            if top in FORBIDDEN.get(package, ()):
                wrong.append("%s:%d imports %s (%s/ may not import %s/)"
                             % (rel, line, module, package, top))
            if package == "firmware" and top == "hal" and module not in HAL_INTERFACES:
                wrong.append("%s:%d imports %s (firmware/ uses only hal's interfaces: %s)"
                             % (rel, line, module, ", ".join(HAL_INTERFACES)))
    assert not wrong, "imports that run up the layers (docs/architecture.md):\n" + \
        "\n".join(wrong)


def test_firmware_and_protocol_import_no_cpython_only_module():
    wrong = []
    for package, rel in SOURCES:
        if package not in ("firmware", "protocol"):
            continue
        tree = _parse(rel)
        for line, module in imports(rel, tree, _type_checking_only(tree)):
            if module.split(".")[0] in CPYTHON_ONLY:
                wrong.append("%s:%d imports %s" % (rel, line, module))
    assert not wrong, ("firmware/ and protocol/ run on MicroPython, which has none of %s "
                       "(only under `if TYPE_CHECKING:`):\n%s"
                       % (", ".join(CPYTHON_ONLY), "\n".join(wrong)))


def test_what_a_board_runs_imports_only_micropython_builtins():
    board = flash.module_closure(ROOT) + [os.path.join("board", flash.ENTRY + ".py")]
    assert os.path.join("firmware", "pump.py") in board
    assert not any(p.startswith(("sim", "tools")) or p.endswith("client.py") for p in board)
    wrong = []
    for rel in board:
        tree = _parse(rel)
        optional = flash._optional_imports(tree)
        skip = optional | _type_checking_only(tree)
        for line, module in imports(rel, tree, skip):
            top = module.split(".")[0]
            if top not in ("firmware", "hal", "protocol") and top not in MICROPYTHON_BUILTINS \
                    and top not in HOST_BRANCHES.get(rel, ()):
                wrong.append("%s:%d imports %s" % (rel, line, module))
    assert not wrong, ("the board bundle imports modules MicroPython does not have (guard "
                       "host-only ones with try/except ImportError):\n" + "\n".join(wrong))


@pytest.mark.parametrize("source, rule", [
    ("from tools.cli import main\n", "sim/ may not import tools/"),
    ("def later():\n    from tools import prog\n", "sim/ may not import tools/"),
])
def test_a_violation_is_reported(tmp_path, monkeypatch, source, rule):
    # The check itself fails on a planted violation (so a green run means something).
    folder = tmp_path / "sim"
    folder.mkdir()
    (folder / "bad.py").write_text(source)
    this = sys.modules[__name__]
    monkeypatch.setattr(this, "ROOT", str(tmp_path))
    monkeypatch.setattr(this, "SOURCES", [("sim", os.path.join("sim", "bad.py"))])
    with pytest.raises(AssertionError, match=rule):
        test_imports_run_down_the_layers()


def test_docs_architecture_names_files_that_exist():
    # docs/architecture.md says where each concept lives: every path it names must be there.
    import re
    with open(os.path.join(ROOT, "docs", "architecture.md"), encoding="utf-8") as f:
        text = f.read()
    named = set(re.findall(r"`((?:firmware|hal|protocol|sim|tools|board|bench|scenarios|tests)"
                           r"/[A-Za-z0-9_./-]*)`", text))
    assert len(named) > 30
    missing = sorted(p for p in named if not os.path.exists(os.path.join(ROOT, p)))
    assert not missing, "docs/architecture.md names files that do not exist: %s" % missing


# -- module sizes ----------------------------------------------------------------------------

# Small modules, so a reviewer reads one in a sitting: lines per file, by package.
MAX_LINES = {"firmware": 400, "hal": 600, "protocol": 600, "sim": 600, "tools": 600,
             "board": 600}
# Modules that are mostly a table (rows of data, not logic) may be longer: path -> why.
DATA_TABLES = {}
# Modules over their limit today, each with the size it may not grow past until it is split.
# Modules allowed over their package's size, with the reason (none today).
OVER_LIMIT = {}


def _lines(rel):
    with open(os.path.join(ROOT, rel), encoding="utf-8") as f:
        return sum(1 for _ in f)


def test_modules_stay_small():
    wrong = []
    for package, rel in SOURCES:
        limit = MAX_LINES.get(package)
        if limit is None or rel in DATA_TABLES:
            continue
        limit = max(limit, OVER_LIMIT.get(rel, 0))
        n = _lines(rel)
        if n > limit:
            wrong.append("%s: %d lines (at most %d in %s/)" % (rel, n, limit, package))
    assert not wrong, ("modules over their size (docs/architecture.md, \"Sizes\"): split them "
                       "along what they hold:\n" + "\n".join(wrong))
