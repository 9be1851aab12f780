"""dlc.runtime.train.report: the metrics log, plots, pictures, progress bars and epoch lines,
written to real files in tmp_path and read back."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dlc.runtime.train.report import (
    MetricsLog,
    Progress,
    epoch_line,
    image_grid,
    pairs_grid,
    plot_confusion,
    plot_curves,
    write_text,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) of a PNG after checking its signature and that Pillow decodes it whole."""
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    with Image.open(path) as image:
        image.load()
        return image.size


def no_tmp_files(directory: Path) -> bool:
    return not list(directory.glob("*.tmp"))


def epoch_record(epoch: int, val_loss: float | None = 0.5) -> dict:
    return {
        "epoch": epoch,
        "kind": "epoch",
        "train": {"loss": 1.0 / epoch, "accuracy": 1 - 0.5 / epoch},
        "val": {"loss": val_loss, "accuracy": 0.8},
        "lr": 1e-3 * 0.5**epoch,
        "seconds": 1.5,
    }


# -- MetricsLog -------------------------------------------------------------------------------


def test_metrics_log_round_trip(tmp_path):
    log = MetricsLog(tmp_path / "metrics.jsonl")
    written = [{"kind": "run", "spec": "mlp.arch"}, epoch_record(1), epoch_record(2)]
    for record in written:
        log.write(record)
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 3
    for read, record in zip(log.records(), written, strict=True):
        assert read == record
    assert no_tmp_files(tmp_path)


def test_new_log_replaces_an_old_one(tmp_path):
    path = tmp_path / "metrics.jsonl"
    MetricsLog(path).write(epoch_record(1))
    log = MetricsLog(path)
    assert log.records() == []
    log.write(epoch_record(7))
    assert [r["epoch"] for r in log.records()] == [7]


def test_resume_drops_later_epochs_and_a_truncated_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    log = MetricsLog(path)
    log.write({"kind": "run", "attempt": 1})
    for epoch in (1, 2, 3):
        log.write({"kind": "step", "epoch": epoch, "step": epoch * 10, "loss": 0.1})
        log.write(epoch_record(epoch))
    with open(path, "a") as f:
        f.write('{"kind": "step", "epoch": 4, "lo')  # a kill in the middle of a write
    resumed = MetricsLog(path, resume_after=2)
    kept = resumed.records()
    assert [(r["kind"], r.get("epoch")) for r in kept] == [
        ("run", None), ("step", 1), ("epoch", 1), ("step", 2), ("epoch", 2)
    ]
    resumed.write(epoch_record(3))
    epochs = [r["epoch"] for r in resumed.records() if r["kind"] == "epoch"]
    assert epochs == [1, 2, 3]
    assert path.read_text().endswith("\n")
    assert no_tmp_files(tmp_path)


def test_records_skip_a_truncated_last_line_but_reject_a_corrupt_middle_one(tmp_path):
    path = tmp_path / "metrics.jsonl"
    log = MetricsLog(path)
    log.write(epoch_record(1))
    with open(path, "a") as f:
        f.write('{"epoch": 2, "kind"')
    assert [r["epoch"] for r in log.records()] == [1]
    with open(path, "a") as f:
        f.write("\n" + json.dumps(epoch_record(3)) + "\n")
    with pytest.raises(ValueError, match=r"metrics.jsonl:2: corrupt"):
        log.records()


def test_resume_without_a_log_starts_an_empty_one(tmp_path):
    log = MetricsLog(tmp_path / "metrics.jsonl", resume_after=4)
    assert log.records() == []
    assert (tmp_path / "metrics.jsonl").exists()


def test_nan_and_inf_are_written_as_null(tmp_path):
    path = tmp_path / "metrics.jsonl"
    log = MetricsLog(path)
    log.write({"epoch": 1, "val": {"loss": float("nan"), "ppl": float("inf")}, "lr": np.float32(0.5),
               "sizes": np.arange(3)})
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert log.records() == [{"epoch": 1, "val": {"loss": None, "ppl": None}, "lr": 0.5, "sizes": [0, 1, 2]}]


def test_a_record_that_is_not_json_is_refused_and_nothing_is_written(tmp_path):
    path = tmp_path / "metrics.jsonl"
    log = MetricsLog(path)
    with pytest.raises(TypeError):
        log.write({"epoch": 1, "model": object()})
    assert path.read_text() == ""


# -- plots ------------------------------------------------------------------------------------


def test_plot_curves_writes_a_png(tmp_path):
    records = [{"kind": "run"}, *(epoch_record(e) for e in range(1, 6)), {"kind": "step", "epoch": 5}]
    records[3]["val"]["loss"] = None  # a nan logged as null
    path = tmp_path / "curves.png"
    plot_curves(records, path, "digits mlp")
    width, height = png_size(path)
    assert 600 <= width <= 2000 and 250 <= height <= 1200
    assert no_tmp_files(tmp_path)


def test_plot_curves_with_one_epoch_and_no_val(tmp_path):
    record = {"epoch": 1, "kind": "epoch", "train": {"loss": 0.7}, "seconds": 1.0}
    path = tmp_path / "one.png"
    plot_curves([record], path, "one epoch")
    width, height = png_size(path)
    assert 200 <= width <= 1000 and 200 <= height <= 1000


def test_plot_curves_without_epoch_records_is_a_clear_error(tmp_path):
    path = tmp_path / "curves.png"
    with pytest.raises(ValueError, match="no epoch records"):
        plot_curves([{"kind": "step", "epoch": 1, "loss": 0.3}], path, "nothing")
    assert not path.exists()
    assert no_tmp_files(tmp_path)


