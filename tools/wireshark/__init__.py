"""`vpump wireshark`: the Wireshark dissector for vpump captures (docs/captures.md).

    vpump wireshark --install [--dir DIR]   copy vpump.lua into Wireshark's personal Lua plugins
                                            folder (~/.local/lib/wireshark/plugins; on Windows
                                            %APPDATA%\\Wireshark\\plugins) and say where
    vpump wireshark --print-path            the shipped vpump.lua (for tshark -X lua_script:PATH)
    vpump wireshark --generate / --check    rewrite / check the dissector's generated tables
                                            (tools/wireshark/generate.py)

The package:
    tools/wireshark/vpump.lua       the dissector (package data: installed with vpump)
    tools/wireshark/tables.py       the registries as tables (also checked against docs/protocol.md)
    tools/wireshark/generate.py     writes vpump.lua's tables from them
"""

import os
import shutil

from sim.errors import SimError

LUA_NAME = "vpump.lua"


class WiresharkError(SimError):
    """The plugin cannot be installed (the message names the folder and why): exit 2."""


def lua_path():
    """The shipped dissector."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), LUA_NAME)


def plugin_dir(environ=None):
    """Wireshark's personal plugin folder for Lua scripts on this system."""
    environ = os.environ if environ is None else environ
    if os.name == "nt":
        return os.path.join(environ.get("APPDATA", os.path.expanduser("~")), "Wireshark",
                            "plugins")
    home = environ.get("HOME") or os.path.expanduser("~")
    return os.path.join(home, ".local", "lib", "wireshark", "plugins")


def install(directory=None):
    """Copy vpump.lua into directory (default: plugin_dir()); returns the installed path."""
    directory = directory or plugin_dir()
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise WiresharkError("--dir %s: is a file, not a folder" % directory)
    try:
        os.makedirs(directory, exist_ok=True)
        target = os.path.join(directory, LUA_NAME)
        shutil.copyfile(lua_path(), target)
    except OSError as exc:
        raise WiresharkError("cannot install into %s: %s" % (directory, exc.strerror or exc)) \
            from None
    return target


def add_parser(commands):
    p = commands.add_parser(
        "wireshark", help="install the Wireshark dissector for vpump captures",
        description="The Wireshark dissector (Lua) for captures written by `vpump serve "
                    "--capture` and `vpump prog --capture` (docs/captures.md): every frame, "
                    "command, field with its unit, NAK, CRC check.  --install copies it into "
                    "your personal Wireshark plugins folder; --print-path prints the shipped "
                    "file (for tshark -X lua_script:PATH).")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--install", action="store_true",
                       help="copy vpump.lua into Wireshark's personal plugins folder "
                            "(~/.local/lib/wireshark/plugins, or --dir) and print where")
    group.add_argument("--print-path", action="store_true",
                       help="print the path of the shipped vpump.lua")
    group.add_argument("--generate", action="store_true",
                       help="rewrite vpump.lua's tables from protocol/ and firmware/ (developers)")
    group.add_argument("--check", action="store_true",
                       help="exit 1 when vpump.lua's tables are stale (developers)")
    p.add_argument("--dir", metavar="DIR",
                   help="with --install: the plugins folder to copy into instead")
    return p


def run(args, stdout, stderr):
    from tools.wireshark import generate
    if args.dir and not args.install:
        raise WiresharkError("--dir %s: only with --install" % args.dir)
    if args.install:
        target = install(args.dir)
        stdout.write("installed %s\n" % target)
        stdout.write("Wireshark and tshark load it when they start (Help > About Wireshark > "
                     "Plugins lists it); open a capture of `vpump serve --capture FILE`\n")
        return 0
    if args.print_path:
        stdout.write(lua_path() + "\n")
        return 0
    if args.generate:
        changed = generate.write()
        stderr.write("%s %s\n" % ("wrote" if changed else "current:", lua_path()))
        return 0
    if args.check:
        if generate.current():
            stderr.write("current: %s\n" % lua_path())
            return 0
        stderr.write("stale: %s: its tables differ from protocol/ and firmware/; run `vpump "
                     "wireshark --generate` and commit the result\n" % lua_path())
        return 1
    stdout.write("dissector: %s\nplugins folder: %s\n" % (lua_path(), plugin_dir()))
    stdout.write("`vpump wireshark --install` copies it there; or: tshark -X lua_script:%s "
                 "-r FILE.pcapng\n" % lua_path())
    return 0
