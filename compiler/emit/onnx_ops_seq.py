"""ONNX converters for embeddings, positional encodings, attention and recurrent layers."""
from __future__ import annotations

from .onnx_builder import Converter

CONVERTERS: dict[str, Converter] = {}
