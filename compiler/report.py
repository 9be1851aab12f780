"""Model summaries: the per-layer table of `dlc summary` and its JSON form."""
from __future__ import annotations

from typing import Any

from .ir.graph import Graph
from .passes.cost import CostReport


def _human(n: float, unit: str = "") -> str:
    for div, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= div:
            return f"{n / div:.2f}{suffix}{unit}"
    return f"{n:g}{unit}"


def summary_table(graph: Graph, cost: CostReport, symbolic: bool = False) -> str:
    """A torchinfo-style table: one row per layer, then totals."""
    header = ("Layer (path)", "Op", "Output shape", "Params", "FLOPs")
    rows = []
    for layer in cost.layers:
        shape = ", ".join(layer.shapes) if symbolic else ", ".join(
            "(" + ", ".join(map(str, s)) + ")" for s in layer.concrete)
        rows.append((layer.path, layer.op, shape, f"{layer.params:,}" if layer.params else "-",
                     _human(layer.flops) if layer.flops else "-"))
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(5)]
    line = "-" * (sum(widths) + 8)
    fmt = lambda r: "  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
    ins = ", ".join(f"{n}: {graph.values[v].type}" for n, v in graph.inputs)
    dims = ", ".join(f"{k}={v}" for k, v in cost.dims)
    out = [f"{graph.name}  ({ins})  [{dims}]", line, fmt(header), line, *map(fmt, rows), line,
           f"Total params:        {cost.total_params:,}",
           f"Trainable params:    {cost.trainable_params:,}",
           f"Non-trainable (buffers): {cost.buffers:,}",
           f"MACs:                {_human(cost.macs)}",
           f"FLOPs:               {_human(cost.flops)}",
           f"Params size:         {_human(cost.param_bytes, 'B')}",
           f"Activations:         {_human(cost.activation_bytes, 'B')}",
           line]
    return "\n".join(out) + "\n"


def summary_json(graph: Graph, cost: CostReport) -> dict[str, Any]:
    def tensor(name: str, vid: int) -> dict[str, Any]:
        t = graph.values[vid].type
        return {"name": name, "dtype": t.dtype if t else None, "shape": [str(d) for d in t.shape] if t else None}

    return {
        "model": graph.name,
        "inputs": [tensor(n, v) for n, v in graph.inputs],
        "outputs": [tensor(n, v) for n, v in graph.outputs],
        "dims": dict(cost.dims),
        "total_params": cost.total_params,
        "trainable_params": cost.trainable_params,
        "buffers": cost.buffers,
        "macs": cost.macs,
        "flops": cost.flops,
        "activation_bytes": cost.activation_bytes,
        "param_bytes": cost.param_bytes,
        "layers": [{"name": r.path, "op": r.op, "output_shapes": list(r.shapes),
                    "output_shapes_concrete": [list(s) for s in r.concrete], "params": r.params,
                    "macs": r.macs, "flops": r.flops, "activation_bytes": r.activation_bytes}
                   for r in cost.layers],
        "weights": [{"name": w.name, "shape": list(w.shape), "trainable": w.trainable} for w in graph.weights],
    }
