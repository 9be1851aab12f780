"""A grammar-aware fuzzer for the front end and the emitters (issue 20): a developer tool.

Cases are the zoo's specs (spec/*.arch, spec/std/*.arch) mutated one to three times, guided by
the grammar's own tokens (the Lark lexer of compiler/syntax/grammar.lark): an integer or float
literal replaced by an extreme or a random one, a name swapped for another of the same file, an
op, a keyword, a builtin or an `nn.Module` attribute, a dtype changed, tokens or whole lines
deleted, duplicated or swapped, a line spliced from another spec, an expression nested deeply,
a `* n` repetition inserted, a bracket dropped. `make_case(seed, index)` is a pure function of
its arguments, so a finding is reproduced from its two numbers.

Each case runs in a child process (forked from a forkserver that has torch, onnx and the
compiler imported, so a case costs its own work only) under a wall-time limit and an
address-space limit (RLIMIT_AS), and ends in one outcome:

    ok          compiles; the PyTorch source is emitted and every network builds, its parameter
                and buffer counts equal `count_costs`' `trainable_params` and `buffers` (the
                "Trainable params" and "Non-trainable (buffers)" lines of `dlc summary`), its
                state_dict is the graph's weights; small networks (under SMALL_WEIGHTS weights
                and SMALL_ACTIVATIONS bytes of activations) also run forward on example inputs
                with the IR's output shapes, and are exported to ONNX, checked by onnx.checker
                and run in ONNX Runtime, which must agree with PyTorch. ONNX is only tried on
                small networks to keep a case cheap: larger ones are built on the meta device
                and counted, never run.
    refused     as ok, but a backend refused a construct with an E06xx diagnostic
    diagnostic  errors, every one located in a spec file (a line and a column)
    unlocated   an error diagnostic without a location
    traceback   any uncaught exception (its type, message and innermost frame)
    hang        the wall-time limit passed
    memory      MemoryError, or the child was killed (the address-space limit, the OOM killer)
    crash       the child died another way (a signal, an exit without a result)
    mismatch    counts, weights, shapes or values of a backend disagree with the IR, or a
                network that checks fails to build or run without an E06xx

DEFECTS are the outcomes the fuzzer exists to find. tests/test_fuzz.py runs a short fixed-seed
campaign; benchmarks/fuzz.py runs a long one and saves each distinct finding's spec.
"""
from __future__ import annotations

import keyword
import multiprocessing
import multiprocessing.connection
import os
import random
import resource
import tempfile
import time
import traceback
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterable, Iterator

OUTCOMES = ("ok", "refused", "diagnostic", "unlocated", "traceback", "hang", "memory", "crash", "mismatch")
DEFECTS = frozenset({"unlocated", "traceback", "hang", "memory", "crash", "mismatch"})

CASE_SECONDS = 30.0
CASE_MEMORY = 4 << 30  # bytes of address space per case
SMALL_WEIGHTS = 5_000_000  # parameters and buffers of a network that is run and exported to ONNX
SMALL_ACTIVATIONS = 256 << 20  # bytes of activations at the example sizes, likewise

INTS = ("0", "-1", "1", "2", "3", "7", "2**31", "2**31 - 1", "2**63", "2**63 - 1", "10**30", "65536",
        "100000", "1000001", "(0 - 1)")
FLOATS = ("0.0", "-0.0", "1e400", "1e308", "1e-320", "1.5e300", "0.5", "-1.0", "1e30", "3.0")
DTYPES = ("f32", "f16", "bf16", "f64", "i64", "i32", "u8", "bool", "f8", "x")
REPEATS = ("0", "1", "2", "3", "-1", "100", "10000", "10001", "2**40", "n", "1.5")
DEPTHS = (30, 99, 100, 101, 150, 1000)
GRAMMAR_WORDS = ("network", "block", "input", "output", "param", "let", "for", "in", "if", "else", "assert",
                 "import", "true", "false", "none", "train", "model", "data", "config", "optimizer",
                 "schedule", "step", "show", "from", "freeze", "and", "or", "not")
KEYWORD_ARGS = ("stride", "padding", "bias", "groups", "dilation", "dim", "p", "eps", "heads", "causal",
                "ceil_mode", "momentum", "affine", "batch_first", "bidirectional", "layers", "mode")
