"""Named TVM targets: what `--target llvm|cuda|aarch64` (or `--target-json`) builds for.

The names are defined here once; the CLI offers exactly `TARGET_NAMES`. TVM is imported only
when a target is resolved (detecting this CPU), so listing the names costs nothing.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

TARGET_NAMES = ("llvm", "cuda", "aarch64")


@dataclass(frozen=True)
class TargetSpec:
    """A named target resolved to TVM target JSON, plus how to link the library."""

    name: str
    target: dict[str, Any]
    host: dict[str, Any] | None = None
    cc: str | None = None  # cross compiler for export_library
    device: str = "cpu"  # what the runtime runs it on


def resolve_target(name: str, arch: str | None = None, target_json: str | None = None) -> TargetSpec:
    """`llvm` (this CPU, detected), `cuda` (`--arch sm_90`), `aarch64` (Linux, cross-built), or JSON."""
    from tvm.target import codegen

    if target_json is not None:
        target = json.loads(target_json)
        return TargetSpec(target.get("kind", "custom"), target, device="cuda" if target.get("kind") == "cuda" else "cpu")
    if name == "llvm":
        from dlc.runtime.artifact import usable_cores

        # num-cores: MetaSchedule tunes for this many threads; records are kept per target
        return TargetSpec("llvm", {"kind": "llvm", "mcpu": codegen.llvm_get_system_cpu(), "num-cores": usable_cores()})
    if name == "cuda":
        return TargetSpec("cuda", {"kind": "cuda", "arch": arch or "sm_90"}, host={"kind": "llvm"}, device="cuda")
    if name == "aarch64":
        return TargetSpec("aarch64", {"kind": "llvm", "mtriple": "aarch64-linux-gnu", "mattr": ["+neon"]},
                          cc="aarch64-linux-gnu-g++")
    raise ValueError(f"unknown target `{name}`; targets: {', '.join(TARGET_NAMES)}, or --target-json")
