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
    # which direct-map pages each CPA changes (arch/x86/mm/pat/set_memory.c, 7.2):
    # static int __change_page_attr_set_clr(struct cpa_data *cpa, int primary) --
    # recursive through cpa_process_alias(), so it stays out of line (7.2.13's
    # kallsyms has it; __split_large_page()/split_large_page() are inlined and
    # cannot be probed).  primary=0 is the direct-map alias of a vmalloc address,
    # primary=1 with a direct-map address is __set_pages_np()/__set_pages_p()
    # (set_direct_map_{invalid,default}_noflush).  struct cpa_data {unsigned long
    # *vaddr (+0); pgd_t *pgd; pgprot_t mask_set (+16), mask_clr (+24); unsigned
    # long numpages (+32); ...}: vaddr is the first address of the run.
    Probe("cpa_set_clr", "__change_page_attr_set_clr vaddr=+0(+0(%di)):x64 numpages=+32(%di):u64 "
          "set=+16(%di):x64 clr=+24(%di):x64 primary=%si:s32"),
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


def probes_file(series: str = "6.1", arch: str = "x86_64") -> str:
    """The ``/etc/probes.txt`` the guest reads: ``line|filter|stack`` per probe."""
    out = []
    for p in (arm64_probes_for(series) if arch == "arm64" else probes_for(series)):
        out.append(f"{p.line()}|{p.name}|{p.filter}|{int(p.stack)}")
    return "\n".join(out) + "\n"


# ----------------------------------------------------------------------------- arm64
#
# Fetch arguments follow the AAPCS64 (``%x0`` .. ``%x7``, then the stack: at a kprobe on
# the first instruction ``$stack0`` is the 9th argument, there being no pushed return
# address).  The kprobe sits on ``sym+0``, the first of the two patchable-entry NOPs
# (``mov x9, x30`` once ``ftrace_init_nop()`` ran); ftrace's own site is ``sym+4``
# (``ftrace_call_adjust()``), so kernel/kprobes.c ``check_ftrace_location()`` lets it
# through without CONFIG_KPROBES_ON_FTRACE (arm64 does not select it in 6.1-7.2).
#
# ``caller=%x30:symbol``: at the first instruction the link register still holds the
# return address into the immediate caller, which arm64's stack trace of a kprobe at
# function entry leaves out (the unwinder starts from the frame-pointer chain, whose
# first record is the caller's caller's): the 6.1 guest shows ``module_memfree``
# called from ``process_one_work`` where the caller is ``do_free_init``.
#
# What cannot be probed, and what stands in for it (found in the 6.1 guest, whose
# ``probe_status`` dump records every refusal):
#
# * kernel/trace/trace_kprobe.c ``__within_notrace_func()`` refuses a kprobe *event* in any
#   function without an ftrace site unless CONFIG_KPROBE_EVENTS_ON_NOTRACE: that is all of
#   arch/arm64/kernel/ftrace.c (``ftrace_make_call``, ``ftrace_init_nop`` ...; its Makefile
#   removes CC_FLAGS_FTRACE) and kernel/trace/.  arch/arm64/kernel/patching.c
#   (``aarch64_insn_patch_text_nosync()``, ``aarch64_insn_copy()`` ...) is ``__kprobes``
#   or ``noinstr``.
# * Every text write into executable memory goes through ``patch_map()``
#   (arch/arm64/kernel/patching.c, 6.1-7.2): ``vmalloc_to_page(addr)`` for anything but the
#   kernel image, then ``set_fixmap_offset(FIX_TEXT_POKE0, ...)`` = ``__set_fixmap(idx,
#   phys, prot)``.  Both are ordinary traceable functions: a ``fixmap`` event with
#   ``phys != 0`` is one write (instruction, 8-byte literal, or one page of
#   ``aarch64_insn_copy()``), and the ``vmalloc_to_page`` just before it on the same CPU
#   gives its address (``arm64.text_writes``).
# * ``arch_jump_label_transform_queue()`` (arch/arm64/kernel/jump_label.c) and
#   ``bpf_arch_text_copy()``/``_invalidate()`` (arch/arm64/net/bpf_jit_comp.c, v6.9+) are
#   probed by name, to attribute those writes.
# * ``__change_memory_common()`` (arch/arm64/mm/pageattr.c) is static but not inlined in
#   Debian's 6.1 and 6.12 builds: each call is one ``flush_tlb_kernel_range()``.  7.2
#   inlines it; the same event then comes from the page-table walk inside it.
# * ``module_emit_plt_entry()`` (arch/arm64/kernel/module-plts.c) is called for each branch
#   relocation out of range; its return value is the PLT entry used (a repeated address is
#   the previous entry reused).  Only the return is probed: one event per call is enough.
# * The vmalloc probes carry no address filter: on arm64 the module window (KASLR,
#   ``RANDOMIZE_MODULE_REGION_FULL``) lies inside the vmalloc area, and BPF programs
#   (6.1), BPF packs (v6.10+) and kprobe pages use ``VMALLOC_START..VMALLOC_END`` like
#   every other vmalloc.  Executable areas are told apart on the host by the allocator
#   they were made under (``arm64.exec_areas``).