KEYWORD_VALUES = ("0", "1", "2", "3", "-1", "true", "false", "none", "0.5", '"same"', "[1, 2]")
BRACKETS = ("LPAR", "RPAR", "LSQB", "RSQB", "LBRACE", "RBRACE")


# --- cases ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Token:
    type: str
    value: str
    start: int
    end: int


@dataclass(frozen=True)
class Case:
    seed: int
    index: int
    base: str  # the zoo spec it was mutated from
    mutations: tuple[str, ...]
    text: str

    @property
    def name(self) -> str:
        return f"seed{self.seed}-case{self.index}"


def zoo_dir() -> Path:
    """The spec/ directory of the zoo (spec/std is shipped as dlc.stdlib)."""
    from .syntax.load import stdlib_dir

    return stdlib_dir().parent


@lru_cache(maxsize=1)
def corpus() -> tuple[tuple[str, str], ...]:
    """(name, text) of every zoo spec, in a stable order."""
    root = zoo_dir()
    paths = sorted(root.glob("*.arch")) + sorted((root / "std").glob("*.arch"))
    return tuple((str(p.relative_to(root)), p.read_text()) for p in paths)


@lru_cache(maxsize=1)
def _lexer():
    from lark import Lark

    from .syntax.parse import GRAMMAR

    return Lark(GRAMMAR.read_text(), parser="lalr", lexer="basic")


def tokenize(text: str) -> list[Token] | None:
    """The grammar's tokens of `text` (comments and blanks left out), None if it does not lex."""
    from lark.exceptions import LarkError

    try:
        return [Token(t.type, str(t), t.start_pos, t.end_pos) for t in _lexer().lex(text)]
    except LarkError:
        return None


@lru_cache(maxsize=1)
def _name_pools() -> dict[str, tuple[str, ...]]:
    from .builtins import BUILTINS
    from .names import MODULE_ATTRIBUTES
    from .ops import OPS

    return {"op": tuple(sorted(OPS)), "keyword": tuple(keyword.kwlist) + GRAMMAR_WORDS,
            "builtin": tuple(sorted(BUILTINS)), "attribute": tuple(sorted(MODULE_ATTRIBUTES)),
            "dtype": DTYPES}


def make_case(seed: int, index: int) -> Case:
    """Case `index` of the campaign `seed`: a zoo spec with one to three mutations."""
    rng = random.Random(f"dlc-fuzz:{seed}:{index}")
    base, text = rng.choice(corpus())
    applied = []
    for _ in range(rng.choice((1, 1, 2, 3))):
        tokens = tokenize(text)
        if not tokens:
            break
        mutation = rng.choice(MUTATIONS)
        mutated = mutation(rng, text, tokens)
        if mutated is not None:
            text = mutated
            applied.append(mutation.__name__.removeprefix("_"))
    return Case(seed, index, base, tuple(applied), text)


def _replace(text: str, tok: Token, new: str) -> str:
    return text[:tok.start] + new + text[tok.end:]


def _pick(rng: random.Random, tokens: list[Token], *types: str) -> Token | None:
    chosen = [t for t in tokens if t.type in types]
    return rng.choice(chosen) if chosen else None


def _literal(rng, text, tokens):
    tok = _pick(rng, tokens, "INT", "FLOAT")
    if tok is None:
        return None
    if rng.random() < 0.3:
        new = str(rng.choice((rng.randint(0, 9), rng.randint(0, 5000), rng.randint(0, 2**40))))
    else:
        new = rng.choice(INTS if tok.type == "INT" else FLOATS)
    return _replace(text, tok, new)


def _name(rng, text, tokens):
    tok = _pick(rng, tokens, "NAME")
    if tok is None:
        return None
    pool = rng.choice(("same-file", "same-file", "op", "keyword", "builtin", "attribute"))
    names = [t.value for t in tokens if t.type == "NAME"] if pool == "same-file" else _name_pools()[pool]
    return _replace(text, tok, rng.choice(names))


