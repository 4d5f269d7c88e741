"""The arm64 side of :mod:`execbench.validation`: which model counter stands for
which row of an arm64 recording's ``truth.csv``.

The arm64 recordings (``workloads/data/qemu/qemu-<series>-arm64/``, docs/arm64.md
§12) are replayed on the arm64 machine (``KernelConfig(arch="arm64")``) with the
design that models the recorded kernel (:data:`DESIGN_FOR`) and the machine at
the recorded release (:data:`VERSION_FOR`: the arm64 rules that change by
release -- the image, the linear-alias rule of v6.19, the after-init
``set_memory_ro`` of 2025 kernels -- are those of the kernel that ran).  The
rules of the comparison are :mod:`execbench.validation`'s: every truth row is
compared (:func:`pairs`) or listed with its reason (:data:`NOT_COMPARED`);
the only expected differences are the replay's stand-ins for objects the real
kernel made before tracing (:func:`boot_standins`), counted from the replay's
own counters and costed from the kernel source.

The arm64 truth tables do not carry x86's ``vmap_areas_untraced_<kind>`` /
``vmap_area_bytes_untraced`` rows; :func:`untraced_rows` reads them from the
same recording's ``guest/vmallocinfo_start_exec.txt`` (the executable areas at
``tracing_on``) and ``guest/vmallocinfo_exec.txt`` (at the end): an area in
both lists was made before tracing.  Their number must equal the truth's
``vmap_areas_untraced``, or the validation stops.
"""
from __future__ import annotations

import pathlib
import re
from typing import Any

from .errors import ExecbenchError
from .units import GiB

#: design (and parameters) that models each recorded arm64 kernel: 6.1 is
#: ``legacy``; 6.12 and 7.2 are ``execmem`` (arm64 has no ROX cache through 7.2,
#: docs/arm64.md §1.3, so there is no ``execmem_rox`` on arm64 to replay 7.2 on)
DESIGN_FOR: dict[str, tuple[str, dict[str, Any]]] = {
    "6.1": ("legacy", {}),
    "6.12": ("execmem", {}),
    "7.2": ("execmem", {}),
}
#: the machine's kernel release: the recorded one
VERSION_FOR: dict[str, tuple[int, int]] = {"6.1": (6, 1), "6.12": (6, 12), "7.2": (7, 2)}
#: the recorded machine: qemu-system-aarch64 -M virt -m 2G, one NUMA node
#: (workloads/recorders/qemu/record_arm64.py); KASLR on, Debian's
#: RANDOMIZE_MODULE_REGION_FULL=y and rodata=full (the KernelConfig defaults)
MACHINE: dict[str, Any] = {"mem_bytes": 2 * GiB, "arch": "arm64", "numa_nodes": 1}

PAGE = 4096
PACK_PAGES = 512        # BPF_PROG_PACK_SIZE = SZ_2M * num_possible_nodes(), one node (kernel/bpf/core.c, 6.12)
BRANCH_RANGE = 128 << 20   # B/BL imm26 * 4: +-128 MiB (arch/arm64/kernel/module.c, is_forbidden_offset_for_adrp aside)


def is_arm64(folder: pathlib.Path) -> bool:
    """An arm64 recording: ``qemu-<series>-arm64``."""
    return folder.name.endswith("-arm64")


def _p(name, model, truth, what):
    from .validation import _p as p
    return p(name, model, truth, what)


