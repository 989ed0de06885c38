"""`vpump prog --list`: what a programmer could talk to from this machine.

Serial ports come from pyserial's list_ports (as `python -m serial.tools.list_ports` shows them);
served pumps from the notes `vpump serve` leaves in the state folder while it runs
($XDG_STATE_HOME/vpump/served/PID.json: its link, key file, scenario and speed; tools/serve.py),
those of a serve that is no longer running skipped.
"""

import json
import os


def served_folder():
    from tools.serve import state_folder
    return os.path.join(state_folder(), "served")


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True             # someone else's process: it exists
    return True


def served_pumps():
    """[{"link", "keys", "pid", "scenario", "speed", "started"}] of the serves running now."""
    folder = served_folder()
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return []
    pumps = []
    for name in names:
        if not name.endswith(".json"):
            continue
        try:
            with open(os.path.join(folder, name), encoding="utf-8") as f:
                note = json.load(f)
        except (OSError, ValueError):
            continue
        if not isinstance(note, dict) or not isinstance(note.get("pid"), int) or \
                not _alive(note["pid"]):
            continue
        pumps.append(note)
    return pumps


def serial_ports():
    """[{"port", "description", "hwid"}] from pyserial's list_ports."""
    from serial.tools import list_ports
    return [{"port": p.device, "description": p.description, "hwid": p.hwid}
            for p in sorted(list_ports.comports(), key=lambda p: p.device)]


def run_list(args, stdout, stderr):
    pumps = served_pumps()
    ports = serial_ports()
    if args.json:
        stdout.write(json.dumps({"served_pumps": pumps, "serial_ports": ports}) + "\n")
        return 0
    stdout.write("pumps served on this machine (vpump serve):\n")
    for p in pumps:
        stdout.write("  %s  keys %s  (%s, speed %gx, pid %d, since %s)\n" % (
            p.get("link"), p.get("keys"), p.get("scenario") or "a fresh pump",
            p.get("speed") or 1, p["pid"], p.get("started", "?")))
    if not pumps:
        stdout.write("  none running\n")
    stdout.write("serial ports (pyserial list_ports):\n")
    for p in ports:
        stdout.write("  %-20s %s%s\n" % (p["port"], p["description"],
                                         "" if p["hwid"] in ("n/a", "") else "  [%s]" % p["hwid"]))
    if not ports:
        stdout.write("  none found\n")
    stdout.write("Use one as URL (or set VPUMP_URL and VPUMP_KEY_FILE): "
                 "vpump prog URL status --key-file FILE\n")
    return 0
