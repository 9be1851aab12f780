"""`save_onnx` writes the model straight from the weights' arrays (compiler/emit/onnx/stream.py):
the file is byte for byte what `onnx.save_model` writes for the complete ModelProto, as one file
and with external data, it loads in onnx and ONNX Runtime with PyTorch's outputs, and the model
being written never holds a copy of the weights (checked on its structure, not by timing)."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import helper, numpy_helper

from conftest import SPEC, compile_text, random_inputs, torch_weights
from dlc.compiler.checkpoint import random_weights
from dlc.compiler.emit.onnx import OnnxModel, build_onnx, emit_onnx, save_onnx
from dlc.compiler.emit.onnx.stream import EXTERNAL_MIN_BYTES, _model_chunks, single_file_size
from dlc.compiler.emit.torch import torch_namespace
from dlc.compiler.pipeline import compile_file

# An LSTM (its gates reordered into new initializers, the originals dropped) and a tied embedding;
# resnet18 brings batch norms, pixelcnn a masked kernel.
MIXED = """network Mixed {
  input ids: i64[B, T=6]
  h = ids -> emb: embedding(11, 8) -> rnn: lstm(8)
  output y = h -> head: linear(11, bias=false, tie=emb)
}
"""


def _graph(spec: str):
    return list(compile_file(SPEC / spec).graphs.values())[-1]


def _reference(model: OnnxModel) -> onnx.ModelProto:
    """The complete ModelProto made the ordinary way: each array through `numpy_helper.from_array`."""
    reference = onnx.ModelProto()
    reference.CopyFrom(model.proto)
    reference.graph.initializer.extend(numpy_helper.from_array(a, name) for name, a in model.arrays.items())
    return reference


def _mixed_graph(tmp_path):
    result = compile_text(MIXED, tmp_path)
    result.raise_for_errors()
    return result.graphs["Mixed"]


@pytest.mark.parametrize("spec", ["lenet5.arch", "resnet18.arch", "pixelcnn.arch"])
def test_the_streamed_file_is_onnx_save_models_bytes(tmp_path, spec):
    graph = _graph(spec)
    model = build_onnx(graph, random_weights(graph))
    save_onnx(model, tmp_path / "m.onnx")
    reference = _reference(model)
    onnx.save_model(reference, str(tmp_path / "ref.onnx"))
    assert (tmp_path / "m.onnx").read_bytes() == (tmp_path / "ref.onnx").read_bytes()
    assert emit_onnx(graph, random_weights(graph)).SerializeToString() == reference.SerializeToString()
    assert single_file_size(model) == (tmp_path / "m.onnx").stat().st_size
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "ref.onnx"]  # no temporary left


def test_lstm_gates_and_ties_stream_like_the_in_memory_model(tmp_path):
    graph = _mixed_graph(tmp_path)
    weights = random_weights(graph)
    model = build_onnx(graph, weights)
    assert any(".onnx_" in name for name in model.arrays)  # the reordered LSTM gates
    assert "rnn.weight_ih_l0" not in model.arrays and "head.weight" not in model.arrays  # dropped, tied
    save_onnx(model, tmp_path / "m.onnx")
    assert (tmp_path / "m.onnx").read_bytes() == emit_onnx(graph, weights).SerializeToString()


def test_every_initializer_and_the_graph_survive_onnx_load(tmp_path):
    graph = _graph("resnet18.arch")
    weights = random_weights(graph)
    model = build_onnx(graph, weights)
    save_onnx(model, tmp_path / "m.onnx")
    loaded = onnx.load(str(tmp_path / "m.onnx"))
    onnx.checker.check_model(loaded, full_check=True)
    assert [t.name for t in loaded.graph.initializer] == list(model.arrays)
    for tensor in loaded.graph.initializer:
        stored = numpy_helper.to_array(tensor)
        assert stored.dtype == model.arrays[tensor.name].dtype
        np.testing.assert_array_equal(stored, model.arrays[tensor.name])
    used = {w.name for w in graph.weights if not w.name.endswith("num_batches_tracked")}  # no ONNX use
    assert used <= set(model.arrays)
    loaded.graph.ClearField("initializer")
    assert loaded.SerializeToString() == model.proto.SerializeToString()


def test_onnxruntime_on_the_streamed_file_matches_pytorch(tmp_path):
    graph = _graph("lenet5.arch")
    torch.manual_seed(0)
    module = getattr(torch_namespace(SPEC / "lenet5.arch"), graph.name)().eval()
    weights = torch_weights(module)
    save_onnx(build_onnx(graph, {w.name: weights[w.name] for w in graph.weights}), tmp_path / "m.onnx")
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    feeds = random_inputs(graph, {"B": 3})
    with torch.no_grad():
        expected = module(torch.from_numpy(feeds["x"])).numpy()
    np.testing.assert_allclose(session.run(None, feeds)[0], expected, atol=1e-5, rtol=1e-5)


def test_the_model_being_written_holds_no_copy_of_the_weights():
    graph = _graph("resnet18.arch")
    weights = random_weights(graph)
    model = build_onnx(graph, weights)
    assert len(model.proto.graph.initializer) == 0  # no TensorProto, so no raw_data, in memory
    assert model.proto.ByteSize() < 100_000 < model.nbytes
    for name in set(weights) & set(model.arrays):
        assert model.arrays[name] is weights[name]  # the caller's arrays themselves
    chunks = _model_chunks(model, {})
    arrays = [c for c in chunks if isinstance(c, np.ndarray)]
    assert all(any(np.shares_memory(c, a) for a in model.arrays.values()) for c in arrays)
    assert sum(len(c) for c in chunks if isinstance(c, bytes)) < 100_000  # all else is small headers
    assert sum(c.nbytes for c in arrays) == model.nbytes


def test_external_data_is_onnx_save_models_layout(tmp_path):
    graph = _mixed_graph(tmp_path)
    model = build_onnx(graph, random_weights(graph))
    (tmp_path / "ours").mkdir()
    (tmp_path / "theirs").mkdir()
    save_onnx(model, tmp_path / "ours" / "m.onnx", external=True)
    onnx.save_model(_reference(model), str(tmp_path / "theirs" / "m.onnx"), save_as_external_data=True,
                    all_tensors_to_one_file=True, location="m.onnx.data", size_threshold=1024)
    for name in ("m.onnx", "m.onnx.data"):
        assert (tmp_path / "ours" / name).read_bytes() == (tmp_path / "theirs" / name).read_bytes(), name
    assert sorted(p.name for p in (tmp_path / "ours").iterdir()) == ["m.onnx", "m.onnx.data"]
    loaded = onnx.load(str(tmp_path / "ours" / "m.onnx"))
    for tensor in loaded.graph.initializer:
        np.testing.assert_array_equal(numpy_helper.to_array(tensor), model.arrays[tensor.name])
    small = [n for n, a in model.arrays.items() if a.nbytes < EXTERNAL_MIN_BYTES]
    assert small and len(small) < len(model.arrays)  # both kinds were written


def test_every_dtype_and_shape_encodes_like_from_array(tmp_path):
    arrays = {f"{dtype}_{len(shape)}_{i}": (np.arange(int(np.prod(shape))) % 7).astype(dtype).reshape(shape)
              for i, shape in enumerate([(), (0,), (2, 3), (4, 0, 2), (300, 70)])
              for dtype in ["float32", "float64", "float16", "int64", "int32", "uint8", "bool"]}
    outputs = [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
               for n, a in arrays.items()]
    nodes = [helper.make_node("Identity", [n], [f"out_{n}"]) for n in arrays]
    for out in outputs:
        out.name = f"out_{out.name}"
    skeleton = helper.make_model(helper.make_graph(nodes, "dtypes", [], outputs),
                                 opset_imports=[helper.make_opsetid("", 18)])
    model = OnnxModel(skeleton, arrays)
    save_onnx(model, tmp_path / "m.onnx")
    assert (tmp_path / "m.onnx").read_bytes() == _reference(model).SerializeToString()
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    for name, got in zip(arrays, session.run(None, {}), strict=True):
        np.testing.assert_array_equal(got, arrays[name])


def test_a_model_proto_is_written_alike_and_left_as_it_was(tmp_path):
    graph = _graph("lenet5.arch")
    proto = emit_onnx(graph, random_weights(graph))
    before = proto.SerializeToString()
    save_onnx(proto, tmp_path / "m.onnx", external=True)
    assert proto.SerializeToString() == before  # onnx.save_model's external data would have moved its data out
    save_onnx(proto, tmp_path / "single.onnx")
    assert (tmp_path / "single.onnx").read_bytes() == before
