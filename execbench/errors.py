"""Errors that carry enough context for a user to fix their input."""
from __future__ import annotations


class ExecbenchError(Exception):
    """Base class: every error execbench reports to a user."""


class TraceError(ExecbenchError):
    """A trace that breaks the schema.

    Says the file, the data row (0-based, i.e. the ``seq`` it should have;
    the CSV line is ``row + 2`` counting the header) and the reason.  A trace
    that raises this is never replayed, not even in part.
    """

    def __init__(self, path: str, row: int | None, reason: str):
        self.path = str(path)
        self.row = row
        self.reason = reason
        where = f"{self.path}" if row is None else f"{self.path}: row {row} (line {row + 2})"
        super().__init__(f"{where}: {reason}")


class DesignError(ExecbenchError):
    """A design was asked for something the kernel it models would refuse
    (e.g. an allocation that does not fit the module range)."""


class OutOfMemory(DesignError):
    """The simulated kernel has no frames or no address space left for one
    allocation: where the real kernel returns ``-ENOMEM`` to that one
    caller (``__vmalloc_node_range()`` failing, mm/vmalloc.c) and goes on.

    Raised by the kernel model (:mod:`execbench.kernel`); the replay
    decides what a failed user operation means (see ``replay.run``)."""


class KernelBug(ExecbenchError):
    """The simulated kernel caught a design doing what would oops a real one
    (writing to a read-only page, freeing an unknown area, ...).  This is a
    bug in the model, never in the workload."""
