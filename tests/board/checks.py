# The machine backend's and the board entry's checks, against the FAKE `machine` stand-in
# (tests/board/fake_machine.py: records pin writes, plays back ADC readings and UART bytes).
# The same functions run on CPython (tests/board/test_machine_backend.py, in-process) and on
# MicroPython 1.27 (the WebAssembly port, through tests/mp/mpsession.py), so they use plain
# `assert` and nothing either interpreter lacks.
#
#   setup(workdir)   once: installs the stand-in as `machine`; files go under workdir
#   CHECKS           names of the check_* functions, in order
#   run_all()        runs every check, printing "PASS name" or "FAIL name: error" per check

import sys

import fake_machine as fm

sys.modules["machine"] = fm

import hal.machine as hm
from hal.base import STROKE_OK, STROKE_STALL, TONE_TWO, TONE_SINGLE
from hal.errors import StorageError

WORKDIR = ["."]
WALL_MS = 1767600000000         # 2026-01-05 08:00 UTC
KEYS_TEXT = ('{"serial": "VP-BENCH1",\n'
             ' "clinician": "' + "11" * 32 + '",\n'
             ' "patient": "' + "22" * 32 + '"}\n')
CLINICIAN_KEY = b"\x11" * 32


def setup(workdir):
    import os
    WORKDIR[0] = workdir
    if not hasattr(os, "urandom"):
        # The WebAssembly port has no os.urandom (its os is a Python package: settable).
        os.urandom = FakeUrandom()


def path(name):
    return WORKDIR[0] + "/" + name


def remove(name):
    import os
    try:
        os.remove(path(name))
    except OSError:
        pass


class FakeUrandom:
    # FAKE random source (the WebAssembly port has no os.urandom): a counter, deterministic.
    def __init__(self):
        self.n = 0

    def __call__(self, n):
        out = bytearray(n)
        for i in range(n):
            self.n += 1
            out[i] = (self.n * 37) & 0xFF
        return bytes(out)


def new_board(start_ms=0, period_bits=30, storage="pump.dat", pin_map="rp2", fresh=True,
              **settings):
    # A MachineBoard on the stand-in; fresh=False keeps the storage file (a reboot).
    fm.reset_state()
    t = fm.FakeTime(start_ms, period_bits)
    hm.time = t
    if fresh:
        remove(storage)
    settings.setdefault("sleep_slice_ms", 1000)
    board = hm.MachineBoard(pin_map, urandom=FakeUrandom(), storage_path=path(storage), **settings)
    healthy_battery(board)
    return board, t


def healthy_battery(board):
    # 3200 mV at the battery through the default 2:1 divider (a fresh ADC reads 0: depleted).
    adc = fm.ADCS[board.pins["battery_adc"]]
    adc.u16 = 65535 * 1600 // 3300 + 1
    adc.uv = 1600000


def pump_on(board, bolus_ug=0):
    # Refilled (20 mL of 2000 ug/mL), 500 ug/day continuous, optionally a bolus over 60 s
    # (10 strokes of 1 uL per 20 ug, one every 6 s).
    from firmware.pump import Pump
    p = Pump(board, wall_ms=WALL_MS)
    p.boot()
    assert p.refill(20000000, 2000) == 0, p.refusal
    assert p.program_continuous(500) == 0, p.refusal
    assert p.start() == 0, p.refusal
    if bolus_ug:
        assert p.clinician_bolus(bolus_ug, 60000) == 0, p.refusal
    return p


def step_pin(board):
    return fm.PINS[board.pins["step"]]


# -- motor --------------------------------------------------------------------------------

def check_stroke_toggles_step_pins():
    board, t = new_board(steps_per_stroke=50, step_pulse_us=400)
    p = board.pins
    step, dirp, en = fm.PINS[p["step"]], fm.PINS[p["dir"]], fm.PINS[p["enable"]]
    assert en.level == 1, "driver disabled (/ENABLE high) at start"
    t0 = t._us
    assert board.motor.stroke() == STROKE_OK
    assert step.rising_edges() == 50, step.rising_edges()
    assert step.level == 0
    assert dirp.level == 1
    assert en.writes[-2:] == [0, 1], en.writes      # enabled for the stroke, then disabled
    assert t._us - t0 == 400 + 50 * 2 * 400, t._us - t0   # set-up, then 50 x (high, low)
    # Every step pulse happens while the driver is enabled and DIR is forward.
    enabled = False
    forward = False
    for pin, level in fm.WRITES:
        if pin == p["enable"]:
            enabled = level == 0
        elif pin == p["dir"]:
            forward = level == 1
        elif pin == p["step"] and level:
            assert enabled and forward
    board.motor.stroke()
    assert step.rising_edges() == 100
    assert board.motor.strokes == 2
    board.close()


