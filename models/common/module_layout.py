"""Module memory layout from the per-type sizes of a ``load`` event.

* v6.1 (``kernel/module/main.c`` ``layout_sections()``/``layout_symtab()``,
  ``struct module_layout``): two allocations, core and init.  With
  ``CONFIG_STRICT_MODULE_RWX`` (x86) ``strict_align()`` page-aligns the end of
  text, of rodata and of ro_after_init, and the whole, so each boundary is on
  a page: core = [text | rodata | ro_after_init | data], init = [text |
  rodata | data] (init has no ro_after_init: ``init_layout.ro_after_init_size
  = ro_size``).
* v6.4+ (ac3b43283923 "module: replace module_layout with module_memory"):
  one allocation of ``PAGE_ALIGN(size)`` per non-empty ``enum mod_mem_type``.

Section-level padding inside a type (``ALIGN(size, sh_addralign)``) is
already in the recorded sizes.  Simplified: v6.1 ``layout_sections()``
page-aligns the end of the data sections (mask 4, "whole core") *before*
``layout_symtab()`` appends the core kallsyms, so the real core area can be
one page larger than ``PAGE_ALIGN(ro_after_init_size + data)``; the trace
carries data with kallsyms as one number (the v6.4+ MOD_DATA size), so
legacy may undercount a module's core area by at most one data page.
"""
from __future__ import annotations

from dataclasses import dataclass

from execbench.trace import Event
from execbench.units import page_align

#: enum mod_mem_type (include/linux/module.h, v6.4), in enum order
MOD_MEM_TYPES = ("text", "data", "rodata", "ro_after_init", "init_text", "init_data", "init_rodata")
TEXT_TYPES = ("text", "init_text")
INIT_TYPES = ("init_text", "init_data", "init_rodata")


@dataclass(frozen=True)
class Layout61:
    """``struct module_layout`` sizes in bytes (all page-aligned)."""

    size: int
    text_size: int
    ro_size: int
    ro_after_init_size: int


def layout_v61(ev: Event) -> tuple[Layout61, Layout61]:
    """(core_layout, init_layout) as v6.1 computes them."""
    t = page_align(ev.text)
    ro = t + page_align(ev.rodata)
    roai = ro + page_align(ev.ro_after_init)
    core = Layout61(page_align(roai + ev.data), t, ro, roai)
    it = page_align(ev.init_text)
    iro = it + page_align(ev.init_rodata)
    init = Layout61(page_align(iro + ev.init_data), it, iro, iro)
    return core, init


def type_sizes(ev: Event) -> dict[str, int]:
    """Unrounded bytes per ``mod_mem_type`` (v6.4+ layout)."""
    return {t: getattr(ev, t) for t in MOD_MEM_TYPES}
