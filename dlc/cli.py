"""The `dlc` command: argument parsing and printing only.

Compiling, binding sizes to symbolic dims (`compiler/sizes.py`), checking checkpoints and every
diagnostic belong to the compiler (`dlc.compiler`), running artifacts to the runtime. Exit status:
1 after the compiler's located diagnostics (a mistake in a spec or checkpoint), 2 for a usage
error (a bad flag value, printed `error: ...`), 101 for an internal compiler error (a bug).

Each command imports the compiler where it needs it, so that `dlc run` imports only the runtime
(`dlc.runtime`: numpy and TVM's runtime library, no compiler, no lark, no torch) and starts as
fast as `dlc-run` (benchmarks/startup.py measures both).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import traceback
from pathlib import Path
from typing import Any, Sequence


DEFAULT_TRIALS = 2000  # README: what this buys for ResNet-18 and the digits CNN (35 and 16 min here)
# --tune's search stops at this wall-clock limit unless --tune-minutes says otherwise: with the check
# of the records and the build, a compile with the default tuning ends within 15 minutes
DEFAULT_TUNE_MINUTES = 12.0


class UsageError(Exception):
    """A bad command-line value; printed as `error: ...` with exit status 2."""


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = _run_parser() if argv[:1] == ["run"] else _parser()  # the others' parsers import the compiler
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        return args.run(args)
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except _remote_error() as err:  # the tracker or the device of --rpc
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `dlc explain | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception:  # a compiler bug, not a user mistake: say so plainly
        print("error: internal compiler error (this is a bug in dlc, please report it)\n", file=sys.stderr)
        traceback.print_exc()
        return 101


def _remote_error() -> type[Exception]:
    """The error of --rpc's tracker or device; matched only once an exception is raised (the module
    is a small one, but it is the compiler's, which `dlc run` does not import)."""
    from dlc.compiler.backends.tvm.remote import RemoteError

    return RemoteError


def _parser() -> argparse.ArgumentParser:
    p, sub = _top_parser()
    _add_compiler_commands(sub)
    _add_run_command(sub)
    return p


def _run_parser() -> argparse.ArgumentParser:
    """The parser of `dlc run ...`: the same `run` command alone (its usage, help and errors are
    the same: the subcommand's prog is `dlc run` either way)."""
    p, sub = _top_parser()
    _add_run_command(sub)
    return p


def _top_parser() -> tuple[argparse.ArgumentParser, Any]:
    p = argparse.ArgumentParser(prog="dlc", description="Declarative deep-learning model compiler.")
    return p, p.add_subparsers(title="commands", metavar="COMMAND")