def check_pump_strokes_reach_the_pins():
    board, t = new_board(steps_per_stroke=20)
    pump = pump_on(board, bolus_ug=20)
    pump.sched.run_until(pump.now_ms() + 61000)
    strokes = pump.doser.strokes
    assert strokes >= 10, strokes                   # the 10 bolus strokes (and maybe a basal one)
    assert board.motor.strokes == strokes
    assert step_pin(board).rising_edges() == 20 * strokes
    board.close()


def check_stall_pin_raises_motor_stall_alarm():
    from firmware import alarms, table
    board, t = new_board(steps_per_stroke=10)
    stall = fm.PINS[board.pins["stall"]]
    assert stall.pull == fm.Pin.PULL_UP and stall.level == 1
    stall.level = 0                                 # the stall switch closes
    assert board.motor.stroke() == STROKE_STALL
    stall.level = 1
    assert board.motor.stroke() == STROKE_OK
    pump = pump_on(board, bolus_ug=20)
    pwm = fm.PWMS[board.pins["piezo"]]
    before = len(pwm.events)
    stall.level = 0
    pump.sched.run_until(pump.now_ms() + 7000)      # the first bolus stroke stalls
    assert pump.state() == table.MOTOR_STALL, pump.state()
    assert alarms.MOTOR_STALL in pump.alarms.active
    assert board.motor.stalls >= 2, board.motor.stalls   # the firmware retries the owed stroke once
    assert board.annunciator.counts[TONE_TWO] == 1  # critical: the two-tone
    assert pwm.events[before:][:2] == [("freq", 2400), ("duty", 32768)], pwm.events[before:]
    board.close()


# -- battery ------------------------------------------------------------------------------

def check_adc_to_mv():
    board, t = new_board()
    adc = fm.ADCS[board.pins["battery_adc"]]
    adc.u16 = 32768                                 # 1650 mV at the pin, 2:1 divider
    assert board.battery.read_mv() == 3300, board.battery.read_mv()
    assert adc.reads == 8
    adc.u16 = 65535
    assert board.battery.read_mv() == 6600
    adc.u16 = 0
    assert board.battery.read_mv() == 0
    board.close()
    # Another divider: 300k over 100k (x4), 1.0 V at the pin.
    board, t = new_board(battery_r_top_ohm=300000, battery_r_bottom_ohm=100000, adc_samples=1)
    fm.ADCS[board.pins["battery_adc"]].u16 = 65535 * 1000 // 3300 + 1
    assert board.battery.read_mv() == 4000, board.battery.read_mv()
    board.close()
    # ESP32: calibrated microvolts, 11 dB attenuation.
    board, t = new_board(pin_map="esp32")
    adc = fm.ADCS[34]
    assert adc.attenuation == fm.ADC.ATTN_11DB
    adc.uv = 1400000
    assert board.battery.read_mv() == 2800
    board.close()


def check_battery_reaches_the_pump():
    from firmware import table
    board, t = new_board()
    adc = fm.ADCS[board.pins["battery_adc"]]
    adc.u16 = 65535 * 1600 // 3300 + 1              # 3200 mV
    pump = pump_on(board)
    assert pump.status()["battery_mv"] == 3200
    adc.u16 = 65535 * 1250 // 3300 + 1              # 2500 mV: below end of service (2600)
    pump.sched.run_until(pump.now_ms() + 3600000 + 1000)  # the hourly battery check
    assert pump.state("battery") != table.BATTERY_OK, pump.state("battery")
    board.close()


# -- annunciator --------------------------------------------------------------------------

