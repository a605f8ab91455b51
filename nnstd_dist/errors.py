"""The package's one error family: anything a user can cause raises a subclass of NNSTDError.

Messages speak Python, not the command line: a parameter is named in backticks as the keyword
that sets it ("`density` must be in (0, 1], got 2"); the CLI shows each such name as the option
that sets it ("--density must be in (0, 1], got 2"). Another step is named as its library call,
with the store first ("run `compute('s.zarr', max_layer=2, recompute=True)`"); the CLI shows the
command line that runs it ("`nnstd-dist compute --store s.zarr --max-layer 2 --recompute`"). See
cli/main.py.
"""


class NNSTDError(Exception):
    """Bad input, a bad store or a failed run; the CLI prints it on one line and exits with 2."""


class InputError(NNSTDError):
    """A topology file or directory that cannot be read as a network."""


class ShapeMismatchError(NNSTDError):
    """Two networks, or a network and a store, whose layer counts or shapes differ."""


class StoreError(NNSTDError):
    """A store that is missing, of another format version, or inconsistent."""


class NotAStoreError(StoreError):
    """A path that holds no nnstd-dist store this version reads: nothing there to read, or to verify."""


class StoreAccessError(StoreError):
    """A store that cannot be reached: credentials refused, a missing bucket, an endpoint that does not answer."""


class LockError(StoreError):
    """Another compute run holds the store's lock."""


class ClusterError(NNSTDError):
    """A Dask cluster that cannot be reached, or whose workers cannot do the job."""
