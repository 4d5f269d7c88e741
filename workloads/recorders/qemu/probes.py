"""The tracefs kprobe events the guest places, per kernel version.

Why a table here and not in the guest script: the parser must know the field
names each event carries, and the two kernels differ (v6.10 replaced
``module_alloc``/``module_memfree`` by ``execmem_alloc``/``execmem_free``, v6.9
renamed ``__vmalloc_node_range`` to ``__vmalloc_node_range_noprof``).  A line the
kernel refuses is skipped by the guest and reported in the ``probe_status`` dump,
so one list can name both kernels' functions.

Fetch arguments follow the x86-64 calling convention (``%di %si %dx %cx %r8
%r9``, then the stack: ``$stack0`` is the return address, ``$stack1`` the 7th
argument ...).  Signatures, with the source they come from:

* ``void *module_alloc(unsigned long size)``, ``void module_memfree(void *)``
  -- arch/x86/kernel/module.c, kernel/module/main.c (v6.1).
* ``void *execmem_alloc(enum execmem_type type, size_t size)``,
  ``void execmem_free(void *ptr)`` -- mm/execmem.c (v6.10+).
* ``void *__vmalloc_node_range(unsigned long size, unsigned long align,
  unsigned long start, unsigned long end, gfp_t, pgprot_t, unsigned long
  vm_flags, int node, const void *caller)`` -- mm/vmalloc.c; ``caller`` is the
  9th argument = ``$stack3`` and names who called module_alloc/execmem_alloc.
* ``int set_memory_{ro,rw,x,nx,rox}(unsigned long addr, int numpages)`` --
  arch/x86/mm/pat/set_memory.c.
* ``static void *__text_poke(text_poke_f func, void *addr, const void *src,
  size_t len)`` (v5.19+), ``void text_poke_bp(void *addr, const void *opcode,
  size_t len, const void *emulate)``, ``void text_poke_queue(...)`` (same
  arguments), ``static void text_poke_bp_batch(struct text_poke_loc *tp,
  unsigned int nr_entries)``, ``void *text_poke(void *addr, const void *opcode,
  size_t len)``, ``text_poke_copy(void *addr, const void *opcode, size_t len)``,
  ``text_poke_set(void *addr, int c, size_t len)`` -- arch/x86/kernel/alternative.c.
* ``void *bpf_prog_pack_alloc(u32 size, bpf_jit_fill_hole_t)``,
  ``void bpf_prog_pack_free(struct bpf_binary_header *hdr)``,
  ``bpf_jit_binary_pack_alloc(unsigned int proglen, ...)``,
  ``bpf_jit_binary_pack_free(struct bpf_binary_header *ro_header, ...)`` --
  kernel/bpf/core.c; ``hdr->size`` is the first u32 of the header.
* ``kprobe_opcode_t *__get_insn_slot(struct kprobe_insn_cache *c)`` and
  ``__free_insn_slot(c, kprobe_opcode_t *slot, int dirty)`` -- kernel/kprobes.c.
  ``struct kprobe_insn_cache`` = {struct mutex (32 bytes on x86-64 without
  DEBUG_MUTEXES: owner 8, wait_lock 4, osq 4, wait_list 16); alloc; free;
  const char *sym (+48); struct list_head pages (+56); size_t insn_size (+72)}.
  The ``sym`` string ("kprobe_insn_page"/"kprobe_optinsn_page") checks that the
  offsets are right: a wrong offset prints garbage, not a plausible name.
"""

from __future__ import annotations

import dataclasses

#: lowest address of the x86-64 module range (MODULES_VADDR,
#: arch/x86/include/asm/pgtable_64_types.h: __START_KERNEL_map + KERNEL_IMAGE_SIZE
#: = 0xffffffff80000000 + 512 MiB); filters keep vmalloc/vfree there.
MODULES_VADDR = 0xFFFFFFFFA0000000


