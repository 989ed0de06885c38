"""MicroPython 1.27 sessions for tests and benchmarks: the WebAssembly port under node.

The port is the npm package @micropython/micropython-webassembly-pyscript, pinned in the repo's
package.json / package-lock.json and installed into ./node_modules by `npm ci` (`make test` runs
it).  VPUMP_MICROPYTHON_WASM may name another folder that has node_modules/ with the package.

    with MicroPython() as mp:                       # one node process, one interpreter
        mp.write("/data/config.json", b"{...}")     # any file into its in-memory file system
        mp.read("/data/out.bin")                    # and back, without touching its heap
        out = mp.run("import firmware.pump\\nprint('ok')")   # stdout of the program

A session starts with PORTABLE_FILES (firmware/, protocol/, the HAL interfaces, the sim backend
and the portable scenario replay) copied under /lib, first on sys.path.  Each run() executes in
fresh globals; imported modules stay imported, so later programs start fast.  A program that
raises makes run() raise MicroPythonError with MicroPython's traceback.

Also a small CLI for people: `python tests/mp/mpsession.py SCRIPT.py` runs a script there.
"""

import base64
import json
import os
import select
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
RUN_MJS = os.path.join(HERE, "run.mjs")
PACKAGE = os.path.join("node_modules", "@micropython", "micropython-webassembly-pyscript")

# The modules that must run unchanged on MicroPython, and the simulated board and replay driver
# that run a scenario there (paths relative to the repo root).
PORTABLE_PACKAGES = ("firmware", "protocol")
PORTABLE_EXTRA = ("hal/__init__.py", "hal/base.py", "hal/errors.py", "hal/sim.py",
                  "hal/sim_storage.py", "hal/file_storage.py", "sim/__init__.py",
                  "sim/replay.py", "sim/plan.py", "sim/plan_faults.py", "sim/physical.py",
                  "sim/battery.py", "sim/crystal.py")


def portable_files(root=ROOT):
    files = []
    for package in PORTABLE_PACKAGES:
        for name in sorted(os.listdir(os.path.join(root, package))):
            if name.endswith(".py"):
                files.append(package + "/" + name)
    return files + list(PORTABLE_EXTRA)


PORTABLE_FILES = portable_files()


def node_path():
    return shutil.which("node")


def wasm_dir():
    return os.environ.get("VPUMP_MICROPYTHON_WASM") or ROOT


def skip_reason():
    """Why MicroPython tests cannot run here at all (node missing), else None."""
    if node_path() is None:
        return ("node is not on PATH: the MicroPython tests run MicroPython's WebAssembly port "
                "under node (install nodejs, then `make test` installs the port with npm ci)")
    return None


def missing_package():
    """A message if the npm package is not installed where we look, else None."""
    where = os.path.join(wasm_dir(), PACKAGE)
    if os.path.isfile(os.path.join(where, "micropython.mjs")):
        return None
    return ("%s is missing: run `npm ci` in %s (make test does), or set VPUMP_MICROPYTHON_WASM "
            "to a folder whose node_modules has @micropython/micropython-webassembly-pyscript"
            % (where, wasm_dir()))


class MicroPythonError(Exception):
    """A program failed under MicroPython (traceback in .error, its output so far in .out)."""

    def __init__(self, error, out=""):
        Exception.__init__(self, "%s\n--- output before the error ---\n%s" % (error, out[-4000:]))
        self.error = error
        self.out = out


def run_cpython(script, timeout_s=120):
    """The same program under CPython, for comparison: (stdout, stderr) of the script run with
    the repository on its path; a failure (non-zero exit) fails the calling test."""
    proc = subprocess.run([sys.executable, script], capture_output=True, text=True,
                          timeout=timeout_s, cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT))
    assert proc.returncode == 0, proc.stderr
    return proc.stdout, proc.stderr


class MicroPython:
    _proc = None

    def __init__(self, files=None, root=ROOT, timeout_s=60, heapsize=None):
        # heapsize: the GC heap to start with, in bytes (None: the loader's 1 MiB); see run.mjs.
        problem = skip_reason() or missing_package()
        if problem:
            raise MicroPythonError(problem)
        self.files = PORTABLE_FILES if files is None else list(files)
        options = ["--heapsize=%d" % heapsize] if heapsize else []
        self._proc = subprocess.Popen(
            [node_path(), RUN_MJS, wasm_dir(), root] + options + self.files,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=root)
        self._buf = b""
        self.timeout_s = timeout_s

    def run(self, code, timeout_s=None):
        """Run code (a program's source) and return what it printed."""
        reply = self._request({"op": "run", "code": code}, timeout_s)
        if not reply["ok"]:
            raise MicroPythonError(reply["error"], reply.get("out", ""))
        return reply["out"]

    def run_file(self, path, timeout_s=None):
        with open(path, encoding="utf-8") as f:
            return self.run(f.read(), timeout_s)

    def write(self, path, data):
        """Write bytes (or str, as UTF-8) to path in MicroPython's file system."""
        if isinstance(data, str):
            data = data.encode("utf-8")
        reply = self._request({"op": "write", "path": path,
                               "b64": base64.b64encode(data).decode("ascii")}, None)
        if not reply["ok"]:
            raise MicroPythonError(reply["error"])

    def read(self, path):
        """The bytes of path in MicroPython's file system (read by node: no heap used)."""
        reply = self._request({"op": "read", "path": path}, None)
        if not reply["ok"]:
            raise MicroPythonError(reply["error"])
        return base64.b64decode(reply["b64"])

    def _request(self, request, timeout_s):
        proc = self._proc
        if proc is None or proc.poll() is not None:
            raise MicroPythonError("the MicroPython session has ended%s" % self._stderr())
        proc.stdin.write(json.dumps(request).encode("utf-8") + b"\n")
        proc.stdin.flush()
        deadline = time.monotonic() + (self.timeout_s if timeout_s is None else timeout_s)
        fd = proc.stdout.fileno()
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                self.close()
                raise MicroPythonError("no answer from MicroPython within %s s; session killed"
                                       % (self.timeout_s if timeout_s is None else timeout_s))
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    raise MicroPythonError("node exited (status %s)%s"
                                           % (proc.wait(), self._stderr()))
                self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return json.loads(line.decode("utf-8"))

    def _stderr(self):
        try:
            text = self._proc.stderr.read().decode("utf-8", "replace") if self._proc else ""
        except (OSError, ValueError):
            text = ""
        return ": " + text.strip() if text.strip() else ""

    def close(self):
        proc = self._proc
        if proc is None:
            return
        self._proc = None
        try:
            proc.stdin.close()
        except OSError:
            pass
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or argv[0].startswith("-"):
        sys.stderr.write("usage: python tests/mp/mpsession.py SCRIPT.py\n"
                         "runs SCRIPT under MicroPython 1.27 (WebAssembly, node) with the "
                         "portable modules on sys.path\n")
        return 2
    try:
        with MicroPython() as mp:
            sys.stdout.write(mp.run_file(argv[0], timeout_s=3600))
    except MicroPythonError as e:
        sys.stderr.write("%s\n" % e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
