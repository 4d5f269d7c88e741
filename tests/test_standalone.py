"""The project stands alone: no code, doc or comment points at files outside
the repository (a sibling folder of notes, the machine it was written on).
Kernel sources are cited by file, function and version instead."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SKIP = {".git", ".venv", "results", "__pycache__", ".asv", "execbench.egg-info", "build"}
EXTS = {".py", ".md", ".json", ".toml", ".ipynb", ".cfg", ".txt", ".sh"}
# built from pieces so this file does not match itself
BAD = re.compile("|".join([r"\.\./" + "shared", "shared" + "/reference", "/" + "work/",
                           "reference" + "/kernel-semantics", "qemu-" + "recording\\.md",
                           "DESIGN" + "\\.md"]))


def files():
    for p in ROOT.rglob("*"):
        rel = p.relative_to(ROOT)
        if set(rel.parts) & SKIP or not p.is_file() or p.suffix not in EXTS:
            continue
        yield rel, p


def test_no_reference_outside_the_repository():
    hits = []
    for rel, p in files():
        for i, line in enumerate(p.read_text(errors="replace").splitlines(), 1):
            if BAD.search(line):
                hits.append(f"{rel}:{i}: {line.strip()[:100]}")
    assert not hits, "\n".join(hits)


def test_the_scan_sees_the_tree():
    # the scan must cover the package, the docs and the tests (else it proves nothing)
    seen = {str(rel) for rel, _ in files()}
    assert {"execbench/trace.py", "README.md", "docs/metrics.md",
            "tests/test_standalone.py"} <= seen


def test_every_markdown_file_named_exists_in_the_repository():
    # a note cited by bare name (``data-sources.md §3``) that is not in the
    # repository is as dangling as a path outside it
    # (a name inside a path, e.g. iovisor/bcc docs/tutorial.md, is another
    # project's file; report.md and validation.md are written to results/)
    names = {p.name for _, p in files() if p.suffix == ".md"} | {"report.md", "validation.md"}
    cited = re.compile(r"(?<![/\w.-])([\w-]+\.md)\b")
    missing = []
    for rel, p in files():
        for i, line in enumerate(p.read_text(errors="replace").splitlines(), 1):
            for name in cited.findall(line):
                if name not in names:
                    missing.append(f"{rel}:{i}: {name}")
    assert not missing, "\n".join(missing)
