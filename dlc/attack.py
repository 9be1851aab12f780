"""`dlc attack`: what the command attacks, with what, on which images; the loop is dlc.runtime.attack.

    dlc attack SPEC --weights CKPT [--weights CKPT ...] --method fgsm|fgm|bim|pgd|fd|fd-group|fd-pca|transfer
    dlc attack ARTIFACT --method fd|fd-group|fd-pca|transfer ...

A spec with its checkpoint is a model the attacker holds (white-box methods), or, with a query-based
method, an oracle answering only its outputs; several --weights are an ensemble (the mean of the
members' probabilities: the notes' prediction-averaging defence), attacked as one model. An artifact
directory is the deployed model: only its outputs, through dlc.runtime; nothing here imports torch
or the compiler for it unless --substitute asks for a transfer attack's substitutes.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from dlc.runtime.attack import blackbox, loop, report
from dlc.runtime.attack.targets import ArtifactTarget, AttackError, Target


class Refused(Exception):
    """A located compiler diagnostic was already printed: exit status 1."""


def add_parser(sub) -> None:
    a = sub.add_parser("attack", help="adversarial examples against a model or a compiled artifact: "
                                      "`dlc attack SPEC --weights CKPT --method fgsm --eps 0.1 -o DIR`")
    a.add_argument("target", type=Path, metavar="SPEC|ARTIFACT",
                   help="a .arch file (with --weights) or an artifact directory from `dlc compile`")
    a.add_argument("--model", help="network of SPEC (default: the one the checkpoint was trained as, else the last)")
    a.add_argument("--weights", type=Path, action="append", default=[], metavar="CKPT",
                   help="SPEC's checkpoint; several: an ensemble, the mean of their probabilities")
    a.add_argument("--method", required=True, choices=loop.METHODS)
    a.add_argument("--eps", type=float, required=True, help="the perturbation's bound, in the norm of --norm")
    a.add_argument("--norm", choices=("linf", "l2"), default="linf",
                   help="bim, pgd and the fd methods (fgm is L2, fgsm Linf)")
    a.add_argument("--steps", type=int, default=None, help="iterations (bim, pgd: 10; fd methods: 1, one step of eps)")
    a.add_argument("--alpha", type=float, help="step size of an iterative attack (default 2.5 eps / steps)")
    a.add_argument("--random-start", action="store_true", help="start from a random point of the eps-ball (pgd always)")
    a.add_argument("--loss", choices=("xent", "logit"), default="xent",
                   help="xent: cross-entropy on the probabilities; logit: the margin on the logits")
    a.add_argument("--scores", choices=("logits", "probabilities"), default="logits",
                   help="what the model outputs (default logits)")
    a.add_argument("--target-class", dest="target_class", metavar="C|next",
                   help="make a targeted attack: every example towards class C, or `next` (label + 1 mod classes)")
    a.add_argument("--targeted", action="store_true", help="a targeted attack (needs --target-class)")
    a.add_argument("--components", type=int, help="fd-pca: principal components of the training images")
    a.add_argument("--group-size", type=int, help="fd-group: features per random group")
    a.add_argument("--delta", type=float, default=0.01, help="fd methods: the finite-difference probe (default 0.01)")
    a.add_argument("--substitute", action="append", default=[], metavar="[SPEC=]CKPT",
                   help="transfer: a model `dlc train` trained on the same data; several: an ensemble of them")
    a.add_argument("--via", choices=loop.WHITE_BOX, default="pgd", help="transfer: the method run on the substitutes")
    a.add_argument("--data", default="digits", metavar="digits|npz:FILE|images:DIR",
                   help="the images and labels (default digits, at the model's input size)")
    a.add_argument("--split", default="test", choices=("train", "val", "test"))
    a.add_argument("-n", "--examples", type=int, help="attack the split's first N examples (default all)")
    a.add_argument("--range", default=None, metavar="LOW,HIGH", help="valid input range (default: [0, 1]; "
                   "digits with scale tanh [-1, 1])")
    a.add_argument("--dim", action="append", default=[], metavar="SYM=N",
                   help="SPEC: a size for a symbolic input dim (default: the spec's example, e.g. H=28)")
    a.add_argument("--output-name", help="artifact output holding the class scores (when it has several)")
    a.add_argument("--batch", type=int, default=256, help="examples per model call")
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--quiet", action="store_true", help="no progress bar")
    a.add_argument("-o", "--output", type=Path, required=True, metavar="DIR", help="report.json, grid.png, adversarial.npz")


def command(args: argparse.Namespace, usage_error: type[Exception]) -> int:
    try:
        return _command(args)
    except AttackError as err:
        raise usage_error(str(err)) from None
    except Refused:
        return 1


def _command(args: argparse.Namespace) -> int:
    is_artifact = (args.target / "manifest.json").is_file()
    method = args.method
    if is_artifact and method in loop.WHITE_BOX:
        raise AttackError(f"{method} needs the model's gradients, and {args.target} is an artifact, which answers "
                          "queries only: use fd, fd-group or fd-pca (queries), transfer (--substitute), or attack "
                          "the spec with --weights")
    if not is_artifact and not args.target.is_file():
        raise AttackError(f"{args.target}: neither a spec file nor an artifact directory (no manifest.json)")
    if is_artifact and args.weights:
        raise AttackError("--weights belongs to a spec; an artifact carries its own weights")
    if method == "transfer" and not args.substitute:
        raise AttackError("transfer crafts the examples on substitutes: give --substitute CKPT (one or more)")
    if args.substitute and method != "transfer":
        raise AttackError("--substitute is for --method transfer")
    if args.targeted != (args.target_class is not None):
        raise AttackError("a targeted attack needs a target class: --targeted --target-class C (or `next`)"
                          if args.targeted else "--target-class makes the attack targeted: add --targeted")
    if method == "fd-pca" and args.components is None:
        raise AttackError("fd-pca needs --components N (principal components of the training images)")
    if method == "fd-group" and args.group_size is None:
        raise AttackError("fd-group needs --group-size K (features per random group)")
    if args.batch < 1:
        raise AttackError(f"--batch is at least 1, not {args.batch}")

    gradient, counter = None, None
    if is_artifact:
        target: Target = ArtifactTarget(args.target, args.scores, args.output_name, args.batch, _dims(args.dim))
    else:
        scorer, shape = _scorer(args.target, args.model, args.weights, args.scores, _dims(args.dim))
        from dlc.runtime.attack.whitebox import ModuleGradient, ModuleTarget

        target = ModuleTarget(scorer, str(args.target), shape, args.batch)
        if method in loop.WHITE_BOX:
            gradient = ModuleGradient(scorer, args.loss, args.targeted, args.batch)
    if method == "transfer":
        substitutes = [_substitute(s, args.scores, _dims(args.dim)) for s in args.substitute]
        from dlc.runtime.attack.whitebox import ModuleGradient, Scorer

        shapes = {shape for _, shape in substitutes}
        if shapes != {target.input_shape}:
            raise AttackError(f"the substitutes take {sorted(shapes)}, the target {list(target.input_shape)}")
        modules = [m for s, _ in substitutes for m in s.modules]
        kinds = [k for s, _ in substitutes for k in s.kinds]
        gradient = ModuleGradient(Scorer(modules, kinds), args.loss, args.targeted, args.batch)
    if gradient is not None:
        counter = lambda: gradient.gradients  # noqa: E731

    x, labels, train, meta, (low, high) = _examples(args, target.input_shape)
    steps = args.steps if args.steps is not None else (10 if (args.via if method == "transfer" else method)
                                                      in ("bim", "pgd") else 1)
    attack = loop.settle(loop.Attack(
        method=method, eps=args.eps, norm=args.norm, steps=steps, alpha=args.alpha, random_start=args.random_start,
        loss=args.loss, targeted=args.targeted, low=low, high=high, delta=args.delta, group_size=args.group_size,
        components=args.components, via=args.via, seed=args.seed), int(np.prod(target.input_shape)))
    classes_n = target(x[:1]).shape[1]
    target.queries = 0  # the width probe above is not part of the attack
    classes = _classes(args.target_class, labels, classes_n) if args.targeted else labels
    u = None
    if method in loop.QUERY_BASED:
        u = blackbox.directions(loop.QUERY_BASED[method], int(np.prod(target.input_shape)),
                                np.random.default_rng(args.seed), args.group_size, args.components, train)

    bar = None
    if not args.quiet:
        from tqdm import tqdm

        bar = tqdm(total=len(x), unit="ex", desc=f"{method} eps={args.eps:g}", file=sys.stderr)
    try:
        outcome = loop.run(attack, target, x, labels, classes, gradient, u, progress=bar.update if bar else None,
                           counter=counter)
    finally:
        if bar:
            bar.close()
    extra: dict[str, Any] = {"data": args.data, "split": args.split, "scores": target.kind,
                             "directions": None if u is None else int(len(u)),
                             "queries_per_estimate": None if u is None else 2 * int(len(u))}
    if args.weights:
        extra["weights"] = [str(w) for w in args.weights]
    if args.substitute:
        extra["substitutes"] = list(args.substitute)
    record = report.write(args.output, attack, str(args.target), outcome, extra, meta.get("classes"))
    _print(record["figures"], args.output)
    return 0


def _print(f: dict[str, Any], out: Path) -> None:
    print(f"examples {f['examples']}  clean accuracy {f['clean_accuracy']:.4f}  adversarial accuracy "
          f"{f['adversarial_accuracy']:.4f}  success {f['success_rate']:.4f} of {f['attacked']}")
    print(f"perturbation L2 mean {f['l2_mean']:.4f} max {f['l2_max']:.4f}  Linf mean {f['linf_mean']:.4f} "
          f"max {f['linf_max']:.4f}  queries/example {f['queries_per_example']:.1f}  ({out / 'report.json'})")


def _classes(wanted: str, labels: np.ndarray, n: int) -> np.ndarray:
    if wanted == "next":
        return (labels + 1) % n
    if not wanted.isdigit() or not 0 <= int(wanted) < n:
        raise AttackError(f"--target-class is a class index in [0, {n}) or `next`, not `{wanted}`")
    return np.full_like(labels, int(wanted))


def _examples(args: argparse.Namespace, shape: tuple[int, ...]):
    """(images, labels, training images, data meta, (low, high)) of --data at the model's input shape."""
    from dlc.runtime.train.data import DataError, load

    kind, _, path = args.data.partition(":")
    options: dict[str, Any] = {}
    if kind == "digits":
        if path:
            raise AttackError("--data digits is built in and takes no path")
        if len(shape) != 3 or shape[1] != shape[2] or shape[0] not in (1, 3):
            raise AttackError(f"--data digits are square grey (or 3-channel) images; the model takes {list(shape)}")
        options = {"size": shape[1], "channels": shape[0]}
    elif kind in ("npz", "images"):
        if not path:
            raise AttackError(f"--data {kind} needs a path: --data {kind}:PATH")
        options = {"path": path}
        if kind == "images":
            options.update(size=shape[-1], channels=shape[0])
    else:
        raise AttackError(f"--data is digits, npz:FILE or images:DIR, not `{args.data}`")
    try:
        data = load(kind, options)
    except DataError as err:
        raise AttackError(str(err)) from None
    image = next((f for f in data.fields if f.dtype == "f32" and tuple(f.shape) == tuple(shape)), None)
    label = next((f for f in data.fields if f.dtype == "i64" and f.shape == ()), None)
    if image is None or label is None:
        have = ", ".join(f"{f.name} {f.dtype}{list(f.shape)}" for f in data.fields)
        raise AttackError(f"--data {args.data} needs an f32{list(shape)} image field and an i64 label field; "
                          f"it has {have}")
    split = data.splits[args.split]
    x, y = split[image.name], split[label.name]
    if args.examples is not None:
        if args.examples < 1:
            raise AttackError(f"-n is at least 1, not {args.examples}")
        x, y = x[:args.examples], y[:args.examples]
    if len(x) == 0:
        raise AttackError(f"--data {args.data} has no {args.split} examples")
    low, high = _range(args.range)
    seen = (float(x.min()), float(x.max()))
    if seen[0] < low - 1e-6 or seen[1] > high + 1e-6:
        raise AttackError(f"the {args.split} images lie in [{seen[0]:g}, {seen[1]:g}], outside the valid range "
                          f"[{low:g}, {high:g}]: give the data's range with --range LOW,HIGH")
    return x.astype(np.float32), y.astype(np.int64), data.splits["train"][image.name], dict(data.meta), (low, high)


