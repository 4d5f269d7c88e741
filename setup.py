"""Package discovery for the ``package-dir`` mapping in pyproject.toml.

``models/`` installs as ``execbench.models`` and ``workloads/`` as
``execbench.workloads``; setuptools' declarative ``packages.find`` cannot
express that mapping, so the package list is computed here.  Adding a design
is then only a new folder under ``models/`` -- no list to edit.
"""
from setuptools import find_packages, setup


def _mapped(root: str, prefix: str) -> list[str]:
    return [prefix] + [f"{prefix}.{p}" for p in find_packages(root)]


setup(
    packages=find_packages(include=["execbench", "execbench.*"])
    + _mapped("models", "execbench.models")
    + _mapped("workloads", "execbench.workloads")
)
