"""Campaign measurements for the benchmarks (helpers; bench/run.py turns them into figures).

Every measured campaign is the real thing (sim/campaign: spec, expansion, executors), without
the output tables: runs on a process pool or a Dask LocalCluster, results collected in this
process.  The workload is the SCI scenario with every physical model on (the caller passes the
[models] table), a few seeded variants of it.
"""

import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


def models_spec(folder, models, seeds, days):
    """A spec over the SCI scenario with `models` on: its path (written into folder)."""
    import tomli_w
    from sim import scenario
    from sim.scenario import tomllib

    with open(scenario.find("adult-sci-continuous"), "rb") as f:
        raw = tomllib.load(f)
    raw["models"] = dict(models)
    raw["scenario"]["name"] = "sci-every-model"
    base = os.path.join(folder, "sci-every-model.toml")
    with open(base, "w", encoding="utf-8") as f:
        f.write(tomli_w.dumps(raw))
    spec = os.path.join(folder, "bench-campaign.toml")
    with open(spec, "w", encoding="utf-8") as f:
        f.write('[campaign]\nname = "bench"\nseed = 3\nseeds = %d\ndays = %d\n'
                'scenarios = ["sci-every-model.toml"]\n\n'
                '[[faults]]\nkind = "motor_stall"\nrate_per_year = 2\nduration_hours = 4\n'
                % (seeds, days))
    return spec


def variants_of(spec_path):
    from sim.campaign import spec
    return spec.expand(spec.load(spec_path))


def run_pool(variants, workers):
    """Wall seconds for the variants on a fresh pool of `workers` processes (start included)."""
    from sim.campaign.execute import execute
    results = []
    t0 = time.perf_counter()
    execute(variants, results.append, workers=workers)
    elapsed = time.perf_counter() - t0
    _check(results, variants)
    return elapsed


def local_cluster(workers):
    """(cluster, client): a LocalCluster of `workers` single-threaded processes on 127.0.0.1."""
    import logging
    from distributed import Client, LocalCluster
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                           host="127.0.0.1", dashboard_address=None,
                           silence_logs=logging.ERROR)
    return cluster, Client(cluster)


def run_dask(variants, client):
    """Wall seconds for the variants on a running cluster (client.submit / as_completed)."""
    from distributed import as_completed
    from sim.campaign.variant import run_variant
    t0 = time.perf_counter()
    futures = [client.submit(run_variant, v, pure=False) for v in variants]
    results = [f.result() for f in as_completed(futures)]
    elapsed = time.perf_counter() - t0
    _check(results, variants)
    return elapsed


def _check(results, variants):
    if len(results) != len(variants):
        raise RuntimeError("%d of %d runs came back" % (len(results), len(variants)))
    crashed = [r["id"] for r in results if r["crash"]]
    if crashed:
        raise RuntimeError("runs crashed: %s" % ", ".join(crashed))


def fleet_year(spec_path, out_dir, workers, log=sys.stderr):
    """Run a campaign spec through `vpump campaign` into out_dir (finished runs are reused):
    (aggregate dict, wall seconds of this call)."""
    import io
    from tools import cli
    out, err = io.StringIO(), io.StringIO()
    t0 = time.perf_counter()
    code = cli.main(["campaign", spec_path, "--workers", str(workers), "--out", out_dir,
                     "--json", "--quiet"], stdout=out, stderr=err)
    elapsed = time.perf_counter() - t0
    if code not in (0, 3):
        raise RuntimeError("vpump campaign exited %d: %s" % (code, err.getvalue().strip()))
    text = out.getvalue()
    import json
    return json.loads(text[text.index("{"):]), elapsed


def temp_folder():
    return tempfile.TemporaryDirectory(prefix="vpump-bench-campaign-")
