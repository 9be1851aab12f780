"""`dlc-run ARTIFACT --input [NAME=]X.npy|X.npz ... --output Y.npy|DIR`: run a compiled artifact.

The command of the dlc-runtime distribution, for a device that has only it (`dlc run` on the
workstation is the same function). Exit status 0, or 1 with one `error: ...` line for a bad
artifact, input or output path, and 2 for a bad command line. The artifact is checked as
`dlc.runtime.load` checks it; inputs are read without unpickling; the output paths are checked
before the model runs, and outputs are written whole or not at all.
"""
from __future__ import annotations

import argparse
import os
import sys
import zipfile
import zlib
from pathlib import Path
from typing import Sequence

import numpy as np

from .artifact import ArtifactError, load, load_manifest, validate_inputs

INPUT_HELP = ("an input array: NAME=X.npy, or a lone X.npy when the model has one input, or X.npz, whose "
              "arrays are inputs by their names (an .npz from `np.savez(f, x=..., y=...)`); repeatable")
OUTPUT_HELP = ("where to save the outputs: an existing directory, or a directory to create when the model has "
               "several, gets one NAME.npy per output; otherwise the file Y.npy (its directory must exist)")
NPY_MAGIC, ZIP_MAGICS = b"\x93NUMPY", (b"PK\x03\x04", b"PK\x05\x06")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("artifact", type=Path, metavar="ARTIFACT", help="the directory `dlc compile` wrote")
    p.add_argument("--input", action="append", default=[], metavar="[NAME=]X.npy|X.npz", help=INPUT_HELP)
    p.add_argument("--output", "-o", type=Path, metavar="Y.npy|DIR", help=OUTPUT_HELP)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="dlc-run", description="Run a compiled dlc artifact on .npy inputs.")
    add_arguments(p)
    return run(p.parse_args(argv))


def run(args: argparse.Namespace) -> int:
    try:  # the cheap checks first: TVM is imported only once the inputs and outputs are known good
        manifest = load_manifest(args.artifact).raw
        feeds = read_inputs(args.input, [i["name"] for i in manifest["inputs"]])
        validate_inputs(manifest["inputs"], feeds)
        destinations = output_paths(args.output, [o["name"] for o in manifest["outputs"]]) if args.output else {}
        outputs = load(args.artifact)(**feeds)
        for name, array in outputs.items():
            print(f"{name}: {array.dtype}{list(array.shape)}")
        save_all(destinations, outputs)
    except ArtifactError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


def output_paths(output: Path, names: list[str]) -> dict[str, Path]:
    """Where each output goes, checked before the model runs (nothing is created yet)."""
    if output.is_dir() or len(names) > 1:
        if output.exists() and not output.is_dir():
            raise ArtifactError(f"cannot write the outputs ({', '.join(names)}) into `{output}`: it is a file, "
                                f"and a model with several outputs needs a directory")
        return {name: output / f"{name}.npy" for name in names}
    if not output.parent.is_dir():
        raise ArtifactError(f"cannot write `{output}`: the directory `{output.parent}` does not exist")
    return {names[0]: output}


def read_inputs(items: list[str], names: list[str]) -> dict[str, np.ndarray]:
    """`NAME=X.npy` items, a lone `X.npy` when the model has one input, and `X.npz` archives
    (their arrays by name); never unpickles, and no input may be given twice."""
    feeds: dict[str, np.ndarray] = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name.isidentifier():
            name, path = "", item
        arrays = _read_array_file(path)
        if isinstance(arrays, dict):
            if name:
                raise ArtifactError(f"`{path}` is an .npz, its arrays already named: give it as `--input {path}`")
        else:
            if not name and (len(items) != 1 or len(names) != 1):
                raise ArtifactError(f"name each input: --input NAME=X.npy (inputs: {', '.join(names)})")
            arrays = {name or names[0]: arrays}
        for key, array in arrays.items():
            if key in feeds:
                raise ArtifactError(f"input `{key}` is given twice (`{path}` holds it again)")
            feeds[key] = array
    return feeds


def _read_array_file(path: str) -> np.ndarray | dict[str, np.ndarray]:
    try:
        with open(path, "rb") as f:
            magic = f.read(6)
    except OSError as err:
        raise ArtifactError(f"cannot read `{path}`: {err.strerror or err}") from None
    if magic != NPY_MAGIC and magic[:4] not in ZIP_MAGICS:
        raise ArtifactError(f"`{path}` is not a .npy or .npz file")
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            return loaded
        with loaded:
            return {name: loaded[name] for name in loaded.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as err:
        raise ArtifactError(f"cannot read `{path}`: {err}") from None


def save_all(destinations: dict[str, Path], outputs: dict[str, np.ndarray]) -> None:
    """Every output under a temporary name beside its destination, then renamed: all or nothing."""
    temps: dict[str, Path] = {}
    try:
        for name, path in destinations.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            temps[name] = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            with open(temps[name], "wb") as f:
                np.save(f, outputs[name])
        for name, path in destinations.items():
            temps.pop(name).replace(path)
    except OSError as err:
        raise ArtifactError(f"cannot write `{err.filename or next(iter(destinations.values()))}`: "
                            f"{err.strerror or err}") from None
    finally:
        for tmp in temps.values():
            tmp.unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(main())