def _play(board, t, ms, step_ms=50):
    # Advance the fake time, servicing the annunciator as the main loop does.
    end = t.now_ms + ms
    while t.now_ms < end:
        t.advance_ms(step_ms)
        board.service()


def check_pwm_two_tone_and_single_tone():
    board, t = new_board()
    pwm = fm.PWMS[board.pins["piezo"]]
    assert pwm.duty == 0                            # silent at start
    board.annunciator.tone(TONE_TWO, 3000)
    _play(board, t, 3200)
    heard = pwm.sounding()
    assert heard == [2400, 1600] * 6 + [0], heard   # 12 alternations of 250 ms, then silence
    assert pwm.times[-1] - pwm.times[0] == 3000, (pwm.times[0], pwm.times[-1])
    pwm.events = []
    pwm.times = []
    board.annunciator.tone(TONE_SINGLE, 1000)
    _play(board, t, 1200)
    assert pwm.sounding() == [2400, 0], pwm.sounding()
    assert pwm.times[-1] - pwm.times[0] == 1000
    # Back to back (the alarm test): the second waits for the first.
    pwm.events = []
    board.annunciator.tone(TONE_TWO, 1000)
    board.annunciator.tone(TONE_SINGLE, 1000)
    _play(board, t, 2200)
    assert pwm.sounding() == [2400, 1600, 2400, 1600, 0, 2400, 0], pwm.sounding()
    assert board.service() is None
    board.close()


def check_alarms_sound_critical_vs_noncritical():
    from firmware import alarms
    board, t = new_board()
    pump = pump_on(board)
    pwm = fm.PWMS[board.pins["piezo"]]
    pwm.events = []
    pump.alarms.raise_alarm(alarms.LOW_RESERVOIR)   # non-critical: one steady tone, 1 s
    _play(board, t, 1500)
    assert pwm.sounding() == [2400, 0], pwm.sounding()
    pwm.events = []
    pump.alarms.raise_alarm(alarms.RESERVOIR_EMPTY)  # critical: the two-tone, 3 s
    _play(board, t, 3500)
    assert pwm.sounding() == [2400, 1600] * 6 + [0], pwm.sounding()
    board.close()


# -- storage ------------------------------------------------------------------------------

def check_storage_file_is_presized_and_survives_reboot():
    import os
    board, t = new_board(storage_size=16384)
    assert os.stat(path("pump.dat"))[6] == 16384
    assert board.storage.read(0, 4) == b"\xff\xff\xff\xff"
    pump = pump_on(board)
    assert pump.set_low_reservoir_alarm(3000000) == 0
    board.close()
    # Reboot: a new board on the same flash file.
    board, t = new_board(storage_size=16384, fresh=False, start_ms=123456)
    from firmware.pump import Pump
    pump = Pump(board, wall_ms=0)
    assert pump.boot() is True
    assert pump.boot_count == 2
    assert pump.therapy.program == {"mode": "continuous", "basal_ug_per_day": 500}
    assert pump.reservoir.low_reservoir_alarm_nl == 3000000
    assert pump.state() == "infusing"
    assert pump.wall_ms() >= WALL_MS                # the calendar continues from the commit
    assert os.stat(path("pump.dat"))[6] == 16384
    board.close()


class _PowerCut(Exception):
    pass


def check_storage_atomic_commit_across_a_power_cut():
    # A "power cut" after the first write of a commit (slot invalidated, body not written): the
    # reboot loads the previous snapshot.  Then one after the body (commit magic not written).
    from firmware.pump import Pump
    for cut_after in (1, 2):
        board, t = new_board(storage_size=16384)
        pump = pump_on(board)
        assert pump.set_low_reservoir_alarm(3000000) == 0
        storage = board.storage
        real_write = storage._write_internal
        writes = [0]

        def cut(addr, data):
            if writes[0] >= cut_after:
                raise _PowerCut("power cut")
            writes[0] += 1
            real_write(addr, data)

        storage._write_internal = cut
        try:
            pump.persist.commit({"v": 99})
            assert False, "the cut did not happen"
        except _PowerCut:
            pass
        board.close()
        board, t = new_board(storage_size=16384, fresh=False)
        pump = Pump(board, wall_ms=0)
        assert pump.boot() is True
        assert pump.reservoir.low_reservoir_alarm_nl == 3000000, cut_after
        board.close()


