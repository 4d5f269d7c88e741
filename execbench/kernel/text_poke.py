"""Text patching (arch/x86/kernel/alternative.c, v6.1).

``__text_poke()`` maps the 1-2 target pages at ``poking_addr`` in the
private ``poking_mm``, switches to it, copies, unmaps and flushes *locally*
("Flushing the TLB might involve IPIs ... but not if the mm is not used");
the vmalloc mapping and the direct map are untouched, so no permission
changes and no shootdown.

* ``text_poke_copy()``/``text_poke_set()`` loop ``__text_poke`` over chunks
  of ``min(2 * PAGE_SIZE - offset_in_page(ptr), len - patched)`` bytes under
  ``text_mutex``.
* ``text_poke_sync()`` = ``on_each_cpu(do_sync_core)``: a broadcast IPI.
* ``text_poke_bp()`` (live patching of a running site: jump labels, ftrace
  call updates, BPF dispatcher jumps) = ``text_poke_bp_batch()`` for one
  site: INT3 on the first byte, sync; the tail bytes (if any), sync; the
  first byte, sync -- three pokes and three sync IPIs (two when the
  instruction is one byte).

Every ``__text_poke()`` is also counted by its *source* (``text_pokes_<source>``,
:data:`SOURCES`): the writer names it with ``Kernel.poke_source`` (the module
loader: section fill, invalidate, relocations, alternatives, the ORC and
mcount sorts, the ``__fentry__`` conversion; BPF: trampolines, dispatcher;
an allocator's own fills: ``cache``), else the current user's default
(:data:`USER_SOURCE`).  The sources partition ``text_pokes``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..errors import KernelBug
from ..units import PAGE_SIZE
from .pagetable import PRESENT

if TYPE_CHECKING:
    from .machine import Kernel


def _check_mapped(k: "Kernel", addr: int, nbytes: int) -> None:
    p0, p1 = k.page_of(addr), k.page_of(addr + nbytes - 1)
    f = k.pt.flags
    if p0 < 0 or p1 >= k.pt.n_pages:
        raise KernelBug(f"text_poke of {nbytes} bytes at {addr:#x}: page not mapped")
    if p1 - p0 <= 1:      # the common case: numpy scalar reads beat a slice reduction
        if f[p0] & PRESENT and f[p1] & PRESENT:
            return
    elif (f[p0:p1 + 1] & PRESENT).all():
        return
    raise KernelBug(f"text_poke of {nbytes} bytes at {addr:#x}: page not mapped")


#: What a text poke was for (``text_pokes_<source>``, docs/metrics.md):
#: the module loader's writes -- ``fill`` (section contents), ``invalidate``
#: (INT3/zero fill of a fresh area), ``reloc``, ``alternatives``,
#: ``orc_sort``, ``mcount_sort``, ``ftrace_init`` (``__fentry__`` call ->
#: NOP at load); ``patch`` (live patching of module text); the other users'
#: writes -- ``bpf`` (programs, packs), ``trampoline`` (BPF trampolines),
#: ``dispatcher`` (BPF dispatcher), ``ftrace`` (ftrace trampolines),
#: ``kprobe`` (insn slots); ``cache`` (an allocator refilling pooled memory:
#: the ROX cache, PMD granules); ``other`` (a poke made outside any event,
#: e.g. by a test: 0 in every replay).
SOURCES = ("fill", "invalidate", "reloc", "alternatives", "orc_sort", "mcount_sort",
           "ftrace_init", "patch", "bpf", "trampoline", "dispatcher", "ftrace", "kprobe",
           "cache", "other")
#: the source of a poke made outside a ``Kernel.poke_source`` block, by user
#: (module pokes are always named: the loader and ``patch`` set theirs)
USER_SOURCE = {"bpf": "bpf", "ftrace": "ftrace", "kprobe": "kprobe"}


def _poke(k: "Kernel", nbytes: int) -> None:
    c = k.counters
    c["text_pokes"] += 1
    c[k.poke_counter()] += 1
    c["text_poke_bytes"] += nbytes
    k.tick_text_poke(k.costs.text_poke + k.costs.memcpy_byte * nbytes)


def chunks(addr: int, nbytes: int) -> int:
    """Number of ``__text_poke()`` calls ``text_poke_copy(addr, .., nbytes)``
    makes: a first chunk up to the end of the page after ``addr``'s, then
    whole ``2 * PAGE_SIZE`` chunks from a page boundary."""
    if nbytes <= 0:
        return 0
    first = min(2 * PAGE_SIZE - addr % PAGE_SIZE, nbytes)
    return 1 + -(-(nbytes - first) // (2 * PAGE_SIZE))


def text_poke(k: "Kernel", addr: int, nbytes: int) -> None:
    """One ``text_poke()`` (at most two pages)."""
    if nbytes <= 0:
        return
    if (addr % PAGE_SIZE) + nbytes > 2 * PAGE_SIZE:
        raise KernelBug("text_poke() spans more than two pages")
    _check_mapped(k, addr, nbytes)
    _poke(k, nbytes)


def text_poke_copy(k: "Kernel", addr: int, nbytes: int) -> None:
    """``text_poke_copy()`` / ``text_poke_set()``: chunked ``__text_poke``.

    The chunks are accounted in one step (:func:`chunks` of them, ``nbytes``
    in all): the same counters and clock as one ``_poke`` per chunk, since
    nothing changes permissions between them, in time bounded by neither
    the size nor the chunk count."""
    if nbytes <= 0:
        return
    _check_mapped(k, addr, nbytes)
    n = chunks(addr, nbytes)
    c = k.counters
    c["text_pokes"] += n
    c[k.poke_counter()] += n
    c["text_poke_bytes"] += nbytes
    k.tick_text_poke(n * k.costs.text_poke + k.costs.memcpy_byte * nbytes)


def text_poke_set(k: "Kernel", addr: int, nbytes: int) -> None:
    """``text_poke_set()``: the same chunking as ``text_poke_copy()``, memset."""
    text_poke_copy(k, addr, nbytes)


def text_poke_sync(k: "Kernel") -> None:
    k.counters["text_poke_syncs"] += 1
    k.counters["sync_core_ipis"] += 1
    k.tick(k.costs.text_poke_sync)


def text_poke_bp(k: "Kernel", addr: int, nbytes: int) -> None:
    """``text_poke_bp()`` on one site of ``nbytes`` (1..32) bytes."""
    _check_mapped(k, addr, nbytes)
    k.counters["text_poke_bp"] += 1
    _poke(k, 1)                 # INT3 over the first byte
    text_poke_sync(k)
    if nbytes > 1:
        _poke(k, nbytes - 1)    # the tail
        text_poke_sync(k)
    _poke(k, 1)                 # the new first byte
    text_poke_sync(k)