def _add_compiler_commands(sub) -> None:
    from dlc.compiler.backends.tvm.targets import TARGET_NAMES

    check = sub.add_parser("check", help="validate .arch files (silent on success)")
    check.add_argument("files", nargs="+", type=Path, metavar="FILE")
    check.set_defaults(run=cmd_check, command="check")

    summary = sub.add_parser("summary", help="per-layer table of shapes, parameters and FLOPs")
    summary.add_argument("file", type=Path, metavar="FILE")
    summary.add_argument("--model", help="network to summarize (default: the last one in the file)")
    summary.add_argument("--input-shape", action="append", default=[], metavar="[NAME=]D0,D1,...",
                         help="concrete input shape, binding the input's symbolic dims; repeatable")
    summary.add_argument("--dim", action="append", default=[], metavar="SYM=N", help="size of a symbolic dim")
    summary.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                         help="compile the network with this parameter value (a literal: 10, 0.5, true, "
                              "\"relu\", [6, 12, 24, 16]); repeatable")
    summary.add_argument("--symbolic", action="store_true", help="show symbolic output shapes")
    summary.add_argument("--json", action="store_true", help="machine-readable output")
    summary.set_defaults(run=cmd_summary, command="summary")

    emit = sub.add_parser("emit", help="write backend source: `dlc emit torch SPEC... -o DIR`")
    emit.add_argument("backend", choices=["torch"])
    emit.add_argument("files", nargs="+", type=Path, metavar="FILE")
    emit.add_argument("-o", "--output", type=Path, required=True, metavar="DIR", help="directory for <spec>.py files")
    emit.add_argument("--standalone", action="store_true",
                      help="copy the helper layers into each file instead of importing dlc.runtime.layers")
    emit.set_defaults(run=cmd_emit, command="emit")

    export = sub.add_parser("export", help="export a network: `dlc export onnx SPEC -o model.onnx`")
    export.add_argument("format", choices=["onnx"])
    export.add_argument("file", type=Path, metavar="FILE")
    export.add_argument("--model", help="network to export (default: every network of the file)")
    _weight_options(export)
    export.add_argument("--seed", type=int, default=0, help="seed of the random initialization without --weights")
    export.add_argument("--external-data", action="store_true", help="store weights in <out>.data (automatic over 2 GB)")
    export.add_argument("-o", "--output", type=Path, required=True, metavar="OUT",
                        help="a .onnx file, or a directory that receives <Network>.onnx for each network")
    export.set_defaults(run=cmd_export, command="export")

    comp = sub.add_parser("compile", help="build a deployable TVM artifact: `dlc compile SPEC --target llvm -o DIR`")
    comp.add_argument("file", type=Path, metavar="FILE")
    comp.add_argument("--target", default="llvm", choices=TARGET_NAMES,
                      help="llvm: this CPU; cuda: an NVIDIA GPU (--arch); aarch64: cross-built for Linux on Arm")
    comp.add_argument("--arch", help="CUDA architecture, e.g. sm_90")
    comp.add_argument("--target-json", metavar="JSON", help="a full TVM target as JSON (overrides --target)")
    _compile_options(comp)
    comp.add_argument("-o", "--output", type=Path, required=True, metavar="DIR", help="artifact directory")
    comp.set_defaults(run=cmd_compile, command="compile")

    bench = sub.add_parser("bench", help="time an artifact (or a spec, compiled for this CPU) against eager "
                                         "PyTorch and ONNX Runtime")
    bench.add_argument("file", type=Path, metavar="SPEC_OR_ARTIFACT")
    _compile_options(bench)
    bench.add_argument("--spec", type=Path, help="the artifact's spec, if it moved since `dlc compile`")
    bench.add_argument("--threads", type=int, default=None, help="threads for every backend (default: all cores)")
    bench.add_argument("--runs", type=int, default=50, help="timed calls per backend (default 50)")
    bench.add_argument("--warmup", type=int, default=5, help="untimed calls first (default 5)")
    bench.add_argument("--json", action="store_true", help="machine-readable output")
    bench.set_defaults(run=cmd_bench, command="bench", target="llvm", arch=None, target_json=None)

    tr = sub.add_parser("train", help="run a spec's `train` definition: `dlc train SPEC -o runs/NAME`")
    tr.add_argument("file", type=Path, metavar="SPEC")
    tr.add_argument("--train", dest="train_name", metavar="NAME",
                    help="the training definition to run (default: the first one in the file)")
    tr.add_argument("-o", "--output", type=Path, metavar="DIR", help="run directory (default: runs/<NAME>)")
    tr.add_argument("--resume", action="store_true", help="go on from DIR/last.state.pt (after a kill or Ctrl-C)")
    tr.add_argument("--epochs", type=int, metavar="N", help="train N epochs instead of `config epochs`")
    tr.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="where to train (default: cpu)")
    tr.add_argument("--nproc", type=int, default=1, metavar="N",
                    help="N processes on torch.distributed (torchrun; gloo on CPU), sharing each batch")
    tr.add_argument("--max-steps", type=int, metavar="N", help="stop after N batches, checkpointing (smoke runs)")
    tr.add_argument("--data", metavar="KIND[:PATH]",
                    help="read this data instead of the definition's: digits, text[:FILE], npz:FILE, images:DIR "
                         "(checked against the declared inputs before training)")
    tr.add_argument("--quiet", action="store_true", help="no progress bars or epoch lines")
    tr.set_defaults(run=cmd_train, command="train")

    convert = sub.add_parser("convert-weights", help="rename a torchvision or Hugging Face checkpoint's keys into "
                                                     "a dlc checkpoint: `dlc convert-weights SPEC CKPT --from SOURCE -o OUT`")
    convert.add_argument("file", type=Path, metavar="SPEC")
    convert.add_argument("weights", type=Path, metavar="CKPT",
                         help="the source checkpoint (safetensors; with --torch-load, a torch.save file)")
    convert.add_argument("--from", dest="weights_from", required=True, metavar="SOURCE|MAP.toml",
                         help="whose keys CKPT has: torchvision, huggingface, a key map's name or path")
    convert.add_argument("--torch-load", action="store_true", help=TORCH_LOAD_HELP)
    convert.add_argument("--model", help="network the weights are for (default: the last one in the file)")
    convert.add_argument("-o", "--output", type=Path, required=True, metavar="OUT.safetensors",
                         help="the checkpoint under the network's weight names, for --weights")
    convert.set_defaults(run=cmd_convert_weights, command="convert-weights")

    explain = sub.add_parser("explain", help="explain a diagnostic code, with an example: `dlc explain E0401`")
    explain.add_argument("code", nargs="?", metavar="CODE", help="e.g. E0401 (alone: list every code)")
    explain.set_defaults(run=cmd_explain, command="explain")

    from dlc.attack import add_parser as add_attack

    add_attack(sub)
    sub.choices["attack"].set_defaults(run=cmd_attack, command="attack")

    from dlc.board import add_parser as add_board
    from dlc.package import add_parser as add_package

    add_package(sub)
    add_board(sub)