def _op(rng, text, tokens):
    """An op of a chain replaced by another op (same arguments: often valid, always a test of the rules)."""
    ops = _name_pools()["op"]
    tok = _pick_where(rng, tokens, lambda t: t.type == "NAME" and t.value in ops)
    return None if tok is None else _replace(text, tok, rng.choice(ops))


def _small(rng, text, tokens):
    """An integer replaced by a small one: kernel sizes, strides, widths of 0 to 4 reach the emitters."""
    tok = _pick(rng, tokens, "INT")
    return None if tok is None else _replace(text, tok, str(rng.choice((0, 1, 1, 2, 2, 3, 4))))


def _keyword_arg(rng, text, tokens):
    """A keyword argument added to a call: `(` NAME ... becomes `(stride=2, ` NAME ..."""
    tok = _pick_where(rng, tokens, lambda t: t.type == "LPAR")
    if tok is None:
        return None
    return text[:tok.end] + f"{rng.choice(KEYWORD_ARGS)}={rng.choice(KEYWORD_VALUES)}, " + text[tok.end:]


def _pick_where(rng, tokens, keep):
    chosen = [t for t in tokens if keep(t)]
    return rng.choice(chosen) if chosen else None


def _dtype(rng, text, tokens):
    dtypes = [t for t in tokens if t.type == "NAME" and t.value in DTYPES]
    return _replace(text, rng.choice(dtypes), rng.choice(DTYPES)) if dtypes else None


def _delete_token(rng, text, tokens):
    return _replace(text, rng.choice(tokens), "")


def _duplicate_token(rng, text, tokens):
    tok = rng.choice(tokens)
    return _replace(text, tok, f"{tok.value} {tok.value}")


def _swap_tokens(rng, text, tokens):
    i = rng.randrange(len(tokens) - 1) if len(tokens) > 1 else None
    if i is None:
        return None
    a, b = tokens[i], tokens[i + 1]
    return text[:a.start] + b.value + text[a.end:b.start] + a.value + text[b.end:]


def _drop_bracket(rng, text, tokens):
    tok = _pick(rng, tokens, *BRACKETS)
    return None if tok is None else _replace(text, tok, "")


def _nest(rng, text, tokens):
    tok = _pick(rng, tokens, "INT", "FLOAT", "NAME")
    if tok is None:
        return None
    n = rng.choice(DEPTHS)
    form = rng.choice(("parens", "neg", "sum", "list"))
    if form == "parens":
        new = "(" * n + tok.value + " + 0" + ")" * n
    elif form == "neg":
        new = "- " * (n - n % 2) + tok.value
    elif form == "sum":
        new = " + ".join([tok.value] + ["0"] * n)
    else:
        new = "[" * n + tok.value + "]" * n + "[0]" * n
    return _replace(text, tok, new)


def _repeat(rng, text, tokens):
    """` * n` after a stage: after the `)` of a call or a name that follows `->`."""
    spots = [t for i, t in enumerate(tokens[1:], 1)
             if (t.type == "RPAR") or (t.type == "NAME" and tokens[i - 1].value == "->")]
    if not spots:
        return None
    tok = rng.choice(spots)
    return text[:tok.end] + " * " + rng.choice(REPEATS) + text[tok.end:]


def _lines(rng, text, tokens):
    lines = text.splitlines(keepends=True)
    if len(lines) < 2:
        return None
    i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
    how = rng.choice(("delete", "duplicate", "swap"))
    if how == "delete":
        del lines[i]
    elif how == "duplicate":
        lines.insert(j, lines[i])
    else:
        lines[i], lines[j] = lines[j], lines[i]
    return "".join(lines)


def _splice(rng, text, tokens):
    """A line of another zoo spec inserted at a random line."""
    _, other = rng.choice(corpus())
    donors = [line for line in other.splitlines(keepends=True) if line.strip()]
    lines = text.splitlines(keepends=True)
    lines.insert(rng.randrange(len(lines) + 1), rng.choice(donors))
    return "".join(lines)


MUTATIONS: tuple[Callable[[random.Random, str, list[Token]], str | None], ...] = (
    _literal, _literal, _small, _small, _small, _op, _op, _keyword_arg, _name, _name, _dtype, _delete_token, _duplicate_token, _swap_tokens,
    _drop_bracket, _nest, _repeat, _repeat, _lines, _splice)


