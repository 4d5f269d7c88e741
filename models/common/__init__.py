"""Kernel code shared by several designs' users (bpf_prog_pack, the kprobe
insn-slot cache, module layout), parameterised by the allocator API below."""
