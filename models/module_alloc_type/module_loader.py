"""The module loader on ``module_alloc_type`` (v6.4-rc + Song Liu's v1).

kernel/module/main.c and strict_rwx.c (v6.4: one ``struct module_memory``
per ``enum mod_mem_type``, ac3b43283923) as patched by "[PATCH 1/3]"
(20230526051529.3387103-2-song@kernel.org) and, for the x86 writers,
"[PATCH 3/3]" (20230526051529.3387103-4-song@kernel.org):

* ``move_module()``: for each non-empty type in enum order
  ``module_alloc_type(PAGE_ALIGN(size), type)`` then
  ``module_memory_invalidate_type(ptr, size, type)`` (was ``memset 0``);
  then every section is copied with ``module_memory_fill_type()`` (was
  ``memcpy``) -- for text/rodata that is ``text_poke_copy``.
* ``apply_relocate_add()`` -> ``write_relocate_add()`` (x86, patch 3/3):
  ``mutex_lock(&text_mutex)``, one ``text_poke(loc, &val, size)`` per
  relocation entry, ``text_poke_sync()``, unlock -- per SHT_RELA section.
* ``module_finalize()`` -> ``apply_alternatives/retpolines/returns/
  paravirt`` and the CFI/ENDBR rewrites: ``do_text_poke()`` =
  ``text_poke()`` under ``text_mutex`` once the system is running: one per
  site.
* ``unwind_module_init()`` sorts ``.orc_unwind_ip`` with ``sort()`` and
  ``orc_sort_swap()``, which now writes with 4 ``text_poke_copy`` per swap
  (two 4-byte ip entries, two 6-byte ``struct orc_entry``);
  ``ftrace_module_init()`` -> ``ftrace_process_locs()`` sorts
  ``__mcount_loc`` with ``ftrace_swap_func()`` (patch 2/3): 2
  ``text_poke_copy`` of 8 bytes per swap.  Swap counts:
  :func:`.sort_swaps.heapsort_swaps` (lib/sort.c run on ascending input).
* ``complete_formation()``: ``module_enable_ro(mod, false)``,
  ``module_enable_nx(mod)``, ``module_enable_x(mod)``; each
  ``module_set_memory()`` (= ``set_vm_flush_reset_perms`` + ``set_memory_*``
  over ``size >> PAGE_SHIFT`` pages) now returns early for a type whose
  allocator has MOD_ALLOC_SET_MEMORY.  On x86 that leaves only
  ``set_memory_nx`` on MOD_DATA, MOD_RO_AFTER_INIT and MOD_INIT_DATA (the
  rw_data allocator): those pages were mapped PAGE_KERNEL_EXEC -- **W+X
  from allocation to here**.  ``do_init_module()``: ``module_enable_ro(mod,
  true)`` -> ``set_memory_ro`` on MOD_RO_AFTER_INIT only; ``do_free_init()``
  -> ``module_memfree_type()`` of init text, data, rodata.
* ``free_module()`` -> ``free_mod_mem()``: every non-empty type,
  MOD_DATA last.

Found while modelling (the kernel as posted, not the issue text):
``module_memory_enable_protection()`` has no ``case MOD_INIT_RODATA`` (it
falls to ``default: WARN_ONCE``), and the loader skips it too
(SET_MEMORY), so **init rodata stays RW+X** until ``do_free_init()``; this
model keeps that behaviour and counts it (``mat_enable_protection_unknown_type``).

Simplified, and why:

* Sections: one ``module_memory_fill_type()`` per type of its total bytes
  (the trace has per-type byte totals, not the section list); fills of
  text/rodata are ``text_poke_copy``, chunked per 8 KiB as the kernel does,
  so the poke count is right to within one per extra section.
* Where in a type each relocation/site lies is unknown: relocation
  section *i* targets the *i*-th non-empty text/rodata type (round robin),
  alternatives sites the text (else init text), ORC and mcount tables
  rodata (else init rodata).  Only which pages are touched depends on it.
* Relocation writes are 4 bytes (R_X86_64_PC32/PLT32, the bulk of text
  relocations; R_X86_64_64 would be 8); alternatives sites 5 bytes (a
  ``call``/``jmp rel32``, the retpoline/return-thunk site length).
* Relocations whose target is a data section are not in the trace (we keep
  only text/rodata-targeting ones) although v1 ``text_poke``s them too: the
  count is a lower bound.  ``ftrace_init_nop()`` writes
  (``ftrace_modify_code_direct()`` -> ``text_poke`` in patch 3/3) are not
  counted: with ``-mnop-mcount``/objtool ``--mnop`` the compiler already
  emits NOPs and no conversion is made.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from execbench.errors import DesignError, OutOfMemory
from execbench.kernel import Kernel
from execbench.trace import Event
from execbench.units import PAGE_SHIFT, page_align

from ..common.module_layout import INIT_TYPES, MOD_MEM_TYPES, type_sizes
from .api import ModuleAllocTypeApi
from .sort_swaps import heapsort_swaps

RELOC_BYTES = 4            # R_X86_64_PC32 / PLT32 write (__write_relocate_add)
ALT_SITE_BYTES = 5         # call/jmp rel32 site (apply_retpolines/apply_returns)
ORC_IP_BYTES = 4           # int .orc_unwind_ip entry
ORC_ENTRY_BYTES = 6        # struct orc_entry (arch/x86/include/asm/orc_types.h, __packed)
MCOUNT_LOC_BYTES = 8       # unsigned long __mcount_loc entry
#: for_class_mod_mem_type(type, data) in enum order
DATA_CLASS = ("data", "rodata", "ro_after_init", "init_data", "init_rodata")
RELOC_TARGETS = ("text", "rodata", "init_text", "init_rodata")


@dataclass
class _Mod:
    base: dict[str, int | None] = field(default_factory=dict)
    size: dict[str, int] = field(default_factory=dict)      # PAGE_ALIGNed (mod->mem[type].size)
    used: dict[str, int] = field(default_factory=dict)      # bytes from the trace
    init_freed: bool = False


class ModuleLoaderMat:
    def __init__(self, kernel: Kernel, api: ModuleAllocTypeApi):
        self.k = kernel
        self.api = api
        self.mods: dict[str, _Mod] = {}

    # -- strict_rwx.c ---------------------------------------------------------------
    def _set_memory(self, m: _Mod, t: str, fn) -> None:
        """``module_set_memory()`` with v1's early return."""
        if self.api.a.set_memory(t):
            return
        base = m.base.get(t)
        if base is not None:
            self.api.set_vm_flush_reset_perms(base)
        else:
            self.k.api("set_vm_flush_reset_perms")     # find_vm_area(NULL): no-op
        fn(base or 0, m.size.get(t, 0) >> PAGE_SHIFT)

    def _enable_ro(self, m: _Mod, after_init: bool) -> None:
        a = self.api
        for t in ("text", "init_text", "rodata", "init_rodata"):
            self._set_memory(m, t, a.set_memory_ro)
        if after_init:
            self._set_memory(m, "ro_after_init", a.set_memory_ro)

    # -- writes ---------------------------------------------------------------------
    def _region(self, m: _Mod, prefs: tuple[str, ...]) -> tuple[int, int] | None:
        for t in prefs:
            if m.base.get(t) is not None:
                return m.base[t], m.used[t]
        return None

    def _pokes(self, entry: str, region: tuple[int, int], nbytes: int, count: int) -> None:
        base, span = region
        self.api.text_poke_repeat(entry, base, span, min(nbytes, span), count)

    def _relocate(self, m: _Mod, ev: Event) -> None:
        targets = [t for t in RELOC_TARGETS if m.base.get(t) is not None]
        if ev.relocs and not targets:
            raise DesignError(f"module {ev.obj}: {ev.relocs} relocations into text/rodata "
                              "but no text or rodata")
        nsec = ev.reloc_secs or (1 if ev.relocs else 0)
        for i in range(nsec):
            share = ev.relocs // nsec + (1 if i < ev.relocs % nsec else 0)
            t = targets[i % len(targets)]
            self._pokes("text_poke", (m.base[t], m.used[t]), RELOC_BYTES, share)
            self.api.text_poke_sync()

    def _finalize(self, m: _Mod, ev: Event) -> None:
        if ev.alt_sites:
            r = self._region(m, ("text", "init_text", "rodata", "init_rodata"))
            if r is None:
                raise DesignError(f"module {ev.obj}: {ev.alt_sites} alternatives sites but no text")
            self._pokes("text_poke", r, ALT_SITE_BYTES, ev.alt_sites)
        ro = self._region(m, ("rodata", "init_rodata", "text", "init_text"))
        for n, per_swap in ((ev.orc_entries, ((ORC_IP_BYTES, 2), (ORC_ENTRY_BYTES, 2))),
                            (ev.mcount_locs, ((MCOUNT_LOC_BYTES, 2),))):
            swaps = heapsort_swaps(n)
            if not swaps:
                continue                  # nothing to sort (and maybe no rodata to sort in)
            if ro is None:
                raise DesignError(f"module {ev.obj}: a table of {n} entries to sort but no rodata")
            for nbytes, calls in per_swap:
                self._pokes("text_poke_copy", ro, nbytes, calls * swaps)
            if swaps:
                self.k.count("mat_sort_swaps", swaps)

    # -- trace ops ----------------------------------------------------------------------
    def load(self, ev: Event) -> None:
        a, k = self.api, self.k
        used = type_sizes(ev)
        m = _Mod()
        for t in MOD_MEM_TYPES:                       # move_module(), first loop
            m.used[t] = used[t]
            if not used[t]:
                m.base[t] = None
                continue
            size = page_align(used[t])
            try:
                ptr = a.module_alloc_type(size, t, caller=f"load_module:{ev.obj}")
            except OutOfMemory:
                self._free_allocated(m, t)
                raise
            a.module_memory_invalidate_type(ptr, size, t)
            m.base[t], m.size[t] = ptr, size
        for t in MOD_MEM_TYPES:                       # second loop: the sections
            if m.base[t] is not None:
                a.module_memory_fill_type(m.base[t], used[t], t)
        self._relocate(m, ev)
        self._finalize(m, ev)
        self.mods[ev.obj] = m
        for t in ("text", "init_text"):
            if m.base[t] is not None:
                k.text_claim(m.base[t], used[t])
        # complete_formation()
        self._enable_ro(m, after_init=False)
        for t in DATA_CLASS:                          # module_enable_nx()
            self._set_memory(m, t, a.set_memory_nx)
        for t in ("text", "init_text"):               # module_enable_x()
            self._set_memory(m, t, a.set_memory_x)

    def _free_allocated(self, m: _Mod, failed: str) -> None:
        """``move_module()``'s ``out_enomem``: ``module_memory_free()``
        (= ``module_memfree_type()``, NULL for an empty type) of every type
        before the one that failed, last first."""
        for t in reversed(MOD_MEM_TYPES[:MOD_MEM_TYPES.index(failed)]):
            if m.base.get(t) is None:
                self.k.api("module_memfree_type")     # module_memfree(NULL)
            else:
                self.api.module_memfree_type(m.base[t], t)

    def init_done(self, ev: Event) -> None:
        m = self.mods[ev.obj]
        self._enable_ro(m, after_init=True)
        self._free_init(m)

    def _free_init(self, m: _Mod) -> None:
        """``do_free_init()``: three ``module_memfree_type()`` calls (NULL -> no-op)."""
        if m.init_freed:
            return
        m.init_freed = True
        for t in ("init_text", "init_data", "init_rodata"):
            base = m.base.get(t)
            if base is None:
                self.k.api("module_memfree_type")     # module_memfree(NULL)
                continue
            if t == "init_text":
                self.k.text_release(base, m.used[t])
            self.api.module_memfree_type(base, t)
            m.base[t] = None

    def patch(self, ev: Event) -> None:
        m = self.mods[ev.obj]
        self.api.text_poke_bp(m.base["text"] + ev.offset, ev.len)

    def unload(self, ev: Event) -> None:
        m = self.mods.pop(ev.obj)
        self._free_init(m)
        if m.base.get("text") is not None:
            self.k.text_release(m.base["text"], m.used["text"])
        for t in [t for t in MOD_MEM_TYPES if t not in INIT_TYPES and t != "data"] + ["data"]:
            if m.base.get(t) is not None:
                self.api.module_memfree_type(m.base[t], t)