# --- outcomes -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Outcome:
    kind: str  # one of OUTCOMES
    detail: str = ""  # the codes of a diagnostic, the exception of a traceback, what disagreed
    where: str = ""  # the innermost frame of a traceback: file:line in function
    error: str = ""  # the exception type, for deduplication

    def key(self) -> tuple[str, str, str]:
        """What tells one finding from another: the outcome, the exception type, the last frame."""
        return (self.kind, self.error, self.where)


def _from_exception(kind: str, err: BaseException) -> Outcome:
    frames = traceback.extract_tb(err.__traceback__)
    where = ""
    if frames:
        last = frames[-1]
        where = f"{_short(last.filename)}:{last.lineno} in {last.name}"
    message = str(err).splitlines()[0][:300] if str(err) else ""
    return Outcome(kind, f"{type(err).__name__}: {message}", where, type(err).__name__)


def _short(filename: str) -> str:
    for marker in ("/compiler/", "/runtime/", "/site-packages/", "/lib/python"):
        if marker in filename:
            return marker.strip("/") + "/" + filename.split(marker, 1)[1]
    return filename


def check_spec(text: str) -> Outcome:
    """The oracle for one spec's text (run in a child process: it builds modules and sessions)."""
    from .diagnostics import render_all
    from .pipeline import compile_file

    with tempfile.TemporaryDirectory(prefix="dlc-fuzz-") as tmp:
        path = Path(tmp) / "case.arch"
        path.write_text(text)
        result = compile_file(path)
        render_all(list(result.diagnostics), result.sources)  # rendering must not fail either
        errors = [d for d in result.diagnostics if d.severity == "error"]
        return classify_errors(errors) if errors else check_backends(path, result)


def classify_errors(errors) -> Outcome:
    """`diagnostic` if every error points at a line of a spec file, else `unlocated`."""
    unlocated = [d for d in errors if d.primary.span.line < 1 or d.primary.span.file == "<builtin>"]
    if unlocated:
        return Outcome("unlocated", f"{unlocated[0].code}: {unlocated[0].message}"[:300])
    return Outcome("diagnostic", ",".join(sorted({d.code for d in errors})))


def check_backends(path: Path, result) -> Outcome:
    """PyTorch (and for small networks ONNX) from a compilation without errors."""
    from .emit.torch.api import _execute
    from .emit.torch.file import emit_torch
    from .errors import EmitError

    try:
        namespace = _execute(emit_torch(result), path)
    except EmitError as err:
        return _refusal(err.diag.code, err.diag.message)
    refused = None
    for name, graph in result.graphs.items():
        outcome = _check_network(namespace, graph)
        if outcome.kind == "refused":
            refused = refused or outcome
        elif outcome.kind != "ok":
            return Outcome(outcome.kind, f"network `{name}`: {outcome.detail}", outcome.where, outcome.error)
    return refused or Outcome("ok")


def _refusal(code: str, message: str) -> Outcome:
    if code.startswith("E06"):
        return Outcome("refused", f"{code}: {message}"[:300])
    return Outcome("mismatch", f"a backend refused with {code}, not an E06xx: {message}"[:300])


def example_sizes(graph) -> dict[str, int]:
    """A size for every symbol of the graph: the spec's examples, B=1, else 2."""
    sizes = dict(graph.dim_examples)
    for value in graph.values:
        for d in value.type.shape if value.type is not None else ():
            for symbol in d.symbols():
                sizes.setdefault(symbol, 1 if symbol == "B" else 2)
    return sizes