_LR = "caller=%x30:symbol"

ARM64_PROBES: tuple[Probe, ...] = (
    # allocators: 6.1 arch/arm64/kernel/module.c module_alloc(size); v6.10+ mm/execmem.c
    Probe("module_alloc", f"module_alloc size=%x0:u64 {_LR}", stack=True),
    Probe("module_memfree", f"module_memfree addr=%x0:x64 {_LR}", stack=True),
    Probe("execmem_alloc", f"execmem_alloc type=%x0:s32 size=%x1:u64 {_LR}", stack=True),
    Probe("execmem_free", f"execmem_free addr=%x0:x64 {_LR}", stack=True),
    Probe("execmem_alloc_rw", f"execmem_alloc_rw type=%x0:s32 size=%x1:u64 {_LR}", stack=True),
    # 6.1 arch/arm64/net/bpf_jit_comp.c: bpf_jit_alloc_exec(size) = vmalloc(size) (programs,
    # trampolines, dispatcher images); the kretprobe is safe here: vmalloc() passes its own
    # return address as the vmallocinfo caller, not bpf_jit_alloc_exec's.
    Probe("bpf_jit_alloc_exec", f"bpf_jit_alloc_exec size=%x0:u64 {_LR}"),
    Probe("bpf_jit_alloc_exec_ret", "bpf_jit_alloc_exec ret=$retval:x64", kind="r"),
    Probe("bpf_jit_free_exec", f"bpf_jit_free_exec addr=%x0:x64 {_LR}"),
    # 6.1 arch/arm64/kernel/probes/kprobes.c alloc_insn_page(): __vmalloc_node_range(ROX)
    Probe("alloc_insn_page", f"alloc_insn_page {_LR}"),
    Probe("alloc_insn_page_ret", "alloc_insn_page ret=$retval:x64", kind="r"),
    # mm/vmalloc.c __vmalloc_node_range(size, align, start, end, gfp, prot, vm_flags, node,
    # caller): caller is the 9th argument
    Probe("vmalloc_node_range",
          "__vmalloc_node_range size=%x0:u64 align=%x1:u64 start=%x2:x64 end=%x3:x64 "
          "vm_flags=%x6:x64 caller=$stack0:symbol"),
    Probe("vmalloc_node_range",
          "__vmalloc_node_range_noprof size=%x0:u64 align=%x1:u64 start=%x2:x64 end=%x3:x64 "
          "vm_flags=%x6:x64 caller=$stack0:symbol"),
    Probe("vmalloc_node_range_ret", "__vmalloc_node_range ret=$retval:x64", kind="r"),
    Probe("vmalloc_node_range_ret", "__vmalloc_node_range_noprof ret=$retval:x64", kind="r"),
    Probe("vfree", f"vfree addr=%x0:x64 {_LR}"),
    Probe("vm_unmap_aliases", "vm_unmap_aliases"),
    # permissions: arch/arm64/mm/pageattr.c set_memory_{ro,rw,x,nx}(addr, numpages);
    # set_memory_rox is the generic ro + x inline (include/linux/set_memory.h)
    Probe("set_memory_ro", "set_memory_ro addr=%x0:x64 npages=%x1:s32"),
    Probe("set_memory_rw", "set_memory_rw addr=%x0:x64 npages=%x1:s32"),
    Probe("set_memory_x", "set_memory_x addr=%x0:x64 npages=%x1:s32"),
    Probe("set_memory_nx", "set_memory_nx addr=%x0:x64 npages=%x1:s32"),
    Probe("set_memory_valid", "set_memory_valid addr=%x0:x64 npages=%x1:s32 enable=%x2:s32"),
    Probe("change_memory_common", "__change_memory_common start=%x0:x64 size=%x1:u64"),
    # 7.2 inlines __change_memory_common(); its page-table walk is one call per call
    # (arch/arm64/mm/pageattr.c update_range_prot(), mm/pagewalk.c; arch/arm64/mm/mmu.c
    # calls it too, to split the linear map, which needs BBML2: not on QEMU's max CPU)
    Probe("change_memory_common",
          "walk_kernel_page_table_range_lockless start=%x0:x64 end=%x1:x64"),
    Probe("set_direct_map_invalid_noflush", "set_direct_map_invalid_noflush page=%x0:x64"),
    Probe("set_direct_map_default_noflush", "set_direct_map_default_noflush page=%x0:x64"),
    Probe("set_direct_map_valid_noflush",
          "set_direct_map_valid_noflush page=%x0:x64 nr=%x1:u32 valid=%x2:u8"),
    # text writes (see above)
    Probe("vmalloc_to_page", "vmalloc_to_page addr=%x0:x64"),
    Probe("fixmap", "__set_fixmap idx=%x0:u32 phys=%x1:x64", filter="phys != 0"),
    # struct jump_entry {s32 code; s32 target; long key;}: the site is &entry->code + code
    Probe("jump_label_transform",
          "arch_jump_label_transform_queue entry=%x0:x64 code=+0(%x0):s32 type=%x1:u32"),
    Probe("apply_alternatives_module", "apply_alternatives_module start=%x0:x64 len=%x1:u64"),
    Probe("bpf_arch_text_copy", "bpf_arch_text_copy addr=%x0:x64 len=%x2:u64"),
    Probe("bpf_arch_text_invalidate", "bpf_arch_text_invalidate addr=%x0:x64 len=%x1:u64"),
    # u64 module_emit_plt_entry(struct module *mod, Elf64_Shdr *sechdrs, void *loc,
    #                           const Elf64_Rela *rela, Elf64_Sym *sym)
    Probe("module_emit_plt_entry_ret", "module_emit_plt_entry ret=$retval:x64", kind="r"),
    # BPF: 6.1 per-program images; v6.9+ packs (kernel/bpf/core.c)
    Probe("bpf_jit_binary_alloc", "bpf_jit_binary_alloc proglen=%x0:u32"),
    Probe("bpf_jit_binary_pack_alloc", "bpf_jit_binary_pack_alloc proglen=%x0:u32"),
    Probe("bpf_prog_pack_alloc", "bpf_prog_pack_alloc size=%x0:u32"),
    Probe("bpf_prog_pack_alloc_ret", "bpf_prog_pack_alloc ret=$retval:x64", kind="r"),
    Probe("bpf_prog_pack_free", "bpf_prog_pack_free addr=%x0:x64 size=+0(%x0):u32"),
    Probe("bpf_jit_binary_pack_free", "bpf_jit_binary_pack_free addr=%x0:x64"),
    # kprobe instruction slots (struct kprobe_insn_cache offsets as on x86-64: the same
    # struct mutex without DEBUG_MUTEXES, see INSN_CACHE_OFFSETS).  insn_size counts
    # kprobe_opcode_t, which is u32 on arm64 (arch/arm64/include/asm/probes.h): 2 = 8 bytes.
    Probe("__get_insn_slot",
          "__get_insn_slot cache=%x0:x64 sym=+0(+48(%x0)):string insn_size=+72(%x0):u64"),
    Probe("__get_insn_slot_ret", "__get_insn_slot ret=$retval:x64", kind="r"),
    Probe("__free_insn_slot", "__free_insn_slot cache=%x0:x64 slot=%x1:x64 dirty=%x2:s32"),
    Probe("free_insn_page", "free_insn_page addr=%x0:x64"),
)


def arm64_probes_for(series: str) -> tuple[Probe, ...]:
    """:data:`ARM64_PROBES` with the ``struct kprobe_insn_cache`` offsets of ``series``."""
    if series not in INSN_CACHE_OFFSETS:
        return ARM64_PROBES
    sym, isz = INSN_CACHE_OFFSETS[series]
    return tuple(
        dataclasses.replace(p, spec=f"__get_insn_slot cache=%x0:x64 sym=+0(+{sym}(%x0)):string "
                                    f"insn_size=+{isz}(%x0):u64") if p.name == "__get_insn_slot" else p
        for p in ARM64_PROBES)
