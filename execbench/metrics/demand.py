"""What the workload asks for, independent of any design.

``requested_bytes`` and the live-text floor are properties of the trace,
not of an allocator: every design replays the same requests, so they are
computed here from the events alone.
"""
from __future__ import annotations

from ..trace import MODULE_SIZE_COLUMNS, Event
from ..units import PAGE_SIZE

_INIT = ("init_text", "init_rodata", "init_data")


class Demand:
    """Running totals of requested bytes and live text bytes."""

    def __init__(self) -> None:
        self.requested = 0
        self.text = 0
        self._objs: dict[tuple[str, str], tuple[int, int]] = {}   # -> (requested, text)
        self._init: dict[str, tuple[int, int]] = {}

    def _set(self, key: tuple[str, str], req: int, text: int) -> None:
        old = self._objs.get(key, (0, 0))
        self.requested += req - old[0]
        self.text += text - old[1]
        if req or text:
            self._objs[key] = (req, text)
        else:
            self._objs.pop(key, None)

    def apply(self, ev: Event) -> None:
        key = (ev.user, ev.obj)
        u, op = ev.user, ev.op
        if u == "module":
            if op == "load":
                init_req = ev.init_text + ev.init_rodata + ev.init_data
                core_req = sum(getattr(ev, c) for c in MODULE_SIZE_COLUMNS) - init_req
                self._init[ev.obj] = (init_req, ev.init_text)
                self._set(key, core_req, ev.text)
                self.requested += init_req
                self.text += ev.init_text
            elif op in ("init_done", "unload"):
                r, t = self._init.pop(ev.obj, (0, 0))
                self.requested -= r
                self.text -= t
                if op == "unload":
                    self._set(key, 0, 0)
        elif op in ("prog_load", "tramp_attach", "tramp_update", "ops_register"):
            self._set(key, ev.size, ev.size)
        elif op == "register":
            self._set(key, ev.size, ev.size)
        elif op == "optimize":
            r, t = self._objs[key]
            self._set(key, r + ev.size, t + ev.size)
        elif op == "dispatcher_update":
            # bpf_dispatcher: one PAGE_SIZE image, two halves, one live
            # (kernel/bpf/dispatcher.c)
            self._set(key, PAGE_SIZE, PAGE_SIZE // 2)
        elif op in ("prog_unload", "tramp_detach", "ops_unregister", "unregister"):
            self._set(key, 0, 0)
