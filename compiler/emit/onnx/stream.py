"""An ONNX model whose weights stay numpy arrays until they reach the file.

`OnnxModel` is a model in two parts: `proto`, the ModelProto without initializers (nodes, inputs,
outputs, opsets: kilobytes), and `arrays`, the initializers' values by name, in graph order.
`save_onnx` writes it without ever holding the weights twice: the file is the bytes
`onnx.save_model` writes for the complete model, each array copied from its own buffer to the file.

Why that works: a serialized protobuf message is its fields in field-number order, each a key
(field number and wire type), for a message or bytes field a length, then the value. So the file
is written as: the ModelProto's fields before `graph` (7), the graph's key and length, the
GraphProto's fields before `initializer` (5), each initializer (key, length, its TensorProto's
fields before `raw_data` (9), raw_data's key and length, the array's bytes, the fields after), the
graph's fields after `initializer`, the model's after `graph`. Every length is known before a byte
is written (an array's is its `nbytes`), so nothing is serialized whole.

A model of 2 GiB or more cannot be one file (protobuf's limit): its tensors of at least
`EXTERNAL_MIN_BYTES` go to `<name>.data` beside it, one after the other, and the model names
each one's `location`, `offset` and `length` (ONNX's external data, as `onnx.save_model(...,
save_as_external_data=True, all_tensors_to_one_file=True)` lays it out).
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Iterable

import numpy as np
import onnx
from onnx import helper, numpy_helper

MODEL_GRAPH, GRAPH_INITIALIZER, TENSOR_RAW_DATA = 7, 5, 9  # field numbers in onnx.proto
PROTOBUF_LIMIT = 2**31 - 1  # the largest message protobuf parses (and so onnx.load)
# onnx.save_model's rule for a tensor to go to the data file: `sys.getsizeof(raw_data) >= 1024`.
EXTERNAL_MIN_BYTES = 1024 - sys.getsizeof(b"")

Chunk = bytes | np.ndarray  # what the writer writes: bytes, or an array's own buffer


@dataclass
class OnnxModel:
    """An ONNX model whose initializers are numpy arrays, not yet protobuf bytes.

    `proto` has no initializers; `arrays` are their values by name in graph order (C-contiguous,
    each of a dtype `onnx.numpy_helper.from_array` stores as its plain bytes)."""

    proto: onnx.ModelProto
    arrays: dict[str, np.ndarray]

    @property
    def nbytes(self) -> int:
        """The initializers' bytes."""
        return sum(a.nbytes for a in self.arrays.values())

    def to_proto(self) -> onnx.ModelProto:
        """The complete ModelProto, initializers with their data (what `emit_onnx` returns).
        One tensor at a time is copied into it, so its peak is the model plus one tensor."""
        model = onnx.ModelProto()
        model.CopyFrom(self.proto)
        for name, array in self.arrays.items():
            tensor = model.graph.initializer.add()
            tensor.CopyFrom(tensor_header(name, array))
            tensor.raw_data = numpy_helper.tobytes_little_endian(array)
        return model

    @staticmethod
    def from_proto(model: onnx.ModelProto) -> OnnxModel:
        """The model in two parts (a copy: `model` is left as it was)."""
        skeleton = onnx.ModelProto()
        for field, value in model.ListFields():
            if field.name != "graph":
                _copy_field(skeleton, field, value)
        for field, value in model.graph.ListFields():
            if field.name != "initializer":
                _copy_field(skeleton.graph, field, value)
        skeleton.graph.SetInParent()
        return OnnxModel(skeleton, {t.name: numpy_helper.to_array(t) for t in model.graph.initializer})


def _copy_field(target: Any, field: Any, value: Any) -> None:
    """Set `field` of the message `target` to `value` (a copy), whatever the field's kind."""
    if isinstance(value, (bool, int, float, str, bytes)):
        setattr(target, field.name, value)
    elif field.type == field.TYPE_MESSAGE and not hasattr(value, "extend"):
        getattr(target, field.name).CopyFrom(value)
    else:  # a repeated field
        getattr(target, field.name).extend(value)


def tensor_header(name: str, array: np.ndarray) -> onnx.TensorProto:
    """The TensorProto `numpy_helper.from_array(array, name)` makes, without its raw_data."""
    return onnx.TensorProto(name=name, dims=array.shape, data_type=helper.np_dtype_to_tensor_dtype(array.dtype))


def single_file_size(model: OnnxModel) -> int:
    """The bytes of `model` written as one .onnx file."""
    return _size(_model_chunks(model, {}))