def _check_network(namespace, graph) -> Outcome:
    import torch

    from .checkpoint import tie_aliases
    from .passes.cost import count_costs

    sizes = example_sizes(graph)
    cost = count_costs(graph, sizes)
    cls = getattr(namespace, graph.name)
    try:
        with torch.device("meta"):
            module = cls()
    except Exception as err:  # noqa: BLE001 - any failure to build is the finding
        return _from_exception("mismatch", err)
    state = module.state_dict()  # persistent buffers only: a mask derived from the attributes is no weight
    counted = (sum(p.numel() for p in module.parameters()),
               sum(b.numel() for name, b in module.named_buffers() if name in state))
    if counted != (cost.trainable_params, cost.buffers):
        return Outcome("mismatch", f"the module has {counted[0]:,} parameters and {counted[1]:,} buffer "
                                   f"elements; the summary says {cost.trainable_params:,} and {cost.buffers:,}")
    aliases = tie_aliases(graph)
    got = {k: tuple(v.shape) for k, v in state.items() if k not in aliases}
    expected = {w.name: tuple(w.shape) for w in graph.weights}
    if got != expected:
        wrong = sorted(set(got.items()) ^ set(expected.items()))[:4]
        return Outcome("mismatch", f"state_dict and graph weights differ: {wrong}")
    small = cost.trainable_params + cost.buffers <= SMALL_WEIGHTS and cost.activation_bytes <= SMALL_ACTIVATIONS
    return _run_both(cls, graph, sizes) if small else Outcome("ok")


def _run_both(cls, graph, sizes: dict[str, int]) -> Outcome:
    """Forward in PyTorch on example inputs, then the same weights and inputs in ONNX Runtime."""
    import numpy as np
    import torch

    torch.manual_seed(0)
    try:
        module = cls().eval()
        feeds = _inputs(graph, sizes)
        with torch.no_grad():
            outs = module(*(torch.from_numpy(feeds[n]) for n, _ in graph.inputs))
    except Exception as err:  # noqa: BLE001
        return _from_exception("mismatch", err)
    outs = outs if isinstance(outs, tuple) else (outs,)
    if len(outs) != len(graph.outputs):
        return Outcome("mismatch", f"forward returned {len(outs)} outputs, the graph has {len(graph.outputs)}")
    for (name, vid), out in zip(graph.outputs, outs, strict=True):
        want = tuple(d.evaluate(sizes) for d in graph.values[vid].type.shape)
        if tuple(out.shape) != want:
            return Outcome("mismatch", f"output `{name}` is {tuple(out.shape)} in PyTorch, {want} in the IR")
    weights = {k: v.detach().numpy() for k, v in module.state_dict().items()}
    expected = [o.detach().numpy() for o in outs]
    return _check_onnx(graph, weights, feeds, expected, np)


def _inputs(graph, sizes: dict[str, int]) -> dict:
    import numpy as np

    rng = np.random.default_rng(0)
    feeds = {}
    for name, vid in graph.inputs:
        t = graph.values[vid].type
        shape = [d.evaluate(sizes) for d in t.shape]
        if t.dtype in ("i64", "i32", "u8"):  # ids: zeros are valid for every vocabulary
            feeds[name] = np.zeros(shape, {"i64": np.int64, "i32": np.int32, "u8": np.uint8}[t.dtype])
        elif t.dtype == "bool":
            feeds[name] = np.zeros(shape, np.bool_)
        else:
            dtype = {"f64": np.float64, "f16": np.float16}.get(t.dtype, np.float32)
            feeds[name] = rng.standard_normal(shape).astype(dtype)
    return feeds


def _check_onnx(graph, weights: dict, feeds: dict, expected: list, np) -> Outcome:
    import onnx
    import onnxruntime as ort

    from .emit.onnx.model import emit_onnx
    from .errors import EmitError

    try:
        model = emit_onnx(graph, {w.name: weights[w.name] for w in graph.weights})
    except EmitError as err:
        return _refusal(err.diag.code, err.diag.message)
    try:
        onnx.checker.check_model(model)
        options = ort.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        got = session.run([n for n, _ in graph.outputs], feeds)
    except Exception as err:  # noqa: BLE001
        return _from_exception("mismatch", err)
    for (name, _), g, e in zip(graph.outputs, got, expected, strict=True):
        if g.shape != e.shape:
            return Outcome("mismatch", f"output `{name}` is {g.shape} in ONNX Runtime, {e.shape} in PyTorch")
        if not _close(np, g, e):
            return Outcome("mismatch", f"output `{name}` differs between ONNX Runtime and PyTorch")
    return Outcome("ok")


