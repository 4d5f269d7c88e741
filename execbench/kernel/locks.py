"""Lock waiting and racing page writes across CPUs, in virtual time.

The replay runs events one after another on a single global clock
(:attr:`Kernel.now`): every primitive advances it, and the W^X and cost
metrics (``wx_page_ns``, ``cpu_ns``) integrate over it.  That clock is left
exactly as it is.  This module keeps a *shadow* timeline per CPU beside it,
built from the same durations, so that two events on different CPUs whose
work overlaps in trace time can be seen to contend:

* **Event start.**  An event on CPU ``c`` starts at ``max(t_ns, free[c])``:
  its own timestamp, or later if CPU ``c`` is still busy with its previous
  event.  Its local time at any moment is ``start + (now - g0) + waited``
  where ``g0`` is the global clock when the event began and ``waited`` the
  lock waiting it has done so far.  When it ends, ``free[c]`` is its local
  end.
* **Locks** (``text_mutex``, ``jit_alloc_lock``, ``pack_mutex``,
  ``module_mutex`` ...) are sleeping mutexes named by the kernel source
  that defines them.  A hold is an interval of local time ``[acquire,
  release)`` owned by one CPU.  Acquiring a lock at local time ``t`` while
  another CPU's recorded hold covers ``t`` waits until that hold ends (and
  again if another hold covers the new time); the wait is added to
  ``lock_wait_ns`` (total and per lock).  Re-acquiring a lock the current
  event already holds nests (the real callers are structured so that they
  do not deadlock; e.g. ``text_poke_bp()`` runs with ``text_mutex`` held).
* **Page writes.**  Every store into the module range through the
  simulated kernel (``memcpy``, ``text_poke*``), and every wider *update
  window* a design declares with :meth:`LockModel.page_update` (e.g. the
  unprotect -> memcpy -> protect sequence of Kent Overstreet's
  ``jitalloc_update()`` fallback, Message-ID ZHF21CSxyjQy9C7F@moria.home.lan),
  records ``(cpu, start, end)`` for each page it touches.  A write whose
  interval overlaps a recorded interval of *another* CPU on the same page
  counts one ``page_write_races`` per page, unless both were made under a
  common lock (mutual exclusion makes such an overlap an artefact of the
  shadow timeline, see below): the race Kent's "single lock"
  in the helper exists to prevent ("different threads with different
  allocations on the same page will race", ZHEy5SkFwI+dZjOC@moria.home.lan).

Simplifications, and why:

* Priority is trace order.  Events are replayed in ``seq`` order, so an
  earlier event's holds are already recorded when a later, overlapping
  event asks for the lock; the later one waits.  A hold that starts in a
  gap between another CPU's recorded holds and runs into the next one
  (its length is unknown when it is taken) is, at release, charged the
  overlap as waiting and extended by it: mutual exclusion means someone
  waited that long, and charging the later event keeps trace-order
  priority.  Where exactly inside the hold the wait fell is not modelled,
  so writes made under a common lock are never counted as racing.
* Causality across CPUs is only as good as the timestamps: a CPU whose
  previous event overran runs "late", so its writes can appear to overlap a
  later event on another CPU.  Unmapping pages (``vfree``) forgets their
  write records so reuse of the addresses is not counted as a race.
* Waiting does not move the global clock: costs and W^X exposure are
  integrated once, serially, as before.  ``lock_wait_ns`` is therefore an
  *additional* figure (time CPUs spent blocked), not part of ``cpu_ns``.
* An uncontended acquire costs nothing, and a waiter gets the lock the
  moment the holder releases it (no wake-up latency, no spinning).
* Holds and page intervals that end before the current event's timestamp
  are dropped (no later event can start earlier: ``t_ns`` is
  non-decreasing).
"""
from __future__ import annotations

from bisect import bisect_left, bisect_right
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .machine import Kernel

PAGE_SHIFT = 12
#: A write (or update window) spanning more pages than this is recorded as
#: one range record instead of one record per page.  Same races (a page's
#: conflicts are its own records plus the range records covering it); the
#: work of a write over a huge area no longer grows with its page count.
RANGE_PAGES = 64

