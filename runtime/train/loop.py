"""The training loop of `dlc train`: one checked `TrainPlan`, run top to bottom.

    set up     data (checked against the declared inputs), step modules and shared models (seeded),
               starting checkpoints and frozen parts, optimizers and lr schedules, or a resume
    per epoch  shuffle (an order fixed by seed and epoch), then for each global batch every step
               whose turn it is: forward, `loss.backward()`, gradient clipping, optimizer and
               schedule step; then validation, the metrics log, `last` and `best` checkpoints,
               curves and pictures
    at the end the `best` weights on the test split, the confusion matrix, summary.json

Under torchrun (`dlc train --nproc N`) each of the N processes takes its share of every global
batch, and after each step's backward pass the gradients of that step's parameters are averaged
over the processes (an all-reduce), so every process takes the same update; process 0 writes
everything. A definition of several steps (a GAN) runs so too, step by step.
Ctrl-C (SIGINT) finishes the step it is in, writes `last`, and exits; `--resume` goes on from
`last.state.pt` and ends with the same weights as a run that was never stopped.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from dlc.compiler.ir.train import TrainPlan, options
from dlc.compiler.pipeline import Compilation

from . import checkpoints, data as datasets, ensembles, evals, report, samples, unroll
from .modules import (TrainError, as_dict, build_steps, clip_weights, freeze, load_start, make_optimizer,
                      make_schedule, model_state)


@dataclass
class Options:
    out: Path
    resume: bool = False
    device: str = "cpu"
    quiet: bool = False
    epochs: int | None = None  # overrides `config epochs`
    max_steps: int | None = None  # stop after this many global batches (tests, smoke runs)
    data_base: Path | None = None  # where relative data paths are read from (default: the current directory)


@dataclass
class Result:
    epochs: int
    test: dict[str, float]
    best: dict[str, float]
    seconds: float
    interrupted: bool = False  # stopped before the last epoch (Ctrl-C or --max-steps); `last` holds where
    notes: list[str] = field(default_factory=list)


class _Interrupt:
    """Ctrl-C sets a flag that the loop reads between steps (a second Ctrl-C is the default: exit now)."""

    def __init__(self) -> None:
        self.hit = False
        self.previous = None

    def __enter__(self):
        def handler(signum, frame):
            self.hit = True
            signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            self.previous = signal.signal(signal.SIGINT, handler)
        except ValueError:  # not the main thread
            self.previous = None
        return self

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)


def train(compilation: Compilation, plan: TrainPlan, opts: Options) -> Result:
    started = time.perf_counter()
    if plan.ensembles is not None and plan.ensembles.members > 1:  # `config ensemble=k`: k runs, then their mean
        return ensembles.train_members(compilation, plan, opts, train)
    world, rank = _world()
    main = rank == 0
    device = _device(opts.device, rank)
    cfg = plan.config
    epochs = opts.epochs or cfg.epochs
    out = opts.out
    if main:
        out.mkdir(parents=True, exist_ok=True)

    # --- data, checked against what the definition declares, before anything is built
    d = plan.data
    data = datasets.load(d.kind, options(d.options), opts.data_base)
    expected = [datasets.Expected(i.name, i.dtype, i.dims, f"{i.span.file}:{i.span.line}:{i.span.col}", i.classes)
                for i in d.inputs]
    datasets.check_fits(data, expected, plan.name)
    fields = [i.name for i in d.inputs]
    train_split = {f: data.splits["train"][f] for f in fields}
    n_train = len(train_split[fields[0]])
    if cfg.batch % world:
        raise TrainError(f"`config batch={cfg.batch}` does not divide among {world} processes")
    steps_per_epoch = n_train // cfg.batch
    if steps_per_epoch == 0:
        raise TrainError(f"data `{d.kind}` has {n_train} training examples, fewer than one batch of {cfg.batch}")
    total_steps = steps_per_epoch * epochs

    # --- models and steps: seeded, identical in every process
    torch.manual_seed(cfg.seed)
    steps, models = build_steps(compilation, plan)
    notes: list[str] = []
    frozen: list[nn.Module] = []
    for m in plan.models:
        if m.weights_from and not opts.resume:
            kept, casts = load_start(models[m.name], m, Path(m.weights_from))
            notes += casts + [f"model `{m.name}`: kept its fresh initialization for {note}" for note in kept]
        frozen += freeze(models[m.name], m)
    for module in steps.values():
        module.to(device)
    optimizers = {st.name: make_optimizer(st.optimizer, models) for st in plan.steps}
    schedules = {st.name: make_schedule(st.optimizer, optimizers[st.name], steps_per_epoch, total_steps)
                 for st in plan.steps}
    torch.manual_seed(cfg.seed + 1 + rank)  # dropout and sampling noise: its own stream per process
    ensembling = ensembles.Ensembling(plan, models, data.splits, total_steps, out, device, main)  # snapshots, averages

    # --- resume: every piece of state, then the position in the data
    epoch, batch_index, global_step = 1, 0, 0
    best_value: float | None = None
    state: dict[str, Any] = {}
    if opts.resume:
        state = checkpoints.load_state(out / "last.state.pt", plan, models, notes)
        for m in plan.models:
            models[m.name].load_state_dict(state["models"][m.name], strict=False)
        for name, opt in optimizers.items():
            opt.load_state_dict(state["optimizers"][name])
            schedules[name].load_state_dict(state["schedules"][name])
        checkpoints.set_rng_state(state["rng"][rank], device)
        epoch, batch_index, global_step = state["epoch"], state["batch_index"], state["global_step"]
        if epoch > epochs:
            raise TrainError(f"the run in {out} is complete ({epoch - 1} epochs): `--epochs N` with a larger N "
                             "trains it further")
        best_value = state["best"]
        ensembling.load_state_dict(state["ensembles"])
    log = report.MetricsLog(out / "metrics.jsonl", resume_after=epoch - 1 if opts.resume else None) if main else None

    def save(tag_best: bool, position: dict[str, Any]) -> None:
        """`last` (and with `tag_best`, `best`) weights, then the state a resume needs (process 0)."""
        rngs = [checkpoints.rng_state(device)]
        if world > 1:
            rngs = [None] * world
            dist.all_gather_object(rngs, checkpoints.rng_state(device))
        if not main:
            return
        weights = {m.name: model_state(models[m.name], m) for m in plan.models}
        names = [m.name for m in plan.models]
        meta = {"dlc_spec": plan.path, "dlc_train": plan.name, "epoch": str(position["epoch"])}
        for tag in ("last", "best") if tag_best else ("last",):
            for m in plan.models:
                path = checkpoints.weight_paths(out, tag, names)[m.name]
                checkpoints.save_weights(path, weights[m.name], {**meta, "dlc_network": m.network,
                                                                 "dlc_params": checkpoints.params_text(m.args)})
        ensembling.save(position["global_step"])
        checkpoints.save_state(out / "last.state.pt", {
            "plan": plan.name, **position, "best": best_value, "models": weights,
            "optimizers": {k: o.state_dict() for k, o in optimizers.items()},
            "schedules": {k: s.state_dict() for k, s in schedules.items()},
            "rng": rngs, "ensembles": ensembling.state_dict()})

    # --- the epochs
    stopped = False  # Ctrl-C, or --max-steps in the middle of an epoch
    sums: dict[str, float] = dict(state.get("sums", {})) if opts.resume else {}
    count = int(state.get("count", 0)) if opts.resume else 0
    with _Interrupt() as interrupt:
        while epoch <= epochs and not stopped:
            t0 = time.perf_counter()
            for module in steps.values():
                module.train()
            for module in frozen:
                module.eval()
            order = np.random.default_rng([cfg.seed, epoch]).permutation(n_train)
            progress = report.Progress(steps_per_epoch - batch_index, f"epoch {epoch}/{epochs}",
                                       enabled=main and not opts.quiet)
            while batch_index < steps_per_epoch:
                rows = order[batch_index * cfg.batch:(batch_index + 1) * cfg.batch]
                share = cfg.batch // world
                rows = rows[rank * share:(rank + 1) * share]
                batch = {f: torch.from_numpy(train_split[f][rows]).to(device) for f in fields}
                shown: dict[str, float] = {}
                for st in plan.steps:
                    if global_step % st.every:
                        continue
                    opt = optimizers[st.name]
                    opt.zero_grad(set_to_none=True)
                    with unroll.unrolled(plan, st, steps, models, optimizers, lambda o: _fed(o, batch),
                                         cfg.clip_grad) if st.unroll else contextlib.nullcontext():
                        outs = as_dict([n for n, _ in st.graph.outputs], steps[st.name](**_fed(st, batch)))
                    outs["loss"].backward()
                    if world > 1:
                        _average_gradients(opt, world)
                    if cfg.clip_grad is not None:
                        torch.nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]],
                                                       cfg.clip_grad)
                    opt.step()
                    clip_weights(st.optimizer, opt)
                    schedules[st.name].step()
                    for k, v in outs.items():
                        key = k if len(plan.steps) == 1 else f"{st.name}.{k}"
                        value = float(v.detach())
                        sums[key] = sums.get(key, 0.0) + value * len(rows)
                        shown[key] = value
                count += len(rows)
                batch_index += 1
                global_step += 1
                ensembling.after_step(global_step, epoch)
                progress.update(len(rows) * world, **shown)
                at_limit = opts.max_steps is not None and global_step >= opts.max_steps
                if (interrupt.hit or at_limit) and batch_index < steps_per_epoch:
                    stopped = True
                    break
                if cfg.checkpoint_every and global_step % cfg.checkpoint_every == 0 and batch_index < steps_per_epoch:
                    save(False, {"epoch": epoch, "batch_index": batch_index, "global_step": global_step,
                                 "sums": sums, "count": count})
            progress.close()
            if stopped:
                save(False, {"epoch": epoch, "batch_index": batch_index, "global_step": global_step,
                             "sums": sums, "count": count})
                break
            train_metrics = _reduce(sums, count, world)
            val = evaluate(plan, steps, data.splits.get("val"), fields, cfg.eval_batch, device) if main else {}
            if main:  # the averaged weights' own metrics, `avg.<name>`
                val |= ensembling.val_metrics(lambda: evaluate(plan, steps, data.splits.get("val"), fields,
                                                               cfg.eval_batch, device))
            value = val.get(cfg.best, train_metrics.get(cfg.best))
            improved = value is not None and (best_value is None or
                                              (value > best_value if cfg.best_higher else value < best_value))
            if improved:
                best_value = value
            seconds = time.perf_counter() - t0
            lr = schedules[plan.steps[0].name].get_last_lr()[0]
            examples = count * world
            if main:  # the log line first: a kill before the checkpoint below repeats this epoch, and its line
                record = {"kind": "epoch", "epoch": epoch, "train": _derived(plan, train_metrics),
                          "val": _derived(plan, val), "lr": lr, "seconds": round(seconds, 3),
                          "examples_per_s": round(examples / max(seconds, 1e-9), 1), "best": improved}
                if cfg.test_each_epoch:
                    record["test"] = _derived(plan, evaluate(plan, steps, data.splits.get("test"), fields,
                                                             cfg.eval_batch, device))
                measured = _measure(plan, models, data, "val", out, epoch, False, device, epochs)
                if measured:
                    record["shows"] = measured
                log.write(record)
            done, epoch, batch_index, sums, count = epoch, epoch + 1, 0, {}, 0
            save(improved, {"epoch": epoch, "batch_index": 0, "global_step": global_step, "sums": {}, "count": 0})
            if main:
                if not opts.quiet:
                    print(report.epoch_line(done, epochs, record["train"], record["val"] or None, seconds,
                                            record["examples_per_s"], lr, improved), flush=True)
                report.plot_curves(log.records(), out / "curves.png", f"{plan.name} ({plan.path})")
                for show in plan.shows:
                    every = options(show.options).get("every", 1)
                    if show.kind != "confusion" and not evals.is_measure(show.kind) and \
                            (done % every == 0 or done == epochs):
                        samples.make(show, models, data.splits["test"], out, done, cfg.seed, device, data.meta)
            if interrupt.hit or (opts.max_steps is not None and global_step >= opts.max_steps):
                stopped = epoch <= epochs
                break

    # --- the end: best weights on the test split
    test: dict[str, float] = {}
    best_metrics: dict[str, float] = {}
    if main and not stopped:
        best_files = checkpoints.weight_paths(out, "best", [m.name for m in plan.models])
        if all(p.exists() for p in best_files.values()):
            from safetensors.torch import load_file
            for m in plan.models:
                models[m.name].load_state_dict(load_file(str(best_files[m.name])), strict=False)
        test = _derived(plan, evaluate(plan, steps, data.splits.get("test"), fields, cfg.eval_batch, device))
        best_metrics = _derived(plan, evaluate(plan, steps, data.splits.get("val"), fields, cfg.eval_batch, device))
        for show in plan.shows:
            if show.kind == "confusion":
                matrix = samples.confusion(show, models, data.splits["test"], cfg.eval_batch, device)
                labels = list(data.meta.get("classes", [str(i) for i in range(len(matrix))]))[:len(matrix)]
                labels += [str(i) for i in range(len(labels), len(matrix))]
                report.plot_confusion(matrix, labels, out / f"{show.name}.png", f"{plan.name}: test split")
        measured = _measure(plan, models, data, "test", out, epoch - 1, True, device, epochs)
        summary = {"train": plan.name, "spec": plan.path, "epochs": epoch - 1, "best": {cfg.best: best_value},
                   "val": best_metrics, "test": test, "shows": measured, "seconds": round(time.perf_counter() - started, 2),
                   "processes": world, "device": str(device), "notes": notes, **ensembling.final()}
        if d.kind == "text":
            summary["unigram_bits"] = data.meta.get("unigram_bits")
        report.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n", out / "summary.json")
        log.write({"kind": "test", "epoch": epoch - 1, "test": test, **({"shows": measured} if measured else {})})
    return Result(epoch - 1, test, best_metrics, time.perf_counter() - started, stopped, notes)


def _measure(plan: TrainPlan, models: Mapping[str, nn.Module], data: datasets.Dataset, split: str, out: Path,
             epoch: int, final: bool, device: torch.device, epochs: int) -> dict[str, dict[str, float]]:
    """The figures of the measuring shows due after `epoch` (all of them when `final`), on `split`."""
    figures: dict[str, dict[str, float]] = {}
    for show in plan.shows:
        if not evals.is_measure(show.kind):
            continue
        every = options(show.options).get("every", 1)
        if not final and epoch % every and epoch != epochs:
            continue
        gen = torch.Generator(device="cpu").manual_seed(plan.config.seed * 1000 + epoch + (500 if final else 0))
        ctx = evals.Context(show, models, data.splits[split], split, out, epoch, final, device,
                            plan.config.eval_batch, gen, data.meta, splits=data.splits)
        figures[show.name] = evals.run(ctx)
    return figures


def _fed(st, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {name: batch[name] for name, _ in st.graph.inputs}


@torch.no_grad()
def evaluate(plan: TrainPlan, steps: Mapping[str, nn.Module], split: Mapping[str, np.ndarray] | None,
             fields: list[str], batch: int, device: torch.device) -> dict[str, float]:
    """Every step's outputs over a split in eval mode, averaged over its examples."""
    if split is None:
        return {}
    n = len(split[fields[0]])
    if n == 0:
        return {}
    sums: dict[str, float] = {}
    for module in steps.values():
        module.eval()
    for start in range(0, n, batch):
        rows = {f: torch.from_numpy(split[f][start:start + batch]).to(device) for f in fields}
        size = len(next(iter(rows.values())))
        for st in plan.steps:
            with torch.enable_grad() if _differentiates(st) else contextlib.nullcontext():  # `grad` needs autograd
                outs = as_dict([name for name, _ in st.graph.outputs], steps[st.name](**_fed(st, rows)))
            for k, v in outs.items():
                key = k if len(plan.steps) == 1 else f"{st.name}.{k}"
                sums[key] = sums.get(key, 0.0) + float(v) * size
    for module in steps.values():
        module.train()
    return {k: v / n for k, v in sums.items()}


