"""nnstd-dist: Neural Network Sparse Topology Distance (Liu et al., ECML PKDD 2020) for whole populations.

The API a script or notebook needs::

    import nnstd_dist as nd
    d = nd.nnstd(layers_a, layers_b)                    # one distance per layer
    record, masks = nd.read_network("runs/seed0.pt")    # any one network ingest reads
    plan, stats = nd.compute("topos.zarr")              # every missing distance of a store (Dask)
    m = nd.labelled_matrix(nd.TopologyStore.open("topos.zarr"), layer=0)

The store and Dask load only when first used, so ``nd.nnstd`` stays light.
"""

import functools

from .errors import NNSTDError
from .kernel import nnstd as _nnstd
from .sources.formats import load_set_network

__version__ = "0.1.0"
__all__ = [
    "nnstd", "read_network", "load_set_network", "compute", "labelled_matrix", "TopologyStore", "NetworkRecord",
    "NNSTDError", "__version__",
]


@functools.wraps(_nnstd)
def nnstd(*args, **kwargs):
    if kwargs.get("solver", args[3] if len(args) > 3 else None) == "fast":  # a first fast call compiles for 20-30 s: say so first
        from .warmup import compile_fast_solver

        compile_fast_solver()
    return _nnstd(*args, **kwargs)


_LAZY = {  # name -> module that defines it, imported on first use
    "read_network": "sources.discover",
    "compute": "engine.run",
    "labelled_matrix": "views.reduce",
    "TopologyStore": "store.topology_store",
    "NetworkRecord": "records",
}


def __getattr__(name):
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
