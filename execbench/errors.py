"""Errors that carry enough context for a user to fix their input."""
from __future__ import annotations


class ExecbenchError(Exception):
    """Base class: every error execbench reports to a user."""


class UsageError(ExecbenchError):
    """The command line asks for something that does not exist or cannot be
    (an unknown design or workload, a malformed option).  The CLI exits 2
    for these, 1 for every other error."""


class UnknownName(UsageError, KeyError):
    """An unknown design, workload or other registered name, with the
    closest known names as a suggestion.  Also a ``KeyError`` so that code
    looking names up in a mapping keeps working."""

    def __init__(self, kind: str, name: str, known: list[str]):
        import difflib
        self.kind, self.name, self.known = kind, name, list(known)
        close = difflib.get_close_matches(name, self.known, n=3, cutoff=0.6)
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        self.message = f"unknown {kind} {name!r}{hint} (known: {', '.join(self.known) or 'none'})"
        super().__init__(self.message)

    def __str__(self) -> str:       # KeyError would quote the message
        return self.message


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
