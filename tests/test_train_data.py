"""dlc.runtime.train.data: the data sets `dlc train` reads, their fixed splits, and `check_fits`.

Real files in tmp_path (npz archives, PNG folders, text), generated per test; no network.
"""
from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dlc.runtime.train import data as data_module
from dlc.runtime.train.data import DataError, Dataset, Expected, Field, check_fits, load

ALL_SPLITS = ("train", "val", "test")


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return load("digits", {})


@pytest.fixture(scope="module")
def docs() -> Dataset:
    return load("text", {})


def write_npz(path: Path, **arrays: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return path


def write_png(path: Path, value: int, size: tuple[int, int] = (6, 4)) -> None:
    """A solid RGB image of width x height `size`, every channel at `value`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (value, value, value)).save(path)


def image_folder(root: Path, per_class: int = 10, classes: dict[str, int] | None = None) -> Path:
    """One sub-folder per class; each class's images are solid grey at its own value."""
    for name, value in (classes or {"dark": 30, "light": 220}).items():
        for i in range(per_class):
            write_png(root / name / f"{i:02d}.png", value)
    return root


# ---------------------------------------------------------------------------------------------
# digits


def test_digits_fields_ranges_and_split_sizes(digits):
    assert digits.fields == (Field("image", "f32", (1, 8, 8), None), Field("label", "i64", (), 10))
    assert [digits.size(s) for s in ALL_SPLITS] == [1257, 270, 270]
    assert list(digits.meta["classes"]) == [str(d) for d in range(10)]
    for split in ALL_SPLITS:
        image, label = digits.splits[split]["image"], digits.splits[split]["label"]
        assert image.dtype == np.float32 and label.dtype == np.int64
        assert image.shape == (digits.size(split), 1, 8, 8)
        assert image.min() == 0.0 and image.max() == 1.0
        assert set(np.unique(label)) == set(range(10))


def test_digits_split_is_the_documented_permutation_and_a_partition(digits):
    from sklearn.datasets import load_digits

    source = load_digits()
    order = np.random.default_rng(0).permutation(1797)
    chosen = {"train": order[:1257], "val": order[1257:1527], "test": order[1527:]}
    for split in ALL_SPLITS:
        np.testing.assert_array_equal(digits.splits[split]["label"], source.target[chosen[split]])
        np.testing.assert_array_equal(digits.splits[split]["image"][:, 0], source.images[chosen[split]] / 16.0)
    everything = np.concatenate([chosen[s] for s in ALL_SPLITS])
    assert sorted(everything.tolist()) == list(range(1797))  # disjoint, and covers every image


def test_digits_split_is_the_same_on_two_loads(digits):
    again = load("digits", {})
    for split in ALL_SPLITS:
        for name in ("image", "label"):
            np.testing.assert_array_equal(again.splits[split][name], digits.splits[split][name])


@pytest.mark.parametrize("size", [28, 32])
def test_digits_resized(size, digits):
    resized = load("digits", {"size": size})
    assert resized.field("image").shape == (1, size, size)
    image = resized.splits["train"]["image"]
    assert image.shape == (1257, 1, size, size) and image.dtype == np.float32
    assert image.min() >= 0.0 and image.max() <= 1.0 and image.max() > 0.9
    np.testing.assert_array_equal(resized.splits["val"]["label"], digits.splits["val"]["label"])


def test_digits_binarize_gives_only_zero_and_one():
    image = load("digits", {"size": 28, "binarize": True}).splits["test"]["image"]
    assert set(np.unique(image).tolist()) == {0.0, 1.0}


@pytest.mark.parametrize("args, text", [
    ({"size": -1}, "`size` between 1 and"),
    ({"size": 0}, "`size` between 1 and"),
    ({"size": "28"}, "integer `size`, not '28'"),
    ({"size": True}, "integer `size`, not True"),
    ({"binarize": "yes"}, "`binarize` true or false"),
    ({"colour": 1}, "takes no argument `colour`"),
])
def test_digits_bad_arguments(args, text):
    with pytest.raises(DataError, match="data `digits`") as caught:
        load("digits", args)
    assert text in str(caught.value)


def test_unknown_kind():
    with pytest.raises(DataError, match="unknown data set `mnist`; the kinds are `digits`, `text`"):
        load("mnist", {})


def test_dataset_field_and_size_name_what_there_is(digits):
    with pytest.raises(DataError, match=r"has no field `pixels`; it has `image`, `label`"):
        digits.field("pixels")
    with pytest.raises(DataError, match=r"has no split `dev`; it has `train`, `val`, `test`"):
        digits.size("dev")


def test_module_imports_no_torch():
    tree = ast.parse(Path(data_module.__file__).read_text())
    imported = [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
    imported += [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    assert imported and not [name for name in imported if name.split(".")[0] == "torch"]


# ---------------------------------------------------------------------------------------------
# text


def test_text_python_docs_windows_shift_by_one(docs):
    assert docs.source == "pydoc_data.topics"
    assert docs.fields == (Field("tokens", "i64", (128,), 256), Field("targets", "i64", (128,), 256))
    for split in ALL_SPLITS:
        tokens, targets = docs.splits[split]["tokens"], docs.splits[split]["targets"]
        assert tokens.dtype == np.int64 and tokens.shape == targets.shape == (docs.size(split), 128)
        np.testing.assert_array_equal(tokens[:, 1:], targets[:, :-1])
        np.testing.assert_array_equal(tokens[1:, 0], targets[:-1, -1])  # stride seq: windows share a byte
        assert tokens.min() >= 0 and tokens.max() < 256
    assert docs.size("train") > 15 * docs.size("val") > 0
    assert abs(docs.size("val") - docs.size("test")) <= 1


def test_text_python_docs_meta(docs):
    assert 3.0 < docs.meta["unigram_bits"] < 6.0
    assert docs.meta["vocab"] == 256 and docs.meta["decode"] == "bytes"
    from pydoc_data.topics import topics

    text = bytes(docs.splits["train"]["tokens"][0].tolist()).decode("utf-8", "replace")
    assert text == "\n".join(topics[k] for k in sorted(topics)).encode()[:128].decode("utf-8", "replace")


def test_text_from_a_file_is_cut_90_5_5_in_order(tmp_path):
    stream = bytes(np.random.default_rng(1).integers(0, 256, size=4000, dtype=np.uint8))
    (tmp_path / "corpus.bin").write_bytes(stream)
    data = load("text", {"path": "corpus.bin", "seq": 8}, base=tmp_path)
    assert data.source == "corpus.bin"
    starts = {"train": 0, "val": 3600, "test": 3800}
    for split, start in starts.items():
        tokens, targets = data.splits[split]["tokens"], data.splits[split]["targets"]
        n = data.size(split)
        rebuilt = np.concatenate([tokens.reshape(-1), targets[-1:, -1]])
        assert bytes(rebuilt.astype(np.uint8).tolist()) == stream[start:start + n * 8 + 1]
    assert [data.size(s) for s in ALL_SPLITS] == [449, 24, 24]  # (3600 - 1) // 8, (200 - 1) // 8
    counts = np.bincount(np.frombuffer(stream[:3600], np.uint8), minlength=256) / 3600
    expected_bits = -(counts[counts > 0] * np.log2(counts[counts > 0])).sum()
    assert data.meta["unigram_bits"] == pytest.approx(expected_bits)


def test_text_is_utf8_bytes(tmp_path):
    (tmp_path / "accents.txt").write_text("é" * 2000, encoding="utf-8")
    tokens = load("text", {"path": str(tmp_path / "accents.txt"), "seq": 4}).splits["train"]["tokens"]
    assert set(np.unique(tokens).tolist()) == {0xC3, 0xA9}


@pytest.mark.parametrize("length", [0, 10, 1619])
def test_text_too_short_says_how_many_bytes(tmp_path, length):
    (tmp_path / "short.txt").write_bytes(b"a" * length)
    with pytest.raises(DataError) as caught:
        load("text", {"path": "short.txt", "seq": 20}, base=tmp_path)
    assert str(caught.value).startswith(f"data `text` (short.txt) has {length} bytes, "
                                        f"but seq=20 needs at least 1620 bytes")


def test_text_missing_file_and_bad_seq(tmp_path):
    with pytest.raises(DataError, match=r"data `text` \(nowhere.txt\) cannot be read: no such file"):
        load("text", {"path": "nowhere.txt"}, base=tmp_path)
    with pytest.raises(DataError, match=r"data `text` takes `seq` at least 1, not 0"):
        load("text", {"seq": 0})


# ---------------------------------------------------------------------------------------------
# npz


def test_npz_without_split_names_converts_and_splits_80_10_10(tmp_path):
    index = np.arange(50)
    write_npz(tmp_path / "d.npz", x=np.stack([index, index * 2.0], 1), y=(index % 7).astype(np.int32))
    data = load("npz", {"path": "d.npz"}, base=tmp_path)
    assert data.fields == (Field("x", "f32", (2,), None), Field("y", "i64", (), 7))
    assert [data.size(s) for s in ALL_SPLITS] == [40, 5, 5]
    seen = []
    for split in ALL_SPLITS:
        x, y = data.splits[split]["x"], data.splits[split]["y"]
        assert x.dtype == np.float32 and y.dtype == np.int64
        np.testing.assert_array_equal(y, x[:, 0].astype(np.int64) % 7)  # rows stay paired
        seen += x[:, 0].astype(int).tolist()
    assert sorted(seen) == list(range(50))
    order = np.random.default_rng(0).permutation(50)
    np.testing.assert_array_equal(data.splits["test"]["x"][:, 0], order[45:])
    again = load("npz", {"path": str(tmp_path / "d.npz")})
    for split in ALL_SPLITS:
        np.testing.assert_array_equal(again.splits[split]["x"], data.splits[split]["x"])


def test_npz_bool_and_unsigned_arrays_are_labels(tmp_path):
    write_npz(tmp_path / "d.npz", flag=np.arange(20) % 2 == 0, level=np.arange(20, dtype=np.uint8))
    data = load("npz", {"path": "d.npz"}, base=tmp_path)
    assert data.fields == (Field("flag", "i64", (), 2), Field("level", "i64", (), 20))
    assert data.splits["train"]["flag"].dtype == np.int64


def test_npz_with_split_names(tmp_path):
    rng = np.random.default_rng(2)
    write_npz(tmp_path / "d.npz",
              train_x=rng.random((12, 3, 2)), train_y=np.full(12, 1),
              val_x=rng.random((4, 3, 2)), val_y=np.full(4, 2),
              test_x=rng.random((3, 3, 2)).astype(np.float16), test_y=np.array([0, 9, 3]))
    data = load("npz", {"path": "d.npz"}, base=tmp_path)
    assert data.fields == (Field("x", "f32", (3, 2), None), Field("y", "i64", (), 10))  # 9 is only in test
    assert [data.size(s) for s in ALL_SPLITS] == [12, 4, 3]
    assert data.splits["test"]["x"].dtype == np.float32
    assert data.splits["val"]["y"].tolist() == [2, 2, 2, 2]


def test_npz_split_names_must_cover_every_split(tmp_path):
    write_npz(tmp_path / "d.npz", train_x=np.zeros((4, 2)), val_x=np.zeros((2, 2)))
    with pytest.raises(DataError, match=r"data `npz` \(d.npz\) has `train_x` but no `test_x`"):
        load("npz", {"path": "d.npz"}, base=tmp_path)


def test_npz_split_names_and_a_stray_array(tmp_path):
    names = {f"{s}_x": np.zeros((2, 2)) for s in ALL_SPLITS}
    write_npz(tmp_path / "d.npz", **names, mean=np.zeros((2, 2)))
    with pytest.raises(DataError, match=r"also `mean`, which does not start with train_, val_ or test_"):
        load("npz", {"path": "d.npz"}, base=tmp_path)


def test_npz_per_example_shape_differs_between_splits(tmp_path):
    write_npz(tmp_path / "d.npz", train_x=np.zeros((4, 3)), val_x=np.zeros((2, 4)), test_x=np.zeros((2, 3)))
    with pytest.raises(DataError, match=r"gives `x` as f32\[3\] per example in train but f32\[4\] in val"):
        load("npz", {"path": "d.npz"}, base=tmp_path)


@pytest.mark.parametrize("arrays, text", [
    ({"x": np.zeros((10, 2)), "y": np.zeros(9, np.int64)}, "array `x` has 10 rows but `y` has 9"),
    ({**{f"{s}_x": np.zeros((4, 2)) for s in ALL_SPLITS}, **{f"{s}_y": np.zeros(4, np.int64) for s in ALL_SPLITS},
      "val_y": np.zeros(3, np.int64)}, "array `val_x` has 4 rows but `val_y` has 3"),
])
def test_npz_mismatched_lengths_name_both_arrays(tmp_path, arrays, text):
    write_npz(tmp_path / "d.npz", **arrays)
    with pytest.raises(DataError) as caught:
        load("npz", {"path": "d.npz"}, base=tmp_path)
    assert text in str(caught.value) and "data `npz` (d.npz)" in str(caught.value)


def test_npz_negative_labels(tmp_path):
    write_npz(tmp_path / "d.npz", x=np.zeros((5, 2)), label=np.array([0, 1, -1, 2, 1]))
    with pytest.raises(DataError, match=r"array `label` has a negative value -1"):
        load("npz", {"path": "d.npz"}, base=tmp_path)


def test_npz_refuses_pickled_object_arrays(tmp_path):
    write_npz(tmp_path / "d.npz", x=np.array([{"a": 1}, None], dtype=object))
    with pytest.raises(DataError, match=r"data `npz` \(d.npz\) is not an .npz file of plain arrays \(pickled objects are refused\)"):
        load("npz", {"path": "d.npz"}, base=tmp_path)


@pytest.mark.parametrize("content, text", [
    (b"", "is not an .npz file of plain arrays"),
    (b"label,x\n1,2\n", "is not an .npz file of plain arrays"),
    (b"PK\x03\x04 broken zip", "is not an .npz file of plain arrays"),
])
def test_npz_unreadable_files(tmp_path, content, text):
    (tmp_path / "d.npz").write_bytes(content)
    with pytest.raises(DataError, match=r"data `npz` \(d.npz\) ") as caught:
        load("npz", {"path": "d.npz"}, base=tmp_path)
    assert text in str(caught.value) and "\n" not in str(caught.value)


def test_npz_missing_empty_unnamed_and_string_arrays(tmp_path):
    with pytest.raises(DataError, match=r"\(gone.npz\) cannot be read: no such file"):
        load("npz", {"path": "gone.npz"}, base=tmp_path)
    write_npz(tmp_path / "empty.npz")
    with pytest.raises(DataError, match=r"\(empty.npz\) holds no arrays"):
        load("npz", {"path": "empty.npz"}, base=tmp_path)
    np.save(tmp_path / "one.npy", np.zeros(3))
    with pytest.raises(DataError, match=r"\(one.npy\) holds one unnamed array"):
        load("npz", {"path": "one.npy"}, base=tmp_path)
    write_npz(tmp_path / "words.npz", x=np.array(["a", "b"]))
    with pytest.raises(DataError, match=r"array `x` has dtype <U1; expected float"):
        load("npz", {"path": "words.npz"}, base=tmp_path)
    write_npz(tmp_path / "scalar.npz", x=np.float64(3.0))
    with pytest.raises(DataError, match=r"array `x` is a single value"):
        load("npz", {"path": "scalar.npz"}, base=tmp_path)
    with pytest.raises(DataError, match=r"data `npz` needs a `path`"):
        load("npz", {})


# ---------------------------------------------------------------------------------------------
# images


def test_images_folder_split_80_10_10(tmp_path):
    image_folder(tmp_path / "pics")
    (tmp_path / "pics" / "dark" / ".DS_Store").write_bytes(b"not an image")
    (tmp_path / "pics" / ".cache").mkdir()
    data = load("images", {"path": "pics"}, base=tmp_path)
    assert data.fields == (Field("image", "f32", (1, 4, 6), None), Field("label", "i64", (), 2))
    assert list(data.meta["classes"]) == ["dark", "light"]
    assert [data.size(s) for s in ALL_SPLITS] == [16, 2, 2]
    files = []
    for split in ALL_SPLITS:
        image, label = data.splits[split]["image"], data.splits[split]["label"]
        assert image.dtype == np.float32 and label.dtype == np.int64
        assert image.shape == (data.size(split), 1, 4, 6)
        np.testing.assert_allclose(image.mean(axis=(1, 2, 3)), np.where(label == 0, 30, 220) / 255, rtol=1e-6)
        files += data.meta["files"][split]
    assert sorted(files) == [f"{c}/{i:02d}.png" for c in ("dark", "light") for i in range(10)]


def test_images_resized_in_colour(tmp_path):
    image_folder(tmp_path / "pics", per_class=3)
    write_png(tmp_path / "pics" / "dark" / "wide.png", 30, size=(20, 5))
    data = load("images", {"path": str(tmp_path / "pics"), "size": 8, "channels": 3})
    assert data.field("image").shape == (3, 8, 8)
    assert data.splits["train"]["image"].shape == (data.size("train"), 3, 8, 8)
    assert sum(data.size(s) for s in ALL_SPLITS) == 7
    assert 0.0 <= data.splits["train"]["image"].min() and data.splits["train"]["image"].max() <= 1.0


def test_images_of_different_sizes_need_size(tmp_path):
    image_folder(tmp_path / "pics", per_class=2)
    write_png(tmp_path / "pics" / "light" / "big.png", 220, size=(9, 9))
    with pytest.raises(DataError) as caught:
        load("images", {"path": "pics"}, base=tmp_path)
    assert str(caught.value) == ("data `images` (pics) has pics/dark/00.png at 6x4 but pics/light/big.png "
                                 "at 9x9; give `size` to resize them")


def test_images_unreadable_file_is_named(tmp_path):
    image_folder(tmp_path / "pics", per_class=2)
    (tmp_path / "pics" / "light" / "notes.png").write_bytes(b"this is not a png")
    with pytest.raises(DataError, match=r"data `images` cannot read pics/light/notes.png as an image"):
        load("images", {"path": "pics"}, base=tmp_path)


def test_images_with_train_val_test_folders(tmp_path):
    for split, count in {"train": 5, "val": 2, "test": 3}.items():
        image_folder(tmp_path / "pics" / split, per_class=count, classes={"a": 10, "b": 100, "c": 200})
    data = load("images", {"path": "pics", "channels": 3}, base=tmp_path)
    assert [data.size(s) for s in ALL_SPLITS] == [15, 6, 9]
    assert data.field("label").classes == 3 and list(data.meta["classes"]) == ["a", "b", "c"]
    assert data.splits["val"]["label"].tolist() == [0, 0, 1, 1, 2, 2]
    assert data.meta["files"]["val"][0] == "val/a/00.png"


def test_images_splits_need_the_same_classes(tmp_path):
    image_folder(tmp_path / "pics" / "train", per_class=2, classes={"a": 10, "b": 100})
    image_folder(tmp_path / "pics" / "val", per_class=2, classes={"a": 10})
    image_folder(tmp_path / "pics" / "test", per_class=2, classes={"a": 10, "b": 100})
    with pytest.raises(DataError, match=r"has classes `a`, `b` in train/ but `a` in val/"):
        load("images", {"path": "pics"}, base=tmp_path)


def test_images_some_split_folders_missing(tmp_path):
    image_folder(tmp_path / "pics" / "train", per_class=2)
    image_folder(tmp_path / "pics" / "test", per_class=2)
    with pytest.raises(DataError, match=r"has `train/`, `test/` but no `val/`"):
        load("images", {"path": "pics"}, base=tmp_path)


def test_images_empty_folders_and_bad_arguments(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"data `images` \(empty\) has no class folders in empty/"):
        load("images", {"path": "empty"}, base=tmp_path)
    image_folder(tmp_path / "pics", per_class=2)
    (tmp_path / "pics" / "zebra").mkdir()
    (tmp_path / "pics" / "zebra" / ".keep").write_bytes(b"")
    with pytest.raises(DataError, match=r"class folder pics/zebra/ holds no images"):
        load("images", {"path": "pics"}, base=tmp_path)
    with pytest.raises(DataError, match=r"data `images` \(nowhere\) is not a folder"):
        load("images", {"path": "nowhere"}, base=tmp_path)
    with pytest.raises(DataError, match=r"takes `channels` 1 \(grey\) or 3 \(RGB\), not 2"):
        load("images", {"path": "pics", "channels": 2}, base=tmp_path)
    with pytest.raises(DataError, match=r"takes `size` between 1 and 1024, not -1"):
        load("images", {"path": "pics", "size": -1}, base=tmp_path)


# ---------------------------------------------------------------------------------------------
# check_fits


def digits_inputs(**image) -> list[Expected]:
    declared = {"name": "image", "dtype": "f32", "dims": ("B", 1, 8, 8), "where": "spec/x.arch:12:9", **image}
    return [Expected(**declared), Expected("label", "i64", ("B",), "spec/x.arch:14:5", classes=10)]


def test_check_fits_accepts_a_matching_declaration(digits, docs):
    check_fits(digits, digits_inputs(), "DigitsTrain")
    check_fits(digits, [Expected("label", "i64", (32,), "spec/x.arch:1:1", classes=10)], "DigitsTrain")
    check_fits(docs, [Expected("tokens", "i64", ("B", "T"), "a:1:1", classes=256),
                      Expected("targets", "i64", ("B", "T"), "a:2:1", classes=256)], "LM")


def test_check_fits_per_example_shape(digits):
    with pytest.raises(DataError) as caught:
        check_fits(digits, digits_inputs(dims=("B", 1, 28, 28)), "DigitsTrain")
    assert str(caught.value) == ("data `digits` (scikit-learn digits) gives `image` as f32[1, 8, 8] per example, "
                                 "but train `DigitsTrain` declares input `image` as f32[B, 1, 28, 28] "
                                 "at spec/x.arch:12:9")


@pytest.mark.parametrize("image, declared", [
    ({"dims": ("B", 64)}, "f32[B, 64]"),
    ({"dtype": "i64"}, "i64[B, 1, 8, 8]"),
])
def test_check_fits_rank_and_dtype(digits, image, declared):
    with pytest.raises(DataError) as caught:
        check_fits(digits, digits_inputs(**image), "DigitsTrain")
    assert "gives `image` as f32[1, 8, 8] per example" in str(caught.value)
    assert f"declares input `image` as {declared} at spec/x.arch:12:9" in str(caught.value)


def test_check_fits_missing_field(digits):
    with pytest.raises(DataError) as caught:
        check_fits(digits, digits_inputs(name="pixels"), "DigitsTrain")
    message = str(caught.value)
    assert "data `digits` (scikit-learn digits) has no field `pixels` (it has `image`, `label`)" in message
    assert "train `DigitsTrain` declares input `pixels` as f32[B, 1, 8, 8] at spec/x.arch:12:9" in message


def test_check_fits_labels_reach_the_output_width(tmp_path):
    write_npz(tmp_path / "data" / "foo.npz", x=np.zeros((40, 2)), label=np.arange(40) % 12)
    data = load("npz", {"path": "data/foo.npz"}, base=tmp_path)
    head = [Expected("x", "f32", ("B", 2), "spec/x.arch:13:5"),
            Expected("label", "i64", ("B",), "spec/x.arch:14:5", 10)]
    with pytest.raises(DataError) as caught:
        check_fits(data, head, "T")
    assert str(caught.value) == ("data `npz` (data/foo.npz) has labels up to 11 in `label`, "
                                 "but the network's output has 10 classes (spec/x.arch:14:5)")
    check_fits(data, [head[0], Expected("label", "i64", ("B",), "spec/x.arch:14:5", 12)], "T")  # 11 < 12


def test_check_fits_token_ids_reach_the_vocabulary(docs):
    with pytest.raises(DataError, match=r"has token ids up to \d+ in `tokens`, but the network's output has 64"):
        check_fits(docs, [Expected("tokens", "i64", ("B", 128), "a:1:1", classes=64)], "LM")


def test_check_fits_one_symbol_one_size_across_inputs(tmp_path):
    write_npz(tmp_path / "d.npz", a=np.zeros((20, 3)), b=np.zeros((20, 4)))
    data = load("npz", {"path": "d.npz"}, base=tmp_path)
    inputs = [Expected("a", "f32", ("B", "N"), "s.arch:1:1"), Expected("b", "f32", ("B", "N"), "s.arch:2:1")]
    with pytest.raises(DataError) as caught:
        check_fits(data, inputs, "T")
    message = str(caught.value)
    assert "data `npz` (d.npz) gives `a` as f32[3] and `b` as f32[4] per example" in message
    assert "input `a` as f32[B, N] at s.arch:1:1, input `b` as f32[B, N] at s.arch:2:1" in message
    assert "`N` cannot be both 3 and 4" in message
    check_fits(data, [inputs[0], Expected("b", "f32", ("B", "M"), "s.arch:2:1")], "T")


def test_check_fits_one_symbol_within_one_input(tmp_path):
    write_npz(tmp_path / "d.npz", a=np.zeros((20, 3, 4)))
    data = load("npz", {"path": "d.npz"}, base=tmp_path)
    with pytest.raises(DataError) as caught:
        check_fits(data, [Expected("a", "f32", ("B", "N", "N"), "s.arch:1:1")], "T")
    assert str(caught.value) == ("data `npz` (d.npz) gives `a` as f32[3, 4] per example, but train `T` declares "
                                 "input `a` as f32[B, N, N] at s.arch:1:1: `N` cannot be both 3 and 4")


def test_check_fits_empty_split(tmp_path):
    write_npz(tmp_path / "d.npz", x=np.zeros((8, 2)))  # 8 // 10 == 0 for val and test
    data = load("npz", {"path": "d.npz"}, base=tmp_path)
    with pytest.raises(DataError) as caught:
        check_fits(data, [Expected("x", "f32", ("B", 2), "s.arch:1:1")], "Small")
    assert str(caught.value) == ("data `npz` (d.npz) has no examples in split `val` (train 8, val 0, test 0), "
                                 "but train `Small` needs examples in every split")
