"""pytest-benchmark micro-benchmarks of the simulator's hot paths.

Disabled in the normal test run (pyproject: ``--benchmark-disable``: each
runs once as an ordinary test, so it still fails if the code breaks).
Measure with:

    pytest tests/bench --benchmark-enable --benchmark-only \
        --benchmark-json=/tmp/bench.json

Each benchmark puts the work per call in ``benchmark.extra_info`` so
events/s or pages/s can be derived from the JSON.
"""
from __future__ import annotations

from execbench.kernel import Kernel, KernelConfig
from execbench.metrics.sampler import NAMES, Sampler
from execbench.replay import run
from execbench.units import PAGE_SIZE
from execbench.workloads import catalog
from execbench.trace import load_trace


def test_vmalloc_vfree(benchmark):
    """128 module-sized allocations (16 pages each) placed and freed."""
    k = Kernel(KernelConfig(seed=0))

    def cycle():
        addrs = [k.vmalloc(16 * PAGE_SIZE, caller="bench") for _ in range(128)]
        for a in addrs:
            k.vfree(a)
        return addrs

    addrs = benchmark(cycle)
    benchmark.extra_info["allocations"] = 128
    assert len(set(addrs)) == 128          # distinct areas while all were live
    assert not k.areas                     # everything freed again


def test_cpa_on_range(benchmark):
    """set_memory_ro + set_memory_x then back, on a 64-page area."""
    k = Kernel(KernelConfig(seed=0))
    a = k.vmalloc(64 * PAGE_SIZE, caller="bench")

    def flip():
        k.set_memory_ro(a, 64)
        k.set_memory_x(a, 64)
        k.set_memory_nx(a, 64)
        k.set_memory_rw(a, 64)

    before = k.counters["cpa_calls"]
    benchmark(flip)
    benchmark.extra_info["pages_per_call"] = 4 * 64
    assert k.counters["cpa_calls"] > before


def test_metric_sampling(benchmark):
    """One sample of every metric over a kernel with 64 live areas."""
    k = Kernel(KernelConfig(seed=0))
    for _ in range(64):
        k.vmalloc(8 * PAGE_SIZE, caller="bench")
    s = Sampler(k, 1)
    benchmark(s.sample, 0)
    benchmark.extra_info["metrics"] = len(NAMES)
    assert s.samples[0, NAMES.index("vmap_areas")] == 64


def test_replay_default_workload(benchmark):
    """A whole replay of the default workload on the baseline design."""
    info = catalog.default()
    tr = load_trace(info.path, name=info.name)
    r = benchmark(run, tr, "legacy", 0, None, None, None, False)
    benchmark.extra_info["events"] = r.events
    assert r.events == len(tr)
