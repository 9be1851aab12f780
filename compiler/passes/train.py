"""Check a `train` definition into a `TrainPlan` (compiler/ir/train.py), before any data is read.

Assumes: resolved names (the step networks of compiler/syntax/desugar.py were checked like any
network). Guarantees: each step network expanded and shape-checked; every setting known, with
arguments of the right kind and range; one data set, whose built-in fields fit the declared
inputs (dtype, per-example shape, classes against the logits' width); models that are networks,
with parts to freeze that exist; every step with an optimizer and a scalar `loss`. Mistakes are
located diagnostics (E07xx); the plan is None when there was any.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from .. import messages
from ..diagnostics import Diagnostics
from ..ir.dims import shape_str
from ..ir.graph import BlockCall, Graph
from ..ir.train import (DataInput, DataPlan, EnsemblePlan, ModelPlan, Option, OptimizerPlan, ShowPlan, StepPlan,
                        TrainConfig, TrainPlan)
from ..ir.types import FLOAT_DTYPES, TensorType
from ..ops import OPS
from ..ops.metric_learning import DISTANCE, SIMILARITY, WANTS as PAIR_WANTS, same_if, score_kind
from ..source import Span
from ..syntax import ast
from ..syntax.desugar import MAIN_STEP
from ..limits import Budget
from .evaluate import Evaluator, is_int
from .resolve import DefRef, Resolved, TrainRef
from .train_bert import check_masked_lm
from .train_words import check_neighbours, word_list
from .values import Fail, Scope

REQUIRED = object()


# --- what the language knows: settings and their arguments ------------------------------------------

@dataclass(frozen=True)
class Arg:
    check: Callable[[Any], Any]  # the value, normalized; raises ValueError with the problem
    default: Any = REQUIRED


def _int(low: int | None = None) -> Callable[[Any], Any]:
    def check(v):
        if not is_int(v):
            raise ValueError(f"needs an integer, got {_show(v)}")
        if low is not None and v < low:
            raise ValueError(f"needs an integer >= {low}, got {v}")
        return v
    return check


def _num(low: float | None = None, high: float | None = None, open_low: bool = False) -> Callable[[Any], Any]:
    def check(v):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ValueError(f"needs a number, got {_show(v)}")
        if low is not None and (v < low or (open_low and v == low)):
            raise ValueError(f"needs a number {'>' if open_low else '>='} {low}, got {v}")
        if high is not None and v > high:
            raise ValueError(f"needs a number <= {high}, got {v}")
        return float(v)
    return check


def _bool(v):
    if not isinstance(v, bool):
        raise ValueError(f"needs true or false, got {_show(v)}")
    return v


def _str(v):
    if not isinstance(v, str) or not v:
        raise ValueError(f"needs a string, got {_show(v)}")
    return v


def _average(v):
    if v == "swa":
        return v
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v < 1:
        raise ValueError(f'needs an EMA decay in (0, 1), like 0.999, or "swa", got {_show(v)}')
    return float(v)


def _even(low: int) -> Callable[[Any], Any]:
    def check(v):
        if not is_int(v) or v < low or v % 2:
            raise ValueError(f"needs an even integer >= {low}, got {_show(v)}")
        return v
    return check


def _one_of(*choices: str) -> Callable[[Any], Any]:
    def check(v):
        if v not in choices:
            raise ValueError(f"needs one of {', '.join(_show(c) for c in choices)}, got {_show(v)}")
        return v
    return check


def _optional(check: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda v: None if v is None else check(v)


def _betas(v):
    if not (isinstance(v, tuple) and len(v) == 2 and all(isinstance(b, (int, float)) and not isinstance(b, bool)
                                                          and 0 <= b < 1 for b in v)):
        raise ValueError(f"needs two numbers in [0, 1), got {_show(v)}")
    return tuple(float(b) for b in v)


def _show(v: Any) -> str:
    if isinstance(v, str):
        return f'"{v}"'
    if isinstance(v, tuple):
        return "a list"
    return "none" if v is None else f"`{v!r}`"


POSITIVE = _num(0.0, open_low=True)


def _channels(v):
    if not is_int(v) or v not in (1, 3):
        raise ValueError(f"needs 1 (grey) or 3 (the grey image repeated), got {_show(v)}")
    return v

# Data sets: arguments (the first may be given positionally), and the fields of the built-in ones.
DATASETS: dict[str, dict[str, Arg]] = {
    "digits": {"size": Arg(_int(4), 8), "binarize": Arg(_bool, False), "target": Arg(_one_of("digit", "parity", "mask"), "digit"),
               "scale": Arg(_one_of("unit", "tanh"), "unit"), "channels": Arg(_channels, 1)},
    "text": {"path": Arg(_optional(_str), None), "seq": Arg(_int(2), 128)},
    "npz": {"path": Arg(_str)},
    "images": {"path": Arg(_str), "size": Arg(_optional(_int(1)), None), "channels": Arg(_int(1), 1)},
    "synthetic": {"task": Arg(_one_of("reverse", "sort", "dates"), "reverse"), "n": Arg(_int(10), 10000),
                  "length": Arg(_int(1), 10), "seed": Arg(_int(0), 0)},
    "digit_pairs": {"size": Arg(_int(4), 28), "pairs": Arg(_even(2), 2048), "eval_pairs": Arg(_even(2), 512)},
    "bert": {"task": Arg(_one_of("pretrain", "pair", "span", "acceptability"), "pretrain"), "seq": Arg(_int(16), 64),
             "vocab": Arg(_int(16), 2000), "copies": Arg(_int(1), 1)},
    "skipgram": {"path": Arg(_optional(_str), None), "window": Arg(_int(1), 5), "negatives": Arg(_int(1), 5),
                 "vocab": Arg(_int(2), 1000), "min_count": Arg(_int(1), 5)},
}


def builtin_fields(kind: str, opts: Mapping[str, Any]) -> dict[str, tuple[str, tuple[int, ...], int | None]] | None:
    """field -> (dtype, per-example shape, classes) of a built-in data set; None for user data,
    whose fields are known only when it is read (runtime/train/data.py checks them then)."""
    if kind == "digits":
        image = ("f32", (opts["channels"], opts["size"], opts["size"]), None)
        if opts["target"] == "mask":  # segmentation: per-pixel background 0 / digit 1
            return {"image": image, "mask": ("i64", (opts["size"], opts["size"]), 2)}
        classes = 10 if opts["target"] == "digit" else 2
        return {"image": image, "label": ("i64", (), classes)}
    if kind == "text":
        return {"tokens": ("i64", (opts["seq"],), 256), "targets": ("i64", (opts["seq"],), 256)}
    if kind == "synthetic":  # runtime/train/data_seq.py: 42 characters; dates are 18 -> 10 characters
        src, tgt = (18, 11) if opts["task"] == "dates" else (opts["length"], opts["length"] + 1)
        return {"src": ("i64", (src,), 42), "tgt": ("i64", (tgt,), 42), "tgt_out": ("i64", (tgt,), 42)}
    if kind == "bert":  # runtime/train/data_bert.py: word ids [PAD] [UNK] [CLS] [SEP] [MASK] + vocabulary
        seq, vocab, task = opts["seq"], opts["vocab"], opts["task"]
        fields = {"input_ids": ("i64", (seq,), vocab), "token_type_ids": ("i64", (seq,), 2)}
        if task == "pretrain":
            return {**fields, "mlm_labels": ("i64", (seq,), vocab), "nsp_label": ("i64", (), 2)}
        if task == "span":
            return {**fields, "start_positions": ("i64", (), seq), "end_positions": ("i64", (), seq)}
        return {**fields, "label": ("i64", (), 2)}
    if kind == "digit_pairs":  # runtime/train/data_pairs.py: two images and `same` (1.0 same digit, 0.0 not)
        image = ("f32", (1, opts["size"], opts["size"]), None)
        return {"x1": image, "x2": image, "same": ("f32", (), None)}
    if kind == "skipgram":  # runtime/train/data_words.py: word ids, exactly `vocab` words
        ids = ("i64", (), opts["vocab"])
        return {"center": ids, "context": ids, "negatives": ("i64", (opts["negatives"],), opts["vocab"])}
    return None


OPTIMIZERS: dict[str, dict[str, Arg]] = {
    "sgd": {"lr": Arg(POSITIVE), "momentum": Arg(_num(0.0, 1.0), 0.0), "nesterov": Arg(_bool, False),
            "weight_decay": Arg(_num(0.0), 0.0)},
    "adam": {"lr": Arg(POSITIVE, 1e-3), "betas": Arg(_betas, (0.9, 0.999)), "eps": Arg(POSITIVE, 1e-8),
             "weight_decay": Arg(_num(0.0), 0.0)},
    "adamw": {"lr": Arg(POSITIVE, 1e-3), "betas": Arg(_betas, (0.9, 0.999)), "eps": Arg(POSITIVE, 1e-8),
              "weight_decay": Arg(_num(0.0), 0.01)},
    "rmsprop": {"lr": Arg(POSITIVE, 1e-2), "alpha": Arg(_num(0.0, 1.0), 0.99), "momentum": Arg(_num(0.0, 1.0), 0.0),
                "weight_decay": Arg(_num(0.0), 0.0)},
}
# `clip_weights=c`, any optimizer (WGAN, Arjovsky et al. 2017): after each of its updates every weight it
# updates is clamped to [-c, c] (runtime/train/modules.py `clip_weights`).
for _args in OPTIMIZERS.values():
    _args["clip_weights"] = Arg(_optional(POSITIVE), None)

# Learning-rate schedules, as a factor of the optimizer's lr: `step` every N epochs, `cosine` over
# all optimizer steps after a linear warmup of `warmup` steps, `warmup` linear then constant.
SCHEDULES: dict[str, dict[str, Arg]] = {
    "constant": {},
    "step": {"every": Arg(_int(1)), "gamma": Arg(_num(0.0, 1.0, open_low=True), 0.1)},
    "cosine": {"warmup": Arg(_int(0), 0), "min_lr": Arg(_num(0.0), 0.0)},
    "warmup": {"steps": Arg(_int(1))},
    # cosine annealing restarted `cycles` times (snapshot ensembles, Huang et al. 2017; runtime/train/ensembles.py)
    "cyclic": {"cycles": Arg(_int(1), 5), "min_lr": Arg(_num(0.0), 0.0)},
}

CONFIG: dict[str, Arg] = {
    "batch": Arg(_int(1), 64), "epochs": Arg(_int(1), 10), "seed": Arg(_int(0), 0),
    "best": Arg(_str, "loss"), "clip_grad": Arg(_optional(POSITIVE), None),
    "checkpoint_every": Arg(_int(0), 0), "eval_batch": Arg(_int(1), 256), "test_each_epoch": Arg(_bool, False),
    # ensembles (runtime/train/ensembles.py): k independent copies; an EMA decay or "swa" (from an epoch)
    "ensemble": Arg(_int(1), 1), "average": Arg(_optional(_average), None), "average_from": Arg(_optional(_int(1)), None),
}

STEP_ARGS: dict[str, Arg] = {"every": Arg(_int(1), 1),
                             "unroll": Arg(_int(0), 0)}  # unrolled GAN: k steps of the rival steps first

# Pictures and texts, each with its model (the first, positional argument) and options.
# `every`: after every N-th epoch (and always after the last); `confusion` is made once, on the test split.
SHOWS: dict[str, dict[str, Arg]] = {
    "confusion": {"target": Arg(_str, "label")},
    "reconstruct": {"n": Arg(_int(1), 16), "every": Arg(_int(1), 1)},
    "prior": {"n": Arg(_int(1), 64), "every": Arg(_int(1), 1)},
    "autoregressive": {"n": Arg(_int(1), 16), "temperature": Arg(POSITIVE, 1.0), "every": Arg(_int(1), 1)},
    "generate": {"prompt": Arg(lambda v: v if isinstance(v, str) else _str(v), ""), "length": Arg(_int(1), 256),
                 "temperature": Arg(POSITIVE, 1.0), "every": Arg(_int(1), 1)},
    # measuring (runtime/train/measures/gan.py): samples classified by a digits classifier checkpoint
    "gan_score": {"classifier": Arg(_str, "runs/digits/best.safetensors"), "n": Arg(_int(10), 1000),
                  "confidence": Arg(_num(0.0, 1.0), 0.9), "every": Arg(_int(1), 1)},
    # measuring (runtime/train/measures/pairs.py): a Siamese model's verification accuracy, the threshold
    # chosen on the val pairs; `same_if` "auto" is "below" for a distance and "above" otherwise
    "verification": {"target": Arg(_str, "same"), "same_if": Arg(_one_of("auto", "above", "below"), "auto"),
                     "every": Arg(_int(1), 1)},
    # measuring (runtime/train/measures/seq.py): greedy and beam decoding of the split's sources, BLEU
    "translate": {"beam": Arg(_int(1), 4), "n": Arg(_int(1), 200), "every": Arg(_int(1), 1)},
    # measuring (runtime/train/measures/words.py): cosine nearest neighbours in an embedding table
    "neighbours": {"words": Arg(word_list), "k": Arg(_int(1), 5), "every": Arg(_int(1), 1)},
    # measuring (runtime/train/measures/bert.py): MLM accuracy on held-out masked tokens vs the unigram baseline
    "masked_lm": {"heads": Arg(_str, "heads"), "every": Arg(_int(1), 1)},
}

HIGHER_IS_BETTER_OPS = ("accuracy", "iou", "verification_accuracy")  # outputs made by these are maximized when chosen as `best`


# --- the pass ---------------------------------------------------------------------------------------------

def check_train(resolved: Resolved, ref: TrainRef, graphs: Mapping[str, Graph | None], diags: Diagnostics,
                source_path: str, budget: Budget | None = None) -> TrainPlan | None:
    """`graphs`: the expanded, shape-checked step networks by name (None where expansion failed);
    `budget`: the compilation's (compiler/limits.py)."""
    before = len(diags)
    checker = _TrainChecker(resolved, ref, diags, budget or Budget())
    plan = checker.plan(graphs, source_path)
    return plan if len(diags) == before else None


