"""Counted access to the kernel primitives a user may call directly.

Every design's API object derives from :class:`KernelApi`; each call a user
makes through it is recorded with :meth:`Kernel.api` (the ``interface``
metrics: calls per operation and distinct entry points).  A design exposes
only what its proposal exports -- e.g. jitalloc's text users never call
``set_memory_*`` -- so the entry-point count is the design's surface as its
users experience it.
"""
from __future__ import annotations

from execbench.kernel import Kernel


class KernelApi:
    def __init__(self, kernel: Kernel):
        self.k = kernel

    # permission changes (arch/x86/mm/pat/set_memory.c)
    def set_memory_ro(self, addr: int, npages: int) -> None:
        self.k.api("set_memory_ro")
        self.k.set_memory_ro(addr, npages)

    def set_memory_rw(self, addr: int, npages: int) -> None:
        self.k.api("set_memory_rw")
        self.k.set_memory_rw(addr, npages)

    def set_memory_x(self, addr: int, npages: int) -> None:
        self.k.api("set_memory_x")
        self.k.set_memory_x(addr, npages)

    def set_memory_nx(self, addr: int, npages: int) -> None:
        self.k.api("set_memory_nx")
        self.k.set_memory_nx(addr, npages)

    def set_memory_rox(self, addr: int, npages: int) -> None:
        self.k.api("set_memory_rox")
        self.k.set_memory_rox(addr, npages)

    def set_vm_flush_reset_perms(self, addr: int) -> None:
        self.k.api("set_vm_flush_reset_perms")
        self.k.set_vm_flush_reset_perms(addr)

    # text patching (arch/x86/kernel/alternative.c)
    def text_poke(self, addr: int, nbytes: int) -> None:
        self.k.api("text_poke")
        self.k.text_poke(addr, nbytes)

    def text_poke_copy(self, addr: int, nbytes: int) -> None:
        self.k.api("text_poke_copy")
        self.k.text_poke_copy(addr, nbytes)

    def text_poke_set(self, addr: int, nbytes: int) -> None:
        self.k.api("text_poke_set")
        self.k.text_poke_set(addr, nbytes)

    def text_poke_bp(self, addr: int, nbytes: int) -> None:
        self.k.api("text_poke_bp")
        self.k.text_poke_bp(addr, nbytes)

    def text_poke_sync(self) -> None:
        """x86 ``text_poke_sync()``; arm64 ``flush_icache_range()``'s
        ``kick_all_cpus_sync()`` (e.g. ``bpf_flush_icache()``)."""
        self.k.api("text_poke_sync")
        self.k.text_poke_sync()
