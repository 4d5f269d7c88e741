"""x86 dynamic ftrace trampolines on ``module_alloc_type`` (Song Liu's v1).

arch/x86/kernel/ftrace.c as patched by "[PATCH 3/3]"
(20230526051529.3387103-4-song@kernel.org): ``alloc_tramp(size)`` =
``module_alloc_type(size, MOD_TEXT)`` -- already RO+X -- so
``create_trampoline()`` writes it with ``text_poke_copy`` only and no longer
calls ``set_memory_rox``:

1. the ``ftrace_[regs_]caller`` body (``size`` bytes);
2. ``retq`` + ``int3`` (2 bytes) after it;
3. the 2-byte NOP over the ``jnz`` (FTRACE_OPS_FL_SAVE_REGS variant);
4. the ``ftrace_ops`` pointer (8 bytes) at the end;
5. the ``op_ref`` (``mov 0x...(%rip), %rdx``: 3 opcode bytes + 4 offset);
6. the call to the ops function (``text_poke_copy_locked``, CALL_INSN_SIZE 5).

``*tramp_size = size + RET_SIZE + sizeof(void *)``; the recorded ``size`` is
that total.  Update re-points the call with ``text_poke_bp`` and freeing is
``module_memfree_type`` (``tramp_free``).

Found while modelling: with X86_FEATURE_RETHUNK the patch still writes the
return thunk jump with ``__text_gen_insn(ip, ...)`` -- a plain store into
the now read-only trampoline; we model the ``retq`` path (step 2).
Simplified: the positions of steps 3, 5 and 6 inside the body are taken
near its start (they only decide which page is touched; a trampoline is
under a page).
"""
from __future__ import annotations

from ..common.ftrace import FtraceTrampolines

MOD_TEXT = "text"
RET_SIZE = 2              # retq + int3 (CONFIG_SLS)
OP_REF_SIZE = 7           # union ftrace_op_code_union: 3 opcode bytes + s32 offset
CALL_INSN_SIZE = 5


class FtraceMat(FtraceTrampolines):
    def _create(self, size: int) -> int:
        a = self.api
        t = a.module_alloc_type(size, MOD_TEXT, caller="arch_ftrace_update_trampoline")
        body = max(1, size - RET_SIZE - 8)
        a.text_poke_copy(t, body)                              # 1. caller body
        for off, n in ((body, RET_SIZE), (0, 2), (body + RET_SIZE, 8),
                       (0, OP_REF_SIZE), (0, CALL_INSN_SIZE)):  # 2.-6.
            n = min(n, size)
            a.text_poke_copy(t + min(off, size - n), n)
        return t

    def _free(self, t: int) -> None:
        self.api.module_memfree_type(t, MOD_TEXT)
