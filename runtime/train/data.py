"""The data sets `dlc train` trains on: numpy arrays by field and split, read with numpy and PIL only.

No network, ever: data comes from a package that ships it or from the user's own files. Each kind
(`digits`, `text`, `npz`, `images`) turns its arguments into one `Dataset`; `check_fits` compares
it with what a training definition declares, before any model is built.

Splits are fixed by the data, never by a training seed, so two runs with different seeds are
scored on the same examples:

- `digits`: a permutation from `np.random.default_rng(0)` of scikit-learn's 1,797 images, then the
  first 1,257 train, the next 270 val, the last 270 test.
- `text`: the byte stream in order, the first 90 % train, the next 5 % val, the last 5 % test
  (5 % is `n // 20` bytes). Each split is cut into windows of `seq + 1` bytes at a stride of `seq`,
  so consecutive windows share one byte; `tokens = window[:-1]`, `targets = window[1:]`.
- `npz` without `train_`/`val_`/`test_` names, and `images` without `train/`/`val/`/`test/`
  folders: a permutation from `np.random.default_rng(0)`, then `n // 10` examples each for val
  and test (in that order, from the end) and the rest train.

Every failure is a `DataError` with a one-line message naming the data set, the file, and both
what was expected and what was found; no numpy or PIL exception escapes.
"""
from __future__ import annotations

import importlib

import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from PIL import Image

SPLITS = ("train", "val", "test")
DIGITS_SPLIT = {"train": 1257, "val": 270, "test": 270}  # of sklearn's 1,797 digits
TEXT_VOCAB = 256  # byte-level: a token is a byte value
TEXT_MIN_WINDOWS = 4  # each split must hold at least this many windows
MAX_IMAGE_SIZE = 1024  # 1,797 digits at 1024x1024 are already 7.5 GB of float32


class DataError(Exception):
    """A data problem, said plainly: names the data set, the file, the field, and both sides of a mismatch."""


@dataclass(frozen=True, slots=True)
class Field:
    """One named array of a data set, described per example (no leading N axis)."""

    name: str
    dtype: str  # "f32" or "i64"
    shape: tuple[int, ...]  # () for a scalar label
    classes: int | None  # i64: values lie in [0, classes); None for f32


@dataclass(frozen=True, slots=True, eq=False)
class Dataset:
    """A loaded data set: `splits[split][field]` is an array [N, *field.shape] (float32 or int64)."""

    name: str  # the kind: "digits", "text", "npz", "images"
    source: str  # what was read, for messages: "scikit-learn digits", a path, "pydoc_data.topics"
    fields: tuple[Field, ...]
    splits: Mapping[str, Mapping[str, np.ndarray]]
    meta: Mapping[str, Any]

    def field(self, name: str) -> Field:
        """The field called `name`; DataError naming the available fields when there is none."""
        for f in self.fields:
            if f.name == name:
                return f
        raise DataError(f"{_side(self)} has no field `{name}`; it has {_names(f.name for f in self.fields)}")

    def size(self, split: str) -> int:
        """Number of examples in `split` ("train", "val" or "test")."""
        if split not in self.splits:
            raise DataError(f"{_side(self)} has no split `{split}`; it has {_names(self.splits)}")
        arrays = self.splits[split]
        return len(next(iter(arrays.values()))) if arrays else 0


@dataclass(frozen=True, slots=True)
class Expected:
    """What a training definition's input declares, as the compiler gives it to `check_fits`."""

    name: str  # input name == field name
    dtype: str  # "f32" / "i64"
    dims: tuple[int | str, ...]  # as declared, batch dim first; a str is a symbol
    where: str  # location text, e.g. "spec/digits_cnn.arch:31:9"
    classes: int | None = None  # i64 inputs compared against a head: the width of the network's output


# ---------------------------------------------------------------------------------------------
# Entry points


# Data sets with a module of their own, each checking its own arguments: kind -> (module, loader).
ELSEWHERE: Mapping[str, tuple[str, str]] = MappingProxyType({
    "digit_pairs": (".data_pairs", "load_digit_pairs"),  # Siamese pairs of digits
    "synthetic": (".data_seq", "load_synthetic"),  # sequence-to-sequence tasks on characters
    "bert": (".data_bert", "load_bert"),  # BERT pre-training and fine-tuning tasks on pydoc text
    "skipgram": (".data_words", "load_skipgram"),  # word2vec's (center, context, negatives) on pydoc words
})


