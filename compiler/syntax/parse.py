"""Parse `.arch` text into the AST (Lark LALR with positions, then a Transformer)."""
from __future__ import annotations

import difflib
import hashlib
import os
import re
import stat
import sys
from contextlib import suppress
from functools import lru_cache
from pathlib import Path

from typing import Any, Iterator

import lark
from lark import Lark, Token, Transformer, Tree, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken
from lark.lark import PostLex

from .. import limits, messages
from ..diagnostics import Diagnostics
from ..source import Span
from . import ast

GRAMMAR = Path(__file__).with_name("grammar.lark")


class _Retype(PostLex):
    """Retypes tokens that one token of lookahead cannot type, from the words around them.

    The `if` of a conditional expression (`a if c else b`) becomes IF_EXPR: newlines are not
    significant, so after `let w = a` an `if` may start a statement or continue the expression.
    What tells them apart is what comes first after the `if` at its own bracket depth: the `else`
    of a conditional (nested conditionals counted), or the `{` of a statement's body.

    The words of training definitions are keywords only where such a statement begins: `train`
    before `NAME {` at the top level; `model`, `data`, `config`, `optimizer`, `schedule`, `step`,
    `show` followed by a name at the start of a statement in a train body (`optimizer` and
    `schedule` in a step body too); `from` and `freeze` in a `model` statement. Everywhere else
    they are names (`slice(step=2)`, a parameter `data`, a label `model:`, `data = x -> relu`).

    Both look at the text, not the token stream: the contextual lexer lexes each token for the
    parser state it is read in, so tokens cannot be read ahead."""

    always_accept = ("IF", "NAME")

    def __init__(self) -> None:
        self.text = ""

    def process(self, stream: Iterator[Token]) -> Iterator[Token]:
        bodies: list[str] = []  # what each open `{` opened: "train", "step" or "other"
        opening = "other"  # what the next `{` opens
        prev: Token | None = None
        in_model = False
        for tok in stream:
            if tok.type == "IF" and _is_conditional(self.text, tok.end_pos):
                tok = Token.new_borrow_pos("IF_EXPR", tok.value, tok)
            elif tok.type == "NAME":
                kind = self._train_word(tok, bodies, prev, in_model)
                if kind is not None:
                    in_model = kind == "_MODEL" or (in_model and kind in ("_FROM", "_FREEZE"))
                    opening = {"_TRAIN": "train", "_STEP": "step"}.get(kind, opening)
                    tok = Token.new_borrow_pos(kind, tok.value, tok)
            elif tok.value in _STATEMENT_KEYWORDS:
                in_model = False
            if tok.value == "{":
                bodies.append(opening)
                opening = "other"
            elif tok.value == "}" and bodies:
                bodies.pop()
                in_model = False
            prev = tok
            yield tok

    def _train_word(self, tok: Token, bodies: list[str], prev: Token | None, in_model: bool) -> str | None:
        word = tok.value
        after = _next_words(self.text, tok.end_pos, 2)
        if word == "train":
            return "_TRAIN" if not bodies and len(after) == 2 and after[0].isidentifier() and after[1] == "{" else None
        if not bodies or bodies[-1] not in ("train", "step") or not _ends_operand(prev):
            return None
        if word in ("from", "freeze"):
            return f"_{word.upper()}" if in_model and bodies[-1] == "train" else None
        words = _TRAIN_WORDS if bodies[-1] == "train" else _STEP_WORDS
        if word in words and after and after[0].isidentifier() and after[0] not in _STATEMENT_KEYWORDS:
            return f"_{word.upper()}"
        return None


_TRAIN_WORDS = ("model", "data", "config", "optimizer", "schedule", "step", "show")
_STEP_WORDS = ("optimizer", "schedule")
_STATEMENT_KEYWORDS = ("input", "param", "output", "let", "for", "if", "else", "assert", "in")