@dataclasses.dataclass(frozen=True)
class Probe:
    """One tracefs dynamic event: ``name`` in group ``kprobes``."""

    name: str
    spec: str  # what follows "p:kprobes/<name> " or "r:kprobes/<name> "
    kind: str = "p"  # "p" entry probe, "r" return probe
    filter: str = ""
    stack: bool = False  # add a stacktrace trigger

    def line(self) -> str:
        return f"{self.kind}:kprobes/{self.name} {self.spec}"


_EXEC = f"{MODULES_VADDR:#x}"

PROBES: tuple[Probe, ...] = (
    # allocators (6.1 names, then 6.12 names; the kernel refuses those it lacks)
    Probe("module_alloc", "module_alloc size=%di:u64", stack=True),
    Probe("module_memfree", "module_memfree addr=%di:x64", stack=True),
    Probe("execmem_alloc", "execmem_alloc type=%di:s32 size=%si:u64", stack=True),
    Probe("execmem_free", "execmem_free addr=%di:x64", stack=True),
    # 7.2: execmem_alloc_rw() = execmem_alloc() + execmem_force_rw() (mm/execmem.c);
    # probed too in case execmem_alloc is inlined into it
    Probe("execmem_alloc_rw", "execmem_alloc_rw type=%di:s32 size=%si:u64", stack=True),
    # 7.2: module text, kprobe pages and ftrace trampolines come from the ROX
    # cache (mm/execmem.c execmem_cache_alloc), which calls no vmalloc per
    # allocation, so the address is taken from execmem_alloc's return value
    Probe("execmem_alloc_ret", "execmem_alloc ret=$retval:x64", kind="r"),
    Probe("execmem_restore_rox", "execmem_restore_rox addr=%di:x64 size=%si:u64"),
    Probe("execmem_cache_populate_alloc", "execmem_cache_populate_alloc size=%si:u64"),
    Probe("vmalloc_node_range",
          "__vmalloc_node_range size=%di:u64 align=%si:u64 start=%dx:x64 end=%cx:x64 "
          "vm_flags=$stack1:x64 caller=$stack3:symbol",
          filter=f"start >= {_EXEC}"),
    Probe("vmalloc_node_range",
          "__vmalloc_node_range_noprof size=%di:u64 align=%si:u64 start=%dx:x64 end=%cx:x64 "
          "vm_flags=$stack1:x64 caller=$stack3:symbol",
          filter=f"start >= {_EXEC}"),
    Probe("vmalloc_node_range_ret", "__vmalloc_node_range ret=$retval:x64", kind="r",
          filter=f"ret >= {_EXEC}"),
    Probe("vmalloc_node_range_ret", "__vmalloc_node_range_noprof ret=$retval:x64", kind="r",
          filter=f"ret >= {_EXEC}"),
    Probe("vfree", "vfree addr=%di:x64", filter=f"addr >= {_EXEC}"),
    # permissions
    Probe("set_memory_ro", "set_memory_ro addr=%di:x64 npages=%si:s32"),
    Probe("set_memory_rw", "set_memory_rw addr=%di:x64 npages=%si:s32"),
    Probe("set_memory_x", "set_memory_x addr=%di:x64 npages=%si:s32"),
    Probe("set_memory_nx", "set_memory_nx addr=%di:x64 npages=%si:s32"),
    Probe("set_memory_rox", "set_memory_rox addr=%di:x64 npages=%si:s32"),
    Probe("set_direct_map_invalid_noflush", "set_direct_map_invalid_noflush page=%di:x64"),
    # int set_direct_map_valid_noflush(struct page *, unsigned nr, bool valid) (v6.13+)
    Probe("set_direct_map_valid_noflush",
          "set_direct_map_valid_noflush page=%di:x64 nr=%si:u32 valid=%dx:u8"),
    # text patching
    Probe("__text_poke", "__text_poke addr=%si:x64 len=%cx:u64"),
    Probe("text_poke", "text_poke addr=%di:x64 len=%dx:u64"),
    Probe("text_poke_bp", "text_poke_bp addr=%di:x64 len=%dx:u64"),
    Probe("text_poke_queue", "text_poke_queue addr=%di:x64 len=%dx:u64"),
    Probe("text_poke_bp_batch", "text_poke_bp_batch nr=%si:u32"),
    # 7.2 (v6.16 x86/alternatives rename, arch/x86/kernel/alternative.c):
    # smp_text_poke_single() = smp_text_poke_batch_add() + _finish(), so the
    # batch_add probe sees every site (singles included) and is recorded under
    # the old per-site name text_poke_queue; single/finish are counted apart.
    # The batch's nr_entries lives in the static text_poke_array: not fetched.
    Probe("text_poke_queue", "smp_text_poke_batch_add addr=%di:x64 len=%dx:u64"),
    Probe("smp_text_poke_single", "smp_text_poke_single addr=%di:x64 len=%dx:u64"),
    Probe("smp_text_poke_batch_finish", "smp_text_poke_batch_finish"),
    Probe("text_poke_copy", "text_poke_copy addr=%di:x64 len=%dx:u64"),
    Probe("text_poke_set", "text_poke_set addr=%di:x64 len=%dx:u64"),
    # BPF
    Probe("bpf_jit_binary_pack_alloc", "bpf_jit_binary_pack_alloc proglen=%di:u32"),
    Probe("bpf_prog_pack_alloc", "bpf_prog_pack_alloc size=%di:u32"),
    Probe("bpf_prog_pack_alloc_ret", "bpf_prog_pack_alloc ret=$retval:x64", kind="r"),
    Probe("bpf_prog_pack_free", "bpf_prog_pack_free addr=%di:x64 size=+0(%di):u32"),
    Probe("bpf_jit_binary_pack_free", "bpf_jit_binary_pack_free addr=%di:x64"),
    # kprobe instruction slots
    Probe("alloc_insn_page", "alloc_insn_page"),
    Probe("alloc_insn_page_ret", "alloc_insn_page ret=$retval:x64", kind="r"),
    Probe("__get_insn_slot",
          "__get_insn_slot cache=%di:x64 sym=+0(+48(%di)):string insn_size=+72(%di):u64"),
    Probe("__get_insn_slot_ret", "__get_insn_slot ret=$retval:x64", kind="r"),
    Probe("__free_insn_slot", "__free_insn_slot cache=%di:x64 slot=%si:x64 dirty=%dx:s32"),
    Probe("free_insn_page", "free_insn_page addr=%di:x64"),
)

