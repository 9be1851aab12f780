"""The PyTorch emitter's file writer: one readable `nn.Module` class per network and per block.

Assumes: a compilation without errors (typed graphs whose block instances are recorded).
Guarantees: a Python file whose classes mirror the spec's definitions: constructor
parameters are the spec's parameters, `__init__` builds the named submodules, `forward`
reads like the spec's chains with each line's output shape as a comment, and the
`state_dict` keys equal the compiler's weight names. Same spec, same bytes.

Sizes the spec leaves to inference (a convolution's input channels) are written as
expressions where the spec gives one (`cout`), as literals where every use agrees, and
otherwise as extra constructor arguments (`in_channels`) that callers fill in, or as
running size variables in `__init__` loops -- the way hand-written PyTorch tracks them.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import jinja2

from ...passes.resolve import DefRef
from ...pipeline import Compilation
from .instances import DefKey, InstanceIndex
from .classes import ClassWriter
from .code import FixedPointError, module_names

from .text import PyClass, docstring, emit_error, header_comment

def _templates() -> Path:
    import dlc.templates

    return Path(dlc.templates.__file__).parent / "torch"


TEMPLATES = _templates()
SETTLE_ROUNDS = 8  # each round can only add size parameters or exposed sizes, of which there are few


def emit_torch(result: Compilation, standalone: bool = False) -> str:
    """The Python source of every network in the compiled file (and the blocks they use), black-formatted.

    The helper layers a model needs beyond torch.nn are imported from `dlc.runtime.layers`, or
    with `standalone` copied into the file (which then needs only torch)."""
    import black

    result.raise_for_errors()
    return black.format_str(FileWriter(result, standalone).write(), mode=black.Mode(line_length=110))


class FileWriter:
    def __init__(self, result: Compilation, standalone: bool = False) -> None:
        self.result = result
        self.standalone = standalone
        self.resolved = result.resolved
        self.graphs = list(result.graphs.values())
        self.index = InstanceIndex(self.graphs, self.resolved.program.root)
        self.classes: dict[DefKey, PyClass] = {}
        self.size_params: dict[DefKey, list[tuple[str, int, int]]] = {}  # class -> (arg, input, dim)
        self.input_symbols: dict[DefKey, dict[str, tuple[int, int]]] = {}  # class -> its input sizes' symbols
        # what callers pass, learned in this round; `heard` is the previous round's, which classes read
        self.varying_inputs: dict[DefKey, set[tuple[int, int]]] = {}  # class -> (input, dim) a caller computes
        self.param_matches: dict[DefKey, dict[tuple[int, int], set[str]]] = {}  # (input, dim) -> params every caller sets to it
        self.heard: tuple[dict, dict] = ({}, {})
        self.exposed: dict[DefKey, set[tuple[int, int]]] = {}  # class -> (output, dim) exposed as attributes
        self.names: dict[DefKey, str] = {}
        self.out_exprs: dict[DefKey, list] = {}  # class -> output size expressions in its own terms
        self.init_functions: dict[str, list[str]] = {}  # weight-init functions the networks apply

    def write(self) -> str:
        order = self._reachable()
        # Classes tell each other things: a child its size parameters and exposed sizes (read by
        # its callers, which may come earlier in `order`: a def that recurses), the callers what
        # they pass (read by the child, written before them). Each round reads what the round
        # before learned about callers (`heard`) and learns it afresh; the file is written when a
        # round learns nothing new.
        for _ in range(SETTLE_ROUNDS):
            before = self._settled()
            self.varying_inputs, self.param_matches = {}, {}
            self.classes = {key: ClassWriter(self, key, ref).write() for key, ref in order}
            self.heard = (self.varying_inputs, self.param_matches)
            if self._settled() == before:
                break
        else:
            raise FixedPointError(f"size parameters of {self.result.path} did not settle in {SETTLE_ROUNDS} rounds")
        helpers = set().union(*(c.helpers for c in self.classes.values()))
        used = module_names(self._render(order, [], []))
        needed = sorted(helpers & used)
        if not self.standalone:
            return self._render(order, [], _imports(used, needed))
        inlined = _with_dependencies(needed)
        text = self._render(order, inlined, [])
        return self._render(order, inlined, _imports(module_names(text), []))

    def _settled(self) -> str:
        """What classes tell each other; the file is written when a round leaves it unchanged."""
        return repr((self.size_params, sorted((k, sorted(v)) for k, v in self.exposed.items()), self.input_symbols,
                     sorted((k, sorted(v)) for k, v in self.varying_inputs.items()),
                     sorted((k, sorted((w, sorted(s)) for w, s in v.items())) for k, v in self.param_matches.items())))

    def _render(self, order, helpers: list[str], imports: list[list[str]]) -> str:
        env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), undefined=jinja2.StrictUndefined,
                                 trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
        return env.get_template("module.py.j2").render(
            header=self._header(), doc=self._module_doc(), imports=imports, helpers=helpers,
            init_functions=[self.init_functions[k] for k in sorted(self.init_functions)],
            classes=[self.classes[k] for k, _ in order],
            exports=[self.classes[k].name for k, _ in order])

    def _reachable(self) -> list[tuple[DefKey, DefRef]]:
        """Defs to emit, callees before callers, in a deterministic order."""
        out: list[tuple[DefKey, DefRef]] = []
        seen: set[DefKey] = set()
        for graph in self.graphs:
            calls = sorted(graph.calls, key=lambda c: -c.frame.path.count("."))
            for call in calls:
                key = (call.frame.module, call.frame.block)
                if key not in seen:
                    seen.add(key)
                    out.append((key, self.resolved.scopes[key[0]].defs[key[1]]))
            key = (self.resolved.program.root, graph.name)
            if key not in seen:
                seen.add(key)
                out.append((key, self.resolved.scopes[key[0]].defs[key[1]]))
        # The root's networks keep their names (`dlc.torch_module` and users look them up by name);
        # other classes give way to them, to each other (two imported blocks of one name) and to
        # the module-level names of the generated file (its imports and dlc.runtime.layers' helpers).
        reserved = GENERATED_GLOBALS | set(_helper_sources())
        networks = {(self.resolved.program.root, g.name) for g in self.graphs}
        for key, ref in out:
            if key in networks and key[1] in reserved:
                raise emit_error(ref.node.name_span, f"a network named `{key[1]}`: the generated module already "
                                 f"has a global of that name ({_what_global(key[1])}); rename the network")
        taken = set(reserved) | {key[1] for key in networks}
        for key, _ in out:
            name = key[1]
            if key not in networks:
                while name in taken:
                    name += "_"
                taken.add(name)
            self.names[key] = name
        return out

    def _header(self) -> str:
        return (f"# Generated by dlc from {self.result.path} (sources sha256:{self.result.content_hash()[:16]}).\n"
                f"# Do not edit: change the spec and run `dlc emit torch {self.result.path}`.")

    def _module_doc(self) -> str:
        """The spec file's opening comment, then what the file is."""
        source = self.result.sources.get(self.resolved.program.root)
        comment = header_comment(source.text) if source is not None else []
        what = "PyTorch modules generated by dlc; `state_dict` keys are the compiler's weight names."
        return docstring([*comment, "", what] if comment else [what], "")

    def class_name(self, ref: DefRef) -> str:
        return self.names[(ref.module, ref.name)]


