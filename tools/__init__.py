"""Maintainers' tools: student copies of the exercises and their checks, Colab links, outputs."""
