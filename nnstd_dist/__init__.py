"""nnstd-dist: Neural Network Sparse Topology Distance (Liu et al., ECML PKDD 2020) for whole populations."""

from .errors import NNSTDError
from .formats import load_set_network
from .kernel import nnstd

__version__ = "0.1.0"
__all__ = ["nnstd", "load_set_network", "NNSTDError", "__version__"]
