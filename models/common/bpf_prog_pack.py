"""``bpf_prog_pack``: 2 MiB packs of 64-byte chunks for JITed BPF code.

Follows kernel/bpf/core.c (v6.1; the same logic through v6.12, see
docs/kernel-semantics.md §7):

* ``BPF_PROG_PACK_SIZE`` = ``SZ_2M * num_possible_nodes()`` (the ``#ifdef
  PMD_SIZE`` branch; v6.1, v6.12, 7.2): 2 MiB on one node, 4 MiB on two --
  the machine's ``numa_nodes`` (``--numa-nodes``); ``BPF_PROG_CHUNK_SIZE`` =
  64, so a pack holds ``BPF_PROG_PACK_SIZE / 64`` chunks (32768 per node); a
  pack is one ``bpf_jit_alloc_exec()`` area mapped with **4 KiB pages** (no
  huge vmalloc in mainline x86).
* ``alloc_new_pack()``: allocate, fill with illegal instructions while still
  writable, ``set_vm_flush_reset_perms()``, then make the whole pack RO+X
  (v6.1: ``set_memory_ro`` + ``set_memory_x``; v6.2+: ``set_memory_rox``)
  and append it to ``pack_list``.
* ``bpf_prog_pack_alloc(size)``: larger than a pack -> its own page-rounded
  allocation, filled and protected the same way; otherwise
  ``bitmap_find_next_zero_area()`` in each pack in list (creation) order --
  first fit, lowest chunk, oldest pack -- else a new pack at chunk 0.
* ``bpf_prog_pack_free(ptr, size)``: invalidate the chunks
  (``bpf_arch_text_invalidate`` = ``text_poke_set(0xcc)`` on x86), clear the
  bits, and free the pack at once when its bitmap is empty (no hysteresis).
* ``bpf_jit_binary_pack_alloc(proglen)``: ``size = round_up(proglen +
  sizeof(struct bpf_binary_header) + 16, 64)``; the image starts at a random
  offset below ``min(size - (proglen + hdr), 64 - hdr)`` ("a random section
  of illegal instructions"); JIT into a kvmalloc'ed RW copy, then
  ``bpf_jit_binary_pack_finalize()`` = ``bpf_arch_text_copy()`` =
  ``text_poke_copy`` of the whole ``size``.

The allocator below the pack and the protection call differ per design, so
they come in through :class:`PackOps`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, ContextManager

import numpy as np

from execbench.units import PAGE_SIZE, PMD_SIZE, round_up

BPF_PROG_PACK_SIZE = PMD_SIZE           # SZ_2M * num_possible_nodes() on one node
BPF_PROG_CHUNK_SIZE = 64                # 1 << BPF_PROG_CHUNK_SHIFT
BPF_PROG_CHUNK_COUNT = BPF_PROG_PACK_SIZE // BPF_PROG_CHUNK_SIZE   # 32768 on one node


def bpf_prog_pack_size(numa_nodes: int = 1) -> int:
    """``BPF_PROG_PACK_SIZE`` = ``SZ_2M * num_possible_nodes()``
    (kernel/bpf/core.c, v6.1 through 7.2)."""
    return PMD_SIZE * numa_nodes
BPF_BINARY_HEADER = 8                   # struct bpf_binary_header { u32 size; u8 image[] __aligned(8); }
BPF_RANDOM_HOLE = 16                    # "add 16 bytes for a random section of illegal instructions"


def pack_chunks(proglen: int) -> int:
    """Chunks ``bpf_jit_binary_pack_alloc(proglen)`` takes from a pack."""
    size = round_up(proglen + BPF_BINARY_HEADER + BPF_RANDOM_HOLE, BPF_PROG_CHUNK_SIZE)
    return size // BPF_PROG_CHUNK_SIZE


@dataclass
class PackOps:
    """What a design provides underneath the pack allocator."""

    alloc_exec: Callable[[int], int]          # bpf_jit_alloc_exec(size) -> addr
    free_exec: Callable[[int], None]          # bpf_jit_free_exec(addr)
    fill: Callable[[int, int], None]          # bpf_fill_ill_insns(addr, size) on fresh memory
    set_reset_perms: Callable[[int], None]    # set_vm_flush_reset_perms(addr)
    protect: Callable[[int, int], None]       # make (addr, npages) RO+X
    text_copy: Callable[[int, int], None]     # bpf_arch_text_copy
    invalidate: Callable[[int, int], None]    # bpf_arch_text_invalidate


class Pack:
    """One pack: its address and its chunk bitmap.

    The bitmap is a ``bytearray`` (one byte per chunk) with ``bitmap`` a
    numpy bool view of the same memory, so the first-fit search is one C-level
    ``bytearray.find`` of ``nbits`` zero bytes instead of numpy run-length
    arithmetic on 32768 entries per call."""

    __slots__ = ("addr", "bits", "bitmap", "_zeros")

    def __init__(self, addr: int, chunks: int = BPF_PROG_CHUNK_COUNT, zeros: bytes | None = None):
        self.addr = addr
        self.bits = bytearray(chunks)
        self.bitmap = np.frombuffer(self.bits, dtype=np.bool_)
        self._zeros = zeros if zeros is not None else bytes(chunks)

    def find(self, nbits: int) -> int:
        """``bitmap_find_next_zero_area(bitmap, COUNT, 0, nbits, 0)``: the
        lowest start of ``nbits`` clear bits.  The lowest index where
        ``nbits`` zero bytes begin is always the start of a free run (were
        the byte before it clear too, the match would begin there), so it is
        the first free run of at least ``nbits`` -- the kernel's answer."""
        if nbits > len(self.bits):
            return -1
        return self.bits.find(self._zeros[:nbits])


