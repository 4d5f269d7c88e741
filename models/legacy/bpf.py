"""BPF's use of executable memory in v6.1.

* Programs: ``bpf_jit_binary_pack_alloc()`` on ``bpf_prog_pack``
  (:mod:`models.common.bpf_prog_pack`), packs from ``module_alloc()`` made
  RO+X with ``set_memory_ro`` + ``set_memory_x`` (v6.1 has no
  ``set_memory_rox``).  With ``bpf_prog_pack=False`` the v5.17 path instead:
  ``bpf_jit_binary_alloc()`` -- ``size = round_up(proglen + sizeof(*hdr) +
  128, PAGE_SIZE)`` ("allow at least 128 extra bytes to insert a random
  section of illegal instructions"), ``module_alloc(size)``, JIT in place,
  ``bpf_jit_binary_lock_ro()`` = ``set_vm_flush_reset_perms`` +
  ``set_memory_ro`` + ``set_memory_x``; freed with ``module_memfree``.
* Trampolines (kernel/bpf/trampoline.c, v6.1): every ``bpf_trampoline_update``
  allocates a new image page with ``bpf_jit_alloc_exec(PAGE_SIZE)`` +
  ``set_vm_flush_reset_perms``, ``arch_prepare_bpf_trampoline()`` writes it in
  place, then ``set_memory_ro(image, 1)`` + ``set_memory_x(image, 1)``; the
  previous image is freed (after RCU-tasks grace periods) with
  ``bpf_jit_free_exec``.
* Dispatcher (kernel/bpf/dispatcher.c, v6.1, "bpf: use bpf_prog_pack for
  bpf_dispatcher"): on first use ``d->image = bpf_prog_pack_alloc(PAGE_SIZE)``
  and ``d->rw_image = bpf_jit_alloc_exec(PAGE_SIZE)`` (a writable page never
  made executable); each update emits the other half into ``rw_image`` and
  copies ``PAGE_SIZE / 2`` with ``bpf_arch_text_copy`` (``text_poke_copy``).

Not modelled: the ``text_poke_bp`` that re-points the traced function's
call site or the dispatcher stub -- that patches core kernel text, outside
the module range, identically in every design.
"""
from __future__ import annotations

from execbench.kernel import Kernel
from execbench.trace import Event
from execbench.units import PAGE_SIZE, pages, round_up

from ..common.bpf_users import Dispatchers, PackedPrograms, TrampolineTable
from ..common.bpf_prog_pack import (BPF_BINARY_HEADER, BpfProgPack, JitBinaryPack, PackOps,
                                    bpf_prog_pack_size)
from .api import ModuleAllocApi

BPF_V517_SLACK = 128   # bpf_jit_binary_alloc(), kernel/bpf/core.c (v5.17)


def pack_ops_v61(api: ModuleAllocApi, k: Kernel, huge: bool = False) -> PackOps:
    """The v6.1 pack ops; ``huge=True`` maps each 2 MiB pack with one PMD leaf.

    ``huge`` is the v5.18-rc1..rc3 behaviour: fac54e2bfb5b ("x86/Kconfig:
    Select HAVE_ARCH_HUGE_VMALLOC with HAVE_ARCH_HUGE_VMAP") made huge vmalloc
    opt-out on x86, so ``module_alloc(BPF_PROG_PACK_SIZE)`` got one 2 MiB
    page (ef078600eec2 "bpf: Select proper size for bpf_prog_pack" kept 2 MiB
    packs only when ``is_vm_area_hugepages()``); 559089e0a93d ("vmalloc:
    replace VM_NO_HUGE_VMAP with VM_ALLOW_HUGE_VMAP", v5.18-rc4) made it
    opt-in, and from ea2babac63d4 ("bpf: Simplify bpf_prog_pack_[size|mask]",
    v5.19) packs are 2 MiB of 4 KiB PTEs.  Only the pack itself is huge here
    (programs larger than a pack and every other ``module_alloc`` keep 4 KiB
    pages), as in Song Liu's unmerged "bpf: use module_alloc_huge for
    bpf_prog_pack" (<20220624215712.3050672-3-song@kernel.org>) used for his
    2 MiB vs 512 x 4 KiB A/B (<20220707223546.4124919-1-song@kernel.org>):
    the leaf size of BPF text alone changes.  Everything else (fill,
    set_vm_flush_reset_perms, set_memory_ro + set_memory_x over the whole
    pack) stays v6.1."""
    def alloc_exec(size: int) -> int:
        if huge and size == bpf_prog_pack_size(k.config.numa_nodes):
            k.api("module_alloc")
            return k.vmalloc(size, align=PAGE_SIZE, w=True, x=False, huge=True,
                             caller="bpf_prog_pack_alloc")
        return api.module_alloc(size, caller="bpf_prog_pack_alloc")

    def protect(addr: int, npages: int) -> None:
        api.set_memory_ro(addr, npages)
        api.set_memory_x(addr, npages)

    return PackOps(
        alloc_exec=alloc_exec,
        free_exec=api.module_memfree,
        fill=k.memcpy,                       # bpf_fill_ill_insns: memset while RW
        set_reset_perms=api.set_vm_flush_reset_perms,
        protect=protect,
        text_copy=api.text_poke_copy,
        invalidate=api.text_poke_set,
    )


