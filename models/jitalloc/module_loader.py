"""The module loader under jitalloc.

Kent's commit message: "With this API we can avoid ever mapping pages both
writeable and executable (not implemented in this patch: need to tweak
module_alloc())".  The natural reading of the proposal for modules, modelled
here on the v6.4 loader (kernel/module/main.c after ac3b43283923 "module:
replace module_layout with module_memory"):

* Text types (MOD_TEXT, MOD_INIT_TEXT): ``p = jit_alloc(NULL, len)`` to
  learn the final address; the image is built in a temporary writable
  buffer outside the module range (section copies, ``apply_relocate_add``
  and ``apply_alternatives`` computed for ``p``: plain stores, counted as
  ``memcpy_elsewhere``); then one ``jit_update(p, buf, len)`` writes it.
  Text up to 2048 bytes lands in a slab class (shared 4 KiB ROX page);
  larger text is a page-granular ROX allocation.  jit_alloc takes no
  alignment, and an object of class 2^k is 2^k-aligned, so the loader asks
  for ``max(len, align)`` bytes (``align`` = largest text sh_addralign).
* Other types (MOD_RODATA, MOD_RO_AFTER_INIT, MOD_DATA, MOD_INIT_RODATA,
  MOD_INIT_DATA): v6.4 unchanged -- ``module_memory_alloc()`` =
  ``module_alloc(PAGE_ALIGN(size))`` per non-empty type, zeroed and filled
  with plain stores while RW+NX.
* ``complete_formation()`` (under ``module_mutex``): strict_rwx.c v6.4
  ``module_enable_ro(mod, false)`` minus the text types (jitalloc text is
  already RO+X): ``set_memory_ro`` on MOD_RODATA, MOD_INIT_RODATA;
  ``module_enable_nx()``: ``set_memory_nx`` on the five data-class types;
  no ``module_enable_x()`` (nothing left to make executable).  Each
  ``module_set_memory()`` is ``set_vm_flush_reset_perms(base)`` +
  ``set_memory_*(base, size >> PAGE_SHIFT)``, made whatever the size (an
  empty type is a 0-page call, as in the legacy model).
* ``do_init_module()`` (under ``module_mutex``): ``module_enable_ro(mod,
  true)`` = the two rodata calls again (no change) + MOD_RO_AFTER_INIT; then
  ``do_free_init()`` frees the init types: ``jit_free`` for init text,
  ``module_memfree`` for the rest.
* ``patch``: ``text_poke_bp`` on x86 (``text_poke=True``); without text_poke
  the only write path is ``jit_update`` over the patched bytes.
* ``free_module()``: ``jit_free`` the text, ``module_memfree`` the others.

Simplified: the loader's own kmalloc/vmalloc of the temporary image is not
placed in the module range (it never executes), so it costs time only.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from execbench.errors import OutOfMemory
from execbench.kernel import Kernel
from execbench.trace import Event
from execbench.units import PAGE_SHIFT, page_align

from ..common.module_layout import INIT_TYPES, MOD_MEM_TYPES, TEXT_TYPES, type_sizes
from .api import JitAllocApi

RELOC_STORE = 8          # an R_X86_64_64 store; smaller relocations are cheaper
DATA_TYPES = tuple(t for t in MOD_MEM_TYPES if t not in TEXT_TYPES)   # for_class_mod_mem_type(data)


@dataclass
class _Mod:
    base: dict[str, int] = field(default_factory=dict)     # type -> address (non-empty types)
    size: dict[str, int] = field(default_factory=dict)     # type -> bytes (text: unrounded)


class ModuleLoaderJit:
    def __init__(self, kernel: Kernel, api: JitAllocApi, text_poke: bool = True):
        self.k = kernel
        self.api = api
        self.text_poke = text_poke
        self.mods: dict[str, _Mod] = {}

    def _set(self, fn, m: _Mod, t: str) -> None:
        """``module_set_memory(mod, type, fn)``."""
        base = m.base.get(t)
        if base is not None:
            self.api.set_vm_flush_reset_perms(base)
        else:
            self.k.api("set_vm_flush_reset_perms")        # find_vm_area(NULL): no-op
        fn(0 if base is None else base, page_align(m.size.get(t, 0)) >> PAGE_SHIFT)

    def load(self, ev: Event) -> None:
        k, a = self.k, self.api
        m = _Mod()
        sizes = type_sizes(ev)
        for t in MOD_MEM_TYPES:
            n = sizes[t]
            if not n:
                continue
            try:
                if t in TEXT_TYPES:
                    m.base[t] = a.jit_alloc(max(n, ev.align or 1))
                else:
                    m.base[t] = a.module_alloc(page_align(n), caller=f"load_module:{ev.obj}:{t}")
            except OutOfMemory:
                # move_module()'s error path: free what was allocated, last first
                for u in reversed(list(m.base)):
                    (a.jit_free if u in TEXT_TYPES else a.module_memfree)(m.base[u])
                raise
            if t in TEXT_TYPES:
                m.size[t] = n
            else:
                size = page_align(n)
                m.size[t] = size
                k.memcpy(m.base[t], size)                 # memset(ptr, 0, size)
                k.memcpy(m.base[t], n)                    # section copies
        # relocations + alternatives applied in the temporary text image
        text_bytes = sum(sizes[t] for t in TEXT_TYPES)
        k.memcpy_elsewhere(text_bytes + RELOC_STORE * ev.relocs)
        for t in TEXT_TYPES:
            if t in m.base:
                a.jit_update(m.base[t], m.size[t])
                k.text_claim(m.base[t], m.size[t])
        self.mods[ev.obj] = m
        with k.lock("module_mutex"):                       # complete_formation()
            self._set(a.set_memory_ro, m, "rodata")
            self._set(a.set_memory_ro, m, "init_rodata")
            for t in DATA_TYPES:
                self._set(a.set_memory_nx, m, t)

    def init_done(self, ev: Event) -> None:
        m = self.mods[ev.obj]
        a = self.api
        with self.k.lock("module_mutex"):                  # do_init_module()
            self._set(a.set_memory_ro, m, "rodata")
            self._set(a.set_memory_ro, m, "init_rodata")
            self._set(a.set_memory_ro, m, "ro_after_init")
        self._free(m, INIT_TYPES)                          # do_free_init()

    def _free(self, m: _Mod, types) -> None:
        for t in types:
            base = m.base.pop(t, None)
            if base is None:
                continue
            if t in TEXT_TYPES:
                self.k.text_release(base, m.size[t])
                self.api.jit_free(base)
            else:
                self.api.module_memfree(base)

    def patch(self, ev: Event) -> None:
        addr = self.mods[ev.obj].base["text"] + ev.offset
        if self.text_poke:
            self.api.text_poke_bp(addr, ev.len)
        else:
            self.api.jit_update(addr, ev.len)

    def unload(self, ev: Event) -> None:
        self._free(self.mods.pop(ev.obj), MOD_MEM_TYPES)
