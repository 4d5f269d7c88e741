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
"""
from __future__ import annotations

from execbench.kernel import Kernel

from ..common.module_layout import INIT_TYPES, TEXT_TYPES
from ..execmem.api import ExecmemType
from ..execmem.module_loader import Mod, ModMem, ModuleLoader610
from .api import ExecmemRoxApi


class ModuleLoaderRox(ModuleLoader610):
    def __init__(self, kernel: Kernel, api: ExecmemRoxApi):
        super().__init__(kernel, api)
        self.api: ExecmemRoxApi = api
        self.version = api.version
        self.split_after_init = self.version >= (6, 15)

    def _alloc_mem(self, mtype: str, size: int, name: str) -> ModMem:
        """``module_memory_alloc()`` as of ``self.version``."""
        a, k = self.api, self.k
        et = ExecmemType.MODULE_TEXT if mtype in TEXT_TYPES else ExecmemType.MODULE_DATA
        caller = f"load_module:{name}:{mtype}"
        if self.version >= (6, 17):
            base = a.execmem_alloc_rw(et, size, caller=caller)
            is_rox = a.execmem_is_rox(et)
            k.memcpy(base, size)                           # memset(ptr, 0, size)
            return ModMem(base, size, 0, is_rox=is_rox)
        base = a.execmem_alloc(et, size, caller=caller)
        if not a.execmem_is_rox(et):
            k.memcpy(base, size)
            return ModMem(base, size, 0)
        if self.version >= (6, 15):
            a.execmem_make_temp_rw(base, size)
            k.memcpy(base, size)
        else:
            k.memcpy_elsewhere(size)                       # rw_copy = vzalloc(size)
        return ModMem(base, size, 0, is_rox=True)

    def _write(self, mem: ModMem, nbytes: int) -> None:
        if mem.is_rox and self.version < (6, 15):
            self.k.memcpy_elsewhere(nbytes)                # into mem->rw_copy
        else:
            super()._write(mem, nbytes)

    def _publish(self, m: Mod) -> None:
        if self.version >= (6, 15):
            return
        for t in TEXT_TYPES:                               # module_post_finalize()
            mem = m.mem.get(t)
            if mem is not None and mem.is_rox:
                self.api.execmem_update_copy(mem.base, mem.size)

    def _enable_text(self, m: Mod) -> None:
        for t in TEXT_TYPES:                               # module_enable_text_rox()
            mem = m.mem.get(t)
            if mem is not None and mem.is_rox:
                if self.version >= (6, 15):
                    self.api.execmem_restore_rox(mem.base, mem.size)
                continue
            self._set_memory(m, t, self.api.set_memory_rox)

    def _undo_alloc(self, m: Mod) -> None:
        """``move_module()``'s ``out_err`` (7.2, kernel/module/main.c):
        ``module_memory_restore_rox()`` -- ``execmem_restore_rox()`` of every
        ROX text type already allocated (and made RW) -- then the frees.  The
        restore came with the v6.15 remap-RW loader; v6.13 frees only."""
        if self.version >= (6, 15):
            for t in TEXT_TYPES:
                mem = m.mem.get(t)
                if mem is not None and mem.is_rox:
                    self.api.execmem_restore_rox(mem.base, mem.size)
        super()._undo_alloc(m)

    def init_done(self, ev) -> None:
        """``do_init_module()`` -> ``do_free_init()``: one ``execmem_free()``
        per init type, NULL for the absent ones (kernel/module/main.c)."""
        m = self.mods[ev.obj]
        absent = sum(1 for t in INIT_TYPES if t not in m.mem)
        if absent:
            self.k.count("execmem_free_null", absent)
        super().init_done(ev)