class Bpf61(PackedPrograms, TrampolineTable, Dispatchers):
    def __init__(self, kernel: Kernel, api: ModuleAllocApi, use_pack: bool = True,
                 pack_huge: bool = False):
        self.k = kernel
        self.api = api
        self.use_pack = use_pack
        self.pack = BpfProgPack(pack_ops_v61(api, kernel, pack_huge), kernel.count, kernel.lock,
                                numa_nodes=kernel.config.numa_nodes)
        self.jit = JitBinaryPack(self.pack, kernel.rng_for("bpf_jit_hole"), kernel.memcpy_elsewhere)
        self.rng = kernel.rng_for("bpf_jit_hole_v517")
        self.progs: dict[str, tuple[int, int, int, int]] = {}   # obj -> (hdr, size, image, proglen)
        self.tramps: dict[str, tuple[int, int]] = {}            # obj -> (image page, size)
        self.dispatchers: dict[str, list[int]] = {}             # obj -> [image, rw_image, off]

    # -- programs ----------------------------------------------------------------
    def prog_load(self, ev: Event) -> None:
        if self.use_pack:
            return super().prog_load(ev)
        a = self.api
        size = round_up(ev.size + BPF_BINARY_HEADER + BPF_V517_SLACK, PAGE_SIZE)
        hdr = a.module_alloc(size, caller="bpf_jit_binary_alloc")
        self.k.memcpy(hdr, size)                       # bpf_fill_ill_insns
        hole = min(size - (ev.size + BPF_BINARY_HEADER), PAGE_SIZE - BPF_BINARY_HEADER)
        image = hdr + BPF_BINARY_HEADER + int(self.rng.integers(hole))
        self.k.memcpy(image, ev.size)                  # JIT writes in place
        a.set_vm_flush_reset_perms(hdr)                # bpf_jit_binary_lock_ro()
        a.set_memory_ro(hdr, pages(size))
        a.set_memory_x(hdr, pages(size))
        self.k.text_claim(image, ev.size)
        self.progs[ev.obj] = (hdr, size, image, ev.size)

    def prog_unload(self, ev: Event) -> None:
        if self.use_pack:
            return super().prog_unload(ev)
        hdr, size, image, proglen = self.progs.pop(ev.obj)
        self.k.text_release(image, proglen)
        self.api.module_memfree(hdr)

    # -- trampolines ----------------------------------------------------------------
    def _tramp_image(self, size: int) -> int:
        a = self.api
        image = a.module_alloc(PAGE_SIZE, caller="bpf_tramp_image_alloc")
        a.set_vm_flush_reset_perms(image)
        self.k.memcpy(image, size)                  # arch_prepare_bpf_trampoline()
        a.set_memory_ro(image, 1)
        a.set_memory_x(image, 1)
        self.k.text_claim(image, size)
        return image

    def _tramp_free(self, image: int, size: int) -> None:
        self.k.text_release(image, size)
        self.api.module_memfree(image)

    # -- dispatcher -------------------------------------------------------------------
    def _dispatcher_new(self) -> tuple[int, int]:
        return self._dispatcher_new_pair(
            lambda: self.api.module_alloc(PAGE_SIZE, caller="bpf_dispatcher"))
