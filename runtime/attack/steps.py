"""One attack step, the projection back onto the eps-ball around the clean image, and the random
start: numpy on (N, ...) float32 arrays, the same for every gradient source (true or estimated).

    step "linf"   x + a * sign(g)                        FGSM (Goodfellow et al. 2015), BIM / PGD-Linf
    step "l2"     x + a * g / ||g||_2   (per example)    the notes' normalized-gradient step, FGM, PGD-L2
    project       Linf: clip x - x0 to [-eps, eps];  L2: scale x - x0 down to norm eps if longer
    clip          to the data's valid range [low, high] (an image stays an image)

These follow torchattacks 3.5.1 (FGSM, PGD, PGDL2) operation for operation, so that a test can
compare the adversarial examples exactly: the L2 step divides by ||g|| + 1e-10, the L2 random start
is a Gaussian direction scaled to a radius drawn uniformly from [0, eps].
"""
from __future__ import annotations

import numpy as np

NORMS = ("linf", "l2")
DIVISION_FLOOR = 1e-10  # torchattacks' eps_for_division


def _per_example_l2(a: np.ndarray) -> np.ndarray:
    """||a_i||_2 of each example, shaped to broadcast against `a`."""
    norms = np.linalg.norm(a.reshape(len(a), -1).astype(np.float32), axis=1)
    return norms.reshape((len(a),) + (1,) * (a.ndim - 1)).astype(np.float32)


def step(x: np.ndarray, g: np.ndarray, size: float, norm: str) -> np.ndarray:
    if norm == "linf":
        return (x + np.float32(size) * np.sign(g)).astype(np.float32)
    return (x + np.float32(size) * (g / (_per_example_l2(g) + np.float32(DIVISION_FLOOR)))).astype(np.float32)


def project(x: np.ndarray, x0: np.ndarray, eps: float, norm: str) -> np.ndarray:
    delta = x - x0
    if norm == "linf":
        return (x0 + np.clip(delta, -eps, eps)).astype(np.float32)
    with np.errstate(divide="ignore"):
        factor = np.minimum(np.float32(eps) / _per_example_l2(delta), np.float32(1.0))
    return (x0 + delta * factor).astype(np.float32)


def clip(x: np.ndarray, low: float, high: float) -> np.ndarray:
    return np.clip(x, low, high).astype(np.float32)


def random_start(x0: np.ndarray, eps: float, norm: str, rng: np.random.Generator) -> np.ndarray:
    """The clean image plus a random point of the eps-ball (not yet clipped to the range)."""
    if norm == "linf":
        return (x0 + rng.uniform(-eps, eps, size=x0.shape).astype(np.float32)).astype(np.float32)
    direction = rng.standard_normal(size=x0.shape).astype(np.float32)
    radius = rng.uniform(0.0, 1.0, size=(len(x0),) + (1,) * (x0.ndim - 1)).astype(np.float32)
    return (x0 + direction * (radius / _per_example_l2(direction) * np.float32(eps))).astype(np.float32)