class BpfProgPack:
    """The pack allocator with its list of packs, for one kernel."""

    def __init__(self, ops: PackOps, counter: Callable[[str], None],
                 lock: Callable[[str], ContextManager] | None = None, numa_nodes: int = 1):
        self.ops = ops
        self.count = counter
        self.lock = lock            # Kernel.lock: bpf_prog_pack_alloc/free hold pack_mutex
        self.pack_size = bpf_prog_pack_size(numa_nodes)
        self.chunks = self.pack_size // BPF_PROG_CHUNK_SIZE      # BPF_PROG_CHUNK_COUNT
        self._zeros = bytes(self.chunks)
        self.packs: list[Pack] = []
        self.big: set[int] = set()

    def alloc(self, size: int) -> int:
        """``bpf_prog_pack_alloc(size)``: address of ``size`` bytes of RO+X,
        under ``pack_mutex``."""
        if self.lock is None:
            return self._alloc(size)
        with self.lock("pack_mutex"):
            return self._alloc(size)

    def free(self, addr: int, size: int) -> None:
        """``bpf_prog_pack_free(ptr, size)``, under ``pack_mutex``."""
        if self.lock is None:
            return self._free(addr, size)
        with self.lock("pack_mutex"):
            return self._free(addr, size)

    def _new_pack(self) -> Pack:
        o = self.ops
        addr = o.alloc_exec(self.pack_size)
        o.fill(addr, self.pack_size)
        o.set_reset_perms(addr)
        o.protect(addr, self.pack_size // PAGE_SIZE)
        pack = Pack(addr, self.chunks, self._zeros)
        self.packs.append(pack)
        self.count("bpf_prog_pack_new")
        return pack

    def _alloc(self, size: int) -> int:
        o = self.ops
        if size > self.pack_size:
            size = round_up(size, PAGE_SIZE)
            addr = o.alloc_exec(size)
            o.fill(addr, size)
            o.set_reset_perms(addr)
            o.protect(addr, size // PAGE_SIZE)
            self.big.add(addr)
            self.count("bpf_prog_pack_big")
            return addr
        nbits = -(-size // BPF_PROG_CHUNK_SIZE)
        for pack in self.packs:
            pos = pack.find(nbits)
            if pos >= 0:
                break
        else:
            pack, pos = self._new_pack(), 0
        pack.bitmap[pos:pos + nbits] = True
        return pack.addr + pos * BPF_PROG_CHUNK_SIZE

    def _free(self, addr: int, size: int) -> None:
        o = self.ops
        if size > self.pack_size:
            self.big.remove(addr)
            o.free_exec(addr)
            return
        for i, pack in enumerate(self.packs):
            if pack.addr <= addr < pack.addr + self.pack_size:
                break
        else:
            raise KeyError(f"bpf_prog_pack_free: {addr:#x} is in no pack")
        o.invalidate(addr, size)
        pos = (addr - pack.addr) // BPF_PROG_CHUNK_SIZE
        nbits = -(-size // BPF_PROG_CHUNK_SIZE)
        pack.bitmap[pos:pos + nbits] = False
        if pack.bits.find(1) < 0:           # no chunk in use (a C-level memchr, not a numpy reduction)
            del self.packs[i]
            o.free_exec(pack.addr)
            self.count("bpf_prog_pack_freed")


class JitBinaryPack:
    """``bpf_jit_binary_pack_alloc/finalize/free`` over a :class:`BpfProgPack`."""

    def __init__(self, pack: BpfProgPack, rng: np.random.Generator,
                 memcpy_rw: Callable[[int], None]):
        self.pack = pack
        self.rng = rng
        self.memcpy_rw = memcpy_rw

    def alloc_finalize(self, proglen: int) -> tuple[int, int, int]:
        """JIT a program of ``proglen`` bytes; return (ro_header, size, image)."""
        size = round_up(proglen + BPF_BINARY_HEADER + BPF_RANDOM_HOLE, BPF_PROG_CHUNK_SIZE)
        ro = self.pack.alloc(size)
        hole = min(size - (proglen + BPF_BINARY_HEADER), BPF_PROG_CHUNK_SIZE - BPF_BINARY_HEADER)
        start = int(self.rng.integers(hole))        # get_random_u32_below(hole) & ~(1 - 1)
        self.memcpy_rw(size)                          # JIT emits into the RW copy
        self.pack.ops.text_copy(ro, size)             # bpf_arch_text_copy(ro, rw, size)
        return ro, size, ro + BPF_BINARY_HEADER + start

    def free(self, ro: int, size: int) -> None:
        self.pack.free(ro, size)