#: Locks the models take, with the kernel source that defines each.
KNOWN_LOCKS: dict[str, str] = {
    "text_mutex": "kernel/extable.c DEFINE_MUTEX(text_mutex); taken by text_poke_copy/set, "
                  "held by callers of text_poke/text_poke_bp (arch/x86/kernel/alternative.c)",
    "jit_alloc_lock": "mm/jitalloc.c DEFINE_MUTEX(jit_alloc_lock) in Kent Overstreet's 80ceffd6b110",
    "pack_mutex": "kernel/bpf/core.c DEFINE_MUTEX(pack_mutex) (bpf_prog_pack_alloc/free)",
    "module_mutex": "kernel/module/main.c DEFINE_MUTEX(module_mutex) (complete_formation, do_init_module)",
}


class LockModel:
    """Per-CPU shadow timeline, named mutexes and page-write intervals.

    Bookkeeping that runs around every event is kept cheap without
    changing a result: holds are kept per (lock, CPU) sorted by end
    (``_hidx``), the smallest end of any hold and of any write is kept so
    that pruning is one comparison when nothing has expired, and the plain
    list of holds (``holds``) is rebuilt from the index only when asked
    for.  tests/test_speed_equivalence.py runs whole replays with the index
    switched off (the straightforward scans) and compares."""

    def __init__(self, kernel: "Kernel"):
        self.k = kernel
        self.cpu_free: dict[int, float] = {}
        # The scans' list: lock -> [(start, end, cpu)] in release order; kept
        # only once the index is off (_hidx_ok False), else built on demand
        # (holds).  Holds released during the current event belong to its
        # CPU, which acquire/release skip, so appending them at once changes
        # no scan.
        self._holds: dict[str, list[tuple[float, float, int]]] = {}
        # Index of the holds per (lock, cpu): starts, ends, release seq.
        # One CPU's holds of one lock never overlap and come in time order,
        # so "which holds of CPU c cover/overlap [a, b)" is a bisect instead
        # of a scan of every hold (the scans made lock-heavy module loads
        # quadratic).  Results are identical: acquire's fixpoint does not
        # depend on scan order, and release sums the overlaps in release
        # order (_seq), skipping only zero terms.  Should holds ever arrive
        # out of order, the index is dropped and the scans are used.
        self._hidx: dict[str, dict[int, tuple[list[float], list[float], list[int]]]] = {}
        self._hidx_ok = True
        self._hmin = float("inf")        # <= the smallest end of any indexed hold
        self._seq = 0
        self.open: dict[str, list] = {}                                  # lock -> [cpu, start, depth]
        self.wait_by_lock: dict[str, float] = {}
        self.acquires: dict[str, int] = {}
        self.contended: dict[str, int] = {}
        self.wait_total = 0.0
        # page writes per CPU: (first page, last page, start, end, locks held).
        # Intervals of pages rather than one record per page: a 256 MiB module
        # is 65,536 pages, and only writes of *another* CPU can race, so a
        # write is checked against the other CPUs' recent intervals only.
        self._writes: dict[int, list[tuple[int, int, float, float, frozenset]]] = {}
        self._wmin = float("inf")        # <= the smallest end of any recorded write
        self.races = 0
        self._update_depth = 0
        self._hold_cms: dict[str, _Hold] = {}
        # the locks the current CPU holds (record_write's ``held``), for
        # ``_held_cpu``; None once ``open`` changes
        self._held: frozenset | None = None
        self._held_cpu = -1
        # the current event
        self._t = 0.0
        self._g0 = 0.0
        self._cpu: int | None = None
        self._start = 0.0
        self._waited = 0.0

    @property
    def holds(self) -> dict[str, list[tuple[float, float, int]]]:
        """lock -> recorded holds ``(start, end, cpu)``, in release order."""
        if not self._hidx_ok:
            return self._holds
        out: dict[str, list[tuple[float, float, int]]] = {}
        for name, per_cpu in self._hidx.items():
            hs = [(q, (s, e, c)) for c, (starts, ends, seqs) in per_cpu.items()
                  for s, e, q in zip(starts, ends, seqs)]
            hs.sort()
            out[name] = [h for _, h in hs]
        return out

    def _index_off(self) -> None:
        """Switch to the scans: the list of holds from the index, in release order."""
        self._holds = self.holds
        self._hidx_ok = False
        self._hidx = {}

    # -- event boundaries (called by Kernel.advance_to) -------------------------------
    def end_event(self) -> None:
        """Close the current event: its CPU is busy until its local end."""
        cpu = self._cpu if self._cpu is not None else self._ensure_started()
        self.cpu_free[cpu] = self._start + (self.k.now - self._g0) + self._waited

    def begin_event(self, t_ns: float) -> None:
        """A new event with timestamp ``t_ns`` begins at the current global time.

        Its CPU is read lazily (the replay sets ``Kernel.cpu`` after
        advancing the clock)."""
        t = self._t = float(t_ns)
        self._g0 = self.k.now
        self._cpu = None
        self._waited = 0.0
        if t > self._hmin or t > self._wmin:
            self._prune(t)

    def _ensure_started(self) -> int:
        if self._cpu is None:
            self._cpu = int(self.k.cpu)
            self._start = max(self._t, self.cpu_free.get(self._cpu, 0.0))
        return self._cpu

    def local(self) -> float:
        """Local (per-CPU) time of the current event now."""
        if self._cpu is None:
            self._ensure_started()
        return self._start + (self.k.now - self._g0) + self._waited

    def _prune(self, t: float) -> None:
        """Drop holds and writes that ended before ``t``.

        Runs at nearly every event boundary (the previous event's holds and
        writes usually end before the next timestamp), so the common case
        -- everything of a CPU expired -- is one comparison, and a CPU left
        with nothing is dropped from the index, which lets acquire, release
        and record_write skip their cross-CPU scans.  Neither changes a
        result: the scans do not depend on the order of CPUs (acquire's
        fixpoint; release sums in release order; a write's races are a
        union), and an empty list checks nothing."""
        if t > self._hmin:
            if self._hidx_ok:
                lo = float("inf")
                for per_cpu in self._hidx.values():
                    gone = None
                    for c, (starts, ends, seqs) in per_cpu.items():
                        if not ends or ends[-1] < t:        # ends are sorted: all e < t
                            gone = [c] if gone is None else gone + [c]
                            continue
                        if ends[0] < t:
                            k = bisect_left(ends, t)            # drop e < t
                            del starts[:k], ends[:k], seqs[:k]
                        if ends[0] < lo:
                            lo = ends[0]
                    if gone is not None:
                        for c in gone:
                            del per_cpu[c]
                self._hmin = lo
            else:
                for name, hs in self._holds.items():
                    kept = [h for h in hs if h[1] >= t]
                    if len(kept) != len(hs):
                        self._holds[name] = kept
        if t > self._wmin:
            lo = float("inf")
            writes = self._writes
            gone = None
            for cpu, ws in writes.items():
                kept = [w for w in ws if w[3] >= t]
                if not kept:
                    gone = [cpu] if gone is None else gone + [cpu]
                    continue
                if len(kept) != len(ws):
                    writes[cpu] = kept
                for w in kept:
                    if w[3] < lo:
                        lo = w[3]
            if gone is not None:
                for cpu in gone:
                    del writes[cpu]
            self._wmin = lo

    # -- mutexes ---------------------------------------------------------------------
    def acquire(self, name: str) -> None:
        cpu = self._cpu if self._cpu is not None else self._ensure_started()
        o = self.open.get(name)
        if o is not None and o[0] == cpu:
            o[2] += 1
            return
        t0 = t = self._start + (self.k.now - self._g0) + self._waited
        if self._hidx_ok:
            per_cpu = self._hidx.get(name)
            if per_cpu and (len(per_cpu) > 1 or cpu not in per_cpu):
                moved = True
                while moved:
                    moved = False
                    for c, (starts, ends, _) in per_cpu.items():
                        if c != cpu:
                            i = bisect_right(ends, t)   # the only candidate: first hold ending after t
                            if i < len(ends) and starts[i] <= t:
                                t, moved = ends[i], True
        else:
            moved = True
            while moved:
                moved = False
                for s, e, c in self._holds.get(name, ()):
                    if c != cpu and s <= t < e:
                        t, moved = e, True
        acq = self.acquires
        acq[name] = acq.get(name, 0) + 1
        if t > t0:
            wait = t - t0
            self._waited += wait
            self.wait_total += wait
            self.wait_by_lock[name] = self.wait_by_lock.get(name, 0.0) + wait
            self.contended[name] = self.contended.get(name, 0) + 1
        elif name not in self.wait_by_lock:
            self.wait_by_lock[name] = 0.0
        self.open[name] = [cpu, t, 1]
        self._held = None

    def release(self, name: str) -> None:
        o = self.open.get(name)
        if o is None:
            raise RuntimeError(f"release of {name}, which is not held")
        o[2] -= 1
        if o[2]:
            return
        del self.open[name]
        self._held = None
        cpu, start = o[0], o[1]
        end = self._start + (self.k.now - self._g0) + self._waited
        # mutual exclusion: time this hold shared with another CPU's
        # recorded hold must have been waited for (see module doc)
        overlap = 0.0
        if self._hidx_ok:
            per_cpu = self._hidx.get(name)
            if per_cpu is None:
                per_cpu = self._hidx[name] = {}
            elif len(per_cpu) > 1 or cpu not in per_cpu:
                terms = []
                for c, (starts, ends, seqs) in per_cpu.items():
                    if c != cpu:
                        j = bisect_right(ends, start)
                        while j < len(ends) and starts[j] < end:
                            terms.append((seqs[j], max(0.0, min(end, ends[j]) - max(start, starts[j]))))
                            j += 1
                if terms:
                    terms.sort()
                    overlap = sum(v for _, v in terms)
        else:
            overlap = sum(max(0.0, min(end, e) - max(start, s))
                          for s, e, c in self._holds.get(name, ()) if c != cpu)
        if overlap > 0:
            self._waited += overlap
            self.wait_total += overlap
            self.wait_by_lock[name] = self.wait_by_lock.get(name, 0.0) + overlap
            self.contended[name] = self.contended.get(name, 0) + 1
            end += overlap
        if self._hidx_ok:
            idx = per_cpu.get(cpu)
            if idx is None:
                idx = per_cpu[cpu] = ([], [], [])
            starts, ends, seqs = idx
            if ends and start < ends[-1]:
                self._index_off()                   # out of order: fall back to the scans
            else:
                starts.append(start)
                ends.append(end)
                seqs.append(self._seq)
                self._seq += 1
                if end < self._hmin:
                    self._hmin = end
                return
        self._holds.setdefault(name, []).append((start, end, cpu))
        if end < self._hmin:
            self._hmin = end

    def hold(self, name: str) -> "_Hold":
        """``mutex_lock(&name)`` ... ``mutex_unlock(&name)`` as a ``with`` block."""
        h = self._hold_cms.get(name)
        if h is None:
            h = self._hold_cms[name] = _Hold(self, name)
        return h

    # -- page writes -------------------------------------------------------------------
    def record_write(self, addr: int, nbytes: int, start: float, end: float) -> None:
        """A write (or update window) by the current CPU over ``[start, end)``
        of local time touching ``[addr, addr + nbytes)``: one race per page
        of it that another CPU's write overlapping in time also touched,
        unless the two held a common lock."""
        if nbytes <= 0:
            return
        cpu = self._cpu if self._cpu is not None else self._ensure_started()
        held = self._held
        if held is None or self._held_cpu != cpu:
            op = self.open
            if len(op) == 1:        # the common case: text_mutex around a poke
                (n, o), = op.items()
                held = _single(n) if o[0] == cpu else _NONE
            else:
                held = frozenset(n for n, o in op.items() if o[0] == cpu) if op else _NONE
            self._held, self._held_cpu = held, cpu
        p0, p1 = addr >> PAGE_SHIFT, (addr + nbytes - 1) >> PAGE_SHIFT
        writes = self._writes
        if len(writes) > 1 or cpu not in writes:
            hit: list[tuple[int, int]] = []
            for c, ws in writes.items():
                if c == cpu:
                    continue
                for q0, q1, s, e, locks in ws:
                    if q0 <= p1 and p0 <= q1 and s < end and start < e and not (held & locks):
                        hit.append((max(p0, q0), min(p1, q1)))
            if hit:
                hit.sort()
                lo, hi = hit[0]
                for a, b in hit[1:]:               # pages of the union of the overlaps
                    if a > hi + 1:
                        self.races += hi - lo + 1
                        lo, hi = a, b
                    elif b > hi:
                        hi = b
                self.races += hi - lo + 1
        ws = writes.get(cpu)
        if ws is None:
            ws = writes[cpu] = []
        ws.append((p0, p1, start, end, held))
        if end < self._wmin:
            self._wmin = end

    def forget_pages(self, addr: int, npages: int) -> None:
        """The pages were unmapped (``vfree``): a later mapping of the same
        addresses is new memory, not a neighbour of the old writes."""
        f0 = addr >> PAGE_SHIFT
        f1 = f0 + npages - 1
        for cpu, ws in self._writes.items():
            if not any(q0 <= f1 and f0 <= q1 for q0, q1, *_ in ws):
                continue
            out = []
            for w in ws:
                q0, q1 = w[0], w[1]
                if q0 > f1 or q1 < f0:
                    out.append(w)
                    continue
                if q0 < f0:
                    out.append((q0, f0 - 1) + w[2:])
                if q1 > f1:
                    out.append((f1 + 1, q1) + w[2:])
            self._writes[cpu] = out

    def page_update(self, addr: int, nbytes: int) -> "_Update":
        """Declare everything inside the ``with`` block one update of
        ``[addr, +nbytes)``.

        Only the outermost update of an event is recorded: the stores a
        design makes inside its own declared window (the ``memcpy`` between
        unprotect and protect) are part of that window, not further races."""
        return _Update(self, addr, nbytes)

    def locked_write(self, name: str, addr: int, nbytes: int, fn, k) -> None:
        """``fn(k, addr, nbytes)`` under lock ``name`` as one update of
        ``[addr, +nbytes)``: what ``with hold(name), page_update(addr,
        nbytes): fn(k, addr, nbytes)`` does, in one call (the text_poke
        family runs this ~80,000 times on fleet-day)."""
        self.acquire(name)
        try:
            start = self._update_begin()
            try:
                fn(k, addr, nbytes)
            finally:
                self._update_end(addr, nbytes, start)
        finally:
            self.release(name)

    def _update_begin(self) -> float | None:
        """Enter an update window (:meth:`page_update`): its start time when
        it is the outermost, None when it nests in another."""
        if self._update_depth:
            self._update_depth += 1
            return None
        start = self.local()
        self._update_depth = 1
        return start

    def _update_end(self, addr: int, nbytes: int, start: float | None) -> None:
        """Leave it: the outermost window records its write."""
        if start is None:
            self._update_depth -= 1
        else:
            self._update_depth = 0
            self.record_write(addr, nbytes, start, self.local())

    # -- summaries ------------------------------------------------------------------------
    def counters(self) -> dict[str, int]:
        out = {"lock_wait_ns": int(round(self.wait_total)), "page_write_races": self.races}
        for name in sorted(self.wait_by_lock):
            out[f"lock_wait_ns_{name}"] = int(round(self.wait_by_lock[name]))
            out[f"lock_acquires_{name}"] = self.acquires.get(name, 0)
            out[f"lock_contended_{name}"] = self.contended.get(name, 0)
        return out


_NONE: frozenset = frozenset()
_SINGLE: dict[str, frozenset] = {}


def _single(name: str) -> frozenset:
    """``frozenset({name})``, built once per lock name."""
    s = _SINGLE.get(name)
    if s is None:
        s = _SINGLE[name] = frozenset((name,))
    return s


# Plain context-manager classes: these wrap every text_poke and memcpy, and a
# generator-based @contextmanager costs several times more per use.
class _Hold:
    __slots__ = ("m", "name")

    def __init__(self, m: LockModel, name: str):
        self.m, self.name = m, name

    def __enter__(self) -> None:
        self.m.acquire(self.name)

    def __exit__(self, *exc) -> bool:
        self.m.release(self.name)
        return False


class _Update:
    __slots__ = ("m", "addr", "nbytes", "start")

    def __init__(self, m: LockModel, addr: int, nbytes: int):
        self.m, self.addr, self.nbytes = m, addr, nbytes

    def __enter__(self) -> None:
        self.start = self.m._update_begin()

    def __exit__(self, *exc) -> bool:
        self.m._update_end(self.addr, self.nbytes, self.start)
        return False
