# Hardware abstraction layer: interfaces in hal.base, one module per backend, found through the
# lazy registry of hal/registry.py (hal.open_board("sim"), hal.backend_class, hal.link_class).
# The registry is for hosts: a board imports hal.machine itself, and its .mpy bundle leaves the
# registry out (tools/flash.py skips imports guarded by ImportError).

try:
    from hal.registry import BACKENDS, LINKS, backend_class, open_board, link_class  # noqa: F401
except ImportError:
    pass
