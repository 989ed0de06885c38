"""`vpump campaign` (tools/campaign_cmd.py, sim/campaign/): tiny campaigns of 3-day runs.

The same spec must give the same rows on 1 or 2 pool workers and on a real Dask cluster (a
scheduler and two workers started here on 127.0.0.1); a rerun into the same folder runs only
what is missing, also after a Ctrl-C; a bad spec field is one line naming field, value and
allowed range, exit 2.
"""

import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

from sim.campaign import spec as spec_module
from sim.campaign.store import WALL_COLUMNS, read_table
from tools import cli

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VPUMP = os.path.join(os.path.dirname(sys.executable), "vpump")
DASK = os.path.join(os.path.dirname(sys.executable), "dask")

# 2 scenarios x 2 biases x 2 seeds = 8 runs of 3 days, with random stalls and power cuts.
TINY = """
[campaign]
name = "tiny"
seed = 7
seeds = 2
days = 3
scenarios = ["mri-scan", "adult-sci-continuous"]
clinic_visit_after_hours = 6

[vary]
motor_bias_pct = [-2, 2]
refill_error_pct = {min = -5, max = 5}
patient_requests_per_day = 3

[vary.patient]
half_life_h = {min = 1, max = 5}

[[faults]]
kind = "motor_stall"
rate_per_year = 150
duration_hours = {min = 1, max = 4}

[[faults]]
kind = "power_loss"
rate_per_year = 60
"""