def load(kind: str, args: Mapping[str, Any], base: Path | None = None) -> Dataset:
    """Read the data set `kind` with `args`; relative paths are taken from `base` (default: cwd)."""
    if kind in ELSEWHERE:  # built on the loaders here, so imported only when asked for
        module, function = ELSEWHERE[kind]
        return getattr(importlib.import_module(module, __package__), function)(args, Path.cwd() if base is None
                                                                               else Path(base))
    if kind not in KINDS:
        raise DataError(f"unknown data set `{kind}`; the kinds are {_names([*KINDS, *ELSEWHERE])}")
    read, params = KINDS[kind]
    for name in args:
        if name not in params:
            raise DataError(f"data `{kind}` takes no argument `{name}`; it takes {_names(params)}")
    return read({**params, **args}, Path.cwd() if base is None else Path(base))


def check_fits(data: Dataset, expected: Sequence[Expected], train_name: str) -> None:
    """Raise DataError unless every declared input is a field of `data` with the same dtype and
    per-example shape (symbols bind one size across all inputs, batch dims aside), no label reaches
    the network's output width, and no split is empty."""
    bound: dict[str, tuple[int, Field, Expected]] = {}
    for e in expected:
        f = _declared_field(data, e, train_name)
        _check_shape(data, f, e, train_name, bound)
        _check_classes(data, f, e)
    for split in SPLITS:
        if data.size(split) == 0:
            counts = ", ".join(f"{s} {data.size(s)}" for s in SPLITS)
            raise DataError(f"{_side(data)} has no examples in split `{split}` ({counts}), but train "
                            f"`{train_name}` needs examples in every split")


def _declared_field(data: Dataset, e: Expected, train_name: str) -> Field:
    names = [f.name for f in data.fields]
    if e.name not in names:
        raise DataError(f"{_side(data)} has no field `{e.name}` (it has {_names(names)}), but train "
                        f"`{train_name}` declares input `{e.name}` as {_declared(e)} at {e.where}")
    return data.field(e.name)


def _check_shape(data: Dataset, f: Field, e: Expected, train_name: str,
                 bound: dict[str, tuple[int, Field, Expected]]) -> None:
    mismatch = (f"{_side(data)} gives `{f.name}` as {_described(f)} per example, but train "
                f"`{train_name}` declares input `{e.name}` as {_declared(e)} at {e.where}")
    per_example = e.dims[1:]
    if f.dtype != e.dtype or len(per_example) != len(f.shape):
        raise DataError(mismatch)
    for declared, size in zip(per_example, f.shape, strict=True):
        if isinstance(declared, str):
            _bind(data, declared, size, f, e, train_name, bound, mismatch)
        elif declared != size:
            raise DataError(mismatch)


def _bind(data: Dataset, symbol: str, size: int, f: Field, e: Expected, train_name: str,
          bound: dict[str, tuple[int, Field, Expected]], mismatch: str) -> None:
    if symbol not in bound:
        bound[symbol] = (size, f, e)
        return
    first_size, first_field, first = bound[symbol]
    if first_size == size:
        return
    if first is e:  # both sides of the clash are in this one input
        raise DataError(f"{mismatch}: `{symbol}` cannot be both {first_size} and {size}")
    raise DataError(f"{_side(data)} gives `{first_field.name}` as {_described(first_field)} and "
                    f"`{f.name}` as {_described(f)} per example, but train `{train_name}` declares "
                    f"`{symbol}` in both (input `{first.name}` as {_declared(first)} at {first.where}, "
                    f"input `{e.name}` as {_declared(e)} at {e.where}), and `{symbol}` cannot be both "
                    f"{first_size} and {size}")


def _check_classes(data: Dataset, f: Field, e: Expected) -> None:
    if e.classes is None or f.dtype != "i64":
        return
    top = max((int(a[f.name].max()) for a in data.splits.values() if a[f.name].size), default=-1)
    if top >= e.classes:
        what = "labels" if f.shape == () else "token ids"
        raise DataError(f"{_side(data)} has {what} up to {top} in `{f.name}`, but the network's output "
                        f"has {e.classes} classes ({e.where})")