def _add_run_command(sub) -> None:
    from dlc.runtime.__main__ import add_arguments as add_run_arguments

    run = sub.add_parser("run", help="run a compiled artifact on .npy inputs (as `dlc-run` does on a device)")
    add_run_arguments(run)
    run.set_defaults(run=cmd_run, command="run")


TORCH_LOAD_HELP = ("read CKPT with torch.load(weights_only=True) instead of as safetensors: a .pt/.pth/.bin "
                   "state_dict (an explicit opt-in: imports torch, and unpickles, if only tensors and plain containers)")


def _weight_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", type=Path, metavar="CKPT", help="checkpoint (safetensors; its keys: the state_dict's)")
    p.add_argument("--weights-from", metavar="SOURCE|MAP.toml",
                   help="CKPT has another implementation's keys: torchvision, huggingface, or a key map's name or path")
    p.add_argument("--torch-load", action="store_true", help=TORCH_LOAD_HELP)


def _compile_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="network to compile (default: the last one in the file)")
    _weight_options(p)
    p.add_argument("--seed", type=int, default=0, help="seed of the random initialization without --weights")
    p.add_argument("--tune", type=int, nargs="?", const=DEFAULT_TRIALS, metavar="TRIALS",
                   help=f"MetaSchedule-tune with this many trials in all (alone: {DEFAULT_TRIALS}); "
                        "binds symbolic dims (--dim, else the spec's examples)")
    p.add_argument("--tune-minutes", type=float, metavar="M",
                   help=f"with --tune: stop the search after M minutes of wall-clock time, trials left or not "
                        f"(default {DEFAULT_TUNE_MINUTES:g}; 0: no limit); a rerun goes on where it stopped")
    p.add_argument("--tune-db", type=Path, metavar="DIR",
                   help="tuning database, reused across runs and models (default: ~/.cache/dlc/tuning/<target>)")
    p.add_argument("--rpc", metavar="HOST:PORT",
                   help="with --tune: measure candidates on a device through this TVM RPC tracker (cross targets too)")
    p.add_argument("--device-key", metavar="KEY", help="with --rpc: the device's key at the tracker")
    p.add_argument("--winograd", action="store_true",
                   help="with --tune: 3x3 convolutions of >= 128 channels as Winograd (faster; a NaN or Inf input "
                        "makes whole output tiles NaN instead of only the outputs that depend on it)")
    p.add_argument("--dim", action="append", default=[], metavar="SYM=N",
                   help="build for a fixed size of a symbolic dim (others take the spec's examples)")


def _report(result) -> None:
    from dlc.compiler.diagnostics import render_all

    print(render_all(list(result.diagnostics), result.sources, color=sys.stderr.isatty()), end="", file=sys.stderr)


def _report_one(diag, result, sources=None) -> None:
    """One diagnostic; `sources` when it quotes a file that is no spec (a key map's CheckpointError)."""
    from dlc.compiler.diagnostics import render_all

    print(render_all([diag], sources or result.sources, color=sys.stderr.isatty()), end="", file=sys.stderr)


def cmd_check(args: argparse.Namespace) -> int:
    from dlc.compiler.pipeline import compile_file

    failed = False
    for path in args.files:
        result = compile_file(path)
        if not result.ok:
            _report(result)
            failed = True
    return 1 if failed else 0


