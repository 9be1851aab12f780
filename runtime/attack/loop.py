"""The attack loop: one loop for every method, which differ only in where the gradient comes from
and in how far a step goes.

    method     gradient                            steps                          norm
    fgm        the model's (white-box)             1 of size eps                  L2 (the notes' x + eps g/||g||)
    fgsm       the model's                         1 of size eps                  Linf (x + eps sign g)
    bim        the model's                         `steps` of size alpha          --norm (Kurakin et al.)
    pgd        the model's                         random start, then as bim      --norm (Madry et al.)
    fd         finite differences, every feature   1 of size eps, or `steps`      --norm
    fd-group   finite differences, random groups   of size alpha (iterative FD)
    fd-pca     finite differences, PCA directions
    transfer   substitutes' (white-box on models   as `via` (fgm, fgsm, bim, pgd); no query to
               trained by `dlc train` on the same  the target while crafting
               data; several: their mean probability)

    x <- x0 (+ a random point of the eps-ball, clipped, for pgd or --random-start)
    repeat steps: g <- gradient(x); x <- step(x, g); x <- project onto the eps-ball around x0; clip

Everything is measured against the target: its predictions on x0 and on the result, and the
queries it answered while the adversarial examples were made.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

import numpy as np

from . import blackbox, steps as S
from .objective import LOSSES, objective
from .targets import AttackError, Target

WHITE_BOX = ("fgm", "fgsm", "bim", "pgd")
QUERY_BASED = {"fd": "full", "fd-group": "group", "fd-pca": "pca"}
METHODS = (*WHITE_BOX, *QUERY_BASED, "transfer")

Gradient = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (x, classes) -> dJ/dx, same shape as x


@dataclass(frozen=True)
class Attack:
    method: str
    eps: float
    norm: str = "linf"
    steps: int = 1
    alpha: float | None = None  # step size of iterative methods; default 2.5 eps / steps (Madry et al.)
    random_start: bool = False
    loss: str = "xent"
    targeted: bool = False
    low: float = 0.0
    high: float = 1.0
    delta: float = 0.01  # finite-difference probe
    group_size: int | None = None
    components: int | None = None
    via: str = "pgd"  # transfer: the white-box method run on the substitutes
    seed: int = 0

    @property
    def one_step(self) -> bool:
        return self.crafting in ("fgm", "fgsm") or (self.method in QUERY_BASED and self.steps == 1)

    @property
    def crafting(self) -> str:
        """The method that makes the examples (a transfer attack makes them with `via`)."""
        return self.via if self.method == "transfer" else self.method

    @property
    def step_size(self) -> float:
        if self.one_step:
            return self.eps
        return self.alpha if self.alpha is not None else 2.5 * self.eps / self.steps


def settle(attack: Attack, features: int) -> Attack:
    """The attack with its method's fixed settings (fgm: L2, fgsm: Linf, pgd: random start), after
    checking that it can run: AttackError otherwise."""
    if attack.method not in METHODS:
        raise AttackError(f"--method is one of {', '.join(METHODS)}, not `{attack.method}`")
    if attack.method == "transfer" and attack.via not in WHITE_BOX:
        raise AttackError(f"--via is one of {', '.join(WHITE_BOX)} (the white-box method run on the "
                          f"substitutes), not `{attack.via}`")
    if attack.loss not in LOSSES:
        raise AttackError(f"--loss is one of {', '.join(LOSSES)}, not `{attack.loss}`")
    if attack.norm not in S.NORMS:
        raise AttackError(f"--norm is one of {', '.join(S.NORMS)}, not `{attack.norm}`")
    crafting = attack.crafting
    if crafting in ("fgm", "fgsm"):
        if attack.steps != 1:
            raise AttackError(f"{crafting} is a single step; for {attack.steps} steps use bim or pgd")
        attack = replace(attack, norm="l2" if crafting == "fgm" else "linf")
    if crafting == "pgd":
        attack = replace(attack, random_start=True)
    if attack.steps < 1:
        raise AttackError(f"--steps is at least 1, not {attack.steps}")
    if attack.crafting in ("bim", "pgd") and attack.steps == 1 and attack.alpha is None:
        attack = replace(attack, alpha=attack.eps)
    width = attack.high - attack.low
    if not width > 0:
        raise AttackError(f"the valid range [{attack.low}, {attack.high}] is empty")
    bound, what = (width, "the width of the data's range") if attack.norm == "linf" else \
        (width * features ** 0.5, f"the L2 diameter of the data's range ({width:g} x sqrt({features}) features)")
    if not 0 < attack.eps <= bound:
        raise AttackError(f"--eps {attack.eps:g} is outside (0, {bound:g}] for an {attack.norm.upper()} attack "
                          f"on data in [{attack.low:g}, {attack.high:g}]: {what} is the largest change there is")
    if attack.alpha is not None and not 0 < attack.alpha <= bound:
        raise AttackError(f"--alpha {attack.alpha:g} is outside (0, {bound:g}]")
    if attack.method in QUERY_BASED and not 0 < attack.delta <= width:
        raise AttackError(f"--delta {attack.delta:g} (the finite-difference probe) is outside (0, {width:g}]")
    return attack


def perturb(attack: Attack, x0: np.ndarray, classes: np.ndarray, gradient: Gradient,
            start: np.ndarray | None = None) -> np.ndarray:
    """The adversarial examples of x0: `attack.steps` steps up J, each projected and clipped.
    `start` replaces the random start's draw (a test gives torchattacks' own)."""
    rng = np.random.default_rng(attack.seed)
    x = x0.copy()
    if attack.random_start:
        x = S.clip(S.random_start(x0, attack.eps, attack.norm, rng) if start is None else start,
                   attack.low, attack.high)
    for _ in range(attack.steps):
        g = gradient(x, classes)
        x = S.step(x, g, attack.step_size, attack.norm)
        x = S.project(x, x0, attack.eps, attack.norm)
        x = S.clip(x, attack.low, attack.high)
    return x


def query_gradient(attack: Attack, target: Target, u: np.ndarray) -> Gradient:
    """The finite-difference estimate of dJ/dx from the target's scores alone."""
    def j(inputs: np.ndarray, classes: np.ndarray) -> np.ndarray:
        return objective(target(inputs), target.kind, classes, attack.loss, attack.targeted)

    return lambda x, classes: blackbox.estimate(j, x, classes, u, attack.delta)