# ---------------------------------------------------------------------------------------------
# digits: scikit-learn's bundled 8x8 digits


def _load_digits(args: Mapping[str, Any], base: Path) -> Dataset:
    size = _int_arg("digits", args, "size", minimum=1, maximum=MAX_IMAGE_SIZE)
    binarize = _bool_arg("digits", args, "binarize")
    target = args.get("target", "digit")
    if target not in DIGITS_TARGETS:
        raise DataError(f"data `digits`: `target` is {target!r}; it is one of {_names(DIGITS_TARGETS)}")
    from sklearn.datasets import load_digits  # bundled with scikit-learn: no download

    digits = load_digits()
    images = digits.images.astype(np.float32) / 16.0  # (1797, 8, 8) in [0, 1]
    if size != 8:
        images = np.stack([_resize(image, size) for image in images])
    if binarize:
        images = (images > 0.5).astype(np.float32)
    masks = (images > 0.5).astype(np.int64)  # target="mask": 1 where the [0, 1] intensity is over 0.5
    channels = args.get("channels", 1)
    if channels not in (1, 3) or isinstance(channels, bool):
        raise DataError(f"data `digits` takes `channels` 1 (grey) or 3 (the grey image repeated), not {channels!r}")
    scale = args.get("scale", "unit")
    if scale not in DIGITS_SCALES:
        raise DataError(f"data `digits`: `scale` is {scale!r}; it is one of {_names(DIGITS_SCALES)}")
    if scale == "tanh":  # [-1, 1], the range of a tanh generator's images (GANs)
        images = images * 2.0 - 1.0
    labels = digits.target.astype(np.int64)
    if target == "parity":  # a second task on the same images (transfer learning): even 0, odd 1
        labels = labels % 2
    order = np.random.default_rng(0).permutation(len(labels))
    splits, start = {}, 0
    for split, count in DIGITS_SPLIT.items():
        chosen = order[start:start + count]
        image = np.repeat(images[chosen, None], channels, axis=1)  # (N, channels, size, size)
        splits[split] = {"image": image, "mask": masks[chosen]} if target == "mask" else \
            {"image": image, "label": labels[chosen]}
        start += count
    if target == "mask":
        classes = ["background", "digit"]
        fields = (Field("image", "f32", (channels, size, size), None), Field("mask", "i64", (size, size), 2))
        return _dataset("digits", "scikit-learn digits", fields, splits, {"classes": classes})
    classes = [str(d) for d in range(10)] if target == "digit" else ["even", "odd"]
    fields = (Field("image", "f32", (channels, size, size), None), Field("label", "i64", (), len(classes)))
    return _dataset("digits", "scikit-learn digits", fields, splits, {"classes": classes})


DIGITS_TARGETS = ("digit", "parity", "mask")  # `label`: the digit (10 classes) or its parity (2); "mask": a
# `mask` field instead, i64[size, size], per pixel 0 background / 1 digit (segmentation)
DIGITS_SCALES = ("unit", "tanh")  # image intensities in [0, 1] or in [-1, 1]


