"""What the module loader writes into a module after allocating it, item by
item, and the loader strategies that decide how those writes are made.

The trace gives per-module counts (docs/trace-schema.md): relocation entries
and SHT_RELA sections into text/rodata, alternatives-type sites, ORC and
mcount table entries.  :func:`load_items` turns them into write batches --
(source, mod_mem_type, bytes per item, items) -- in the order
``load_module()`` makes them (kernel/module/main.c, v6.4):

1. ``apply_relocations()``: one write per relocation entry (``reloc``);
2. ``post_relocation()`` -> ``module_finalize()`` (arch/x86/kernel/module.c):
   ``apply_alternatives/retpolines/returns/paravirt`` and the ENDBR/CFI
   rewrites, one write per site (``alternatives``), then
   ``unwind_module_init()`` sorts ``.orc_unwind_ip`` with ``orc_sort_swap()``:
   per swap two 4-byte ip entries and two 6-byte ``struct orc_entry``
   (``orc_sort``);
3. ``ftrace_module_init()`` -> ``ftrace_process_locs()``: ``sort()`` of
   ``__mcount_loc`` (per swap two 8-byte entries, ``mcount_sort``), then
   ``ftrace_update_code()`` -> ``ftrace_nop_initialize()`` ->
   ``ftrace_init_nop()`` -> ``ftrace_make_nop(mod, rec, MCOUNT_ADDR)`` ->
   ``ftrace_modify_code_direct()``: the 5-byte ``call __fentry__`` becomes a
   5-byte NOP (``ftrace_init``), once per ``__mcount_loc`` entry.

Why (3) is a write at all, checked rather than assumed: x86 does not select
``HAVE_NOP_MCOUNT`` (only s390 does, arch/*/Kconfig v6.1), so with GCC
``CONFIG_FTRACE_MCOUNT_USE_CC=y`` (Debian 6.1: "gcc-12", ``FTRACE_MCOUNT_USE_CC=y``
in its config) the Makefile adds ``-mrecord-mcount`` but neither
``-mnop-mcount`` nor ``-DCC_USING_NOP_MCOUNT``; ``ftrace_need_init_nop()`` is
then true (include/linux/ftrace.h) and every site is converted at load.  A
Debian module's text indeed holds ``e8 00 00 00 00`` with an
``R_X86_64_PLT32 __fentry__`` relocation at each ``__mcount_loc`` entry.  The
conversion is ``text_poke_early()`` (a plain store) in v6.1, v6.12 and 7.2;
Song Liu's v1 "[PATCH 3/3]" (20230526051529.3387103-4-song@kernel.org) makes
it ``text_poke()`` under ``text_mutex``; v6.13's ROX series did the same for
module sites (9bfc4824fd48 and 20241124140705.2883-1-rppt@kernel.org).

Where in a module each item lands is not in the trace; it decides only
which pages a write touches:

* relocation section *i* targets the *i*-th present type of
  :data:`RELOC_TARGETS` (round robin);  the shares are computed in closed
  form, so a row with millions of sections costs no Python loop;
* alternatives sites and ``__fentry__`` sites lie in text (else init text);
* the ORC and mcount tables lie in rodata (else init rodata) -- both are
  SHF_ALLOC, non-writable sections that ``layout_sections()`` puts in
  MOD_RODATA.

Item sizes: relocations 4 bytes (R_X86_64_PC32/PLT32, the bulk of text
relocations; R_X86_64_64 would be 8); alternatives sites 5 bytes (a
``call``/``jmp rel32``, the retpoline/return-thunk site length); ``__fentry__``
sites MCOUNT_INSN_SIZE = 5.

Loader strategies (the design parameter ``loader``; docs/kernel-semantics.md):

* ``inplace`` -- every write after allocation goes through the design's
  write path for memory that is not writable (Song Liu's v1 as posted: one
  ``text_poke`` per item);
* ``staged`` -- the image (text and rodata, with relocations, alternatives,
  the ORC and mcount sorts and the ``__fentry__`` conversion) is built in a
  writable copy and written with one fill/update per area just before
  ``complete_formation()``; what the kernel did for the ROX cache in Mike
  Rapoport's series (v6.13 ``module_writable_address()`` +
  ``execmem_update_copy()``), except that v6.13 published the copy in
  ``module_post_finalize()``, before ``ftrace_module_init()``, and so still
  converted each ``__fentry__`` site with one ``text_poke`` (modelled in
  ``execmem_rox`` version 6.13, not here);
* ``temp_rw`` -- v6.15+: the module's own text pages are made RW+NX for
  the load (``execmem_make_temp_rw()``), written with plain stores and
  restored ROX (``execmem_restore_rox()``);
* ``rw`` -- module memory is RW+NX until ``complete_formation()`` and every
  write is a plain store (v6.1 ``module_alloc()``, v6.10 ``execmem``).
"""
from __future__ import annotations

