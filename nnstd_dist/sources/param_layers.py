"""Named weight tensors -> NNSTD layers: which parameters are layers, pruning masks, convolutions as blocks of rows.

- Layers: every tensor of two or more dimensions whose name ends in ``weight``, in file order;
  ``torch.nn.utils.prune`` saves ``X.weight_orig`` and ``X.weight_mask`` instead, and then the
  mask is the topology of layer ``X.weight``. Include/exclude globs on the layer names choose
  otherwise, among the tensors of two or more dimensions.
- A weight ``(out, in, *kernel)`` (PyTorch order; a linear layer has no kernel) is an
  ``(in*K) x out`` mask, K = prod(kernel), rows channel-major: input channel c owns rows
  ``c*K .. c*K + K-1``. Output channel j is a neuron whose inputs are its non-zero (c, kernel) positions.
- ``block`` = rows of layer k per output neuron of layer k-1: K for a convolution after a
  convolution, ``n_in / C`` for a linear layer after C channels (``torch.flatten`` of NCHW is
  channel-major), 1 for fully connected layers. The kernel reorders layer k's rows by whole blocks.
"""

from __future__ import annotations

import fnmatch
import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ..errors import InputError
from ..kernel.masks import dense_to_csr, has_nonfinite

__all__ = ["LayerSpec", "ParamFilter", "select_weights", "weights_to_layers"]

_PRUNE_ORIG, _PRUNE_MASK = "_orig", "_mask"


@dataclass(frozen=True)
class LayerSpec:
    """Where a layer came from and how its rows group: parameter name, weight shape as stored, rows per previous neuron."""

    param: str
    weight_shape: tuple[int, ...]
    block: int = 1


@dataclass(frozen=True)
class ParamFilter:
    """Which parameters of a file are layers: ``include``/``exclude`` globs on names; ``key``: the checkpoint entry."""

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    key: str | None = None

    def chooses(self, name: str, default: bool) -> bool:
        """Whether the parameter ``name`` is a layer: the include globs (else ``default``), minus the exclude globs."""
        wanted = any(fnmatch.fnmatchcase(name, g) for g in self.include) if self.include else default
        return wanted and not any(fnmatch.fnmatchcase(name, g) for g in self.exclude)


def select_weights(named, params: ParamFilter = ParamFilter(), where: str = "") -> list[tuple[str, object]]:
    """``(layer name, tensor)`` of the layers among ``(name, tensor)`` pairs, in order; a pruned pair yields its mask.

    Tensors need ``.ndim`` and ``.shape`` only: nothing is read here.
    """
    named = list(named)
    by_name = dict(named)
    chosen, done = [], set()
    for name, tensor in named:
        layer, topology = name, tensor
        for suffix in (_PRUNE_ORIG, _PRUNE_MASK):  # X.weight_orig + X.weight_mask: the mask is the layer X.weight
            base = name[: -len(suffix)]
            if name.endswith(suffix) and base + _PRUNE_ORIG in by_name and base + _PRUNE_MASK in by_name:
                layer, topology = base, by_name[base + _PRUNE_MASK]
        # biases, norm scales and counters (under two dimensions) are never layers, whatever the globs say
        if layer in done or topology.ndim < 2 or not params.chooses(layer, default=layer.endswith("weight")):
            continue
        done.add(layer)
        chosen.append((layer, topology))
    if not chosen:
        names = ", ".join(repr(n) for n, _ in named[:8]) + (", ..." if len(named) > 8 else "")
        raise InputError(f"{where}: no layers among the parameters ({names}); choose them with `include_params` GLOB")
    return chosen


def weights_to_layers(weights, orientation: str = "out-in", where: str = "") -> tuple[list[sp.csr_matrix], list[LayerSpec]]:
    """CSR bool masks ``(in*K) x out`` and their LayerSpecs for ``(name, array)`` weights given in chain order.

    ``orientation``: "out-in" is PyTorch's ``(out, in, *kernel)``; "in-out" is ``(*kernel, in, out)``.
    """
    masks, specs, previous = [], [], None
    for name, array in weights:
        stored_shape = tuple(int(n) for n in array.shape)
        weight = _out_in(np.asarray(array), orientation)
        if not (np.issubdtype(weight.dtype, np.number) or weight.dtype == bool):
            raise InputError(f"{where}: parameter {name!r}: expected numbers, got dtype {weight.dtype}")
        if has_nonfinite(weight):
            raise InputError(f"{where}: parameter {name!r} contains NaN or infinite weights")
        n_out, channels, kernel = weight.shape[0], weight.shape[1], math.prod(weight.shape[2:])
        if n_out == 0 or channels * kernel == 0:
            raise InputError(f"{where}: parameter {name!r} has an empty shape {stored_shape}")
        block = kernel if previous is None else _block(name, weight.shape, previous, where)
        masks.append(dense_to_csr(np.ascontiguousarray((weight != 0).reshape(n_out, -1).T)))
        specs.append(LayerSpec(name, stored_shape, block))
        previous = (name, weight.shape)
    return masks, specs


def _out_in(weight: np.ndarray, orientation: str) -> np.ndarray:
    if orientation == "out-in":
        return weight
    if orientation == "in-out":  # (*kernel, in, out) -> (out, in, *kernel)
        return np.transpose(weight, (weight.ndim - 1, weight.ndim - 2, *range(weight.ndim - 2)))
    raise InputError(f"orientation must be out-in or in-out for checkpoint weights, got {orientation!r}")


def _block(name: str, shape: tuple, previous: tuple, where: str) -> int:
    """Rows of this layer per output neuron of the previous one, or an error naming the parameter."""
    prev_name, prev_shape = previous
    channels, kernel, prev_out = shape[1], math.prod(shape[2:]), prev_shape[0]
    if len(prev_shape) > 2 and len(shape) == 2:  # linear after convolution: flattened channel-major
        if channels % prev_out == 0:
            return channels // prev_out
        reason = f"its {channels} inputs are not a whole number of rows for each of the {prev_out} channels of {prev_name!r}"
    elif channels == prev_out:
        return kernel
    else:
        kind = "a grouped or depthwise convolution, or " if len(shape) > 2 else ""
        reason = (
            f"its {channels} input {'channels' if len(shape) > 2 else 'neurons'} are not the {prev_out} outputs of {prev_name!r} "
            f"({kind}a layer off the main path such as a ResNet downsample shortcut)"
        )
    raise InputError(f"{where}: parameter {name!r}: {reason}; leave it out with `exclude_params` '{name}'")
