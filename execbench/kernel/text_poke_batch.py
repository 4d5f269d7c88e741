"""Many identical small text pokes into one range, accounted in one step.

Song Liu's module_alloc_type v1 (20230526051529.3387103-4-song@kernel.org)
turns every write the module loader makes into read-only memory into a
separate ``text_poke()``/``text_poke_copy()`` (arch/x86/kernel/alternative.c):
one per relocation entry (``__write_relocate_add()``), per alternatives
site (``do_text_poke()``), and 2 or 4 per swap of the ORC and mcount table
sorts (``orc_sort_swap()``, ``ftrace_swap_func()``).  A large module makes
hundreds of thousands of them.  Each is the same ``__text_poke()`` as
:func:`.text_poke.text_poke` (temporary mm, local flush, no IPI), so
accounting ``count`` of them at once gives exactly the counters and clock
the one-by-one loop would, without a Python call per poke:
``text_pokes += count``, ``text_poke_bytes += count * nbytes``, and the
clock advances ``count * (text_poke + memcpy_byte * nbytes)``; W^X exposure
integrates the same because no permission changes between the pokes.

Simplified: the pokes are recorded as one write window over ``[addr,
+span)`` held under one ``text_mutex`` hold (``write_relocate_add()`` does
hold it across a section; the sort swaps take it per call) -- this only
affects the shadow lock timeline of :mod:`.locks`.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import KernelBug
from ..units import PAGE_SIZE
from .text_poke import _check_mapped

if TYPE_CHECKING:
    from .machine import Kernel


def text_poke_repeat(k: "Kernel", addr: int, span: int, nbytes: int, count: int) -> None:
    """``count`` pokes of ``nbytes`` each, all inside ``[addr, addr + span)``."""
    if count <= 0 or nbytes <= 0:
        return
    if nbytes > PAGE_SIZE or nbytes > span:
        raise KernelBug(f"text_poke_repeat: {nbytes}-byte pokes into a {span}-byte range")
    _check_mapped(k, addr, span)
    with k.locks.hold("text_mutex"), k.locks.page_update(addr, span):
        c = k.counters
        c["text_pokes"] += count
        c[k.poke_counter()] += count
        c["text_poke_bytes"] += count * nbytes
        k.tick_text_poke(count * (k.costs.text_poke + k.costs.memcpy_byte * nbytes))


def text_poke_sync_repeat(k: "Kernel", count: int) -> None:
    """``count`` ``text_poke_sync()`` calls (one per relocation section in
    v1's ``write_relocate_add()``), accounted in one step under one
    ``text_mutex`` hold."""
    if count <= 0:
        return
    with k.locks.hold("text_mutex"):
        c = k.counters
        c["text_poke_syncs"] += count
        c["sync_core_ipis"] += count
        k.tick(count * k.costs.text_poke_sync)


def api_repeat(k: "Kernel", entry: str, count: int) -> None:
    """``count`` calls of one API entry point by the current user."""
    if count <= 0:
        return
    k.counters["api_calls"] += count
    k.entry_points.add((k.user, entry))
