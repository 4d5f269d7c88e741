"""The explicit registry of designs (pyperformance's MANIFEST, as code).

One line per design: its id and where its class lives.  Classes are
imported lazily so that listing designs costs nothing.
"""
from __future__ import annotations

import importlib

from .errors import UnknownName

DESIGNS: dict[str, str] = {
    "legacy": "execbench.models.legacy:Legacy",
    "jitalloc": "execbench.models.jitalloc:JitAlloc",
    "module_alloc_type": "execbench.models.module_alloc_type:ModuleAllocType",
    "module_alloc_type_pmd": "execbench.models.module_alloc_type:ModuleAllocTypePmd",
    "execmem": "execbench.models.execmem:Execmem",
    "execmem_rox": "execbench.models.execmem_rox:ExecmemRox",
}

#: The design every ratio in a report is computed against.
BASELINE = "legacy"


def names() -> list[str]:
    return list(DESIGNS)


def names_for(arch: str) -> list[str]:
    """The designs that exist on ``arch`` (``Design.arch_support``)."""
    return [n for n in DESIGNS if get(n).arch_support(arch) is None]


def get(name: str):
    """The design class registered as ``name``."""
    try:
        target = DESIGNS[name]
    except KeyError:
        raise UnknownName("design", name, list(DESIGNS)) from None
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)