def _one_network(path: Path, model: str | None, params: dict | None = None):
    """(compilation, graph) of `model` (default: the file's last network), or None after reporting."""
    from dlc.compiler.diagnostics import CompileError
    from dlc.compiler.pipeline import ParamError, compile_file, default_graph

    try:
        result = compile_file(path, model, params=params)
    except ParamError as err:
        raise UsageError(str(err)) from None
    if not result.ok:
        _report(result)
        return None
    try:
        return result, default_graph(result, model)
    except CompileError as err:
        print(err.render(color=sys.stderr.isatty()), end="", file=sys.stderr)
        return None


def _trained(args: argparse.Namespace) -> tuple[str | None, dict | None]:
    """(network, parameters) to compile: `--model`, and for a `--weights` file that `dlc train` wrote
    (a model built with arguments, e.g. `Generator(nz=64, size=16)`) the network and arguments its
    metadata records (`dlc_network`, `dlc_params`), so that the checkpoint fits; else no parameters."""
    if not args.weights or args.torch_load or args.weights_from or not args.weights.is_file():
        return args.model, None
    try:
        from safetensors import safe_open

        with safe_open(str(args.weights), "np") as f:
            meta = f.metadata() or {}
        params = json.loads(meta["dlc_params"]) if "dlc_params" in meta else None
    except Exception:  # not a dlc_train file (load_weights reports an unreadable one)
        return args.model, None
    network = meta.get("dlc_network")
    if params is None or (args.model is not None and args.model != network):
        return args.model, None
    return network, {k: tuple(v) if isinstance(v, list) else v for k, v in params.items()} or None


def _trained_input_sizes(args: argparse.Namespace, graph) -> dict[str, int]:
    """Sizes of `graph`'s symbolic input dims that the `--weights` checkpoint's training definition
    declares (its metadata names the spec and the definition); empty for any other checkpoint."""
    if not args.weights or args.torch_load or args.weights_from or not args.weights.is_file():
        return {}
    try:
        from safetensors import safe_open

        with safe_open(str(args.weights), "np") as f:
            meta = f.metadata() or {}
    except Exception:  # noqa: BLE001 - not a dlc train file (load_weights reports an unreadable one)
        return {}
    from dlc.compiler.pipeline import compile_file
    from dlc.compiler.sizes import trained_sizes

    return trained_sizes(compile_file(args.file).trains, meta.get("dlc_train"), graph)


def _weights(args: argparse.Namespace, graph):
    """The `--weights` checkpoint (renamed by `--weights-from`) checked against `graph`, or the
    `--seed` initialization."""
    from dlc.compiler.checkpoint import load_weights
    from dlc.compiler.keymaps import KeyMapNotFound

    if not args.weights and (args.weights_from or args.torch_load):
        raise UsageError("--weights-from and --torch-load read the checkpoint of --weights: pass --weights CKPT")
    notes: list[str] = []
    try:
        weights = load_weights(graph, args.weights, args.weights_from, args.torch_load, getattr(args, "seed", 0), notes)
    except KeyMapNotFound as err:
        raise UsageError(str(err)) from None
    for note in notes:
        print(f"warning: {note}", file=sys.stderr)
    return weights


def _weights_record(args: argparse.Namespace) -> dict:
    """Where an artifact's weights came from, as its manifest says (and `dlc bench` reloads them)."""
    if not args.weights:
        return {"seed": args.seed}
    record = {"checkpoint": str(args.weights.resolve())}
    if args.weights_from:
        from dlc.compiler.keymaps import is_keymap_path

        wanted = args.weights_from
        record["key_map"] = str(Path(wanted).resolve()) if is_keymap_path(wanted) else wanted
    if args.torch_load:
        record["torch_load"] = True
    return record


def cmd_summary(args: argparse.Namespace) -> int:
    from dlc.compiler.passes.cost import count_costs
    from dlc.compiler.report import summary_json, summary_table
    from dlc.compiler.sizes import SizeError, bind_sizes

    compiled = _one_network(args.file, args.model, _params(args.param))
    if compiled is None:
        return 1
    _, graph = compiled
    dims, shapes = _dims(args.dim), [_input_shape(item) for item in args.input_shape]
    try:
        cost = count_costs(graph, bind_sizes(graph, dims, shapes))
    except SizeError as err:
        raise UsageError(str(err)) from None
    if args.json:
        print(json.dumps(summary_json(graph, cost), indent=2))
    else:
        print(summary_table(graph, cost, args.symbolic), end="")
    return 0