def _range(text: str | None) -> tuple[float, float]:
    if text is None:
        return 0.0, 1.0
    try:
        low, high = (float(v) for v in text.split(","))
    except ValueError:
        raise AttackError(f"--range expects LOW,HIGH, got `{text}`") from None
    if not low < high:
        raise AttackError(f"--range {text}: LOW must be below HIGH")
    return low, high


def _dims(items: list[str]) -> dict[str, int]:
    from dlc.cli import UsageError, _dims as parse

    try:
        return parse(items)
    except UsageError as err:
        raise AttackError(str(err)) from None


def _scorer(spec: Path, model: str | None, weights: list[Path], scores: str, dims: dict[str, int]):
    """A white-box Scorer of SPEC with each checkpoint (several: an ensemble), and its input shape."""
    if not weights:
        raise AttackError(f"attacking {spec} needs its trained weights: --weights CKPT")
    from dlc.runtime.attack.whitebox import Scorer

    modules, shapes = [], set()
    for ckpt in weights:
        module, shape = _module(spec, model, ckpt, dims)
        modules.append(module)
        shapes.add(shape)
    if len(shapes) != 1:
        raise AttackError(f"the --weights build models with different inputs: {sorted(shapes)}")
    return Scorer(modules, [scores] * len(modules)), shapes.pop()