def check_storage_grows_a_short_file():
    import os
    remove("short.dat")
    with open(path("short.dat"), "wb") as f:
        f.write(b"VP12")
    board, t = new_board(storage="short.dat", fresh=False, storage_size=1024)
    assert os.stat(path("short.dat"))[6] == 1024
    assert board.storage.read(0, 6) == b"VP12\xff\xff"
    board.storage.write(1020, b"abcd")
    try:
        board.storage.write(1022, b"abcd")
        assert False, "a write past the end must fail"
    except StorageError:
        pass
    board.close()


# -- link ---------------------------------------------------------------------------------

def _exchange(uart, poll, data):
    from protocol import frame
    uart.feed(data)
    poll()
    out = uart.take_sent()
    items = frame.Decoder().feed(out)
    assert len(items) == 1, (out, items)
    return items[0]


def check_uart_bytes_reach_telemetry():
    from firmware.telemetry import Telemetry
    from protocol import commands as C
    from protocol import frame, keys, session
    board, t = new_board()
    assert fm.UARTS[0].baudrate == 115200 and fm.UARTS[0].tx.id == 0 and fm.UARTS[0].rx.id == 1
    pump = pump_on(board)
    tel = Telemetry(pump, board.link, keys.parse_keys(KEYS_TEXT))
    uart = fm.UARTS[0]
    assert tel.poll() == 0 and uart.sent == b""
    assert not board.link.pending()
    # Identify (no session), split across two arrivals.
    req = frame.encode(1, C.IDENTIFY)
    uart.feed(req[:3])
    assert board.link.pending()
    tel.poll()
    assert uart.sent == b""
    status, ver, seq, cmd, payload = _exchange(uart, tel.poll, req[3:])
    assert (status, seq, cmd) == (0, 1, C.IDENTIFY | frame.RESPONSE)
    ident = C.decode_response(cmd, payload)[1]
    assert ident["serial"] == "VP-BENCH1", ident
    # A clinician session, then an authenticated interrogation.
    cn = b"c" * 16
    item = _exchange(uart, tel.poll, frame.encode(2, C.SESSION_OPEN, C.encode_request(
        C.SESSION_OPEN, {"role": session.ROLE_CLINICIAN, "cn": cn})))
    opened = C.decode_response(item[3], item[4])[1]
    pn = opened["pn"]
    proof = session.client_proof(CLINICIAN_KEY, pn, cn, session.ROLE_CLINICIAN)
    item = _exchange(uart, tel.poll, frame.encode(3, C.SESSION_AUTH, C.encode_request(
        C.SESSION_AUTH, {"session_id": opened["session_id"], "proof": proof})))
    assert item[4][0] == 0, item                    # ACK
    s = session.session_key(CLINICIAN_KEY, pn, cn, session.ROLE_CLINICIAN)
    body = session.wrap_request(s, frame.VERSION, 4, C.INTERROGATE, 1,
                                C.encode_request(C.INTERROGATE, {}))
    item = _exchange(uart, tel.poll, frame.encode(4, C.INTERROGATE, body))
    counter, rbody, mac = session.unwrap(item[4])
    assert session.verify_response(s, frame.VERSION, 4, item[3], counter, rbody, mac)
    status = C.decode_response(item[3], rbody)[1]
    assert status["basal_ug_per_day"] == 500 and status["therapy_on"], status
    assert board.link.bytes_in > 0 and board.link.bytes_out > 0
    board.close()
    assert uart.closed


def check_uart_wakes_the_sleep():
    board, t = new_board(sleep_slice_ms=10)
    uart = fm.UARTS[0]
    t.at(t.now_ms + 35, lambda: uart.feed(b"\xa5"))
    start = board.clock.now_ms()
    woke = board.clock.sleep_until(start + 5000)
    assert 35 <= woke - start <= 45, woke - start   # within a slice of the byte arriving
    board.close()


# -- clock --------------------------------------------------------------------------------