def cmd_emit(args: argparse.Namespace) -> int:
    """Compile every file first; write nothing unless all succeed, and each file atomically."""
    from dlc.compiler.emit.torch import emit_torch
    from dlc.compiler.errors import EmitError
    from dlc.compiler.pipeline import compile_file

    sources: dict[Path, str] = {}
    failed = False
    for path in args.files:
        result = compile_file(path)
        if not result.ok:
            _report(result)
            failed = True
            continue
        try:
            sources[args.output / f"{path.stem}.py"] = emit_torch(result, standalone=args.standalone)
        except EmitError as err:
            _report_one(err.diag, result)
            failed = True
    if failed:
        return 1
    args.output.mkdir(parents=True, exist_ok=True)
    for target, text in sources.items():
        _write_atomic(target, text)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from dlc.compiler.emit.onnx import build_onnx, save_onnx
    from dlc.compiler.errors import EmitError
    from dlc.compiler.checkpoint import CheckpointError
    from dlc.compiler.pipeline import compile_file

    model, params = _trained(args)
    result = compile_file(args.file, model, params=params)
    if not result.ok:
        _report(result)
        return 1
    graphs = [result.graphs[model]] if model else list(result.graphs.values())
    single = args.output.suffix == ".onnx"
    if single and len(graphs) > 1:
        names = ", ".join(g.name for g in graphs)
        raise UsageError(f"`{args.file}` has several networks ({names}): pass --model or an output directory")
    if args.weights and len(graphs) > 1:
        raise UsageError("--weights belongs to one network: pass --model")
    models = {}
    try:
        for graph in graphs:
            weights = _weights(args, graph)
            target = args.output if single else args.output / f"{graph.name}.onnx"
            models[target] = build_onnx(graph, weights)
    except (CheckpointError, EmitError) as err:
        _report_one(err.diag, result, getattr(err, "sources", None))
        return 1
    for target, model in models.items():
        save_onnx(model, target, external=True if args.external_data else None)
    return 0


def cmd_compile(args: argparse.Namespace) -> int:
    return 0 if _compile(args, args.output) else 1


def _compile(args: argparse.Namespace, output: Path) -> bool:
    """Compile `args.file` into the artifact directory `output`; False after reporting an error."""
    from dlc.compiler.errors import EmitError
    from dlc.compiler.backends.tvm.artifact import write_artifact
    from dlc.compiler.backends.tvm.build import build
    from dlc.compiler.backends.tvm.targets import resolve_target
    from dlc.compiler.checkpoint import CheckpointError
    from dlc.compiler.sizes import SizeError, static_sizes

    compiled = _one_network(args.file, *_trained(args))
    if compiled is None:
        return False
    result, graph = compiled
    try:
        spec = resolve_target(args.target, args.arch, args.target_json)
    except (ValueError, json.JSONDecodeError) as err:
        raise UsageError(str(err)) from None
    dims = _dims(args.dim)
    trained = _trained_input_sizes(args, graph)  # a dlc train checkpoint: the sizes it was trained at
    if (args.rpc or args.device_key) and args.tune is None:
        raise UsageError("--rpc and --device-key say where --tune measures; give --tune N too")
    if args.tune_minutes is not None and args.tune is None:
        raise UsageError("--tune-minutes limits the search that --tune N runs; give --tune N too")
    if args.winograd and args.tune is None:
        raise UsageError("--winograd chooses how a tuned build computes the wide 3x3 convolutions; give --tune N too")
    tuning, spec = _tuning(args, spec) if args.tune is not None else (None, spec)
    try:  # tuned schedules are for static shapes: --tune fixes every dim (--dim, else trained or example sizes)
        static = static_sizes(graph, {**trained, **dims}) if dims or tuning else None
    except SizeError as err:
        raise UsageError(str(err)) from None
    try:
        weights = _weights(args, graph)
        built = build(graph, weights, spec, result.content_hash(), result.path, tuning=tuning, dims=static)
    except (CheckpointError, EmitError) as err:
        _report_one(err.diag, result, getattr(err, "sources", None))
        return False
    built.manifest["weights_from"] = _weights_record(args)
    if static is None:  # a symbolic build: run (`dlc bench`, `dlc attack`) at the trained sizes by default
        built.manifest["dims"].update(trained)
    try:
        write_artifact(built, spec, output)
    except OSError as err:  # disk full, permission denied: nothing half-written is left at `output`
        print(f"error: cannot write `{output}`: {err.strerror or err}", file=sys.stderr)
        return False
    if built.tuning is not None:
        from dlc.compiler.backends.tvm.tune import describe

        describe(built.tuning, sys.stderr)
    return True


