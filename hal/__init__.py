# Hardware abstraction layer: interfaces in hal.base, one module per backend.
#
# Backends are found through a lazy registry (python-can's interfaces): a backend's module is
# imported only when it is asked for, so a missing optional dependency (pyserial, machine)
# breaks only its own backend.

from hal.errors import BackendNotFound

# name -> (module, class).  The class builds a board: an object with the parts as attributes
# (clock, motor, battery, storage, annunciator, rng, and link where the backend has one).
BACKENDS = {
    "sim": ("hal.sim", "SimBoard"),
}


def backend_class(name):
    try:
        module_name, class_name = BACKENDS[name]
    except KeyError:
        raise BackendNotFound(
            "HAL backend %r unknown; known backends: %s" % (name, ", ".join(sorted(BACKENDS)))
        )
    module = __import__(module_name, None, None, [class_name])
    return getattr(module, class_name)


def open_board(name, **config):
    return backend_class(name)(**config)
