"""BPF's use of executable memory in v6.10.

* ``bpf_jit_alloc_exec(size)`` = ``execmem_alloc(EXECMEM_BPF, size)``;
  ``bpf_jit_free_exec()`` = ``execmem_free()`` (kernel/bpf/core.c, v6.10).
* Programs: ``bpf_prog_pack`` (:mod:`models.common.bpf_prog_pack`) -- the
  same pack logic as v6.1, but ``alloc_new_pack()`` protects the new pack with
  one ``set_memory_rox()`` (v6.2+, d48567c9a0d1 "mm: Introduce
  set_memory_rox()") instead of ``set_memory_ro`` + ``set_memory_x``.
* Trampolines (v6.8+, 3ba026fca878 "x86, bpf: Use bpf_prog_pack for bpf
  trampoline"): ``arch_alloc_bpf_trampoline(size)`` =
  ``bpf_prog_pack_alloc(size, jit_fill_hole)`` with ``size`` from
  ``arch_bpf_trampoline_size()`` (the dry run; the trace's ``size``);
  ``arch_prepare_bpf_trampoline()`` JITs into a ``kvmalloc``'ed ``rw_image``
  and ``bpf_arch_text_copy()``s it (``text_poke_copy``);
  ``arch_protect_bpf_trampoline()`` is a no-op on x86; every
  ``bpf_trampoline_update()`` builds a new image and frees the old one with
  ``arch_free_bpf_trampoline()`` = ``bpf_prog_pack_free()``.
* Dispatcher (kernel/bpf/dispatcher.c): as in v6.1 -- one pack chunk of
  PAGE_SIZE for ``d->image`` and one ``bpf_jit_alloc_exec(PAGE_SIZE)`` page
  for ``d->rw_image``; each update writes half a page and
  ``bpf_arch_text_copy()``s it.

``set_memory_rox`` goes through the design's API, which adds v6.15's
CPA_COLLAPSE when the ROX-cache design runs as v6.15+ (v6.10 has none).

Not modelled (as in ``legacy``): the ``text_poke_bp`` that re-points the
traced function or the dispatcher stub -- core kernel text, the same in every
design.
"""
from __future__ import annotations

from execbench.kernel import Kernel
from execbench.units import PAGE_SIZE

from ..common.bpf_users import Dispatchers, PackedPrograms, TrampolineTable
from ..common.bpf_prog_pack import BpfProgPack, JitBinaryPack, PackOps
from .api import ExecmemApi, ExecmemType


def pack_ops_610(api: ExecmemApi, k: Kernel) -> PackOps:
    return PackOps(
        alloc_exec=lambda size: api.execmem_alloc(ExecmemType.BPF, size, caller="bpf_prog_pack_alloc"),
        free_exec=api.execmem_free,
        fill=k.memcpy,                       # bpf_fill_ill_insns while RW
        set_reset_perms=api.set_vm_flush_reset_perms,
        protect=api.set_memory_rox,
        text_copy=api.text_poke_copy,
        invalidate=api.text_poke_set,
    )


class Bpf610(PackedPrograms, TrampolineTable, Dispatchers):
    def __init__(self, kernel: Kernel, api: ExecmemApi):
        self.k = kernel
        self.api = api
        self.pack = BpfProgPack(pack_ops_610(api, kernel), kernel.count, kernel.lock,
                                numa_nodes=kernel.config.numa_nodes)
        self.jit = JitBinaryPack(self.pack, kernel.rng_for("bpf_jit_hole"), kernel.memcpy_elsewhere)
        self.progs: dict[str, tuple[int, int, int, int]] = {}   # obj -> (hdr, size, image, proglen)
        self.tramps: dict[str, tuple[int, int]] = {}            # obj -> (image, size)
        self.dispatchers: dict[str, list[int]] = {}             # obj -> [image, rw_image, off]

    # -- trampolines (in packs since v6.8) ---------------------------------------------
    def _tramp_image(self, size: int) -> int:
        image = self.pack.alloc(size)               # arch_alloc_bpf_trampoline()
        self.k.memcpy_elsewhere(size)               # JIT into kvmalloc'ed rw_image
        self.api.text_poke_copy(image, size)        # bpf_arch_text_copy()
        self.k.text_claim(image, size)
        return image

    def _tramp_free(self, image: int, size: int) -> None:
        self.k.text_release(image, size)
        self.pack.free(image, size)                 # arch_free_bpf_trampoline()

    # -- dispatcher -------------------------------------------------------------------
    abandon_writes_size = False       # 6.12 kernel/bpf/dispatcher.c

    def _dispatcher_new(self) -> tuple[int, int]:
        return self._dispatcher_new_pair(
            lambda: self.api.execmem_alloc(ExecmemType.BPF, PAGE_SIZE, caller="bpf_dispatcher"))
