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
  :func:`models.common.sort_swaps.heapsort_swaps` (lib/sort.c run on
  ascending input).
* ``ftrace_update_code()`` then converts every ``__fentry__`` call site to
  a NOP (``ftrace_init_nop()`` -> ``ftrace_modify_code_direct()``), which
  patch 3/3 turns from ``text_poke_early()`` into ``text_poke()`` under
  ``text_mutex``: one 5-byte poke per ``__mcount_loc`` entry.  (Earlier
  versions of this model left these out, assuming the compiler emits NOPs:
  that holds on s390 only -- see :mod:`models.common.load_work`.)

The ``loader`` parameter (:mod:`models.common.load_work`): ``inplace`` (the
default, v1 as posted) is the above; ``staged`` is a what-if v1 did not
post: text and rodata are built in a ``vzalloc``ed writable copy
(sections, relocations, alternatives, both sorts, the ``__fentry__``
conversion: plain stores, ``memcpy_elsewhere``) and each of those areas is
written with one ``module_memory_fill_type()`` of its page-aligned size just
before ``complete_formation()`` -- no invalidate, no per-item poke, no
``text_poke_sync``.  Allocation, data areas and permissions are as posted.

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
* Where in a type each item lies, and the item sizes: see
  :func:`models.common.load_work.load_items` (only which pages are touched
  depends on the placement).
* Relocations whose target is a data section are not in the trace (we keep
  only text/rodata-targeting ones) although v1 ``text_poke``s them too: the
  count is a lower bound.

Every poke is counted by its source (``text_pokes_invalidate``, ``_fill``,
``_reloc``, ``_alternatives``, ``_orc_sort``, ``_mcount_sort``,
``_ftrace_init``, ``_patch``).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from execbench.errors import OutOfMemory
from execbench.kernel import Kernel
from execbench.trace import Event
from execbench.units import PAGE_SHIFT, page_align

from ..common.load_work import check_loader, item_sizes, load_items, sort_swaps
from ..common.module_layout import INIT_TYPES, MOD_MEM_TYPES, type_sizes
from .api import ModuleAllocTypeApi

LOADERS = ("inplace", "staged")
#: for_class_mod_mem_type(type, data) in enum order
DATA_CLASS = ("data", "rodata", "ro_after_init", "init_data", "init_rodata")
#: the text_poke entry each in-place write uses (patch 3/3)
POKE_ENTRY = {"reloc": "text_poke", "alternatives": "text_poke", "ftrace_init": "text_poke",
              "orc_sort": "text_poke_copy", "mcount_sort": "text_poke_copy"}


@dataclass
class _Mod:
    base: dict[str, int | None] = field(default_factory=dict)
    size: dict[str, int] = field(default_factory=dict)      # PAGE_ALIGNed (mod->mem[type].size)
    used: dict[str, int] = field(default_factory=dict)      # bytes from the trace
    init_freed: bool = False


class ModuleLoaderMat:
    def __init__(self, kernel: Kernel, api: ModuleAllocTypeApi, loader: str = "inplace"):
        self.k = kernel
        self.api = api
        self.loader = check_loader("module_alloc_type", loader, LOADERS)
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
    def _poked(self, t: str) -> bool:
        """Is type ``t`` written through text poking (its allocator's fill)?"""
        return self.api.a.params(t).fill == "text_poke_copy"

    def _write(self, m: _Mod, b, staged: bool) -> None:
        """One batch of item writes: ``count`` pokes, or stores into the copy."""
        k = self.k
        if staged or not self._poked(b.mtype):
            k.memcpy_elsewhere(b.bytes)
            return
        span = m.used[b.mtype]
        with k.poke_source(b.source):
            self.api.text_poke_repeat(POKE_ENTRY[b.source], m.base[b.mtype], span,
                                      min(b.nbytes, span), b.count)

    def _write_items(self, m: _Mod, ev: Event) -> None:
        """Relocations, alternatives, the two sorts and the ``__fentry__``
        conversion: in place (one poke per item, a sync per relocation
        section) or into the writable copy (plain stores)."""
        k, a = self.k, self.api
        present = {t for t in MOD_MEM_TYPES if m.base.get(t) is not None}
        items, nsec = load_items(ev, present, item_sizes(k))
        staged = self.loader == "staged"
        relocs = [b for b in items if b.source == "reloc"]
        for b in relocs:                                   # apply_relocations()
            self._write(m, b, staged)
        if not staged:
            a.text_poke_sync_repeat(nsec)                  # one per write_relocate_add()
        for b in items:                                    # module_finalize(), ftrace_module_init()
            if b.source != "reloc":
                self._write(m, b, staged)
        swaps = sort_swaps(ev)
        if swaps:
            k.count("mat_sort_swaps", swaps)
        text = (m.base["text"], m.used["text"]) if m.base.get("text") is not None else None
        init = (m.base["init_text"], m.used["init_text"]) if m.base.get("init_text") is not None else None
        k.module_relocate(ev.obj, text, init)          # arm64: PLT entries by distance

    # -- trace ops ----------------------------------------------------------------------
    def load(self, ev: Event) -> None:
        a, k = self.api, self.k
        used = type_sizes(ev)
        staged = self.loader == "staged"
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
            m.base[t], m.size[t] = ptr, size
            if staged and self._poked(t):
                k.memcpy_elsewhere(size)              # rw_copy = vzalloc(size)
            else:
                with k.poke_source("invalidate"):
                    a.module_memory_invalidate_type(ptr, size, t)
        for t in MOD_MEM_TYPES:                       # second loop: the sections
            if m.base[t] is None:
                continue
            if staged and self._poked(t):
                k.memcpy_elsewhere(used[t])
            else:
                with k.poke_source("fill"):
                    a.module_memory_fill_type(m.base[t], used[t], t)
        self._write_items(m, ev)
        if staged:                                    # publish each copy: one fill per area
            for t in MOD_MEM_TYPES:
                if m.base[t] is not None and self._poked(t):
                    with k.poke_source("fill"):
                        a.module_memory_fill_type(m.base[t], m.size[t], t)
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

    def _free_init(self, m: _Mod, nulls: bool = True) -> None:
        """``do_free_init()``: three ``module_memfree_type()`` calls, NULL
        for an absent type (a no-op call); ``nulls=False`` is
        ``free_mod_mem()`` before init, which skips empty types."""
        if m.init_freed:
            return
        m.init_freed = True
        for t in ("init_text", "init_data", "init_rodata"):
            base = m.base.get(t)
            if base is None:
                if nulls:
                    self.api.module_memfree_type(None, t)     # module_memfree(NULL)
                continue
            if t == "init_text":
                self.k.text_release(base, m.used[t])
            self.api.module_memfree_type(base, t)
            m.base[t] = None

    def patch(self, ev: Event) -> None:
        m = self.mods[ev.obj]
        with self.k.poke_source("patch"):
            self.api.text_poke_bp(m.base["text"] + ev.offset, ev.len)

    def unload(self, ev: Event) -> None:
        m = self.mods.pop(ev.obj)
        self._free_init(m, nulls=False)             # free_mod_mem(): non-empty types only
        if m.base.get("text") is not None:
            self.k.text_release(m.base["text"], m.used["text"])
        for t in [t for t in MOD_MEM_TYPES if t not in INIT_TYPES and t != "data"] + ["data"]:
            if m.base.get(t) is not None:
                self.api.module_memfree_type(m.base[t], t)
