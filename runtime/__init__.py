"""dlc's runtime: run compiled artifacts (`load`). Imports numpy, and at load TVM's runtime library
(through tvm_ffi; not TVM's Python package for a CPU artifact), never torch or the compiler."""
from .artifact import ArtifactError, CompiledModel, load, validate_inputs

__all__ = ["ArtifactError", "CompiledModel", "load", "validate_inputs"]
