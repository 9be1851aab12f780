"""Gradients a black-box attacker estimates from queries alone (course notes, "Query-Based Attack";
Bhagoji, He, Li & Song 2018, "Practical Black-box Attacks on Deep Neural Networks using Efficient
Query Mechanisms").

Two-sided finite differences along m orthonormal directions u_1..u_m of the input space (d features):

    c_j = (J(x + delta u_j) - J(x - delta u_j)) / (2 delta)        2 queries per direction
    g^  = sum_j c_j u_j                                            2 m queries per estimate

`full`    u_j = e_j, every feature: m = d and g^ is the notes' FD_x(J(x), delta), the true gradient up
          to O(delta^2). (The notes divide by delta, not 2 delta: twice the derivative. A sign or a
          normalized step does not see the factor; the estimate here is the derivative itself.)
`group`   random feature grouping: the features shuffled once (the attack's seed) and cut into
          groups of k; u_j is the indicator of group j over sqrt(k), so c_j sqrt(k) is the sum of the
          group's partial derivatives and g^ gives each feature of a group their mean:
          m = ceil(d / k).
`pca`     the first n principal components of the training images (numpy SVD of the centred
          data): g^ is the gradient projected on the span where images vary most; m = n.

The queries go through the target's counter; nothing here sees weights or gradients.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from .targets import AttackError

DIRECTIONS = ("full", "group", "pca")
ROWS_PER_CALL = 4096  # perturbed inputs sent to the target at once (its own batching splits further)

Objective = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (inputs, classes) -> J per input


def directions(kind: str, d: int, rng: np.random.Generator, group_size: int | None = None,
               components: int | None = None, train: np.ndarray | None = None) -> np.ndarray:
    """The (m, d) orthonormal rows u_j of `kind`."""
    if kind == "full":
        return np.eye(d, dtype=np.float32)
    if kind == "group":
        if group_size is None or not 1 <= group_size <= d:
            raise AttackError(f"--group-size is between 1 and the input's {d} features, not {group_size}")
        order = rng.permutation(d)
        rows = []
        for start in range(0, d, group_size):
            members = order[start:start + group_size]
            u = np.zeros(d, np.float32)
            u[members] = 1.0 / np.sqrt(len(members))
            rows.append(u)
        return np.stack(rows)
    if kind == "pca":
        if train is None:
            raise AttackError("PCA directions come from training images: give --data")
        flat = train.reshape(len(train), -1).astype(np.float64)
        limit = min(flat.shape)
        if components is None or not 1 <= components <= limit:
            raise AttackError(f"--components is between 1 and {limit} (the training images' rank bound: "
                              f"{flat.shape[0]} images of {flat.shape[1]} features), not {components}")
        _, _, vt = np.linalg.svd(flat - flat.mean(axis=0), full_matrices=False)
        return vt[:components].astype(np.float32)
    raise AttackError(f"directions are one of {', '.join(DIRECTIONS)}, not `{kind}`")


def estimate(objective: Objective, x: np.ndarray, classes: np.ndarray, u: np.ndarray, delta: float) -> np.ndarray:
    """g^ for every example of x (N, ...): 2 m queries each."""
    n, shape = len(x), x.shape[1:]
    m, d = u.shape
    flat = x.reshape(n, d)
    out = np.zeros((n, d), np.float32)
    per_call = max(1, ROWS_PER_CALL // (2 * m))  # examples whose probes go in one call
    for lo in range(0, n, per_call):
        chunk = flat[lo:lo + per_call]
        probes = np.concatenate([chunk[:, None, :] + delta * u[None], chunk[:, None, :] - delta * u[None]], axis=1)
        j = objective(probes.reshape(-1, *shape).astype(np.float32), np.repeat(classes[lo:lo + per_call], 2 * m))
        j = j.reshape(len(chunk), 2 * m)  # first the m plus-probes, then the m minus-probes
        c = (j[:, :m] - j[:, m:]) / (2.0 * delta)  # (chunk, m)
        out[lo:lo + len(chunk)] = (c @ u.astype(np.float64)).astype(np.float32)
    return out.reshape(n, *shape)
