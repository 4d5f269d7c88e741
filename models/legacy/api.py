"""v6.1's executable-memory "API": ``module_alloc()`` / ``module_memfree()``
plus the permission and patching primitives every user calls itself
(:class:`models.common.module_alloc.ModuleAllocApi`, shared with designs that
keep ``module_alloc`` for memory outside their scope, such as jitalloc's
non-text module memory)."""
from __future__ import annotations

from ..common.module_alloc import ModuleAllocApi

__all__ = ["ModuleAllocApi"]
