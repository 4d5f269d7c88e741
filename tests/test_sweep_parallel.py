"""A sweep gives the same table serially, in local processes and on Dask."""
from __future__ import annotations

import pytest

from execbench.stress import stress_trace
from execbench.sweep import AUTO_SERIAL_EVENTS, resolve_jobs, sweep

MACHINE = {"itlb_params": (("checkpoints", 2), ("fetches", 4096), ("warmup", 1024))}


@pytest.fixture(scope="module")
def setup():
    traces = [stress_trace(300, 1), stress_trace(200, 2)]
    designs = ["legacy", "execmem"]
    seeds = [0, 1]
    serial, results = sweep(traces, designs, seeds, machine=MACHINE, jobs=1)
    return traces, designs, seeds, serial, results


def test_serial_order_is_workload_design_seed(setup):
    traces, designs, seeds, serial, results = setup
    order = [(r.workload, r.design, r.seed) for r in results]
    assert order == [(t.name, d, s) for t in traces for d in designs for s in seeds]
    assert list(serial.drop_duplicates(["workload", "design", "seed"])[["workload", "design", "seed"]]
                .itertuples(index=False, name=None)) == order


def test_process_pool_gives_identical_table(setup):
    traces, designs, seeds, serial, _ = setup
    par, results = sweep(traces, designs, seeds, machine=MACHINE, jobs=2)
    assert par.equals(serial)
    assert [r.seed for r in results] == [s for _ in traces for _ in designs for s in seeds]


def test_dask_local_cluster_gives_identical_table(setup):
    distributed = pytest.importorskip("dask.distributed")
    traces, designs, seeds, serial, _ = setup
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        df, results = sweep(traces, designs, seeds, machine=MACHINE, scheduler=cluster.scheduler_address)
    assert df.equals(serial)
    assert len(results) == len(traces) * len(designs) * len(seeds)


def test_resolve_jobs():
    assert resolve_jobs(None, 10**9) == 1
    assert resolve_jobs(3, 1) == 3
    assert resolve_jobs(0, AUTO_SERIAL_EVENTS - 1) == 1      # small sweep: serial
    assert resolve_jobs(0, AUTO_SERIAL_EVENTS) >= 1
    with pytest.raises(ValueError):
        resolve_jobs(-1, 0)
