"""Boot workloads: a real loaded-module set, loaded in dependency order, from a module table.

Why this shape (docs/data-sources.md §2): third-party ``lsmod`` listings tell us *which*
modules a real machine had loaded; their Size column comes from other kernels and is not
used.  Sizes come from one Debian kernel's module table.  The set is

    (listing ∩ modules that exist in the table) ∪ provider drivers, closed over
    ``.modinfo depends=`` (the information ``modules.dep`` carries),

and the order is a real load order: ``lsmod`` prints ``/proc/modules``, which lists the
most recently loaded module first (``kernel/module/main.c`` ``load_module()`` does
``list_add_rcu(&mod->list, &modules)`` at the head), so the listing reversed is the load
order; a stable topological pass then puts every dependency before its users, as
``modprobe`` does.

Each module gets ``load`` then ``init_done``.  Timing and CPU are synthetic unless the
caller has a recording: loads ``spacing_ns`` apart, ``init_done`` ``init_ns`` after its
load, CPUs round-robin; the provenance TOML says so.
"""

from __future__ import annotations

import dataclasses
import pathlib
import re
from collections.abc import Iterable, Sequence

from .tracebuild import TraceBuilder


class ListingError(ValueError):
    """A module listing that cannot be read; names file and line."""


@dataclasses.dataclass(frozen=True)
class BootSet:
    """The chosen modules in load order, and what was dropped or added on the way."""

    order: list[str]
    listed: int
    not_in_table: list[str]
    added_by_depends: list[str]
    providers: list[str]


def normalise(name: str) -> str:
    """Run-time module names use '_' where file names may use '-' (kmod's rule)."""
    return name.strip().replace("-", "_")


def read_listing(path: pathlib.Path) -> list[str]:
    """Module names from an ``lsmod`` output or a one-name-per-line file, in file order.

    Lines starting with '#' are comments; the lsmod header ("Module  Size  Used by") and
    a bare ``lsmod`` / ``$ lsmod`` command line pasted above it are skipped.  A name that
    is not a valid module name is an error naming the line.
    """
    names: list[str] = []
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        s = line.strip()
        if not s or s.startswith("#") or re.match(r"^Module\s+Size\b", s) or re.fullmatch(r"(\$\s*)?lsmod", s):
            continue
        tok = s.split()[0]
        if not re.fullmatch(r"[A-Za-z0-9_\-]+", tok):
            raise ListingError(f"{path}: line {lineno}: {tok!r} is not a module name")
        n = normalise(tok)
        if n not in names:
            names.append(n)
    if not names:
        raise ListingError(f"{path}: no module names")
    return names


def choose_boot_set(table: dict[str, dict[str, str]], listing: Sequence[str],
                    providers: Iterable[str] = (), lsmod_order: bool = True) -> BootSet:
    """Intersect the listing with the table, add providers, close over depends, order.

    ``lsmod_order``: the listing is newest-first (lsmod / /proc/modules), so reverse it.
    """
    providers = [normalise(p) for p in providers]
    for p in providers:
        if p not in table:
            raise ListingError(f"provider driver {p!r} is not a module of this kernel")
    base = list(reversed(listing)) if lsmod_order else list(listing)
    not_in_table = [n for n in listing if n not in table]
    wanted = [n for n in base if n in table] + [p for p in providers if p not in base]
    order: list[str] = []
    done: set[str] = set()
    added: list[str] = []
    initial = set(wanted)

    def visit(name: str, stack: tuple[str, ...]) -> None:
        if name in done:
            return
        if name in stack:
            raise ListingError(f"dependency cycle: {' -> '.join(stack + (name,))}")
        if name not in table:
            raise ListingError(f"module {stack[-1]!r} depends on {name!r}, which is not in the table")
        deps = [d for d in table[name].get("depends", "").split(",") if d]
        for d in deps:
            visit(normalise(d), stack + (name,))
        done.add(name)
        order.append(name)
        if name not in initial:
            added.append(name)

    for n in wanted:
        visit(n, ())
    return BootSet(order, len(listing), not_in_table, added, providers)


def boot_trace(table: dict[str, dict[str, str]], order: Sequence[str], *, start_ns: int = 0,
               spacing_ns: int = 10_000_000, init_ns: int = 2_000_000, ncpus: int = 2,
               builder: TraceBuilder | None = None) -> TraceBuilder:
    """Append ``load`` + ``init_done`` for each module in order (synthetic timing)."""
    if init_ns >= spacing_ns:
        raise ValueError("init_ns must be shorter than spacing_ns so events stay in time order")
    b = builder if builder is not None else TraceBuilder()
    for i, name in enumerate(order):
        t = start_ns + i * spacing_ns
        cpu = i % ncpus
        b.module_load(t, cpu, table[name])
        b.add(t + init_ns, cpu, "module", "init_done", name)
    return b


def listing_source(path: pathlib.Path) -> str:
    """The '# Source:' comment lines of a listing file, joined (where its names came from)."""
    lines = [ln.lstrip("# ").rstrip() for ln in path.read_text().splitlines() if ln.startswith("#")]
    return " ".join(ln for ln in lines if ln)


def boot_provenance(name: str, description: str, rows: Sequence[dict[str, str]],
                    table_path: pathlib.Path, listing_path: pathlib.Path, bs: BootSet,
                    builder: TraceBuilder, date: str, providers: Sequence[str],
                    spacing_ns: int, init_ns: int = 2_000_000) -> dict:
    """TOML sidecar for a boot workload (what is real, what is synthetic, how to redo it)."""
    first = rows[0] if rows else {}
    return {
        "workload": {
            "name": name,
            "description": description or f"boot: {len(bs.order)} modules of {first.get('kernel', '?')} loaded "
                                          f"in dependency order, each load then init_done",
            "users": ["module"],
            "events": len(builder),
            "modules": len(bs.order),
            "synthetic": True,
            "synthetic_columns": ["t_ns", "cpu"],
            "synthetic_note": (f"timing and CPU are synthetic: loads {spacing_ns} ns apart, init_done "
                               f"{init_ns} ns after its load, CPUs round-robin over 2; the module set, "
                               f"its order and every size are real"),
        },
        "source": {
            "module_table": table_path.as_posix(),
            "kernel": first.get("kernel", ""),
            "packages": sorted({r["source"] for r in rows}),
            "listing": listing_path.as_posix(),
            "listing_source": listing_source(listing_path),
            "listed": bs.listed,
            "listed_not_in_kernel": bs.not_in_table,
            "providers": list(providers),
            "added_by_depends": bs.added_by_depends,
            "order": "listing reversed (lsmod prints newest first), dependencies first (.modinfo depends=)",
            "date": date,
        },
        "regenerate": {"command": (f"execbench record boot --table {table_path.as_posix()} --listing "
                                   f"{listing_path.as_posix()} "
                                   + " ".join(f"--provider {p}" for p in providers)
                                   + f" --name {name} -o <out>.csv.gz")},
        "licence": {"note": "module names only from a third-party listing (cited above); sizes are derived "
                            "numbers from GPL-2.0 kernel modules; no code or data bytes kept"},
    }
