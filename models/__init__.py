"""Designs under test, one package each (installed as ``execbench.models``).

Register a new design with one line in :mod:`execbench.registry`.
"""