def save_onnx(model: OnnxModel | onnx.ModelProto, path: Path, external: bool | None = None) -> None:
    """Write `model` to `path` atomically (through a temporary file beside it, renamed when
    complete), as one file, or with its weights in `<name>.data` beside it when it would be
    over protobuf's 2 GiB limit as one (or when `external` asks). A ModelProto is first split
    (a copy of its weights); an `OnnxModel` is written straight from its arrays."""
    if isinstance(model, onnx.ModelProto):
        model = OnnxModel.from_proto(model)
    external = single_file_size(model) > PROTOBUF_LIMIT if external is None else external
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    if external:
        data_name = f"{path.name}.data"
        tmp_data = path.with_name(f".{data_name}.tmp")
        placed = _external_offsets(model)
        _write(tmp_data, [_little_endian(model.arrays[name]) for name in placed])
        try:
            _write(tmp, _model_chunks(model, placed, data_name))
        except BaseException:
            tmp_data.unlink()
            raise
        tmp_data.replace(path.with_name(data_name))
    else:
        _write(tmp, _model_chunks(model, {}))
    tmp.replace(path)


def _external_offsets(model: OnnxModel) -> dict[str, int]:
    """Where each tensor that goes to the data file starts in it (no gaps, graph order)."""
    offsets, at = {}, 0
    for name, array in model.arrays.items():
        if array.nbytes >= EXTERNAL_MIN_BYTES:
            offsets[name] = at
            at += array.nbytes
    return offsets


# --- the protobuf encoding ---------------------------------------------------------------------

def _model_chunks(model: OnnxModel, placed: dict[str, int], data_name: str = "") -> list[Chunk]:
    """The file's chunks: the model's fields around `graph`, the graph's around its initializers.
    A tensor named in `placed` is written as a reference to `data_name` at that offset."""
    graph_before, graph_after = _split(model.proto.graph.SerializeToString(), GRAPH_INITIALIZER)
    graph = [graph_before]
    for name, array in model.arrays.items():
        if name in placed:
            tensor = _tensor_chunks(_external_header(name, array, data_name, placed[name]), None)
        else:
            tensor = _tensor_chunks(tensor_header(name, array), array)
        graph += [_key(GRAPH_INITIALIZER), _varint(_size(tensor)), *tensor]
    graph.append(graph_after)
    skeleton = onnx.ModelProto()
    skeleton.CopyFrom(model.proto)
    skeleton.ClearField("graph")
    model_before, model_after = _split(skeleton.SerializeToString(), MODEL_GRAPH)
    return [model_before, _key(MODEL_GRAPH), _varint(_size(graph)), *graph, model_after]


def _tensor_chunks(header: onnx.TensorProto, array: np.ndarray | None) -> list[Chunk]:
    """A TensorProto's chunks: `header`'s fields, with `array` as its raw_data when given."""
    encoded = header.SerializeToString()
    if array is None:
        return [encoded]
    before, after = _split(encoded, TENSOR_RAW_DATA)
    return [before, _key(TENSOR_RAW_DATA), _varint(array.nbytes), _little_endian(array), after]


def _external_header(name: str, array: np.ndarray, location: str, offset: int) -> onnx.TensorProto:
    """The TensorProto of a tensor in the data file, as `onnx.external_data_helper` writes it."""
    tensor = tensor_header(name, array)
    for key, value in (("location", location), ("offset", str(offset)), ("length", str(array.nbytes))):
        tensor.external_data.add(key=key, value=value)
    tensor.data_location = onnx.TensorProto.EXTERNAL
    return tensor


def _little_endian(array: np.ndarray) -> np.ndarray:
    """`array` as ONNX stores it (little-endian); a view unless the machine is big-endian."""
    return np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<"), copy=False)


def _key(field: int) -> bytes:
    return _varint(field << 3 | 2)  # wire type 2: length-delimited


def _varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _split(message: bytes, field: int) -> tuple[bytes, bytes]:
    """A serialized message's fields numbered below `field`, and those above it (a serializer
    writes fields in number order; `message` has none numbered `field`)."""
    at = 0
    while at < len(message):
        key, end = _read_varint(message, at)
        if key >> 3 > field:
            break
        if key >> 3 == field:
            raise ValueError(f"the message already has field {field}")
        at = _skip_value(message, end, key & 7)
    return message[:at], message[at:]


def _skip_value(message: bytes, at: int, wire: int) -> int:
    if wire == 0:
        return _read_varint(message, at)[1]
    if wire == 1:
        return at + 8
    if wire == 2:
        length, at = _read_varint(message, at)
        return at + length
    if wire == 5:
        return at + 4
    raise ValueError(f"unexpected protobuf wire type {wire}")


def _read_varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[at]
        value |= (byte & 0x7F) << shift
        at += 1
        if byte < 0x80:
            return value, at
        shift += 7


def _size(chunks: Iterable[Chunk]) -> int:
    return sum(c.nbytes if isinstance(c, np.ndarray) else len(c) for c in chunks)


def _write(path: Path, chunks: Iterable[Chunk]) -> None:
    """Write `chunks` to `path` (a temporary name); nothing is left there when it fails."""
    try:
        with open(path, "wb") as f:
            for chunk in chunks:
                _write_chunk(f, chunk)
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def _write_chunk(f: BinaryIO, chunk: Chunk) -> None:
    if isinstance(chunk, np.ndarray):
        f.write(chunk.reshape(-1).view(np.uint8).data)  # the array's own buffer: no copy
    else:
        f.write(chunk)
