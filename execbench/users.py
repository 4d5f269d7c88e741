"""The four users of executable memory, as protocols: one method per trace op.

Each design supplies objects that satisfy these, written against *its* API
the way the design's patches convert the real callers.  The replay calls
``getattr(design.<user>, <op>)(event)`` for every event.
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

from .trace import OPS, Event


@runtime_checkable
class ModuleUser(Protocol):
    """kernel/module/main.c: load_module(), do_init_module(), patching, free_module()."""

    def load(self, ev: Event) -> None: ...
    def init_done(self, ev: Event) -> None: ...
    def patch(self, ev: Event) -> None: ...
    def unload(self, ev: Event) -> None: ...


@runtime_checkable
class BpfUser(Protocol):
    """kernel/bpf/core.c, trampoline.c, dispatcher.c and the x86 JIT."""

    def prog_load(self, ev: Event) -> None: ...
    def prog_unload(self, ev: Event) -> None: ...
    def tramp_attach(self, ev: Event) -> None: ...
    def tramp_update(self, ev: Event) -> None: ...
    def tramp_detach(self, ev: Event) -> None: ...
    def dispatcher_update(self, ev: Event) -> None: ...


@runtime_checkable
class FtraceUser(Protocol):
    """arch/x86/kernel/ftrace.c dynamic trampolines."""

    def ops_register(self, ev: Event) -> None: ...
    def ops_update(self, ev: Event) -> None: ...
    def ops_unregister(self, ev: Event) -> None: ...


@runtime_checkable
class KprobeUser(Protocol):
    """kernel/kprobes.c insn slots and x86 optprobes."""

    def register(self, ev: Event) -> None: ...
    def optimize(self, ev: Event) -> None: ...
    def unregister(self, ev: Event) -> None: ...


PROTOCOLS = {"module": ModuleUser, "bpf": BpfUser, "ftrace": FtraceUser, "kprobe": KprobeUser}


def dispatch_table(design) -> dict[tuple[str, str], object]:
    """(user, op) -> bound method of the design's user object."""
    table = {}
    for (user, op) in OPS:
        obj = getattr(design, user)
        if not isinstance(obj, PROTOCOLS[user]):
            raise TypeError(f"{type(design).__name__}.{user} does not implement {PROTOCOLS[user].__name__}")
        table[(user, op)] = getattr(obj, op)
    return table
