"""What a training run shows and writes besides checkpoints: progress bars, per-epoch summary
lines, the JSON-lines metrics log, PNG plots and pictures.

No torch here: numpy, matplotlib and tqdm only. Figures are built as `matplotlib.figure.Figure`
objects and rendered by Agg, never through pyplot, so this module neither switches the process's
backend nor leaves figures in pyplot's registry. Every file is written atomically (`<name>.tmp`
beside it, fsync, `os.replace`): a run killed at any moment leaves the old file or the new one,
never half of one. The metrics log is append-only instead, one fsync'ed line per record; a line
cut short by a kill is dropped when the log is read or resumed.
"""
from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from tqdm import tqdm

DPI = 100
MIN_IMAGE_PX = 64  # small images (8x8 digits) are upscaled by an integer factor to at least this
PAD_PX = 4
CAPTION_PX = 14
TITLE_PX = 28
ROW_LABEL_PX = 64
MAX_PAIRS = 16


# -- atomic files ---------------------------------------------------------------------------


@contextmanager
def _atomic(path: Path, mode: str = "wb") -> Iterator[IO[Any]]:
    """Open `<path>.tmp` for writing; on success fsync it and move it over `path`, else remove it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text(text: str, path: Path) -> None:
    """Write `text` to `path` (UTF-8) atomically, e.g. text sampled from a language model."""
    with _atomic(path, "w") as f:
        f.write(text)


def _save_figure(fig: Figure, path: Path) -> None:
    with _atomic(path) as f:
        fig.savefig(f, format="png", dpi=DPI)


# -- metrics log ----------------------------------------------------------------------------


def _json_safe(value: Any) -> Any:
    """`value` with nan/inf as None and numpy scalars and arrays as plain Python values."""
    if isinstance(value, np.ndarray):
        return _json_safe(value.tolist())
    if isinstance(value, np.generic):
        return _json_safe(value.item())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def _read_records(path: Path) -> list[dict]:
    """The records in a JSON-lines file; a corrupt last line (a write cut short) is dropped."""
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if number == len(lines):
                break
            raise ValueError(f"{path}:{number}: corrupt metrics record: {line[:80]!r}") from None
    return records


class MetricsLog:
    """metrics.jsonl: one JSON object per line, flushed and fsync'ed per line.

    `resume_after=None` starts a new log (an old one is replaced). `resume_after=E` continues the
    log of a run resumed from the checkpoint taken at the end of epoch E: records whose "epoch"
    is after E were written by the killed attempt and are dropped, so that no epoch shows twice;
    records without an "epoch" are kept.
    """

    def __init__(self, path: Path, resume_after: int | None = None) -> None:
        self.path = Path(path)
        kept = [] if resume_after is None else _records_up_to(_read_records(self.path), resume_after)
        with _atomic(self.path, "w") as f:
            f.writelines(_dump(r) for r in kept)

    def write(self, record: Mapping[str, Any]) -> None:
        """Append one record as a line (nan and inf become null) and fsync it."""
        line = _dump(record)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())

    def records(self) -> list[dict]:
        """Every record in the log, in order."""
        return _read_records(self.path)


def _dump(record: Mapping[str, Any]) -> str:
    return json.dumps(_json_safe(record), allow_nan=False) + "\n"


def _records_up_to(records: list[dict], epoch: int) -> list[dict]:
    return [r for r in records if not isinstance(r.get("epoch"), (int, float)) or r["epoch"] <= epoch]


# -- curves and confusion matrix ------------------------------------------------------------


def _metric_order(names: Iterable[str]) -> list[str]:
    """"loss" first, then the other metric names sorted."""
    names = set(names)
    return (["loss"] if "loss" in names else []) + sorted(names - {"loss"})


def _series(records: Sequence[Mapping[str, Any]], split: str | None, name: str) -> tuple[list, list]:
    """(epochs, values) for one metric of one split, skipping epochs where it is missing or null."""
    points = []
    for r in records:
        value = (r.get(split) or {}).get(name) if split else r.get(name)
        if isinstance(value, (int, float)) and math.isfinite(value):
            points.append((r["epoch"], value))
    return [e for e, _ in points], [v for _, v in points]


def plot_curves(records: Sequence[Mapping[str, Any]], path: Path, title: str) -> None:
    """One subplot per metric (train and val against epoch) and one for lr; records of kinds
    other than "epoch" are ignored. Raises ValueError when there is no epoch record."""
    epochs = [r for r in records if r.get("kind") == "epoch"]
    if not epochs:
        raise ValueError(f"no epoch records to plot in `{path}`")
    names = _metric_order({k for r in epochs for split in ("train", "val") for k in r.get(split) or {}})
    panels = [(name, ("train", "val")) for name in names]
    if any(r.get("lr") is not None for r in epochs):
        panels.append(("lr", (None,)))
    if not panels:
        raise ValueError(f"epoch records hold no metrics to plot in `{path}`")
    cols = min(len(panels), 3)
    rows = math.ceil(len(panels) / cols)
    fig = Figure(figsize=(4.2 * cols, 3.2 * rows + 0.5), layout="constrained")
    fig.suptitle(title)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    marker = "o" if len(epochs) == 1 else None
    for ax, (name, splits) in zip(axes, panels):
        _draw_panel(ax, epochs, name, splits, marker)
    for ax in axes[len(panels):]:
        ax.set_axis_off()
    _save_figure(fig, path)


def _draw_panel(ax: Any, epochs: Sequence[Mapping[str, Any]], name: str, splits: tuple, marker: str | None) -> None:
    for split in splits:
        xs, ys = _series(epochs, split, name)
        if xs:
            ax.plot(xs, ys, marker=marker, label=split or name)
    if name == "lr":
        values = _series(epochs, None, "lr")[1]
        if values and min(values) > 0 and max(values) >= 10 * min(values):
            ax.set_yscale("log")
    first, last = epochs[0]["epoch"], epochs[-1]["epoch"]
    if first == last:  # the integer locator finds no tick in the tiny default range around one point
        ax.set_xlim(first - 1, last + 1)
    ax.set_title(name)
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(True, alpha=0.3)
    if len(ax.get_lines()) > 1:
        ax.legend()


def plot_confusion(matrix: np.ndarray, labels: Sequence[str], path: Path, title: str) -> None:
    """A confusion matrix (rows = true class, columns = predicted) with the count in each cell
    and the accuracy (trace over total) in the title."""
    matrix = np.asarray(matrix)
    n = len(labels)
    if matrix.shape != (n, n):
        raise ValueError(f"confusion matrix of shape {matrix.shape} does not match {n} labels")
    total = int(matrix.sum())
    accuracy = f"{np.trace(matrix) / total:.4f}" if total else "n/a"
    side = max(4.0, 0.55 * n + 2.0)
    fig = Figure(figsize=(side + 1.0, side), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(matrix, cmap="Blues", vmin=0)
    fig.colorbar(image, ax=ax, shrink=0.8)
    ax.set_title(f"{title} (accuracy {accuracy})")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_xticks(range(n), labels=list(labels), rotation=45 if max(map(len, labels), default=0) > 3 else 0)
    ax.set_yticks(range(n), labels=list(labels))
    threshold = matrix.max() / 2 if total else 0
    for (i, j), count in np.ndenumerate(matrix):
        color = "white" if count > threshold else "black"
        ax.text(j, i, f"{int(count)}", ha="center", va="center", color=color, fontsize=8)
    _save_figure(fig, path)


# -- pictures -------------------------------------------------------------------------------


def _as_pictures(images: np.ndarray) -> np.ndarray:
    """[N, C, H, W] floats -> [N, H*s, W*s, C] in [0, 1], upscaled by an integer factor s."""
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 4 or images.shape[1] not in (1, 3) or images.shape[0] == 0:
        raise ValueError(f"images must be [N, C, H, W] with N >= 1 and C = 1 or 3, got shape {images.shape}")
    pictures = np.clip(np.nan_to_num(images), 0.0, 1.0).transpose(0, 2, 3, 1)  # (N, H, W, C)
    scale = max(1, math.ceil(MIN_IMAGE_PX / min(pictures.shape[1:3])))
    return pictures.repeat(scale, axis=1).repeat(scale, axis=2)


def image_grid(
    images: np.ndarray,
    path: Path,
    title: str | None = None,
    nrow: int | None = None,
    captions: Sequence[str] | None = None,
) -> None:
    """Images [N, C, H, W] (floats in [0, 1], clipped; C = 1 or 3) in a grid of `nrow` columns
    (default ceil(sqrt(N))), small images upscaled (nearest neighbour), optional caption each."""
    pictures = _as_pictures(images)
    if captions is not None and len(captions) != len(pictures):
        raise ValueError(f"{len(captions)} captions for {len(pictures)} images")
    cols = nrow or math.ceil(math.sqrt(len(pictures)))
    _draw_grid(pictures, cols, path, title, captions, row_labels=None)


def pairs_grid(originals: np.ndarray, outputs: np.ndarray, path: Path, title: str) -> None:
    """Reconstructions: the first 16 originals in row 1 and their outputs in row 2."""
    originals, outputs = np.asarray(originals), np.asarray(outputs)
    if originals.shape != outputs.shape:
        raise ValueError(f"originals of shape {originals.shape} and outputs of shape {outputs.shape} differ")
    n = min(len(originals), MAX_PAIRS)
    pictures = _as_pictures(np.concatenate([originals[:n], outputs[:n]]))
    _draw_grid(pictures, n, path, title, captions=None, row_labels=("original", "output"))


def _draw_grid(
    pictures: np.ndarray,
    cols: int,
    path: Path,
    title: str | None,
    captions: Sequence[str] | None,
    row_labels: Sequence[str] | None,
) -> None:
    """Lay the pictures out at one figure pixel per picture pixel, so upscaling stays crisp."""
    rows = math.ceil(len(pictures) / cols)
    ph, pw = pictures.shape[1:3]
    cell_h = ph + PAD_PX + (CAPTION_PX if captions else 0)
    left = PAD_PX + (ROW_LABEL_PX if row_labels else 0)
    top = PAD_PX + (TITLE_PX if title else 0)
    grid_w = left + cols * (pw + PAD_PX)
    width = max(grid_w, 240 if title else 0)
    height = top + rows * cell_h
    fig = Figure(figsize=(width / DPI, height / DPI), dpi=DPI)
    if title:
        fig.suptitle(title, y=1 - (PAD_PX + 4) / height, va="top", fontsize=11)
    offset = left + (width - grid_w) / 2
    for index, picture in enumerate(pictures):
        row, col = divmod(index, cols)
        x = offset + col * (pw + PAD_PX)
        y = height - top - row * cell_h - (CAPTION_PX if captions else 0) - ph
        ax = fig.add_axes((x / width, y / height, pw / width, ph / height))
        _show(ax, picture, captions[index] if captions else None)
    for row, label in enumerate(row_labels or ()):
        y = height - top - row * cell_h - ph / 2
        fig.text((offset - 4) / width, y / height, label, ha="right", va="center", fontsize=9)
    _save_figure(fig, path)


def _show(ax: Any, picture: np.ndarray, caption: str | None) -> None:
    if picture.shape[2] == 1:
        ax.imshow(picture[:, :, 0], cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    else:
        ax.imshow(picture, interpolation="nearest")
    ax.set_axis_off()
    if caption is not None:
        ax.set_title(caption, fontsize=8, pad=2)


# -- terminal output ------------------------------------------------------------------------


class Progress:
    """A tqdm bar for one epoch: steps done, examples/s and the running mean of each metric.

    `enabled=False` prints nothing (other ranks of a distributed run, or --quiet). The bar goes
    to stderr; on a terminal it is cleared at the end (the epoch line replaces it), elsewhere
    (a log file) it refreshes at most once a second and its last state is kept.
    """

    def __init__(self, total_steps: int, desc: str, enabled: bool = True) -> None:
        stream = sys.stderr
        terminal = enabled and stream.isatty()
        self._bar = tqdm(
            total=total_steps,
            desc=desc,
            unit="step",
            file=stream,
            disable=not enabled,
            leave=not terminal,
            mininterval=0.1 if terminal else 1.0,
            dynamic_ncols=terminal,
        )
        self._start = time.perf_counter()
        self._examples = 0
        self._sums: dict[str, float] = {}
        self._counts: dict[str, int] = {}

    def update(self, examples: int, **metrics: float) -> None:
        """Advance one step that saw `examples` examples and produced `metrics` (e.g. loss=...)."""
        self._examples += examples
        for name, value in metrics.items():
            self._sums[name] = self._sums.get(name, 0.0) + float(value)
            self._counts[name] = self._counts.get(name, 0) + 1
        shown = [f"{k}={v:.4g}" for k, v in self.means.items()]
        self._bar.set_postfix_str(", ".join([*shown, f"{self.examples_per_s:,.0f} ex/s"]), refresh=False)
        self._bar.update(1)

    @property
    def means(self) -> dict[str, float]:
        """The running mean of each metric so far, "loss" first."""
        return {k: self._sums[k] / self._counts[k] for k in _metric_order(self._sums)}

    @property
    def examples_per_s(self) -> float:
        """Examples seen per second of wall time since the bar was made."""
        return self._examples / max(time.perf_counter() - self._start, 1e-9)

    def close(self) -> None:
        """End the bar (its final state is written unless cleared on a terminal)."""
        self._bar.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _number(value: float) -> str:
    if not math.isfinite(value):
        return str(value)
    if value != 0 and abs(value) < 1e-3:
        return f"{value:.3e}"
    return f"{value:.4f}"


def _metrics_text(split: str, metrics: Mapping[str, float]) -> str:
    parts = [f"{name} {_number(float(metrics[name]))}" for name in _metric_order(metrics)]
    return " ".join([split, *parts])


def epoch_line(
    epoch: int,
    epochs: int,
    train: Mapping[str, float],
    val: Mapping[str, float] | None,
    seconds: float,
    examples_per_s: float,
    lr: float | None = None,
    best: bool = False,
) -> str:
    """One summary line per epoch, e.g.
    `epoch  3/15  train loss 0.2114 accuracy 0.9412 | val loss 0.2301 accuracy 0.9370 | lr 1.0e-03 | 4.1 s, 3,050 ex/s  * best`
    (metrics with 4 decimals, loss first, then the others sorted)."""
    sections = [_metrics_text("train", train)]
    if val:
        sections.append(_metrics_text("val", val))
    if lr is not None:
        sections.append(f"lr {lr:.1e}")
    sections.append(f"{seconds:.1f} s, {examples_per_s:,.0f} ex/s")
    line = f"epoch {epoch:>{len(str(epochs))}}/{epochs}  " + " | ".join(sections)
    return line + ("  * best" if best else "")
