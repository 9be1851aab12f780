"""Backends that compile a graph for hardware (as opposed to emitters, which write source or a model file)."""
