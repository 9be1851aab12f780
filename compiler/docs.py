"""Render the op reference (docs/ops.md) from the op table, so the docs cannot drift."""
from __future__ import annotations

from .ops import OPS
from .ops.table import REQUIRED

# The sections of docs/ops.md, in order; every op's category is one of them, except "internal"
# (ops the compiler inserts itself, which docs/ops.md does not list).
CATEGORIES = ("convolution", "pooling", "normalization", "regularization", "activation", "dense", "shape",
               "combine", "indexing", "attention", "sequence", "recurrent", "generative", "loss")


def ops_markdown() -> str:
    lines = ["# Op reference", "",
             "Generated from the op table (`python -m dlc.compiler.docs > docs/ops.md`); a test keeps it current.",
             "Shapes use `B` for batch; `in`, `out` are feature counts. Every op validates its arguments and",
             "reports a located error when a shape rule does not hold.", ""]
    for category in CATEGORIES:
        ops = sorted((op for op in OPS.values() if op.category == category), key=lambda op: op.name)
        lines += [f"## {category.capitalize()}", "", "| op | parameters | inputs | shape rule | description |",
                  "|---|---|---|---|---|"]
        for op in ops:
            cells = (f"`{op.name}`", _params(op), _arity(op.inputs), f"`{op.rule}`", op.doc)
            lines.append("| " + " | ".join(c if c is cells[1] else c.replace("|", "\\|") for c in cells) + " |")
        lines.append("")
    return "\n".join(lines)


def _params(op) -> str:
    parts = []
    for p in op.params:
        default = "" if p.default is REQUIRED else f" = {_show(p.default)}"
        parts.append(f"`{p.name}: {p.type_name}{default}`".replace("|", "\\|"))
    return ", ".join(parts) or "—"


def _show(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "none"
    if isinstance(v, str):
        return f'"{v}"'
    return str(v)


def _arity(inputs: tuple[int, int]) -> str:
    lo, hi = inputs
    return str(lo) if lo == hi else f"{lo}+" if hi == -1 else f"{lo}–{hi}"




# Models whose weights people load from torchvision, with how the keys relate.
WEIGHT_DOCS = (
    ("spec/resnet18.arch", "ResNet18", "the keys and shapes of torchvision's `resnet18().state_dict()`"),
    ("spec/resnet50.arch", "ResNet50", "the keys and shapes of torchvision's `resnet50().state_dict()`"),
    ("spec/vgg16.arch", "VGG16", "the keys and shapes of torchvision's `vgg16().state_dict()`"),
    ("spec/alexnet.arch", "AlexNet", "the keys and shapes of torchvision's `alexnet().state_dict()`"),
    ("spec/googlenet.arch", "GoogLeNet",
     "torchvision's `googlenet(aux_logits=False, init_weights=False).state_dict()` keys"),
    ("spec/densenet121.arch", "DenseNet121", "the keys and shapes of torchvision's `densenet121().state_dict()`"),
    ("spec/mobilenet_v2.arch", "MobileNetV2", "the keys and shapes of torchvision's `mobilenet_v2().state_dict()`"),
    ("spec/vit_b_16.arch", "VisionTransformer",
     "torchvision's `vit_b_16().state_dict()` keys, but each layer's `self_attention.in_proj_weight` "
     "(2304 x 768) and `in_proj_bias` are here `q_proj`, `k_proj` and `v_proj` (its three 768-row "
     "slices, in that order)"),
)


def weights_markdown() -> str:
    """docs/weights.md: every state_dict key and shape of the torchvision-compatible zoo models."""
    from .pipeline import compile_file

    lines = ["# State-dict keys of the zoo's ImageNet models", "",
             "Generated (`python -m dlc.compiler.docs weights > docs/weights.md`); a test keeps it current.",
             "The compiler names every weight; the PyTorch emitter's modules, the ONNX initializers and",
             "checkpoints all use these keys. Buffers (`running_mean`, `running_var`, `num_batches_tracked`)",
             "are listed too, as in a PyTorch `state_dict`.", "",
             "A checkpoint in torchvision's or Hugging Face's own keys loads through a key map",
             "(`--weights-from torchvision|huggingface`, `dlc convert-weights`; `compiler/keymaps/*.toml`):",
             "README, \"Pretrained weights\".", ""]
    for spec, model, relation in WEIGHT_DOCS:
        graph = compile_file(spec, model).graphs[model]
        lines += [f"## {model} (`{spec}`)", "", f"Keys: {relation}.", "", "| key | shape |", "|---|---|"]
        lines += [f"| `{w.name}` | `{list(w.shape)}` |" for w in graph.weights]
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    print(weights_markdown() if sys.argv[1:] == ["weights"] else ops_markdown())
