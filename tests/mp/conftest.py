"""Fixtures for tests that run code under MicroPython 1.27 (tests/mp/mpsession.py).

`mp` is one MicroPython session (one node process) per test module: starting one costs about
half a second, a program in a running one a few milliseconds.  Programs in a module share the
interpreter's imported modules and file system, not their globals.  Without node the tests are
skipped with the reason; with node but without the npm package (run `npm ci`, as `make test`
does) they fail and say so: the suite is meant to run them.
"""

import pytest

import mpsession


@pytest.fixture(scope="module")
def mp():
    reason = mpsession.skip_reason()
    if reason:
        pytest.skip(reason)
    problem = mpsession.missing_package()
    if problem:
        pytest.fail(problem, pytrace=False)
    session = mpsession.MicroPython()
    try:
        yield session
    finally:
        session.close()