def cmd_train(args: argparse.Namespace) -> int:
    from dlc.compiler.diagnostics import CompileError
    from dlc.compiler.pipeline import compile_file

    if args.nproc < 1 or (args.epochs is not None and args.epochs < 1) or (args.max_steps is not None and args.max_steps < 1):
        raise UsageError("--nproc, --epochs and --max-steps take a positive number")
    result = compile_file(args.file)
    if not result.ok:
        _report(result)
        return 1
    plans = result.trains
    if not plans:
        raise UsageError(f"{args.file} has no `train` definition (docs/language.md, \"Training definitions\")")
    name = args.train_name or list(plans)[0]
    if name not in plans:
        raise UsageError(f"{args.file} has no training definition `{name}`; it has {', '.join(plans)}")
    out = args.output or Path("runs") / name
    if args.resume and not (out / "last.state.pt").is_file():
        raise UsageError(f"--resume: {out} holds no run to resume (no last.state.pt)")
    if not args.resume and (out / "last.state.pt").exists() and "LOCAL_RANK" not in os.environ:
        raise UsageError(f"{out} holds a run already: pass --resume to go on with it, or another -o")
    plan = plans[name] if args.data is None else _with_data(plans[name], args.data)
    if args.nproc > 1:
        return _torchrun(args)
    from dlc.runtime.train import data as datasets
    from dlc.runtime.train.loop import Options, train
    from dlc.runtime.train.modules import TrainError

    try:
        done = train(result, plan, Options(out, args.resume, args.device, args.quiet, args.epochs,
                                                  args.max_steps))
    except CompileError as err:  # the objective needs what the PyTorch emitter cannot write (E0601)
        if os.environ.get("RANK", "0") == "0":
            print(err.render(color=sys.stderr.isatty()), end="", file=sys.stderr)
        return 1
    except (TrainError, datasets.DataError) as err:
        if os.environ.get("RANK", "0") == "0":  # under torchrun every process finds the same mistake
            print(f"error: {err}", file=sys.stderr)
        return 1
    if os.environ.get("RANK", "0") == "0":
        for note in done.notes:
            print(f"note: {note}", file=sys.stderr)
    if done.interrupted:
        print(f"stopped after epoch {done.epochs}: {out}/last.state.pt saved; `dlc train {args.file} -o {out} "
              f"--resume` goes on", file=sys.stderr)
        return 130 if done.interrupted and args.max_steps is None else 0
    if os.environ.get("RANK", "0") == "0":
        test = "  ".join(f"{k} {v:.4f}" for k, v in sorted(done.test.items()))
        print(f"test: {test}  ({done.seconds:.1f} s; {out}/summary.json)")
    return 0


def _with_data(plan, text: str):
    """The plan reading `--data KIND[:PATH]`: options the new kind shares with the definition's data
    are kept, the others take their defaults; the runtime checks the fields against the inputs."""
    import dataclasses

    from dlc.compiler.ir.train import Option, options
    from dlc.compiler.passes.train import DATASETS, REQUIRED

    kind, _, path = text.partition(":")
    if kind not in DATASETS:
        raise UsageError(f"--data {text}: unknown data set `{kind}`; the kinds are {', '.join(DATASETS)}")
    given = options(plan.data.options)
    values = {}
    for key, arg in DATASETS[kind].items():
        if key == "path":
            value = path or (given.get(key, arg.default) if kind == plan.data.kind else arg.default)
        else:
            value = given.get(key, arg.default)
        if value is REQUIRED:
            raise UsageError(f"--data {text}: `{kind}` needs a path: --data {kind}:PATH")
        try:
            values[key] = arg.check(value)
        except ValueError as err:
            raise UsageError(f"--data {text}: `{key}` {err}") from None
    if path and "path" not in DATASETS[kind]:
        raise UsageError(f"--data {text}: `{kind}` is built in and takes no path")
    return dataclasses.replace(plan, data=dataclasses.replace(
        plan.data, kind=kind, options=tuple(Option(k, v) for k, v in values.items())))


