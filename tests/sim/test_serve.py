"""sim/serve.py and `vpump serve`: a pump behind a link, paced against the wall clock."""

import io
import threading

from sim.links import LoopPair, RateLimited
from sim.serve import Serve
from tools.cli import main
from protocol.client import Programmer

KEYS = {"serial": "VP-SERVE1", "clinician": bytes(range(32)), "patient": bytes(range(1, 33))}


def serving(link, **options):
    serve = Serve(None, link, KEYS, seed=5, **options)
    thread = threading.Thread(target=serve.run, name="serve")
    thread.start()
    return serve, thread


def test_a_programmer_programs_a_served_pump_and_stop_commits(tmp_path):
    pair = LoopPair()
    serve, thread = serving(pair.pump_end, speed=1000.0)
    try:
        with Programmer(pair.programmer_end, key=KEYS["clinician"], timeout_s=5.0) as prog:
            assert prog.identify()["serial"] == "VP-SERVE1"
            assert prog.program_continuous(400)["new_daily_ug"] == 400
            status = prog.interrogate()
            assert status["therapy"] == "infusing" and status["reservoir_nl"] <= 20000000
    finally:
        serve.stop()
        thread.join(10)
    assert not thread.is_alive()
    # The state was committed on the way out: a pump booted from the same storage resumes it.
    from firmware.pump import Pump
    again = Pump(serve.run_.board)
    assert again.boot() is True
    assert again.therapy.program == {"mode": "continuous", "basal_ug_per_day": 400}
    pair.close()


def test_virtual_time_follows_the_speed():
    pair = LoopPair()
    clock = [100.0]
    serve = Serve(None, pair.pump_end, KEYS, speed=3600.0, seed=5, monotonic=lambda: clock[0])
    start = serve.now_virtual_ms()
    serve.step(start + 3600000)              # what run() does after 1 s of wall time at 3600x
    assert serve.now_virtual_ms() == start + 3600000
    serve.shutdown()
    pair.close()


def test_a_baud_limited_link_still_answers():
    pair = LoopPair()
    serve, thread = serving(RateLimited(pair.pump_end, 960.0), speed=1.0)
    try:
        with Programmer(pair.programmer_end, key=KEYS["clinician"], timeout_s=5.0) as prog:
            assert prog.identify()["model"] == "vpump-ib20"
    finally:
        serve.stop()
        thread.join(10)
    pair.close()


def test_serve_rejects_bad_options_with_exit_2():
    err = io.StringIO()
    assert main(["serve", "--speed", "0"], stdout=io.StringIO(), stderr=err) == 2
    assert "got 0, must be a number from 0.001 to 1e9" in err.getvalue()
    err = io.StringIO()
    assert main(["serve", "--baud", "12"], stdout=io.StringIO(), stderr=err) == 2
    assert "got 12, must be a whole number from 300 to 4000000" in err.getvalue()
    err = io.StringIO()
    assert main(["serve", "--keys", "/nonexistent/k.json"], stdout=io.StringIO(), stderr=err) == 2
    assert "--keys /nonexistent/k.json: cannot read" in err.getvalue()


def test_a_noisy_served_link_still_programs_exactly_once():
    # 20 % of the chunks are dropped and 10 % corrupted, both ways (seeded):
    # the programmer resends, the pump answers resends from its cache, and the program and the
    # bolus are each applied once.  Every hit is a link_fault record.
    pair = LoopPair()
    events = []
    noise = {"kind": "link_noise", "direction": "both", "drop_ppm": 200000,
             "corrupt_ppm": 100000, "corrupt_bits": 1}
    # Real time: at 1000x, the resends' seconds would be past the 10-min session idle limit.
    serve = Serve(None, pair.pump_end, KEYS, seed=5, speed=1.0, sink=events.append,
                  noise=noise, noise_seed=11)
    thread = threading.Thread(target=serve.run, name="serve")
    thread.start()
    try:
        with Programmer(pair.programmer_end, key=KEYS["clinician"], timeout_s=0.3,
                        retries=10) as prog:
            assert prog.program_continuous(400)["new_daily_ug"] == 400
            prog.clinician_bolus(50, 30 * 60000)
    finally:
        serve.stop()
        thread.join(10)
    programs = [e for e in events if e["event"] == "program"]
    boluses = [e for e in events if e["event"] == "bolus_start"]
    faults = [e for e in events if e["event"] == "link_fault"]
    assert len(programs) == 1 and len(boluses) == 1
    assert faults and set(e["direction"] for e in faults) <= {"to_pump", "from_pump"}
    assert sum(c["dropped"] + c["corrupted"] for c in serve.noise.counts.values()) == len(faults)
    pair.close()


def test_serve_noise_options_say_what_is_allowed():
    for spec, words in (("drop_pct=200", "[link_noise] drop_pct = 200"),
                        ("drop_pct", "is not KEY=VALUE"),
                        ("loss=3", "unknown key"),
                        ("direction=up,drop_pct=1", "to_pump"),
                        ("corrupt_bits=3", "does nothing"),
                        ("drop_pct=1,seed=-1", "seed = -1")):
        err = io.StringIO()
        assert main(["serve", "--noise", spec], stdout=io.StringIO(), stderr=err) == 2, spec
        assert words in err.getvalue(), (spec, err.getvalue())
