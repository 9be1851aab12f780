"""Emitters: a compiled graph written as another program's source or model file.

    torch/  readable PyTorch modules, one class per block and network (Jinja2 + black)
    onnx/   an ONNX model built from the IR with `onnx.helper`

Each is a package of its own and imports nothing of the other's emitter (the op table, which
both read, imports their vocabularies: torch/forms.py and onnx/context.py); both raise
`dlc.compiler.errors.EmitError` with a located diagnostic when they cannot express something.
"""
