"""Checkpoints a user hands us: every reader refuses a file it cannot use with a message that
names the file and what is wrong, never a traceback, never an artifact that disagrees with the IR.

The readers: `dlc export onnx --weights`, `dlc compile --weights`, a training definition's
`from "..."` and `dlc train --resume`. The hostile files are a table (pickles, random bytes, an
empty, a cut-short or a forged safetensors file, wrong shapes, wrong dtypes, a missing or extra
key), each read by the real command line: some as `python -m dlc` processes (every reader has
some), the rest through the same `dlc.cli.main` in this process, which spares the 2 cores a
process start (~4 s) per case. The dtype rule (compiler/checkpoint.py): another float precision
is cast to float32 with a warning, an integer or bool tensor for a float weight is refused; a
float64 checkpoint's ONNX model runs in onnxruntime and equals the float32 one's, and so does
its TVM build. OMP_NUM_THREADS=1 throughout.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import pickle
import shutil
import struct
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch
from safetensors.numpy import save_file

from dlc.compiler.checkpoint import CheckpointError, load_weights
from dlc.compiler.pipeline import compile_file, default_graph

NETWORK = """\
network N(k=4) {
  input x: f32[B, 1, 8, 8]
  output logits = x -> conv: conv2d(4, 3, padding=1) -> bn: batchnorm2d -> relu -> flatten -> fc: linear(k)
}
"""

TRAIN = """\
train T {{
  data npz("{data}")
  model net = N(k=4){start}
  config batch=8, epochs=2
  optimizer adam(lr=1e-3)
  input image: f32[B, 1, 8, 8], label: i64[B]
  logits = image -> net
  output loss = (logits, label) -> cross_entropy
}}
"""

SHAPES = {"conv.weight": (4, 1, 3, 3), "conv.bias": (4,), "bn.weight": (4,), "bn.bias": (4,),
          "bn.running_mean": (4,), "bn.running_var": (4,), "bn.num_batches_tracked": (), "fc.weight": (4, 256),
          "fc.bias": (4,)}


def _good() -> dict[str, np.ndarray]:
    """A float32 checkpoint of N (its counter int64), with values that are not the seeded init."""
    rng = np.random.default_rng(7)
    out = {k: (rng.standard_normal(s) * 0.1).astype(np.float32) for k, s in SHAPES.items()}
    out["bn.running_var"] = np.abs(out["bn.running_var"]) + 0.5
    out["bn.num_batches_tracked"] = np.array(3, np.int64)
    return out


def _header(entries: dict) -> bytes:
    text = json.dumps(entries).encode()
    return struct.pack("<Q", len(text)) + text


def _floats(dtype) -> Callable[[Path], None]:
    return lambda p: save_file({k: v.astype(dtype) if v.dtype.kind == "f" else v for k, v in _good().items()}, str(p))


def _with(**changes) -> Callable[[Path], None]:
    """The good checkpoint with some keys replaced (None: left out)."""
    def write(p: Path) -> None:
        arrays = {**_good(), **changes}
        save_file({k: v for k, v in arrays.items() if v is not None}, str(p))
    return write


def _cut_short(p: Path) -> None:
    _with()(p)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) - 100])


RANDOM = np.random.default_rng(0).bytes(512)

# name -> (how to write the file, the start of the E0107 reason or the E0405 note that says what is wrong)
UNREADABLE = {
    "torch-save": (lambda p: torch.save({k: torch.from_numpy(v) for k, v in _good().items()}, p),
                   "it is a PyTorch `torch.save` archive, not a safetensors file; nothing in it was read"),
    "bare-pickle": (lambda p: p.write_bytes(pickle.dumps({k: v.tolist() for k, v in _good().items()}, protocol=4)),
                    "it is a Python pickle (an older `torch.save` file), not a safetensors file"),
    "random-bytes": (lambda p: p.write_bytes(RANDOM),
                     "it is not a safetensors file (or it is cut short): its 8-byte header length says "
                     f"{int.from_bytes(RANDOM[:8], 'little')} bytes, the file has 512"),
    "empty": (lambda p: p.write_bytes(b""), "the file is empty"),
    "seven-bytes": (lambda p: p.write_bytes(b"\x08\0\0\0\0\0\0"), "it has 7 byte(s), fewer than the 8"),
    "cut-short": (_cut_short, "tensor `fc.weight` runs past the end of the file (is it cut short?)"),
    "huge-header": (lambda p: p.write_bytes(struct.pack("<Q", 10**18) + bytes(504)),
                    "it is not a safetensors file (or it is cut short): its 8-byte header length says "
                    "1000000000000000000 bytes, the file has 512"),
    "header-not-json": (lambda p: p.write_bytes(struct.pack("<Q", 9) + b"{not json"),
                        "it is not a safetensors file: its header is not JSON (Expecting property name"),
    "header-a-list": (lambda p: p.write_bytes(_header([1, 2])),
                      "it is not a safetensors file: its header is a JSON list, not an object of tensors"),
    "offsets-past-end": (lambda p: p.write_bytes(_header({"fc.bias": {"dtype": "F32", "shape": [4],
                                                                      "data_offsets": [0, 16]}}) + bytes(8)),
                         "tensor `fc.bias` runs past the end of the file (is it cut short?): its data ends 16 "
                         "bytes after the header, where the file has 8"),
    "offsets-disagree": (lambda p: p.write_bytes(_header({"fc.bias": {"dtype": "F32", "shape": [4],
                                                                      "data_offsets": [0, 8]}}) + bytes(8)),
                         "tensor `fc.bias` is F32 of shape [4], 16 bytes, but its data offsets span 8"),
    "not-a-tensor": (lambda p: p.write_bytes(_header({"fc.bias": {"dtype": "F32"}})),
                     "the header's entry `fc.bias` is not a tensor"),
}
MISFITS = {
    "wrong-shape": (_with(**{"fc.bias": np.zeros(5, np.float32)}), "key `fc.bias` has shape [5], the spec needs [4]"),
    "int32": (_with(**{"fc.weight": np.zeros((4, 256), np.int32)}),
              "key `fc.weight` is int32, the network's weight is float32: only a float tensor is cast"),
    "bool": (_with(**{"conv.weight": np.zeros((4, 1, 3, 3), bool)}),
             "key `conv.weight` is bool, the network's weight is float32"),
    "float-counter": (_with(**{"bn.num_batches_tracked": np.array(3.0, np.float32)}),
                      "key `bn.num_batches_tracked` is float32, the network's weight is int64: only an integer "
                      "tensor is cast to an integer weight"),
    "float64-overflow": (_with(**{"fc.bias": np.array([1e300, 0, 0, 0])}),
                         "key `fc.bias` is float64 and holds values beyond the range of float32"),
    "missing-key": (_with(**{"fc.bias": None}), "missing key `fc.bias` (expected shape [4])"),
    "extra-key": (_with(extra=np.zeros(3, np.float32)), "unexpected key `extra` (shape [3])"),
}


START_CASES = {"torch-save": UNREADABLE["torch-save"][1], "cut-short": UNREADABLE["cut-short"][1],
               "int32": MISFITS["int32"][1], "float64": None}


def _state(base: Path) -> dict:
    return torch.load(base / "last.state.pt", map_location="cpu", weights_only=True)


def _write_state(run: Path, change: Callable[[dict], object]) -> None:
    state = _state(run)
    torch.save(change(state), run / "last.state.pt")


def _weights_of(state: dict, update: dict) -> dict:
    state["models"]["net"].update(update)
    return state


def _without(state: dict, key: str) -> dict:
    del state[key]
    return state


RESUME_CASES = {  # name -> (how to spoil the state, the words of the one error line; None: it resumes)
    "random-bytes": (lambda run: (run / "last.state.pt").write_bytes(np.random.default_rng(1).bytes(300)),
                     "it is no `torch.save` file of tensors"),
    "empty": (lambda run: (run / "last.state.pt").write_bytes(b""), "the file is empty"),
    "cut-short": (lambda run: (run / "last.state.pt").write_bytes((run / "last.state.pt").read_bytes()[:-200]),
                  "it is damaged or cut short"),
    "a-module": (lambda run: torch.save(torch.nn.Linear(2, 2), run / "last.state.pt"),
                 "Unsupported global: GLOBAL torch.nn.modules.linear.Linear"),
    "a-list": (lambda run: torch.save([1, 2], run / "last.state.pt"), "it holds a `list`, not the state"),
    "no-models": (lambda run: _write_state(run, lambda s: _without(s, "models")),
                  "`models` is missing or of another kind"),
    "wrong-shape": (lambda run: _write_state(run, lambda s: _weights_of(s, {"fc.bias": torch.zeros(5)})),
                    "`fc.bias` has shape [5], the network needs [4]"),
    "int32": (lambda run: _write_state(run, lambda s: _weights_of(s, {"fc.weight": torch.zeros(4, 256,
                                                                                               dtype=torch.int32)})),
              "key `fc.weight` is int32, the network's weight is float32"),
    "float64": (lambda run: _write_state(run, lambda s: _weights_of(
        s, {k: v.double() for k, v in s["models"]["net"].items() if v.is_floating_point()})), None),
}


# The cases run as real `python -m dlc` processes; the others go through the same `dlc.cli.main`
# in this process (a process costs seconds of the 2 cores: one per reader and kind of failure).
PROCESSES = {("export", "torch-save"), ("export", "random-bytes"), ("export", "int32"), ("export", "good"),
             ("export", "float64"), ("compile", "float64"), ("from", "torch-save"), ("resume", "cut-short")}
COMPILE_CASES = ["random-bytes", "int32", "float64"]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _processes(commands: dict, cwd: Path) -> dict:
    """Run the commands as processes two at a time (the machine's cores); their results by name."""
    done, names = {}, list(commands)
    for i in range(0, len(names), 2):
        procs = {n: subprocess.Popen([sys.executable, "-m", "dlc", *commands[n]], cwd=cwd, env=_env(), text=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE) for n in names[i:i + 2]}
        for n, proc in procs.items():
            out, err = proc.communicate(timeout=300)
            done[n] = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    return done


def _here(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """`dlc ARGS` through `dlc.cli.main` in this process, on one thread, its output captured."""
    from dlc.cli import main

    out, err, threads, before = io.StringIO(), io.StringIO(), torch.get_num_threads(), os.getcwd()
    torch.set_num_threads(1)
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(args)
            except SystemExit as stop:  # argparse
                code = stop.code
    finally:
        os.chdir(before)
        torch.set_num_threads(threads)
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


def _refused(proc: subprocess.CompletedProcess, code: int = 1) -> str:
    assert proc.returncode == code, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert "Traceback" not in proc.stderr and "internal compiler error" not in proc.stderr, proc.stderr
    return proc.stderr


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """The spec, one file per hostile checkpoint, the good and the float64 checkpoints, the
    training definitions, and a run stopped after two steps with one spoiled copy per resume case."""
    root = tmp_path_factory.mktemp("ckpt")
    (root / "n.arch").write_text(NETWORK)
    for name, (write, _) in {**UNREADABLE, **MISFITS}.items():
        write(root / f"{name}.safetensors")
    _with()(root / "good.safetensors")
    _floats(np.float64)(root / "float64.safetensors")
    _floats(np.float16)(root / "float16.safetensors")
    rng = np.random.default_rng(0)
    np.savez(root / "d.npz", image=rng.standard_normal((32, 1, 8, 8)).astype(np.float32),
             label=rng.integers(0, 4, 32).astype(np.int64))
    for name in START_CASES:
        start = f' from "{root / f"{name}.safetensors"}"'
        (root / f"start-{name}.arch").write_text(NETWORK + TRAIN.format(data=root / "d.npz", start=start))
    (root / "plain.arch").write_text(NETWORK + TRAIN.format(data=root / "d.npz", start=""))
    first = _here(["train", "plain.arch", "-o", "base", "--quiet", "--max-steps", "2"], root)
    assert first.returncode == 0 and (root / "base" / "last.state.pt").is_file(), first.stderr
    for name, (spoil, _) in RESUME_CASES.items():
        shutil.copytree(root / "base", root / f"resume-{name}")
        spoil(root / f"resume-{name}")
    return root


def _commands(folder: Path) -> dict[tuple[str, str], list[str]]:
    """(reader, case) -> the dlc command line that reads the case's file."""
    commands = {("export", n): ["export", "onnx", "n.arch", "--weights", str(folder / f"{n}.safetensors"),
                                "-o", str(folder / f"{n}.onnx")] for n in [*UNREADABLE, *MISFITS, "good", "float64"]}
    commands.update({("compile", n): ["compile", "n.arch", "--weights", str(folder / f"{n}.safetensors"),
                                      "-o", str(folder / f"art-{n}")] for n in COMPILE_CASES})
    commands.update({("from", n): ["train", f"start-{n}.arch", "-o", f"run-{n}", "--quiet", "--max-steps", "1"]
                     for n in START_CASES})
    commands.update({("resume", n): ["train", "plain.arch", "-o", f"resume-{n}", "--quiet", "--resume"]
                     for n in RESUME_CASES})
    return commands


@dataclass
class Runs:
    results: dict[tuple[str, str], subprocess.CompletedProcess]
    before: dict[str, dict[str, bytes]]  # each resume case's run folder before its --resume
    after: dict[str, dict[str, bytes]]


@pytest.fixture(scope="module")
def runs(folder) -> Runs:
    """Every (reader, case): the ones in PROCESSES as processes, the rest in this process."""
    def files(name: str) -> dict[str, bytes]:
        return {p.name: p.read_bytes() for p in (folder / f"resume-{name}").iterdir()}

    commands = _commands(folder)
    before = {n: files(n) for n in RESUME_CASES}
    results = _processes({k: v for k, v in commands.items() if k in PROCESSES}, folder)
    results.update({k: _here(v, folder) for k, v in commands.items() if k not in PROCESSES})
    return Runs(results, before, {n: files(n) for n in RESUME_CASES})


def test_the_process_cases_cover_every_reader():
    assert {reader for reader, _ in PROCESSES} == {"export", "compile", "from", "resume"}


# --- dlc export onnx --weights ------------------------------------------------------------------

@pytest.mark.parametrize("name", list(UNREADABLE))
def test_export_names_what_is_wrong_with_an_unreadable_file(runs, folder, name):
    stderr = _refused(runs.results["export", name])
    path = folder / f"{name}.safetensors"
    assert stderr.startswith(f"error[E0107]: cannot read checkpoint `{path}`: {UNREADABLE[name][1]}"), stderr
    assert f"--> {path}" in stderr
    assert not (folder / f"{name}.onnx").exists() and not list(folder.glob(f".{name}.onnx*"))


@pytest.mark.parametrize("name", list(MISFITS))
def test_export_refuses_a_checkpoint_that_does_not_fit(runs, folder, name):
    stderr = _refused(runs.results["export", name])
    assert stderr.startswith(f"error[E0405]: checkpoint `{folder / f'{name}.safetensors'}` does not fit `N`"), stderr
    notes = [line.split("= note: ", 1)[1] for line in stderr.splitlines() if "= note: " in line]
    assert len(notes) == 1 and notes[0].startswith(MISFITS[name][1]), stderr
    assert not (folder / f"{name}.onnx").exists()


def test_a_float64_checkpoint_exports_a_float32_model_equal_to_the_float32_ones(runs, folder):
    import onnx
    import onnxruntime as ort

    good, wide = runs.results["export", "good"], runs.results["export", "float64"]
    assert good.returncode == 0 and "warning" not in good.stderr, good.stderr
    assert wide.returncode == 0, wide.stderr
    assert wide.stderr.startswith(f"warning: checkpoint `{folder / 'float64.safetensors'}`: cast float64 to "
                                  "float32, the network's dtype: `conv.weight`, `conv.bias`"), wide.stderr
    model = onnx.load(str(folder / "float64.onnx"))
    onnx.checker.check_model(model, full_check=True)
    assert {t.data_type for t in model.graph.initializer} <= {onnx.TensorProto.FLOAT, onnx.TensorProto.INT64}
    x = np.random.default_rng(3).standard_normal((2, 1, 8, 8)).astype(np.float32)
    outs = [ort.InferenceSession(str(folder / f"{n}.onnx"), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
            for n in ("good", "float64")]
    assert outs[1].dtype == np.float32
    np.testing.assert_array_equal(outs[1], outs[0])  # float32 -> float64 -> float32 is exact


def test_the_rule_in_the_library_casts_every_float_precision_and_says_so(folder):
    result = compile_file(folder / "n.arch")
    graph = default_graph(result, None)
    good = load_weights(graph, folder / "good.safetensors")
    for name in ("float64", "float16"):
        notes: list[str] = []
        weights = load_weights(graph, folder / f"{name}.safetensors", notes=notes)
        assert {k: v.dtype for k, v in weights.items()} == {k: v.dtype for k, v in good.items()}
        assert len(notes) == 1 and f"cast {name} to float32, the network's dtype" in notes[0], notes
        assert "and 2 more" in notes[0] and "num_batches_tracked" not in notes[0]  # 8 float tensors, 6 named
        for key in good:
            np.testing.assert_allclose(weights[key], good[key], rtol=1e-3 if name == "float16" else 0, atol=1e-4)
    with pytest.raises(CheckpointError) as refused:
        load_weights(graph, folder / "int32.safetensors", notes=[])
    assert refused.value.diag.code == "E0405"


@pytest.mark.parametrize("torch_load", [False, True], ids=["safetensors", "torch-load"])
def test_bfloat16_which_numpy_has_not_is_read_exactly_as_float32(folder, torch_load):
    from safetensors.torch import save_file as save_torch_file

    graph = default_graph(compile_file(folder / "n.arch"), None)
    state = {k: torch.from_numpy(v).bfloat16() if v.dtype.kind == "f" else torch.from_numpy(v)
             for k, v in _good().items()}
    path = folder / ("bf16.pt" if torch_load else "bf16.safetensors")
    torch.save(state, path) if torch_load else save_torch_file(state, str(path))
    notes: list[str] = []
    weights = load_weights(graph, path, torch_load=torch_load, notes=notes)
    assert len(notes) == 1 and "cast bfloat16 to float32, the network's dtype: `conv.weight`" in notes[0], notes
    for key, tensor in state.items():
        want = tensor.float() if tensor.dtype == torch.bfloat16 else tensor
        np.testing.assert_array_equal(weights[key], want.numpy())
        assert weights[key].dtype == (np.int64 if key.endswith("num_batches_tracked") else np.float32)


# --- dlc compile --weights: checked before TVM builds anything -----------------------------------

@pytest.mark.parametrize("name", ["random-bytes", "int32"])
def test_compile_refuses_what_export_refuses(runs, folder, name):
    stderr = _refused(runs.results["compile", name])
    code = "E0107" if name in UNREADABLE else "E0405"
    assert stderr.startswith(f"error[{code}]: "), stderr
    assert ({**UNREADABLE, **MISFITS}[name][1]) in stderr
    assert not (folder / f"art-{name}").exists()


def test_compile_builds_a_float64_checkpoint_as_float32(runs, folder):
    import onnxruntime as ort

    from dlc.runtime import load

    assert runs.results["compile", "float64"].returncode == 0, runs.results["compile", "float64"].stderr
    assert "cast float64 to float32" in runs.results["compile", "float64"].stderr
    weights = np.load(folder / "art-float64" / "weights.npz")  # batch norm folded into the conv by the build
    assert {weights[k].dtype for k in weights.files} == {np.dtype(np.float32)}
    x = np.random.default_rng(4).standard_normal((1, 1, 8, 8)).astype(np.float32)
    session = ort.InferenceSession(str(folder / "good.onnx"), providers=["CPUExecutionProvider"])
    (expected,) = session.run(None, {"x": x})
    got = load(folder / "art-float64")(x=x)["logits"]
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


# --- dlc train: a definition's `from`, and --resume ---------------------------------------------

@pytest.mark.parametrize("name", [n for n, words in START_CASES.items() if words])
def test_a_from_clause_refuses_a_hostile_checkpoint(runs, folder, name):
    stderr = _refused(runs.results["from", name])
    (line,) = [line for line in stderr.splitlines() if line.startswith("error: ")]
    path = folder / f"{name}.safetensors"
    assert line.startswith(f"error: model `net`: "), line
    assert f"`{path}`" in line and START_CASES[name] in line, line
    assert not (folder / f"run-{name}" / "last.state.pt").exists()


def test_a_from_clause_casts_a_float64_checkpoint_and_says_so(runs, folder):
    done = runs.results["from", "float64"]
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert (f"note: model `net`: checkpoint `{folder / 'float64.safetensors'}`: cast float64 to float32"
            in done.stderr), done.stderr


@pytest.mark.parametrize("name", [n for n, (_, words) in RESUME_CASES.items() if words])
def test_resume_refuses_a_spoiled_state_and_leaves_the_run_as_it_was(runs, folder, name):
    proc, before, after = runs.results["resume", name], runs.before[name], runs.after[name]
    stderr = _refused(proc)
    (line,) = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert line.startswith(f"error: cannot resume from `resume-{name}/last.state.pt`: "), line
    assert RESUME_CASES[name][1] in line, line
    assert after == before


def test_resume_casts_float64_weights_and_goes_on(runs, folder):
    proc = runs.results["resume", "float64"]
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert "note: model `net`: checkpoint" in proc.stderr and "cast float64 to float32" in proc.stderr, proc.stderr
    state = _state(folder / "resume-float64")
    assert state["epoch"] == 3 and {v.dtype for v in state["models"]["net"].values()} == {torch.float32, torch.int64}
