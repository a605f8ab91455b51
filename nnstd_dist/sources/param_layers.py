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

__all__ = ["LayerSpec", "ParamFilter", "select_weights", "weights_to_layers", "exclusion_globs"]

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
    A weight not fed by the layer kept before it (a ResNet's downsample shortcut) is off the chain:
    all of them are named in one error, with one exclusion that leaves exactly them out.
    """
    masks, specs, off_chain, previous = [], [], [], None
    for name, array in weights:
        weight = _checked_weight(name, array, orientation, where)
        if previous is None:
            block, reason = math.prod(weight.shape[2:]), None
        else:
            block, reason = _block(name, weight.shape, previous)
        if reason is not None:
            off_chain.append((name, reason))
            continue  # the next weight is checked against the last one on the chain
        masks.append(dense_to_csr(np.ascontiguousarray((weight != 0).reshape(weight.shape[0], -1).T)))
        specs.append(LayerSpec(name, tuple(int(n) for n in np.shape(array)), block))
        previous = (name, weight.shape)
    if off_chain:
        raise InputError(_off_chain_message(off_chain, [spec.param for spec in specs], where))
    return masks, specs


def _checked_weight(name: str, array, orientation: str, where: str) -> np.ndarray:
    """The weight as ``(out, in, *kernel)``: numeric, finite and not empty, or an error naming the parameter."""
    stored_shape = tuple(int(n) for n in array.shape)
    weight = _out_in(np.asarray(array), orientation)
    if not (np.issubdtype(weight.dtype, np.number) or weight.dtype == bool):
        raise InputError(f"{where}: parameter {name!r}: expected numbers, got dtype {weight.dtype}")
    if has_nonfinite(weight):
        raise InputError(f"{where}: parameter {name!r} contains NaN or infinite weights")
    if weight.shape[0] == 0 or math.prod(weight.shape[1:]) == 0:
        raise InputError(f"{where}: parameter {name!r} has an empty shape {stored_shape}")
    return weight


def _off_chain_message(off_chain: list[tuple[str, str]], kept: list[str], where: str) -> str:
    """Every parameter off the chain in one line, the first with its reason, and one exclusion for them all."""
    (first, reason), names = off_chain[0], [name for name, _ in off_chain]
    exclusion = " ".join(f"`exclude_params` '{glob}'" for glob in exclusion_globs(names, kept))
    if len(names) == 1:
        return f"{where}: parameter {first!r}: {reason}; leave it out with {exclusion}"
    others = ", ".join(repr(name) for name in names[1:])
    return (
        f"{where}: {len(names)} parameters are not fed by the layer before them: {first!r}: {reason}; "
        f"and likewise {others}; leave them out with {exclusion}"
    )


def exclusion_globs(names: list[str], kept: list[str]) -> list[str]:
    """Globs that match every one of ``names`` and none of ``kept``: one ``*part*`` for a dotted part they share, else each name."""
    if len(names) > 1:
        for part in names[0].split("."):
            glob = f"*{part}*"
            if not part.isdigit() and all(fnmatch.fnmatchcase(n, glob) for n in names) and not any(fnmatch.fnmatchcase(k, glob) for k in kept):
                return [glob]
    return list(names)


def _out_in(weight: np.ndarray, orientation: str) -> np.ndarray:
    if orientation == "out-in":
        return weight
    if orientation == "in-out":  # (*kernel, in, out) -> (out, in, *kernel)
        return np.transpose(weight, (weight.ndim - 1, weight.ndim - 2, *range(weight.ndim - 2)))
    raise InputError(f"orientation must be out-in or in-out for checkpoint weights, got {orientation!r}")


def _block(name: str, shape: tuple, previous: tuple) -> tuple[int, str | None]:
    """Rows of this layer per output neuron of the previous one, and None; or 0 and why it is not fed by it."""
    prev_name, prev_shape = previous
    channels, kernel, prev_out = shape[1], math.prod(shape[2:]), prev_shape[0]
    if len(prev_shape) > 2 and len(shape) == 2:  # linear after convolution: flattened channel-major
        if channels % prev_out == 0:
            return channels // prev_out, None
        return 0, f"its {channels} inputs are not a whole number of rows for each of the {prev_out} channels of {prev_name!r}"
    if channels == prev_out:
        return kernel, None
    kind = "a grouped or depthwise convolution, or " if len(shape) > 2 else ""
    return 0, (
        f"its {channels} input {'channels' if len(shape) > 2 else 'neurons'} are not the {prev_out} outputs of {prev_name!r} "
        f"({kind}a layer off the main path such as a ResNet downsample shortcut)"
    )
