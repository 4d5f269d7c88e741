"""BPF under jitalloc.

Kent's commit message names BPF as a user of ``jit_alloc`` directly ("a new,
very simple slab allocator for jit/text, i.e. bpf, ftrace trampolines, or
bcachefs unpack functions ... it also supports sub-page sized
allocations").  ``bpf_prog_pack`` exists only to give BPF sub-page packing
of RO+X text; jitalloc provides exactly that, so by default
(``bpf_prog_pack=False``) it is dropped:

* Programs: ``bpf_jit_binary_pack_alloc()`` becomes ``ro = jit_alloc(NULL,
  size)`` with ``size = proglen + sizeof(struct bpf_binary_header) + 16``
  (the header and the random 16-byte hole of kernel/bpf/core.c are kept:
  they are JIT hardening, not packing; the pack's 64-byte rounding goes);
  the JIT emits into a kvmalloc'ed RW copy, and
  ``bpf_jit_binary_pack_finalize()``'s ``bpf_arch_text_copy`` becomes
  ``jit_update(ro, rw, size)``.  Unload: ``jit_free(ro)``.
* Trampolines: every ``bpf_trampoline_update()`` generation is
  ``jit_alloc(NULL, size)`` + ``arch_prepare_bpf_trampoline()`` into a
  temporary buffer + ``jit_update``; the old image is ``jit_free``d (after
  the RCU-tasks grace periods, not modelled) -- the v6.8 shape
  (3ba026fca878) with jitalloc in place of the pack.
* Dispatcher (kernel/bpf/dispatcher.c): ``d->image = jit_alloc(NULL,
  PAGE_SIZE)`` (4096 > 2048: one page-granular ROX page); ``d->rw_image``
  only stages code and is never executed, so it becomes a plain buffer
  outside the module range; each update writes the idle half with
  ``jit_update(image + noff, rw + noff, PAGE_SIZE / 2)``.

``bpf_prog_pack=True`` keeps the pack on top: packs are ``jit_alloc(NULL,
2 MiB)`` (page-granular ROX, so no fill/protect step is left to do), chunk
writes, the INT3 fill of a new pack and the INT3 invalidation on free all
become ``jit_update``; ``pack_mutex`` is held as in ``bpf_prog_pack_alloc
/free``.

Not modelled (same in every design): the ``text_poke_bp`` that re-points a
traced function or the dispatcher stub in core kernel text.
"""
from __future__ import annotations


from execbench.kernel import Kernel
from execbench.trace import Event
from execbench.units import PAGE_SIZE

from ..common.bpf_users import Dispatchers, TrampolineTable
from ..common.bpf_prog_pack import BPF_BINARY_HEADER, BPF_RANDOM_HOLE, BpfProgPack, JitBinaryPack, PackOps
from .api import JitAllocApi


def pack_ops_jit(api: JitAllocApi) -> PackOps:
    return PackOps(
        alloc_exec=lambda size: api.jit_alloc(size),
        free_exec=api.jit_free,
        fill=api.jit_update,                 # jit_fill_hole: memory is already RO+X
        set_reset_perms=lambda addr: None,   # done inside jit_alloc
        protect=lambda addr, npages: None,   # jit_alloc returns RO+X
        text_copy=api.jit_update,
        invalidate=api.jit_update,
    )


class BpfJit(TrampolineTable, Dispatchers):
    def __init__(self, kernel: Kernel, api: JitAllocApi, use_pack: bool = False):
        self.k = kernel
        self.api = api
        self.use_pack = use_pack
        self.pack = BpfProgPack(pack_ops_jit(api), kernel.count, kernel.lock,
                                numa_nodes=kernel.config.numa_nodes) if use_pack else None
        self.jitpack = (JitBinaryPack(self.pack, kernel.rng_for("bpf_jit_hole"), kernel.memcpy_elsewhere)
                        if use_pack else None)
        self.rng = kernel.rng_for("bpf_jit_hole")
        self.progs: dict[str, tuple[int, int, int, int]] = {}   # obj -> (ro, size, image, proglen)
        self.tramps: dict[str, tuple[int, int]] = {}
        self.dispatchers: dict[str, list] = {}                   # obj -> [image, None, off]

    # -- programs ----------------------------------------------------------------
    def prog_load(self, ev: Event) -> None:
        if self.use_pack:
            ro, size, image = self.jitpack.alloc_finalize(ev.size)
        else:
            size = ev.size + BPF_BINARY_HEADER + BPF_RANDOM_HOLE
            ro = self.api.jit_alloc(size)
            image = ro + BPF_BINARY_HEADER + int(self.rng.integers(BPF_RANDOM_HOLE))
            self.k.memcpy_elsewhere(size)               # JIT into the RW copy
            self.api.jit_update(ro, size)               # bpf_jit_binary_pack_finalize()
        self.k.text_claim(image, ev.size)
        self.progs[ev.obj] = (ro, size, image, ev.size)

    def prog_unload(self, ev: Event) -> None:
        ro, size, image, proglen = self.progs.pop(ev.obj)
        self.k.text_release(image, proglen)
        if self.use_pack:
            self.jitpack.free(ro, size)
        else:
            self.api.jit_free(ro)

    # -- trampolines ------------------------------------------------------------------
    def _tramp_image(self, size: int) -> int:
        if self.use_pack:
            im = self.pack.alloc(size)
        else:
            im = self.api.jit_alloc(size)
        self.k.memcpy_elsewhere(size)                   # arch_prepare_bpf_trampoline()
        self.api.jit_update(im, size)
        self.k.text_claim(im, size)
        return im

    def _tramp_free(self, im: int, size: int) -> None:
        self.k.text_release(im, size)
        if self.use_pack:
            self.pack.free(im, size)
        else:
            self.api.jit_free(im)

    # -- dispatcher ---------------------------------------------------------------------
    def _dispatcher_new(self) -> tuple[int, None]:
        image = self.pack.alloc(PAGE_SIZE) if self.use_pack else self.api.jit_alloc(PAGE_SIZE)
        return image, None                  # rw_image: a plain buffer outside the range

    def _dispatcher_copy(self, dst: int, n: int) -> None:
        self.api.jit_update(dst, n)


class BpfJitArm64(BpfJit):
    """BPF under jitalloc on arm64: as :class:`BpfJit`, plus what the arm64
    JIT does around its copies -- ``bpf_flush_icache()`` after a program or
    trampoline is written (arch/arm64/net/bpf_jit_comp.c) -- and the
    dispatcher, which arm64 cannot build (``arch_prepare_bpf_dispatcher()``
    is the -ENOTSUPP stub): its image is allocated and never written
    (models/common/arm64.py ``Arm64Dispatcher``)."""

    def prog_load(self, ev: Event) -> None:
        super().prog_load(ev)
        self.api.text_poke_sync()

    def _tramp_image(self, size: int) -> int:
        im = super()._tramp_image(size)
        self.api.text_poke_sync()
        return im

    def dispatcher_update(self, ev: Event) -> None:
        if ev.obj not in self.dispatchers:
            with self.k.poke_source("dispatcher"):
                self.dispatchers[ev.obj] = list(self._dispatcher_new())
        self.k.count("bpf_dispatcher_unsupported")
