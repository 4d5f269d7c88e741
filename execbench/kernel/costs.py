"""Per-primitive costs that drive the virtual clock.

The clock exists so that exposure can be measured in time ("page-ns with W
and X both set") and so that an estimated CPU cost can be summed.  These
numbers are **parameters, not truths**: they are order-of-magnitude
estimates for a current 2-socket x86-64 server, chosen so that the relative
order of primitives is right (a broadcast IPI costs more than a local
temporary-mm poke, which costs more than a PTE update).  Every report prints
the values it used; change them with ``--cost name=value``.

Where the order of magnitude comes from:

* ``flush_tlb_all`` / per-page flush IPI: a broadcast IPI with its
  acknowledgements costs microseconds and grows with the CPU count
  (Amit et al., "Optimizing the TLB Shootdown Algorithm with Page-Access
  Tracking", USENIX ATC'17, measure ~5-10 us shootdowns on 2-socket x86).
* ``text_poke``: ``__text_poke()`` switches to ``poking_mm`` and back (two CR3
  writes, a local flush of 1-2 pages; arch/x86/kernel/alternative.c) --
  about a microsecond or two.
* ``cpa_call`` / ``cpa_page``: ``change_page_attr_set_clr()`` takes
  ``cpa_lock``, calls ``vm_unmap_aliases()`` and walks the page tables
  (arch/x86/mm/pat/set_memory.c): ~1 us per call plus ~50 ns per PTE.
* ``split_large_page``: allocates a page-table page and fills 512 entries.
* ``vmalloc``: ``alloc_vmap_area()`` + one page allocation and PTE per page.
* ``memcpy_byte``: ~10 GB/s.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

#: the largest cost ``--cost`` takes, in ns (1000 s: past any real primitive,
#: and it keeps the float virtual clock exact to the ns over any trace)
MAX_COST_NS = 1e12


@dataclass(frozen=True)
class Costs:
    """Cost of each simulated primitive, in nanoseconds."""

    vmalloc_call: float = 2000.0
    vmalloc_page: float = 250.0
    vfree_call: float = 1000.0
    vfree_page: float = 100.0
    cpa_call: float = 1000.0
    cpa_page: float = 50.0
    split_large_page: float = 2000.0
    flush_tlb_all: float = 8000.0
    flush_ipi_per_page: float = 5000.0
    text_poke: float = 1500.0
    text_poke_sync: float = 5000.0
    memcpy_byte: float = 0.1

    def as_dict(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def parse(cls, items: list[str] | None) -> "Costs":
        """Build from ``name=value`` strings (the CLI's ``--cost``)."""
        known = {f.name for f in fields(cls)}
        kw: dict[str, float] = {}
        for item in items or []:
            name, sep, value = item.partition("=")
            if not sep or name not in known:
                raise ValueError(f"--cost {item!r}: expected NAME=NS with NAME one of {sorted(known)}")
            try:
                v = float(value)
            except ValueError:
                raise ValueError(f"--cost {name}: {value!r} is not a number of ns") from None
            if not (math.isfinite(v) and 0 <= v <= MAX_COST_NS):
                # a negative, infinite or NaN cost turns the virtual clock into nonsense
                raise ValueError(f"--cost {name}: {value} must be a finite number of ns "
                                 f"in 0..{MAX_COST_NS:g}")
            kw[name] = v
        return cls(**kw)
