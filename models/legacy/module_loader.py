"""The v6.1 module loader's use of executable memory.

kernel/module/main.c (v6.1): ``layout_sections()``/``layout_symtab()`` build
a core and an init ``struct module_layout`` (see
:func:`models.common.module_layout.layout_v61`); ``move_module()``
allocates each with ``module_alloc()``, zeroes it and copies the sections
(``memcpy``); relocations and alternatives are applied with plain stores
while the module is MODULE_STATE_UNFORMED (``apply_relocate_add()`` uses
``memcpy`` then; ``module_finalize()`` -> ``apply_alternatives()`` ->
``text_poke_early()``).

kernel/module/strict_rwx.c (v6.1), called from ``complete_formation()``::

    module_enable_ro(mod, false);   /* 2x set_vm_flush_reset_perms,
                                       set_memory_ro: core text, core rodata,
                                       init text, init rodata */
    module_enable_nx(mod);          /* set_memory_nx: core rodata,
                                       ro_after_init, data; init rodata, data */
    module_enable_x(mod);           /* set_memory_x: core text, init text */

Each ``frob_*`` call is made whatever its size (a 0-page call is still a
call).  ``do_init_module()`` then calls ``module_enable_ro(mod, true)`` --
the same four ranges again (already RO: no change) plus ro_after_init --
and queues ``do_free_init()``, which ``module_memfree()``s the init area
(``freeinit->module_init = mod->init_layout.base``: NULL for a module
without one, and the call is made anyway) and sets ``init_layout.base =
NULL``.  ``free_module()`` calls ``module_memfree(mod->init_layout.base)``
-- NULL once init is done -- then frees the core area.  When
``module_alloc()`` of the init layout fails, ``move_module()`` frees the
core area and the load fails with -ENOMEM
(:class:`~execbench.errors.OutOfMemory`).

A ``patch`` event (jump label, static call, ftrace call site inside the
module) is ``text_poke_bp()`` in every version.
"""
from __future__ import annotations

from dataclasses import dataclass

from execbench.errors import OutOfMemory
from execbench.kernel import Kernel
from execbench.trace import Event
from execbench.units import PAGE_SHIFT

from ..common.load_work import rw_items
from ..common.module_layout import Layout61, layout_v61
from .api import ModuleAllocApi


@dataclass
class _Mod:
    core: int
    core_l: Layout61
    init: int | None
    init_l: Layout61
    text: int
    init_text: int


class ModuleLoader61:
    def __init__(self, kernel: Kernel, api: ModuleAllocApi):
        self.k = kernel
        self.api = api
        self.mods: dict[str, _Mod] = {}

    def _frob(self, fn, base: int | None, lo: int, hi: int) -> None:
        fn(0 if base is None else base + lo, (hi - lo) >> PAGE_SHIFT)

    def _enable_ro(self, m: _Mod, after_init: bool) -> None:
        a = self.api
        for base in (m.core, m.init):
            if base is not None:          # find_vm_area(NULL) is a no-op
                a.set_vm_flush_reset_perms(base)
            else:
                self.k.api("set_vm_flush_reset_perms")
        self._frob(a.set_memory_ro, m.core, 0, m.core_l.text_size)
        self._frob(a.set_memory_ro, m.core, m.core_l.text_size, m.core_l.ro_size)
        self._frob(a.set_memory_ro, m.init, 0, m.init_l.text_size)
        self._frob(a.set_memory_ro, m.init, m.init_l.text_size, m.init_l.ro_size)
        if after_init:
            self._frob(a.set_memory_ro, m.core, m.core_l.ro_size, m.core_l.ro_after_init_size)

    def _enable_nx(self, m: _Mod) -> None:
        a, c, i = self.api, m.core_l, m.init_l
        self._frob(a.set_memory_nx, m.core, c.text_size, c.ro_size)
        self._frob(a.set_memory_nx, m.core, c.ro_size, c.ro_after_init_size)
        self._frob(a.set_memory_nx, m.core, c.ro_after_init_size, c.size)
        self._frob(a.set_memory_nx, m.init, i.text_size, i.ro_size)
        self._frob(a.set_memory_nx, m.init, i.ro_after_init_size, i.size)

    def _enable_x(self, m: _Mod) -> None:
        self._frob(self.api.set_memory_x, m.core, 0, m.core_l.text_size)
        self._frob(self.api.set_memory_x, m.init, 0, m.init_l.text_size)

    def _move(self, size: int, ev: Event, name: str) -> int:
        addr = self.api.module_alloc(size, caller=f"load_module:{name}")
        self.k.memcpy(addr, size)                 # memset(ptr, 0, size)
        return addr

    def load(self, ev: Event) -> None:
        core_l, init_l = layout_v61(ev)
        core = self._move(core_l.size, ev, ev.obj)
        try:
            init = self._move(init_l.size, ev, ev.obj) if init_l.size else None
        except OutOfMemory:
            # move_module(): "if (!ptr) { module_memfree(mod->core_layout.base);
            # return -ENOMEM; }"
            self.api.module_memfree(core)
            raise
        k = self.k
        # section copies: plain writes
        k.memcpy(core, ev.text + ev.rodata + ev.ro_after_init + ev.data)
        if init is not None:
            k.memcpy(init, ev.init_text + ev.init_rodata + ev.init_data)
        # relocations, alternatives, the ORC/mcount sorts and the __fentry__
        # NOPs: plain stores while the module is unformed (loader "rw"; arm64
        # writes the ftrace sites through the fixmap, load_work.rw_items)
        text_area = (core, ev.text) if ev.text else None
        init_area = (init, ev.init_text) if init is not None and ev.init_text else None
        rw_items(k, ev, text_area, init_area)
        k.module_relocate(ev.obj, text_area, init_area)    # arm64: PLT entries by distance
        m = _Mod(core, core_l, init, init_l, ev.text, ev.init_text)
        self.mods[ev.obj] = m
        k.text_claim(core, ev.text)
        if init is not None:
            k.text_claim(init, ev.init_text)
        # complete_formation()
        self._enable_ro(m, after_init=False)
        self._enable_nx(m)
        self._enable_x(m)

    def init_done(self, ev: Event) -> None:
        m = self.mods[ev.obj]
        self._enable_ro(m, after_init=True)
        self._free_init(m)                      # do_free_init()

    def _free_init(self, m: _Mod) -> None:
        """``module_memfree(init_layout.base)``: NULL without an init area."""
        if m.init is not None:
            self.k.text_release(m.init, m.init_text)
        self.api.module_memfree(m.init)
        m.init = None

    def patch(self, ev: Event) -> None:
        m = self.mods[ev.obj]
        with self.k.poke_source("patch"):
            self.api.text_poke_bp(m.core + ev.offset, ev.len)

    def unload(self, ev: Event) -> None:
        m = self.mods.pop(ev.obj)
        self._free_init(m)
        self.k.text_release(m.core, m.text)
        self.api.module_memfree(m.core)
