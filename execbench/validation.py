"""Compare a real kernel's ground truth with a replay of the same workload.

Why: a design model is only as good as its agreement with the kernel it claims
to model.  A QEMU recording (``workloads/data/qemu/<name>/``) carries both the
workload trace its users produced and ``truth.csv``, what the real kernel did
(calls, pages, bytes per primitive).  Replaying the trace on the design that
models that kernel (:data:`DESIGN_FOR`) must give the same counts.

Rules, so that the comparison can fail:

* Every row of ``truth.csv`` is either compared (:data:`PAIRS`: which replay
  counters or observed design calls stand for which truth rows) or listed as
  not compared with the reason (:data:`NOT_COMPARED`, or "not in this
  recording" for a pair whose truth rows the kernel has no probe for).  A truth
  row in neither is ``UNCLASSIFIED`` and fails the validation.
* A compared row passes when the replay is within :data:`TOLERANCE` (5 %) of
  the truth plus the *expected difference*.  The only expected differences are
  work the replay does for objects it counts itself and that the real kernel
  made before tracing began (:func:`boot_standins`): the replay starts with no
  ``bpf_prog_pack`` and (7.2) no ROX-cache block, so the first ones it makes
  stand for the boot-time ones that ``/proc/vmallocinfo`` lists but no traced
  allocation made.  The number of such objects comes from the replay's own
  counters; their per-object cost from the kernel source of the version.
  Nothing is derived from the truth value being compared.
* A replay counter a pair names but the replay never bumped reads 0, so a
  misnamed counter fails its row instead of vanishing.

The design calls that no kernel counter records (``execmem_alloc`` by type,
``execmem_free``, ``text_poke_copy`` ...) and the allocation sizes of each
module load are observed by wrapping the design's API object for the replay
(:class:`Observer`, through ``replay.run(observe=...)``); the wrappers count and
pass every call through unchanged.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import re
import sys
import tomllib
from collections import Counter
from typing import Any

import numpy as np
import pandas as pd

from .units import GiB

#: design (and parameters) that models each recorded kernel series
DESIGN_FOR: dict[str, tuple[str, dict[str, Any]]] = {
    "6.1": ("legacy", {}),
    "6.12": ("execmem", {}),
    "7.2": ("execmem_rox", {"version": (7, 2)}),
}
#: the recorded machine: the QEMU guest has 2 GiB (workloads/recorders/qemu/boot.py
#: ``-m 2G``, default ``pc`` machine, SeaBIOS) whose e820 RAM ends at 0x7ffe0000:
#: the 7.2.13 kernel of qemu-7.2-generic, booted with the recorder's QEMU command
#: line (qemu-system-x86 1:7.2+dfsg), prints ``BIOS-e820: [mem
#: 0x0000000000100000-0x000000007ffdffff] System RAM`` and ``[mem
#: 0x000000007ffe0000-0x000000007fffffff] device reserved`` (SeaBIOS
#: ``malloc_preinit()`` keeps the top of RAM for its tables).  So the second GiB
#: is not a 1 GiB leaf of the direct map (kernel/physmem.py).  Only the
#: direct-map rows depend on this.
MACHINE: dict[str, Any] = {"mem_bytes": 2 * GiB, "ram_end": 0x7FFE0000}
#: what the recorded kernel's own page allocation adds to :data:`MACHINE`: 7.2's
#: ``vm_area_alloc_pages()`` takes large-order blocks first and ``vfree()`` gives
#: contiguous runs back as blocks (mm/vmalloc.c, mm/page_alloc.c
#: ``free_pages_bulk()``; not in 6.12.117), which decides where module memory
#: lands (kernel/physmem.py ``alloc_vmalloc_pages``/``free_vmalloc_pages``)
MACHINE_FOR: dict[str, dict[str, Any]] = {"6.1": {}, "6.12": {}, "7.2": {"vmalloc_large_order": True}}

TOLERANCE = 0.05
PAGE = 4096
PACK_PAGES = 512        # BPF_PROG_PACK_SIZE / PAGE_SIZE on x86-64 (kernel/bpf/core.c)
BLOCK_PAGES = 512       # round_up(size, PMD_SIZE) / PAGE_SIZE (mm/execmem.c, 7.2)
#: causes of direct-map changes, as workloads/recorders/qemu/dmap.py CAUSES
DMAP_CAUSES = ("set_memory_ro", "set_memory_rox", "set_memory_rw", "vm_reset_perms", "other")
EXECMEM_TYPES = ("module_text", "kprobes", "ftrace", "bpf", "module_data")


@dataclasses.dataclass(frozen=True)
class Pair:
    """One comparison: sum of ``model`` values vs. sum of ``truth`` rows
    (a truth name starting with ``-`` is subtracted)."""

    name: str
    model: tuple[str, ...]
    truth: tuple[str, ...]
    what: str


def _p(name: str, model, truth, what: str) -> Pair:
    return Pair(name, tuple([model] if isinstance(model, str) else model),
                tuple([truth] if isinstance(truth, str) else truth), what)


_CPA = tuple(
    p for k in ("ro", "rw", "x", "nx", "rox") for p in (
        _p(f"cpa_calls_{k}", f"cpa_calls_{k}", f"cpa_calls_{k}", f"set_memory_{k} calls in the module range"),
        _p(f"cpa_pages_{k}", f"cpa_pages_{k}", f"cpa_pages_{k}", f"set_memory_{k} numpages summed"),
    ))
_EXECMEM_BY_TYPE = tuple(
    p for t in EXECMEM_TYPES for p in (
        _p(f"execmem_alloc_calls_{t}", (f"seen:execmem_alloc:{t}", f"seen:execmem_alloc_rw:{t}"),
           f"execmem_alloc_calls_{t}", f"execmem_alloc(EXECMEM_{t.upper()}) (execmem_alloc_rw calls it)"),
        _p(f"execmem_alloc_bytes_{t}", (f"bytes:execmem_alloc:{t}", f"bytes:execmem_alloc_rw:{t}"),
           f"execmem_alloc_bytes_{t}", "size argument summed"),
        _p(f"execmem_alloc_rw_calls_{t}", f"seen:execmem_alloc_rw:{t}", f"execmem_alloc_rw_calls_{t}",
           f"execmem_alloc_rw(EXECMEM_{t.upper()})"),
    ))

#: replay side -> truth side.  ``seen:``/``bytes:``/``kernel:``/``kernel_bytes:`` values
#: are calls observed during the replay (:class:`Observer`); the rest are the
#: replay's counters.
PAIRS: tuple[Pair, ...] = (
    _p("vmalloc_calls", "vmalloc_calls", "vmalloc_calls", "__vmalloc_node_range in the module range"),
    _p("vmalloc_bytes", "vmalloc_bytes", "vmalloc_bytes_page_aligned", "PAGE_ALIGN(size) summed"),
    _p("vfree_calls", "vfree_calls", "vfree_calls", "vfree of a module-range address"),
    _p("set_direct_map_invalid_noflush", "seen:vfree_reset_perms_pages", "set_direct_map_invalid_noflush",
       "one per page of a VM_FLUSH_RESET_PERMS area at vfree (vm_reset_perms)"),
    _p("module_alloc_calls", "seen:module_alloc", "module_alloc_calls", "module_alloc calls"),
    _p("module_alloc_bytes", "bytes:module_alloc", "module_alloc_bytes", "module_alloc size summed"),
    _p("module_memfree_calls", "calls:module_memfree", "module_memfree_calls",
       "module_memfree calls, NULL included (Observer.values)"),
    _p("module_memfree_calls_nonnull", "nonnull:module_memfree", "module_memfree_calls_nonnull",
       "module_memfree of an address"),
    _p("execmem_alloc_calls", ("seen:execmem_alloc", "seen:execmem_alloc_rw"), "execmem_alloc_calls",
       "execmem_alloc calls, the ones inside execmem_alloc_rw included"),
    _p("execmem_alloc_bytes", ("bytes:execmem_alloc", "bytes:execmem_alloc_rw"), "execmem_alloc_bytes",
       "execmem_alloc size summed"),
    *_EXECMEM_BY_TYPE,
    _p("execmem_alloc_rw_calls", "seen:execmem_alloc_rw", "execmem_alloc_rw_calls", "execmem_alloc_rw calls"),
    _p("execmem_free_calls", "calls:execmem_free", "execmem_free_calls",
       "execmem_free calls, NULL included (Observer.values)"),
    _p("execmem_free_calls_nonnull", "nonnull:execmem_free", "execmem_free_calls_nonnull",
       "execmem_free of an address"),
    _p("execmem_restore_rox_calls", "seen:execmem_restore_rox", "execmem_restore_rox_calls",
       "execmem_restore_rox calls"),
    _p("execmem_cache_blocks", "execmem_cache_blocks_new", "execmem_cache_blocks",
       "2 MiB ROX-cache blocks mapped (VM_ALLOW_HUGE_VMAP vmallocs)"),
    _p("execmem_cache_block_bytes", "bytes:cache_block", "execmem_cache_block_bytes", "their sizes"),
    _p("set_direct_map_valid_noflush_calls", ("direct_map_valid_calls", "direct_map_invalid_calls"),
       "set_direct_map_valid_noflush_calls", "set_direct_map_valid_noflush calls"),
    _p("set_direct_map_valid_noflush_pages", ("direct_map_valid_pages", "direct_map_invalid_pages"),
       "set_direct_map_valid_noflush_pages", "their nr"),
    _p("cpa_calls", "cpa_calls", "cpa_calls", "set_memory_{ro,rw,x,nx,rox} calls"),
    _p("cpa_pages", "cpa_pages_req", "cpa_pages", "their numpages summed"),
    *_CPA,
    _p("text_pokes", "text_pokes", "text_pokes_module_range", "__text_poke into the module range"),
    _p("text_poke_bytes", "text_poke_bytes", "text_poke_bytes_module_range", "their len summed"),
    _p("text_poke_sites", "text_poke_bp",
       ("text_poke_bp_calls_module_range", "text_poke_queue_calls_module_range",
        "text_poke_calls_module_range", "-text_poke_calls_insn_pages"),
       "patched sites in module text: text_poke_bp + text_poke_queue (7.2: smp_text_poke_batch_add, "
       "which smp_text_poke_single calls) + plain text_poke outside the insn pages (kprobes armed "
       "on module functions), each of which the trace records as a patch event"),
    _p("text_poke_calls", "kernel:text_poke", "text_poke_calls_insn_pages",
       "text_poke into kprobe insn pages (the slot copies)"),
    _p("text_poke_slot_bytes", "kernel_bytes:text_poke", "text_poke_bytes_insn_pages", "their len summed"),
    _p("text_poke_copy_calls", "kernel:text_poke_copy", "text_poke_copy_calls_module_range",
       "text_poke_copy (BPF images into the pack)"),
    _p("text_poke_copy_bytes", "kernel_bytes:text_poke_copy", "text_poke_copy_bytes", "their len summed"),
    _p("text_poke_set_calls", "kernel:text_poke_set", "text_poke_set_calls_module_range",
       "text_poke_set (freed BPF images)"),
    _p("text_poke_set_bytes", "kernel_bytes:text_poke_set", "text_poke_set_bytes", "their len summed"),
    _p("bpf_prog_pack_new", "bpf_prog_pack_new", "bpf_prog_pack_new", "2 MiB packs allocated"),
    _p("insn_pages_new", ("kprobe_insn_pages_new", "kprobe_optinsn_pages_new"), "insn_pages_new",
       "kprobe insn pages allocated (both caches)"),
    _p("vmap_areas", "vmap_areas", ("vmap_areas", "-vmap_areas_untraced"),
       "areas live at the end that were made while tracing"),
    _p("vmap_area_bytes", "seen:live_area_bytes", ("vmap_area_bytes", "-vmap_area_bytes_untraced"),
       "their sizes with the guard page"),
    *(_p(f"direct_map_pages_changed_{c}", f"dmap:direct_map_pages_changed_{c}",
         f"direct_map_pages_changed_{c}",
         f"direct-map pages whose attributes {c} changed (RW/PRESENT flips, alias included)")
      for c in DMAP_CAUSES),
    _p("direct_map_splits_2m", "direct_map_level2_splits", "direct_map_level2_splits",
       "2 MiB direct-map leaves split (/proc/vmstat)"),
    _p("direct_map_splits_1g", "direct_map_level3_splits", "direct_map_level3_splits",
       "1 GiB direct-map leaves split (/proc/vmstat)"),
    _p("direct_map_collapses", (), ("direct_map_level2_collapses", "direct_map_level3_collapses"),
       "direct-map leaves re-formed: the model never collapses the direct map, as x86 "
       "cpa_collapse_large_pages() works on the CPA's own (vmalloc) addresses"),
)

#: truth rows that are not compared, by regular expression, with the reason
NOT_COMPARED: tuple[tuple[str, str], ...] = (
    (r"(module_alloc|execmem_alloc|execmem_alloc_rw)_calls_from_.+",
     "split of a compared call count by the owner frame of the stack"),
    (r"vmalloc_bytes", "the size argument before PAGE_ALIGN; vmalloc_bytes_page_aligned is compared"),
    (r"vmalloc_pages", "vmalloc_bytes_page_aligned / 4096, which is compared"),
    (r"cpa_calls_(ro|rw|x|nx|rox)_zero_pages",
     "part of cpa_calls_<kind>, which is compared (the model makes the same 0-page calls)"),
    (r"cpa_calls_(ro|rw|x|nx|rox)_outside",
     "set_memory_* outside the module range (direct map, vmlinux): not executable memory of a user"),
    (r"text_pokes|text_poke_bytes|text_poke(_bp|_queue|_copy|_set)?_calls",
     "any address, so also vmlinux text (ftrace and kprobes on built-in functions, which no "
     "trace event asks for); the module-range row is compared"),
    (r"text_poke_bp_batch(_sites)?",
     "INT3 batches over any address; the trace does not say which patches the kernel batched, "
     "the sites are compared (text_poke_sites)"),
    (r"smp_text_poke_single_calls(_module_range)?|smp_text_poke_batch_finish_calls",
     "single or batched: the trace's patch event does not say which the kernel used; every "
     "patched site is compared (text_poke_sites = smp_text_poke_batch_add, which "
     "smp_text_poke_single calls too)"),
    (r"bpf_prog_pack_alloc_bytes",
     "the packs' chunk sizes; every chunk is filled with one text_poke_copy of its whole size, "
     "compared as text_poke_copy_bytes"),
    (r"bpf_prog_pack_alloc_calls|bpf_prog_pack_free_calls|bpf_jit_binary_pack_alloc_(calls|bytes)"
     r"|insn_slots_.+|insn_slot_frees|module_load_events|module_free_events",
     "the workload itself: the trace's prog_load/prog_unload, kprobe register/optimize/unregister "
     "and module load/unload events are built from these, so a replay repeats them by construction"),
    (r"vmap_areas_(?!untraced).+",
     "vmap_areas split by the caller /proc/vmallocinfo prints (compared in total); on 7.2 areas made "
     "by execmem_alloc under its return probe print arch_rethook_trampoline"),
    (r"direct_map_2m_regions_.+",
     "where the changed direct-map pages lie (2 MiB regions, by the call that changed each first): "
     "they explain direct_map_splits_2m (split causes table), they are placement, not calls"),
    (r"vmap_areas_untraced(_.+)?|vmap_area_bytes_untraced",
     "areas made before tracing: they scope vmap_areas/vmap_area_bytes and show which boot-time "
     "objects a replay's first ones stand for (boot_standins)"),
)


def _covered(metric: str, table=None) -> str | None:
    """Why ``metric`` is not compared: the first pattern of ``table``
    (default :data:`NOT_COMPARED`) that matches it, else None."""
    for pat, why in (NOT_COMPARED if table is None else table):
        if re.fullmatch(pat, metric):
            return why
    return None


# -- what the replay did -------------------------------------------------------------

#: allocation entry points whose type and size are recorded (the module loader, the
#: BPF pack, ftrace and kprobes call them through the API object at call time)
_ALLOCATORS = ("module_alloc", "execmem_alloc", "execmem_alloc_rw")
#: kernel primitives whose calls and bytes are recorded
_POKES = ("text_poke", "text_poke_copy", "text_poke_set")


class Observer:
    """Counts what a design does, without changing it.

    * ``seen:<entry>``: every call into the design's API, from
      :meth:`Kernel.api` (so a bound method a user stored before the replay
      started is counted too);
    * ``seen:<alloc>:<type>`` / ``bytes:<alloc>[:<type>]``: type and size of each
      ``module_alloc``/``execmem_alloc``/``execmem_alloc_rw`` (the API object's
      methods, wrapped; checked against ``seen:<entry>``), and the sizes of each
      module load's allocations in order;
    * ``kernel:text_poke*``/``kernel_bytes:text_poke*``: calls of the kernel primitives;
    * ``seen:vfree_reset_perms_pages``: pages of VM_FLUSH_RESET_PERMS areas at
      vfree (one ``set_direct_map_invalid_noflush`` each in ``vm_reset_perms()``);
    * ``bytes:cache_block``: the ROX cache's 2 MiB vmallocs;
    * ``seen_null:<free>``: free calls with NULL that go through the API
      (``Kernel.free_null``, where the kernel model has it).
    """

    def __init__(self) -> None:
        self.seen: Counter[str] = Counter()
        self.loads: list[tuple[str, list[int]]] = []
        self.kernel = None
        self._load: list[int] | None = None
        #: (address, size) of every allocation a module load made (arm64: which window)
        self.module_areas: list[tuple[int, int]] = []
        self._depth = 0
        #: direct-map changes by the call that made them (dmap_values())
        self._cause = "other"
        self.dm_pages: Counter[str] = Counter()
        self.dm_first: dict[int, str] = {}
        self._first_block = None
        self._standin_rw: set[int] = set()

    def __call__(self, kernel, design) -> None:
        self.kernel = kernel
        apis = {}
        for user in ("module", "bpf", "ftrace", "kprobe"):
            api = getattr(getattr(design, user, None), "api", None)
            if api is not None:
                apis[id(api)] = api
        for api in apis.values():
            for name in _ALLOCATORS:
                if hasattr(api, name):
                    setattr(api, name, self._wrap_alloc(name, getattr(api, name)))
        design.module.load = self._wrap_load(design.module.load)
        entry = kernel.api

        def api_call(name):
            self.seen[f"seen:{name}"] += 1
            return entry(name)
        kernel.api = api_call
        for name in _POKES:
            setattr(kernel, name, self._wrap_poke(name, getattr(kernel, name)))
        kernel.vfree = self._wrap_cause("vm_reset_perms", self._wrap_vfree(kernel, kernel.vfree))
        for kind in ("ro", "rox", "rw", "x", "nx"):
            name = f"set_memory_{kind}"
            if hasattr(kernel, name):
                setattr(kernel, name, self._wrap_cause(name, getattr(kernel, name)))
        split_for = kernel.phys.split_for

        def split_for_seen(frames, whole_2m=False):
            # every direct-map change goes through split_for() with the frames it changes
            self.dm_pages[self._cause] += int(frames.size)
            if self._cause == "set_memory_rw" and self._first_block is not None:
                # only a page's first flip: the guest's boot block was RO before tracing,
                # so a later RO -> RW (after set_memory_rox) is seen there too
                hit = frames[np.isin(frames, self._first_block)].tolist()
                new = set(hit) - self._standin_rw
                self._standin_rw.update(new)
                self.seen["dmap:standin_rw_pages"] += len(new)
            for r in np.unique(frames // 512).tolist():
                self.dm_first.setdefault(r, self._cause)
            return split_for(frames, whole_2m=whole_2m)
        kernel.phys.split_for = split_for_seen
        kernel.vmalloc = self._wrap_vmalloc(kernel.vmalloc)
        unmap = kernel.vm_unmap_aliases

        def vm_unmap_aliases():
            self.seen["seen:vm_unmap_aliases"] += 1
            return unmap()
        kernel.vm_unmap_aliases = vm_unmap_aliases
        if hasattr(kernel, "free_null"):          # a NULL free made through the API
            null = kernel.free_null

            def free_null(entry):
                self.seen[f"seen_null:{entry}"] += 1
                return null(entry)
            kernel.free_null = free_null

    def _wrap_alloc(self, name, fn):
        def call(*args, **kw):
            if self._depth:
                return fn(*args, **kw)
            if name == "module_alloc":
                size = args[0]
            else:
                size = args[1]
                key = f"{name}:{args[0].name.lower()}"
                self.seen[f"typed:{name}"] += 1
                self.seen[f"seen:{key}"] += 1
                self.seen[f"bytes:{key}"] += size
            self.seen[f"bytes:{name}"] += size
            if self._load is not None:
                self._load.append(size)
            self._depth += 1
            try:
                p = fn(*args, **kw)
            finally:
                self._depth -= 1
            if self._load is not None:
                self.module_areas.append((p, size))
            return p
        return call

    def _wrap_poke(self, name, fn):
        def call(addr, nbytes):
            self.seen[f"kernel:{name}"] += 1
            self.seen[f"kernel_bytes:{name}"] += nbytes
            return fn(addr, nbytes)
        return call

    def _wrap_cause(self, cause, fn):
        def call(*args, **kw):
            prev, self._cause = self._cause, cause
            try:
                return fn(*args, **kw)
            finally:
                self._cause = prev
        return call

    def dmap_values(self) -> dict[str, int]:
        """The replay's side of the direct-map split causes (see
        ``workloads/recorders/qemu/dmap.py`` for the recording's): regions
        changed, per cause the pages changed and the regions changed first."""
        out = {"dmap:direct_map_2m_regions_changed": len(self.dm_first)}
        first = Counter(c if c in DMAP_CAUSES else "other" for c in self.dm_first.values())
        pages: Counter[str] = Counter()
        for c, n in self.dm_pages.items():
            pages[c if c in DMAP_CAUSES else "other"] += n
        for c in DMAP_CAUSES:
            out[f"dmap:direct_map_2m_regions_first_{c}"] = first.get(c, 0)
            out[f"dmap:direct_map_pages_changed_{c}"] = pages.get(c, 0)
        return out

    def _wrap_load(self, fn):
        def load(ev):
            self._load = []
            self.loads.append((ev.obj, self._load))
            try:
                return fn(ev)
            finally:
                self._load = None
        return load

    def _wrap_vfree(self, kernel, fn):
        def vfree(addr):
            area = kernel.areas.get(kernel.page_of(addr))
            if area is not None and area.reset_perms:
                self.seen["seen:vfree_reset_perms_pages"] += area.npages
            if area is not None:
                self.seen[f"vfree:{area.caller}"] += 1
            return fn(addr)
        return vfree

    def _wrap_vmalloc(self, fn):
        def vmalloc(size, **kw):
            p = fn(size, **kw)
            self.seen[f"vmalloc:{kw.get('caller')}"] += 1
            self.seen[f"vmalloc_size:{kw.get('caller')}"] += size
            if kw.get("caller") == "execmem_cache_populate":
                self.seen["bytes:cache_block"] += size
                if self._first_block is None:     # the block that stands for the boot-time one
                    lo = self.kernel.page_of(p)
                    self._first_block = self.kernel.pt.pfn[lo:lo + BLOCK_PAGES].copy()
            return p
        return vmalloc

    def values(self, counters: dict[str, int]) -> dict[str, int]:
        """The replay's counters plus the observed calls and the live areas at the end."""
        for name in ("execmem_alloc", "execmem_alloc_rw"):
            if self.seen[f"typed:{name}"] != self.seen[f"seen:{name}"]:
                raise RuntimeError(f"validation observer saw {self.seen[f'seen:{name}']} {name} calls but "
                                   f"typed only {self.seen[f'typed:{name}']}: a caller bypasses the API object")
        out = dict(counters)
        out.update(self.seen)
        # NULL frees: a loader either calls the free function with NULL (an API call,
        # seen_null:<entry>) or counts the call it skips (<entry>_null only)
        for entry in ("module_memfree", "execmem_free"):
            seen, via_api = self.seen[f"seen:{entry}"], self.seen[f"seen_null:{entry}"]
            out[f"nonnull:{entry}"] = seen - via_api
            out[f"calls:{entry}"] = seen + counters.get(f"{entry}_null", 0) - via_api
        out.update(self.dmap_values())
        areas = self.kernel.areas.values()
        out["seen:live_area_bytes"] = sum((a.npages + a.guard) * PAGE for a in areas)
        return out


