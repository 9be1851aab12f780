"""The ONNX forms (`OpDef.onnx`, compiler/ops/) of convolution, pooling, normalization,
activations and tensor ops.

Each case is a one-op network written to a temporary spec, exported with the generated PyTorch
module's weights; ONNX Runtime must match the module (eval mode) at two batch sizes, the full
ONNX checker must pass, and ONNX's strict shape inference must agree with the IR's output types.
"""
from __future__ import annotations

import re

import onnx
import pytest

from conftest import onnx_vs_torch, random_inputs, torch_weights
from dlc.compiler.errors import EmitError
from dlc.compiler.pipeline import compile_file, default_graph

X1 = "x: f32[B, 4, 10]"
X2 = "x: f32[B, 4, 9, 11]"
X3 = "x: f32[B, 2, 5, 6, 7]"
V = "x: f32[B, 5, 6]"

# (id, input declarations, body: `chain` for a single output `y`, or full statements)
CASES = [
    # convolution
    ("conv1d", X1, "conv1d(6, 3)"),
    ("conv1d_same_groups", X1, "conv1d(4, 4, padding=\"same\", groups=2, dilation=2)"),
    ("conv2d_stride_pad", X2, "conv2d(8, [3, 5], stride=2, padding=[1, 2], bias=false)"),
    ("conv2d_dilation", X2, "conv2d(4, 3, dilation=2, padding=\"valid\")"),
    ("conv2d_same_even", X2, "conv2d(4, 4, padding=\"same\")"),
    ("conv2d_groups", X2, "conv2d(8, 3, groups=4, stride=[1, 2], padding=1)"),
    ("conv3d", X3, "conv3d(4, 3, stride=[1, 2, 2], padding=1)"),
    ("conv_transpose1d", X1, "conv_transpose1d(3, 4, stride=2, padding=1)"),
    ("conv_transpose2d", X2, "conv_transpose2d(4, 3, stride=2, padding=1, output_padding=1, groups=2)"),
    ("conv_transpose2d_dilation", X2, "conv_transpose2d(6, [2, 3], stride=[2, 1], dilation=2, bias=false)"),
    ("conv_transpose3d", X3, "conv_transpose3d(2, 2, stride=2, bias=false)"),
    ("masked_conv2d_A", X2, "masked_conv2d(4, 5, mask=\"A\")"),
    ("masked_conv2d_B", X2, "masked_conv2d(4, [3, 5], mask=\"B\", padding=1, bias=false)"),
    # pooling
    ("maxpool1d", X1, "maxpool1d(3, stride=2, padding=1)"),
    ("maxpool1d_ceil", X1, "maxpool1d(3, stride=2, padding=1, ceil_mode=true)"),
    ("maxpool2d", X2, "maxpool2d(2)"),
    ("maxpool2d_ceil", "x: f32[B, 2, 14, 13]", "maxpool2d(3, stride=2, ceil_mode=true)"),
    ("maxpool2d_ceil_pad", "x: f32[B, 2, 10, 11]", "maxpool2d(3, stride=2, padding=1, ceil_mode=true)"),
    ("maxpool2d_ceil_drop", "x: f32[B, 2, 5, 5]", "maxpool2d(2, stride=2, padding=1, ceil_mode=true)"),
    ("maxpool2d_ceil_drop3", "x: f32[B, 2, 5, 7]", "maxpool2d(3, stride=3, padding=1, ceil_mode=true)"),
    ("avgpool2d_ceil_drop3", "x: f32[B, 2, 5, 7]", "avgpool2d(3, stride=3, padding=1, ceil_mode=true)"),
    ("maxpool2d_dilation", X2, "maxpool2d(3, dilation=2, stride=1)"),
    ("avgpool1d", X1, "avgpool1d(2)"),
    ("avgpool1d_pad", X1, "avgpool1d(3, stride=2, padding=1)"),
    ("avgpool2d_ceil_pad", "x: f32[B, 2, 10, 11]", "avgpool2d(3, stride=2, padding=1, ceil_mode=true)"),
    ("avgpool2d_ceil_nopadcount", "x: f32[B, 2, 10, 11]",
     "avgpool2d(3, stride=2, padding=1, ceil_mode=true, count_include_pad=false)"),
    ("avgpool2d_ceil_drop", "x: f32[B, 2, 5, 5]", "avgpool2d(2, stride=2, padding=1, ceil_mode=true)"),
    ("avgpool2d_ceil", "x: f32[B, 2, 14, 13]", "avgpool2d([3, 2], stride=2, ceil_mode=true)"),
    ("adaptive_avgpool1d", "x: f32[B, 3, 12]", "adaptive_avgpool1d(3)"),
    ("adaptive_avgpool2d", "x: f32[B, 3, 8, 12]", "adaptive_avgpool2d([2, 3])"),
    ("adaptive_avgpool2d_1", X2, "adaptive_avgpool2d(1)"),
    ("adaptive_maxpool1d", "x: f32[B, 3, 12]", "adaptive_maxpool1d(4)"),
    ("adaptive_maxpool2d", "x: f32[B, 3, 8, 12]", "adaptive_maxpool2d([4, 1])"),
    ("adaptive_maxpool2d_1", X2, "adaptive_maxpool2d(1)"),
    ("global_avgpool", X2, "global_avgpool"),
    ("global_avgpool_1d", X1, "global_avgpool"),
    ("global_maxpool_3d", X3, "global_maxpool"),
    ("upsample_nearest", X2, "upsample"),
    ("upsample_nearest3", X2, "upsample(3)"),
    ("upsample_nearest_1d", X1, "upsample(2)"),
    ("upsample_nearest_3d", X3, "upsample(2)"),
    ("upsample_bilinear", X2, "upsample(2, mode=\"bilinear\")"),
    ("upsample_bilinear3", X2, "upsample(3, mode=\"bilinear\")"),
    ("upsample_bilinear_corners", X2, "upsample(3, mode=\"bilinear\", align_corners=true)"),
    # normalization and regularization
    ("batchnorm1d", "x: f32[B, 4]", "batchnorm1d"),
    ("batchnorm1d_seq", X1, "batchnorm1d(affine=false, eps=1e-3)"),
    ("batchnorm2d", X2, "batchnorm2d(eps=1e-3, momentum=0.2)"),
    ("layernorm", V, "layernorm"),
    ("layernorm_2d", V, "layernorm(dims=2, affine=false, eps=1e-6)"),
    ("layernorm_2d_affine", X2, "layernorm(dims=2)"),
    ("groupnorm", X2, "groupnorm(2)"),
    ("groupnorm_1d", "x: f32[B, 6, 7]", "groupnorm(3, eps=1e-3)"),
    ("groupnorm_flat", "x: f32[B, 6]", "groupnorm(2)"),
    ("layernorm2d", X2, "layernorm2d"), ("layernorm2d_eps", "x: f32[B, 3, 1, 5]", "layernorm2d(eps=1e-3)"),
    ("dropout", V, "dropout(0.1)"),
    ("dropout2d", X2, "dropout2d"),
    ("drop_path", X2, "drop_path(0.2)"), ("drop_path_seq", V, "linear(3) -> drop_path(0.5)"),
    ("random_shift", X2, "random_shift(1)"),
    # activations
    ("relu", V, "relu"), ("leaky_relu", V, "leaky_relu(0.2)"), ("sigmoid", V, "sigmoid"), ("tanh", V, "tanh"),
    ("softplus", V, "scale(15) -> softplus"), ("softplus_beta", V, "scale(15) -> softplus(beta=2)"),
    ("softplus_small_beta", V, "scale(15) -> softplus(beta=0.5)"),
    ("gelu", V, "scale(3) -> gelu"), ("gelu_tanh", V, "scale(3) -> gelu(approximate=\"tanh\")"),
    ("elu", V, "elu(0.5)"), ("silu", V, "silu"), ("abs", V, "abs"), ("exp", V, "exp"), ("log", V, "sigmoid -> log"),
    ("identity", V, "identity"), ("scale", V, "scale(2.5)"),
    ("softmax", V, "softmax(dim=1)"), ("log_softmax", V, "log_softmax"),
    ("relu6", V, "scale(5) -> relu6"), ("hardswish", V, "scale(4) -> hardswish"),
    ("hardtanh", V, "scale(2) -> hardtanh"), ("hardtanh_bounds", V, "scale(4) -> hardtanh(-0.5, max=3.5)"),
    ("clamp_min", V, "clamp(0.25)"), ("clamp_max", V, "clamp(max=-0.5)"), ("clamp_both", V, "clamp(-1, 1.5)"),
    ("clamp_none_min", V, "clamp(none, 0.5)"), ("clamp_equal", V, "clamp(0.5, 0.5)"),
    ("hardsigmoid", V, "scale(4) -> hardsigmoid"), ("mish", V, "scale(3) -> mish"),
    # dense
    ("linear_2d", "x: f32[B, 6]", "linear(5)"), ("linear_2d_nobias", "x: f32[B, 6]", "linear(5, bias=false)"),
    ("linear_3d", V, "linear(4)"), ("linear_3d_nobias", V, "linear(4, bias=false)"),
    # shape
    ("flatten", X2, "flatten"), ("flatten_0_1", V, "flatten(0, 1)"), ("flatten_2", X2, "flatten(2)"),
    ("flatten_end", X3, "flatten(1, 2)"), ("flatten_mid", X3, "flatten(2, 3)"),
    ("reshape", V, "reshape([-1, 3, 10])"), ("reshape_2", V, "reshape([-1, 30])"),
    ("unflatten", "x: f32[B, 3, 8]", "unflatten(2, [2, -1])"), ("unflatten_last", V, "unflatten(-1, [3, 2])"),
    ("unflatten_mid", X2, "unflatten(1, [2, 2])"),
    ("permute", X2, "permute([0, 2, 3, 1])"), ("transpose", X2, "transpose(1, -1)"),
    ("unsqueeze", V, "unsqueeze(1)"), ("unsqueeze_last", V, "unsqueeze(-1)"),
    ("squeeze", "x: f32[B, 1, 6]", "squeeze(1)"),
    ("expand_batch", "x: f32[B, 5, 6], z: f32[1, 1, 6]", "(z, x) -> expand"),
    ("expand_static", "x: f32[B, 5, 6], z: f32[B, 1, 6]", "(z, x) -> expand(dims=[1])"),
    ("expand_two", "x: f32[B, 5, 6], z: f32[1, 1, 6]", "(z, x) -> expand(dims=[-2, 0])"),
    # parameter tensors (ONNX initializers)
    ("parameter", V, "param t: f32[1, 1, 6] = normal(std=0.5)\n  output y = (x, t) -> add"),
    ("parameter_expanded", V, "param t: f32[1, 1, 6] = ones\n  c = (t, x) -> expand\n  output y = (c, x) -> concat"),
    # combining
    ("concat", "x: f32[B, 3, 4], z: f32[B, 5, 4]", "(x, z) -> concat"),
    ("concat_last", "x: f32[B, 3], z: f32[B, 4], w: f32[B, 1]", "(x, z, w) -> concat(dim=-1)"),
    ("add", "x: f32[B, 3, 4], z: f32[3, 1], w: f32[1]", "(x, z, w) -> add"),
    ("mul", "x: f32[B, 3], z: f32[B, 3], w: f32[1, 3]", "(x, z, w) -> mul"),
    ("sub", "x: f32[B, 3], z: f32[B, 3]", "(x, z) -> sub"),
    ("div", "x: f32[B, 3], z: f32[1, 3]", "(z, x) -> div"),
    ("matmul", "x: f32[B, 3, 4], z: f32[4, 5]", "(x, z) -> matmul"),
    ("matmul_batched", "x: f32[B, 1, 3, 4], z: f32[5, 4, 6]", "(x, z) -> matmul"),
    ("chunk", "x: f32[B, 6, 4]", "a, b, c = x -> chunk(3)\n  output a, b, c"),
    ("chunk_last", V, "a, b = x -> chunk(2, dim=-1)\n  output a, b"),
    ("split", "x: f32[B, 6, 3]", "a, b = x -> split([2, 4])\n  output a, b"),
    ("split_last", V, "a, b, c = x -> split([1, 2, 3], dim=-1)\n  output a, b, c"),
    # indexing and reductions
    ("select", V, "select(1, 0)"), ("select_last", V, "select(-1, -1)"), ("select_mid", X2, "select(-2, 1)"),
    ("slice", V, "slice(1, 1, 3)"), ("slice_step", V, "slice(-1, 1, step=2)"), ("slice_over", V, "slice(1, end=10)"),
    ("slice_step_end", "x: f32[B, 7, 2]", "slice(1, 1, 6, step=3)"),
    ("sum", V, "sum"), ("sum_keep", X2, "sum([1, 2], keepdim=true)"), ("mean", V, "mean(1)"),
    ("mean_keep", X2, "mean([-1, 1], keepdim=true)"),
    ("cosine_similarity", "x: f32[B, 5, 3], z: f32[B, 5, 3]", "(x, z) -> cosine_similarity"),
    ("cosine_similarity_broadcast", "x: f32[B, 5], z: f32[1, 5]", "(x, z) -> cosine_similarity(dim=-1, eps=1e-6)"),
    ("cosine_similarity_ranks", "x: f32[B, 3, 5], z: f32[5]", "(x, z) -> cosine_similarity(dim=-1)"),
    ("cosine_similarity_expand_dim", "x: f32[B, 1, 3], z: f32[B, 4, 3]", "(x, z) -> cosine_similarity(dim=1)"),
]


