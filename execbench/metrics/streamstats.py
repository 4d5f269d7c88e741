"""Summarising a replay's metric samples on the fly, in memory that does not
grow with the number of events.

:func:`.sampler.summarise` reduces the whole ``(events, metrics)`` sample
table of a replay to (final, peak, time-weighted mean) per metric.  A
streamed replay (``execbench run --stream``) cannot hold that table (10 M
events x 70 metrics is 5.6 GB), so :class:`StreamStats` takes the samples a
block at a time and keeps only the running values -- and gives the **same
bytes**: the means are sums, and a float sum depends on the order of its
additions.  ``summarise`` sums with numpy's ``ndarray.sum``, which adds
pairwise (numpy/_core/src/umath/loops_utils.h.src, ``pairwise_sum``: blocks
of at most 128 values summed in 8 interleaved accumulators, larger ranges
split at half rounded down to a multiple of 8, the halves summed
recursively and added).  The split depends only on the count, which a
streamed trace knows before the replay starts, so :class:`Pairwise` walks
the same tree as the values arrive and adds in the same order.
tests/test_stream.py checks the result against ``ndarray.sum`` for many
lengths, and the streamed summary against the whole one byte for byte.
"""
from __future__ import annotations

from typing import Generator

import numpy as np

#: numpy's PW_BLOCKSIZE: a range of at most this many values is one leaf
_LEAF = 128


def _leaf(a: np.ndarray) -> np.ndarray:
    """numpy's sum of ``a`` (at most :data:`_LEAF` rows), column by column."""
    n = a.shape[0]
    if n < 8:
        res = np.zeros(a.shape[1:])
        for i in range(n):
            res = res + a[i]
        return res
    r = a[0:8].copy()
    m = n - n % 8
    for i in range(8, m, 8):
        r += a[i:i + 8]
    res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
    for i in range(m, n):
        res = res + a[i]
    return res


def _tree(n: int) -> Generator[int, np.ndarray, np.ndarray]:
    """numpy's pairwise split of ``n`` values: yields how many rows the next
    leaf needs, is sent those rows, returns the sum."""
    if n <= _LEAF:
        block = yield n
        return _leaf(block)
    n2 = n // 2
    n2 -= n2 % 8
    a = yield from _tree(n2)
    b = yield from _tree(n - n2)
    return a + b


class Pairwise:
    """``values.sum(axis=0)`` of an ``(n, width)`` table given row blocks in
    order, with numpy's pairwise order of additions (module doc).  Holds at
    most one leaf (:data:`_LEAF` rows) and the ~log2(n) partial sums."""

    def __init__(self, n: int, width: int):
        self.n = n
        self._gen = _tree(n) if n else None
        self._want = next(self._gen) if n else 0
        self._parts: list[np.ndarray] = []
        self._have = 0
        self._seen = 0
        self.value = np.zeros(width)

    def push(self, rows: np.ndarray) -> None:
        self._seen += rows.shape[0]
        if self._seen > self.n:
            raise ValueError(f"{self._seen} rows pushed to a sum of {self.n}")
        while rows.shape[0]:
            take = min(self._want - self._have, rows.shape[0])
            self._parts.append(rows[:take].copy())      # the caller reuses its buffer
            self._have += take
            rows = rows[take:]
            if self._have == self._want:
                block = self._parts[0] if len(self._parts) == 1 else np.concatenate(self._parts)
                self._parts, self._have = [], 0
                try:
                    self._want = self._gen.send(block)
                except StopIteration as done:
                    # a reduction starts from the identity: 0.0 + the pairwise sum
                    self.value = 0.0 + done.value
                    self._gen = None

    def result(self) -> np.ndarray:
        if self._seen != self.n:
            raise ValueError(f"{self._seen} rows pushed to a sum of {self.n}")
        return self.value


class StreamStats:
    """(final, peak, time-weighted mean) of every metric over ``n`` samples,
    as :func:`.sampler.summarise` computes them from the whole table
    (``mean = sum(col[:-1] * diff(t)) / sum(diff(t))``, or ``col.mean()``
    when the trace takes no time), fed one sample at a time.  Memory: one
    block of :data:`BLOCK` samples plus a few rows of running sums."""

    BLOCK = 4096

    def __init__(self, n: int, width: int):
        self.n = n
        self.width = width
        self.buf = np.zeros((self.BLOCK, width))
        self.tbuf = np.zeros(self.BLOCK)
        self.k = 0                          # samples in the buffer
        self.count = 0                      # samples taken
        self.peak = np.full(width, -np.inf)
        self.prev: tuple[np.ndarray, float] | None = None   # the last flushed sample and its time
        m = max(n - 1, 0)
        self.weighted = Pairwise(m, width)  # sum of col[i] * (t[i+1] - t[i])
        self.span = Pairwise(m, 1)          # sum of t[i+1] - t[i]
        self.plain = Pairwise(n, width)     # sum of col (the no-time fallback)

    def add(self, row, t: float) -> None:
        self.buf[self.k] = row
        self.tbuf[self.k] = t
        self.k += 1
        if self.k == self.BLOCK:
            self._flush()

    def _flush(self) -> None:
        k = self.k
        if not k:
            return
        rows, ts = self.buf[:k], self.tbuf[:k]
        self.count += k
        if self.count > self.n:
            raise ValueError(f"{self.count} samples for a replay of {self.n} events")
        self.peak = np.maximum(self.peak, rows.max(axis=0))
        self.plain.push(rows)
        if self.prev is not None:
            before = np.concatenate([self.prev[0][None, :], rows[:-1]])
            w = np.diff(np.concatenate([[self.prev[1]], ts]))
        else:
            before = rows[:-1]
            w = np.diff(ts)
        self.weighted.push(before * w[:, None])
        self.span.push(w[:, None])
        self.prev = (rows[-1].copy(), float(ts[-1]))
        self.k = 0

    def result(self, names: list[str]) -> dict[str, tuple[float, float, float]]:
        """metric -> (final, peak, time-weighted mean), the values
        :func:`.sampler.summarise` gives for the same samples."""
        self._flush()
        if self.count != self.n:
            raise ValueError(f"{self.count} samples for a replay of {self.n} events")
        if self.n == 0:
            return {name: (0.0, 0.0, 0.0) for name in names}
        total = float(self.span.result()[0])
        weighted, plain = self.weighted.result(), self.plain.result()
        final = self.prev[0]
        out: dict[str, tuple[float, float, float]] = {}
        for j, name in enumerate(names):
            mean = float(weighted[j] / total) if total > 0 else float(plain[j] / self.n)
            out[name] = (float(final[j]), float(self.peak[j]), mean)
        return out

    def nbytes(self) -> int:
        """Bytes of samples held (the buffer and running rows): constant in ``n``."""
        return (self.buf.nbytes + self.tbuf.nbytes + self.peak.nbytes
                + sum(p.value.nbytes + sum(x.nbytes for x in p._parts)
                      for p in (self.weighted, self.span, self.plain)))
