"""dlc's runtime: run compiled artifacts (`load`). Imports only numpy and TVM's runtime."""
from .artifact import ArtifactError, CompiledModel, load, validate_inputs

__all__ = ["ArtifactError", "CompiledModel", "load", "validate_inputs"]