def _spec(tmp_path, name: str, inputs: str, body: str):
    lines = "\n".join(f"  input {decl}" for decl in re.findall(r"\w+: \w+\[[^\]]*\]", inputs))
    stmt = body if "\n" in body else f"output y = {body if body.startswith('(') else 'x -> ' + body}"
    path = tmp_path / f"{name}.arch"
    path.write_text(f"network N {{\n{lines}\n  {stmt}\n}}\n")
    return path


def _check(path, **kw) -> onnx.ModelProto:
    model = onnx_vs_torch(path, **kw)
    onnx.checker.check_model(model, full_check=True)
    _check_shapes(path, model)
    return model


def _check_shapes(path, model: onnx.ModelProto) -> None:
    """ONNX's strict shape inference agrees with the IR on each output's producer."""
    graph = default_graph(compile_file(path), None)
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    shapes = {v.name: v.type.tensor_type.shape for v in inferred.graph.value_info}
    sources = {n.output[0]: n.input[0] for n in model.graph.node if n.name.startswith("output/")}
    for out_name, vid in graph.outputs:
        src = sources[out_name]
        if src not in shapes:
            continue  # an output that is a graph input
        dims, ir = shapes[src].dim, graph.values[vid].type
        assert len(dims) == ir.rank, (out_name, str(ir))
        for got, want in zip(dims, ir.shape, strict=True):
            if want.is_const:
                assert got.HasField("dim_value") and got.dim_value == want.value, (out_name, str(ir), str(dims))