def pairs(truth: dict[str, int]) -> tuple:
    """The arm64 comparisons.  The x86 pairs whose meaning is the same on
    arm64 (allocator calls by type, ``set_memory_*`` by kind, ``vfree``,
    ``vm_reset_perms()`` pages, BPF copies) are reused by name; ``exec_areas``
    sums the truth's ``exec_areas_<kind>`` rows of this recording."""
    from .validation import PAIRS
    reuse = {p.name: p for p in PAIRS}
    kinds = sorted(k[len("exec_areas_"):] for k in truth if k.startswith("exec_areas_"))
    out = [
        _p("exec_areas", "vmalloc_calls", tuple(f"exec_areas_{k}" for k in kinds),
           "vmalloc areas made under an executable allocator (module_alloc/execmem_alloc, "
           "bpf_jit_alloc_exec, alloc_insn_page), every kind"),
        _p("exec_area_bytes", "vmalloc_bytes", tuple(f"exec_area_bytes_{k}" for k in kinds),
           "their PAGE_ALIGN(size), no guard page"),
        *(reuse[n] for n in (
            "module_alloc_calls", "module_alloc_bytes", "module_memfree_calls", "module_memfree_calls_nonnull",
            "execmem_alloc_calls", "execmem_alloc_bytes", "execmem_alloc_rw_calls",
            "execmem_free_calls", "execmem_free_calls_nonnull",
            "vfree_calls", "set_direct_map_invalid_noflush", "cpa_calls", "cpa_pages")),
        *(p for p in PAIRS if p.name.startswith(("execmem_alloc_calls_", "execmem_alloc_bytes_",
                                                  "execmem_alloc_rw_calls_", "cpa_calls_", "cpa_pages_"))),
        _p("set_direct_map_default_noflush", "seen:vfree_reset_perms_pages", "set_direct_map_default_noflush",
           "one per page of a VM_FLUSH_RESET_PERMS area at vfree (vm_reset_perms), after the flush"),
        _p("set_memory_valid_calls", (), "set_memory_valid_calls",
           "set_memory_valid(): no executable-memory user calls it (kfence/debug_pagealloc do); "
           "the model has no caller"),
        # -- arm64 change_memory_common() (arch/arm64/mm/pageattr.c) -----------------
        _p("change_memory_common_calls", "tlb_shootdowns_cpa", "change_memory_common_calls",
           "__change_memory_common() calls: one flush_tlb_kernel_range() each"),
        _p("change_memory_common_calls_linear", "linear_alias_pages", "change_memory_common_calls_linear",
           "on the linear alias (rodata_full: one page per call, every page of the area before v6.19)"),
        _p("change_memory_common_calls_exec", "arm64:change_memory_common_exec", "change_memory_common_calls_exec",
           "on the vmalloc area itself (set_memory_* with numpages > 0)"),
        _p("change_memory_common_pages", ("cpa_pages_req", "linear_alias_pages"), "change_memory_common_pages",
           "size / 4096 summed"),
        _p("change_memory_common_pages_linear", "linear_alias_pages", "change_memory_common_pages_linear",
           "size / 4096 on the linear alias"),
        _p("change_memory_common_pages_exec", "cpa_pages_req", "change_memory_common_pages_exec",
           "size / 4096 on the area"),
        _p("vm_unmap_aliases_calls", "seen:vm_unmap_aliases", "vm_unmap_aliases_calls",
           "vm_unmap_aliases(): change_memory_common() with numpages > 0"),
        # -- where module areas land (arch/arm64/kernel/module.c 6.1, arch/arm64/mm/init.c 6.12+)
        _p("module_vmalloc_failed_attempts", "module_fallback_allocs", "module_vmalloc_failed_attempts",
           "first-window __vmalloc_node_range() failures (one per fallback allocation)"),
        _p("module_areas_after_a_failed_attempt", "module_fallback_allocs", "module_areas_after_a_failed_attempt",
           "module areas made in the fallback window"),
        _p("module_areas_window_128m", "arm64:module_areas_window_128m", "module_areas_window_128m",
           "module areas made in a 128 MiB window"),
        _p("module_areas_window_2048m", "arm64:module_areas_window_2048m", "module_areas_window_2048m",
           "module areas made in a 2 GiB window"),
        _p("module_window_starts", "arm64:module_window_starts", "module_window_starts",
           "distinct start arguments of the windows module allocations try (6.1: module_alloc_base "
           "for both; v6.5+ with RANDOMIZE_MODULE_REGION_FULL: module_plt_base only)"),
        _p("module_areas_in_branch_range", "arm64:module_areas_in_branch_range", "module_areas_in_branch_range",
           "module areas wholly within +-128 MiB of kernel text"),
        _p("module_areas_out_of_branch_range", "arm64:module_areas_out_of_branch_range",
           "module_areas_out_of_branch_range", "module areas wholly out of it"),
        _p("module_areas_partly_in_branch_range", "arm64:module_areas_partly_in_branch_range",
           "module_areas_partly_in_branch_range", "the rest"),
        _p("plt_entries", "plt_entries", "plt_entries",
           "PLT entries emitted per module load (count_plts() per module from the arm64 module table, "
           "when the module's window is out of branch range of its targets)"),
        _p("plt_emit_null", (), "plt_emit_null",
           "module_emit_plt_entry() out of slots: count_plts() reserves enough, the model never runs out"),
        # -- text writes through the fixmap (arch/arm64/kernel/patching.c patch_map())
        _p("text_writes_exec", "fixmap_pokes", ("text_writes", "-text_writes_image"),
           "fixmap writes into vmalloc'ed text (the kernel image's are not modelled, see not compared)"),
        _p("text_writes_ftrace_init", "text_pokes_ftrace_init", "text_writes_ftrace_init",
           "ftrace_init_nop() at module load (x2 with DYNAMIC_FTRACE_WITH_CALL_OPS, v6.3+)"),
        _p("text_writes_patch", "text_pokes_patch", ("text_writes_module_live", "jump_label_transform_calls_exec"),
           "writes into live module text: ftrace call sites and jump labels, the trace's patch events"),
        _p("text_writes_kprobe_slot", "text_pokes_kprobe", "text_writes_kprobe_slot",
           "kprobe insn slots: two 4-byte instruction writes per slot"),
        _p("text_writes_bpf", "text_pokes_bpf", "text_writes_bpf",
           "pages touched by aarch64_insn_copy()/_set() (v6.9+ bpf_prog_pack)"),
        _p("bpf_arch_text_copy_calls", "kernel:text_poke_copy", "bpf_arch_text_copy_calls",
           "bpf_arch_text_copy() = aarch64_insn_copy()"),
        _p("bpf_arch_text_copy_bytes", "kernel_bytes:text_poke_copy", "bpf_arch_text_copy_bytes", "their len"),
        _p("bpf_arch_text_invalidate_calls", "kernel:text_poke_set", "bpf_arch_text_invalidate_calls",
           "bpf_arch_text_invalidate() = aarch64_insn_set()"),
        _p("bpf_arch_text_invalidate_bytes", "kernel_bytes:text_poke_set", "bpf_arch_text_invalidate_bytes",
           "their len"),
        # -- BPF and kprobe memory
        _p("bpf_jit_alloc_exec_calls", "vmalloc:bpf_jit_alloc_exec", "bpf_jit_alloc_exec_calls",
           "6.1: one vmalloc() per JIT image (arch/arm64/net/bpf_jit_comp.c bpf_jit_alloc_exec())"),
        _p("bpf_jit_alloc_exec_bytes", "vmalloc_size:bpf_jit_alloc_exec", "bpf_jit_alloc_exec_bytes",
           "their size argument"),
        _p("bpf_jit_free_exec_calls", "vfree:bpf_jit_alloc_exec", "bpf_jit_free_exec_calls",
           "6.1: vfree() of a JIT image"),
        reuse["bpf_prog_pack_new"],
        reuse["insn_pages_new"],
        reuse["vmap_areas"],
        reuse["vmap_area_bytes"],
    ]
    return tuple(out)


