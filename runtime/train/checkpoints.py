"""Checkpoints of a training run, written so that a kill at any moment leaves a usable one.

    <run>/last.safetensors     the model's weights under the compiler's names (one model), or
    <run>/last.<model>.safetensors   one file per model when the definition trains several
    <run>/best[...].safetensors      the same, at the best validation value of `config best`
    <run>/last.state.pt        everything a resume needs: every model's weights, every optimizer's
                               and scheduler's state, the RNG states, the position in the data

The weight files are what `dlc export onnx --weights` and `dlc compile --weights` take, unchanged;
their metadata names the spec, the definition, the network and its arguments (`dlc_params`, JSON),
with which those commands compile the network (a generator trained as `Generator(nz=64, size=16)`).
The state file is self-contained (resume reads only it), so the pair can never disagree after a
kill between two writes. Every file is written to `<name>.tmp` in the same folder and renamed
into place (`os.replace` is atomic): a reader sees the old file or the new one, never half of one.
State is read back with `torch.load(weights_only=True)`: tensors, numbers, strings, lists, dicts.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

import torch
from safetensors.torch import save_file


def weight_paths(run: Path, tag: str, models: list[str]) -> dict[str, Path]:
    """model -> its weight file for `tag` ("last" or "best")."""
    if len(models) == 1:
        return {models[0]: run / f"{tag}.safetensors"}
    return {m: run / f"{tag}.{m}.safetensors" for m in models}


def params_text(args) -> str:
    """A model's network arguments ((name, value) pairs) as the JSON object of a weight file's
    `dlc_params` metadata, which `dlc export onnx` and `dlc compile` read back (dlc/cli.py)."""
    def plain(v):
        return [plain(x) for x in v] if isinstance(v, (tuple, list)) else v
    return json.dumps({k: plain(v) for k, v in args}, sort_keys=True)


def _replace(tmp: Path, path: Path) -> None:
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save_weights(path: Path, state: Mapping[str, torch.Tensor], metadata: Mapping[str, str]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    save_file(dict(state), str(tmp), metadata=dict(metadata))
    _replace(tmp, path)


def save_state(path: Path, state: Mapping[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(dict(state), tmp)
    _replace(tmp, path)


def load_state(path: Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=True)


def rng_state(device: torch.device) -> dict[str, Any]:
    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: Mapping[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)