#: tracepoints enabled besides the kprobes: (group, event)
TRACEPOINTS: tuple[tuple[str, str], ...] = (("module", "module_load"), ("module", "module_free"))


#: (sym, insn_size) offsets in ``struct kprobe_insn_cache`` per series, when
#: they differ from the 6.1/6.12 ones above.  7.2's ``struct mutex``
#: (include/linux/mutex_types.h) holds ``struct mutex_waiter *first_waiter``
#: (8 bytes) where 6.x had ``struct list_head wait_list`` (16 bytes): the
#: mutex is 24 bytes, so ``sym`` is at +40 and ``insn_size`` at +64.
INSN_CACHE_OFFSETS = {"7.2": (40, 64)}


def probes_for(series: str = "6.1") -> tuple[Probe, ...]:
    """:data:`PROBES` with the struct offsets of ``series``."""
    if series not in INSN_CACHE_OFFSETS:
        return PROBES
    sym, isz = INSN_CACHE_OFFSETS[series]
    out = []
    for p in PROBES:
        if p.name == "__get_insn_slot":
            p = dataclasses.replace(
                p, spec=f"__get_insn_slot cache=%di:x64 sym=+0(+{sym}(%di)):string insn_size=+{isz}(%di):u64")
        out.append(p)
    return tuple(out)


def probes_file(series: str = "6.1") -> str:
    """The ``/etc/probes.txt`` the guest reads: ``line|filter|stack`` per probe."""
    out = []
    for p in probes_for(series):
        out.append(f"{p.line()}|{p.name}|{p.filter}|{int(p.stack)}")
    return "\n".join(out) + "\n"