@pytest.mark.parametrize(("name", "inputs", "body"), CASES, ids=[c[0] for c in CASES])
def test_converter_matches_pytorch(tmp_path, name, inputs, body):
    _check(_spec(tmp_path, name, inputs, body))


# --- trained affine weights ------------------------------------------------------------------------

AFFINE = [("layernorm2d", X2, "layernorm2d"), ("layernorm", V, "layernorm"), ("groupnorm", X2, "groupnorm(2)")]


@pytest.mark.parametrize(("name", "inputs", "body"), AFFINE, ids=[c[0] for c in AFFINE])
def test_norms_apply_their_own_weight_and_bias(tmp_path, name, inputs, body):
    """A fresh module's weight is 1 and its bias 0, which would hide a converter that drops or
    swaps them: here both are random, and ONNX Runtime must still match the module."""
    import numpy as np
    import onnxruntime as ort
    import torch

    from dlc.compiler.emit.onnx import emit_onnx
    from dlc.compiler.emit.torch import torch_namespace

    path = _spec(tmp_path, name, inputs, body)
    graph = default_graph(compile_file(path), None)
    module = getattr(torch_namespace(path), graph.name)().eval()
    torch.manual_seed(0)
    with torch.no_grad():
        for param in module.parameters():
            param.copy_(torch.randn_like(param))
    weights = torch_weights(module)
    assert sorted(weights) == sorted(w.name for w in graph.weights) and len(weights) == 2
    model = emit_onnx(graph, {w.name: weights[w.name] for w in graph.weights})
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds = random_inputs(graph, {**dict(graph.dim_examples), "B": 2})
    with torch.no_grad():
        expected = module(*(torch.from_numpy(feeds[n]) for n, _ in graph.inputs))
    (got,) = session.run([n for n, _ in graph.outputs], feeds)
    np.testing.assert_allclose(got, expected.numpy(), atol=1e-5, rtol=1e-5)


