"""The module loader under jitalloc -- an **extrapolation**.

Kent's commit scopes jitalloc to BPF, ftrace trampolines and bcachefs; its
message says only "With this API we can avoid ever mapping pages both
writeable and executable (not implemented in this patch: need to tweak
module_alloc())".  Module text on jit_alloc is the project's reading of
that sentence, modelled on the v6.4 loader (kernel/module/main.c after
ac3b43283923 "module: replace module_layout with module_memory"), with the
loader strategy a parameter (``loader``, :mod:`models.common.load_work`):

* Text types (MOD_TEXT, MOD_INIT_TEXT): ``p = jit_alloc(NULL, len)`` to
  learn the final address.  jit_alloc takes no alignment, and an object of
  class 2^k is 2^k-aligned, so the loader asks for ``len = max(size,
  align)`` bytes (``align`` = largest text sh_addralign).  Text up to 2048
  bytes lands in a slab class (shared 4 KiB ROX page); larger text is a
  page-granular ROX allocation.

  - ``staged`` (default): the image is built in a temporary writable buffer
    outside the module range -- the zeroing, the section copies,
    ``apply_relocate_add``, ``apply_alternatives`` and the ``__fentry__``
    -> NOP conversion computed for ``p`` (plain stores, counted as
    ``memcpy_elsewhere``) -- then one ``jit_update(p, buf, len)`` writes it
    (``text_pokes_fill``), just before ``complete_formation()``.
  - ``inplace``: every write goes through ``jit_update`` (=
    ``text_poke_copy`` on x86) as it is made: the zeroing of the object
    (``invalidate``), one section fill per type (``fill``), then one per
    relocation entry, alternatives site and ``__fentry__`` site into text
    (``reloc``, ``alternatives``, ``ftrace_init``).  With ``text_poke=False``
    each of those would be an unprotect/memcpy/protect cycle; that
    combination is refused rather than modelled.

* Other types (MOD_RODATA, MOD_RO_AFTER_INIT, MOD_DATA, MOD_INIT_RODATA,
  MOD_INIT_DATA): v6.4 unchanged -- ``module_memory_alloc()`` =
  ``module_alloc(PAGE_ALIGN(size))`` per non-empty type, zeroed and filled
  with plain stores while RW+NX; relocations into rodata and the ORC and
  mcount sorts (tables in rodata) are plain stores too, under either
  strategy (time only, ``memcpy_elsewhere``).
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
  ``module_memfree`` for the rest -- three calls, NULL for an absent type
  (v6.4 ``do_free_init()``; ``jit_free(NULL)`` returns at once).
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

from execbench.errors import DesignError

from ..common.load_work import check_loader, item_sizes, load_items
from ..common.module_layout import INIT_TYPES, MOD_MEM_TYPES, TEXT_TYPES, type_sizes
from .api import JitAllocApi

LOADERS = ("staged", "inplace")
DATA_TYPES = tuple(t for t in MOD_MEM_TYPES if t not in TEXT_TYPES)   # for_class_mod_mem_type(data)


@dataclass
class _Mod:
    base: dict[str, int] = field(default_factory=dict)     # type -> address (non-empty types)
    size: dict[str, int] = field(default_factory=dict)     # type -> bytes (text: unrounded)
    obj: dict[str, int] = field(default_factory=dict)      # text type -> jit_alloc length


class ModuleLoaderJit:
    def __init__(self, kernel: Kernel, api: JitAllocApi, text_poke: bool = True,
                 loader: str = "staged"):
        self.k = kernel
        self.api = api
        self.text_poke = text_poke
        self.loader = check_loader("jitalloc", loader, LOADERS)
        if self.loader == "inplace" and not text_poke:
            raise DesignError("jitalloc: loader=inplace with text_poke=false would make one "
                              "unprotect/memcpy/protect cycle per relocation and site; not modelled")
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
        inplace = self.loader == "inplace"
        for t in MOD_MEM_TYPES:
            n = sizes[t]
            if not n:
                continue
            try:
                if t in TEXT_TYPES:
                    m.base[t] = a.jit_alloc(max(n, ev.align or 1))      # jit_alloc(NULL, len)
                else:
                    m.base[t] = a.module_alloc(page_align(n), caller=f"load_module:{ev.obj}:{t}")
            except OutOfMemory:
                # move_module()'s error path: free what was allocated, last first
                for u in reversed(list(m.base)):
                    (a.jit_free if u in TEXT_TYPES else a.module_memfree)(m.base[u])
                raise
            if t in TEXT_TYPES:
                m.obj[t] = max(n, ev.align or 1)
                m.size[t] = n
                if inplace:
                    with k.poke_source("invalidate"):
                        a.jit_update(m.base[t], m.obj[t])      # memset(ptr, 0, size)
                else:
                    k.memcpy_elsewhere(m.obj[t])               # the zeroed buffer
            else:
                size = page_align(n)
                m.size[t] = size
                k.memcpy(m.base[t], size)                 # memset(ptr, 0, size)
        for t in MOD_MEM_TYPES:                           # the section copies
            if t not in m.base:
                continue
            if t not in TEXT_TYPES:
                k.memcpy(m.base[t], sizes[t])
            elif inplace:
                with k.poke_source("fill"):
                    a.jit_update(m.base[t], m.size[t])
            else:
                k.memcpy_elsewhere(m.size[t])
        items, _ = load_items(ev, set(m.base), item_sizes(k))
        for b in items:                                   # relocations, sites, sorts
            if inplace and b.mtype in TEXT_TYPES:
                span = m.size[b.mtype]
                with k.poke_source(b.source):
                    a.jit_update_repeat(m.base[b.mtype], span, min(b.nbytes, span), b.count)
            else:
                k.memcpy_elsewhere(b.bytes)               # the buffer, or RW rodata
        for t in TEXT_TYPES:
            if t in m.base:
                if not inplace:                           # publish the image
                    with k.poke_source("fill"):
                        a.jit_update(m.base[t], m.obj[t])
                k.text_claim(m.base[t], m.size[t])
        k.module_relocate(ev.obj, (m.base["text"], m.size["text"]) if "text" in m.base else None,
                          (m.base["init_text"], m.size["init_text"]) if "init_text" in m.base else None)
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
        self._free(m, INIT_TYPES, nulls=True)              # do_free_init()

    def _free(self, m: _Mod, types, nulls: bool = False) -> None:
        """Free ``types``; ``nulls``: call the free function for an absent
        type too (``do_free_init()``), else skip it (``free_mod_mem()``)."""
        for t in types:
            base = m.base.pop(t, None)
            if base is None:
                if nulls:
                    (self.api.jit_free if t in TEXT_TYPES else self.api.module_memfree)(None)
                continue
            if t in TEXT_TYPES:
                self.k.text_release(base, m.size[t])
                self.api.jit_free(base)
            else:
                self.api.module_memfree(base)

    def patch(self, ev: Event) -> None:
        addr = self.mods[ev.obj].base["text"] + ev.offset
        with self.k.poke_source("patch"):
            if self.text_poke:
                self.api.text_poke_bp(addr, ev.len)
            else:
                self.api.jit_update(addr, ev.len)

    def unload(self, ev: Event) -> None:
        self._free(self.mods.pop(ev.obj), MOD_MEM_TYPES)
