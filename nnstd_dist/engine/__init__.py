"""The compute engine: all pairwise distances of a store as Dask tasks (plan, tile task, clusters, run loop). The only subpackage that imports dask.

The data's path: ``plan`` cuts the pair space into tiles (``nnstd_dist.tiles``) and sizes them; ``run``
submits one ``tasks.compute_tile`` per remaining tile to the Client that ``clusters.connect`` gives (a LocalCluster,
a scheduler, ``hpc``'s batch jobs, or the active Client), behind ``gate``'s environment check; ``progress``
reports; ``interrupts`` takes Ctrl-C and SIGTERM where it is safe.
"""

__all__ = ["ClusterSpec", "Plan", "Progress", "RunStats", "compute", "connect", "make_plan", "plan_store", "run_plan"]

_DEFINED_IN = {
    "ClusterSpec": "clusters", "connect": "clusters", "Plan": "plan", "make_plan": "plan", "Progress": "progress",
    "RunStats": "progress", "compute": "run", "plan_store": "run", "run_plan": "run",
}


def __getattr__(name):
    # Lazy, so that the pure modules (plan, progress) import without dask: `nnstd-dist pair` and the CLI's
    # wording of the tile rule need plan's constants only.
    if name in _DEFINED_IN:
        from importlib import import_module

        return getattr(import_module(f".{_DEFINED_IN[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