#: truth rows that are not compared, with the reason (in addition to
#: :data:`execbench.validation.NOT_COMPARED`, whose patterns apply too)
NOT_COMPARED: tuple[tuple[str, str], ...] = (
    (r"exec_areas_.+|exec_area_bytes_.+",
     "split of exec_areas/exec_area_bytes by kind (compared in total; the allocator rows by type are "
     "compared: module_alloc_calls, execmem_alloc_calls_<type>, bpf_jit_alloc_exec_calls)"),
    (r"module_window_start_from_stext_mib|module_area_(min|max)_distance_mib",
     "where one boot's KASLR draw put the window (kaslr_init() / module_init_limits() draw once per "
     "boot); the replay makes its own draw from its seed, so only which side of the branch range the "
     "areas land on is compared (module_areas_*_branch_range); tests/test_validation.py checks the "
     "recorded offset lies in the range the rule allows"),
    (r"kernel_text_mib",
     "_etext - _stext of the booted kernel: the model's image sizes are taken from these boots "
     "(calibration, execbench/kernel/arch/arm64.py IMAGES), so comparing them would validate nothing"),
    (r"plt_emit_calls",
     "module_emit_plt_entry() calls, one per out-of-range branch relocation (duplicates included); "
     "the arm64 module tables carry count_plts()'s distinct entries, which plt_entries compares"),
    (r"plt_entries_(core|init)",
     "split of plt_entries (compared) between the core and the init area"),
    (r"direct_map_walks",
     "7.2 only: the recorder's correction for the inlined __change_memory_common() (page-table walks "
     "of set_direct_map_{invalid,default}_noflush, no flush); those calls are compared as "
     "set_direct_map_invalid_noflush / set_direct_map_default_noflush"),
    (r"text_writes",
     "every fixmap write, the kernel image's included; text_writes_exec (without the image) is compared"),
    (r"text_writes_image",
     "writes into kernel image text (ftrace and jump labels on built-in functions, kprobes armed there): "
     "the model keeps no image text pages; the writes are the same in every design"),
    (r"text_writes_(jump_label|text)",
     "split by kind of writes whose module part is compared as text_writes_patch (module_live + "
     "jump labels in an executable area); the rest is kernel image text"),
    (r"text_writes_module_live",
     "compared inside text_writes_patch"),
    (r"text_writes_kprobe_arm",
     "aarch64_insn_patch_text() under stop_machine() arming and disarming the recorder's kprobes; the "
     "trace's kprobe targets are kernel functions (image text, not modelled), the same in every design"),
    (r"jump_label_transform_calls(_exec)?",
     "the workload itself: the trace's patch events are built from these (the executable-area ones "
     "are compared inside text_writes_patch)"),
    (r"apply_alternatives_module_(calls|bytes)",
     "module_finalize() -> apply_alternatives_module(): plain stores into RW module memory, no "
     "primitive to count (the loader's write cost has them)"),
    (r"bpf_jit_binary_alloc_(calls|bytes)",
     "the workload itself: the trace's prog_load events are built from these"),
    (r"vmap_areas_(untraced|alloc_insn_page|__get_insn_slot|bpf_jit_alloc_exec|load_module|execmem_alloc_rw)(_.+)?",
     "vmap_areas split by caller or made before tracing (scoping of vmap_areas, which is compared)"),
)


