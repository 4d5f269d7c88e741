"""Command-line values checked before any work starts.

The argparse ``type=`` converters here raise ``argparse.ArgumentTypeError``,
so that argparse names the option (the CLI prints it as one UsageError
line); :func:`writable` raises :class:`~execbench.errors.OutputError` for a
path that cannot be written.  Nothing here replays, writes or creates
anything (the write probe removes its file at once).
"""
from __future__ import annotations

import argparse
import math
import os
import tempfile
from pathlib import Path

from ..errors import OutputError, printable

#: seeds are 32-bit (``numpy.random.default_rng([seed, ...])`` would take
#: any non-negative integer, but a seed a reader cannot type back is no help)
MAX_SEED = 2**32 - 1
#: ``--seeds N`` runs seeds 0..N-1; beyond this it is a typo, not a sweep
MAX_SEEDS = 1000
#: ``--mem-gib``: the frame model (execbench/kernel/physmem.py) keeps about
#: 8 bytes per 4 KiB frame and builds its free list at boot: 256 GiB takes
#: 1.9 GB and 6 s per replay (scattered placement); 2 GiB is its minimum
MIN_MEM_GIB, MAX_MEM_GIB = 2, 256
#: ``--jobs``: worker processes; more than this is a typo on any machine we know
MAX_JOBS = 256


def int_in(lo: int, hi: int, what: str = ""):
    """An argparse ``type=`` for an integer in ``lo..hi``."""
    def conv(text: str) -> int:
        try:
            v = int(text.strip(), 10)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{printable(text, 30)!r} is not an integer{what and ' (' + what + ')'}") from None
        if not lo <= v <= hi:
            raise argparse.ArgumentTypeError(f"{v} is outside {lo}..{hi}{what and ' (' + what + ')'}")
        return v
    conv.__name__ = "integer"
    return conv


seed_arg = int_in(0, MAX_SEED, "a 32-bit seed")
seeds_arg = int_in(1, MAX_SEEDS, "seeds 0..N-1")
jobs_arg = int_in(0, MAX_JOBS, "0 = one per CPU")
mem_gib_arg = int_in(MIN_MEM_GIB, MAX_MEM_GIB, "GiB the simulated machine can have")
#: ``--numa-nodes``: MAX_NUMNODES = 1 << NODES_SHIFT, and x86-64's NODES_SHIFT
#: is at most 10 (arch/x86/Kconfig, v6.1: ``range 1 10``)
numa_nodes_arg = int_in(1, 1 << 10, "num_possible_nodes(), at most MAX_NUMNODES")


def nonneg_float(what: str, hi: float = math.inf):
    def conv(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{printable(text, 30)!r} is not a number") from None
        if not math.isfinite(v) or v < 0 or v > hi:
            raise argparse.ArgumentTypeError(f"{printable(text, 30)} must be a finite number in 0..{hi:g} ({what})")
        return v
    conv.__name__ = "number"
    return conv


def writable(path: str | os.PathLike, what: str = "output") -> Path:
    """Fail now if ``path`` cannot be written later (by a temp file and a
    rename in its folder): the nearest existing folder above it must take a
    new file (probed with one that is removed at once), and ``path`` must
    not be a folder.  Folders that do not exist yet are created only when
    the output is written."""
    p = Path(path)
    shown = printable(p, 120)
    if p.is_dir():
        raise OutputError(f"{shown}: is a folder; {what} needs a file name")
    d = p.parent
    while not d.exists() and d != d.parent:
        d = d.parent
    if not d.is_dir():
        raise OutputError(f"{shown}: cannot write {what}: {printable(d, 80)} is not a folder")
    try:
        fd, tmp = tempfile.mkstemp(prefix=".execbench-check-", dir=d)
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        raise OutputError(f"{shown}: cannot write {what}: {e.strerror or e}") from None
    return p


def writable_dir(path: str | os.PathLike, what: str = "output") -> Path:
    """Like :func:`writable` for a folder that will receive files."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise OutputError(f"{printable(p, 120)}: is a file; {what} needs a folder")
    writable(p / "x", what)
    return p
