"""`dlc-run ARTIFACT --input [NAME=]X.npy ... --output Y.npy|DIR`: run a compiled artifact.

The command of the dlc-runtime distribution, for a device that has only it (`dlc run` on the
workstation is the same function). Exit status 0, or 1 with one `error: ...` line for a bad
artifact or input, and 2 for a bad command line; outputs are written whole or not at all.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

from .artifact import ArtifactError, load


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("artifact", type=Path, metavar="ARTIFACT", help="the directory `dlc compile` wrote")
    p.add_argument("--input", action="append", default=[], metavar="[NAME=]X.npy", help="an input array; repeatable")
    p.add_argument("--output", "-o", type=Path, metavar="Y.npy|DIR",
                   help="where to save the output (a directory when the model has several)")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="dlc-run", description="Run a compiled dlc artifact on .npy inputs.")
    add_arguments(p)
    return run(p.parse_args(argv))


def run(args: argparse.Namespace) -> int:
    try:
        model = load(args.artifact)
        outputs = model(**read_inputs(args.input, [i["name"] for i in model.inputs]))
    except ArtifactError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    for name, array in outputs.items():
        print(f"{name}: {array.dtype}{list(array.shape)}")
    if args.output:
        if len(outputs) == 1:
            save_atomic(args.output, next(iter(outputs.values())))
        else:
            args.output.mkdir(parents=True, exist_ok=True)
            for name, array in outputs.items():
                save_atomic(args.output / f"{name}.npy", array)
    return 0


def read_inputs(items: list[str], names: list[str]) -> dict[str, np.ndarray]:
    """`NAME=X.npy` items (a lone `X.npy` when the model has one input); never unpickles."""
    feeds = {}
    for item in items:
        name, sep, path = item.rpartition("=")
        if not sep:
            if len(items) != 1 or len(names) != 1:
                raise ArtifactError(f"name each input: --input NAME=X.npy (inputs: {', '.join(names)})")
            name = names[0]
        try:
            feeds[name] = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as err:
            raise ArtifactError(f"cannot read `{path}`: {err}") from None
    return feeds


def save_atomic(path: Path, array: np.ndarray) -> None:
    """np.save to a temporary name beside PATH, then rename: no half-written .npy."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            np.save(f, array)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(main())