@dataclass(frozen=True)
class Outcome:
    """What the report is made of: every array has one row per attacked example."""
    clean: np.ndarray
    adversarial: np.ndarray
    labels: np.ndarray
    classes: np.ndarray  # the labels (untargeted) or the targets (targeted)
    clean_pred: np.ndarray
    adv_pred: np.ndarray
    queries: int  # answered by the target while the examples were made (not the two measurements)
    gradients: int  # per-example gradients of a model the attacker holds (white-box, transfer)


def run(attack: Attack, target: Target, x0: np.ndarray, labels: np.ndarray, classes: np.ndarray,
        gradient: Gradient | None = None, u: np.ndarray | None = None, chunk: int = 32,
        progress: Callable[[int], None] | None = None, counter: Callable[[], int] | None = None) -> Outcome:
    """Attack x0 `chunk` examples at a time (a progress tick per chunk): with `gradient` (white-box or
    transfer) or, for query-based methods, with finite differences along the directions `u`."""
    clean_pred = target.predict(x0)
    before = target.queries
    if attack.method in QUERY_BASED:
        gradient = query_gradient(attack, target, u)
    adversarial = []
    for i in range(0, len(x0), chunk):
        adversarial.append(perturb(replace(attack, seed=attack.seed + i), x0[i:i + chunk], classes[i:i + chunk],
                                   gradient))
        if progress:
            progress(len(adversarial[-1]))
    queries = target.queries - before
    adv = np.concatenate(adversarial) if adversarial else x0[:0]
    return Outcome(x0, adv, labels, classes, clean_pred, target.predict(adv), queries,
                   counter() if counter else 0)
