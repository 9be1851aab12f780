"""The artifact directory a TVM build is written to: `model.so`, `weights.npz`, `manifest.json`.

The format name comes from the runtime (`dlc.runtime.artifact.FORMAT`), which reads what this
module writes; the directory appears whole or not at all.
"""
from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from dlc.runtime.artifact import FORMAT

from ...ir.graph import Graph
from .targets import TargetSpec

if TYPE_CHECKING:
    from .build import Built


def manifest(graph: Graph, spec: TargetSpec, spec_hash: str, spec_path: str,
              dims: Mapping[str, int] | None) -> dict[str, Any]:
    import tvm

    def tensor(name: str, vid: int) -> dict[str, Any]:
        t = graph.values[vid].type
        shape = [d.evaluate(dims) if dims is not None else d.value if d.is_const else str(d) for d in t.shape]
        return {"name": name, "dtype": _NUMPY_DTYPES[t.dtype], "shape": shape}

    return {
        "format": FORMAT,
        "model": graph.name,
        "spec": spec_path,
        "spec_sha256": spec_hash,
        "target": {"name": spec.name, "tvm": spec.target, "host": spec.host, "device": spec.device},
        "tvm_version": tvm.__version__,
        "inputs": [tensor(n, v) for n, v in graph.inputs],
        "outputs": [tensor(n, v) for n, v in graph.outputs],
        "dims": dict(graph.dim_examples) if dims is None else dict(dims),
        "tuning": {"trials": 0, "tasks": 0, "note": "untuned: TVM's default schedules"},
        "library": "model.so",
        "weights": "weights.npz",
    }


_NUMPY_DTYPES = {"f32": "float32", "f64": "float64", "f16": "float16", "bf16": "bfloat16", "i64": "int64",
                 "i32": "int32", "u8": "uint8", "bool": "bool"}


def write_artifact(built: Built, spec: TargetSpec, out: Path) -> None:
    """Write the artifact into a temporary directory beside `out`, then move it into place."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    tmp.chmod(0o755)
    try:
        kwargs = {"cc": spec.cc} if spec.cc else {}
        built.executable.export_library(str(tmp / "model.so"), **kwargs)
        np.savez(tmp / "weights.npz", **dict(built.params))
        if built.cuda_source is not None:
            (tmp / "kernels.cu").write_text(built.cuda_source)
        built.manifest["params"] = [n for n, _ in built.params]
        (tmp / "manifest.json").write_text(json.dumps(built.manifest, indent=2) + "\n")
        if out.exists():
            old = out.with_name(f".{out.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