def call(*argv):
    out, err = io.StringIO(), io.StringIO()
    code = cli.main([str(a) for a in argv], stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def comparable(rows):
    return [{k: v for k, v in row.items() if k not in WALL_COLUMNS} for row in rows]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("campaign")
    path = folder / "tiny.toml"
    path.write_text(TINY)
    return path


@pytest.fixture(scope="module")
def pooled(tiny, tmp_path_factory):
    """The tiny campaign on 2 local workers: (exit code, stdout, out dir)."""
    out = tmp_path_factory.mktemp("pool2")
    code, text, err = call("campaign", tiny, "--workers", 2, "--out", out)
    assert err == ""
    return code, text, str(out)


def test_two_local_workers_write_rows_aggregate_and_page(pooled):
    code, text, out = pooled
    assert code in (0, 3)
    rows = read_table(os.path.join(out, "results.parquet"))
    assert [r["variant"] for r in rows] == ["%06d" % i for i in range(8)]
    assert set(r["base"] for r in rows) == {"mri-scan", "adult-sci-continuous"}
    assert sorted(set(r["motor_bias_pct"] for r in rows)) == [-2.0, 2.0]
    for row in rows:
        assert row["crash"] is False
        assert row["patient_years"] == pytest.approx(3 / 365.0, abs=1e-6)
        assert row["programmed_ug"] > 0
        assert -5 <= row["refill_error_pct"] <= 5
        assert row["wall_s"] > 0
    # Random stalls at 150 a year over 8 x 3 days: some happened, and the pump saw each one.
    faults = read_table(os.path.join(out, "faults.parquet"))
    stalls = [f for f in faults if f["kind"] == "motor_stall"]
    assert stalls and all(f["detected"] for f in stalls)
    assert sum(r["faults_motor_stall"] for r in rows) == len(stalls)
    with open(os.path.join(out, "aggregate.json")) as f:
        agg = json.load(f)
    assert agg["runs"] == 8 and agg["crashes"]["count"] == 0
    assert agg["faults"]["motor_stall"]["occurrences"] == len(stalls)
    assert agg["faults"]["motor_stall"]["detection_hours"]["n"] == len(stalls)
    assert (code == 3) == bool(agg["violations_total"])
    for req, entry in agg["violations"].items():
        assert os.path.isfile(os.path.join(out, entry["repro"]))
    with open(os.path.join(out, "report.html")) as f:
        page = f.read()
    assert page.count("data:image/png;base64,") >= 4
    assert "8 runs" in text and "motor_stall" in text
    assert len(os.listdir(os.path.join(out, "runs"))) == 8


def test_same_rows_on_one_worker_and_as_csv(pooled, tiny, tmp_path):
    _code, _text, out2 = pooled
    code, _text, err = call("campaign", tiny, "--workers", 1, "--out", tmp_path, "--csv")
    assert err == "" and code in (0, 3)
    two = comparable(read_table(os.path.join(out2, "results.parquet")))
    with open(os.path.join(out2, "aggregate.json")) as f:
        agg2 = json.load(f)
    with open(os.path.join(tmp_path, "aggregate.json")) as f:
        agg1 = json.load(f)
    for agg in (agg1, agg2):
        agg.pop("wall_seconds", None)
    assert agg1 == agg2
    one = read_table(os.path.join(tmp_path, "results.csv"))
    # The CSV holds the same values as text: compare through the Parquet rows' text.
    assert [r["variant"] for r in one] == [r["variant"] for r in two]
    for a, b in zip(one, two):
        for key, value in b.items():
            text = "" if value is None else str(value)
            assert a[key] == text, (key, a[key], text)


def test_rerun_runs_only_missing_variants(pooled, tiny, tmp_path):
    _code, _text, out2 = pooled
    runs = tmp_path / "runs"
    runs.mkdir()
    # Three finished variants from the earlier campaign, marked so a rerun would show.
    for vid in ("000001", "000004", "000006"):
        with open(os.path.join(out2, "runs", vid + ".json")) as f:
            result = json.load(f)
        result["wall_s"] = 12345.0
        (runs / (vid + ".json")).write_text(json.dumps(result))
    # One stale result (another spec's fingerprint) and one torn file: both are run again.
    stale = json.loads((runs / "000001.json").read_text())
    stale["id"], stale["fingerprint"] = "000002", "0000000000000000"
    (runs / "000002.json").write_text(json.dumps(stale))
    (runs / "000003.json").write_text('{"id": "000003", "finger')
    code, text, _err = call("campaign", tiny, "--workers", 2, "--out", tmp_path)
    assert "3 already in" in text and "running 5 on" in text
    rows = read_table(os.path.join(tmp_path, "results.parquet"))
    kept = {r["variant"]: r["wall_s"] for r in rows}
    assert [v for v, w in sorted(kept.items()) if w == 12345.0] == ["000001", "000004", "000006"]
    assert comparable(rows) == comparable(read_table(os.path.join(out2, "results.parquet")))
    # Everything is done now: a third call runs nothing.
    code, text, _err = call("campaign", tiny, "--workers", 2, "--out", tmp_path)
    assert "8 already in" in text and "running 0 on" in text


@pytest.mark.timeout(180)
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_keeps_finished_runs_and_the_rerun_continues(tmp_path, signum):
    spec = tmp_path / "longer.toml"
    spec.write_text(TINY.replace("seeds = 2", "seeds = 6").replace("days = 3", "days = 10"))
    out = tmp_path / "out"
    proc = subprocess.Popen([VPUMP, "campaign", str(spec), "--workers", "1", "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        runs = out / "runs"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if runs.is_dir() and len([n for n in os.listdir(runs) if n.endswith(".json")]) >= 2:
                break
            time.sleep(0.05)
        proc.send_signal(signum)
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert "interrupted:" in err and "run the same command to continue" in err
    finished = sorted(n for n in os.listdir(runs) if n.endswith(".json"))
    assert 2 <= len(finished) < 24
    code, text, _err = call("campaign", spec, "--workers", 2, "--out", out)
    assert code in (0, 3)
    assert "%d already in" % len(finished) in text
    assert len(read_table(os.path.join(out, "results.parquet"))) == 24


@pytest.mark.parametrize("change, expected", [
    (("motor_bias_pct = [-2, 2]", "motor_noise_pct = 80"),
     "[vary] motor_noise_pct = 80: must be a number from 0 to 50"),
    (("seeds = 2", "seeds = 0"), "[campaign] seeds = 0: must be a whole number from 1 to 100000"),
    (("days = 3", "days = 4000"), "[campaign] days = 4000: must be a whole number from 1 to 3650"),
    (("rate_per_year = 150", "rate_per_year = 0"),
     "[faults #1] rate_per_year = 0: must be a number above 0, at most 8760"),
    (("min = 1, max = 4", "min = 4, max = 1"),
     "[faults #1.duration_hours] max = 1: must be at or above min (4)"),
    (("kind = \"power_loss\"", "kind = \"power_lost\""),
     "[faults #2] kind = \"power_lost\": must be one of motor_stall"),
    (("half_life_h", "half_lives_h"), "[vary.patient] half_lives_h = {min = 1, max = 5}: "
     "unknown key; did you mean \"half_life_h\"?"),
    (("\"mri-scan\", ", "\"mri-scam\", "), "[campaign] scenarios = \"mri-scam\": scenario "
     "\"mri-scam\": no such file"),
    (("basal", "basal"), None),     # placeholder replaced below: basal beyond the library
])
def test_bad_spec_field_is_one_line_exit_2(tmp_path, change, expected):
    text = TINY.replace(*change)
    if expected is None:
        text = text.replace("[vary]\n", "[vary]\nbasal_ug_per_day = [300, 2500]\n")
        expected = "[vary] basal_ug_per_day = 2500: must be a whole number from 0 to 2000"
    path = tmp_path / "bad.toml"
    path.write_text(text)
    code, out, err = call("campaign", path, "--out", tmp_path / "out")
    assert code == 2, err
    assert out == ""
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("vpump campaign: %s: " % path)
    assert expected in err
    assert not (tmp_path / "out").exists()


def test_bad_options_exit_2(tiny, tmp_path):
    code, _out, err = call("campaign", tiny, "--workers", 0, "--out", tmp_path)
    assert code == 2 and "--workers 0: must be a whole number from 1 to 256" in err
    code, _out, err = call("campaign", tiny, "--dask", "localhost", "--out", tmp_path)
    assert code == 2 and "--dask localhost: must be a scheduler address" in err
    code, _out, err = call("campaign", tmp_path / "missing.toml")
    assert code == 2 and "no such campaign spec file" in err


def test_expansion_is_deterministic_and_seeds_differ(tiny):
    a = spec_module.expand(spec_module.load(str(tiny)))
    b = spec_module.expand(spec_module.load(str(tiny)))
    assert [v["fingerprint"] for v in a] == [v["fingerprint"] for v in b]
    assert len(set(v["seed"] for v in a)) == len(a)
    assert all(v["days"] == 3 for v in a)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.no_health_check
@pytest.mark.timeout(240)
def test_real_dask_cluster_gives_the_pool_rows(pooled, tiny, tmp_path):
    _code, _text, out2 = pooled
    port = _free_port()
    address = "tcp://127.0.0.1:%d" % port
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    logs = []
    procs = []

    def start(*argv):
        log = open(tmp_path / ("dask-%d.log" % len(procs)), "w")
        logs.append(log)
        procs.append(subprocess.Popen([DASK] + list(argv), cwd=str(tmp_path), env=env,
                                      stdout=log, stderr=subprocess.STDOUT))
    try:
        start("scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard")
        for _ in range(2):
            start("worker", address, "--nthreads", "1", "--nworkers", "1", "--host", "127.0.0.1",
                  "--no-dashboard", "--no-nanny")
        from distributed import Client
        deadline = time.monotonic() + 120
        client = None
        while client is None:
            try:
                client = Client(address, timeout="2s")
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        try:
            client.wait_for_workers(2, timeout=120)
        finally:
            client.close()
        code, text, err = call("campaign", tiny, "--dask", address, "--out", tmp_path / "out")
        assert code in (0, 3), err
        assert "dask cluster %s: 2 workers" % address in text
        rows = read_table(str(tmp_path / "out" / "results.parquet"))
        assert comparable(rows) == comparable(read_table(os.path.join(out2, "results.parquet")))
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for log in logs:
            log.close()


@pytest.mark.no_health_check
@pytest.mark.timeout(180)
def test_dask_local_cluster_prints_its_dashboard_and_gives_the_pool_rows(pooled, tiny, tmp_path):
    _code, _text, out2 = pooled
    code, text, err = call("campaign", tiny, "--dask", "local", "--workers", 1, "--out", tmp_path)
    assert code in (0, 3), err
    assert "dask LocalCluster: 1 worker; dashboard http://127.0.0.1:" in text
    rows = read_table(os.path.join(tmp_path, "results.parquet"))
    assert comparable(rows) == comparable(read_table(os.path.join(out2, "results.parquet")))


def test_patient_parameters_that_clash_are_a_spec_error(tmp_path):
    path = tmp_path / "clash.toml"
    path.write_text(TINY.replace("[vary.patient]\n", "[vary.patient]\nclearance_ml_per_h = 30\n"
                                 "csf_volume_ml = 500\n"))
    code, _out, err = call("campaign", path, "--out", tmp_path / "out")
    assert code == 2 and err.count("\n") == 1
    assert "[vary.patient]" in err and "clearance_ml_per_h" in err


def test_repro_file_is_a_scenario_cut_to_the_first_violation(tiny, tmp_path):
    from sim import scenario
    from sim.scenario import tomllib
    from sim.campaign import aggregate as aggregate_module
    from sim.campaign import variant as variant_module
    spec = spec_module.load(str(tiny))
    variants = spec_module.expand(spec)[:2]
    results = [variant_module.run_variant(v) for v in variants]
    # A violation as the monitor reports it, on day 1 of the second run (verify=False: the
    # cut is taken as is, without a rerun that shows it).
    _raw, config = variant_module.scenario_of(variants[1])
    t = config["start_wall_ms"] + 86400000 + 3600000
    results[1]["violation_counts"] = {"SR-07": 2}
    results[1]["violations"] = [{"req": "SR-07", "t_ms": t, "message": "a test violation"}]
    agg = aggregate_module.aggregate(spec, variants, results, str(tmp_path), verify=False)
    entry = agg["violations"]["SR-07"]
    assert entry["count"] == 2 and entry["runs"] == 1 and entry["repro_variant"] == "000001"
    assert entry["message"] == "a test violation"
    path = tmp_path / entry["repro"]
    text = path.read_text()
    assert text.startswith("# A minimal reproduction of SR-07 from campaign 'tiny', variant")
    cut = scenario.load(str(path))
    assert cut["days"] == 2 and cut["seed"] == variants[1]["seed"]
    assert cut["name"] == "tiny-SR-07-%s" % variants[1]["base"]
    assert tomllib.loads(text)["faults"] == variants[1]["raw"]["faults"]
    assert agg["violations_total"] == 2


def test_clinic_visit_clears_reprograms_and_restarts_after_each_fault(tmp_path):
    from sim.campaign import variant as variant_module
    path = tmp_path / "visits.toml"
    path.write_text(TINY.replace("days = 3", "days = 6"))
    v = spec_module.expand(spec_module.load(str(path)))[2]      # mri-scan, +2 % bias, seed 0
    raw, config = variant_module.scenario_of(v)
    own = len(v["raw"].get("timeline") or [])
    added = raw["timeline"][own:]
    assert added, "no fault in 6 days at 150 stalls a year: pick another variant"
    for k in range(0, len(added), 3):
        clear, program, start = added[k:k + 3]
        assert clear["action"] == "clear_alarm" and start["action"] == "start"
        assert program["action"] == "program" and program["confirm"] is True
        assert program["basal_ug_per_day"] == v["raw"]["therapy"]["basal_ug_per_day"]
    # Each visit comes clinic_visit_after_hours (6) after its stall ends, at a whole minute.
    stalls = [t for t, _o, a in variant_module.plan(config, 6, 6 * 86400000,
                                                    variant_module.SimRng(1))
              if a["action"] == "fault_start" and a["kind"] == "motor_stall"]
    assert stalls
    assert len(added) // 3 >= len([t for t in stalls if t + 10 * 3600000 < 6 * 86400000])