def covered(metric: str) -> str | None:
    from .validation import _covered
    return _covered(metric, NOT_COMPARED)


# -- areas made before tracing ---------------------------------------------------------

_VMI = re.compile(r"^(0x[0-9a-f]+)-(0x[0-9a-f]+)\s+(\d+)\s+([A-Za-z0-9_.]+)\+")


def _vmallocinfo(path: pathlib.Path) -> dict[int, tuple[int, str]]:
    out = {}
    for line in path.read_text().splitlines():
        m = _VMI.match(line)
        if m:
            out[int(m.group(1), 16)] = (int(m.group(3)), m.group(4))
    return out


def _kind(size: int, caller: str) -> str:
    if caller in ("__get_insn_slot", "alloc_insn_page"):
        return "kprobe_insn_page"
    if caller == "bpf_jit_alloc_exec" and size == PACK_PAGES * PAGE + PAGE:
        return "bpf_prog_pack"
    if caller == "bpf_jit_alloc_exec":
        return "bpf_jit_image"
    return caller


def untraced_rows(folder: pathlib.Path, truth: dict[str, int]) -> dict[str, int]:
    """``vmap_areas_untraced_<kind>`` and ``vmap_area_bytes_untraced`` from the
    recording's vmallocinfo at ``tracing_on`` and at the end (module doc).
    arm64 6.12 and 7.2 print the boot-time ``bpf_prog_pack`` as
    ``bpf_jit_alloc_exec`` (it allocates through it, 6.12 kernel/bpf/core.c
    ``alloc_new_pack()``): a 2 MiB + guard area of that caller is the pack."""
    g = folder / "guest"
    start, end = _vmallocinfo(g / "vmallocinfo_start_exec.txt"), _vmallocinfo(g / "vmallocinfo_exec.txt")
    old = {a: end[a] for a in end if a in start}
    if len(old) != truth.get("vmap_areas_untraced", -1):
        raise ExecbenchError(f"{folder}: {len(old)} executable areas live at tracing_on and at the end, "
                             f"truth.csv says vmap_areas_untraced={truth.get('vmap_areas_untraced')}")
    rows = {"vmap_area_bytes_untraced": sum(s for s, _ in old.values())}
    for size, caller in old.values():
        k = f"vmap_areas_untraced_{_kind(size, caller)}"
        rows[k] = rows.get(k, 0) + 1
    return rows