def _imports(used: set[str], helpers: list[str]) -> list[list[str]]:
    """The import groups (standard library, torch, dlc) for the names the module reads."""
    groups = [["import math"] if "math" in used else [],
              [line for name, line in _TORCH_IMPORTS if name in used],
              [f"from dlc.runtime.layers import {', '.join(helpers)}"] if helpers else []]
    return [g for g in groups if g]


_TORCH_IMPORTS = (("torch", "import torch"), ("nn", "from torch import nn"),
                  ("F", "from torch.nn import functional as F"))


def _with_dependencies(names: list[str]) -> list[str]:
    """The sources of the named helper layers and of the helpers they use, in dlc.runtime.layers' order."""
    sources = _helper_sources()
    wanted = set(names)
    for _ in range(len(sources)):
        more = set().union(*(module_names(sources[n]) & set(sources) for n in wanted)) - wanted
        if not more:
            return [src for name, src in sources.items() if name in wanted]
        wanted |= more
    raise FixedPointError("helper dependencies did not settle")


GENERATED_GLOBALS = frozenset({"annotations", "math", "torch", "nn", "F", "__all__"})  # see _imports


def _what_global(name: str) -> str:
    return "a helper layer from dlc.runtime.layers" if name not in GENERATED_GLOBALS else "an import"


@lru_cache(maxsize=1)
def _helper_sources() -> dict[str, str]:
    """Each top-level class and function of dlc.runtime.layers, by name (read as text: it imports torch)."""
    import ast as pyast
    import importlib.util

    text = Path(importlib.util.find_spec("dlc.runtime.layers").origin).read_text()
    return {node.name: pyast.get_source_segment(text, node, padded=False)
            for node in pyast.parse(text).body if isinstance(node, (pyast.ClassDef, pyast.FunctionDef))}