def _ends_operand(prev: Token | None) -> bool:
    """Whether a statement may begin after `prev`: the start of a body, or the end of an operand
    (never after `->`, `:`, `,`, `(`, `=`, an operator or a keyword that expects more)."""
    if prev is None or prev.value in ("{", "}", ";", ")", "]", "true", "false", "none"):
        return True
    return prev.type in ("NAME", "INT", "FLOAT", "STRING")


def _next_words(text: str, pos: int, n: int) -> list[str]:
    out = []
    for m in _WORDS.finditer(text, pos):
        word = m.group()
        if word.startswith("#"):
            continue
        out.append(word)
        if len(out) == n:
            break
    return out


# Strings and comments (skipped whole), words, numbers, and single characters.
_WORDS = re.compile(r'"(?:\\.|[^"\\\n])*"|#[^\n]*|[A-Za-z_][A-Za-z0-9_]*|[0-9]+(?:\.[0-9]*)?(?:[eE][-+]?[0-9]+)?|\S')


def _is_conditional(text: str, pos: int) -> bool:
    """Whether the `if` ending at `pos` is a conditional expression's: its `else` comes before a
    `{` at its bracket depth (a closing bracket or the end of the text first: an unfinished
    conditional, which the parser then reports as missing its `else`)."""
    depth = pending = 0
    for m in _WORDS.finditer(text, pos):
        word = m.group()
        if word in ("(", "["):
            depth += 1
        elif word in (")", "]"):
            if depth == 0:
                return True
            depth -= 1
        elif depth == 0 and word == "{":
            return False
        elif depth == 0 and word == "if":
            pending += 1
        elif depth == 0 and word == "else":
            if pending == 0:
                return True
            pending -= 1
    return True


LARK_OPTIONS = {"parser": "lalr", "propagate_positions": True, "maybe_placeholders": True, "start": ["start", "expr"]}


def _parse_tree(text: str, start: str) -> Tree:
    parser = _parser()
    parser.options.postlex.text = text  # the parser's own _Retype (one read from the cache is a copy)
    return parser.parse(text, start=start)


@lru_cache(maxsize=1)
def _parser() -> Lark:
    """The LALR parser of `grammar.lark`. Computing its tables is most of the front end's start-up,
    so they are cached, with Lark's own `save` and `load` ("useful for caching"), in a file named
    by the hash of the grammar, the options, Lark's version and Python's (`_cache_file`). The file
    is written under a temporary name and renamed into place whole: no process reads one half
    written. One that cannot be read (corrupt, truncated) is built anew and replaced; a cache
    directory that cannot be made or written only means building the tables in every process.
    (Lark's `cache=` option cannot be written that way: the hash in its file covers the option's
    own value, the file name, so a file renamed into place never matches.) A Lark cache is a
    pickle: one that is not this user's, or that others may write, is never read."""
    grammar = GRAMMAR.read_text()
    cache = _cache_file(grammar)
    parser = _read_cache(cache) if cache is not None else None
    if parser is None:
        parser = Lark(grammar, postlex=_Retype(), **LARK_OPTIONS)
        if cache is not None:
            _write_cache(parser, cache)
    return parser


def _cache_file(grammar: str) -> Path | None:
    """`$DLC_CACHE`, else `$XDG_CACHE_HOME/dlc`, else `~/.cache/dlc`, then `parser/arch-HASH.lark`;
    None when that directory cannot be made."""
    base = os.environ.get("DLC_CACHE") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "dlc"
    what = f"{grammar}\0{sorted(LARK_OPTIONS.items())}\0lark {lark.__version__}\0python {sys.version_info[:2]}"
    directory = Path(base) / "parser"
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return directory / f"arch-{hashlib.sha256(what.encode()).hexdigest()[:16]}.lark"


def _read_cache(file: Path) -> Lark | None:
    try:
        st = file.stat()
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return None
    try:
        with open(file, "rb") as f:
            return Lark.load(f)
    except Exception:  # noqa: BLE001 - a cache file may hold anything: build the tables anew
        return None


