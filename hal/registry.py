# The HAL's backend registry (python-can's interfaces): a backend's module is imported only when
# it is asked for, so a missing optional dependency (pyserial, machine) breaks only its own
# backend.  Host-facing: a board imports hal.machine directly, so hal/__init__.py imports this
# module under an ImportError guard and a board's .mpy bundle leaves it out (tools/flash.py).
# Use it as hal.open_board(...), hal.backend_class(...), hal.link_class(...).

from hal.errors import BackendNotFound

# name -> (module, class).  The class builds a board: an object with the parts as attributes
# (clock, motor, battery, storage, annunciator, rng, and link where the backend has one).
BACKENDS = {
    "sim": ("hal.sim", "SimBoard"),
    # Bench I/O (host only): motor, battery, annunciator on a bench board's I/O server over a
    # serial link; clock, storage, rng local.  SerialIOBoard(url=...), see hal/serial_io.py.
    "serial": ("hal.serial_io", "SerialIOBoard"),
    # A real MicroPython board (needs MicroPython's `machine`): MachineBoard(pin_map="rp2"),
    # see hal/machine.py and docs/bench-testing.md.
    "machine": ("hal.machine", "MachineBoard"),
}

# name -> (module, class) of a telemetry Link backend.  "serial" needs pyserial (host only):
# SerialLink(url) opens a device path or any pyserial URL.  The pump side's pty, TCP listener
# and in-process loop live in sim.links (host only, see open_link there).
LINKS = {
    "serial": ("hal.serial_link", "SerialLink"),
}


def _load(registry, kind, name):
    try:
        module_name, class_name = registry[name]
    except KeyError:
        raise BackendNotFound(
            "%s %r unknown; known %ss: %s" % (kind, name, kind, ", ".join(sorted(registry)))
        )
    try:
        module = __import__(module_name, None, None, [class_name])
    except ImportError as exc:
        # Its optional dependency is missing here (pyserial on a board, `machine` on a host).
        raise BackendNotFound("%s %r needs %s, which cannot be imported here (%s): install it, "
                              "or pick another %s" % (kind, name, module_name, exc, kind))
    return getattr(module, class_name)


def backend_class(name):
    return _load(BACKENDS, "HAL backend", name)


def open_board(name, **config):
    return backend_class(name)(**config)


def link_class(name):
    return _load(LINKS, "link backend", name)