def check_ticks_wrap():
    board, t = new_board(start_ms=(1 << 30) - 5000)
    assert hm.wrap_bits() == 30
    clock = board.clock
    assert clock.now_ms() == 0
    t.advance_ms(4000)
    assert clock.now_ms() == 4000
    t.advance_ms(3000)                              # the raw counter wrapped
    assert t.ticks_ms() == 2000
    assert clock.now_ms() == 7000
    assert clock.sleep_until(9500) == 9500
    board.close()
    # A short period (2**20 ms, 17.5 min): a pump runs two hours across seven wraps and
    # delivers every bolus stroke, the basal ones and its hourly housekeeping.
    board, t = new_board(start_ms=(1 << 20) - 30000, period_bits=20, steps_per_stroke=2)
    assert hm.wrap_bits() == 20
    pump = pump_on(board, bolus_ug=20)
    start = pump.now_ms()
    pump.sched.run_until(start + 2 * 3600000)
    assert pump.now_ms() == start + 2 * 3600000
    # 500 ug/day at 2000 ug/mL is 250 strokes a day: 20 in two hours, plus the bolus' 10.
    assert 29 <= pump.doser.strokes <= 31, pump.doser.strokes
    assert board.motor.strokes == pump.doser.strokes
    board.close()


# -- the board entry ----------------------------------------------------------------------

def _write(name, text):
    with open(path(name), "w") as f:
        f.write(text)


def _board_json(**extra):
    import json
    config = {"board": "rp2", "settings": {"storage_path": path("app.dat"),
                                           "sleep_slice_ms": 1000},
              "factory_wall_ms": WALL_MS}
    for k in extra:
        config[k] = extra[k]
    return json.dumps(config)


def _app(keys=True, **extra):
    import vpump_main
    fm.reset_state()
    t = fm.FakeTime(0)
    hm.time = t
    remove("app.dat")
    _write("board.json", _board_json(**extra))
    if keys:
        _write("keys.json", KEYS_TEXT)
    else:
        remove("keys.json")
    app = vpump_main.App(path("board.json"), path("keys.json"))
    healthy_battery(app.board)
    return app, t


