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

What a run reads that a user may have handed it is checked before it is used, and refused with a
`TrainError` that names the file and what is wrong (never a traceback): the state `--resume`
goes on from (`load_state`: a record of the pieces the loop reads, each model's weights exactly
its network's), and the checkpoint a training definition's `from` names (`read_start`, through
the compiler's safetensors reader). Both follow the compiler's dtype rule (compiler/checkpoint.py,
`fit_dtypes`): another float precision is cast with a warning, an integer or bool tensor for a
float weight is refused.
"""
from __future__ import annotations

import json
import os
import pickle
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from safetensors.torch import save_file
from torch import nn

from dlc.compiler.checkpoint import Cast, UnreadableCheckpoint, cast_note, fit_dtypes, read_safetensors
from dlc.compiler.ir.train import ModelPlan, TrainPlan

from .modules import TrainError


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


# the pieces of a resume state the loop reads, and what each is; an ensemble's record of its
# members (runtime/train/ensembles.py) is the second
_STATE = {"plan": str, "epoch": int, "batch_index": int, "global_step": int, "models": dict, "optimizers": dict,
          "schedules": dict, "rng": list, "ensembles": dict}
_ENSEMBLE = {"plan": str, "members_done": list}


def load_state(path: Path, plan: TrainPlan | None = None, models: Mapping[str, nn.Module] | None = None,
               notes: list[str] | None = None) -> dict[str, Any]:
    """The resume state in `path`, read with `torch.load(weights_only=True)` and checked: a record
    of the pieces the loop reads (without `plan`, an ensemble's record of its members too); with
    `plan` and `models`, a state of that definition whose weights are exactly each model's (names,
    shapes, dtypes by the dtype rule: cast, with a warning text appended to `notes`, or refused).
    TrainError names the file and what is wrong."""
    state = _torch_load(path)
    _check_record(path, state, ensemble=plan is None)
    if plan is not None and models is not None:
        if state["plan"] != plan.name:
            raise TrainError(f"{path} is a checkpoint of `{state['plan']}`, not of `{plan.name}`")
        for m in plan.models:
            state["models"][m.name] = _resume_weights(path, state["models"].get(m.name), m, models[m.name], notes)
    return state


def _torch_load(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except EOFError:
        raise TrainError(_cannot_resume(path, "the file is empty" if _size(path) == 0 else "it is cut short")) from None
    except pickle.UnpicklingError as err:  # not a pickle, or one of objects beyond tensors, numbers and containers
        raise TrainError(_cannot_resume(path, f"it is no `torch.save` file of tensors ({_unpickler_reason(err)})")) \
            from None
    except (RuntimeError, OSError, ValueError, AttributeError, KeyError, IndexError) as err:  # a damaged zip
        raise TrainError(_cannot_resume(path, f"it is damaged or cut short ({_first_line(err)})")) from None


def _check_record(path: Path, state: Any, ensemble: bool) -> None:
    if not isinstance(state, dict):
        raise TrainError(_cannot_resume(path, f"it holds a `{type(state).__name__}`, "
                                              "not the state of a `dlc train` run"))
    record = _ENSEMBLE if ensemble and "members_done" in state else _STATE
    wrong = [key for key, kind in record.items() if not isinstance(state.get(key), kind)]
    if wrong:
        raise TrainError(_cannot_resume(path, f"it is not the state of a `dlc train` run: {_names(wrong)} "
                                              f"{'is' if len(wrong) == 1 else 'are'} missing or of another kind"))
    if record is _STATE and not all(_is_rng_state(r) for r in state["rng"]):
        raise TrainError(_cannot_resume(path, "its `rng` is not a list of random number generator states"))


def _is_rng_state(r: Any) -> bool:
    return isinstance(r, dict) and isinstance(r.get("torch"), torch.Tensor) and r["torch"].dtype == torch.uint8


def _resume_weights(path: Path, saved: Any, m: ModelPlan, module: nn.Module,
                    notes: list[str] | None) -> dict[str, torch.Tensor]:
    """`saved`, the state's weights of model `m`, checked against the network's own (the keys
    of `m.weights`: tie aliases are left out) and cast by the dtype rule."""
    if not isinstance(saved, dict) or not all(isinstance(v, torch.Tensor) for v in saved.values()):
        raise TrainError(_cannot_resume(path, f"it holds no weights of model `{m.name}` (a dict of tensors)"))
    expected = {name: tuple(shape) for name, shape, _ in m.weights}
    own = module.state_dict()
    tensors, casts, problems = fit_tensors(saved, {k: own[k].dtype for k in expected if k in saved})
    problems += [f"missing `{k}` {list(s)}" for k, s in expected.items() if k not in saved]
    problems += [f"`{k}` has shape {list(saved[k].shape)}, the network needs {list(s)}"
                 for k, s in expected.items() if k in saved and tuple(saved[k].shape) != s]
    problems += [f"unexpected `{k}`: network {m.network} has no such weight"
                 for k in sorted(set(saved) - set(expected))]
    if problems:
        raise TrainError(_cannot_resume(path, f"the weights of model `{m.name}` do not fit network {m.network}: "
                                              + "; ".join(problems)))
    if casts and notes is not None:
        notes.append(f"model `{m.name}`: " + cast_note(str(path), casts))
    return tensors


def read_start(path: Path, model: str, own: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """The tensors of the safetensors file a training definition's `from` names, those the
    model has (`own`, its state_dict) cast to its dtypes by the dtype rule, and the warning text
    of the casts (none or one). TrainError for a file that is no safetensors file, or for a
    tensor the rule refuses; which names and shapes fit is for the caller to say (`load_start`)."""
    try:
        arrays, read_as = read_safetensors(path)
    except UnreadableCheckpoint as err:
        raise TrainError(f"model `{model}`: cannot read the checkpoint `{path}` ({err.reason})") from None
    tensors, casts, problems = fit_tensors({k: torch.from_numpy(np.array(v)) for k, v in arrays.items()},
                                           {k: t.dtype for k, t in own.items() if k in arrays})
    if problems:
        raise TrainError(f"model `{model}`: the checkpoint `{path}` does not fit: " + "; ".join(problems))
    casts = [*(Cast(k, dtype, "float32") for k, dtype in read_as.items()), *casts]
    return tensors, [f"model `{model}`: " + cast_note(str(path), casts)] if casts else []


def fit_tensors(tensors: Mapping[str, torch.Tensor], dtypes: Mapping[str, torch.dtype]
                ) -> tuple[dict[str, torch.Tensor], list[Cast], list[str]]:
    """The compiler's dtype rule (`fit_dtypes`) on torch tensors: each key of `dtypes` cast to its
    dtype where the rule allows, the casts made, and a problem text for each tensor it refuses."""
    arrays = {k: _numpy(tensors[k]) for k in dtypes}
    fitted, casts, problems = fit_dtypes(arrays, {k: _numpy_dtype(d) for k, d in dtypes.items()})
    widened = [Cast(k, "bfloat16", fitted[k].dtype.name) for k in dtypes
               if tensors[k].dtype == torch.bfloat16 and fitted[k].dtype == arrays[k].dtype]
    casts = [*widened, *casts]
    out = dict(tensors)
    out.update({c.key: torch.from_numpy(fitted[c.key]) for c in casts})
    return out, casts, problems


def _numpy(t: torch.Tensor) -> np.ndarray:
    t = t.detach().cpu()
    return (t.float() if t.dtype == torch.bfloat16 else t).numpy()  # numpy has no bfloat16: float32 holds it


def _numpy_dtype(dtype: torch.dtype) -> np.dtype:
    return torch.empty(0, dtype=dtype).numpy().dtype


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return -1


def _unpickler_reason(err: Exception) -> str:
    """The one line of torch's weights-only refusal that says what it met (its advice to load
    the file without `weights_only` is not for a file a user handed us)."""
    text = str(err)
    marker = "WeightsUnpickler error:"
    if marker in text:
        rest = [line.strip() for line in text.split(marker, 1)[1].splitlines() if line.strip()]
        if rest:
            return rest[0].split(" Please use ")[0].rstrip(".")
    return _first_line(err)


def _first_line(err: Exception) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[0] if lines else type(err).__name__


def _names(keys: list[str]) -> str:
    return ", ".join(f"`{k}`" for k in keys)


def _cannot_resume(path: Path, reason: str) -> str:
    return f"cannot resume from `{path}`: {reason}"


def rng_state(device: torch.device) -> dict[str, Any]:
    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: Mapping[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)
