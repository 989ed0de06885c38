"""Fault campaigns: many full scenario runs from one spec, on a process pool or a Dask cluster.

    spec.load(path) -> Spec          read and check a campaign spec (docs/campaigns.md)
    spec.expand(spec) -> [variant]   every run the spec asks for, in variant-id order
    variant.run_variant(variant)     one run (in-process runner, monitor on) -> its result dict
    execute.execute(...)             run variants on a local process pool or a Dask cluster
    store.Store(out_dir)             per-variant results (DIR/runs/ID.json), rows, aggregate

The same spec gives the same rows whatever the number of workers or their completion order:
every random choice (seeds, drawn parameters) comes from the spec's seed and the variant's
place in the expansion, never from the order runs finish in.
"""
