"""nnstd-dist: Neural Network Sparse Topology Distance (Liu et al., ECML PKDD 2020) for whole populations.

The API a script or notebook needs::

    import nnstd_dist as nd
    d = nd.nnstd(layers_a, layers_b)                    # one distance per layer
    record, masks = nd.read_network("runs/seed0.pt")    # any one network ingest reads
    if __name__ == "__main__":                          # local workers are processes that import this file again
        plan, stats = nd.compute("topos.zarr")          # every missing distance of a store (Dask)
    m = nd.labelled_matrix("topos.zarr", layer=0)                # or an open nd.TopologyStore
    nd.compute("s3://bucket/topos.zarr")                # a URL too, anywhere a store is named (storage_options=...)

Everything loads when first used: the store and Dask never for ``nd.nnstd``, numpy not for the command line's start.
"""

from .errors import NNSTDError

__version__ = "0.1.0"
__all__ = [
    "nnstd", "read_network", "load_set_network", "compute", "labelled_matrix", "TopologyStore", "NetworkRecord",
    "NNSTDError", "__version__",
]

_LAZY = {  # name -> module that defines it, imported on first use (the command line's entry point imports this package first:
    # kept light, so that Ctrl-C while numpy and scipy load reaches its handler, not a traceback)
    "nnstd": "warmup",  # the kernel's nnstd, saying first when a fast call has to compile
    "load_set_network": "sources.formats",
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
