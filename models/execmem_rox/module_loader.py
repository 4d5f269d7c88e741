"""The module loader with ROX module text (v6.13, v6.15, v6.17).

Only what changed from v6.10 (:mod:`models.execmem.module_loader`):

* v6.13 (kernel/module/main.c ``module_memory_alloc()``): a text type
  for which ``execmem_is_rox()`` holds gets ``mem->is_rox = true`` and a
  writable shadow ``mem->rw_copy = vzalloc(size)``; sections are copied,
  relocated and alternative-patched in the shadow
  (``module_writable_address()``); after ``module_finalize()``,
  ``module_post_finalize()`` publishes each ROX type with ONE
  ``execmem_update_copy(mem->base, mem->rw_copy, mem->size)``
  (``text_poke_copy``) and ``vfree``s the shadow;
  ``module_enable_text_rox()`` skips ``is_rox`` types.  So: no
  ``set_memory_*`` on module text at all.
* v6.15 ("module: switch to execmem API for remapping as RW and
  restoring ROX"): the shadow is gone; ``module_memory_alloc()`` calls
  ``execmem_make_temp_rw(ptr, size)`` (``set_memory_nx`` +
  ``set_memory_rw`` on the module's own pages -- which splits the 2 MiB
  leaf they sit in), the loader writes in place with plain stores, and
  ``module_enable_text_rox()`` calls ``execmem_restore_rox()``
  (``set_memory_rox`` with CPA_COLLAPSE, re-forming the 2 MiB leaf).
* v6.17 (the "execmem: introduce execmem_alloc_rw()" diff, read): in
  ``module_memory_alloc()`` every type comes from ``execmem_alloc_rw()``
  (nx + rw inside execmem -- no-op calls on data types, which are already
  RW+NX) and ``is_rox = execmem_is_rox(type)``; the rest as v6.15.
* v7.2 (kernel/module/main.c and strict_rwx.c, Debian 7.2.13): as v6.17 --
  ``module_memory_alloc()``: ``execmem_alloc_rw(type, PAGE_ALIGN(size))``,
  ``is_rox = execmem_is_rox(type)``, ``memset(ptr, 0, size)``; sections,
  relocations and alternatives (``text_poke_early`` = memcpy while the module
  is unformed) are plain stores; ``module_enable_text_rox()`` calls
  ``execmem_restore_rox()`` for ``is_rox`` types.
* every version: ``do_free_init()`` calls ``execmem_free()`` on all three
  init pointers (``init_text``, ``init_data``, ``init_rodata``), NULL for a
  type the module does not have; those calls do nothing (see
  :mod:`.api`) and are counted as ``execmem_free_null`` so that validation
  can compare the number of ``execmem_free`` calls with the kernel's.

Data types are v6.10's in every version, except that from v6.15 the
after-init step is ``module_enable_rodata_ro_after_init()`` (MOD_RO_AFTER_INIT
only; see :mod:`models.execmem.module_loader`).

The loader strategy is the design parameter ``loader``
(:mod:`models.common.load_work`); by default the one the version shipped:

* ``staged`` -- v6.13 as above (the default for ``version=6.13``).  The
  relocations, alternatives and the ORC sort go to ``mem->rw_copy``; the
  copy is published in ``module_post_finalize()``, *before*
  ``ftrace_module_init()``, so the ``__fentry__`` -> NOP conversion writes
  the published ROX text: 9bfc4824fd48 "x86/module: prepare module loading
  for ROX allocations of text" made ``ftrace_modify_code_direct()`` use
  ``text_poke()`` for it, and "x86/ftrace: fix boot time slowdown"
  (20241124140705.2883-1-rppt@kernel.org) kept that for module sites: one
  5-byte ``text_poke`` per ``__mcount_loc`` entry (``text_pokes_ftrace_init``).
  The ``__mcount_loc`` sort itself is in rodata, RW+NX at that point: plain
  stores.  On a later version ``staged`` is a what-if (that flow with the
  later version's CPA rules and data types).
* ``temp_rw`` -- v6.15+ as above (the default from ``version=6.15``): the
  module's own text pages RW+NX for the load, plain stores for every write
  (``ftrace_modify_code_direct()`` is ``text_poke_early()`` again, 7.2.13
  arch/x86/kernel/ftrace.c), ``execmem_restore_rox()`` at formation.
  v6.13 had no ``execmem_make_temp_rw()``: refused there.
* ``inplace`` -- a what-if no kernel shipped: text stays ROX from the cache
  and every write into it goes through ``text_poke`` as it is made (one
  ``execmem_update_copy`` per section fill, one ``text_poke`` per
  relocation entry, alternatives site and ``__fentry__`` site); rodata is
  RW until formation, so the sorts are plain stores.
"""
from __future__ import annotations

from execbench.errors import DesignError
from execbench.kernel import Kernel
from execbench.trace import Event

from ..common.load_work import check_loader, item_bytes, load_items
from ..common.module_layout import TEXT_TYPES
from ..execmem.api import ExecmemType
from ..execmem.module_loader import Mod, ModMem, ModuleLoader610
from .api import ExecmemRoxApi

LOADERS = ("temp_rw", "staged", "inplace")


