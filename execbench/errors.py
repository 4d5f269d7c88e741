"""Errors that carry enough context for a user to fix their input.

Every error a user can meet is an :class:`ExecbenchError`; the CLI prints it
as one line (``execbench: error: ...``) and exits non-zero.  Anything else
reaching the CLI is a bug in execbench (see ``execbench.cli``).
"""
from __future__ import annotations

#: the longest message a :class:`TraceError` prints (bad cells are truncated)
TRACE_ERROR_MAX = 200


def printable(s: object, limit: int | None = None) -> str:
    """``s`` as one line of printable text: control characters (newlines,
    NUL, ...) are shown escaped; with ``limit``, cut to that many characters
    with an ellipsis."""
    s = str(s)
    if not s.isprintable():
        s = "".join(c if c.isprintable() else repr(c)[1:-1] for c in s)
    if limit is not None and len(s) > limit:
        s = s[:max(limit - 3, 0)] + "..."
    return s


def cell(v: object, limit: int = 24) -> str:
    """A table cell quoted for an error message: ``repr``, at most ``limit``
    characters (a 1 MB cell must not become a 1 MB message)."""
    s = v if isinstance(v, str) else str(v)
    if len(s) > limit:
        return repr(s[:limit])[:-1] + f"...' ({len(s):,} chars)"
    return repr(s)


class ExecbenchError(Exception):
    """Base class: every error execbench reports to a user."""

    #: exit status of the CLI for this kind of error
    exit_code = 1


class UsageError(ExecbenchError):
    """The command line asks for something that does not exist or cannot be:
    a value outside what the command accepts (checked before any work
    starts), an unknown design or workload.  The CLI exits 2 for these."""

    exit_code = 2


class OutputError(ExecbenchError):
    """An output file or folder that cannot be written (names the path)."""


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
    the CSV line is ``row + 2`` counting the header), the column where there
    is one, and the reason -- in one line of at most
    :data:`TRACE_ERROR_MAX` characters.  A trace that raises this is never
    replayed, not even in part.
    """

    def __init__(self, path: str, row: int | None, reason: str, column: str | None = None):
        self.path = str(path)
        self.row = row
        self.column = column
        self.reason = printable(reason)
        where = "" if row is None else f": row {row} (line {row + 2})"
        if column is not None:
            where += f", column {cell(column, 20)}"
        path_s = printable(self.path)
        room = TRACE_ERROR_MAX - len(where) - 2
        if len(path_s) > room // 2 and len(path_s) + len(self.reason) > room:
            # keep the file name: cut the folder part from the left
            keep = max(room // 2, 8)
            path_s = "..." + path_s[-(keep - 3):]
        reason_s = printable(self.reason, room - len(path_s))
        super().__init__(f"{path_s}{where}: {reason_s}")


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
