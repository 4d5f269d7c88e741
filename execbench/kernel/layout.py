"""The x86-64 module / executable-memory range and its KASLR offset.

Sources (v6.1):

* ``arch/x86/include/asm/pgtable_64_types.h``:
  ``MODULES_VADDR = __START_KERNEL_map + KERNEL_IMAGE_SIZE``,
  ``MODULES_END = _AC(0xffffffffff000000, UL)``,
  ``MODULES_LEN = MODULES_END - MODULES_VADDR``.
* ``arch/x86/include/asm/page_64_types.h``: ``__START_KERNEL_map =
  0xffffffff80000000``; ``KERNEL_IMAGE_SIZE = 1 GiB`` with
  ``CONFIG_RANDOMIZE_BASE`` (Debian's configuration), so MODULES_VADDR is
  0xffffffffc0000000 and the range is 1008 MiB.
* ``arch/x86/kernel/module.c`` ``get_module_load_offset()``: with KASLR the
  lower bound moves up by ``(get_random_int() % 1024 + 1) * PAGE_SIZE``,
  drawn once per boot; vmalloc then allocates lowest-address-first above it.
"""
from __future__ import annotations

import numpy as np

from ..units import GiB, PAGE_SIZE

START_KERNEL_MAP = 0xFFFFFFFF80000000
KERNEL_IMAGE_SIZE = 1 * GiB
MODULES_VADDR = START_KERNEL_MAP + KERNEL_IMAGE_SIZE   # 0xffffffffc0000000
MODULES_END = 0xFFFFFFFFFF000000
MODULES_LEN = MODULES_END - MODULES_VADDR              # 1008 MiB
MODULES_PAGES = MODULES_LEN // PAGE_SIZE               # 258048


def module_load_offset(rng: np.random.Generator, kaslr: bool = True) -> int:
    """``get_module_load_offset()``: 1..1024 pages when KASLR is on, else 0."""
    if not kaslr:
        return 0
    return int(rng.integers(1, 1025)) * PAGE_SIZE
