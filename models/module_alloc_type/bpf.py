"""BPF on ``module_alloc_type`` (v6.4-rc + Song Liu's v1).

kernel/bpf/core.c, trampoline.c and arch/x86/net/bpf_jit_comp.c as patched
by "[PATCH 1/3]" (20230526051529.3387103-2-song@kernel.org) and "[PATCH
3/3]" (20230526051529.3387103-4-song@kernel.org):

* Programs keep ``bpf_prog_pack`` (:mod:`models.common.bpf_prog_pack`):
  ``alloc_new_pack()`` = ``module_alloc_type(BPF_PROG_PACK_SIZE, MOD_TEXT)``
  (RO+X on return: the text allocator has MOD_ALLOC_SET_MEMORY; with
  VM_ALLOW_HUGE_VMAP a 2 MiB pack is PMD-mapped), then
  ``bpf_fill_ill_insns()`` = x86 ``jit_fill_hole()`` = ``text_poke_set(0xcc)``
  ("bpf_fill_ill_insns is used to write to RO memory"), then
  ``module_memory_protect()`` -- a no-op under SET_MEMORY, replacing
  ``set_vm_flush_reset_perms`` + ``set_memory_rox``.  Programs larger than a
  pack: the same on a page-rounded ``module_alloc_type``.  Frees:
  ``module_memfree_type()``.
* Trampolines (v6.4 ``bpf_tramp_image_alloc()``): every generation takes a
  page from ``bpf_jit_alloc_exec(PAGE_SIZE)`` = ``module_alloc_type(
  PAGE_SIZE, MOD_TEXT)`` (RO+X), ``set_vm_flush_reset_perms(image)``; x86
  ``arch_prepare_bpf_trampoline()`` "cannot jit directly into module memory
  yet": ``module_memory_force_unprotect(page)`` (``set_memory_nx`` +
  ``set_memory_rw``), JIT in place, ``module_memory_force_protect(page)``
  (``set_memory_rox``); then ``bpf_trampoline_update()`` calls
  ``module_memory_protect()`` (no-op).  Under ``module_alloc_type_pmd`` the
  page sits in a shared PMD-mapped granule, so the unprotect splits that
  granule's 2 MiB mapping (CPA on part of a large page).
* Dispatcher (v6.4 kernel/bpf/dispatcher.c): ``d->image =
  bpf_prog_pack_alloc(PAGE_SIZE)`` and ``d->rw_image =
  bpf_jit_alloc_exec(PAGE_SIZE)`` -- which v1 makes a RO+X MOD_TEXT page.
  ``bpf_dispatcher_prepare()`` then emits into ``rw_image`` with plain
  stores, which would fault on that page: **the series as posted breaks the
  XDP dispatcher on x86**.  We keep the allocation as posted (it costs a
  page and a ``set_memory_rox``), count each update's emit as
  ``faults_as_posted`` (``faults_as_posted_dispatcher``; also
  ``mat_dispatcher_rw_image_is_rox``), and emit into a kernel buffer
  instead (the obvious fix), then ``bpf_arch_text_copy()`` =
  ``text_poke_copy`` of half a page as before.

Not modelled (as in :mod:`models.legacy.bpf`): the ``text_poke_bp`` that
re-points the traced function or dispatcher stub, in core kernel text.
"""
from __future__ import annotations

from execbench.kernel import Kernel
from execbench.units import PAGE_SIZE

from ..common.bpf_users import Dispatchers, PackedPrograms, TrampolineTable
from ..common.bpf_prog_pack import BpfProgPack, JitBinaryPack, PackOps
from .api import ModuleAllocTypeApi

MOD_TEXT = "text"


def pack_ops_mat(api: ModuleAllocTypeApi) -> PackOps:
    return PackOps(
        alloc_exec=lambda size: api.module_alloc_type(size, MOD_TEXT, caller="bpf_prog_pack_alloc"),
        free_exec=lambda addr: api.module_memfree_type(addr, MOD_TEXT),
        fill=api.text_poke_set,                       # jit_fill_hole() on RO memory
        set_reset_perms=lambda addr: None,            # removed by patch 1/3
        protect=lambda addr, npages: api.module_memory_protect(addr, npages * PAGE_SIZE, MOD_TEXT),
        text_copy=api.text_poke_copy,
        invalidate=api.text_poke_set,
    )


class BpfMat(PackedPrograms, TrampolineTable, Dispatchers):
    def __init__(self, kernel: Kernel, api: ModuleAllocTypeApi):
        self.k = kernel
        self.api = api
        self.pack = BpfProgPack(pack_ops_mat(api), kernel.count, kernel.lock,
                                numa_nodes=kernel.config.numa_nodes)
        self.jit = JitBinaryPack(self.pack, kernel.rng_for("bpf_jit_hole"), kernel.memcpy_elsewhere)
        self.progs: dict[str, tuple[int, int, int, int]] = {}   # obj -> (hdr, size, image, proglen)
        self.tramps: dict[str, tuple[int, int]] = {}            # obj -> (image page, size)
        self.dispatchers: dict[str, list[int]] = {}             # obj -> [image, rw_image, off]

    # -- trampolines ------------------------------------------------------------------
    def _tramp_image(self, size: int) -> int:
        a = self.api
        image = a.module_alloc_type(PAGE_SIZE, MOD_TEXT, caller="bpf_tramp_image_alloc")
        a.set_vm_flush_reset_perms(image)
        a.module_memory_force_unprotect(image, PAGE_SIZE, MOD_TEXT)   # arch_prepare_bpf_trampoline
        self.k.memcpy(image, size)
        a.module_memory_force_protect(image, PAGE_SIZE, MOD_TEXT)
        a.module_memory_protect(image, PAGE_SIZE, MOD_TEXT)           # bpf_trampoline_update: no-op
        self.k.text_claim(image, size)
        return image

    def _tramp_free(self, image: int, size: int) -> None:
        self.k.text_release(image, size)
        self.api.module_memfree_type(image, MOD_TEXT)                  # bpf_jit_free_exec

    # -- dispatcher -------------------------------------------------------------------
    def _dispatcher_new(self) -> tuple[int, int]:
        return self._dispatcher_new_pair(
            lambda: self.api.module_alloc_type(PAGE_SIZE, MOD_TEXT, caller="bpf_dispatcher"))

    def _dispatcher_stage(self, rw: int | None, off: int, n: int) -> None:
        # rw_image is RO+X here: emitting into it with stores would oops; the
        # obvious fix (emit into a kernel buffer) is what is modelled
        self.k.count("mat_dispatcher_rw_image_is_rox")
        self.k.count("faults_as_posted")
        self.k.count("faults_as_posted_dispatcher")
        self.k.memcpy_elsewhere(n)
