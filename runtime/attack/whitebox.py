"""White-box gradients: d J / d x through PyTorch modules (course notes, "White Box Attack").

`ModuleGradient` is the attacker who has the model: J (objective.py, here in torch) of one module's
scores, or of the mean of several modules' probabilities (an ensemble, attacked as one model; the
substitutes of a transfer attack). The gradient of the batch mean of J, as torchattacks takes it
(`loss` with reduction "mean"), so that sign and normalized steps match it bit for bit.
`ModuleTarget` is a module seen only through its outputs (a black-box attack run against the
PyTorch model instead of its artifact).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch.nn import functional as F

from .targets import Target


def log_probs(scores: torch.Tensor, kind: str) -> torch.Tensor:
    return torch.log(scores.clamp_min(1e-12)) if kind == "probabilities" else F.log_softmax(scores, dim=1)


def objective(scores: torch.Tensor, kind: str, classes: torch.Tensor, loss: str, targeted: bool) -> torch.Tensor:
    """J per example, the formula of objective.objective."""
    rows = torch.arange(len(classes))
    if loss == "xent":
        picked = log_probs(scores, kind)[rows, classes]
        return picked if targeted else -picked
    z = log_probs(scores, kind) if kind == "probabilities" else scores
    own = z[rows, classes]
    others = z.masked_fill(F.one_hot(classes, z.shape[1]).bool(), float("-inf"))
    margin = others.max(dim=1).values - own
    return -margin if targeted else margin


class Scorer:
    """One module's scores, or the mean probability of several (kind "probabilities")."""

    def __init__(self, modules: Sequence[torch.nn.Module], kinds: Sequence[str]) -> None:
        self.modules = [m.eval() for m in modules]
        self.kinds = list(kinds)
        self.kind = self.kinds[0] if len(self.modules) == 1 else "probabilities"

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if len(self.modules) == 1:
            return _first(self.modules[0](x))
        return torch.stack([log_probs(_first(m(x)), k).exp() for m, k in zip(self.modules, self.kinds, strict=True)]).mean(0)


class ModuleGradient:
    """d mean(J) / d x, evaluated `batch` examples at a time; counts per-example gradients."""

    def __init__(self, scorer: Scorer, loss: str, targeted: bool, batch: int = 256) -> None:
        self.scorer, self.loss, self.targeted, self.batch = scorer, loss, targeted, batch
        self.gradients = 0

    def __call__(self, x: np.ndarray, classes: np.ndarray) -> np.ndarray:
        out = []
        for i in range(0, len(x), self.batch):
            xs = torch.from_numpy(np.ascontiguousarray(x[i:i + self.batch])).requires_grad_(True)
            cs = torch.from_numpy(np.asarray(classes[i:i + self.batch], dtype=np.int64))
            j = objective(self.scorer(xs), self.scorer.kind, cs, self.loss, self.targeted).mean()
            out.append(torch.autograd.grad(j, xs)[0].numpy())
        self.gradients += len(x)
        return np.concatenate(out)


class ModuleTarget(Target):
    """A module (or an ensemble of modules, mean probability) seen only through its outputs."""

    def __init__(self, scorer: Scorer, name: str, input_shape: tuple[int, ...], batch: int = 256) -> None:
        self.scorer = scorer
        super().__init__(name, scorer.kind, input_shape, batch)

    def _scores(self, x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return self.scorer(torch.from_numpy(x)).numpy()


def _first(out):
    """A network with several outputs returns a tuple; its first output holds the class scores."""
    return out[0] if isinstance(out, (tuple, list)) else out
