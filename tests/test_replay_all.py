"""Every shipped workload replays on every registered design, and the
simulated kernel's invariants hold at the end of each replay."""
from __future__ import annotations

import math

import pytest

from execbench import registry
from execbench.kernel import Kernel, KernelConfig
from execbench.trace import load_trace
from execbench.users import dispatch_table
from execbench.workloads import catalog
from execbench.kernel.text_poke import SOURCES
from invariants import assert_aggregates

#: replaying the largest traces on every design belongs to asv / the sweep
MAX_EVENTS = 20000

WORKLOADS = [w for w in catalog.shipped() if w.events <= MAX_EVENTS]


def _replay(trace, design):
    cls = registry.get(design)
    k = Kernel(KernelConfig(seed=1, version=cls.kernel_version))
    d = cls(k)
    table = dispatch_table(d)
    for ev in trace.events():
        k.advance_to(ev.t_ns)
        k.cpu, k.user = ev.cpu, ev.user
        table[(ev.user, ev.op)](ev)
    return k


@pytest.mark.parametrize("design", registry.names())
@pytest.mark.parametrize("w", WORKLOADS, ids=[w.name for w in WORKLOADS])
def test_replays_and_keeps_invariants(w, design):
    k = _replay(load_trace(w.path, name=w.name), design)
    # no two live vmap areas overlap (areas include their guard pages)
    starts, ends = k.vmap.starts, k.vmap.ends
    assert (starts[1:] >= ends[:-1]).all()
    # incremental page-table aggregates agree with a full recount
    assert_aggregates(k.pt)
    assert math.isfinite(k.wx_page_ns) and k.now >= 0
    # every __text_poke lands in exactly one source; none outside the events
    c = k.counters
    assert sum(c[f"text_pokes_{s}"] for s in SOURCES) == c["text_pokes"]
    assert c["text_pokes_other"] == 0
    # the W+X causes partition the W+X pages and their time integral
    assert k.pt.recount()["wx_by_cause"]
    assert sum(k.wx_page_ns_by_cause) == pytest.approx(k.wx_page_ns, rel=1e-9, abs=1e-6)
    assert k.wx_page_ns_text_poke <= k.wx_page_ns * (1 + 1e-9) + 1e-6
