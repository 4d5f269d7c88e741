"""Text patching on arm64 (arch/arm64/kernel/patching.c), behind the kernel's
generic ``text_poke*`` calls.

What each generic call is on arm64 (read in 6.1.176 and 6.12.117):

* ``text_poke(addr, n)`` and ``text_poke_bp(addr, n)`` --
  ``aarch64_insn_patch_text_nosync()`` once per 4-byte instruction
  (``AARCH64_INSN_SIZE``): ``aarch64_insn_write()`` maps the page at the
  ``FIX_TEXT_POKE0`` fixmap slot (``patch_map()``: ``vmalloc_to_page()`` for
  module/vmalloc text with ``STRICT_MODULE_RWX``/``EXECMEM``), copies 4
  bytes, unmaps it (``patch_unmap()`` = ``clear_fixmap()``: one
  ``flush_tlb_kernel_range()`` of one page), then
  ``caches_clean_inval_pou()`` of the 4 bytes -- no IPI, no stop_machine.
  That is how arm64 patches a live site (jump labels
  ``arch_jump_label_transform()``, ftrace ``ftrace_modify_code()``) and how
  it writes a kprobe slot (``arch_prepare_ss_slot()``: two calls); x86's
  INT3 + three sync IPIs (``text_poke_bp``) has no arm64 counterpart.
* ``text_poke_copy(addr, n)`` / ``text_poke_set(addr, n)`` --
  ``aarch64_insn_copy()`` / ``aarch64_insn_set()`` (from v6.9, 451c3cab9a65
  "arm64: patching: implement text_poke API"): ``__text_poke()`` maps, copies
  and unmaps **one page per chunk** (``min(PAGE_SIZE - offset_in_page(ptr),
  len - patched)``; x86 maps two), then ``flush_icache_range()`` of the whole
  range, which ends in ``kick_all_cpus_sync()``: one IPI to every CPU per
  call.  They do not exist before v6.9: a model that calls them on an older
  kernel must say it is an extrapolation (``Kernel.backports``), or it is a
  :class:`~execbench.errors.KernelBug`.
* ``text_poke_sync()`` -- ``kick_all_cpus_sync()`` (the IPI of
  ``flush_icache_range()``), counted in ``sync_core_ipis`` (the serialising
  IPI after a text change, x86's ``text_poke_sync()``) and ``icache_sync_ipis``.

Every fixmap write counts as one ``text_pokes`` (by source, as on x86),
``fixmap_pokes``, and its ``clear_fixmap()`` TLBI as one ``tlb_shootdowns``
of cause ``fixmap`` (a broadcast one-page TLBI, :mod:`.arm64_tlb`).
All of it runs under the ``patch_lock`` raw spinlock (the caller's
``Kernel`` wraps each call in it).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ...errors import KernelBug
from ..text_poke import _check_mapped
from . import arm64_tlb

if TYPE_CHECKING:
    from ..machine import Kernel

AARCH64_INSN_SIZE = 4
PAGE = 4096


def _insns(nbytes: int) -> int:
    return -(-nbytes // AARCH64_INSN_SIZE)


def _fixmap_writes(k: "Kernel", count: int, nbytes: int) -> None:
    """``count`` map/copy/unmap rounds through ``FIX_TEXT_POKE0`` writing ``nbytes`` in all."""
    c = k.counters
    c["text_pokes"] += count
    c[k.poke_counter()] += count
    c["text_poke_bytes"] += nbytes
    c["fixmap_pokes"] += count
    arm64_tlb.flush_tlb_kernel_range(k, 1, "fixmap", count=count)
    k.tick_text_poke(count * k.costs.text_poke + k.costs.memcpy_byte * nbytes)


def _need_text_copy(k: "Kernel", what: str) -> None:
    if k.version >= (6, 9):
        return
    if "aarch64_insn_copy" in k.backports:
        k.counters["arm64_backported_calls"] += 1
        return
    raise KernelBug(f"{what}: aarch64_insn_copy()/aarch64_insn_set() exist from v6.9, "
                    f"this kernel is {k.version[0]}.{k.version[1]}")


def text_poke(k: "Kernel", addr: int, nbytes: int) -> None:
    """``aarch64_insn_patch_text_nosync()`` per instruction of ``[addr, +n)``."""
    if nbytes <= 0:
        return
    _check_mapped(k, addr, nbytes)
    _fixmap_writes(k, _insns(nbytes), nbytes)


def text_poke_bp(k: "Kernel", addr: int, nbytes: int) -> None:
    """A live site: ``aarch64_insn_patch_text_nosync()`` of its instruction(s)."""
    text_poke(k, addr, nbytes)


def chunks(addr: int, nbytes: int) -> int:
    """``__text_poke()`` rounds for ``[addr, +nbytes)``: one page each."""
    if nbytes <= 0:
        return 0
    first = min(PAGE - addr % PAGE, nbytes)
    return 1 + -(-(nbytes - first) // PAGE)


def text_poke_copy(k: "Kernel", addr: int, nbytes: int) -> None:
    """``aarch64_insn_copy()``: page chunks through the fixmap, then one IPI."""
    if nbytes <= 0:
        return
    _need_text_copy(k, "aarch64_insn_copy")
    _check_mapped(k, addr, nbytes)
    _fixmap_writes(k, chunks(addr, nbytes), nbytes)
    text_poke_sync(k)


def text_poke_set(k: "Kernel", addr: int, nbytes: int) -> None:
    """``aarch64_insn_set()``: the same rounds as ``aarch64_insn_copy()``."""
    if nbytes <= 0:
        return
    _need_text_copy(k, "aarch64_insn_set")
    _check_mapped(k, addr, nbytes)
    _fixmap_writes(k, chunks(addr, nbytes), nbytes)
    text_poke_sync(k)


def text_poke_sync(k: "Kernel") -> None:
    """``kick_all_cpus_sync()``: one IPI to every CPU."""
    c = k.counters
    c["sync_core_ipis"] += 1
    c["icache_sync_ipis"] += 1
    k.tick(k.costs.text_poke_sync)


def text_poke_repeat(k: "Kernel", addr: int, span: int, nbytes: int, count: int) -> None:
    """``count`` writes of ``nbytes`` each inside ``[addr, +span)``, one fixmap
    round each: an instruction (``aarch64_insn_patch_text_nosync()``), or an
    8-byte literal or table entry (``aarch64_insn_write_literal_u64()``)."""
    if count <= 0 or nbytes <= 0:
        return
    if nbytes > PAGE or nbytes > span:
        raise KernelBug(f"text_poke_repeat: {nbytes}-byte writes into a {span}-byte range")
    _check_mapped(k, addr, span)
    with k.locks.hold("patch_lock"), k.locks.page_update(addr, span):
        _fixmap_writes(k, count, count * nbytes)


def text_poke_sync_repeat(k: "Kernel", count: int) -> None:
    if count <= 0:
        return
    with k.locks.hold("patch_lock"):
        c = k.counters
        c["sync_core_ipis"] += count
        c["icache_sync_ipis"] += count
        k.tick(count * k.costs.text_poke_sync)