def _resize(image: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize of one [0, 1] float image to (size, size), clipped back to [0, 1]."""
    resized = Image.fromarray(image).resize((size, size), Image.Resampling.BILINEAR)  # float32 is mode "F"
    return np.clip(np.asarray(resized, dtype=np.float32), 0.0, 1.0)


# ---------------------------------------------------------------------------------------------
# text: byte-level language-model windows


def _load_text(args: Mapping[str, Any], base: Path) -> Dataset:
    seq = _int_arg("text", args, "seq", minimum=1)
    path = args["path"]
    if path is None:
        source, stream = "pydoc_data.topics", _python_docs()
    else:
        source = _path_text("text", path)
        stream = _read_bytes(_resolve(path, base), source)
    need = 20 * (TEXT_MIN_WINDOWS * seq + 1)  # val and test are n // 20 bytes each
    if len(stream) < need:
        raise DataError(f"data `text` ({source}) has {len(stream)} bytes, but seq={seq} needs at least "
                        f"{need} bytes ({TEXT_MIN_WINDOWS} windows of {seq + 1} bytes in each of train, "
                        f"val and test, which get 90 %, 5 % and 5 %)")
    tokens = np.frombuffer(stream, dtype=np.uint8).astype(np.int64)
    held = len(tokens) // 20
    parts = {"train": tokens[:len(tokens) - 2 * held], "val": tokens[len(tokens) - 2 * held:len(tokens) - held],
             "test": tokens[len(tokens) - held:]}
    splits = {split: _windows(part, seq) for split, part in parts.items()}
    fields = (Field("tokens", "i64", (seq,), TEXT_VOCAB), Field("targets", "i64", (seq,), TEXT_VOCAB))
    meta = {"unigram_bits": _entropy_bits(parts["train"]), "vocab": TEXT_VOCAB, "decode": "bytes"}
    return _dataset("text", source, fields, splits, meta)


def _python_docs() -> bytes:
    """CPython's own documentation text, shipped with the interpreter (about 470 kB)."""
    try:
        from pydoc_data.topics import topics
    except ImportError:  # some Linux distributions package it apart from the standard library
        raise DataError("data `text` (pydoc_data.topics) is not installed with this Python; "
                        "give `path` to a text file") from None
    return "\n".join(topics[key] for key in sorted(topics)).encode("utf-8")


def _windows(stream: np.ndarray, seq: int) -> dict[str, np.ndarray]:
    """Windows of seq + 1 tokens at stride seq: (N, seq) tokens and the (N, seq) next tokens."""
    windows = np.lib.stride_tricks.sliding_window_view(stream, seq + 1)[::seq]  # (N, seq + 1)
    windows = np.ascontiguousarray(windows)
    return {"tokens": windows[:, :-1], "targets": windows[:, 1:]}  # views of one array: half the memory


def _entropy_bits(stream: np.ndarray) -> float:
    """Entropy in bits per byte of the stream's byte histogram."""
    counts = np.bincount(stream, minlength=TEXT_VOCAB)
    p = counts[counts > 0] / len(stream)
    return float(-(p * np.log2(p)).sum())


# ---------------------------------------------------------------------------------------------
# npz: the user's named arrays


def _load_npz(args: Mapping[str, Any], base: Path) -> Dataset:
    source = _path_text("npz", args["path"])
    stored = _read_npz(_resolve(args["path"], base), source)
    arrays = {name: _field_array(source, name, array) for name, array in stored.items()}
    if any(name.startswith(f"{split}_") for name in arrays for split in SPLITS):
        splits = _presplit_arrays(arrays, source)
    else:
        splits = _split_arrays(arrays, source)
    fields = tuple(_npz_field(source, name, splits) for name in splits["train"])
    return _dataset("npz", source, fields, splits, {"arrays": list(stored)})


def _read_npz(path: Path, source: str) -> dict[str, np.ndarray]:
    try:
        archive = np.load(path, allow_pickle=False)
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise DataError(f"data `npz` ({source}) holds one unnamed array, not named arrays; "
                            f"save it with np.savez(path, name=array, ...)")
        with archive:
            arrays = {name: archive[name] for name in archive.files}
    except OSError as error:
        raise DataError(f"data `npz` ({source}) cannot be read: {_reason(error)}") from None
    except (EOFError, ValueError, zipfile.BadZipFile, zlib.error) as error:  # never unpickled: allow_pickle=False
        raise DataError(f"data `npz` ({source}) is not an .npz file of plain arrays (pickled objects are "
                        f"refused): {_reason(error)}") from None
    if not arrays:
        raise DataError(f"data `npz` ({source}) holds no arrays")
    return arrays


def _presplit_arrays(arrays: dict[str, np.ndarray], source: str) -> dict[str, dict[str, np.ndarray]]:
    """Arrays named train_<f>, val_<f>, test_<f>: one dict of fields per split."""
    raw: dict[str, dict[str, np.ndarray]] = {split: {} for split in SPLITS}
    for name, array in arrays.items():
        split = next((s for s in SPLITS if name.startswith(f"{s}_")), None)
        if split is None:
            raise DataError(f"data `npz` ({source}) has split arrays ({_names(a for a in arrays if a != name)}) "
                            f"and also `{name}`, which does not start with train_, val_ or test_")
        raw[split][name[len(split) + 1:]] = array
    every = dict.fromkeys(f for split in SPLITS for f in raw[split])
    for split in SPLITS:
        for f in every:
            if f not in raw[split]:
                have = next(f"{s}_{f}" for s in SPLITS if f in raw[s])
                raise DataError(f"data `npz` ({source}) has `{have}` but no `{split}_{f}`")
        raw[split] = {f: raw[split][f] for f in every}
    for split in SPLITS:
        _same_length(source, {f"{split}_{f}": a for f, a in raw[split].items()})
    return raw


def _split_arrays(arrays: dict[str, np.ndarray], source: str) -> dict[str, dict[str, np.ndarray]]:
    """Arrays without split names: one field each, split by the fixed 80 / 10 / 10 permutation."""
    _same_length(source, arrays)
    n = len(next(iter(arrays.values())))
    return {split: {name: a[chosen] for name, a in arrays.items()} for split, chosen in _fixed_split(n).items()}


def _same_length(source: str, arrays: Mapping[str, np.ndarray]) -> None:
    first = None
    for name, array in arrays.items():
        if array.ndim == 0:
            raise DataError(f"data `npz` ({source}) array `{name}` is a single value; "
                            f"expected one row per example (shape [N, ...])")
        if first is None:
            first = name
        elif len(array) != len(arrays[first]):
            raise DataError(f"data `npz` ({source}) array `{first}` has {len(arrays[first])} rows but "
                            f"`{name}` has {len(array)}; the arrays of a split must have the same length")


def _field_array(source: str, name: str, array: np.ndarray) -> np.ndarray:
    """float arrays as float32; integer and bool arrays as int64 class labels (never negative)."""
    if array.dtype.kind == "f":
        return array.astype(np.float32)
    if array.dtype.kind not in "iub":
        raise DataError(f"data `npz` ({source}) array `{name}` has dtype {array.dtype}; "
                        f"expected float (f32) or integer/bool (i64 labels)")
    labels = array.astype(np.int64)
    if labels.size and labels.min() < 0:
        raise DataError(f"data `npz` ({source}) array `{name}` has a negative value {labels.min()}; "
                        f"integer arrays are class labels or token ids and must be >= 0")
    return labels


def _npz_field(source: str, name: str, splits: Mapping[str, Mapping[str, np.ndarray]]) -> Field:
    shapes = {split: splits[split][name].shape[1:] for split in SPLITS}
    for split in SPLITS[1:]:
        if shapes[split] != shapes["train"] or splits[split][name].dtype != splits["train"][name].dtype:
            raise DataError(f"data `npz` ({source}) gives `{name}` as {_array_type(splits['train'][name])} "
                            f"per example in train but {_array_type(splits[split][name])} in {split}")
    train = splits["train"][name]
    if train.dtype == np.float32:
        return Field(name, "f32", shapes["train"], None)
    top = max((int(a[name].max()) for a in splits.values() if a[name].size), default=-1)
    return Field(name, "i64", shapes["train"], top + 1)


# ---------------------------------------------------------------------------------------------
# images: a folder with one sub-folder per class


def _load_images(args: Mapping[str, Any], base: Path) -> Dataset:
    source = _path_text("images", args["path"])
    root = _resolve(args["path"], base)
    size = None if args["size"] is None else _int_arg("images", args, "size", minimum=1, maximum=MAX_IMAGE_SIZE)
    channels = _int_arg("images", args, "channels", minimum=1)
    if channels not in (1, 3):
        raise DataError(f"data `images` ({source}) takes `channels` 1 (grey) or 3 (RGB), not {channels}")
    if not root.is_dir():
        raise DataError(f"data `images` ({source}) is not a folder")
    classes, files = _split_files(root, source)
    paths = sorted(path for split in SPLITS for path, _ in files[split])  # messages name files in order
    images = _read_images(root, source, paths, channels, size)
    shape = next(iter(images.values())).shape  # (C, H, W)
    splits = {split: {"image": _stack([images[path] for path, _ in files[split]], shape),
                      "label": np.array([label for _, label in files[split]], dtype=np.int64)} for split in SPLITS}
    fields = (Field("image", "f32", shape, None), Field("label", "i64", (), len(classes)))
    shown = {split: [path.relative_to(root).as_posix() for path, _ in files[split]] for split in SPLITS}
    return _dataset("images", source, fields, splits, {"classes": classes, "files": shown})


def _stack(images: list[np.ndarray], shape: tuple[int, ...]) -> np.ndarray:
    return np.stack(images) if images else np.zeros((0, *shape), dtype=np.float32)  # (N, C, H, W)


def _split_files(root: Path, source: str) -> tuple[list[str], dict[str, list[tuple[Path, int]]]]:
    """Class names and (file, label) per split: from train/, val/, test/ when present, else the fixed split."""
    present = [split for split in SPLITS if (root / split).is_dir()]
    if not present:
        classes, labelled = _labelled_files(root, source, root)
        return classes, {split: [labelled[i] for i in chosen] for split, chosen in _fixed_split(len(labelled)).items()}
    if len(present) < len(SPLITS):
        missing = [split for split in SPLITS if split not in present]
        raise DataError(f"data `images` ({source}) has {_names(f'{s}/' for s in present)} but no "
                        f"{_names(f'{s}/' for s in missing)}; give all of train/, val/, test/ or none")
    classes, files = _labelled_files(root / "train", source, root)
    splits = {"train": files}
    for split in SPLITS[1:]:
        names, splits[split] = _labelled_files(root / split, source, root)
        if names != classes:
            raise DataError(f"data `images` ({source}) has classes {_names(classes)} in train/ but "
                            f"{_names(names)} in {split}/; every split needs the same class folders")
    return classes, splits


def _labelled_files(folder: Path, source: str, root: Path) -> tuple[list[str], list[tuple[Path, int]]]:
    """The class folders' names in `folder` and every (image file, label) in them; plain files beside
    the class folders (a README) are not examples and are left out."""
    classes = [entry for entry in _visible(folder, source, root) if entry.is_dir()]
    if not classes:
        raise DataError(f"data `images` ({source}) has no class folders in {_shown(source, root, folder)}; "
                        f"expected one sub-folder of images per class")
    labelled = []
    for label, class_folder in enumerate(classes):
        labelled += [(path, label) for path in _class_images(class_folder, source, root)]
    return [c.name for c in classes], labelled


def _class_images(folder: Path, source: str, root: Path) -> list[Path]:
    entries = _visible(folder, source, root)
    for entry in entries:
        if entry.is_dir():
            raise DataError(f"data `images` ({source}) has a folder {_shown(source, root, entry)} inside a "
                            f"class folder; expected image files only")
    if not entries:
        raise DataError(f"data `images` ({source}) class folder {_shown(source, root, folder)} holds no images")
    return entries


def _visible(folder: Path, source: str, root: Path) -> list[Path]:
    """The folder's entries, sorted by name, without hidden ones (".DS_Store", ".ipynb_checkpoints")."""
    try:
        return sorted((e for e in folder.iterdir() if not e.name.startswith(".")), key=lambda e: e.name)
    except OSError as error:
        raise DataError(f"data `images` ({source}) cannot list {_shown(source, root, folder)}: "
                        f"{_reason(error)}") from None


def _read_images(root: Path, source: str, paths: list[Path], channels: int,
                 size: int | None) -> dict[Path, np.ndarray]:
    """Each file as a (channels, H, W) float32 image in [0, 1]; without `size`, all must share one size."""
    images: dict[Path, np.ndarray] = {}
    first: Path | None = None
    for path in paths:
        image = _read_image(path, _shown(source, root, path), channels, size)
        if first is not None and image.shape != images[first].shape:
            a, b = images[first].shape[1:], image.shape[1:]
            raise DataError(f"data `images` ({source}) has {_shown(source, root, first)} at {a[1]}x{a[0]} "
                            f"but {_shown(source, root, path)} at {b[1]}x{b[0]}; give `size` to resize them")
        if first is None:
            first = path
        images[path] = image
    return images


def _read_image(path: Path, shown: str, channels: int, size: int | None) -> np.ndarray:
    try:
        with Image.open(path) as opened:
            image = opened.convert("L" if channels == 1 else "RGB")
            if size is not None:
                image = image.resize((size, size), Image.Resampling.BILINEAR)
            pixels = np.asarray(image, dtype=np.float32) / 255.0
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise DataError(f"data `images` cannot read {shown} as an image: {_reason(error)}") from None
    return pixels[None] if channels == 1 else pixels.transpose(2, 0, 1)  # (C, H, W)


def _shown(source: str, root: Path, path: Path) -> str:
    """A path inside the folder as the user would write it: the folder as given, then the rest."""
    return (Path(source) / path.relative_to(root)).as_posix() + ("/" if path.is_dir() else "")


# ---------------------------------------------------------------------------------------------
# Shared helpers


KINDS: Mapping[str, tuple[Callable[[Mapping[str, Any], Path], Dataset], Mapping[str, Any]]] = MappingProxyType({
    "digits": (_load_digits, {"size": 8, "binarize": False, "target": "digit", "scale": "unit", "channels": 1}),
    "text": (_load_text, {"path": None, "seq": 128}),
    "npz": (_load_npz, {"path": None}),
    "images": (_load_images, {"path": None, "size": None, "channels": 1}),
})
"""Each kind: its reader and its arguments with their defaults (a default of None for `path` in
`npz` and `images` means the argument is required)."""


def _dataset(name: str, source: str, fields: tuple[Field, ...], splits: Mapping[str, Mapping[str, np.ndarray]],
             meta: Mapping[str, Any]) -> Dataset:
    frozen = MappingProxyType({split: MappingProxyType(dict(arrays)) for split, arrays in splits.items()})
    return Dataset(name, source, fields, frozen, MappingProxyType(dict(meta)))


def _fixed_split(n: int) -> dict[str, np.ndarray]:
    """Indices of the fixed 80 / 10 / 10 split: n // 10 each for val and test, the rest train."""
    order = np.random.default_rng(0).permutation(n)
    held = n // 10
    return {"train": order[:n - 2 * held], "val": order[n - 2 * held:n - held], "test": order[n - held:]}


def _int_arg(kind: str, args: Mapping[str, Any], name: str, minimum: int, maximum: int | None = None) -> int:
    value = args[name]
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise DataError(f"data `{kind}` takes an integer `{name}`, not {value!r}")
    if value < minimum or (maximum is not None and value > maximum):
        bounds = f"at least {minimum}" if maximum is None else f"between {minimum} and {maximum}"
        raise DataError(f"data `{kind}` takes `{name}` {bounds}, not {value}")
    return int(value)


def _bool_arg(kind: str, args: Mapping[str, Any], name: str) -> bool:
    value = args[name]
    if not isinstance(value, (bool, np.bool_)):
        raise DataError(f"data `{kind}` takes `{name}` true or false, not {value!r}")
    return bool(value)


def _path_text(kind: str, value: Any) -> str:
    if value is None:
        raise DataError(f"data `{kind}` needs a `path`")
    if not isinstance(value, (str, Path)) or not str(value):
        raise DataError(f"data `{kind}` takes `path` as a file name, not {value!r}")
    return str(value)


def _resolve(value: str | Path, base: Path) -> Path:
    return base / Path(value).expanduser()  # an absolute path stays as it is


def _read_bytes(path: Path, source: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise DataError(f"data `text` ({source}) cannot be read: {_reason(error)}") from None


def _reason(error: BaseException) -> str:
    """An exception's message on one line, without the path the message already names."""
    if isinstance(error, OSError) and error.strerror:
        return error.strerror.lower()
    text = " ".join(str(error).split()) or type(error).__name__
    return text[0].lower() + text[1:]


def _side(data: Dataset) -> str:
    return f"data `{data.name}` ({data.source})"


def _names(names: Any) -> str:
    listed = [f"`{n}`" for n in names]
    return ", ".join(listed) if listed else "none"


def _described(f: Field) -> str:
    return f"{f.dtype}[{', '.join(map(str, f.shape))}]"


def _declared(e: Expected) -> str:
    return f"{e.dtype}[{', '.join(map(str, e.dims))}]"


def _array_type(array: np.ndarray) -> str:
    dtype = "f32" if array.dtype == np.float32 else "i64"
    return f"{dtype}[{', '.join(map(str, array.shape[1:]))}]"