def _torchrun(args: argparse.Namespace) -> int:
    """The same command under torchrun, N processes on this machine (gloo on CPU)."""
    import subprocess

    argv = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={args.nproc}",
            "-m", "dlc", "train", str(args.file), "-o", str(args.output or Path("runs") / (args.train_name or "")),
            "--device", args.device]
    if args.output is None:
        argv[argv.index("-o") + 1] = str(Path("runs") / (args.train_name or _last_train(args.file)))
    for flag, value in (("--train", args.train_name), ("--epochs", args.epochs), ("--max-steps", args.max_steps),
                        ("--data", args.data)):
        if value is not None:
            argv += [flag, str(value)]
    argv += ["--resume"] * args.resume + ["--quiet"] * args.quiet
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    proc = subprocess.Popen(argv, env=env, stderr=subprocess.PIPE, text=True, errors="replace")
    for line in _without_launcher_traceback(proc.stderr):
        sys.stderr.write(line)
    code = proc.wait()
    return 1 if code != 0 and code != 130 else code


def _without_launcher_traceback(lines):
    """The processes' own output, less torchrun's report of a process that exited non-zero (its own
    traceback and ChildFailedError table, at the end) and its log lines: the process said what went wrong."""
    skipping = False
    for line in lines:
        if line.startswith("Traceback (most recent call last):"):
            skipping = True
        if not skipping and "distributed/elastic" not in line and "distributed.elastic" not in line:
            yield line


def _last_train(path: Path) -> str:
    from dlc.compiler.pipeline import compile_file

    return list(compile_file(path).trains)[0]


