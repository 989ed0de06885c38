"""Where a campaign's runs execute: a local process pool, or a Dask distributed cluster.

execute(variants, on_result, workers=N)            concurrent.futures process pool (spawn)
execute(variants, on_result, dask="tcp://H:P")     an existing cluster: client.submit
execute(variants, on_result, dask="local")         a distributed.LocalCluster started here

on_result(result) is called in this process as each run finishes (any order), so the caller
persists it at once; a KeyboardInterrupt cancels what has not finished and is re-raised after
the pool or cluster is shut down.  Every run is sim.campaign.variant.run_variant, which never
raises: a worker process dying (killed, out of memory) is reported as a crashed run.
"""

import multiprocessing
import signal
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed

from sim.campaign.variant import run_variant
from sim.errors import CampaignError


def _ignore_sigint():
    # Ctrl-C goes to the whole process group: the parent handles it (cancels, keeps what
    # finished); a worker dying on it mid-run would break the pool instead.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _lost(variant, what):
    return {"id": variant["id"], "fingerprint": variant["fingerprint"], "crash": True,
            "traceback": "%s\n" % what, "summary": None, "faults": [], "violations": [],
            "violation_counts": {}, "wall_s": None}


def execute(variants, on_result, workers=2, dask=None, log=None):
    """Run every variant; on_result(result) for each as it finishes."""
    if not variants:
        return
    if dask:
        _execute_dask(variants, on_result, dask, workers, log)
    else:
        _execute_pool(variants, on_result, workers)


def _execute_pool(variants, on_result, workers):
    # forkserver: workers fork from a server that has the simulator imported already (fast
    # to start, and safe beside this process's threads, unlike a plain fork).
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["sim.campaign.variant"])
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=context,
                               initializer=_ignore_sigint)
    futures = {}
    try:
        for v in variants:
            futures[pool.submit(run_variant, v)] = v
        for future in as_completed(futures):
            v = futures.pop(future)
            try:
                result = future.result()
            except Exception:
                result = _lost(v, "the worker process running this variant died:\n"
                               + traceback.format_exc())
            on_result(result)
    except BaseException:
        # Ctrl-C (or a failing on_result): drop the queue, stop the runs in flight, keep what
        # was saved.  The workers are our own processes: terminate them by their handles.
        for future in futures:
            future.cancel()
        processes = list((getattr(pool, "_processes", None) or {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for p in processes:
            if p.is_alive():
                p.terminate()
        raise
    pool.shutdown(wait=True)


def _execute_dask(variants, on_result, address, workers, log):
    try:
        from distributed import Client, LocalCluster, as_completed as dask_completed
    except ImportError as exc:
        raise CampaignError("--dask needs dask's distributed package (%s): pip install "
                            "'vpump[campaign]'" % exc) from None
    import logging
    cluster = None
    if address == "local":
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               host="127.0.0.1", dashboard_address="127.0.0.1:0",
                               silence_logs=logging.ERROR)
        client = Client(cluster)
        if log is not None:
            log("dask LocalCluster: %d worker%s; dashboard %s" % (
                workers, "" if workers == 1 else "s", client.dashboard_link))
    else:
        try:
            client = Client(address, timeout="10s")
        except (OSError, TimeoutError, ValueError) as exc:
            raise CampaignError("--dask %s: cannot reach a Dask scheduler there: %s (start one "
                                "with `dask scheduler`, and workers with `dask worker "
                                "ADDRESS`)" % (address, exc)) from None
        if log is not None:
            n = len(client.scheduler_info().get("workers", {}))
            log("dask cluster %s: %d workers; dashboard %s" % (address, n, client.dashboard_link))
    futures = {}
    try:
        for v in variants:
            # pure=False: a rerun of the same variant is a new task, not a cached result.
            f = client.submit(run_variant, v, pure=False, key="vpump-%s-%s-%s" % (
                v["campaign"], v["id"], v["fingerprint"]))
            futures[f.key] = (f, v)
        for f in dask_completed([f for f, _v in futures.values()]):
            _f, v = futures.pop(f.key)
            try:
                result = f.result()
            except Exception:
                result = _lost(v, "the Dask task running this variant failed (a worker died or "
                               "could not import the project):\n" + traceback.format_exc())
            on_result(result)
    finally:
        if futures:
            client.cancel([f for f, _v in futures.values()])
        client.close()
        if cluster is not None:
            cluster.close()
