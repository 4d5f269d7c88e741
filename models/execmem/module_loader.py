"""The module loader's use of executable memory in v6.10.

kernel/module/main.c (v6.10):

* ``layout_sections()`` sizes one ``struct module_memory`` per ``enum
  mod_mem_type`` (v6.4, ac3b43283923 "module: replace module_layout with
  module_memory"); ``move_module()`` skips empty types (``base = NULL``) and
  calls ``module_memory_alloc(mod, type)`` for the others:
  ``size = PAGE_ALIGN(mod->mem[type].size)``, ``execmem_alloc(
  mod_mem_type_is_data(type) ? EXECMEM_MODULE_DATA : EXECMEM_MODULE_TEXT,
  size)``, ``memset(ptr, 0, size)``.  Sections are copied in with ``memcpy``;
  relocations (``apply_relocate_add()`` while MODULE_STATE_UNFORMED) and
  alternatives are plain stores.
* kernel/module/strict_rwx.c (v6.10): ``module_set_memory(mod, type, fn)``
  returns at once for a NULL base, else ``set_vm_flush_reset_perms(base)``
  and ``fn(base, size >> PAGE_SHIFT)``.  ``complete_formation()`` calls
  ``module_enable_rodata_ro(mod, false)`` (MOD_RODATA, MOD_INIT_RODATA:
  ``set_memory_ro``), ``module_enable_data_nx(mod)`` (every data-class type:
  MOD_DATA, MOD_RODATA, MOD_RO_AFTER_INIT, MOD_INIT_DATA, MOD_INIT_RODATA:
  ``set_memory_nx``), ``module_enable_text_rox(mod)`` (MOD_TEXT,
  MOD_INIT_TEXT: ``set_memory_rox``) -- text is never W+X.
* ``do_init_module()`` after ``mod->init()``: ``module_enable_rodata_ro(mod,
  true)`` (the two rodata types again -- already RO, so those calls change
  nothing -- plus MOD_RO_AFTER_INIT), then ``do_free_init()`` frees
  MOD_INIT_TEXT, MOD_INIT_DATA, MOD_INIT_RODATA one by one with
  ``execmem_free()`` -- NULL for an absent type, a call that does nothing
  (``vfree(NULL)``).  ``free_module()`` -> ``free_mod_mem()`` frees the
  non-empty types only.  (The
  ``ret = module_enable_rodata_ro(mod, true)`` form is d1909c022173 "module:
  Don't ignore errors from set_memory_XX()", v6.9.  2025 kernels call
  ``module_enable_rodata_ro_after_init(mod)`` there instead -- only
  MOD_RO_AFTER_INIT; :attr:`split_after_init` selects that, [P] for the
  release it first shipped in, taken as <= v6.15.)
* A ``patch`` event (jump label, static call, ftrace site inside the module)
  is ``text_poke_bp()``.

Loader strategy ``rw`` (:mod:`models.common.load_work`): every write --
sections, relocations, alternatives, the ORC and mcount sorts, the
``__fentry__`` conversion (``text_poke_early()``) -- is a plain store into
RW+NX memory; only the section copies touch the modelled pages, the rest
costs time (``memcpy_elsewhere``).

The class is written with hooks (:meth:`_alloc_mem`, :meth:`_write`,
:meth:`_write_items`, :meth:`_publish`, :meth:`_enable_text`,
:meth:`_free_mem`) so that the
v6.13+ ROX-cache loader (:mod:`models.execmem_rox.module_loader`) changes
only what v6.13 changed.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from execbench.errors import OutOfMemory
from execbench.kernel import Kernel
from execbench.trace import Event
from execbench.units import PAGE_SHIFT, page_align

from ..common.load_work import rw_items
from ..common.module_layout import INIT_TYPES, MOD_MEM_TYPES, TEXT_TYPES, type_sizes
from .api import ExecmemApi, ExecmemType

RODATA_TYPES = ("rodata", "init_rodata")
#: for_class_mod_mem_type(type, data): every non-text type, in enum order
DATA_TYPES = tuple(t for t in MOD_MEM_TYPES if t not in TEXT_TYPES)


@dataclass
class ModMem:
    """``struct module_memory`` (+ the v6.13 ``is_rox``)."""

    base: int
    size: int            # page-aligned
    used: int            # unrounded bytes the sections fill
    is_rox: bool = False


@dataclass
class Mod:
    mem: dict[str, ModMem] = field(default_factory=dict)


class ModuleLoader610:
    #: after init, re-protect only MOD_RO_AFTER_INIT (2025 kernels)
    split_after_init = False

    def __init__(self, kernel: Kernel, api: ExecmemApi):
        self.k = kernel
        self.api = api
        # the after-init rule of the kernel the machine runs: v6.10 as designed; a later
        # release only where the machine is one (execbench.validation replays the arm64
        # 7.2 recording on execmem, as arm64 has no ROX cache; that kernel makes the
        # split call -- 7.2.13 kernel/module/main.c do_init_module() and the recording's
        # set_memory_ro count both say so)
        self.split_after_init = tuple(kernel.version) >= (6, 15)
        # v6.17+ module_memory_alloc() calls execmem_alloc_rw() (7.2.13 kernel/module/main.c)
        self.alloc_rw = tuple(kernel.version) >= (6, 17)
        self.mods: dict[str, Mod] = {}

    # -- hooks the ROX-cache loader overrides ---------------------------------------
    def _alloc_mem(self, mtype: str, size: int, name: str) -> ModMem:
        """``module_memory_alloc()``: execmem_alloc (v6.17+: execmem_alloc_rw) + memset(0)."""
        et = ExecmemType.MODULE_TEXT if mtype in TEXT_TYPES else ExecmemType.MODULE_DATA
        alloc = self.api.execmem_alloc_rw if self.alloc_rw else self.api.execmem_alloc
        base = alloc(et, size, caller=f"load_module:{name}:{mtype}")
        self.k.memcpy(base, size)
        return ModMem(base, size, 0)

    def _write(self, mem: ModMem, nbytes: int) -> None:
        """Section copies, relocations and alternatives into one type."""
        self.k.memcpy(mem.base, nbytes)

    def _write_items(self, m: Mod, ev: Event) -> None:
        """Relocations, alternatives, sorts, ``__fentry__`` NOPs: plain
        stores in v6.10 (time only, the same bytes every design writes;
        arm64's ftrace sites go through the fixmap, load_work.rw_items),
        then the arm64 PLT entries by distance (``Kernel.module_relocate``)."""
        text, init = m.mem.get("text"), m.mem.get("init_text")
        text_area = (text.base, text.used) if text else None
        init_area = (init.base, init.used) if init else None
        rw_items(self.k, ev, text_area, init_area)
        self.k.module_relocate(ev.obj, text_area, init_area)

    def _publish(self, m: Mod) -> None:
        """After ``module_finalize()``: nothing in v6.10 (written in place)."""

    def _enable_text(self, m: Mod) -> None:
        """``module_enable_text_rox()``."""
        for t in TEXT_TYPES:
            self._set_memory(m, t, self.api.set_memory_rox)

    def _free_mem(self, mem: ModMem) -> None:
        self.api.execmem_free(mem.base)

    def _undo_alloc(self, m: Mod) -> None:
        """``move_module()``'s ``out_enomem``: ``module_memory_free()``
        (``execmem_free()``) of every type allocated before the failure,
        last first; the load fails with -ENOMEM."""
        for mem in reversed(list(m.mem.values())):
            self._free_mem(mem)

    # -- strict_rwx.c -----------------------------------------------------------------
    def _set_memory(self, m: Mod, t: str, fn) -> None:
        """``module_set_memory()``."""
        mem = m.mem.get(t)
        if mem is None:
            return
        self.api.set_vm_flush_reset_perms(mem.base)
        fn(mem.base, mem.size >> PAGE_SHIFT)

    def _enable_rodata_ro(self, m: Mod, after_init: bool) -> None:
        if after_init and self.split_after_init:     # module_enable_rodata_ro_after_init()
            self._set_memory(m, "ro_after_init", self.api.set_memory_ro)
            return
        for t in RODATA_TYPES:
            self._set_memory(m, t, self.api.set_memory_ro)
        if after_init:
            self._set_memory(m, "ro_after_init", self.api.set_memory_ro)

    def _enable_data_nx(self, m: Mod) -> None:
        for t in DATA_TYPES:
            self._set_memory(m, t, self.api.set_memory_nx)

    # -- trace ops ----------------------------------------------------------------------
    def load(self, ev: Event) -> None:
        m = Mod()
        try:
            for t, used in type_sizes(ev).items():    # enum mod_mem_type order
                if used:
                    mem = self._alloc_mem(t, page_align(used), ev.obj)
                    mem.used = used
                    m.mem[t] = mem
        except OutOfMemory:
            self._undo_alloc(m)
            raise
        self.mods[ev.obj] = m
        for mem in m.mem.values():
            self._write(mem, mem.used)
        self._write_items(m, ev)
        self._publish(m)
        # complete_formation()
        self._enable_rodata_ro(m, after_init=False)
        self._enable_data_nx(m)
        self._enable_text(m)
        for t in TEXT_TYPES:
            if t in m.mem:
                self.k.text_claim(m.mem[t].base, m.mem[t].used)

    def init_done(self, ev: Event) -> None:
        m = self.mods[ev.obj]
        self._enable_rodata_ro(m, after_init=True)
        self._free_init(m)

    def _free_init(self, m: Mod, nulls: bool = True) -> None:
        """``do_free_init()``: ``execmem_free()`` of the three init pointers,
        NULL for an absent type (a no-op call).  ``nulls=False`` is
        ``free_mod_mem()``, which skips empty types."""
        for t in INIT_TYPES:
            mem = m.mem.pop(t, None)
            if mem is None:
                if nulls:
                    self.api.execmem_free(None)
                continue
            if t in TEXT_TYPES:
                self.k.text_release(mem.base, mem.used)
            self._free_mem(mem)

    def patch(self, ev: Event) -> None:
        m = self.mods[ev.obj]
        with self.k.poke_source("patch"):
            self.api.text_poke_bp(m.mem["text"].base + ev.offset, ev.len)

    def unload(self, ev: Event) -> None:
        m = self.mods.pop(ev.obj)
        self._free_init(m, nulls=False)
        for t in MOD_MEM_TYPES:                      # free_mod_mem()
            mem = m.mem.pop(t, None)
            if mem is None:
                continue
            if t in TEXT_TYPES:
                self.k.text_release(mem.base, mem.used)
            self._free_mem(mem)