def _substitute(item: str, scores: str, dims: dict[str, int]):
    spec, sep, ckpt = item.rpartition("=")
    ckpt_path = Path(ckpt)
    if not sep:
        spec = _meta(ckpt_path).get("dlc_spec")
        if not spec:
            raise AttackError(f"--substitute {item}: the checkpoint does not name its spec (not written by "
                              "`dlc train`): pass SPEC=CKPT")
    return _scorer(Path(spec), None, [ckpt_path], scores, dims)


def _meta(ckpt: Path) -> dict[str, str]:
    if not ckpt.is_file():
        raise AttackError(f"{ckpt}: no such checkpoint")
    try:
        from safetensors import safe_open

        with safe_open(str(ckpt), "np") as f:
            return dict(f.metadata() or {})
    except Exception as err:  # noqa: BLE001 - any unreadable file is the user's, said plainly
        raise AttackError(f"{ckpt}: not a safetensors checkpoint ({err})") from None


def _module(spec: Path, model: str | None, ckpt: Path, dims: dict[str, int]):
    """The PyTorch module of SPEC's network with the checkpoint's weights (checked against the IR)."""
    import torch

    from dlc.cli import _report_one, _trained, _one_network
    from dlc.compiler.checkpoint import CheckpointError, load_weights, tie_aliases
    from dlc.compiler.emit.torch import torch_module

    meta = _meta(ckpt)
    network, params = _trained(argparse.Namespace(weights=ckpt, torch_load=False, weights_from=None, model=model))
    compiled = _one_network(spec, network, params)
    if compiled is None:
        raise Refused()
    result, graph = compiled
    try:
        weights = load_weights(graph, ckpt)
    except CheckpointError as err:
        _report_one(err.diag, result, getattr(err, "sources", None))
        raise Refused() from None
    module = torch_module(spec, graph.name, **(params or {}))
    missing, unexpected = module.load_state_dict(
        {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in weights.items()}, strict=False)
    if unexpected or set(missing) - set(tie_aliases(graph)):  # load_weights checked them: a bug if not
        raise RuntimeError(f"checkpoint keys do not fit the module: {unexpected or missing}")
    if len(graph.inputs) != 1:
        raise AttackError(f"{spec}: network {graph.name} has {len(graph.inputs)} inputs; an attack perturbs one image")
    from dlc.compiler.pipeline import compile_file
    from dlc.compiler.sizes import trained_sizes

    env = {**dict(graph.dim_examples), **trained_sizes(compile_file(spec).trains, meta.get("dlc_train"), graph),
           **dims}
    sizes = graph.type_of(graph.inputs[0][1]).shape[1:]
    free = sorted({str(d) for d in sizes if not d.is_const and not _bound(d, env)})
    if free:
        raise AttackError(f"{spec}: network {graph.name}'s input has symbolic sizes {', '.join(free)} with no "
                          "example in the spec: give them with --dim SYM=N")
    return module, tuple(int(d.evaluate(env)) for d in sizes)


def _bound(d, env: dict[str, int]) -> bool:
    try:
        d.evaluate(env)
        return True
    except KeyError:  # a symbol with no size
        return False
