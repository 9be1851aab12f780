"""Jinja2 templates and helper-layer sources of the PyTorch emitter (package data)."""
