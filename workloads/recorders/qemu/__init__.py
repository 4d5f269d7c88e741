"""Ground truth from a real kernel: record executable-memory events under QEMU.

Why: every design model in execbench claims to follow kernel source; this
recorder checks the claim against the kernel itself.  A Debian kernel package
boots under QEMU/TCG with an initramfs built on the fly; the guest's ``/init``
places tracefs kprobe events on the allocation, free, permission and patching
functions, drives the four users of executable memory (modules, BPF, ftrace,
kprobes) and dumps the trace over the serial console.  The host turns it into

1. a workload trace in execbench's schema (what the users asked for), and
2. a ground-truth table (what the kernel did, per primitive),

and ``execbench.validation`` replays (1) on the matching design and compares
with (2).

Modules, one job each:

* :mod:`.kernels`   -- resolve/download/unpack the Debian kernel package (private apt for trixie)
* :mod:`.modset`    -- which modules, in dependency order (``depends=`` + softdep ``pre:``)
* :mod:`.probes`    -- the kprobe events and their fetch arguments, with signatures cited
* :mod:`.guest`     -- the guest files (``guest/init.sh``, ``guest/bpfload.c``, plans)
* :mod:`.initramfs` -- a deterministic ``newc`` cpio writer
* :mod:`.boot`      -- run QEMU, split the console into the guest's dumps
* :mod:`.parse`     -- ftrace text -> event table
* :mod:`.build`     -- events -> workload trace (attribution rules in its docstring)
* :mod:`.truth`     -- events + /proc/vmallocinfo -> ground-truth counts
* :mod:`.dmap`      -- CPA calls -> which direct-map pages and 2 MiB regions each call changed
* :mod:`.record`    -- the whole run, written atomically as a recording folder

Run: ``execbench record qemu --kernel 6.1|6.12 [--flavour generic|cloud]``
(root, Debian mirrors, ~2 minutes).  Pitfalls that shaped the guest script (found
while recording): removing a dynamic event or a module
with events resets the ring buffer (a ``trace_pipe`` reader drains it
continuously), no kretprobe on ``module_alloc``/``execmem_alloc`` (it would
become vmallocinfo's caller), ``kptr_restrict=1``, and never a function tracer
with an empty filter (it traces ``get_kprobe`` and recurses in the int3 handler:
the first run of this recorder died that way when a filter matched nothing).
On 7.2 the ROX cache hands out module text without a vmalloc per allocation,
so the address comes from a return probe on ``execmem_alloc`` after all; the
price is that ``/proc/vmallocinfo`` names ``arch_rethook_trampoline`` as the
caller of every area ``execmem_alloc`` made while it was armed, so areas are
told apart by address (traced or made before ``/init``), not by caller.

Not recorded: anything before ``/init`` (the boot-time BPF pack and the
kprobe-ftrace trampoline are visible only in vmallocinfo), BPF trampolines and
dispatchers (need BTF-typed attach targets / XDP), ``ops_update`` (neither
kernel re-pokes an existing ftrace trampoline on a filter change).
"""