# -- expected differences ------------------------------------------------------------

def boot_standins(truth: dict[str, int], model: dict[str, int], series: str) -> dict[str, tuple[int, str]]:
    """Pair name -> (expected replay - truth, why), from objects the replay made
    that stand for ones the real kernel made before tracing.

    * ``bpf_prog_pack``: the real kernel's first pack is made at boot (it holds
      boot-time programs and is never freed); ``/proc/vmallocinfo`` lists it but
      no traced allocation made it (``vmap_areas_untraced_bpf_prog_pack_alloc``).
      The replay counts the packs it makes (``bpf_prog_pack_new``) and frees
      (``bpf_prog_pack_freed``).  Per pack made (kernel/bpf/core.c
      ``alloc_new_pack()``): one 2 MiB allocation (6.1 ``module_alloc``, 6.10+
      ``execmem_alloc(EXECMEM_BPF)``), then 6.1 ``set_memory_ro`` +
      ``set_memory_x`` on 512 pages, v6.2+ one ``set_memory_rox`` on 512 pages.
      Per pack freed: one ``module_memfree``/``execmem_free`` -> ``vfree`` with
      VM_FLUSH_RESET_PERMS (512 ``set_direct_map_invalid_noflush``).  Per pack
      still live: one vmap area of 2 MiB + the guard page.
    * 7.2 ROX-cache block: the first block is populated at boot (the boot-time
      ftrace trampoline lives in it; vmallocinfo's
      ``vmap_areas_untraced_execmem_cache_block``).  Per block the replay makes
      (``execmem_cache_blocks_new``; mm/execmem.c ``execmem_cache_populate_alloc()``):
      one 2 MiB ``VM_ALLOW_HUGE_VMAP`` vmalloc, one ``set_memory_rox`` on 512
      pages; per block given back (``execmem_cache_blocks_freed``,
      ``execmem_cache_clean()``): one ``set_direct_map_valid_noflush`` of 512
      pages and one ``vfree`` without VM_FLUSH_RESET_PERMS; per block live: one
      vmap area of 2 MiB + the guard page.
    """
    adj: dict[str, list] = {}

    def add(k: str, d: int, why: str) -> None:
        if d:
            cur = adj.setdefault(k, [0, []])
            cur[0] += d
            if why not in cur[1]:
                cur[1].append(why)

    packs = min(model.get("bpf_prog_pack_new", 0), truth.get("vmap_areas_untraced_bpf_prog_pack_alloc", 0))
    freed = min(model.get("bpf_prog_pack_freed", 0), packs)
    if packs:
        why = (f"the replay's first {packs} bpf_prog_pack stand(s) for the boot-time pack "
               f"({freed} freed by the replay when empty, the boot pack stays)")
        alloc_fn = "module_alloc" if series == "6.1" else "execmem_alloc"
        free_fn = "module_memfree" if series == "6.1" else "execmem_free"
        for k, d in (("vmalloc_calls", packs), ("vmalloc_bytes", packs * PACK_PAGES * PAGE),
                     ("bpf_prog_pack_new", packs), (f"{alloc_fn}_calls", packs),
                     (f"{alloc_fn}_bytes", packs * PACK_PAGES * PAGE)):
            add(k, d, why)
        if series == "6.1":
            cpa = (("cpa_calls", 2 * packs), ("cpa_calls_ro", packs), ("cpa_calls_x", packs),
                   ("cpa_pages", 2 * PACK_PAGES * packs), ("cpa_pages_ro", PACK_PAGES * packs),
                   ("cpa_pages_x", PACK_PAGES * packs))
        else:
            cpa = (("cpa_calls", packs), ("cpa_calls_rox", packs),
                   ("cpa_pages", PACK_PAGES * packs), ("cpa_pages_rox", PACK_PAGES * packs))
        for k, d in cpa:
            add(k, d, why)
        for k, d in (("vfree_calls", freed), (f"{free_fn}_calls", freed), (f"{free_fn}_calls_nonnull", freed),
                     ("set_direct_map_invalid_noflush", PACK_PAGES * freed),
                     # the pack's alias made RO, and invalidated when freed
                     ("direct_map_pages_changed_set_memory_rox", PACK_PAGES * packs),
                     ("direct_map_pages_changed_vm_reset_perms", PACK_PAGES * freed),
                     ("vmap_areas", packs - freed), ("vmap_area_bytes", (packs - freed) * (PACK_PAGES + 1) * PAGE)):
            add(k, d, why)
    blocks = min(model.get("execmem_cache_blocks_new", 0),
                 truth.get("vmap_areas_untraced_execmem_cache_block", 0))
    bfreed = min(model.get("execmem_cache_blocks_freed", 0), blocks)
    if blocks:
        why = (f"the replay's first {blocks} ROX-cache block(s) stand for the one populated at boot "
               f"({bfreed} given back by the replay)")
        for k, d in (("vmalloc_calls", blocks), ("vmalloc_bytes", blocks * BLOCK_PAGES * PAGE),
                     ("execmem_cache_blocks", blocks), ("execmem_cache_block_bytes", blocks * BLOCK_PAGES * PAGE),
                     ("cpa_calls", blocks), ("cpa_calls_rox", blocks), ("cpa_pages", BLOCK_PAGES * blocks),
                     ("cpa_pages_rox", BLOCK_PAGES * blocks), ("vfree_calls", bfreed),
                     # the block's alias made RO at populate; the guest's boot block was RO
                     # before tracing, so its pages' first execmem_force_rw() flips are the
                     # replay's alone (counted by the Observer)
                     ("direct_map_pages_changed_set_memory_rox", BLOCK_PAGES * blocks),
                     ("direct_map_pages_changed_set_memory_rw", model.get("dmap:standin_rw_pages", 0)),
                     ("set_direct_map_valid_noflush_calls", bfreed),
                     ("set_direct_map_valid_noflush_pages", BLOCK_PAGES * bfreed),
                     ("vmap_areas", blocks - bfreed),
                     ("vmap_area_bytes", (blocks - bfreed) * (BLOCK_PAGES + 1) * PAGE)):
            add(k, d, why)
    return {k: (v[0], "; ".join(v[1])) for k, v in adj.items()}