def cmd_convert_weights(args: argparse.Namespace) -> int:
    """Read CKPT through its key map, check it against the network, write it under the network's
    weight names (a safetensors file `--weights` takes as it is); nothing is written on an error."""
    from safetensors.numpy import save_file

    from dlc.compiler.checkpoint import CheckpointError

    compiled = _one_network(args.file, args.model)
    if compiled is None:
        return 1
    result, graph = compiled
    try:
        weights = _weights(args, graph)
    except CheckpointError as err:
        _report_one(err.diag, result, err.sources)
        return 1
    args.output.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.output.with_name(f".{args.output.name}.tmp")
    save_file(weights, str(tmp), metadata={"format": "pt", "dlc_network": graph.name})
    tmp.replace(args.output)
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    import tempfile

    from dlc.bench import BenchConfig, bench_artifact, table
    from dlc.runtime.artifact import usable_cores

    config = BenchConfig(args.threads or usable_cores(), args.runs, args.warmup)
    if config.threads < 1 or config.runs < 1 or config.warmup < 0:
        raise UsageError("--threads and --runs must be positive, --warmup non-negative")
    with tempfile.TemporaryDirectory(prefix="dlc-bench-") as tmp:
        artifact = args.file
        if not (args.file / "manifest.json").exists():
            if args.file.is_dir():
                raise UsageError(f"`{args.file}` is neither a spec nor an artifact (no manifest.json)")
            artifact = Path(tmp) / "artifact"
            if not _compile(args, artifact):
                return 1
        try:
            result = bench_artifact(artifact, config, args.spec)
        except (FileNotFoundError, RuntimeError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
    if args.file != artifact:
        result["artifact"] = None
    print(json.dumps(result, indent=2) if args.json else table(result), end="\n" if args.json else "")
    return 0


def _tuning(args: argparse.Namespace, spec):
    """`--tune N`, measured on this machine, or with --rpc on the device at a TVM RPC tracker; and
    the target as tuned (with --rpc: the device's thread count as its num-cores)."""
    import dataclasses

    from dlc.compiler.backends.tvm import remote as rpc
    from dlc.compiler.backends.tvm.build import Tuning
    from dlc.compiler.backends.tvm.tune import default_db_dir, target_key

    if args.tune < 0:
        raise UsageError(f"--tune expects a number of trials >= 0, got {args.tune}")
    minutes = DEFAULT_TUNE_MINUTES if args.tune_minutes is None else args.tune_minutes
    if not (minutes >= 0 and math.isfinite(minutes)):
        raise UsageError(f"--tune-minutes expects a number of minutes >= 0 (0: no limit), got {minutes:g}")
    minutes = minutes or None
    if args.rpc is None:
        if args.device_key:
            raise UsageError("--device-key names a device at an RPC tracker: give --rpc HOST:PORT too")
        if spec.device != "cpu" or spec.cc is not None:
            raise UsageError(f"--tune measures candidates on this machine, which cannot run `{spec.name}` code; "
                             "measure them on the device: --rpc HOST:PORT --device-key KEY (a TVM RPC tracker)")
        db = args.tune_db or default_db_dir() / target_key(spec.target)
        return Tuning(args.tune, db, progress=sys.stderr, winograd=args.winograd, minutes=minutes), spec
    if spec.device != "cpu":
        raise UsageError(f"--rpc tunes CPU targets; `{spec.name}` is not one")
    if not args.device_key:
        raise UsageError("--rpc needs --device-key KEY: the key the device's RPC server registered with")
    try:
        host, port = rpc.parse_tracker(args.rpc)
    except ValueError as err:
        raise UsageError(str(err)) from None
    remote = rpc.Remote(host, port, args.device_key, spec.cc)
    threads = rpc.probe(remote, spec.target)
    print(f"tune: device `{remote.key}` at {remote.tracker} runs candidates on {threads} thread(s)", file=sys.stderr)
    spec = dataclasses.replace(spec, target={**spec.target, "num-cores": threads})
    db = args.tune_db or default_db_dir() / target_key(spec.target, device=remote.key)
    return Tuning(args.tune, db, progress=sys.stderr, remote=remote, winograd=args.winograd, minutes=minutes), spec


def cmd_explain(args: argparse.Namespace) -> int:
    from dlc.compiler import explain

    if args.code is None:
        for code in explain.codes():
            print(f"{code}  {explain.title(code)}")
        return 0
    try:
        print(explain.explanation(explain.normalize(args.code)), end="")
    except KeyError:
        if explain.retired(args.code):
            raise UsageError(f"`{args.code}` is retired: {explain.retired(args.code)}") from None
        near = explain.closest(args.code)
        hint = f"; did you mean {', '.join(near)}?" if near else "; `dlc explain` lists every code"
        raise UsageError(f"no explanation for `{args.code}`{hint}") from None
    return 0


def cmd_attack(args: argparse.Namespace) -> int:
    from dlc.attack import command

    return command(args, UsageError)


def cmd_run(args: argparse.Namespace) -> int:
    from dlc.runtime.__main__ import run

    return run(args)


def _write_atomic(target: Path, text: str) -> None:
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(text)
    tmp.replace(target)


def _dims(items: list[str]) -> dict[str, int]:
    out = {}
    for item in items:
        name, _, value = item.partition("=")
        if not name.isidentifier() or not value.isdigit() or int(value) < 1:
            raise UsageError(f"--dim expects SYM=N with a positive integer, got `{item}`")
        out[name] = int(value)
    return out


def _params(items: list[str]) -> dict:
    """`--param NAME=VALUE`: VALUE a literal as a spec writes it; the compiler checks the name."""
    from dlc.compiler import messages
    from dlc.compiler.syntax.parse import parse_literal

    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            if not sep or not name.isidentifier():
                raise ValueError(item)
            out[name] = parse_literal(value)
        except ValueError:
            raise UsageError(messages.param_value_syntax(item)) from None
    return out


def _input_shape(item: str) -> tuple[str | None, tuple[int, ...]]:
    """`--input-shape [NAME=]D0,D1,...` as (NAME or None, sizes); the compiler binds it to the graph."""
    name, sep, sizes = item.rpartition("=")
    try:
        shape = tuple(int(s) for s in sizes.split(","))
    except ValueError:
        raise UsageError(f"--input-shape expects comma-separated integers, got `{sizes}`") from None
    if any(d < 1 for d in shape):
        raise UsageError(f"--input-shape expects positive sizes, got `{sizes}`")
    return (name if sep else None), shape


if __name__ == "__main__":
    sys.exit(main())
