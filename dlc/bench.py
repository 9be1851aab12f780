"""`dlc bench`: the compiled artifact against eager PyTorch and ONNX Runtime, same inputs and threads.

Each backend runs in its own process (`python -m dlc.bench --worker ...`), so that one runtime's
thread pool does not slow another's calls. The three workers load their model, warm up, then time
single calls (perf_counter) in interleaved blocks: a few calls of each backend in turn, with a
pause between blocks for thread pools to go idle. A machine whose speed drifts (a shared VM) then
slows all three alike instead of whichever ran during the slow minute. Every worker reads the same
input arrays and returns its outputs, which are compared against the artifact's.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

BACKENDS = ("dlc", "torch", "onnxruntime")
LABELS = {"dlc": "dlc (TVM)", "torch": "PyTorch eager", "onnxruntime": "ONNX Runtime"}


@dataclass(frozen=True)
class BenchConfig:
    threads: int
    runs: int
    warmup: int


def stats(times_s: list[float]) -> dict[str, float]:
    t = np.asarray(times_s) * 1e3
    return {"median_ms": float(np.median(t)), "p10_ms": float(np.percentile(t, 10)),
            "p90_ms": float(np.percentile(t, 90)), "min_ms": float(t.min()), "runs": int(t.size)}


def bench_artifact(artifact: Path, config: BenchConfig, spec: Path | None = None) -> dict[str, Any]:
    """Run the three backends on the artifact's model; the result `dlc bench --json` prints."""
    from dlc.runtime.artifact import read_manifest

    manifest = read_manifest(artifact)  # ArtifactError for a malformed one, as `dlc run` gives
    spec = Path(spec or manifest["spec"])
    if not spec.exists():
        raise FileNotFoundError(f"the artifact was compiled from `{spec}`, which is not here: pass --spec")
    dims = manifest.get("dims", {})
    rng = np.random.default_rng(0)
    feeds = {}
    for i in manifest["inputs"]:
        shape = [d if isinstance(d, int) else dims.get(d, 1) for d in i["shape"]]
        if i["dtype"].startswith("float"):
            feeds[i["name"]] = rng.standard_normal(shape).astype(i["dtype"])
        else:  # token ids and the like: small non-negative integers are valid for every embedding
            feeds[i["name"]] = rng.integers(0, 2, shape).astype(i["dtype"])
    result: dict[str, Any] = {"model": manifest["model"], "spec": str(spec), "artifact": str(artifact),
                              "target": manifest["target"]["name"], "tuning": manifest.get("tuning"),
                              "inputs": {k: list(v.shape) for k, v in feeds.items()}, "threads": config.threads,
                              "runs": config.runs, "results": {}}
    with tempfile.TemporaryDirectory(prefix="dlc-bench-") as tmp:
        inputs = Path(tmp) / "inputs.npz"
        np.savez(inputs, **feeds)
        times = _interleaved(artifact, spec, inputs, Path(tmp), config)
        outputs: dict[str, dict[str, np.ndarray]] = {}
        for backend in BACKENDS:
            result["results"][backend] = stats(times[backend])
            with np.load(Path(tmp) / f"{backend}.npz") as arrays:
                outputs[backend] = dict(arrays)
    base = result["results"]["dlc"]["median_ms"]
    result["speedup"] = {b: result["results"][b]["median_ms"] / base for b in BACKENDS if b != "dlc"}
    result["max_abs_diff"] = {b: max(float(np.abs(outputs[b][k] - v).max()) for k, v in outputs["dlc"].items())
                              for b in BACKENDS if b != "dlc"}
    return result


BLOCKS = 10  # each backend's timed calls come in this many blocks, interleaved with the others'
PAUSE_S = 0.2  # between blocks: spinning worker threads of the last backend go to sleep


def _interleaved(artifact: Path, spec: Path, inputs: Path, tmp: Path, config: BenchConfig) -> dict[str, list]:
    """Start one worker per backend, then time blocks of calls in turn: dlc, torch, ORT, dlc, ..."""
    env = {**os.environ, "TVM_NUM_THREADS": str(config.threads), "OMP_NUM_THREADS": str(config.threads)}
    workers = {}
    try:
        for backend in BACKENDS:  # one at a time: loading is not what is timed, but it is heavy
            cmd = [sys.executable, "-m", "dlc.bench", "--worker", backend, str(artifact), str(spec), str(inputs),
                   str(tmp / f"{backend}.npz"), str(config.threads), str(config.warmup)]
            err = open(tmp / f"{backend}.err", "w+")
            workers[backend] = (subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
                                                 text=True, env=env), err)
            _reply(backend, *workers[backend])
        times: dict[str, list] = {b: [] for b in BACKENDS}
        blocks = min(BLOCKS, config.runs)
        for k in range(blocks):
            for backend in BACKENDS:
                time.sleep(PAUSE_S)
                n = config.runs // blocks + (1 if k < config.runs % blocks else 0)
                proc, err = workers[backend]
                proc.stdin.write(f"run {n}\n")
                proc.stdin.flush()
                times[backend] += _reply(backend, proc, err)
        for backend, (proc, err) in workers.items():
            proc.stdin.write("save\n")
            proc.stdin.flush()
            _reply(backend, proc, err)
        return times
    finally:
        for proc, err in workers.values():
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            err.close()