def check_main_boots_and_answers():
    from protocol import commands as C
    from protocol import frame
    app, t = _app()
    assert app.pump.boot_count == 1 and app.pump.state() == "idle"
    assert app.pump.wall_ms() == WALL_MS
    assert app.telemetry is not None
    woke = app.step()
    assert woke == 50, woke                         # the LED heartbeat's first change
    uart = fm.UARTS[0]
    t.at(t.now_ms + 300, lambda: uart.feed(frame.encode(9, C.IDENTIFY)))
    for _ in range(5):
        app.step()
    out = frame.Decoder().feed(uart.take_sent())
    assert len(out) == 1 and out[0][2] == 9, out
    assert C.decode_response(out[0][3], out[0][4])[1]["serial"] == "VP-BENCH1"
    led = fm.PINS["LED"]
    assert led.writes == [1, 0] * (len(led.writes) // 2), led.writes   # heartbeat
    app.close()


def check_main_runs_therapy_in_its_loop():
    app, t = _app()
    pump = app.pump
    assert pump.refill(20000000, 2000) == 0
    assert pump.program_continuous(500) == 0 and pump.start() == 0
    assert pump.clinician_bolus(20, 60000) == 0
    end = t.now_ms + 65000
    while t.now_ms < end:
        app.step()
    assert pump.doser.strokes >= 10, pump.doser.strokes
    assert step_pin(app.board).rising_edges() == 200 * pump.doser.strokes
    assert pump.state() == "infusing"
    app.close()


def check_main_refuses_telemetry_without_keys():
    from protocol import commands as C
    from protocol import frame
    app, t = _app(keys=False)
    assert app.telemetry is None
    assert "no keys file" in app.keys_problem
    uart = fm.UARTS[0]
    uart.feed(frame.encode(1, C.IDENTIFY))
    for _ in range(8):
        app.step()
    assert uart.sent == b"", uart.sent              # nothing answered
    assert app.refused_bytes > 0 and uart.any() == 0
    led = fm.PINS["LED"]
    assert len(led.writes) >= 8                     # fast blink: 125 ms on, 125 ms off
    assert t.now_ms <= 8 * 125 + 10, t.now_ms
    # A bad keys file is refused with the reason too.
    _write("keys.json", '{"serial": "x"}')
    import vpump_main
    keys, why = vpump_main.load_keys(path("keys.json"))
    assert keys is None and "clinician" in why, why
    app.close()


def check_main_config_file():
    import vpump_main
    remove("none.json")
    config = vpump_main.load_config(path("none.json"))      # missing: sys.platform's, or rp2
    assert config["board"] == "rp2" and config["watchdog_ms"] == 0, config
    for text, words in (('{"board": "pico"}', ("board", "pico", "esp32, rp2")),
                        ('{"pinz": {}}', ("pinz", "known", "settings")),
                        ('[1]', ("JSON object",)),
                        ('{"board": ', ("not JSON",))):
        _write("bad.json", text)
        try:
            vpump_main.load_config(path("bad.json"))
            assert False, text
        except ValueError as e:
            for w in words:
                assert w in str(e), (w, str(e))
    # Unknown pins and settings are refused by the board, naming the known ones.
    for kw in ({"pins": {"stepp": 1}}, {"stepps_per_stroke": 1}):
        try:
            fm.reset_state()
            hm.time = fm.FakeTime(0)
            hm.MachineBoard("rp2", urandom=FakeUrandom(), storage_path=path("x.dat"), **kw)
            assert False, kw
        except hm.HalError as e:
            assert "unknown; known:" in str(e), str(e)
    try:
        hm.MachineBoard("pico")
        assert False
    except hm.HalError as e:
        assert "'pico' unknown; known: esp32, rp2" in str(e), str(e)


def check_main_survives_a_firmware_exception():
    app, t = _app()
    pump = app.pump
    assert pump.refill(20000000, 2000) == 0
    assert pump.program_continuous(500) == 0 and pump.start() == 0

    def broken():
        raise RuntimeError("injected")

    pump.sched.at(pump.now_ms() + 100, broken)
    t.stop_after_sleeps = 20
    try:
        app.run_forever()
        assert False, "run_forever returned"
    except fm.Stop:
        pass
    assert app.faults == 1
    assert app.pump is not pump                     # rebuilt from its last commit
    assert app.pump.boot_count == 2 and app.pump.state() == "infusing", app.pump.state()
    # Faults over and over (the storage fails, so no rebuild works): the board is reset.
    app.pump.sched.at(app.pump.now_ms(), broken)

    def broken_read(addr, n):
        raise RuntimeError("injected storage failure")

    app.board.storage._read_internal = broken_read
    t.stop_after_sleeps = 50
    try:
        app.run_forever()
        assert False, "no reset"
    except fm.Reset:
        pass
    assert fm.RESETS == [1]
    assert app.faults == 4, app.faults             # the 4th within a minute resets


def check_main_py_runs_the_loop():
    # board/main.py as MicroPython runs it after a reset: it imports vpump_main and runs it
    # (default file names, relative to the current directory) until the fake time stops it.
    import os
    here = os.getcwd()
    os.chdir(WORKDIR[0])
    try:
        fm.reset_state()
        t = fm.FakeTime(0)
        hm.time = t
        remove("vpump.dat")
        _write("board.json", '{"board": "rp2", "settings": {"sleep_slice_ms": 1000}}')
        _write("keys.json", KEYS_TEXT)
        t.stop_after_sleeps = 3
        with open(MAIN_PY) as f:
            source = f.read()
        try:
            exec(source, {"__name__": "__main__"})
            assert False, "main.py returned"
        except fm.Stop:
            pass
        assert os.stat("vpump.dat")[6] == 32768     # booted: storage made, first commit
        assert fm.UARTS[0].closed                   # and closed on the way out
        assert fm.PWMS[15].duty == 0
        assert fm.PINS[4].level == 1                # stepper driver disabled
    finally:
        os.chdir(here)


MAIN_PY = "main.py"

CHECKS = [name for name in sorted(globals()) if name.startswith("check_")]


def run_all():
    failed = 0
    for name in CHECKS:
        try:
            globals()[name]()
            print("PASS " + name)
        except Exception as e:
            failed += 1
            print("FAIL %s: %s: %s" % (name, type(e).__name__, e))
            pe = getattr(sys, "print_exception", None)
            if pe is not None:
                pe(e)
    print("done %d failed" % failed)
