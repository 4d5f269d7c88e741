"""The non-executable memory the kernel and the loading process allocate
around each executable allocation (docs/placement.md).

Executable pages are not allocated back to back.  Between two programs'
JIT images the kernel allocates the next program's ``struct bpf_prog`` and
the loading process keeps its own pages; between two modules' text it
copies the next .ko.  Those pages come from the same per-CPU lists, so
they decide where the next executable page lands.  This module replays,
for every event and identically for every design, what v6.1 allocates on
the user's code path outside the design's allocator:

* **BPF prog_load** (kernel/bpf/syscall.c ``bpf_prog_load()``):
  - the loading process, if it is a new one: kernel stack (THREAD_SIZE 16
    KiB = 4 order-0 pages, vmalloc'd with CONFIG_VMAP_STACK,
    kernel/fork.c ``alloc_thread_stack_node()``, reused from the per-CPU
    cache of NR_CACHED_STACKS = 2 when one is there), the PGD (order-1 with
    page-table isolation: PGD_ALLOCATION_ORDER 1,
    arch/x86/include/asm/pgalloc.h, arch/x86/mm/pgtable.c ``_pgd_alloc()``),
    its other page-table pages and its anonymous (MOVABLE) pages; all stay
    until its last program is unloaded (the process exits).  Which
    programs share a loader: the object name up to ``:`` (``tool.run:prog``);
    prefixes listed in the sidecar's ``[placement] loader_shared_prefixes``
    are loaded by a process that is already running (e.g. systemd for
    container cgroup programs) and cost nothing here.
  - ``bpf_prog_alloc()`` (kernel/bpf/core.c): ``__vmalloc(round_up(
    bpf_prog_size(len), PAGE_SIZE))`` with ``bpf_prog_size(len) =
    offsetof(struct bpf_prog, insns) + 8 * len`` and offsetof = 72 bytes
    (include/linux/bpf.h, v6.1: u16 pages, u16 flags, type, expected type,
    len, jited_len, tag[8], then five pointers); kept until the program is
    freed.  ``len`` is the instruction count: ``size / jit_bytes_per_insn``
    with the ratio the trace was built with (its ``[parameters]``).
  - the JIT's ``addrs`` array, ``kvmalloc_array(len + 1, sizeof(int))``
    (arch/x86/net/bpf_jit_comp.c ``bpf_int_jit_compile()``), held while the
    image is allocated and freed after: a slab object up to
    KMALLOC_MAX_CACHE_SIZE (8 KiB), above that ``kmalloc_large()`` pages
    of order ``get_order(size)``; past the largest buddy order
    (``MAX_ORDER - 1``, 4 MiB) ``kmalloc`` fails and ``kvmalloc_node()``
    falls back to ``__vmalloc_node()``: order-0 pages (mm/util.c, v6.1).
* **module load** (kernel/module/main.c): ``init_module`` copies the file
  into ``__vmalloc(len)`` (``copy_module_from_user()``; ``finit_module``
  reads it with ``kernel_read_file()`` into a vmalloc buffer), held through
  ``layout_and_allocate()`` and freed by ``free_copy()`` before
  ``do_init_module()``.  The trace has section sizes, not file sizes, so
  ``len = ko_bytes_per_section_byte * (text + rodata + ro_after_init +
  data + init_text + init_rodata + init_data)``.  ``struct module`` lives
  in the module's own .gnu.linkonce.this_module (its data, which the
  design allocates), kallsyms likewise (``layout_symtab()``).

Not modelled, and why:

* Allocations that are made and freed before the next executable
  allocation on the same CPU -- the verifier's ``env`` (kzalloc) and
  ``insn_aux_data`` (vzalloc, freed at the end of ``bpf_check()``), the
  JIT's RW image (``kvmalloc`` in ``bpf_jit_binary_pack_alloc()``, freed by
  ``bpf_jit_binary_pack_finalize()``): freed pages go back to the head of
  the same per-CPU list, so the next allocation gets the same set of pages
  it would have got without them.
* Slab objects (``struct bpf_prog_aux``, ``struct trace_kprobe``,
  ``struct optimized_kprobe``, ftrace hashes, the loader's task_struct and
  VMAs): they come from slab pages shared with every other object of the
  same size, not one page per object.  This makes the stride between
  executable pages a lower bound.
* BPF maps, perf and ring buffers the loader creates: their sizes are per
  object and not in the traces yet (a lower bound again).
* percpu memory (``alloc_percpu``) comes from preallocated percpu chunks.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..trace import Event
from ..units import PAGE_SIZE
from .pagealloc import MAX_ORDER

#: offsetof(struct bpf_prog, insns), include/linux/bpf.h (v6.1), x86-64
BPF_PROG_HDR = 72
#: KMALLOC_MAX_CACHE_SIZE = 1 << (PAGE_SHIFT + 1) for SLUB (include/linux/slab.h, v6.1)
KMALLOC_MAX_CACHE_SIZE = 2 * PAGE_SIZE
#: NR_CACHED_STACKS, kernel/fork.c (v6.1)
NR_CACHED_STACKS = 2
THREAD_STACK_PAGES = 4           # THREAD_SIZE_ORDER 2 (arch/x86/include/asm/page_64_types.h, no KASAN)
PGD_ORDER = 1                    # PGD_ALLOCATION_ORDER with CONFIG_PAGE_TABLE_ISOLATION


@dataclass(frozen=True)
class SideParams:
    """Workload-level parameters of the side allocations, each with its source.

    ``jit_bytes_per_insn``: the trace's own ``[parameters]`` value (the ratio
    its JIT sizes were computed with: 4 for the traces built from the BPF
    tables, the measured request bytes per ELF instruction of
    workloads/data/bpf/jit-sizes-6.1.csv), else 5: the traces without it are
    the QEMU recordings, whose BPF programs are socket filters that the
    recorded x86-64 kernels JIT at 4.93-5.33 bytes per instruction (their
    guests' own measurement, printed in results/validation.md).
    ``loader_pt_pages`` / ``loader_anon_pages``: page-table pages (besides
    the PGD) and anonymous pages of a resident loader process.  Default:
    VmPTE 44 kB and RssAnon 112 kB of a running ``sleep`` (coreutils,
    dynamically linked against libc only) measured with ``grep -E
    'VmPTE|RssAnon' /proc/$pid/status`` on Linux 6.18 -- a lower bound for a
    libbpf tool, which maps more libraries.
    ``ko_bytes_per_section_byte``: 2.23, the median of file size / sum of
    section sizes over the 1121 modules of
    workloads/data/modules/6.1.0-56-cloud-amd64.modules.csv.
    """

    jit_bytes_per_insn: float = 5.0
    loader_pt_pages: int = 11
    loader_anon_pages: int = 28
    loader_shared_prefixes: tuple[str, ...] = ()
    ko_bytes_per_section_byte: float = 2.23
    enabled: bool = True

    @classmethod
    def from_provenance(cls, prov: dict) -> "SideParams":
        params = prov.get("parameters", {}) if isinstance(prov, dict) else {}
        place = prov.get("placement", {}) if isinstance(prov, dict) else {}
        kw = {}
        ratio = params.get("jit_bytes_per_insn")
        if isinstance(ratio, (int, float)) and ratio > 0:
            kw["jit_bytes_per_insn"] = float(ratio)
        for key in ("loader_pt_pages", "loader_anon_pages"):
            if isinstance(place.get(key), int) and place[key] >= 0:
                kw[key] = place[key]
        shared = place.get("loader_shared_prefixes")
        if isinstance(shared, list):
            kw["loader_shared_prefixes"] = tuple(str(s) for s in shared)
        return cls(**kw)


def _order(nbytes: int) -> int:
    """``get_order()``."""
    return max(0, (max(nbytes, 1) - 1) // PAGE_SIZE).bit_length()


class SideAllocs:
    """Allocates and frees the side memory of each event on the kernel's
    page allocator; :func:`execbench.replay.run` calls :meth:`before` and
    :meth:`after` around every event, the same for every design."""

    def __init__(self, kernel, params: SideParams | None = None):
        self.k = kernel
        self.p = params or SideParams()
        self.progs: dict[str, np.ndarray] = {}           # obj -> struct bpf_prog frames
        self.loaders: dict[str, tuple[set, list]] = {}   # loader -> (live progs, blocks)
        self.stacks: dict[int, list] = {}                # cpu -> cached vmap stacks
        self._held: list[tuple[int, int]] = []           # (pfn, order) freed after the event
        self._held_frames: np.ndarray | None = None
        self.counters = {"side_pages_resident": 0}

    def _loader_of(self, obj: str) -> str | None:
        name = obj.partition(":")[0]
        if self.p.loader_shared_prefixes and name.startswith(self.p.loader_shared_prefixes):
            return None
        return name

    # -- hooks -------------------------------------------------------------------------
    def before(self, ev: Event) -> None:
        if not self.p.enabled:
            return
        phys, cpu = self.k.phys, self.k.cpu
        if ev.user == "bpf" and ev.op == "prog_load":
            loader = self._loader_of(ev.obj)
            if loader is not None:
                if loader not in self.loaders:
                    self.loaders[loader] = (set(), self._spawn(cpu))
                self.loaders[loader][0].add(ev.obj)
            insns = max(1, round(ev.size / self.p.jit_bytes_per_insn))
            n = -(-(BPF_PROG_HDR + 8 * insns) // PAGE_SIZE)
            self.progs[ev.obj] = phys.alloc_vmalloc_pages(n, cpu)
            self.counters["side_pages_resident"] += n
            addrs = 4 * (insns + 1)
            if addrs > KMALLOC_MAX_CACHE_SIZE:
                o = _order(addrs)
                if o < MAX_ORDER:
                    self._held.append((phys.alloc_block(o, cpu), o))
                else:                                   # kvmalloc's vmalloc fallback
                    self._held_frames = phys.alloc_vmalloc_pages(-(-addrs // PAGE_SIZE), cpu)
        elif ev.user == "module" and ev.op == "load":
            sections = sum(getattr(ev, c) or 0 for c in (
                "text", "rodata", "ro_after_init", "data", "init_text", "init_rodata", "init_data"))
            n = -(-int(self.p.ko_bytes_per_section_byte * sections) // PAGE_SIZE)
            self._held_frames = phys.alloc_vmalloc_pages(n, cpu)

    def after(self, ev: Event) -> None:
        if not self.p.enabled:
            return
        phys, cpu = self.k.phys, self.k.cpu
        for pfn, o in self._held:
            phys.free_block(pfn, o, cpu)
        self._held.clear()
        if self._held_frames is not None:
            phys.free_vmalloc_pages(self._held_frames, cpu=cpu)   # free_copy() -> vfree()
            self._held_frames = None
        if ev.user == "bpf" and ev.op == "prog_unload":
            self._release_prog(ev.obj, cpu)

    def abort(self, ev: Event) -> None:
        """The operation got -ENOMEM: what its object would have kept is
        freed on the kernel's error path (``bpf_prog_load()`` ->
        ``free_prog``/``bpf_prog_free()``), and a loader left with no
        program exits."""
        if self.p.enabled and ev.user == "bpf" and ev.op == "prog_load":
            self._release_prog(ev.obj, self.k.cpu)

    def _release_prog(self, obj: str, cpu: int) -> None:
        phys = self.k.phys
        frames = self.progs.pop(obj, None)
        if frames is not None:
            phys.free_vmalloc_pages(frames, cpu=cpu)          # bpf_prog_free() -> vfree()
            self.counters["side_pages_resident"] -= frames.size
        loader = self._loader_of(obj)
        if loader is not None and loader in self.loaders:
            live, blocks = self.loaders[loader]
            live.discard(obj)
            if not live:
                del self.loaders[loader]
                self._exit(blocks, cpu)

    # -- a loader process -------------------------------------------------------------------
    def _spawn(self, cpu: int) -> list:
        """fork + exec of the loader: (kind, pfns-or-pfn, order) blocks it keeps."""
        phys, p = self.k.phys, self.p
        cache = self.stacks.setdefault(cpu, [])
        stack = cache.pop() if cache else phys.alloc_vmalloc_pages(THREAD_STACK_PAGES, cpu)
        pgd = phys.alloc_block(PGD_ORDER, cpu)
        pt = phys.alloc_frames(p.loader_pt_pages, cpu)
        anon = phys.alloc_frames(p.loader_anon_pages, cpu, movable=True)
        self.counters["side_pages_resident"] += (THREAD_STACK_PAGES + (1 << PGD_ORDER)
                                                 + p.loader_pt_pages + p.loader_anon_pages)
        return [("stack", stack), ("pgd", pgd), ("pt", pt), ("anon", anon)]

    def _exit(self, blocks: list, cpu: int) -> None:
        """exit + wait: the mm goes (anon pages, page tables, PGD), the stack
        goes to the CPU's stack cache if a slot is free (``free_thread_stack()``)."""
        phys = self.k.phys
        for kind, v in blocks:
            if kind == "stack":
                cache = self.stacks.setdefault(cpu, [])
                if len(cache) < NR_CACHED_STACKS:
                    cache.append(v)
                else:
                    phys.free_vmalloc_pages(v, cpu=cpu)       # vmap stack: vfree()
                self.counters["side_pages_resident"] -= THREAD_STACK_PAGES
            elif kind == "pgd":
                phys.free_block(v, PGD_ORDER, cpu)
                self.counters["side_pages_resident"] -= 1 << PGD_ORDER
            else:
                phys.free_frames(v, cpu=cpu, movable=kind == "anon")
                self.counters["side_pages_resident"] -= v.size