def _reply(backend: str, proc: subprocess.Popen, err) -> Any:
    line = proc.stdout.readline()
    if not line:
        proc.wait()
        err.seek(0)
        raise RuntimeError(f"the {LABELS[backend]} benchmark failed:\n{err.read()[-3000:]}")
    return json.loads(line)


def _run_worker(backend: str, artifact: str, spec: str, inputs: str, out: str, threads: str, warmup: str) -> None:
    """Load, warm up, say so; then answer `run N` with N latencies and `save` by writing the outputs."""
    reply = os.fdopen(os.dup(1), "w")  # the protocol's channel; whatever a library prints goes to stderr
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    manifest = json.loads((Path(artifact) / "manifest.json").read_text())
    with np.load(inputs) as arrays:
        feeds = dict(arrays)
    call = _make_call(backend, Path(artifact), manifest, Path(spec), int(threads))
    for _ in range(max(1, int(warmup))):  # at least one call: `save` writes its outputs
        outputs = call(feeds)
    print(json.dumps("ready"), file=reply, flush=True)
    for command in sys.stdin:
        verb, *args = command.split()
        if verb == "run":
            times = []
            for _ in range(int(args[0])):
                start = time.perf_counter()
                outputs = call(feeds)
                times.append(time.perf_counter() - start)
            print(json.dumps(times), file=reply, flush=True)
        elif verb == "save":
            np.savez(out, **outputs)
            print(json.dumps("saved"), file=reply, flush=True)
            return


def _make_call(backend: str, artifact: Path, manifest: dict, spec: Path, threads: int):
    names = [o["name"] for o in manifest["outputs"]]
    if backend == "dlc":
        from dlc.runtime import load

        model = load(artifact)
        return lambda feeds: model(**feeds)
    graph, weights = _graph_and_weights(manifest, spec)
    if backend == "onnxruntime":
        import onnxruntime as ort

        from dlc.compiler.emit.onnx import emit_onnx

        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        session = ort.InferenceSession(emit_onnx(graph, weights).SerializeToString(), options,
                                       providers=["CPUExecutionProvider"])
        return lambda feeds: dict(zip(names, session.run(None, feeds), strict=True))
    import torch

    from dlc.compiler.emit.torch import torch_namespace

    torch.set_num_threads(threads)
    from dlc.compiler.checkpoint import module_state_dict

    module = getattr(torch_namespace(spec), graph.name)().eval()
    state = {k: torch.from_numpy(v) for k, v in module_state_dict(graph, weights).items()}
    module.load_state_dict(state, strict=True)  # tie aliases included: a GPT-2's lm_head.weight
    order = [i["name"] for i in manifest["inputs"]]

    def run(feeds):
        with torch.inference_mode():
            result = module(*(torch.from_numpy(feeds[n]) for n in order))
        result = result if isinstance(result, tuple) else (result,)
        return {n: r.numpy() for n, r in zip(names, result, strict=True)}

    return run


def _graph_and_weights(manifest: dict, spec: Path):
    """The graph and the weights the artifact was compiled with (its seed, or its checkpoint and key map)."""
    from dlc.compiler.checkpoint import load_weights
    from dlc.compiler.pipeline import compile_file

    result = compile_file(spec, manifest["model"])
    result.raise_for_errors()
    graph = result.graphs[manifest["model"]]
    source = manifest.get("weights_from", {"seed": 0})
    return graph, load_weights(graph, source.get("checkpoint"), source.get("key_map"),
                               source.get("torch_load", False), source.get("seed", 0))


def table(result: dict[str, Any]) -> str:
    tuning = result.get("tuning") or {}
    tuned = f"tuned, {tuning.get('budget')} trials budget" if tuning.get("budget") else "untuned"
    lines = [f"{result['model']} ({result['target']}, {tuned}), inputs "
             + ", ".join(f"{k} {v}" for k, v in result["inputs"].items())
             + f"; {result['threads']} threads, {result['runs']} runs each",
             f"{'backend':16s} {'median':>10s} {'p10-p90':>17s} {'dlc is':>14s} {'max |diff|':>11s}"]
    for backend in BACKENDS:
        r = result["results"][backend]
        spread = f"{r['p10_ms']:.3f}-{r['p90_ms']:.3f}"
        if backend == "dlc":
            ratio, diff = "", ""
        else:
            s = result["speedup"][backend]
            ratio = f"{s:.2f}x faster" if s >= 1 else f"{1 / s:.2f}x slower"
            diff = f"{result['max_abs_diff'][backend]:.1e}"
        lines.append(f"{LABELS[backend]:16s} {r['median_ms']:8.3f}ms {spread:>17s} {ratio:>14s} {diff:>11s}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__" and len(sys.argv) == 9 and sys.argv[1] == "--worker":
    _run_worker(*sys.argv[2:])