def _close(np, got, expected) -> bool:
    if got.dtype == np.bool_ or expected.dtype == np.bool_:
        return bool(np.array_equal(got, expected))
    g, e = got.astype(np.float64), expected.astype(np.float64)
    finite = np.isfinite(g) & np.isfinite(e)
    if not np.array_equal(np.isfinite(g), np.isfinite(e)):
        return False
    scale = max(1.0, float(np.abs(e[finite]).max())) if finite.any() else 1.0
    return bool(np.allclose(g[finite], e[finite], rtol=1e-3, atol=1e-3 * scale))


# --- running cases in child processes -------------------------------------------------------------

PRELOAD = ["torch", "onnx", "onnxruntime", "black", "jinja2", "dlc.compiler.fuzz", "dlc.compiler.pipeline",
           "dlc.compiler.emit.torch.file", "dlc.compiler.emit.onnx.model"]


@lru_cache(maxsize=1)
def _context():
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)
    return context


def _child(conn, check: Callable[[str], Outcome], text: str, memory: int) -> None:
    """In the child: limits, one thread, the check, its outcome sent back."""
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    os.environ["OMP_NUM_THREADS"] = "1"
    try:
        import torch

        torch.set_num_threads(1)
        outcome = check(text)
    except MemoryError as err:
        outcome = _from_exception("memory", err)
    except BaseException as err:  # noqa: BLE001 - every escape is the finding, SystemExit too
        outcome = _from_exception("traceback", err)
    conn.send(outcome)
    conn.close()


@dataclass
class _Running:
    process: multiprocessing.process.BaseProcess
    conn: multiprocessing.connection.Connection
    started: float


def run_texts(texts: Iterable[tuple[object, str]], check: Callable[[str], Outcome] = check_spec, jobs: int = 1,
              seconds: float = CASE_SECONDS, memory: int = CASE_MEMORY) -> Iterator[tuple[object, Outcome]]:
    """(tag, outcome) for each (tag, text), each in its own child process, `jobs` at a time,
    in the order they finish. `check` must be importable by the child (a module-level function)."""
    pending = iter(texts)
    running: dict[object, _Running] = {}
    tags: dict[int, object] = {}
    exhausted = False
    while running or not exhausted:
        while not exhausted and len(running) < jobs:
            try:
                tag, text = next(pending)
            except StopIteration:
                exhausted = True
                break
            running[id(tag)] = _start(check, text, memory)
            tags[id(tag)] = tag
        if not running:
            break
        now = time.monotonic()
        timeout = max(0.0, min(r.started + seconds for r in running.values()) - now)
        ready = multiprocessing.connection.wait([r.conn for r in running.values()], timeout)
        for key, r in list(running.items()):
            outcome = None
            if r.conn in ready:
                outcome = _collect(r)
            elif time.monotonic() - r.started > seconds:
                r.process.kill()
                outcome = Outcome("hang", f"still running after {seconds:g} s")
            if outcome is not None:
                r.process.join()
                r.conn.close()
                del running[key]
                yield tags.pop(key), outcome


def _start(check, text: str, memory: int) -> _Running:
    context = _context()
    receive, send = context.Pipe(duplex=False)
    process = context.Process(target=_child, args=(send, check, text, memory), daemon=True)
    process.start()
    send.close()
    return _Running(process, receive, time.monotonic())


def _collect(r: _Running) -> Outcome:
    try:
        return r.conn.recv()
    except EOFError:  # died without a word
        r.process.join(5)
        code = r.process.exitcode
        if code == -9:
            return Outcome("memory", "killed (SIGKILL: out of memory?)", error="SIGKILL")
        return Outcome("crash", f"the child exited with {code} and no result", error=f"exit {code}")


def run_campaign(seed: int, count: int | None = None, jobs: int = 1, minutes: float | None = None,
                 seconds: float = CASE_SECONDS, memory: int = CASE_MEMORY) -> Iterator[tuple[Case, Outcome]]:
    """Cases 0, 1, 2, ... of `seed` through `check_spec`: `count` of them, or as many as start
    within `minutes`."""
    deadline = time.monotonic() + 60 * minutes if minutes is not None else None

    def cases() -> Iterator[tuple[Case, str]]:
        index = 0
        while (count is None or index < count) and (deadline is None or time.monotonic() < deadline):
            case = make_case(seed, index)
            yield case, case.text
            index += 1

    yield from run_texts(cases(), check_spec, jobs, seconds, memory)
