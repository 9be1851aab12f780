"""What an attack is run against, seen only through its outputs: a batch of inputs in, one row of
class scores per input out. Every example scored is one query, and the target counts them
(`queries`): a black-box attacker's cost, and what the report's "queries per example" divides.

    ArtifactTarget   a compiled artifact through dlc.runtime (numpy and TVM's runtime; no torch)
    EnsembleTarget   prediction averaging (the notes' defence): the mean of the members' softmax
                     probabilities; one query to the ensemble is one query, whatever it runs inside
    whitebox.ModuleTarget   a PyTorch module used the same way, only its outputs (torch, there)
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from .objective import SCORES, log_probs


class AttackError(Exception):
    """A request the attack cannot run: printed as `error: ...` by `dlc attack`, exit status 2."""


class Target:
    """Counts queries and feeds the model in batches of at most `batch` examples."""

    def __init__(self, name: str, kind: str, input_shape: tuple[int, ...], batch: int) -> None:
        if kind not in SCORES:
            raise AttackError(f"scores are one of {', '.join(SCORES)}, not `{kind}`")
        self.name, self.kind, self.input_shape, self.batch = name, kind, tuple(input_shape), batch
        self.queries = 0

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        self.queries += len(x)
        rows = [self._scores(x[i:i + self.batch]) for i in range(0, len(x), self.batch)]
        out = np.concatenate(rows).astype(np.float32) if rows else np.zeros((0, 0), np.float32)
        if self.kind == "probabilities" and len(out) and not np.allclose(out.sum(axis=1), 1.0, atol=1e-3):
            raise AttackError(f"{self.name}: `--scores probabilities` was given, but its output rows do not "
                              f"sum to 1 (first row sums to {out[0].sum():.4g}): it outputs logits")
        return out

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self(x).argmax(axis=1)

    def _scores(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class ArtifactTarget(Target):
    """A `dlc compile` artifact with one input; `output` names the scores when it has several."""

    def __init__(self, path: Path, kind: str = "logits", output: str | None = None, batch: int = 256,
                 dims: dict[str, int] | None = None) -> None:
        from dlc.runtime import ArtifactError, load

        try:
            self.model = load(path)
        except ArtifactError as err:
            raise AttackError(str(err)) from None
        if len(self.model.inputs) != 1:
            raise AttackError(f"{path}: the artifact has inputs {', '.join(i['name'] for i in self.model.inputs)}; "
                              "an attack perturbs one input image")
        spec = self.model.inputs[0]
        names = [o["name"] for o in self.model.outputs]
        if output is None and len(names) != 1:
            raise AttackError(f"{path}: the artifact has outputs {', '.join(names)}; pick the scores with --output")
        if output is not None and output not in names:
            raise AttackError(f"{path}: no output `{output}`; it has {', '.join(names)}")
        self.input_name, self.output = spec["name"], output or names[0]
        if spec["dtype"] != "float32":
            raise AttackError(f"{path}: input `{spec['name']}` is {spec['dtype']}; an attack perturbs float32 images")
        sizes = {**self.model.manifest.get("dims", {}), **(dims or {})}  # the spec's examples, unless --dim
        free = [d for d in spec["shape"][1:] if isinstance(d, str) and d not in sizes]
        if free:
            raise AttackError(f"{path}: input `{spec['name']}` has symbolic sizes {', '.join(free)}: give them "
                              "with --dim SYM=N")
        shape = tuple(sizes[d] if isinstance(d, str) else d for d in spec["shape"][1:])
        fixed = spec["shape"][0] if isinstance(spec["shape"][0], int) else None
        self.fixed_batch = fixed  # an artifact built with --dim B=1 (tuned) takes exactly that many
        super().__init__(str(path), kind, shape, fixed or batch)

    def _scores(self, x: np.ndarray) -> np.ndarray:
        n = len(x)
        if self.fixed_batch and n != self.fixed_batch:
            x = np.concatenate([x, np.zeros((self.fixed_batch - n, *x.shape[1:]), np.float32)])
        return self.model(**{self.input_name: x})[self.output][:n]


class EnsembleTarget(Target):
    """The mean of the members' probabilities (each member's scores made probabilities first)."""

    def __init__(self, members: Sequence[Target]) -> None:
        shapes = {m.input_shape for m in members}
        if len(shapes) != 1:
            raise AttackError(f"ensemble members take different inputs: {sorted(shapes)}")
        self.members = list(members)
        super().__init__(f"ensemble of {len(members)}", "probabilities", members[0].input_shape,
                         max(m.batch for m in members))

    def _scores(self, x: np.ndarray) -> np.ndarray:
        probs = [np.exp(log_probs(m._scores(x), m.kind)) for m in self.members]  # member queries are not
        return np.mean(probs, axis=0)  # counted apart: the defended system answers one query