# --- symbolic dims stay symbolic ---------------------------------------------------------------------

SYMBOLIC = [
    ("conv2d_hw", "x: f32[B, 3, H=8, W=8]", "conv2d(4, 3, stride=2, padding=1)"),
    ("masked_conv_hw", "x: f32[B, 3, H=8, W=8]", "masked_conv2d(4, 3, mask=\"B\")"),
    ("maxpool_ceil_hw", "x: f32[B, 3, H=8, W=8]", "maxpool2d(3, stride=2, ceil_mode=true)"),
    ("maxpool_ceil_mixed", "x: f32[B, 3, H=8, 10]", "maxpool2d(3, stride=2, padding=[0, 1], ceil_mode=true)"),
    ("avgpool_ceil_mixed", "x: f32[B, 3, H=8, 9]", "avgpool2d(2, stride=2, padding=[0, 1], ceil_mode=true)"),
    ("avgpool_pad_hw", "x: f32[B, 3, H=8, W=8]", "avgpool2d(3, stride=2, padding=1)"),
    ("adaptive_mixed", "x: f32[B, 3, H=8, 9]", "adaptive_avgpool2d([1, 3])"),
    ("adaptive_max_hw", "x: f32[B, 3, H=8, W=8]", "adaptive_maxpool2d(1)"),
    ("upsample_hw", "x: f32[B, 3, H=4, W=4]", "upsample(2, mode=\"bilinear\")"),
    ("groupnorm_hw", "x: f32[B, 4, H=4, W=4]", "groupnorm(2)"),
    ("layernorm_t", "x: f32[B, T=5, 6]", "layernorm"),
    ("layernorm2d_hw", "x: f32[B, 4, H=4, W=4]", "layernorm2d"),
    ("flatten_hw", "x: f32[B, 3, H=4, W=4]", "flatten"),
    ("flatten_ct", "x: f32[B, 3, 2, T=4]", "flatten(1, 2)"),
    ("flatten_bt", "x: f32[B, T=4, 6]", "flatten(0, 1)"),
    ("flatten_sym_tail", "x: f32[B, 3, H=4, W=4]", "flatten(1, 2)"),
    ("unflatten_t", "x: f32[B, T=4, 6]", "unflatten(-1, [2, -1])"),
    ("unflatten_sym_tail", "x: f32[B, 6, T=4, W=3]", "unflatten(1, [-1, 3])"),
    ("chunk_t", "x: f32[B, T=4, 6]", "a, b = (x, x) -> concat(dim=1) -> chunk(2, dim=1)\n  output a, b"),
    ("slice_t", "x: f32[B, T=6, 3]", "slice(1, 1, step=2)"),
    ("select_t", "x: f32[B, T=6, 3]", "select(1, -1)"),
    ("linear_t", "x: f32[B, T=6, 3]", "linear(4)"),
    ("mean_t", "x: f32[B, T=6, 3]", "mean(1)"),
]


