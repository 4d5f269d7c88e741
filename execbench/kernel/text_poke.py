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


def _poke(k: "Kernel", nbytes: int) -> None:
    k.counters["text_pokes"] += 1
    k.counters["text_poke_bytes"] += nbytes
    k.tick(k.costs.text_poke + k.costs.memcpy_byte * nbytes)


def chunks(addr: int, nbytes: int) -> int:
    """Number of ``__text_poke()`` calls ``text_poke_copy(addr, .., nbytes)`` makes."""
    n, done = 0, 0
    while done < nbytes:
        s = min(2 * PAGE_SIZE - ((addr + done) % PAGE_SIZE), nbytes - done)
        done += s
        n += 1
    return n


def text_poke(k: "Kernel", addr: int, nbytes: int) -> None:
    """One ``text_poke()`` (at most two pages)."""
    if nbytes <= 0:
        return
    if (addr % PAGE_SIZE) + nbytes > 2 * PAGE_SIZE:
        raise KernelBug("text_poke() spans more than two pages")
    _check_mapped(k, addr, nbytes)
    _poke(k, nbytes)


def text_poke_copy(k: "Kernel", addr: int, nbytes: int) -> None:
    """``text_poke_copy()`` / ``text_poke_set()``: chunked ``__text_poke``."""
    if nbytes <= 0:
        return
    _check_mapped(k, addr, nbytes)
    done = 0
    while done < nbytes:
        s = min(2 * PAGE_SIZE - ((addr + done) % PAGE_SIZE), nbytes - done)
        _poke(k, s)
        done += s


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