def _write_cache(parser: Lark, file: Path) -> None:
    tmp = file.with_name(f".{file.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            parser.save(f)
        os.replace(tmp, file)
    except OSError:
        with suppress(OSError):
            tmp.unlink(missing_ok=True)


def parse(text: str, path: str, diags: Diagnostics) -> ast.Module | None:
    """Parse one file; on a syntax error, report it to `diags` and return None."""
    try:
        tree = _parse_tree(text, "start")
    except UnexpectedInput as err:
        diags.add(_syntax_error(err, text, path))
        return None
    deep = _too_deep(tree, limits.MAX_NESTING)
    if deep is not None:  # before the Transformer, which recurses once per level
        diags.add(messages.nesting_too_deep(Span(path, *deep), limits.MAX_NESTING))
        return None
    bad = [_bad_escape(t, path) for t in tree.scan_values(lambda v: isinstance(v, Token) and v.type == "STRING")]
    if any(bad):
        diags.extend(b for b in bad if b is not None)
        return None
    items = _ToAst(path, text).transform(tree)
    return ast.Module(path, tuple(items.children))


def _too_deep(tree: Tree, limit: int) -> tuple[int, int, int, int] | None:
    """Where the first subtree nested more than `limit` levels deep starts (line, column, end line,
    end column), or None; found without recursion (Lark's LALR parser builds trees of any depth
    without it). A subtree with no position of its own (`[]`, `not` alone) takes its parent's."""
    stack: list[tuple[Tree, int, tuple[int, int, int, int]]] = [(tree, 1, (1, 1, 1, 1))]
    while stack:
        node, depth, where = stack.pop()
        meta = node.meta
        if not meta.empty:
            where = (meta.line, meta.column, meta.end_line, meta.end_column)
        if depth > limit:
            return where
        stack.extend((child, depth + 1, where) for child in reversed(node.children) if isinstance(child, Tree))
    return None


def parse_literal(text: str) -> Any:
    """A literal value as written in a spec (`10`, `0.5`, `-3`, `true`, `none`, `"relu"`,
    `[6, 12, 24, 16]`), as the evaluator holds it (lists as tuples); ValueError for any other
    text (names, arithmetic, syntax errors): the command line gives values, not expressions."""
    try:
        tree = _parse_tree(text, "expr")
    except UnexpectedInput:
        raise ValueError(text) from None
    return _literal(_ToAst("<value>", text).transform(tree))


def _literal(e: ast.Expr) -> Any:
    if isinstance(e, ast.Literal):
        return e.value
    if isinstance(e, ast.ListExpr):
        return tuple(_literal(x) for x in e.items)
    if isinstance(e, ast.UnaryOp) and e.op == "-" and isinstance(e.operand, ast.Literal) \
            and isinstance(e.operand.value, (int, float)) and not isinstance(e.operand.value, bool):
        return -e.operand.value
    raise ValueError(e)


def _syntax_error(err: UnexpectedInput, text: str, path: str):
    if isinstance(err, UnexpectedCharacters):
        span = Span(path, err.line, err.column, err.line, err.column + 1)
        found = text[err.pos_in_stream] if err.pos_in_stream < len(text) else "end of file"
        return messages.unexpected_char(span, found, _expected(err.allowed or ()))
    if isinstance(err, UnexpectedEOF) or (isinstance(err, UnexpectedToken) and err.token.type == "$END"):
        lines = text.splitlines() or [""]
        span = Span(path, len(lines), len(lines[-1]) + 1, len(lines), len(lines[-1]) + 2)
        return messages.unexpected_eof(span, _expected(err.expected))
    assert isinstance(err, UnexpectedToken)
    tok = err.token
    span = Span(path, tok.line, tok.column, tok.end_line or tok.line, tok.end_column or tok.column + len(tok))
    return messages.unexpected_token(span, str(tok), _expected(err.accepts or err.expected),
                                     _misspelled_keyword(text, tok))


_KEYWORDS = ("input", "param", "output", "let", "for", "if", "else", "assert", "import", "block", "network",
             "train", "model", "data", "config", "optimizer", "schedule", "step", "show", "from", "freeze")


def _misspelled_keyword(text: str, tok: Token) -> str | None:
    """`inptu x: ...` fails at `x`; the word before it may be a misspelled keyword."""
    line = text.splitlines()[tok.line - 1][: tok.column - 1].split()
    if len(line) != 1 or not line[0].isidentifier() or line[0] in _KEYWORDS:
        return None
    close = difflib.get_close_matches(line[0], _KEYWORDS, n=1, cutoff=0.7)
    return close[0] if close else None


# Tokens that would only continue an expression; listing them buries the useful suggestions.
_CONTINUATIONS = {"ADD_OP", "MUL_OP", "COMP_OP", "[", ".", "(", "or", "and", "*", "**", "-", "IF_EXPR"}


def _expected(names) -> list[str]:
    """Terminal names as the text a user would type, expression continuations dropped."""
    terminals = {t.name: t for t in _parser().terminals}
    texts = set()
    for name in names:
        if name.startswith("_") and name[1:].lower() in (*_TRAIN_WORDS, "train", "from", "freeze"):
            texts.add(name[1:].lower())  # a word of training definitions (declared: no pattern)
            continue
        term = terminals.get(name)
        texts.add(term.pattern.value if term is not None and term.pattern.type == "str" else name)
    return sorted(texts - _CONTINUATIONS or texts)


def _tok_span(path: str, tok: Token) -> Span:
    return Span(path, tok.line, tok.column, tok.end_line, tok.end_column)


@v_args(meta=True)
class _ToAst(Transformer):
    """Builds AST nodes bottom-up; each method mirrors one grammar rule."""

    def __init__(self, path: str, source: str) -> None:
        super().__init__()
        self.path = path
        self._source = source

    def _span(self, meta) -> Span:
        if getattr(meta, "empty", True):
            return Span(self.path, 0, 0, 0, 0)
        return Span(self.path, meta.line, meta.column, meta.end_line, meta.end_column)

    # top level
    def import_stmt(self, meta, c):
        return ast.Import(_unquote(c[0]), str(c[1]) if c[1] else None, self._span(meta))

    def def_(self, meta, c):
        *decorators, kind, name, params, body = _split_def(c)
        return ast.Def(str(kind), str(name), params, body, tuple(decorators), self._span(meta), _tok_span(self.path, name))

    def def_kind(self, meta, c):
        return str(c[0])

    def decorator(self, meta, c):
        return ast.Decorator(str(c[0]), tuple(c[1] or ()), self._span(meta))

    def param_list(self, meta, c):
        return tuple(p for p in c if p is not None)

    def param(self, meta, c):
        return ast.Param(str(c[0]), c[1], self._span(meta))

    # training definitions
    def train_def(self, meta, c):
        name, items = c[0], _flatten(c[1:])
        models = tuple(i for i in items if isinstance(i, ast.Model))
        settings = tuple(i for i in items if isinstance(i, ast.Setting))
        steps = tuple(i for i in items if isinstance(i, ast.Step))
        body = tuple(i for i in items if not isinstance(i, (ast.Model, ast.Setting, ast.Step)))
        return ast.Train(str(name), models, settings, body, steps, self._span(meta), _tok_span(self.path, name))

    def model_stmt(self, meta, c):
        name, (callee, callee_span), args, weights, freeze = c
        return ast.Model(str(name), callee, tuple(args or ()), weights, freeze, self._span(meta), callee_span)

    def data_stmt(self, meta, c):
        return self._setting(meta, "data", c[0], c[1])

    def config_stmt(self, meta, c):
        return ast.Setting("config", "config", tuple(c[0] or ()), self._span(meta), self._span(meta))

    def optimizer_stmt(self, meta, c):
        return self._setting(meta, "optimizer", c[0], c[1], targets=c[2] or ())

    def schedule_stmt(self, meta, c):
        return self._setting(meta, "schedule", c[0], c[1])

    def show_stmt(self, meta, c):
        label, name, args = c
        return self._setting(meta, "show", name, args, label=str(label) if label else None)

    def _setting(self, meta, kind, name, args, targets=(), label=None):
        return ast.Setting(kind, str(name), tuple(args or ()), self._span(meta), _tok_span(self.path, name),
                           tuple(targets), label)

    def step_def(self, meta, c):
        name, args, items = c[0], c[1], _flatten(c[2:])
        settings = tuple(i for i in items if isinstance(i, ast.Setting))
        body = tuple(i for i in items if not isinstance(i, ast.Setting))
        return ast.Step(str(name), tuple(args or ()), settings, body, self._span(meta), _tok_span(self.path, name))

    # statements
    def input_stmt(self, meta, c):
        return tuple(c)

    def input_item(self, meta, c):
        return ast.Input(str(c[0]), c[1], self._span(meta))

    def tensor_type(self, meta, c):
        return ast.TensorTypeExpr(str(c[0]) if c[0] else None, tuple(c[1:]), self._span(meta))

    def dim_expr(self, meta, c):
        return c[0]

    def dim_example(self, meta, c):
        return ast.DimExample(str(c[0]), int(c[1]), self._span(meta))

    def param_stmt(self, meta, c):
        return ast.ParamTensor(str(c[0]), c[1], c[2], self._span(meta))

    def output_stmt(self, meta, c):
        return tuple(c)

    def output_item(self, meta, c):
        return ast.Output(str(c[0]), c[1], self._span(meta))

    def let_stmt(self, meta, c):
        return ast.Let(str(c[0]), c[1], self._span(meta))

    def bind_stmt(self, meta, c):
        return ast.Bind(c[0], c[1], self._span(meta))

    def names(self, meta, c):
        return tuple(str(t) for t in c)

    def for_stmt(self, meta, c):
        return ast.For(c[0], c[1], _flatten(c[2:]), self._span(meta))

    def if_stmt(self, meta, c):
        *then, orelse = c[1:]
        return ast.If(c[0], _flatten(then), orelse or (), self._span(meta))

    def else_part(self, meta, c):
        return _flatten(c)

    def assert_stmt(self, meta, c):
        return ast.Assert(c[0], _unquote(c[1]) if c[1] else None, self._span(meta))

    # chains
    def chain(self, meta, c):
        return ast.Chain(c[0], tuple(c[1:]), self._span(meta))

    def source_name(self, meta, c):
        return (ast.Name(str(c[0]), _tok_span(self.path, c[0])),)

    def source_tuple(self, meta, c):
        return tuple(ast.Name(str(t), _tok_span(self.path, t)) for t in c)

    def stage(self, meta, c):
        label, (callee, callee_span), args, repeat = c
        text, parts = label if label else (None, ())
        return ast.Stage(text, callee, args, repeat, self._span(meta), callee_span, parts)

    def label(self, meta, c):
        """(the label as written, its pieces): `("conv1", ())`, or for `denselayer{i + 1}` the
        text and ("denselayer", <i + 1>); a plain label has no pieces."""
        if len(c) == 1:
            return str(c[0]), ()
        parts = [str(c[0]), *(p for part in c[1:] for p in part)]
        return self._text(meta), tuple(parts)

    def label_part(self, meta, c):
        expr, tail = c
        return (expr, str(tail)) if tail else (expr,)

    def _text(self, meta) -> str:
        """The source text a rule covers (a numbered label, for messages), spaces collapsed."""
        return " ".join(self._source[meta.start_pos:meta.end_pos].split())

    def qualname(self, meta, c):
        return tuple(str(t) for t in c), self._span(meta)

    def call_args(self, meta, c):
        return tuple(c[0] or ())

    def args(self, meta, c):
        return tuple(a for a in c if a is not None)

    def pos_arg(self, meta, c):
        return ast.Arg(None, c[0], self._span(meta))

    def kw_arg(self, meta, c):
        return ast.Arg(str(c[0]), c[1], self._span(meta))

    # expressions
    def cond(self, meta, c):
        then, _, test, orelse = c
        return ast.IfExpr(test, then, orelse, self._span(meta))

    def or_(self, meta, c):
        return ast.BinOp("or", c[0], c[1], self._span(meta))

    def and_(self, meta, c):
        return ast.BinOp("and", c[0], c[1], self._span(meta))

    def not_(self, meta, c):
        return ast.UnaryOp("not", c[0], self._span(meta))

    def compare(self, meta, c):
        return ast.BinOp(str(c[1]), c[0], c[2], self._span(meta))

    def binop(self, meta, c):
        return ast.BinOp(str(c[1]), c[0], c[2], self._span(meta))

    def neg(self, meta, c):
        return ast.UnaryOp("-", c[0], self._span(meta))

    def pow(self, meta, c):
        return ast.BinOp("**", c[0], c[1], self._span(meta))

    def call(self, meta, c):
        return ast.Call(c[0], tuple(c[1] or ()), self._span(meta))

    def index(self, meta, c):
        return ast.Index(c[0], c[1], self._span(meta))

    def attr(self, meta, c):
        return ast.Attr(c[0], str(c[1]), self._span(meta))

    def int_(self, meta, c):
        return ast.Literal(int(c[0]), self._span(meta))

    def float_(self, meta, c):
        return ast.Literal(float(c[0]), self._span(meta))

    def string(self, meta, c):
        return ast.Literal(_unquote(c[0]), self._span(meta))

    def true(self, meta, c):
        return ast.Literal(True, self._span(meta))

    def false(self, meta, c):
        return ast.Literal(False, self._span(meta))

    def none(self, meta, c):
        return ast.Literal(None, self._span(meta))

    def name(self, meta, c):
        return ast.Name(str(c[0]), self._span(meta))

    def list_(self, meta, c):
        return ast.ListExpr(tuple(x for x in c if x is not None), self._span(meta))

    def start(self, meta, c):
        return _Items(_flatten(c))


class _Items:
    def __init__(self, children):
        self.children = children


def _bad_escape(token: Token, path: str):
    """E0005 for the first backslash escape of a string literal other than `\\"` and `\\\\`, else None."""
    for m in re.finditer(r"\\(.)", str(token)):  # left to right, so `\\n` is an escaped backslash, then n
        if m.group(1) not in '"\\':
            col = token.column + m.start()
            return messages.unknown_escape(Span(path, token.line, col, token.line, col + 2), m.group())
    return None


def _unquote(token: Token) -> str:
    """The text of a string literal: quotes removed, `\\"` and `\\\\` unescaped."""
    return re.sub(r"\\(.)", r"\1", str(token)[1:-1])


def _split_def(c):
    """def: decorator* DEF_KIND NAME [param_list] "{" stmt* "}" -> pieces."""
    i = 0
    decorators = []
    while isinstance(c[i], ast.Decorator):  # then the kind ("block"/"network") and the name
        decorators.append(c[i])
        i += 1
    kind, name, params = c[i], c[i + 1], c[i + 2] or ()
    return (*decorators, kind, name, params, _flatten(c[i + 3:]))


def _flatten(items) -> tuple:
    """Statements may come back as tuples (`input a, b`); `;` yields nothing."""
    out: list = []
    for item in items:
        if item is None or isinstance(item, Token):
            continue
        if isinstance(item, tuple):
            out.extend(_flatten(item))
        else:
            out.append(item)
    return tuple(out)
