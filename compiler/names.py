"""Names a spec may not declare, because the code generated from it could not hold them.

Every backend's output must agree with the IR, and the PyTorch emitter writes a spec's names
into Python: a label becomes a submodule attribute (`self.conv1`), a parameter a constructor
argument (`def __init__(self, width=64)`), a network a class. So:

    every name a spec declares   not a Python keyword (`lambda`, `def`, `pass`, `class`, ...)
    a parameter, `let`, loop     not `self`, nor a global of the generated module (`torch`, `nn`,
    variable                     `F`, `math`), which it would shadow in `__init__`
    a label                      not an attribute of `nn.Module` (`forward`, `training`, `to`,
                                 `parameters`, ...), which the submodule would replace

Tensor names (inputs, outputs, bindings) are renamed by the emitter where they
clash, and block names give way to the module's globals (`Scale` becomes `Scale_`), so those
need no rule beyond the keywords. tests/test_hostile_frontend.py checks MODULE_ATTRIBUTES
against the installed torch's `nn.Module`.
"""
from __future__ import annotations

import keyword

KEYWORDS = frozenset(keyword.kwlist)  # soft keywords (`match`, `case`, `type`, `_`) are names

PARAMETER_RESERVED = frozenset({"self", "torch", "nn", "F", "math"})

# dir(torch.nn.Module) of torch 2.13, dunder names aside (a label cannot start with two underscores
# and end with two and be anything but trouble: those are refused by the rule below too).
MODULE_ATTRIBUTES = frozenset({
    "T_destination", "_apply", "_call_impl", "_compiled_call_impl", "_get_backward_hooks",
    "_get_backward_pre_hooks", "_get_name", "_load_from_state_dict", "_maybe_warn_non_full_backward_hook",
    "_named_members", "_register_load_state_dict_pre_hook", "_register_state_dict_hook",
    "_replicate_for_data_parallel", "_save_to_state_dict", "_slow_forward", "_version", "_wrapped_call_impl",
    "add_module", "apply", "bfloat16", "buffers", "call_super_init", "children", "compile", "cpu", "cuda",
    "double", "dump_patches", "eval", "extra_repr", "float", "forward", "get_buffer", "get_extra_state",
    "get_parameter", "get_submodule", "half", "ipu", "load_state_dict", "modules", "mtia", "named_buffers",
    "named_children", "named_modules", "named_parameters", "parameters", "register_backward_hook",
    "register_buffer", "register_forward_hook", "register_forward_pre_hook", "register_full_backward_hook",
    "register_full_backward_pre_hook", "register_load_state_dict_post_hook", "register_load_state_dict_pre_hook",
    "register_module", "register_parameter", "register_state_dict_post_hook", "register_state_dict_pre_hook",
    "requires_grad_", "set_extra_state", "set_submodule", "share_memory", "state_dict", "to", "to_empty",
    "train", "type", "xpu", "zero_grad",
    # instance attributes every nn.Module has (set in its __init__)
    "training", "_parameters", "_buffers", "_non_persistent_buffers_set", "_backward_pre_hooks",
    "_backward_hooks", "_is_full_backward_hook", "_forward_hooks", "_forward_hooks_with_kwargs",
    "_forward_hooks_always_called", "_forward_pre_hooks", "_forward_pre_hooks_with_kwargs",
    "_state_dict_hooks", "_state_dict_pre_hooks", "_load_state_dict_pre_hooks",
    "_load_state_dict_post_hooks", "_modules",
})


def reserved(name: str, kind: str) -> str | None:
    """Why `name` may not be declared as a `kind` ("parameter", "label", or any other kind of
    name), or None if it may."""
    if name in KEYWORDS:
        return "it is a Python keyword, and the generated PyTorch code writes it as a name"
    if kind in ("parameter", "let", "loop variable") and name in PARAMETER_RESERVED:
        return f"the generated module's constructor uses `{name}` itself"
    if kind == "label" and (name in MODULE_ATTRIBUTES or (name.startswith("__") and name.endswith("__"))):
        return f"a label becomes a submodule attribute, and `{name}` is already an attribute of every `nn.Module`"
    return None
