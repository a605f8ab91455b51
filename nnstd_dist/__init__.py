"""nnstd-dist: Neural Network Sparse Topology Distance (Liu et al., ECML PKDD 2020) for whole populations."""

from .errors import NNSTDError
from .sources.formats import load_set_network
from .kernel import nnstd

__version__ = "0.1.0"
__all__ = ["nnstd", "load_set_network", "NNSTDError", "TopologyStore", "NetworkRecord", "__version__"]


def __getattr__(name):
    # The store pulls in zarr; load it only when asked so `nnstd-dist pair` stays light.
    if name == "TopologyStore":
        from .store.topology_store import TopologyStore

        return TopologyStore
    if name == "NetworkRecord":
        from .records import NetworkRecord

        return NetworkRecord
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
