"""SerialLink (pyserial's serial_for_url behind the Link interface) and the link registry."""

import socket
import subprocess
import sys

import pytest

import hal
from hal.errors import BackendNotFound, HalError, LinkError
from hal.serial_link import SerialLink
from sim.links import PtyLink


def test_registry_finds_the_serial_link_lazily():
    assert hal.link_class("serial") is SerialLink
    with pytest.raises(BackendNotFound, match="link backend 'uart' unknown; known link backends: serial"):
        hal.link_class("uart")
    # `import hal` must not import pyserial (MicroPython has none).
    code = "import sys, hal, hal.base; assert 'serial' not in sys.modules, sorted(sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_missing_device_says_to_start_the_pump():
    with pytest.raises(LinkError) as info:
        SerialLink("/dev/pts/987654")
    message = str(info.value)
    assert message.startswith("no such device /dev/pts/987654: is `vpump serve` running?")
    assert "it prints the link path on its first line" in message


def test_unknown_scheme_lists_what_is_allowed():
    with pytest.raises(LinkError, match=r"cannot open bogus://x: unknown URL scheme; use a device path"):
        SerialLink("bogus://x")


def test_nothing_listening_says_to_start_the_pump():
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    url = "socket://127.0.0.1:%d" % port
    with pytest.raises(LinkError, match="nothing listens at %s: start the pump first" % url):
        SerialLink(url)


def test_not_a_url_at_all():
    with pytest.raises(LinkError, match="link None: give a device path"):
        SerialLink(None)


def test_pyserial_loop_echoes_and_wait_polls_without_a_descriptor():
    with SerialLink("loop://") as echo:
        assert echo._fileno is None
        assert not echo.wait(0.01)
        echo.write(b"\x00\r\n\x03")
        assert echo.wait(1.0)
        assert echo.read(10) == b"\x00\r\n\x03"


def test_the_pump_going_away_is_a_link_error_that_says_so():
    pump = PtyLink()
    prog = SerialLink(pump.url)
    try:
        pump.close()
        with pytest.raises(LinkError, match="lost the link /dev/.* while .*start it again"):
            prog.wait(1.0)              # or read(): whichever first meets the hang-up
            prog.read()
    finally:
        prog.close()


def test_close_twice_then_use_is_an_error():
    link = SerialLink("loop://")
    link.close()
    link.close()
    with pytest.raises(HalError, match="SerialLink is closed"):
        link.read()
    with pytest.raises(HalError, match="SerialLink is closed"):
        link.wait(0)


def test_an_empty_tty_reads_as_nothing_and_a_hang_up_as_a_link_error():
    # pyserial sets VMIN=0: an empty tty reads b"" rather than raising EAGAIN, which must not be
    # taken for the other side hanging up (read() never blocks: b"" when nothing came).
    pump = PtyLink()
    prog = SerialLink(pump.url)
    try:
        assert prog.read(10) == b""
        pump.write(b"\xa5")
        assert prog.wait(1.0) and prog.read(10) == b"\xa5"
        assert prog.read(10) == b""
        pump.close()
        with pytest.raises(LinkError, match="end of file: the other side closed the port"):
            prog.read(10)
    finally:
        prog.close()
        pump.close()


def test_a_backend_whose_dependency_is_missing_says_so():
    import hal
    with pytest.raises(BackendNotFound, match="HAL backend 'machine' needs hal.machine, which "
                                              "cannot be imported here"):
        hal.open_board("machine")
