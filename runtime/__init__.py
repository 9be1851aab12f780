"""dlc's runtime: run compiled artifacts (`load`). Imports numpy and `tvm.runtime`, never torch or the compiler."""
from .artifact import ArtifactError, CompiledModel, load, validate_inputs

__all__ = ["ArtifactError", "CompiledModel", "load", "validate_inputs"]