@pytest.mark.parametrize(("name", "inputs", "body"), SYMBOLIC, ids=[c[0] for c in SYMBOLIC])
def test_symbolic_dims_stay_symbolic(tmp_path, name, inputs, body):
    path = _spec(tmp_path, name, inputs, body)
    model = _check(path, dims={"H": 10, "W": 6, "T": 6})
    onnx_vs_torch(path, batches=(1,), dims={"H": 7, "W": 9, "T": 8})
    declared = {d.dim_param for i in model.graph.input for d in i.type.tensor_type.shape.dim if d.dim_param}
    assert "B" in declared and declared <= {"B", "H", "W", "T"}


# --- no faithful form ------------------------------------------------------------------------------

@pytest.mark.parametrize("body", ["adaptive_avgpool2d(3)", "adaptive_maxpool1d(4)"])
def test_adaptive_pooling_without_a_single_window_is_refused(tmp_path, body):
    inputs = "x: f32[B, 3, 10, 10]" if "2d" in body else "x: f32[B, 3, 10]"
    path = _spec(tmp_path, "ada", inputs, body)
    with pytest.raises(EmitError) as err:
        onnx_vs_torch(path)
    assert err.value.diag.code == "E0602"
    assert "multiple" in err.value.diag.message


def test_adaptive_pooling_of_a_symbolic_size_is_refused(tmp_path):
    path = _spec(tmp_path, "ada", "x: f32[B, 3, H=8, W=8]", "adaptive_avgpool2d(2)")
    with pytest.raises(EmitError) as err:
        onnx_vs_torch(path)
    assert err.value.diag.code == "E0602"
