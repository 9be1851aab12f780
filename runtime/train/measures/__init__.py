"""The measuring shows (runtime/train/evals.py): one module per family, each registering its kinds
with `@measure("kind")`. Every module of this package is imported, in name order."""
from __future__ import annotations

import importlib
import pkgutil

for _info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
    importlib.import_module(f"{__name__}.{_info.name}")