def _differentiates(st) -> bool:
    """A step whose objective takes a `grad` (FGSM examples, a gradient penalty): it runs with autograd on."""
    return any(node.op == "grad" for node in st.graph.nodes)


def _derived(plan: TrainPlan, metrics: Mapping[str, float]) -> dict[str, float]:
    """The metrics, plus for a language model (text data) perplexity = exp(loss), where the loss is a
    next-token cross-entropy in nats (exp of the epoch's mean, not the mean of per-batch exps)."""
    out = dict(metrics)
    if plan.data.kind != "text":
        return out
    for st in plan.steps:
        vid = dict(st.graph.outputs)["loss"]
        producer = st.graph.value(vid).producer
        key = "loss" if len(plan.steps) == 1 else f"{st.name}.loss"
        if producer is not None and st.graph.nodes[producer].op == "cross_entropy" and key in out:
            out["perplexity" if len(plan.steps) == 1 else f"{st.name}.perplexity"] = math.exp(min(out[key], 700.0))
    return out


def _reduce(sums: Mapping[str, float], count: int, world: int) -> dict[str, float]:
    if world > 1:
        keys = sorted(sums)
        t = torch.tensor([sums[k] for k in keys] + [float(count)], dtype=torch.float64)
        dist.all_reduce(t)
        return {k: float(t[i] / t[-1]) for i, k in enumerate(keys)}
    return {k: v / max(count, 1) for k, v in sums.items()}


def _world() -> tuple[int, int]:
    if "WORLD_SIZE" in os.environ and int(os.environ["WORLD_SIZE"]) > 1:
        if not dist.is_initialized():
            dist.init_process_group("gloo")
        return dist.get_world_size(), dist.get_rank()
    return 1, 0


def _device(name: str, rank: int) -> torch.device:
    if name == "cuda":
        if not torch.cuda.is_available():
            raise TrainError("--device cuda: this machine has no CUDA GPU that torch can use")
        return torch.device("cuda", rank % torch.cuda.device_count())
    return torch.device(name)


def _average_gradients(opt: torch.optim.Optimizer, world: int) -> None:
    """Each process computed the gradients of its share of the batch: replace them by their mean over
    the processes (one all-reduce of every gradient of the parameters this optimizer updates), so that
    every process takes the same update from the same weights."""
    grads = [p.grad for group in opt.param_groups for p in group["params"] if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()