from dataclasses import dataclass

from execbench.errors import DesignError
from execbench.trace import Event

from .sort_swaps import heapsort_swaps

LOADERS = ("inplace", "staged", "temp_rw", "rw")

RELOC_BYTES = 4            # R_X86_64_PC32 / PLT32 write (__write_relocate_add)
ALT_SITE_BYTES = 5         # call/jmp rel32 site (apply_retpolines/apply_returns)
ORC_IP_BYTES = 4           # int .orc_unwind_ip entry
ORC_ENTRY_BYTES = 6        # struct orc_entry (arch/x86/include/asm/orc_types.h, __packed)
MCOUNT_LOC_BYTES = 8       # unsigned long __mcount_loc entry
MCOUNT_INSN_SIZE = 5       # arch/x86/include/asm/ftrace.h: the call __fentry__ / 5-byte NOP

@dataclass(frozen=True)
class ItemSizes:
    """Bytes one loader item writes, per architecture."""

    reloc: int = RELOC_BYTES
    alt_site: int = ALT_SITE_BYTES
    mcount_loc: int = MCOUNT_LOC_BYTES
    #: the ftrace call-site conversion at load: one write per site of each size
    ftrace_init: tuple[int, ...] = (MCOUNT_INSN_SIZE,)


X86_ITEMS = ItemSizes()
#: arm64 (arch/arm64/kernel/module.c, alternative.c, ftrace.c; 6.1, 6.12): a
#: relocation patches one 4-byte instruction field (``reloc_insn_imm()``) or a
#: 4-byte PREL32; an alternatives site is one 4-byte instruction
#: (``__apply_alternatives()``); ``ftrace_init_nop()`` writes ``mov x9, x30``
#: (4 bytes) per ``__patchable_function_entries`` site with
#: ``aarch64_insn_patch_text_nosync()``, and with
#: ``DYNAMIC_FTRACE_WITH_CALL_OPS`` (baaf553d3bc3, v6.3; Debian 6.12 and 7.2
#: enable it) first the 8-byte ops literal before the function
#: (``ftrace_rec_set_nop_ops()`` -> ``aarch64_insn_write_literal_u64()``).
ARM64_ITEMS = ItemSizes(reloc=4, alt_site=4, mcount_loc=8, ftrace_init=(4,))
ARM64_ITEMS_CALL_OPS = ItemSizes(reloc=4, alt_site=4, mcount_loc=8, ftrace_init=(8, 4))


def item_sizes(k) -> ItemSizes:
    """The item sizes of the kernel ``k`` models (its architecture and release)."""
    if k.arch.name != "arm64":
        return X86_ITEMS
    return ARM64_ITEMS_CALL_OPS if k.version >= (6, 3) else ARM64_ITEMS


RELOC_TARGETS = ("text", "rodata", "init_text", "init_rodata")
ALT_TARGETS = ("text", "init_text", "rodata", "init_rodata")
SORT_TARGETS = ("rodata", "init_rodata", "text", "init_text")
FENTRY_TARGETS = ("text", "init_text")


@dataclass(frozen=True)
class Batch:
    """``count`` writes of ``nbytes`` each into mod_mem_type ``mtype``."""

    source: str          # text_poke source: reloc, alternatives, orc_sort, ...
    mtype: str
    nbytes: int
    count: int

    @property
    def bytes(self) -> int:
        return self.nbytes * self.count


def check_loader(design: str, loader: str, allowed: tuple[str, ...]) -> str:
    if loader not in allowed:
        raise DesignError(f"{design}: loader={loader!r} is not one of {', '.join(allowed)}")
    return loader


def reloc_shares(relocs: int, nsec: int, targets: list[str]) -> dict[str, tuple[int, int]]:
    """Round robin of ``nsec`` relocation sections over ``targets``, section
    *i* holding ``relocs // nsec`` entries plus one for ``i < relocs % nsec``:
    target -> (entries, sections), in closed form.  Sections ``i = j, j + T,
    ...`` go to target ``j``: ``nsec // T`` of them plus one for ``j < nsec %
    T``; of those, ``r // T`` (+1 for ``j < r % T``) lie below ``r = relocs %
    nsec`` and carry the extra entry."""
    out: dict[str, tuple[int, int]] = {}
    if not nsec or not targets:
        return out
    t = len(targets)
    base, r = divmod(relocs, nsec)
    for j, name in enumerate(targets):
        secs = nsec // t + (1 if j < nsec % t else 0)
        if not secs:
            continue
        extra = r // t + (1 if j < r % t else 0)
        out[name] = (secs * base + extra, secs)
    return out


def _first(present: set[str], prefs: tuple[str, ...]) -> str | None:
    return next((t for t in prefs if t in present), None)