# -- the comparison ------------------------------------------------------------------

def _rel(r: int, t: int) -> float:
    return (r - t) / t if t else (0.0 if r == 0 else float("inf"))


def _pct(x: float) -> float:
    return round(100 * x, 1) if x != float("inf") else float("inf")


def compare(truth: dict[str, int], model: dict[str, int],
            expected: dict[str, tuple[int, str]] | None = None,
            pairs: tuple[Pair, ...] = PAIRS,
            covered=None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(compared rows, truth rows not compared).

    A compared row ``passes`` when ``|replay - (truth + expected)| <= 5 %`` of
    ``truth + expected`` (both 0 counts as equal).  Truth rows used by no
    applicable pair and matched by no :data:`NOT_COMPARED` pattern (``covered``:
    the function that looks a row up, default :data:`NOT_COMPARED`'s) come back
    as ``UNCLASSIFIED`` rows of the first table, which fail."""
    expected = expected or {}
    covered = covered or _covered
    rows, skipped, used = [], [], set()
    for p in pairs:
        names = [t.lstrip("-") for t in p.truth]
        if any(n not in truth for n in names):
            missing = [n for n in names if n not in truth]
            skipped.append({"metric": p.name, "reason": f"not in this recording (no truth row {', '.join(missing)})"})
            continue
        used.update(names)
        t = sum(-int(truth[n[1:]]) if n.startswith("-") else int(truth[n]) for n in p.truth)
        r = sum(int(model.get(m, 0)) for m in p.model)
        delta, why = expected.get(p.name, (0, ""))
        resid = _rel(r, t + delta)
        rows.append({"pair": p.name, "truth": t, "replay": r, "diff_pct": _pct(_rel(r, t)),
                     "expected": delta, "residual_pct": _pct(resid),
                     "passes": abs(resid) <= TOLERANCE, "cause": why})
    for metric in truth:
        if metric in used:
            continue
        why = covered(metric)
        if why is None:
            rows.append({"pair": metric, "truth": int(truth[metric]), "replay": 0, "diff_pct": float("nan"),
                         "expected": 0, "residual_pct": float("nan"), "passes": False,
                         "cause": "UNCLASSIFIED: truth row neither compared nor listed as not compared"})
        else:
            skipped.append({"metric": metric, "reason": why})
    return pd.DataFrame(rows), pd.DataFrame(skipped, columns=["metric", "reason"])


@dataclasses.dataclass
class Validation:
    """One recording replayed on its design and compared with its truth."""

    recording: str
    design: str
    params: dict[str, Any]
    rows: pd.DataFrame            # compared (and UNCLASSIFIED) rows
    not_compared: pd.DataFrame    # metric, reason
    modules: pd.DataFrame         # per module load: real vs replayed allocation sizes
    truth: dict[str, int] = dataclasses.field(default_factory=dict)
    model: dict[str, int] = dataclasses.field(default_factory=dict)
    #: rows outside 5 % whose whole difference has a counted cause (pair -> why)
    explained: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def passes(self) -> bool:
        return self.failed.empty

    @property
    def failed(self) -> pd.DataFrame:
        """Rows outside 5 % with no counted cause."""
        return self.rows[~self.rows["passes"] & ~self.rows["pair"].isin(list(self.explained))]


# -- direct-map splits by cause -----------------------------------------------------

def split_causes(truth: dict[str, int], model: dict[str, int]) -> pd.DataFrame | None:
    """Per cause: the direct-map pages the guest's and the replay's calls
    changed, and the 2 MiB regions each changed first (truth rows from
    ``workloads/recorders/qemu/dmap.py``, replay values from the
    :class:`Observer`); ``None`` for recordings without the ``cpa_set_clr`` probe."""
    if "direct_map_2m_regions_changed" not in truth:
        return None
    rows = [{"cause": c,
             "truth_pages": truth.get(f"direct_map_pages_changed_{c}", 0),
             "replay_pages": model.get(f"dmap:direct_map_pages_changed_{c}", 0),
             "truth_regions": truth.get(f"direct_map_2m_regions_first_{c}", 0),
             "replay_regions": model.get(f"dmap:direct_map_2m_regions_first_{c}", 0)}
            for c in DMAP_CAUSES]
    return pd.DataFrame(rows)


def explain_splits(rows: pd.DataFrame, truth: dict[str, int], model: dict[str, int]) -> dict[str, str]:
    """``direct_map_splits_2m`` outside 5 % is explained when the recording
    says which calls changed which direct-map pages and every
    ``direct_map_pages_changed_<cause>`` row passes: the replay then makes the
    same direct-map changes as the guest, cause by cause, and the splits
    differ only in how many 2 MiB regions those pages lie in -- where the
    page allocator put them, which the split causes table counts."""
    sc = split_causes(truth, model)
    r = rows.set_index("pair") if len(rows) else None
    if sc is None or r is None or "direct_map_splits_2m" not in r.index:
        return {}
    if bool(r.loc["direct_map_splits_2m", "passes"]):
        return {}
    pages = [f"direct_map_pages_changed_{c}" for c in DMAP_CAUSES]
    if not all(p in r.index and bool(r.loc[p, "passes"]) for p in pages):
        return {}
    parts = [f"{x.cause} {int(x.truth_regions)} vs {int(x.replay_regions)}"
             for x in sc.itertuples() if x.truth_regions or x.replay_regions]
    return {"direct_map_splits_2m": (
        "the same direct-map page changes per cause (direct_map_pages_changed_* pass) lie in "
        f"{truth['direct_map_2m_regions_changed']} 2 MiB regions in the guest and "
        f"{model.get('dmap:direct_map_2m_regions_changed', 0)} in the replay (first change, guest vs replay: "
        + ", ".join(parts) + "): frame placement, not calls")}


def series_of(folder: pathlib.Path) -> str:
    name = folder.name
    for s in ("7.2", "6.12", "6.1"):
        if name.startswith(f"qemu-{s}-"):
            return s
    toml = folder / f"{name}.toml"
    if toml.exists():
        cmd = tomllib.loads(toml.read_text())["regenerate"]["command"]
        m = re.search(r"--kernel (\S+)", cmd)
        if m and m.group(1) in DESIGN_FOR:
            return m.group(1)
    raise ValueError(f"{folder}: cannot tell the kernel series of this recording")


def load_truth(folder: str | os.PathLike) -> dict[str, int]:
    t = pd.read_csv(pathlib.Path(folder) / "truth.csv")
    return dict(zip(t["metric"], t["value"].astype(int)))


def validate(recording_dir: str | os.PathLike, design: str | None = None,
             params: dict[str, Any] | None = None, seed: int = 0) -> Validation:
    """Replay a recording's trace on ``design`` (default: the kernel's own) and compare."""
    from execbench.replay import run
    from execbench.trace import load_trace

    from . import validation_arm64 as A

    folder = pathlib.Path(recording_dir)
    series = series_of(folder)
    arm64 = A.is_arm64(folder)
    d0, p0 = (A.DESIGN_FOR if arm64 else DESIGN_FOR)[series]
    design = design or d0
    params = p0 if params is None and design == d0 else (params or {})
    machine = {**A.MACHINE, "version": A.VERSION_FOR[series]} if arm64 else {**MACHINE, **MACHINE_FOR[series]}
    obs = Observer()
    res = run(load_trace(folder / f"{folder.name}.csv.gz"), design=design, seed=seed, params=params,
              machine=machine, observe=obs)
    truth = load_truth(folder)
    model = obs.values(res.counters)
    if arm64:
        truth.update(A.untraced_rows(folder, truth))
        model.update(A.model_values(obs.kernel, obs.module_areas, res.counters))
        rows, skipped = compare(truth, model, A.boot_standins(truth, model, series), A.pairs(truth),
                                lambda m: A.covered(m) or _covered(m))
    else:
        rows, skipped = compare(truth, model, boot_standins(truth, model, series))
    return Validation(folder.name, design, params, rows, skipped,
                      module_sizes(real_module_allocations(folder), obs.loads), truth, model,
                      explain_splits(rows, truth, model))


# -- module allocation sizes ---------------------------------------------------------

def _pa(n: int) -> int:
    return -(-int(n) // PAGE) * PAGE


def real_module_allocations(recording_dir: str | os.PathLike) -> list[tuple[str, list[int]]]:
    """Per module load, in order: the sizes of the real kernel's allocations.

    They are the ``module_alloc`` / ``execmem_alloc`` requests owned by
    ``load_module``, attributed by pid to the ``module:module_load`` that follows
    (an allocation freed by ``load_module`` before that is a failed load and dropped).
    """
    folder = pathlib.Path(recording_dir)
    ev = pd.read_csv(folder / "events.csv.gz", dtype=str, keep_default_na=False)
    v61 = (ev.event == "module_alloc").any()
    alloc_e, free_e = ("module_alloc", "module_memfree") if v61 else ("execmem_alloc", "execmem_free")
    pending: dict[str, list[int]] = {}
    out = []
    for r in ev.itertuples(index=False):
        if r.event == alloc_e and r.caller == "load_module":
            pending.setdefault(r.pid, []).append(int(r.size))
        elif r.event == free_e and r.caller == "load_module":
            pending.pop(r.pid, None)
        elif r.event == "module_load":
            out.append((r.type, pending.pop(r.pid, [])))
    return out


def module_sizes(real: list[tuple[str, list[int]]], replayed: list[tuple[str, list[int]]]) -> pd.DataFrame:
    """Per module load: the page-aligned sizes the real kernel allocated and the
    ones the replay allocated (in allocation order), and whether they are equal."""
    rep: dict[str, list[list[int]]] = {}
    for name, sizes in replayed:
        rep.setdefault(name, []).append([_pa(s) for s in sizes])
    rows = []
    for name, sizes in real:
        got = rep.get(name, [])
        mine = got.pop(0) if got else []
        want = [_pa(s) for s in sizes]
        rows.append({"module": name, "real": want, "replay": mine, "real_bytes": sum(want),
                     "replay_bytes": sum(mine), "exact": want == mine})
    return pd.DataFrame(rows, columns=["module", "real", "replay", "real_bytes", "replay_bytes", "exact"])


# -- report ----------------------------------------------------------------------------

def to_markdown(v: Validation) -> str:
    """The compared rows, the counted causes, what is not compared and why."""
    cols = ["pair", "truth", "replay", "diff_pct", "expected", "residual_pct", "passes"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in v.rows.itertuples(index=False):
        cells = [str(getattr(r, c)) for c in cols]
        if r.pair in v.explained:
            cells[-1] = "explained"
        lines.append("| " + " | ".join(cells) + " |")
    causes = sorted({c for r in v.rows.itertuples(index=False) if r.cause and r.passes
                     for c in r.cause.split("; ")})
    out = "\n".join(lines) + "\n"
    if causes:
        out += "\nExpected differences (counted by the replay):\n\n" + "\n".join(f"- {c}" for c in causes) + "\n"
    sc = split_causes(v.truth, v.model)
    if sc is not None:
        out += ("\nDirect-map changes by the call that made them (guest: the `cpa_set_clr` probe on "
                "`__change_page_attr_set_clr()`, replayed bit by bit; replay: the simulated CPA).  "
                "`pages`: direct-map page attribute flips; `regions`: 2 MiB regions this call changed "
                f"first (guest {v.truth['direct_map_2m_regions_changed']} in all, "
                f"{v.truth.get('direct_map_level2_splits', 0)} split while tracing; replay "
                f"{v.model.get('dmap:direct_map_2m_regions_changed', 0)}, "
                f"{v.model.get('direct_map_level2_splits', 0)} split):\n\n"
                "| cause | guest pages | replay pages | guest regions | replay regions |\n|---|---|---|---|---|\n"
                + "".join(f"| {x.cause} | {x.truth_pages} | {x.replay_pages} | {x.truth_regions} | "
                          f"{x.replay_regions} |\n" for x in sc.itertuples()))
    if v.explained:
        out += "\nOutside 5 %, the whole difference counted:\n\n" + "\n".join(
            f"- `{k}`: {why}" for k, why in v.explained.items()) + "\n"
    if not v.failed.empty:
        out += "\n**Outside 5 % with no counted cause:**\n\n" + "\n".join(
            f"- `{r.pair}`: truth {r.truth}, replay {r.replay} ({r.residual_pct:+} %){': ' + r.cause if r.cause else ''}"
            for r in v.failed.itertuples(index=False)) + "\n"
    if len(v.not_compared):
        out += "\nNot compared:\n\n" + "\n".join(
            f"- `{r.metric}`: {r.reason}" for r in v.not_compared.itertuples(index=False)) + "\n"
    m = v.modules
    if len(m):
        out += (f"\nModule allocation sizes the replay makes vs. the real kernel's (per module load, "
                f"page-aligned, every allocation): {int(m.exact.sum())}/{len(m)} loads exact; "
                f"{int(m.real_bytes.sum())} bytes real, {int(m.replay_bytes.sum())} replayed.\n")
    return out


def report(recordings: list[pathlib.Path], seed: int = 0) -> tuple[str, list[Validation]]:
    """``results/validation.md``: one section per recording, replayed on its design."""
    parts = ["# Validation: real kernels under QEMU vs. replay\n\n",
             "Generated by `python -m execbench.validation` from the shipped recordings in "
             "`workloads/data/qemu/` (see `workloads/recorders/qemu/`).  `truth` = what the "
             "real kernel did (tracefs kprobes, /proc/vmallocinfo, /proc/vmstat), `replay` = "
             "`execbench.replay.run` of the same recording's workload trace on the design that "
             "models that kernel, on a machine with the guest's 2 GiB.  `expected` = work the "
             "replay does for objects it counted and that the real kernel made before tracing "
             "(listed under each table); `residual_pct` = the difference left after it; a row "
             "passes within 5 %.  Every truth row is compared or listed as not compared with "
             "the reason.\n"]
    done = []
    for folder in recordings:
        v = validate(folder, seed=seed)
        done.append(v)
        params = ", ".join(f"{k}={'.'.join(map(str, x)) if isinstance(x, tuple) else x}"
                           for k, x in v.params.items())
        from .validation_arm64 import VERSION_FOR, is_arm64
        where = (f"arm64 machine at {'.'.join(map(str, VERSION_FOR[series_of(folder)]))}"
                 if is_arm64(folder) else "")
        extra = "; ".join(x for x in (params, where) if x)
        parts.append(f"\n## {folder.name} on `{v.design}`{f' ({extra})' if extra else ''}\n\n")
        parts.append(_measured(folder))
        parts.append(to_markdown(v))
    return "".join(parts), done


def _measured(folder: pathlib.Path) -> str:
    """One paragraph of what the recording measured."""
    prov = tomllib.loads((folder / f"{folder.name}.toml").read_text())
    m = prov["measured"]
    pkg = next(k for k in prov["source"]["packages"] if k.startswith("linux-image-"))
    ev = pd.read_csv(folder / "events.csv.gz", dtype=str, keep_default_na=False)
    tramp = sorted(set(ev[ev.caller.eq("arch_ftrace_update_trampoline")
                          & ev.event.isin(["module_alloc", "execmem_alloc"])]["size"]))
    slots = ev[ev.event == "__get_insn_slot"]
    slot_sizes = sorted(set(zip(slots["type"], slots["args"].str.extract(r"insn_size=(\d+)")[0])))
    jit = []
    for line in (folder / "guest" / "bpfinfo.txt").read_text().splitlines():
        f = dict(kv.split("=", 1) for kv in line.split()[1:] if "=" in kv)
        if line.startswith("bpfinfo") and int(f.get("insns", 0)) >= 100:
            jit.append(int(f["jited"]) / int(f["insns"]))
    ratio = f"{min(jit):.2f}-{max(jit):.2f}" if jit else "n/a"
    arch = {"x86_64": "x86-64"}.get(prov.get("workload", {}).get("arch", "x86_64"), "arm64")
    return (f"`{pkg}` {prov['source']['packages'][pkg]['version']}: QEMU/TCG wall {m['qemu_wall_s']} s "
            f"(whole record {m['record_wall_s']} s); {m['guest_events']} guest events -> "
            f"{m['trace_events']} trace events; {m['modules_in_set']} modules inserted.  "
            f"ftrace trampoline request: {', '.join(tramp) + ' bytes' if tramp else 'none'}.  kprobe slots "
            f"(cache, insn_size): {slot_sizes}.  {arch} JIT image bytes per BPF instruction "
            f"(socket filters of 100-4000 insns): {ratio}.\n\n")


def main(argv: list[str] | None = None) -> int:
    import argparse

    from execbench.trace import atomic_write_bytes

    root = pathlib.Path(__file__).resolve().parents[1]
    p = argparse.ArgumentParser(description="write results/validation.md; exit 1 when a row fails")
    p.add_argument("--data", type=pathlib.Path, default=root / "workloads" / "data" / "qemu")
    p.add_argument("-o", "--output", type=pathlib.Path, default=root / "results" / "validation.md")
    a = p.parse_args(argv)
    # x86-64 recordings, then the arm64 ones (qemu-<kernel>-arm64, on the arm64 machine)
    recs = sorted(q for q in a.data.glob("qemu-*") if q.is_dir() and not q.name.endswith("-arm64"))
    recs += sorted(q for q in a.data.glob("qemu-*-arm64") if q.is_dir())
    if not recs:
        print(f"{a.data}: no recordings", file=sys.stderr)
        return 1
    text, done = report(recs)
    atomic_write_bytes(a.output, text.encode())
    print(f"wrote {a.output}")
    failed = [(v.recording, r.pair) for v in done for r in v.failed.itertuples(index=False)]
    for rec, pair in failed:
        print(f"{rec}: {pair} outside 5 % with no counted cause", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
