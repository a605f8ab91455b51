"""Set-based NNSTD oracles, the paper's definition neuron pair by neuron pair: for masks, and for CNNs read straight off weight tensors."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.optimize import linear_sum_assignment


def set_costs(sets_a: list[set], sets_b: list[set]) -> np.ndarray:
    """C[j1, j2] = |N_A(j1) ^ N_B(j2)| / |N_A(j1) | N_B(j2)|, 0 where both are empty, one pair at a time."""
    cost = np.zeros((len(sets_a), len(sets_b)))
    for j1, na in enumerate(sets_a):
        for j2, nb in enumerate(sets_b):
            union = len(na | nb)
            cost[j1, j2] = len(na ^ nb) / union if union else 0.0
    return cost


def mask_costs(layer_a, layer_b) -> np.ndarray:
    """The cost matrix of two n_in x n_out masks (dense or scipy sparse): N(j) is the rows where column j is non-zero."""
    return set_costs(*(_mask_sets(layer) for layer in (layer_a, layer_b)))


def _mask_sets(layer) -> list[set[int]]:
    dense = layer.toarray() if sp.issparse(layer) else np.asarray(layer)
    return [set(np.flatnonzero(dense[:, j]).tolist()) for j in range(dense.shape[1])]


def input_sets(weight: np.ndarray, prev_channels: int | None) -> list[set]:
    """N(j) of every output channel j as {(c, position)}; a linear layer after C channels splits its inputs channel-major."""
    sets = []
    for j in range(weight.shape[0]):
        if weight.ndim > 2:  # (out, in, *kernel): position = the kernel offset
            sets.append({(int(c), tuple(map(int, pos))) for c, *pos in np.argwhere(weight[j] != 0)})
        else:  # (out, in): feature f of C channels is (f // (in / C), f % (in / C)), as torch.flatten of NCHW
            per = weight.shape[1] // (prev_channels or weight.shape[1])
            sets.append({(int(f) // per, int(f) % per) for f in np.flatnonzero(weight[j] != 0)})
    return sets


def oracle_cnn(weights_a, weights_b, costs: list | None = None) -> list[float]:
    """NNSTD by the paper's definition, neuron (channel) pair by pair; B's channels renamed by the previous matching."""
    out, rename, prev_channels = [], None, None
    for wa, wb in zip(weights_a, weights_b):
        sets_a, sets_b = input_sets(wa, prev_channels), input_sets(wb, prev_channels)
        if rename is not None:  # B's channel rename[c] is matched to A's channel c: call it c
            inverse = {b: a for a, b in enumerate(rename)}
            sets_b = [{(inverse[c], pos) for c, pos in s} for s in sets_b]
        cost = set_costs(sets_a, sets_b)
        if costs is not None:
            costs.append(cost)
        rows, rename = linear_sum_assignment(cost)
        out.append(cost[rows, rename].sum() / cost.shape[0])
        prev_channels = wa.shape[0]
    return out
