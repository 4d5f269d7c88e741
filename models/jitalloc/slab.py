"""mm/jitalloc.c from Kent Overstreet's commit 80ceffd6b110 "mm: jit/text
allocator" (2023-05-17, quoted in his reply Message-ID
ZHEy5SkFwI+dZjOC@moria.home.lan), plus the ``jitalloc_update()`` fallback he
sketched in ZHF21CSxyjQy9C7F@moria.home.lan.

What the commit does, and how each piece is modelled:

* ``JITALLOC_MIN_SIZE = 16``, ``NR_JIT_CACHES = ilog2(PAGE_SIZE / 16) = 8``:
  caches of 16, 32, ... 2048-byte objects; ``obj_size_bits = 4 + i``,
  ``objs_per_slab = PAGE_SIZE >> obj_size_bits`` (256 ... 2).
* ``jit_alloc(buf, len)``: ``idx = ilog2(roundup_pow_of_two(len) / 16)``.
  ``idx < 8`` -> ``jit_cache_alloc()`` under the global ``jit_alloc_lock``
  mutex; otherwise ``module_alloc(len)`` + ``set_vm_flush_reset_perms`` +
  ``set_memory_rox(p, DIV_ROUND_UP(len, PAGE_SIZE))`` with no lock.  Then
  ``if (buf) jit_update(p, buf, len)``.
  *Simplified:* for ``len < 16`` the sketch evaluates ``ilog2(0)``
  (undefined); we use the 16-byte cache, the evident intent.
* ``jit_slab_alloc()``: ``module_alloc(PAGE_SIZE)`` (x86 v6.4:
  ``__vmalloc_node_range(.., PAGE_KERNEL, ..)``, RW+NX), then
  ``set_vm_flush_reset_perms`` and ``set_memory_rox(page, 1)``: the page is
  never writable and executable at once.  The new slab is *not* on the
  partial list until its first object is taken.
* ``jit_cache_alloc()``: first slab of ``cache->partial`` (or a new one),
  ``find_first_zero_bit``; if the slab is now full it leaves the list
  (``list_del_init``); if it now holds exactly one object it is moved to the
  head (``list_add``) -- which is how a new slab joins the list.
* ``jit_free(buf)``: not a slab page -> ``vfree``.  Slab: under
  ``jit_alloc_lock`` clear the bit; empty -> ``list_del`` and
  ``folio_put``; was full -> back to the head of partial.
  *Simplified:* the sketch releases an empty slab's page with
  ``folio_put()`` without unmapping its vmalloc area (it leaks the area);
  we model the evident intent, ``vfree`` with VM_FLUSH_RESET_PERMS
  (docs/kernel-semantics.md §9).  Freed objects are not invalidated
  (no INT3 fill): the sketch does none.
* ``jit_update(buf, new_buf, len)`` = ``text_poke_copy(buf, new_buf, len)``
  on x86 (``text_poke=True``).  ``text_poke=False`` models Kent's fallback
  for architectures without ``text_poke``::

      void jitalloc_update(void *dst, void *src, size_t len)
      {
              if (text_poke_available) text_poke(...);
              else { unprotect(); memcpy(); protect(); }
      }

  with "a single lock" (Kent: "it does if you add a single lock") --
  ``jit_alloc_lock`` here, switchable off with ``fallback_lock=False`` to
  show the race it prevents.  ``unprotect`` is not spelled out in the
  sketch; ``fallback_unprotect`` chooses ``"nx_rw"`` (``set_memory_nx`` then
  ``set_memory_rw``: W^X kept, every other object on the page unusable for
  the window) or ``"rw"`` (``set_memory_rw`` only: the page is W+X for the
  window, counted by ``wx_page_ns``).  ``protect`` is ``set_memory_rox``.
  Both are whole pages covering ``[dst, dst + len)``.

What the fallback costs neighbours (design counters, integrated over the
global virtual clock from before ``unprotect`` to after ``protect``):

* ``jit_fallback_window_ns``: total length of unprotected windows.
* ``jit_fallback_neighbour_obj_ns``: sum over windows of (allocated jitalloc
  objects on the affected pages other than the one containing ``dst``) x
  window.  With ``"nx_rw"`` these objects cannot be executed (a CPU that
  jumps into one faults); with ``"rw"`` they are writable+executable.
* ``jit_fallback_live_text_byte_ns``: the same with the kernel's live-text
  registry (bytes of live text on the affected pages, including live bytes
  of the object itself -- e.g. the running half of the BPF dispatcher image).
"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, field

from execbench.errors import KernelBug
from execbench.kernel import Kernel
from execbench.units import PAGE_SHIFT, PAGE_SIZE, pages

JITALLOC_MIN_SIZE = 16
NR_JIT_CACHES = (PAGE_SIZE // JITALLOC_MIN_SIZE).bit_length() - 1    # ilog2(4096/16) = 8
UNPROTECT_MODES = ("nx_rw", "rw")


def roundup_pow_of_two(n: int) -> int:
    return 1 << (max(n, 1) - 1).bit_length()


def cache_index(length: int) -> int:
    """``ilog2(roundup_pow_of_two(len) / 16)``; ``>= NR_JIT_CACHES`` means page-granular."""
    r = roundup_pow_of_two(max(length, JITALLOC_MIN_SIZE))
    return (r // JITALLOC_MIN_SIZE).bit_length() - 1


@dataclass
class JitCache:
    obj_size_bits: int
    objs_per_slab: int
    partial: list["JitSlab"] = field(default_factory=list)   # [0] = list head


@dataclass
class JitSlab:
    addr: int
    cache: JitCache
    used: bytearray
    nr: int = 0


class JitAllocator:
    """The allocator state of one kernel (``jit_caches[]`` and the slabs)."""

    def __init__(self, kernel: Kernel, text_poke: bool = True, fallback_lock: bool = True,
                 fallback_unprotect: str = "nx_rw"):
        if fallback_unprotect not in UNPROTECT_MODES:
            raise ValueError(f"fallback_unprotect={fallback_unprotect!r}; one of {UNPROTECT_MODES}")
        self.k = kernel
        self.text_poke = text_poke
        self.fallback_lock = fallback_lock
        self.unprotect = fallback_unprotect
        self.caches = [JitCache(4 + i, PAGE_SIZE >> (4 + i)) for i in range(NR_JIT_CACHES)]
        self.slabs: dict[int, JitSlab] = {}      # page address -> slab ("folio_test_slab")
        self.big: dict[int, int] = {}            # address -> len of page-granular allocations

    # -- jit_alloc ----------------------------------------------------------------
    def _module_alloc(self, size: int) -> int:
        """x86 ``module_alloc()`` (v6.4): RW+NX in the module range; arm64's
        (v6.4 = 6.1: direct window, then the 2 GiB fallback,
        models/common/arm64.py)."""
        if self.k.arch.name == "arm64":
            from ..common.arm64 import module_alloc_arm64
            return module_alloc_arm64(self.k, size, caller="jit_alloc")
        return self.k.vmalloc(size, align=PAGE_SIZE, w=True, x=False, caller="jit_alloc")

    def _slab_alloc(self, cache: JitCache) -> JitSlab:
        k = self.k
        addr = self._module_alloc(PAGE_SIZE)
        k.set_vm_flush_reset_perms(addr)
        k.set_memory_rox(addr, 1)
        s = JitSlab(addr, cache, bytearray(cache.objs_per_slab))
        self.slabs[addr] = s
        k.count("jit_slabs_new")
        return s

    def _cache_alloc(self, cache: JitCache) -> int:
        s = cache.partial[0] if cache.partial else self._slab_alloc(cache)
        idx = s.used.find(0)
        if idx < 0:
            raise KernelBug("jit_cache_alloc: partial slab is full")      # BUG_ON
        s.used[idx] = 1
        s.nr += 1
        if s.nr == cache.objs_per_slab:
            if s in cache.partial:
                cache.partial.remove(s)                 # list_del_init
        elif s.nr == 1:
            if s in cache.partial:
                cache.partial.remove(s)
            cache.partial.insert(0, s)                  # list_add at the head
        return s.addr + (idx << cache.obj_size_bits)

    def alloc(self, length: int, buf: bool = False) -> int:
        """``jit_alloc(buf, len)``; ``buf`` says whether initial contents are given."""
        if length <= 0:
            raise KernelBug(f"jit_alloc({length})")
        idx = cache_index(length)
        k = self.k
        if idx < NR_JIT_CACHES:
            with k.lock("jit_alloc_lock"):
                p = self._cache_alloc(self.caches[idx])
        else:
            p = self._module_alloc(length)
            k.set_vm_flush_reset_perms(p)
            k.set_memory_rox(p, pages(length))
            self.big[p] = length
        if buf:
            self.update(p, length)
        return p

    # -- jit_free -------------------------------------------------------------------
    def free(self, addr: int) -> None:
        """``jit_free(buf)``."""
        k = self.k
        page = addr & ~(PAGE_SIZE - 1)
        s = self.slabs.get(page)
        if s is None:
            if addr not in self.big:
                raise KernelBug(f"jit_free({addr:#x}): not a jit_alloc() allocation")
            del self.big[addr]
            k.vfree(addr)
            return
        with k.lock("jit_alloc_lock"):
            c = s.cache
            idx = (addr - page) >> c.obj_size_bits
            if not s.used[idx]:
                raise KernelBug(f"jit_free({addr:#x}): object not allocated")
            s.used[idx] = 0
            s.nr -= 1
            if s.nr == 0:
                if s in c.partial:
                    c.partial.remove(s)
                del self.slabs[page]
                k.vfree(page)                           # folio_put(), see module doc
                k.count("jit_slabs_freed")
            elif s.nr + 1 == c.objs_per_slab:
                if s in c.partial:
                    c.partial.remove(s)
                c.partial.insert(0, s)

    # -- jit_update -----------------------------------------------------------------
    def update(self, dst: int, length: int) -> None:
        """``jit_update(dst, src, len)``: x86 ``text_poke_copy``, or the fallback."""
        if self.text_poke:
            self.k.text_poke_copy(dst, length)
            return
        k = self.k
        lo = dst & ~(PAGE_SIZE - 1)
        n = pages(dst + length - lo)
        lock = k.lock("jit_alloc_lock") if self.fallback_lock else nullcontext()
        with lock, k.page_update(dst, length):
            t0 = k.now
            if self.unprotect == "nx_rw":
                k.set_memory_nx(lo, n)
                k.set_memory_rw(lo, n)
            else:
                k.set_memory_rw(lo, n)
            k.memcpy(dst, length)
            k.set_memory_rox(lo, n)
            if k.arch.name == "arm64":
                # new instructions through the vmalloc mapping need
                # flush_icache_range() before they run: one kick_all_cpus_sync()
                # IPI (the fallback's arm64 form; the sketch names no arch)
                k.text_poke_sync()
            dt = k.now - t0
        k.count("jit_fallback_updates")
        k.count("jit_fallback_window_ns", int(round(dt)))
        k.count("jit_fallback_neighbour_obj_ns", int(round(self._neighbours(dst, lo, n) * dt)))
        p0 = k.page_of(lo)
        live = int(k.pt.text[p0:p0 + n].sum())
        k.count("jit_fallback_live_text_byte_ns", int(round(live * dt)))

    def update_repeat(self, dst: int, span: int, nbytes: int, count: int) -> None:
        """``count`` small updates inside ``[dst, +span)`` (text_poke only)."""
        if not self.text_poke:
            raise KernelBug("jit_update_repeat without text_poke")
        self.k.text_poke_repeat(dst, span, nbytes, count)
        if self.k.arch.name == "arm64":
            # each jit_update() is one aarch64_insn_copy(): its own flush_icache_range() IPI
            self.k.text_poke_sync_repeat(count)

    def _neighbours(self, dst: int, lo: int, n: int) -> int:
        """Allocated objects on pages ``[lo, lo + n pages)`` other than the one holding ``dst``."""
        count = 0
        for i in range(n):
            page = lo + (i << PAGE_SHIFT)
            s = self.slabs.get(page)
            if s is not None:
                own = s.used[(dst - page) >> s.cache.obj_size_bits] if page <= dst < page + PAGE_SIZE else 0
                count += s.nr - own
            # a page-granular allocation owns its pages: the only object on
            # them is the one being updated
        return count