# -- expected differences --------------------------------------------------------------

def boot_standins(truth: dict[str, int], model: dict[str, int], series: str) -> dict[str, tuple[int, str]]:
    """Pair name -> (expected replay - truth, why) for the replay's stand-ins.

    * **kprobe insn page.**  The real kernel's page was opened before tracing
      by the recorder's own kprobe events (``vmap_areas_untraced_kprobe_insn_page``);
      the replay's first page stands for it.  Per page (``alloc_insn_page()``,
      arch/arm64/kernel/probes/kprobes.c): 6.1 one ``__vmalloc_node_range(
      PAGE_SIZE, ..., PAGE_KERNEL_ROX, VM_FLUSH_RESET_PERMS)`` and nothing
      else; 6.12 and 7.2 ``execmem_alloc(EXECMEM_KPROBES, PAGE_SIZE)`` then
      ``set_memory_rox(addr, 1)`` = the generic ``set_memory_ro`` +
      ``set_memory_x`` (include/linux/set_memory.h): two ``change_memory_common()``
      calls with one ``vm_unmap_aliases()`` each, and for the ro one the
      linear alias of the area's one page (arch/arm64/mm/pageattr.c).  Live
      at the end: one area of a page + the guard page.
    * **bpf_prog_pack** (6.12, 7.2: ``vmap_areas_untraced_bpf_prog_pack``).
      Per pack made (kernel/bpf/core.c ``alloc_new_pack()``): one
      ``execmem_alloc(EXECMEM_BPF, 2 MiB)``, ``set_memory_rox(512)`` = ro + x
      on 512 pages: two exec ``change_memory_common()`` calls and 512
      one-page linear-alias calls (the ro one), two ``vm_unmap_aliases()``.
      Per pack freed by the replay (``bpf_prog_pack_freed``; the boot pack
      stays): ``execmem_free`` -> ``vfree`` with VM_FLUSH_RESET_PERMS, 512
      pages through ``set_direct_map_{invalid,default}_noflush``.  Per pack
      live: 2 MiB + the guard page.
    """
    adj: dict[str, list] = {}

    def add(k: str, d: int, why: str) -> None:
        if d:
            cur = adj.setdefault(k, [0, []])
            cur[0] += d
            if why not in cur[1]:
                cur[1].append(why)

    new61 = series == "6.1"
    pages = min(model.get("kprobe_insn_pages_new", 0), truth.get("vmap_areas_untraced_kprobe_insn_page", 0))
    pfreed = min(model.get("kprobe_insn_pages_freed", 0), pages)
    if pages:
        why = (f"the replay's first {pages} kprobe insn page(s) stand for the one the recorder's own "
               f"probes opened before tracing")
        for k, d in (("exec_areas", pages), ("exec_area_bytes", pages * PAGE), ("insn_pages_new", pages),
                     ("vmap_areas", pages - pfreed), ("vmap_area_bytes", (pages - pfreed) * 2 * PAGE),
                     ("vfree_calls", pfreed), ("set_direct_map_invalid_noflush", pfreed),
                     ("set_direct_map_default_noflush", pfreed)):
            add(k, d, why)
        if not new61:
            for k, d in (("execmem_alloc_calls", pages), ("execmem_alloc_bytes", pages * PAGE),
                         ("execmem_free_calls", pfreed), ("execmem_free_calls_nonnull", pfreed),
                         ("cpa_calls", 2 * pages), ("cpa_calls_ro", pages), ("cpa_calls_x", pages),
                         ("cpa_pages", 2 * pages), ("cpa_pages_ro", pages), ("cpa_pages_x", pages),
                         ("change_memory_common_calls", 3 * pages), ("change_memory_common_calls_exec", 2 * pages),
                         ("change_memory_common_calls_linear", pages), ("change_memory_common_pages", 3 * pages),
                         ("change_memory_common_pages_exec", 2 * pages),
                         ("change_memory_common_pages_linear", pages), ("vm_unmap_aliases_calls", 2 * pages)):
                add(k, d, why)
    packs = min(model.get("bpf_prog_pack_new", 0), truth.get("vmap_areas_untraced_bpf_prog_pack", 0))
    freed = min(model.get("bpf_prog_pack_freed", 0), packs)
    if packs:
        why = (f"the replay's first {packs} bpf_prog_pack stand(s) for the boot-time pack "
               f"({freed} freed by the replay when empty, the boot pack stays)")
        n = PACK_PAGES
        for k, d in (("exec_areas", packs), ("exec_area_bytes", packs * n * PAGE), ("bpf_prog_pack_new", packs),
                     ("execmem_alloc_calls", packs), ("execmem_alloc_bytes", packs * n * PAGE),
                     ("cpa_calls", 2 * packs), ("cpa_calls_ro", packs), ("cpa_calls_x", packs),
                     ("cpa_pages", 2 * n * packs), ("cpa_pages_ro", n * packs), ("cpa_pages_x", n * packs),
                     ("change_memory_common_calls", (2 + n) * packs),
                     ("change_memory_common_calls_exec", 2 * packs),
                     ("change_memory_common_calls_linear", n * packs),
                     ("change_memory_common_pages", 3 * n * packs),
                     ("change_memory_common_pages_exec", 2 * n * packs),
                     ("change_memory_common_pages_linear", n * packs),
                     ("vm_unmap_aliases_calls", 2 * packs),
                     ("vfree_calls", freed), ("execmem_free_calls", freed), ("execmem_free_calls_nonnull", freed),
                     ("set_direct_map_invalid_noflush", n * freed), ("set_direct_map_default_noflush", n * freed),
                     ("vmap_areas", packs - freed), ("vmap_area_bytes", (packs - freed) * (n + 1) * PAGE)):
            add(k, d, why)
    return {k: (v[0], "; ".join(v[1])) for k, v in adj.items()}


