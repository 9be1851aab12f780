"""The attacker's objective J, a number per example that every method pushes up.

    loss "xent"   cross-entropy on the probabilities p (softmax of logits, or the scores themselves
                  when the model outputs probabilities):
                      untargeted  J = -log p_y          (move away from the true class y)
                      targeted    J =  log p_t          (move towards the target class t)
    loss "logit"  a margin on the logits z (Carlini & Wagner's f_6, without its confidence floor);
                  with probability outputs z = log p, which has the same margins (log-softmax only
                  shifts every logit of an example by one number):
                      untargeted  J = max_{i != y} z_i - z_y
                      targeted    J = z_t - max_{i != t} z_i

The course notes' steps use the gradient of L(f(x), y); J is that loss, signed so that "up" is
the attacker's way in both the untargeted and the targeted case (torchattacks: `cost = -loss`
when targeted). `whitebox.objective` is the same formula in torch; a test checks they agree.
"""
from __future__ import annotations

import numpy as np

LOSSES = ("xent", "logit")
SCORES = ("logits", "probabilities")
TINY = 1e-12  # log of a probability output that is exactly 0


def log_probs(scores: np.ndarray, kind: str) -> np.ndarray:
    """log p per class, (N, C), from logits or from probabilities."""
    scores = scores.astype(np.float64)
    if kind == "probabilities":
        return np.log(np.maximum(scores, TINY))
    shifted = scores - scores.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def objective(scores: np.ndarray, kind: str, classes: np.ndarray, loss: str, targeted: bool) -> np.ndarray:
    """J per example (N,): `classes` holds the true labels (untargeted) or the targets (targeted)."""
    rows = np.arange(len(classes))
    if loss == "xent":
        picked = log_probs(scores, kind)[rows, classes]
        return picked if targeted else -picked
    z = log_probs(scores, kind) if kind == "probabilities" else scores.astype(np.float64)
    own = z[rows, classes]
    others = z.copy()
    others[rows, classes] = -np.inf
    margin = others.max(axis=1) - own
    return -margin if targeted else margin
