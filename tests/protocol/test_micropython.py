# protocol/ must run unchanged on MicroPython 1.27: the same script runs on CPython and on
# MicroPython's WebAssembly port (under node) and must print the same.  Skipped unless
# VPUMP_MICROPYTHON_WASM names a folder where
#     npm install @micropython/micropython-webassembly-pyscript@1.27.0
# was run, and node is on PATH.
import os
import shutil
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
UPY = os.path.join(HERE, "upy")
WASM_DIR = os.environ.get("VPUMP_MICROPYTHON_WASM", "")
NODE = shutil.which("node")

pytestmark = pytest.mark.skipif(
    not (WASM_DIR and NODE and os.path.isdir(os.path.join(
        WASM_DIR, "node_modules", "@micropython", "micropython-webassembly-pyscript"))),
    reason="set VPUMP_MICROPYTHON_WASM to a folder with @micropython/"
           "micropython-webassembly-pyscript installed (npm), and have node on PATH")


def run_micropython(script):
    proc = subprocess.run([NODE, os.path.join(UPY, "run.mjs"), WASM_DIR, ROOT, script],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def run_cpython(script):
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.run([sys.executable, script], capture_output=True, text=True, timeout=120,
                          cwd=ROOT, env=env)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_same_results_on_micropython_and_cpython():
    script = os.path.join(UPY, "same_results.py")
    upy = run_micropython(script)
    assert upy.rstrip().endswith("done"), upy
    assert upy == run_cpython(script)


def test_micropython_uses_the_pure_crc():
    script = os.path.join(UPY, "backend.py")
    assert run_micropython(script).split() == ["pure", "micropython"]