class _TrainChecker(Evaluator):
    def __init__(self, resolved: Resolved, ref: TrainRef, diags: Diagnostics, budget: Budget) -> None:
        self.r = resolved
        self.budget = budget
        self.ref = ref
        self.t = ref.node
        self.diags = diags
        self.let_cache: dict = {}
        self.let_active: set = set()

    def make_layer(self, fn, args, span, scope):  # a layer value as a setting's argument: not a value here
        self.error(messages.train_bad_option(span, "a training definition", fn.name, "a layer is not a setting"))

    # --- settings ------------------------------------------------------------------------------------------
    def _one(self, kind: str, settings: tuple[ast.Setting, ...]) -> ast.Setting | None:
        found = [s for s in settings if s.kind == kind]
        for extra in found[1:]:
            self.diags.add(messages.train_twice(extra.span, f"`{kind}`", found[0].span))
        return found[0] if found else None

    def _options(self, s: ast.Setting | ast.Step | ast.Model, owner: str, schema: Mapping[str, Arg],
                 args: tuple[ast.Arg, ...], positional: int = 1) -> dict[str, Any] | None:
        """The arguments checked against `schema`, defaults filled in; None after an error."""
        names = list(schema)
        out: dict[str, Any] = {}
        ok = True
        scope = Scope("", "", self.ref.module, {}, ())
        for i, a in enumerate(args):
            name = a.name
            if name is None:
                if i >= positional or i >= len(names):
                    self.diags.add(messages.train_bad_option(a.span, owner, f"#{i + 1}", "give it by name", names))
                    ok = False
                    continue
                name = names[i]
            if name not in schema:
                self.diags.add(messages.train_bad_option(a.span, owner, name, f"it takes {_list(names)}", names))
                ok = False
                continue
            if name in out:
                self.diags.add(messages.train_bad_option(a.span, owner, name, "given twice"))
                ok = False
                continue
            try:
                value = self.eval(a.value, scope)
            except Fail:
                ok = False
                continue
            try:
                out[name] = schema[name].check(value)
            except ValueError as err:
                self.diags.add(messages.train_bad_option(a.value.span, owner, name, str(err)))
                ok = False
        for name, arg in schema.items():
            if name not in out:
                if arg.default is REQUIRED:
                    self.diags.add(messages.train_bad_option(s.span, owner, name, "is required"))
                    ok = False
                else:
                    out[name] = arg.default
        return out if ok else None

    def _known(self, s: ast.Setting, what: str, table: Mapping[str, Any]) -> bool:
        if s.name not in table:
            self.diags.add(messages.train_unknown(s.name_span, what, s.name, list(table)))
            return False
        return True

    # --- the whole definition ----------------------------------------------------------------------------------
    def plan(self, graphs: Mapping[str, Graph | None], source_path: str) -> TrainPlan | None:
        t = self.t
        for s in t.settings:
            if s.kind == "schedule" and not t.steps and self._one("optimizer", t.settings) is None:
                pass  # reported with the optimizer below
        data = self._data()
        config_s = self._one("config", t.settings)
        config = self._options(config_s, "`config`", CONFIG, config_s.args, positional=0) if config_s else \
            {k: a.default for k, a in CONFIG.items()}
        if not t.models:
            self.diags.add(messages.train_missing(t.name_span, t.name, "`model`",
                                                  "declare what it trains: `model net = MyNetwork()`"))
        models_ok = self._models_are_networks()
        steps: list[StepPlan] = []
        top_opt = [s for s in t.settings if s.kind == "optimizer"]
        if t.steps and top_opt:
            self.diags.add(messages.train_bad_option(top_opt[0].span, f"train `{t.name}`", "optimizer",
                                                     "with `step` blocks, each step names its own optimizer"))
        for step, ref in self.ref.steps:
            graph = graphs.get(ref.name)
            if graph is None:
                continue
            plan = self._step(step, graph)
            if plan is not None:
                steps.append(plan)
        if data is None or config is None or not models_ok or len(steps) != len(self.ref.steps):
            return None
        models = self._model_plans(steps, graphs)
        if models is None or not self._game(steps) or not self._unrolls(steps):
            return None
        data_plan = self._data_inputs(data, steps)
        shows = self._shows(steps, data_plan)
        best = config["best"]
        outputs = {n for st in steps for n, _ in st.graph.outputs}
        if best not in outputs:
            span = next((a.value.span for a in config_s.args if a.name == "best"), config_s.span) if config_s else t.name_span
            self.diags.add(messages.train_bad_option(span, "`config`", "best",
                                                     f"no step has an output `{best}`", sorted(outputs)))
            return None
        if data_plan is None or shows is None:
            return None
        higher = any(best in st.higher_is_better for st in steps)
        cfg = TrainConfig(config["batch"], config["epochs"], config["seed"], best, higher, config["clip_grad"],
                          config["checkpoint_every"], config["eval_batch"], config["test_each_epoch"])
        ensembles = self._ensembles(config, config_s, steps)
        return TrainPlan(t.name, source_path, data_plan, models, tuple(steps), shows, cfg, t.span, ensembles)

    # --- ensembles (runtime/train/ensembles.py) -----------------------------------------------------------------
    def _ensembles(self, config: dict[str, Any], config_s: ast.Setting | None,
                   steps: list[StepPlan]) -> EnsemblePlan | None:
        """`config ensemble` / `average` and `schedule cyclic`: one of them, on one classifier (E0725, E0726)."""
        def at(name: str) -> Span:
            if config_s is None:
                return self.t.name_span
            return next((a.span for a in config_s.args if a.name == name), config_s.span)
        asked = [(f"`config {k}={_spec_text(config[k])}`", at(k)) for k in ("ensemble", "average")
                 if config[k] not in (None, 1)]
        schedules = [s for s in (*self.t.settings, *(x for st in self.t.steps for x in st.settings))
                     if s.kind == "schedule" and s.name == "cyclic"]
        asked += [("`schedule cyclic`", s.span) for s in schedules]
        if config["average_from"] is not None and config["average"] != "swa":
            self.diags.add(messages.ensemble_conflict(at("average_from"), "`config average_from`", 'only `average="swa"`'
                                                      " averages from an epoch", asked[0] if asked else None))
        if len(asked) > 1:
            self.diags.add(messages.ensemble_conflict(asked[1][1], asked[1][0], "one kind of ensemble per definition",
                                                      asked[0]))
        if config["average"] == "swa" and (config["average_from"] or 1) > config["epochs"]:
            self.diags.add(messages.ensemble_conflict(at("average_from"), "`config average_from`", f"training ends "
                                                      f"after epoch {config['epochs']}", ("`config epochs`", at("epochs"))))
        if len(asked) != 1:
            return None
        found = self._classifier(*asked[0], steps)
        if found is None:
            return None
        average = None if config["average"] is None else "ema" if config["average"] != "swa" else "swa"
        cycles = next((_option(st.optimizer.schedule_options, "cycles") for st in steps
                       if st.optimizer.schedule == "cyclic"), 0)
        return EnsemblePlan(*found, config["ensemble"], average, config["average"] if average == "ema" else 0.0,
                            config["average_from"] or 1, cycles, asked[0][1])

    def _classifier(self, what: str, span: Span, steps: list[StepPlan]) -> tuple[str, tuple[str, ...], str] | None:
        """(model, the fields it reads, the class-index field its logits are compared with), or E0725."""
        if len(steps) != 1 or len(self.t.models) != 1:
            self.diags.add(messages.ensemble_unfit(span, what, f"it needs one model and one step, train `{self.t.name}` "
                                                   f"has {len(self.t.models)} models and {len(steps)} steps"))
            return None
        g, model = steps[0].graph, self.t.models[0].name
        call = next(c for c in g.calls if c.parent == "" and c.frame.path == model)
        inputs = {vid: n for n, vid in g.inputs}
        feeds = tuple(inputs.get(v, "") for v in call.inputs)
        logits = call.outputs[0]
        targets = [inputs[n.inputs[1]] for n in g.nodes if n.op in ("cross_entropy", "accuracy")
                   and len(n.inputs) == 2 and n.inputs[0] == logits and n.inputs[1] in inputs]
        if not all(feeds):
            problem = f"`{model}` must be applied to data fields directly (`logits = image -> {model}`)"
        elif g.type_of(logits).rank != 2 or not targets:
            problem = (f"the first output of `{model}`, {_type(g.type_of(logits))}, is not class logits (B, classes) "
                       "compared with a class-index field by `cross_entropy` or `accuracy`")
        else:
            return model, feeds, targets[0]
        self.diags.add(messages.ensemble_unfit(span, what, problem))
        return None

    def _data(self) -> tuple[ast.Setting, dict[str, Any]] | None:
        s = self._one("data", self.t.settings)
        if s is None:
            self.diags.add(messages.train_missing(self.t.name_span, self.t.name, "`data`",
                                                  "name what it reads: `data digits(size=28)`, `data text()`, "
                                                  "`data npz(\"file.npz\")`, `data images(\"folder\")`"))
            return None
        if not self._known(s, "data set", DATASETS):
            return None
        opts = self._options(s, f"data `{s.name}`", DATASETS[s.name], s.args)
        return None if opts is None else (s, opts)

    def _models_are_networks(self) -> bool:
        ok = True
        seen: dict[str, ast.Model] = {}
        for m in self.t.models:
            if m.name in seen:
                self.diags.add(messages.train_twice(m.span, f"model `{m.name}`", seen[m.name].span))
                ok = False
            seen[m.name] = m
            if len(m.callee) == 1 and m.callee[0] in OPS:
                self.diags.add(messages.model_not_network(m.callee_span, m.callee[0], "an op"))
                ok = False
                continue
            target = self.r.lookup_def(self.ref.module, m.callee)
            if target is not None and target.node.kind != "network":
                self.diags.add(messages.model_not_network(m.callee_span, target.name, f"a {target.node.kind}"))
                ok = False
            elif target is None:
                ok = False  # name resolution said so
        return ok

    # --- steps -------------------------------------------------------------------------------------------------
    def _step(self, step: ast.Step | None, graph: Graph) -> StepPlan | None:
        t = self.t
        name = MAIN_STEP if step is None else step.name
        span = t.name_span if step is None else step.name_span
        settings = t.settings if step is None else step.settings
        args = {"every": 1, "unroll": 0}
        if step is not None:
            args = self._options(step, f"step `{step.name}`", STEP_ARGS, step.args)
        used = tuple(sorted({c.frame.path for c in graph.calls if c.parent == "" and c.frame.path in self._model_names()}))
        opt = self._optimizer(settings, span, name, used)
        ok = args is not None and opt is not None
        outputs = dict(graph.outputs)
        if "loss" not in outputs:
            where = f"step `{name}`" if step is not None else "its objective"
            found = f" (its outputs: {_list(outputs)})" if outputs else ""
            self.diags.add(messages.train_missing(span, t.name, f"`loss` output in {where}",
                                                  f"write the objective as `output loss = ...`; it is minimized{found}"))
            ok = False
        higher = []
        written = _output_spans(t.body + (step.body if step is not None else ()))
        for out_name, vid in graph.outputs:
            ty = graph.type_of(vid)
            if ty is None:
                ok = False
                continue
            if ty.rank != 0 or ty.dtype not in FLOAT_DTYPES:
                span = written.get(out_name, graph.value(vid).span)
                self.diags.add(messages.objective_not_scalar(span, out_name, _type(ty)))
                ok = False
            producer = graph.value(vid).producer
            if producer is not None and graph.nodes[producer].op in HIGHER_IS_BETTER_OPS:
                higher.append(out_name)
        for problem in _pair_score_mismatches(graph):  # E0720: a distance where a similarity is taken, or back
            self.diags.add(problem)
            ok = False
        for problem in _grad_problems(graph):  # E0715: a `grad` of a value its input does not reach
            self.diags.add(problem)
            ok = False
        if not ok:
            return None
        return StepPlan(name, graph, opt, args["every"], used, tuple(higher), span, args["unroll"])

    def _model_names(self) -> set[str]:
        return {m.name for m in self.t.models}

    def _optimizer(self, settings, span: Span, step: str, used: tuple[str, ...]) -> OptimizerPlan | None:
        s = self._one("optimizer", settings)
        if s is None:
            self.diags.add(messages.train_missing(span, self.t.name, f"optimizer for step `{step}`" if self.t.steps
                                                  else "`optimizer`", "for example `optimizer adam(lr=1e-3)`"))
            return None
        if not self._known(s, "optimizer", OPTIMIZERS):
            return None
        opts = self._options(s, f"optimizer `{s.name}`", OPTIMIZERS[s.name], s.args)
        targets = s.targets or used
        bad = [m for m in s.targets if m not in self._model_names()]
        for m in bad:
            self.diags.add(messages.train_unknown(s.span, "model", m, sorted(self._model_names())))
        sched = self._one("schedule", settings)
        sched_kind, sched_opts = "constant", {}
        if sched is not None:
            if not self._known(sched, "schedule", SCHEDULES):
                return None
            sched_kind = sched.name
            sched_opts = self._options(sched, f"schedule `{sched.name}`", SCHEDULES[sched.name], sched.args)
        if opts is None or sched_opts is None or bad:
            return None
        return OptimizerPlan(s.name, _opts(opts), tuple(targets), sched_kind, _opts(sched_opts), s.span)

    def _game(self, steps: list[StepPlan]) -> bool:
        """Each model is updated by one step's optimizer, whose loss takes gradients through it; with
        several steps, each loss reads an output of a model that another step trains (the game)."""
        ok = True
        owner: dict[str, StepPlan] = {}
        for st in steps:
            for m in st.optimizer.models:
                if m in owner and owner[m] is not st:
                    self.diags.add(messages.optimizers_overlap(st.optimizer.span, m, st.name, owner[m].optimizer.span,
                                                               owner[m].name))
                    ok = False
                owner.setdefault(m, st)
        for st in steps:
            g = st.graph
            loss = dict(g.outputs)["loss"]
            body = next((a.body for a, _ in self.ref.steps if a is not None and a.name == st.name), ())
            span = _output_spans(self.t.body + body).get("loss", g.value(loss).span)
            trained = _models_reached(g, loss, self._model_names(), through_detach=False)
            read = _models_reached(g, loss, self._model_names(), through_detach=True)
            for m in st.optimizer.models:
                if m not in trained:
                    self.diags.add(messages.loss_ignores_model(span, st.name, m, detached=m in read))
                    ok = False
            rivals = sorted({m for other in steps if other is not st for m in other.optimizer.models}
                            - set(st.optimizer.models))
            if rivals and not read & set(rivals):
                self.diags.add(messages.loss_reads_no_rival(span, st.name, rivals))
                ok = False
        return ok

    def _unrolls(self, steps: list[StepPlan]) -> bool:
        """`step NAME(unroll=k)`: other steps whose models its loss reads (E0717), on one step only (E0718)."""
        ok = True
        unrolled = [st for st in steps if st.unroll]
        for st in unrolled:
            arg = next(a for s, _ in self.ref.steps if s is not None and s.name == st.name
                       for a in s.args if a.name == "unroll")
            read = _models_reached(st.graph, dict(st.graph.outputs)["loss"], self._model_names(), through_detach=True)
            rivals = [o.name for o in steps if o is not st and set(o.optimizer.models) & read]
            if not rivals:
                self.diags.add(messages.unroll_no_rival(arg.span, st.name, [o.name for o in steps if o is not st]))
                ok = False
            if st is not unrolled[0]:
                first = next(a for s, _ in self.ref.steps if s is not None and s.name == unrolled[0].name
                             for a in s.args if a.name == "unroll")
                self.diags.add(messages.unroll_twice(arg.span, st.name, first.span, unrolled[0].name))
                ok = False
        return ok

    # --- models ------------------------------------------------------------------------------------------------
    def _model_plans(self, steps: list[StepPlan], graphs) -> tuple[ModelPlan, ...] | None:
        out = []
        ok = True
        for m in self.t.models:
            found = [(st, c) for st in steps for c in st.graph.calls if c.parent == "" and c.frame.path == m.name]
            if not found:
                self.diags.add(messages.model_unused(m.span, m.name))
                ok = False
                continue
            step, call = found[0]
            prefix = m.name + "."
            weights = tuple((w.name[len(prefix):], w.shape, w.trainable) for w in step.graph.weights
                            if w.name.startswith(prefix))
            scope = Scope("", "", self.ref.module, {}, ())
            weights_from = freeze = None
            try:
                if m.weights is not None:
                    weights_from = _str(self.eval(m.weights, scope))
                if m.freeze is not None:
                    value = self.eval(m.freeze, scope)
                    freeze = (value,) if isinstance(value, str) else value
                    if not isinstance(freeze, tuple) or not all(isinstance(f, str) for f in freeze):
                        raise ValueError("needs a list of module names, like [\"features\"]")
            except Fail:
                ok = False
                continue
            except ValueError as err:
                span = (m.weights if m.freeze is None else m.freeze).span
                self.diags.add(messages.train_bad_option(span, f"model `{m.name}`", "from" if m.freeze is None else "freeze", str(err)))
                ok = False
                continue
            for path in freeze or ():
                if not any(w == path or w.startswith(path + ".") for w, _, _ in weights):
                    parts = sorted({w.split(".")[0] for w, _, _ in weights})
                    self.diags.add(messages.freeze_unknown(m.freeze.span, m.name, path, parts))
                    ok = False
            ref = self.r.lookup_def(self.ref.module, m.callee)
            out.append(ModelPlan(m.name, ref.name, ref.module, tuple(call.args), weights_from, tuple(freeze or ()),
                                 weights, m.span))
        return tuple(out) if ok else None

    # --- data --------------------------------------------------------------------------------------------------
    def _data_inputs(self, data, steps: list[StepPlan]) -> DataPlan | None:
        s, opts = data
        fields = builtin_fields(s.name, opts)
        names = list(DATASETS[s.name])
        given = {a.name or names[i] for i, a in enumerate(s.args) if a.name or i < len(names)}
        described = f"{s.name}({', '.join(f'{k}={_spec_text(v)}' for k, v in opts.items() if k in given)})"  # as written
        inputs: dict[str, DataInput] = {}
        ok = True
        for st in steps:
            g = st.graph
            widths = _class_widths(g)
            for name, vid in g.inputs:
                v = g.value(vid)
                ty = v.type
                dims = tuple(d.value if d.is_const else str(d) for d in ty.shape)
                classes = widths.get(vid)
                if fields is not None:
                    if name not in fields:
                        self.diags.add(messages.data_field_mismatch(
                            v.span, name, _type(ty), described,
                            f"it has no field `{name}` (it gives {_list(sorted(fields))})"))
                        ok = False
                        continue
                    dtype, shape, n_classes = fields[name]
                    problem = _fits(ty, dims, dtype, shape)
                    if problem:
                        self.diags.add(messages.data_field_mismatch(v.span, name, _type(ty), described, problem))
                        ok = False
                        continue
                    if classes is not None and n_classes is not None and classes[0] != n_classes:
                        self.diags.add(messages.classes_mismatch(classes[1], name, described, n_classes, classes[0]))
                        ok = False
                elif not dims or isinstance(dims[0], int):
                    self.diags.add(messages.data_field_mismatch(v.span, name, _type(ty), described,
                                                                "its first dim must be the batch symbol, e.g. `B`"))
                    ok = False
                    continue
                inputs.setdefault(name, DataInput(name, ty.dtype, dims, v.span, classes[0] if classes else None))
        if not ok:
            return None
        return DataPlan(s.name, _opts(opts), tuple(inputs.values()), s.span)

    # --- pictures ------------------------------------------------------------------------------------------------
    def _shows(self, steps: list[StepPlan], data: DataPlan | None) -> tuple[ShowPlan, ...] | None:
        out = []
        ok = True
        names: set[str] = set()
        for s in self.t.settings:
            if s.kind != "show":
                continue
            if not self._known(s, "picture", SHOWS):
                ok = False
                continue
            if not s.args or s.args[0].name is not None:
                self.diags.add(messages.show_unfit(s.span, s.name, "its first argument is the model, e.g. `"
                                                   f"{s.name}(net)`"))
                ok = False
                continue
            target = _dotted(s.args[0].value)
            opts = self._options(s, f"`{s.name}`", SHOWS[s.name], s.args[1:], positional=0)
            if target is None or target[0] not in self._model_names():
                self.diags.add(messages.train_unknown(s.args[0].span, "model", ".".join(target or ("?",)),
                                                      sorted(self._model_names())))
                ok = False
                continue
            if opts is None:
                ok = False
                continue
            model, child = target[0], ".".join(target[1:])
            if s.name == "neighbours":  # reads an embedding table, not a call: compiler/passes/train_words.py
                plan = check_neighbours(self.diags, s, steps, target, _opts(opts), data, names)
                ok = ok and plan is not None
                out += [plan] if plan is not None else []
                continue
            call = _find_call(steps, ".".join(target))
            if call is None:
                self.diags.add(messages.show_unfit(s.args[0].span, s.name,
                                                   f"`{'.'.join(target)}` is not a block or network the objective runs"))
                ok = False
                continue
            g, c = call
            name = s.label or s.name
            if name in names:
                self.diags.add(messages.show_unfit(s.span, s.name, f"a picture named `{name}` is shown already; "
                                                   f"name this one: `show other = {s.name}(...)`"))
                ok = False
                continue
            names.add(name)
            plan = self._show(s, g, c, model, child, name, opts, data)
            if plan is None:
                ok = False
            else:
                out.append(plan)
        return tuple(out) if ok else None

    def _show(self, s: ast.Setting, g: Graph, c: BlockCall, model: str, child: str, name: str,
              opts: dict[str, Any], data: DataPlan | None) -> ShowPlan | None:
        ins = [g.type_of(v) for v in c.inputs]
        outs = [g.type_of(v) for v in c.outputs]
        graph_inputs = {vid: n for n, vid in g.inputs}
        feeds = tuple(graph_inputs.get(v, "") for v in c.inputs)

        def unfit(problem: str) -> None:
            self.diags.add(messages.show_unfit(s.args[0].span, s.name, problem))

        def static(t: TensorType) -> tuple[int, ...] | None:
            rest = t.shape[1:]
            return tuple(d.value for d in rest) if all(d.is_const for d in rest) else None

        shape, levels = (), 0
        if s.name in ("confusion", "reconstruct"):
            if child or not all(feeds):
                unfit(f"`{model}` must be applied to data fields directly (`y = image -> {model}`)")
                return None
            if s.name == "confusion":
                if outs[0].rank != 2:
                    unfit(f"its first output is {_type(outs[0])}, not class logits (B, classes)")
                    return None
                if opts["target"] not in graph_inputs.values():
                    unfit(f"the objective reads no data field `{opts['target']}` to compare with")
                    return None
            elif _type(ins[0]) != _type(outs[0]):
                unfit(f"its first output {_type(outs[0])} is not shaped like its input {_type(ins[0])}")
                return None
        elif s.name in ("prior", "gan_score"):  # a generator: z, or (z, class labels) for a conditional one
            shape = static(ins[0]) if ins[0].dtype in FLOAT_DTYPES else None
            labels = len(ins) == 2 and ins[1].dtype == "i64" and ins[1].rank == 1
            if len(ins) not in (1, 2) or shape is None or (len(ins) == 2 and not labels):
                unfit(f"it needs one float input of static size per example (and, for a conditional generator, "
                      f"i64 labels (B)), found {', '.join(map(_type, ins))}")
                return None
            levels = _label_classes(data, feeds[1]) if labels else 0  # classes of a conditional generator
            if outs[0].rank != 4:
                unfit(f"its first output {_type(outs[0])} is not an image batch (B, C, H, W)")
                return None
        elif s.name == "autoregressive":
            shape = static(ins[0])
            if len(ins) != 1 or ins[0].rank != 4 or shape is None or shape[0] != 1:
                unfit(f"it needs one input image (B, 1, H, W) of static size, found {', '.join(map(_type, ins))}")
                return None
            lv = outs[0].shape[1] if outs[0].rank == 4 else None
            if lv is None or not lv.is_const or _type(outs[0].with_shape((outs[0].shape[0], ins[0].shape[1],
                                                                            *outs[0].shape[2:]))) != _type(ins[0]):
                unfit(f"its first output {_type(outs[0])} is not per-pixel logits (B, levels, H, W) for {_type(ins[0])}")
                return None
            levels = lv.value
        elif s.name == "generate":
            if len(ins) != 1 or ins[0].dtype != "i64" or ins[0].rank != 2 or outs[0].rank != 3 \
                    or not outs[0].shape[2].is_const:
                unfit(f"it needs token ids (B, T) in and logits (B, T, vocab) out, found "
                      f"{', '.join(map(_type, ins))} -> {_type(outs[0])}")
                return None
            levels = outs[0].shape[2].value
            window = [i.dims[1] for i in (data.inputs if data else ()) if i.name == feeds[0]]
            shape = (window[0],) if window and isinstance(window[0], int) else ()
            if data is not None and data.kind == "text" and not shape:
                shape = (dict((o.name, o.value) for o in data.options)["seq"],)
        elif s.name == "verification":  # runtime/train/measures/pairs.py scores pairs
            if not self._verification(s, g, c, ins, outs, feeds, child, opts):
                return None
        elif s.name == "translate":  # runtime/train/measures/seq.py decodes src -> tgt
            plan = self._translate(s, ins, outs, feeds, child, data)
            if plan is None:
                return None
            shape, levels = plan
        elif s.name == "masked_lm":  # compiler/passes/train_bert.py: encoder + pre-training heads on `data bert`
            plan = check_masked_lm(self.diags, s, g, c, child, feeds, opts, data, self._model_names())
            if plan is None:
                return None
            shape, levels = plan
        return ShowPlan(s.name, name, model, child, feeds, _opts(opts), shape, levels, s.span)

    def _translate(self, s: ast.Setting, ins: list[TensorType], outs: list[TensorType], feeds: tuple[str, ...],
                   child: str, data: DataPlan | None) -> tuple[tuple[int, int], int] | None:
        """(source width, decoder width), vocabulary size: a model applied to `synthetic`'s src and tgt
        ids that gives (B, T, vocab) logits; else E0721 (its inputs) or E0722 (its logits)."""
        span = s.args[0].span
        if data is not None and data.kind != "synthetic":
            self.diags.add(messages.translate_unfit_inputs(
                span, f"it decodes with the character vocabulary of `data synthetic(...)`, not of data `{data.kind}`"))
            return None
        if child or len(ins) != 2 or not all(feeds) or any(t.dtype != "i64" or t.rank != 2 for t in ins):
            found = ", ".join(map(_type, ins))
            self.diags.add(messages.translate_unfit_inputs(
                span, f"it needs the model applied to two data fields, source ids (B, S) and decoder-input ids "
                      f"(B, T), found {found}"))
            return None
        out = outs[0]
        if out.rank != 3 or str(out.shape[1]) != str(ins[1].shape[1]) or not out.shape[2].is_const:
            self.diags.add(messages.translate_unfit_logits(
                span, _type(out), f"not logits (B, {ins[1].shape[1]}, vocab) for the decoder input {_type(ins[1])}"))
            return None
        vocab = out.shape[2].value
        if vocab < 42:  # the characters of runtime/train/data_seq.py
            self.diags.add(messages.translate_unfit_logits(
                span, _type(out), f"{vocab} tokens, but `data synthetic` has 42"))
            return None
        widths = {i.name: i.dims[1] for i in (data.inputs if data else ()) if len(i.dims) == 2}
        src, tgt = (widths.get(f) for f in feeds)
        return ((src, tgt) if isinstance(src, int) and isinstance(tgt, int) else ()), vocab

    def _verification(self, s: ast.Setting, g: Graph, c: BlockCall, ins: list[TensorType], outs: list[TensorType],
                      feeds: tuple[str, ...], child: str, opts: dict[str, Any]) -> bool:
        """A model applied to two data fields that gives one float score per pair, (B) or (B, 1), and
        a `target` field to compare with (else E0710); `same_if="auto"` becomes the score's direction,
        and a `same_if` against it is E0720."""
        span = s.args[0].span
        if child or len(ins) != 2 or not all(feeds):
            self.diags.add(messages.show_unfit(span, s.name, "it needs the model applied to two data fields, "
                                                             "`score = (x1, x2) -> net`"))
            return False
        out = outs[0]
        if out.dtype not in FLOAT_DTYPES or out.rank not in (1, 2) or \
                (out.rank == 2 and not (out.shape[1].is_const and out.shape[1].value == 1)):
            self.diags.add(messages.show_unfit(span, s.name, f"its first output {_type(out)} is not one score "
                                                             f"per pair, (B) or (B, 1)"))
            return False
        if opts["target"] not in {n for n, _ in g.inputs}:
            self.diags.add(messages.show_unfit(span, s.name, f"the objective reads no data field "
                                                             f"`{opts['target']}` to compare with"))
            return False
        kind = score_kind(g, c.outputs[0])
        if opts["same_if"] == "auto":
            opts["same_if"] = same_if(kind[0]) if kind else "above"
        elif kind is not None and same_if(kind[0]) != opts["same_if"]:
            wants = DISTANCE if opts["same_if"] == "below" else SIMILARITY
            self.diags.add(_pair_mismatch(span, f"`{s.name}` with `same_if=\"{opts['same_if']}\"`", s.name, wants,
                                          kind))
            return False
        return True


