"""Module memory layout from the per-type sizes of a ``load`` event.

* v6.1 (``kernel/module/main.c`` ``layout_sections()``/``layout_symtab()``,
  ``struct module_layout``): two allocations, core and init.  With
  ``CONFIG_STRICT_MODULE_RWX`` (x86) ``strict_align()`` (kernel/module/internal.h)
  is PAGE_ALIGN, and ``layout_sections()`` applies it after the text mask, the
  rodata mask, the ro_after_init mask and the last mask ("whole core" / "whole
  init"), so core = [text | rodata | ro_after_init | data sections] with each
  boundary on a page.  ``layout_symtab()`` (kernel/module/kallsyms.c) runs after
  that and appends the kallsyms to the page-aligned end -- the core symbols to
  core, the full symtab + strtab + ``struct mod_kallsyms`` to init -- and page-aligns
  again.  So each area holds the kallsyms on page(s) of their own::

      core = PA(text) + PA(rodata) + PA(ro_after_init) + PA(data - kallsyms) + PA(kallsyms)
      init = PA(init_text) + PA(init_rodata) + PA(init_data - init_kallsyms) + PA(init_kallsyms)

  (init has no ro_after_init: ``init_layout.ro_after_init_size = ro_size``).  The
  trace's ``data``/``init_data`` include the kallsyms (the v6.4+ MOD_DATA sizes);
  ``kallsyms``/``init_kallsyms`` say how many of those bytes they are
  (docs/trace-schema.md).  A trace written before those columns existed has them
  empty: the kallsyms then cannot be placed and the data part is paged as one
  (``PA(data)``), which is up to one page short per area.
* v6.4+ (ac3b43283923 "module: replace module_layout with module_memory"):
  one allocation of ``PAGE_ALIGN(size)`` per non-empty ``enum mod_mem_type``;
  ``layout_symtab()`` appends the kallsyms to MOD_DATA / MOD_INIT_DATA with no
  page alignment in between.

Section-level padding inside a type (``ALIGN(size, sh_addralign)``) is
already in the recorded sizes.
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


def _data_part(data: int, kallsyms: int | None) -> int:
    """Page-aligned bytes of a v6.1 area after its ro_after_init end: the data
    sections up to ``strict_align()``, then ``layout_symtab()``'s kallsyms up to
    its own ``strict_align()``."""
    if kallsyms is None:
        return page_align(data)
    return page_align(data - kallsyms) + page_align(kallsyms)


def layout_v61(ev: Event) -> tuple[Layout61, Layout61]:
    """(core_layout, init_layout) as v6.1 computes them."""
    t = page_align(ev.text)
    ro = t + page_align(ev.rodata)
    roai = ro + page_align(ev.ro_after_init)
    core = Layout61(roai + _data_part(ev.data, ev.kallsyms), t, ro, roai)
    it = page_align(ev.init_text)
    iro = it + page_align(ev.init_rodata)
    init = Layout61(iro + _data_part(ev.init_data, ev.init_kallsyms), it, iro, iro)
    return core, init


def type_sizes(ev: Event) -> dict[str, int]:
    """Unrounded bytes per ``mod_mem_type`` (v6.4+ layout)."""
    return {t: getattr(ev, t) for t in MOD_MEM_TYPES}
