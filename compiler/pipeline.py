"""The compiler front end as an explicit, ordered list of passes.

    load (parse + imports) -> resolve -> expand -> infer_shapes -> collect_weights

`compile_file` runs them for every network of a file (or one, by name) and returns the
graphs with all diagnostics; `compile_network` is the one-model form that raises
`CompileError` on any error. Both take `params`: values for the parameters of the network
compiled as the model (`model`, else the file's last network) in place of its defaults, as
`dlc summary --param` and `dlc.torch_module(spec, **params)` give them. A name the network does
not have, or a value no spec could hold, raises `ParamError` (a caller's mistake: no span); a
value the network cannot use is a located diagnostic where it is used.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from . import messages
from .diagnostics import CompileError, Diagnostic, Diagnostics
from .ir.graph import Graph
from .ir.train import TrainPlan
from . import limits
from .limits import Budget
from .passes.expand import expand
from .passes.infer_shapes import infer_shapes
from .passes.params import collect_weights
from .passes.resolve import DefRef, Resolved, resolve
from .passes.train import check_train
from .source import SourceMap, Span, display_path
from .syntax.load import load_program

GRAPH_PASSES: tuple[Callable[[Graph, Diagnostics], Graph], ...] = (infer_shapes, collect_weights)


class ParamError(Exception):
    """Network parameters given by the caller that the network does not have, or values that no
    spec expression could have (a dict, an object); the text comes from messages.py."""


@dataclass(frozen=True)
class Compilation:
    path: str
    graphs: dict[str, Graph]  # network name -> graph, in source order
    diagnostics: tuple[Diagnostic, ...]
    sources: SourceMap
    resolved: Resolved | None
    trains: dict[str, TrainPlan] = field(default_factory=dict)  # `train` definitions, checked (without --model)

    @property
    def ok(self) -> bool:
        return not any(d.severity == "error" for d in self.diagnostics)

    def content_hash(self) -> str:
        """sha256 of the texts of the file and everything it imports (paths do not count)."""
        import hashlib

        digest = hashlib.sha256()
        if self.resolved is not None:
            for path in sorted(self.resolved.program.modules):
                digest.update(self.sources.get(path).text.encode())
        return digest.hexdigest()

    def raise_for_errors(self) -> None:
        if not self.ok:
            raise CompileError(list(self.diagnostics), self.sources)


def compile_file(path: str | Path, model: str | None = None, text: str | None = None,
                 params: Mapping[str, Any] | None = None, budget: Budget | None = None) -> Compilation:
    """Run the front end on one file: every network in it, or only `model`; `params` are values
    for the parameters of `model` (default: the file's last network), checked first (ParamError).
    `budget`: the work it may do (compiler/limits.py; default: the limits stated there)."""
    with limits.recursion_room():
        return _compile_file(Path(path), model, text, params, budget or Budget())


def _compile_file(path: Path, model: str | None, text: str | None, params: Mapping[str, Any] | None,
                  budget: Budget) -> Compilation:
    sources, diags = SourceMap(), Diagnostics()
    program = load_program(path, sources, diags, text)
    if program is None:
        return Compilation(display_path(path), {}, tuple(diags.sorted()), sources, None)
    resolved = resolve(program, diags)
    networks = resolved.networks()
    file_span = Span(program.root, 1, 1, 1, 1)
    if model is not None:
        chosen = [n for n in networks if n.name == model]
        if not chosen:
            diags.add(messages.unknown_model(file_span, model, [n.name for n in networks]))
        networks = chosen
    target = networks[-1] if networks else None  # no such network: E0105 (or E0104 for the caller) says so
    given = network_params(target, params) if params and target is not None else {}
    graphs = {}
    for ref in networks:
        graph = expand(resolved, ref, diags, given if ref is target else None, budget)
        if graph is None:
            continue
        for graph_pass in GRAPH_PASSES:
            graph = graph_pass(graph, diags)
        graphs[ref.name] = graph
    trains = _check_trains(resolved, diags, program.root, budget) if model is None else {}
    return Compilation(program.root, graphs, tuple(diags.sorted()), sources, resolved, trains)


def _check_trains(resolved: Resolved, diags: Diagnostics, root: str, budget: Budget) -> dict[str, TrainPlan]:
    """Each training definition of the root file: its step networks through the graph passes, then
    the training checks (compiler/passes/train.py)."""
    plans = {}
    for ref in resolved.trains():
        graphs: dict[str, Graph | None] = {}
        for _, step in ref.steps:
            before = len(diags)
            graph = expand(resolved, step, diags, budget=budget)
            if graph is not None:
                for graph_pass in GRAPH_PASSES:
                    graph = graph_pass(graph, diags)
            graphs[step.name] = graph if len(diags) == before else None  # reported: no checks of a partial graph
        plan = check_train(resolved, ref, graphs, diags, root, budget)
        if plan is not None:
            plans[ref.name] = plan
    return plans


def network_params(ref: DefRef, params: Mapping[str, Any]) -> dict[str, Any]:
    """`params` checked against the network's parameters, with values as compile-time values
    (lists become tuples); ParamError for a name it does not have or a value of no spec type."""
    names = [p.name for p in ref.node.params]
    for name in params:
        if name not in names:
            raise ParamError(messages.unknown_network_param(ref.name, name, names))
    return {name: _spec_value(name, value) for name, value in params.items()}


def _spec_value(name: str, value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return tuple(_spec_value(name, v) for v in value)
    raise ParamError(messages.bad_param_value(name, type(value).__name__))


def compile_network(path: str | Path, model: str | None = None, params: Mapping[str, Any] | None = None) -> Graph:
    """The graph of one network (default: the last one in the file); raises CompileError."""
    result = compile_file(path, model, params=params)
    result.raise_for_errors()
    return default_graph(result, model)


def default_graph(result: Compilation, model: str | None) -> Graph:
    """`model`'s graph, or the file's last network; CompileError for a file without networks."""
    if model is not None:
        return result.graphs[model]
    if not result.graphs:
        diag = messages.no_networks(Span(result.path, 1, 1, 1, 1), result.path)
        raise CompileError([diag], result.sources)
    return list(result.graphs.values())[-1]
