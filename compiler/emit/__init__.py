"""Backends that turn a compiled graph into source code."""
