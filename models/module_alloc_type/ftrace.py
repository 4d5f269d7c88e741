"""x86 dynamic ftrace trampolines on ``module_alloc_type`` (Song Liu's v1).

arch/x86/kernel/ftrace.c as patched by "[PATCH 3/3]"
(20230526051529.3387103-4-song@kernel.org): ``alloc_tramp(size)`` =
``module_alloc_type(size, MOD_TEXT)`` -- already RO+X -- so
``create_trampoline()`` writes it with ``text_poke_copy`` only and no longer
calls ``set_memory_rox``:

1. the ``ftrace_[regs_]caller`` body (``size`` bytes);
2. the return after it, in a slot of ``RET_SIZE`` bytes (5 with
   CONFIG_RETPOLINE, which Debian sets): ``retq`` + ``int3`` written with
   ``text_poke_copy`` (2 bytes) -- or, with X86_FEATURE_RETHUNK, a ``jmp
   x86_return_thunk`` that the patch still writes with
   ``__text_gen_insn(ip, ...)``, a **plain store into the read-only
   trampoline**: the kernel as posted oopses there.  Counted as
   ``faults_as_posted`` (``faults_as_posted_ftrace_rethunk``); the model
   writes the 5 bytes with ``text_poke_copy`` instead (the obvious fix);
3. the 2-byte NOP over the ``jnz`` (FTRACE_OPS_FL_SAVE_REGS variant);
4. the ``ftrace_ops`` pointer (8 bytes) at the end;
5. the ``op_ref`` (``mov 0x...(%rip), %rdx``: 3 opcode bytes + 4 offset);
6. the call to the ops function (``text_poke_copy_locked``, CALL_INSN_SIZE 5).

``*tramp_size = size + RET_SIZE + sizeof(void *)``; the recorded ``size`` is
that total.  Update re-points the call with ``text_poke_bp`` and freeing is
``module_memfree_type`` (``tramp_free``).

X86_FEATURE_RETHUNK is a property of the CPU and the mitigation: 6.4's
default retbleed mitigation sets it on AMD Zen 1/2 (``retbleed=unret``,
arch/x86/kernel/cpu/bugs.c ``retbleed_select_mitigation()``) and not on
Intel parts mitigated with (e)IBRS; the design parameter ``rethunk``
(default False, as on the default ``skylake-sp`` CPU preset) selects it.
Simplified: the positions of steps 3, 5 and 6 inside the body are taken
near its start (they only decide which page is touched; a trampoline is
under a page).
"""
from __future__ import annotations

from ..common.ftrace import FtraceTrampolines

MOD_TEXT = "text"
RET_SIZE = 5              # arch/x86/kernel/ftrace.c: IS_ENABLED(CONFIG_RETPOLINE) ? 5 : 1 + SLS
RETQ_BYTES = 2            # retq + int3
JMP32_INSN_SIZE = 5       # jmp x86_return_thunk
OP_REF_SIZE = 7           # union ftrace_op_code_union: 3 opcode bytes + s32 offset
CALL_INSN_SIZE = 5


class FtraceMat(FtraceTrampolines):
    def __init__(self, kernel, api, rethunk: bool = False):
        super().__init__(kernel, api)
        self.rethunk = rethunk

    def _create(self, size: int) -> int:
        a, k = self.api, self.k
        t = a.module_alloc_type(size, MOD_TEXT, caller="arch_ftrace_update_trampoline")
        body = max(1, size - RET_SIZE - 8)
        a.text_poke_copy(t, min(body, size))                   # 1. caller body
        if self.rethunk:
            # __text_gen_insn(ip, JMP32_INSN_OPCODE, ...): a plain store into RO+X
            k.count("faults_as_posted")
            k.count("faults_as_posted_ftrace_rethunk")
        ret = JMP32_INSN_SIZE if self.rethunk else RETQ_BYTES
        for off, n in ((body, ret), (0, 2), (body + RET_SIZE, 8),
                       (0, OP_REF_SIZE), (0, CALL_INSN_SIZE)):  # 2.-6.
            n = min(n, size)
            a.text_poke_copy(t + min(off, size - n), n)
        return t

    def _free(self, t: int) -> None:
        self.api.module_memfree_type(t, MOD_TEXT)