# -- what the replay did, arm64 values -----------------------------------------------

def _distance(lo: int, hi: int, s: int, e: int) -> tuple[int, int]:
    """(smallest, largest) distance between a byte of [lo, hi) and a byte of [s, e)."""
    if hi <= s:
        return s - hi + 1, e - lo
    if lo >= e:
        return lo - e + 1, hi - s
    return 0, max(e - lo, hi - s)


def model_values(kernel, module_areas: list[tuple[int, int]], counters: dict[str, int]) -> dict[str, int]:
    """The arm64 values :func:`pairs` names: where the module areas the replay
    made landed (window, branch range of ``[_stext, _etext)``), the
    distinct window starts, and the exec ``change_memory_common()`` calls."""
    lay = kernel.layout
    out: dict[str, int] = {}
    fallback = int(counters.get("module_fallback_allocs", 0))
    sizes = [(e - s) >> 20 for _, s, e in lay.windows]
    out[f"arm64:module_areas_window_{sizes[0]}m"] = len(module_areas) - fallback
    if len(sizes) > 1:
        out[f"arm64:module_areas_window_{sizes[1]}m"] = out.get(f"arm64:module_areas_window_{sizes[1]}m", 0) + fallback
    out["arm64:module_window_starts"] = len({s for _, s, _ in lay.windows})
    n_in = n_out = n_part = 0
    for addr, size in module_areas:
        near, far = _distance(addr, addr + size, lay.stext, lay.etext)
        if far <= BRANCH_RANGE:
            n_in += 1
        elif near > BRANCH_RANGE:
            n_out += 1
        else:
            n_part += 1
    out["arm64:module_areas_in_branch_range"] = n_in
    out["arm64:module_areas_out_of_branch_range"] = n_out
    out["arm64:module_areas_partly_in_branch_range"] = n_part
    out["arm64:change_memory_common_exec"] = (int(counters.get("tlb_shootdowns_cpa", 0))
                                             - int(counters.get("linear_alias_pages", 0)))
    return out
