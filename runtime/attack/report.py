"""The figures of an attack, report.json and grid.png.

    clean_accuracy        share of the examples the target labels right
    adversarial_accuracy  the same on the adversarial examples
    success_rate          untargeted: of the examples labelled right when clean, the share labelled
                          wrong after the attack; targeted: of those labelled right whose label is
                          not the target, the share labelled as the target
    l2 / linf             mean and max over all attacked examples of ||x_adv - x||
    queries_per_example   queries the target answered while the examples were made, per example
                          (0 for white-box and transfer: their cost is in gradients_per_example)
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .loop import Attack, Outcome

GRID_COLUMNS = 8


def figures(o: Outcome, targeted: bool) -> dict[str, Any]:
    n = len(o.labels)
    right = o.clean_pred == o.labels
    if targeted:
        eligible = right & (o.labels != o.classes)
        hit = o.adv_pred == o.classes
    else:
        eligible, hit = right, o.adv_pred != o.labels
    diff = (o.adversarial - o.clean).reshape(n, -1).astype(np.float64)
    l2, linf = np.linalg.norm(diff, axis=1), np.abs(diff).max(axis=1, initial=0.0)
    return {
        "examples": n,
        "clean_accuracy": float(right.mean()) if n else 0.0,
        "adversarial_accuracy": float((o.adv_pred == o.labels).mean()) if n else 0.0,
        "success_rate": float(hit[eligible].mean()) if eligible.any() else 0.0,
        "attacked": int(eligible.sum()),
        "l2_mean": float(l2.mean()) if n else 0.0, "l2_max": float(l2.max(initial=0.0)),
        "linf_mean": float(linf.mean()) if n else 0.0, "linf_max": float(linf.max(initial=0.0)),
        "queries_per_example": o.queries / n if n else 0.0,
        "gradients_per_example": o.gradients / n if n else 0.0,
    }


def write(out: Path, attack: Attack, target: str, o: Outcome, extra: Mapping[str, Any],
          class_names: list[str] | None = None) -> dict[str, Any]:
    """report.json, grid.png and adversarial.npz in `out`, each written whole or not at all."""
    out.mkdir(parents=True, exist_ok=True)
    record = {"target": target, "attack": {k: v for k, v in attack.__dict__.items()},
              **dict(extra), "figures": figures(o, attack.targeted)}
    _atomic(out / "report.json", lambda p: p.write_text(json.dumps(record, indent=2) + "\n"))
    _atomic(out / "adversarial.npz", lambda p: _arrays(p, o))
    _atomic(out / "grid.png", lambda p: grid(p, o, attack, class_names))
    return record


def grid(path: Path, o: Outcome, attack: Attack, class_names: list[str] | None) -> None:
    """Clean, adversarial and perturbation rows for the first examples, with the labels predicted."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    k = min(GRID_COLUMNS, len(o.labels))
    name = (lambda c: class_names[c]) if class_names else str
    fig, axes = plt.subplots(3, max(k, 1), figsize=(1.4 * max(k, 1), 4.6), squeeze=False)
    for col in range(max(k, 1)):
        for row in range(3):
            axes[row][col].axis("off")
        if col >= k:
            continue
        clean, adv = _image(o.clean[col]), _image(o.adversarial[col])
        delta = adv - clean
        span = float(np.abs(delta).max()) or 1.0
        axes[0][col].imshow(clean, cmap="gray", vmin=attack.low, vmax=attack.high)
        axes[0][col].set_title(f"{name(int(o.labels[col]))}: {name(int(o.clean_pred[col]))}", fontsize=8)
        axes[1][col].imshow(adv, cmap="gray", vmin=attack.low, vmax=attack.high)
        axes[1][col].set_title(f"-> {name(int(o.adv_pred[col]))}", fontsize=8,
                               color="red" if o.adv_pred[col] != o.labels[col] else "black")
        axes[2][col].imshow(delta, cmap="seismic", vmin=-span, vmax=span)
        axes[2][col].set_title(f"|d|inf {span:.2f}", fontsize=7)
    fig.suptitle(f"{attack.method}, eps {attack.eps:g} ({attack.norm}): label: clean prediction / "
                 "adversarial / perturbation", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=100)
    plt.close(fig)


def _arrays(path: Path, o: Outcome) -> None:
    with path.open("wb") as f:
        np.savez_compressed(f, clean=o.clean, adversarial=o.adversarial, labels=o.labels, classes=o.classes,
                            clean_pred=o.clean_pred, adv_pred=o.adv_pred)


def _image(x: np.ndarray) -> np.ndarray:
    """(C, H, W) as something imshow takes: grey (H, W) or RGB (H, W, 3)."""
    if x.ndim == 3 and x.shape[0] == 1:
        return x[0]
    if x.ndim == 3 and x.shape[0] == 3:
        return np.transpose(x, (1, 2, 0))
    return x.reshape(x.shape[0], -1) if x.ndim > 1 else x[None]


def _atomic(target: Path, write_to) -> None:
    tmp = target.with_name(f".{target.name}.tmp")
    try:
        write_to(tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
