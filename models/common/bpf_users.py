"""Parts of the BPF user that every design shares, around per-design hooks.

* :class:`TrampolineTable` -- kernel/bpf/trampoline.c: each
  ``bpf_trampoline_update()`` (attach, update) builds a *new* image and the
  previous one is freed after it (after RCU-tasks grace periods, not
  modelled); detach frees the last.  A design provides
  ``_tramp_image(size) -> addr`` (allocate, write, protect, claim text) and
  ``_tramp_free(addr, size)``.
* :class:`Dispatchers` -- kernel/bpf/dispatcher.c (v6.1+): one image of
  PAGE_SIZE whose two halves alternate; an update emits the idle half into a
  staging buffer (``d->rw_image``) and copies it with ``bpf_arch_text_copy``.
  A design provides ``_dispatcher_new() -> (image, rw or None)`` and may
  override ``_dispatcher_stage`` (how the idle half is written to the staging
  buffer) and ``_dispatcher_copy`` (how it reaches the image).

Text pokes made by trampoline and dispatcher operations (including the
pack fills and invalidations they cause) are counted as
``text_pokes_trampoline`` / ``text_pokes_dispatcher``; programs' as
``text_pokes_bpf`` (the BPF user's default source).

* :class:`PackedPrograms` -- programs JITed with
  ``bpf_jit_binary_pack_alloc/finalize/free`` on ``bpf_prog_pack``
  (kernel/bpf/core.c, v5.18+); a design provides ``self.jit``
  (:class:`~.bpf_prog_pack.JitBinaryPack`).

Subclasses create ``self.progs = {}``, ``self.tramps = {}`` and
``self.dispatchers = {}``.
"""
from __future__ import annotations

from execbench.errors import OutOfMemory
from execbench.trace import Event
from execbench.units import PAGE_SIZE


class PackedPrograms:
    def prog_load(self, ev: Event) -> None:
        hdr, size, image = self.jit.alloc_finalize(ev.size)
        self.k.text_claim(image, ev.size)
        self.progs[ev.obj] = (hdr, size, image, ev.size)

    def prog_unload(self, ev: Event) -> None:
        hdr, size, image, proglen = self.progs.pop(ev.obj)
        self.k.text_release(image, proglen)
        self.jit.free(hdr, size)


class TrampolineTable:
    def _tramp_image(self, size: int) -> int:
        raise NotImplementedError

    def _tramp_free(self, image: int, size: int) -> None:
        raise NotImplementedError

    def tramp_attach(self, ev: Event) -> None:
        with self.k.poke_source("trampoline"):
            self.tramps[ev.obj] = (self._tramp_image(ev.size), ev.size)

    def tramp_update(self, ev: Event) -> None:
        old = self.tramps[ev.obj]
        with self.k.poke_source("trampoline"):
            self.tramps[ev.obj] = (self._tramp_image(ev.size), ev.size)
            self._tramp_free(*old)

    def tramp_detach(self, ev: Event) -> None:
        with self.k.poke_source("trampoline"):
            self._tramp_free(*self.tramps.pop(ev.obj))


class Dispatchers:
    #: v6.1 (kernel/bpf/dispatcher.c): when ``d->rw_image`` cannot be
    #: allocated, ``bpf_arch_text_copy(d->image, &size, 4)`` writes the size
    #: into the image's header before ``bpf_prog_pack_free(d->image)``; 6.12
    #: calls ``bpf_prog_pack_free(d->image, PAGE_SIZE)`` directly.  Designs
    #: on a 6.10+ kernel set this False.
    abandon_writes_size = True

    def _dispatcher_new(self) -> tuple[int, int | None]:
        raise NotImplementedError

    def _dispatcher_new_pair(self, alloc_rw) -> tuple[int, int]:
        """``d->image = bpf_prog_pack_alloc(PAGE_SIZE)``, then ``d->rw_image
        = alloc_rw()``; if the second fails the first is given back and the
        update does nothing (``goto out``), so the next update tries again."""
        image = self.pack.alloc(PAGE_SIZE)
        try:
            rw = alloc_rw()
        except OutOfMemory:
            if self.abandon_writes_size:
                self.api.text_poke_copy(image, 4)
            self.pack.free(image, PAGE_SIZE)
            raise
        return image, rw

    def _dispatcher_stage(self, rw: int | None, off: int, n: int) -> None:
        """``bpf_dispatcher_prepare()`` into the staging buffer."""
        if rw is None:
            self.k.memcpy_elsewhere(n)
        else:
            self.k.memcpy(rw + off, n)

    def _dispatcher_copy(self, dst: int, n: int) -> None:
        self.api.text_poke_copy(dst, n)            # bpf_arch_text_copy()

    def dispatcher_update(self, ev: Event) -> None:
        with self.k.poke_source("dispatcher"):
            self._dispatcher_update(ev)

    def _dispatcher_update(self, ev: Event) -> None:
        half = PAGE_SIZE // 2
        d = self.dispatchers.get(ev.obj)
        if d is None:
            image, rw = self._dispatcher_new()
            d = self.dispatchers[ev.obj] = [image, rw, half]
        else:
            self.k.text_release(d[0] + d[2], half)
        image, rw, off = d
        noff = off ^ half
        self._dispatcher_stage(rw, noff, half)
        self._dispatcher_copy(image + noff, half)
        self.k.text_claim(image + noff, half)
        d[2] = noff