def test_plot_confusion(tmp_path):
    matrix = np.array([[5, 1, 0], [0, 7, 2], [1, 0, 9]])
    path = tmp_path / "confusion.png"
    plot_confusion(matrix, ["cat", "dog", "bird"], path, "val")
    width, height = png_size(path)
    assert 300 <= width <= 1200 and 300 <= height <= 1200


def test_plot_confusion_refuses_a_matrix_that_does_not_match_the_labels(tmp_path):
    with pytest.raises(ValueError, match=r"\(2, 3\).*3 labels"):
        plot_confusion(np.ones((2, 3), dtype=int), ["a", "b", "c"], tmp_path / "c.png", "val")


# -- pictures ---------------------------------------------------------------------------------


def test_image_grid_upscales_small_gray_images(tmp_path):
    images = np.random.default_rng(0).random((9, 1, 8, 8)) * 1.4 - 0.2  # out of range: clipped
    path = tmp_path / "grid.png"
    image_grid(images, path)
    width, height = png_size(path)
    assert 3 * 64 <= width <= 3 * 64 + 60 and 3 * 64 <= height <= 3 * 64 + 60  # 3 x 3, each >= 64 px


def test_image_grid_with_columns_captions_and_title(tmp_path):
    images = np.random.default_rng(1).random((6, 3, 32, 32))
    path = tmp_path / "grid.png"
    image_grid(images, path, title="samples", nrow=6, captions=[f"pred {i}" for i in range(6)])
    width, height = png_size(path)
    assert 6 * 64 <= width <= 6 * 64 + 80 and 64 <= height <= 64 + 80
    with Image.open(path) as image:
        assert image.getextrema()[0][0] < image.getextrema()[0][1]  # not a blank picture


def test_image_grid_refuses_bad_shapes(tmp_path):
    with pytest.raises(ValueError, match=r"\[N, C, H, W\]"):
        image_grid(np.zeros((4, 2, 8, 8)), tmp_path / "g.png")
    with pytest.raises(ValueError, match="2 captions for 4 images"):
        image_grid(np.zeros((4, 1, 8, 8)), tmp_path / "g.png", captions=["a", "b"])
    assert not list(tmp_path.iterdir())


def test_pairs_grid_two_rows_of_at_most_16(tmp_path):
    originals = np.random.default_rng(2).random((20, 1, 8, 8))
    path = tmp_path / "pairs.png"
    pairs_grid(originals, 1 - originals, path, "reconstructions")
    width, height = png_size(path)
    assert 16 * 64 <= width <= 16 * 64 + 200 and 2 * 64 <= height <= 2 * 64 + 80


def test_pairs_grid_refuses_mismatched_shapes(tmp_path):
    with pytest.raises(ValueError, match=r"\(4, 1, 8, 8\).*\(4, 1, 7, 7\)"):
        pairs_grid(np.zeros((4, 1, 8, 8)), np.zeros((4, 1, 7, 7)), tmp_path / "p.png", "r")
    assert not (tmp_path / "p.png").exists()


def test_write_text_is_atomic(tmp_path):
    path = tmp_path / "samples" / "epoch_3.txt"
    write_text("once upon a time\n", path)
    assert path.read_text() == "once upon a time\n"
    with pytest.raises(TypeError):
        write_text(3, path)  # fails in the middle of writing: the old file must survive
    assert path.read_text() == "once upon a time\n"
    assert no_tmp_files(path.parent)


# -- terminal output --------------------------------------------------------------------------


def test_disabled_progress_prints_nothing(capsys):
    with Progress(total_steps=3, desc="epoch 1", enabled=False) as bar:
        for loss in (0.5, 0.4, 0.3):
            bar.update(32, loss=loss)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
    assert bar.means["loss"] == pytest.approx(0.4)


def test_progress_reports_on_stderr(capsys):
    bar = Progress(total_steps=2, desc="epoch 1/3", enabled=True)
    bar.update(32, loss=0.5, accuracy=0.25)
    bar.update(32, loss=0.25, accuracy=0.75)
    bar.close()
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "epoch 1/3" in captured.err and "2/2" in captured.err
    assert "loss=0.375" in captured.err and "accuracy=0.5" in captured.err and "ex/s" in captured.err
    assert list(bar.means) == ["loss", "accuracy"]
    assert bar.examples_per_s > 0


def test_epoch_line():
    line = epoch_line(3, 15, {"accuracy": 0.94123, "loss": 0.21144}, {"loss": 0.2301, "accuracy": 0.937},
                      seconds=4.12, examples_per_s=3050.4, lr=1e-3, best=True)
    assert line.startswith("epoch  3/15  train loss 0.2114 accuracy 0.9412")
    assert "| val loss 0.2301 accuracy 0.9370 |" in line
    assert "| lr 1.0e-03 |" in line
    assert "4.1 s, 3,050 ex/s" in line
    assert line.endswith("  * best")


def test_epoch_line_without_val_lr_or_best():
    line = epoch_line(12, 100, {"top5": 0.9, "loss": 2.5, "accuracy": 0.5, "tiny": 0.00002}, None, 61.0, 12.0)
    assert line.startswith("epoch  12/100  train loss 2.5000 accuracy 0.5000 tiny 2.000e-05 top5 0.9000 |")
    assert "val" not in line and "lr" not in line and "best" not in line
    assert line.endswith("61.0 s, 12 ex/s")
