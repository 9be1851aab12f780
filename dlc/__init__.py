"""dlc: a declarative deep-learning model compiler.

The compiler lives in `dlc.compiler` (the repository's `compiler/`), the runtime in
`dlc.runtime` (`runtime/`). This package holds the public API and the `dlc` command.
"""
from dlc.compiler.diagnostics import CompileError
from dlc.compiler.pipeline import compile_file, compile_network

__all__ = ["CompileError", "compile_file", "compile_network"]
__version__ = "0.1.0"
