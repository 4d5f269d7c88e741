"""Module PLTs on arm64: which branches a placement puts out of range.

arch/arm64/kernel/module.c ``apply_relocate_add()`` (6.1, 6.12, 7.2):
``R_AARCH64_CALL26``/``R_AARCH64_JUMP26`` are 26-bit word offsets, so a
branch reaches ``[-128 MiB, +128 MiB)``; on ``-ERANGE`` the loader takes a
veneer from ``module_emit_plt_entry()`` (arch/arm64/kernel/module-plts.c:
a 12-byte ``struct plt_entry`` -- adrp, add, br -- reusing the previous one
when it has the same target).  The PLT *space* is reserved at load whatever
the placement: ``module_frob_arch_sections()`` sizes ``.plt`` /
``.init.plt`` to ``(count_plts() + 1) * 12`` bytes, and the architecture's
module table (workloads/archsizes.py) already carries those sizes in the
text columns.  What the placement decides is how many entries are
*written*: one per counted branch that ends up out of range.

The module table gives per module (``count_plts()`` of its core and init
text): ``plt_core`` / ``plt_init`` candidates, of which ``plt_*_ext`` target
undefined symbols (the kernel or another module) and, where the table has
them, ``plt_*_kernel`` target a symbol no module exports (vmlinux).  Where
each target lies is modelled, and stated as such:

* kernel targets: uniform over the kernel text ``[_stext, _etext)``;
* targets in other modules (``ext - kernel``; all of ``ext`` counts as
  kernel when the table has no ``*_kernel`` columns): uniform over the span
  of the module text live at the time of the load (none live: kernel text);
* the module's own other sections (``plt - ext``): core text targets core
  text (one allocation, always in range), init text targets core text (a
  separate allocation: in range or not by distance).

A branch's own place is taken at the middle of its text area.  The count of
entries written is ``round(candidates * out-of-range share of the target
span)`` (``plt_entries``); ``plt_candidates`` counts what ``count_plts()``
reserved and ``plt_bytes_reserved`` the ``.plt``/``.init.plt`` bytes.  A
module the table does not know counts in ``plt_info_missing`` and takes no
entries.  Not modelled: erratum 843419 veneers (only Cortex-A53 r0p0-r0p4).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..machine import Kernel

#: the reach of a 26-bit word offset: [-2^27, 2^27) bytes
BRANCH_REACH = 1 << 27
PLT_ENTRY_SIZE = 12          # struct plt_entry: adrp x16; add x16; br x16


def out_of_range(src: tuple[int, int], tgt: tuple[int, int], count: int) -> int:
    """Of ``count`` branches from the middle of ``src = (addr, bytes)`` to
    targets uniform over ``tgt = [lo, hi)``, how many are out of reach
    (rounded half up)."""
    if count <= 0 or tgt[1] <= tgt[0]:
        return 0
    s = src[0] + src[1] // 2
    lo, hi = tgt
    in_lo, in_hi = max(lo, s - BRANCH_REACH), min(hi, s + BRANCH_REACH)
    inside = max(0, in_hi - in_lo)
    out = (hi - lo) - inside
    return (2 * count * out + (hi - lo)) // (2 * (hi - lo))


def _module_span(k: "Kernel", exclude: tuple) -> tuple[int, int] | None:
    lo = hi = None
    for addr, (nbytes, user, _) in k.text_regions.items():
        if user != "module" or addr in exclude:
            continue
        lo = addr if lo is None or addr < lo else lo
        end = addr + nbytes
        hi = end if hi is None or end > hi else hi
    return None if lo is None else (lo, hi)


def module_relocate(k: "Kernel", name: str, text, init_text) -> None:
    info = k.module_arch_info.get(name)
    c = k.counters
    if info is None:
        c["plt_info_missing"] += 1
        return
    lay = k.layout
    kernel = (lay.stext, lay.etext)
    own = tuple(a for a in (text, init_text) if a)
    mods = _module_span(k, tuple(a[0] for a in own)) or kernel
    entries = candidates = reserved = 0
    for area, part in ((text, "core"), (init_text, "init")):
        if area is None:
            continue
        n = int(info.get(f"plt_{part}", 0))
        ext = int(info.get(f"plt_{part}_ext", 0))
        kern = int(info.get(f"plt_{part}_kernel", ext))
        candidates += n
        reserved += (n + 1) * PLT_ENTRY_SIZE
        entries += out_of_range(area, kernel, kern)
        entries += out_of_range(area, mods, ext - kern)
        if part == "init" and text is not None:
            entries += out_of_range(area, (text[0], text[0] + max(text[1], 1)), n - ext)
    c["plt_candidates"] += candidates
    c["plt_bytes_reserved"] += reserved
    c["plt_entries"] += entries