def default_loader(version: tuple[int, int]) -> str:
    """The strategy ``version`` shipped: v6.13 the writable copy, v6.15+
    the temporarily RW module pages."""
    return "staged" if version < (6, 15) else "temp_rw"


class ModuleLoaderRox(ModuleLoader610):
    def __init__(self, kernel: Kernel, api: ExecmemRoxApi, loader: str = ""):
        super().__init__(kernel, api)
        self.api: ExecmemRoxApi = api
        self.version = api.version
        self.split_after_init = self.version >= (6, 15)
        self.loader = check_loader("execmem_rox", loader or default_loader(self.version), LOADERS)
        if self.loader == "temp_rw" and self.version < (6, 15):
            raise DesignError("execmem_rox: loader=temp_rw needs version >= 6.15 "
                              "(execmem_make_temp_rw() came with v6.15)")

    def _alloc_mem(self, mtype: str, size: int, name: str) -> ModMem:
        """``module_memory_alloc()`` as of ``self.version`` and the loader."""
        a, k = self.api, self.k
        et = ExecmemType.MODULE_TEXT if mtype in TEXT_TYPES else ExecmemType.MODULE_DATA
        caller = f"load_module:{name}:{mtype}"
        if self.loader != "temp_rw" and a.execmem_is_rox(et):
            base = a.execmem_alloc(et, size, caller=caller)      # ROX from the cache
            if self.loader == "staged":
                k.memcpy_elsewhere(size)                      # rw_copy = vzalloc(size)
            return ModMem(base, size, 0, is_rox=True)
        if self.version >= (6, 17):
            base = a.execmem_alloc_rw(et, size, caller=caller)
            is_rox = a.execmem_is_rox(et)
            k.memcpy(base, size)                           # memset(ptr, 0, size)
            return ModMem(base, size, 0, is_rox=is_rox)
        base = a.execmem_alloc(et, size, caller=caller)
        if not a.execmem_is_rox(et):
            k.memcpy(base, size)
            return ModMem(base, size, 0)
        a.execmem_make_temp_rw(base, size)                 # temp_rw: v6.15/v6.16
        k.memcpy(base, size)
        return ModMem(base, size, 0, is_rox=True)

    def _write(self, mem: ModMem, nbytes: int) -> None:
        if not mem.is_rox or self.loader == "temp_rw":
            super()._write(mem, nbytes)
        elif self.loader == "staged":
            self.k.memcpy_elsewhere(nbytes)                # into mem->rw_copy
        else:
            with self.k.poke_source("fill"):               # in place, section by section
                self.api.execmem_update_copy(mem.base, nbytes)

    def _write_items(self, m: Mod, ev: Event) -> None:
        """Relocations, alternatives, sorts and ``__fentry__`` NOPs by loader;
        ``staged`` also publishes here (``module_post_finalize()``, before
        ``ftrace_module_init()``)."""
        k, a = self.k, self.api
        if self.loader == "temp_rw":                       # every item a plain store
            k.memcpy_elsewhere(item_bytes(ev))
            return
        items, _ = load_items(ev, set(m.mem))
        rox = {t for t, mem in m.mem.items() if mem.is_rox}
        late = []
        for b in items:
            if b.mtype not in rox:
                k.memcpy_elsewhere(b.bytes)                # plain stores into RW pages
            elif self.loader == "staged" and b.source == "ftrace_init":
                late.append(b)                             # after the copy is published
            elif self.loader == "staged":
                k.memcpy_elsewhere(b.bytes)                # into mem->rw_copy
            else:
                self._poke(m, b)
        if self.loader == "staged":
            for t in TEXT_TYPES:                           # module_post_finalize()
                mem = m.mem.get(t)
                if mem is not None and mem.is_rox:
                    with k.poke_source("fill"):
                        a.execmem_update_copy(mem.base, mem.size)
        for b in late:                                     # ftrace_module_init()
            self._poke(m, b)

    def _poke(self, m: Mod, b) -> None:
        """``b.count`` ``text_poke()``s of ``b.nbytes`` into published ROX text."""
        mem = m.mem[b.mtype]
        span = mem.used
        with self.k.poke_source(b.source):
            self.api.text_poke_repeat(mem.base, span, min(b.nbytes, span), b.count)

    def _enable_text(self, m: Mod) -> None:
        for t in TEXT_TYPES:                               # module_enable_text_rox()
            mem = m.mem.get(t)
            if mem is not None and mem.is_rox:
                if self.loader == "temp_rw":
                    self.api.execmem_restore_rox(mem.base, mem.size)
                continue
            self._set_memory(m, t, self.api.set_memory_rox)

    def _undo_alloc(self, m: Mod) -> None:
        """``move_module()``'s ``out_err`` (7.2, kernel/module/main.c):
        ``module_memory_restore_rox()`` -- ``execmem_restore_rox()`` of every
        ROX text type already allocated (and made RW) -- then the frees.  The
        restore came with the v6.15 remap-RW loader (``temp_rw``); v6.13 and
        the staged/inplace what-ifs never made the text RW, so they free only."""
        if self.loader == "temp_rw":
            for t in TEXT_TYPES:
                mem = m.mem.get(t)
                if mem is not None and mem.is_rox:
                    self.api.execmem_restore_rox(mem.base, mem.size)
        super()._undo_alloc(m)