def load_items(ev: Event, present: set[str], sizes: ItemSizes = X86_ITEMS) -> tuple[list[Batch], int]:
    """The write batches of one module load (in ``load_module()`` order) and
    the number of relocation sections (``apply_relocate_add()`` calls).

    ``present``: the module's non-empty mod_mem_types.  A count with nowhere
    to go (relocations but no text or rodata) is a :class:`DesignError`."""
    out: list[Batch] = []
    relocs = ev.relocs or 0
    nsec = ev.reloc_secs or (1 if relocs else 0)
    targets = [t for t in RELOC_TARGETS if t in present]
    if relocs and not targets:
        raise DesignError(f"module {ev.obj}: {relocs} relocations into text/rodata but no "
                          "text or rodata")
    for t, (n, _) in reloc_shares(relocs, nsec, targets).items():
        if n:
            out.append(Batch("reloc", t, sizes.reloc, n))
    if ev.alt_sites:
        t = _first(present, ALT_TARGETS)
        if t is None:
            raise DesignError(f"module {ev.obj}: {ev.alt_sites} alternatives sites but no text")
        out.append(Batch("alternatives", t, sizes.alt_site, ev.alt_sites))
    ro = _first(present, SORT_TARGETS)
    for n, source, per_swap in ((ev.orc_entries, "orc_sort", ((ORC_IP_BYTES, 2), (ORC_ENTRY_BYTES, 2))),
                                (ev.mcount_locs, "mcount_sort", ((sizes.mcount_loc, 2),))):
        swaps = heapsort_swaps(n or 0)
        if not swaps:
            continue
        if ro is None:
            raise DesignError(f"module {ev.obj}: a table of {n} entries to sort but no rodata")
        for nbytes, calls in per_swap:
            out.append(Batch(source, ro, nbytes, calls * swaps))
    if ev.mcount_locs:
        t = _first(present, FENTRY_TARGETS)
        if t is None:
            raise DesignError(f"module {ev.obj}: {ev.mcount_locs} __fentry__ sites but no text")
        for nbytes in sizes.ftrace_init:
            out.append(Batch("ftrace_init", t, nbytes, ev.mcount_locs))
    return out, nsec


def item_bytes(ev: Event, sizes: ItemSizes = X86_ITEMS, ftrace: bool = True) -> int:
    """Bytes the items of :func:`load_items` write, wherever they land: what
    a loader that makes them as plain stores (``rw``, ``temp_rw``) spends
    on them (time only), without needing to know where they go.
    ``ftrace=False`` leaves out the ftrace call-site conversion (arm64
    writes it through the fixmap: :func:`arm64_rw_items`)."""
    return (sizes.reloc * (ev.relocs or 0) + sizes.alt_site * (ev.alt_sites or 0)
            + 2 * (ORC_IP_BYTES + ORC_ENTRY_BYTES) * heapsort_swaps(ev.orc_entries or 0)
            + 2 * sizes.mcount_loc * heapsort_swaps(ev.mcount_locs or 0)
            + (sum(sizes.ftrace_init) * (ev.mcount_locs or 0) if ftrace else 0))


def rw_items(k, ev: Event, text: tuple[int, int] | None, init_text: tuple[int, int] | None) -> None:
    """The item writes of a loader whose module memory is still RW when it
    makes them (strategy ``rw``: v6.1 ``module_alloc()``, v6.10 ``execmem``).

    x86-64: all plain stores (``text_poke_early()`` for the ``__fentry__``
    NOPs), time only.  arm64: relocations, alternatives and the mcount sort
    are plain stores too, but ``ftrace_init_nop()`` patches each site with
    ``aarch64_insn_patch_text_nosync()`` (and the CALL_OPS literal with
    ``aarch64_insn_write_literal_u64()``), which go through the fixmap even
    into RW module memory (arch/arm64/kernel/patching.c ``patch_map()``:
    ``vmalloc_to_page()`` with STRICT_MODULE_RWX) -- fixmap writes counted
    as ``text_pokes_ftrace_init``, the same in every rw-loader design."""
    sizes = item_sizes(k)
    if k.arch.name != "arm64" or not ev.mcount_locs:
        k.memcpy_elsewhere(item_bytes(ev, sizes))
        return
    k.memcpy_elsewhere(item_bytes(ev, sizes, ftrace=False))
    area = text or init_text
    if area is None:
        raise DesignError(f"module {ev.obj}: {ev.mcount_locs} ftrace sites but no text")
    with k.poke_source("ftrace_init"):
        for nbytes in sizes.ftrace_init:
            k.text_poke_repeat(area[0], max(area[1], nbytes), nbytes, ev.mcount_locs)


def sort_swaps(ev: Event) -> int:
    """Swaps of the ORC and mcount sorts of one module (design counter)."""
    return heapsort_swaps(ev.orc_entries or 0) + heapsort_swaps(ev.mcount_locs or 0)