# --- helpers ---------------------------------------------------------------------------------------------------

def _spec_text(v: Any) -> str:
    """A value as a spec writes it: `true`, `"digit"`, `[0.9, 0.95]`, `8`."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return f'"{v}"'
    if isinstance(v, tuple):
        return f"[{', '.join(map(_spec_text, v))}]"
    return "none" if v is None else repr(v)


def _option(items: tuple[Option, ...], name: str) -> Any:
    return next(o.value for o in items if o.name == name)


def _opts(d: Mapping[str, Any]) -> tuple[Option, ...]:
    return tuple(Option(k, v) for k, v in d.items())


def _list(names) -> str:
    return ", ".join(f"`{n}`" for n in names) or "nothing"


def _type(t: TensorType) -> str:
    return f"{t.dtype}{shape_str(t.shape)}"


def _fits(ty: TensorType, dims: tuple, dtype: str, shape: tuple[int, ...]) -> str | None:
    batch = dims[0] if dims and isinstance(dims[0], str) else "B"
    want = f"declare it `{dtype}[{', '.join(map(str, (batch, *shape)))}]`"
    per_example = f"{dtype}({', '.join(map(str, shape))}{',' if len(shape) == 1 else ''}) per example"
    if not dims or isinstance(dims[0], int):
        return f"its first dim must be the batch symbol: {want}"
    rest = dims[1:]
    if ty.dtype != dtype or len(rest) != len(shape) or any(isinstance(d, int) and d != s
                                                           for d, s in zip(rest, shape, strict=True)):
        return f"the data gives {per_example}; {want}"
    return None


def _class_widths(g: Graph) -> dict[int, tuple[int, Span]]:
    """Graph inputs used as class-index targets of `cross_entropy` / `accuracy` / `iou`: the logits' class
    width where it is static, with the span of the op that compares them."""
    out: dict[int, tuple[int, Span]] = {}
    inputs = {vid for _, vid in g.inputs}
    for node in g.nodes:
        if node.op not in ("cross_entropy", "accuracy", "iou") or len(node.inputs) != 2:
            continue
        logits, target = (g.type_of(v) for v in node.inputs)
        if target is None or logits is None or target.dtype != "i64" or node.inputs[1] not in inputs:
            continue
        axis = dict(node.attrs).get("axis", 1)
        axis = axis + logits.rank if axis < 0 else axis
        if 0 <= axis < logits.rank and logits.shape[axis].is_const:
            out.setdefault(node.inputs[1], (logits.shape[axis].value, node.span))
    return out


def _models_reached(g: Graph, value: int, models: set[str], through_detach: bool) -> set[str]:
    """The models whose weights `value` is computed from: found walking producers back from it,
    stopping at `detach` unless `through_detach` (a gradient stops there, a reading does not)."""
    owners = {w.owner: w.name.split(".", 1)[0] for w in g.weights if w.trainable}
    found: set[str] = set()
    seen: set[int] = set()
    todo = [value]
    while todo:
        vid = todo.pop()
        if vid in seen:
            continue
        seen.add(vid)
        producer = g.value(vid).producer
        if producer is None:
            continue
        node = g.nodes[producer]
        if owners.get(node.id) in models:
            found.add(owners[node.id])
        if node.op == "detach" and not through_detach:
            continue
        todo.extend(node.inputs)
    return found


def _output_spans(body: tuple[ast.Stmt, ...]) -> dict[str, Span]:
    """Output name -> the `output` statement that writes it (top level of a train or step body)."""
    return {s.name: s.span for s in body if isinstance(s, ast.Output)}


def _dotted(e: ast.Expr) -> tuple[str, ...] | None:
    if isinstance(e, ast.Name):
        return (e.id,)
    if isinstance(e, ast.Attr):
        head = _dotted(e.obj)
        return None if head is None else (*head, e.name)
    return None


def _label_classes(data: DataPlan | None, feed: str) -> int:
    """The number of classes of the data field `feed` (a conditional generator's labels), 0 if unknown
    here (the runtime then takes the data set's class names)."""
    if data is None or not feed:
        return 0
    known = [i.classes for i in data.inputs if i.name == feed and i.classes]
    fields = builtin_fields(data.kind, dict((o.name, o.value) for o in data.options)) or {}
    return known[0] if known else (fields.get(feed, (None, None, None))[2] or 0)


def _find_call(steps: list[StepPlan], path: str) -> tuple[Graph, BlockCall] | None:
    for st in steps:
        for c in st.graph.calls:
            if c.frame.path == path:
                return st.graph, c
    return None


def _pair_score_mismatches(g: Graph) -> list:
    """E0720 for each pair loss or `verification_accuracy` whose score points the other way: a
    distance (small for same pairs) where a similarity is taken, or the reverse."""
    found = []
    for node in g.nodes:
        if node.op in PAIR_WANTS:
            wants = PAIR_WANTS[node.op]
        elif node.op == "verification_accuracy":
            wants = DISTANCE if node.attr["same_if"] == "below" else SIMILARITY
        else:
            continue
        kind = score_kind(g, node.inputs[0])
        if kind is not None and kind[0] != wants:
            found.append(_pair_mismatch(node.span, f"`{node.op}`", node.op, wants, kind))
    return found


_PAIR_HINTS = {("contrastive", SIMILARITY): "score the pair by `pair_distance` of the embeddings, or train a "
                                            "similarity with `cosine_embedding`",
               ("cosine_embedding", DISTANCE): "train a distance with `contrastive`, or score the pair by "
                                               "`cosine_similarity`"}


def _pair_mismatch(span: Span, what: str, op: str, wants: str, kind: tuple) -> Any:
    """`kind`: (the score's kind, the node that computes it), as `score_kind` gives it."""
    found, made = kind
    hint = _PAIR_HINTS.get((op, found), f"give `same_if=\"{same_if(found)}\"` for a {found}")
    return messages.pair_score_mismatch(span, what, wants, found, made.span, hint)


def _grad_problems(g: Graph) -> list:
    """E0715 for each `(y, x) -> grad` whose y is not computed from x (a gradient of zeros, a mistake)."""
    out = []
    for node in g.nodes:
        if node.op != "grad" or len(node.inputs) != 2:
            continue
        y, x = node.inputs
        if not _reaches(g, y, x, through_detach=False):
            name = g.value(x).name or "its input"
            out.append(messages.grad_unrelated(node.span, name, _reaches(g, y, x, through_detach=True)))
    return out


def _reaches(g: Graph, value: int, source: int, through_detach: bool) -> bool:
    """Whether `value` is computed from `source` (a gradient stops at `detach` unless `through_detach`)."""
    seen: set[int] = set()
    todo = [value]
    while todo:
        vid = todo.pop()
        if vid == source:
            return True
        if vid in seen:
            continue
        seen.add(vid)
        producer = g.value(vid).producer
        if producer is None or (g.nodes[producer].op == "detach" and not through_detach):
            continue
        todo.extend(g.nodes[producer].inputs)
    return False
