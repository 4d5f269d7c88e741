"""What a design is: an allocator API over the simulated kernel, plus the
four users (module loader, BPF JIT, ftrace, kprobes) written against it.

Modelled on SimPy's ``BaseResource`` docstring: a design subclass provides

* class attributes ``name`` (registry id), ``title`` (one line), ``source``
  (what it follows: series, Message-ID or file@version), ``kernel_version``
  (the CPA rules it runs under) and ``defaults`` (its parameters, among them
  ``loader``: the module loader strategy, models/common/load_work.py,
  resolved to the effective one in ``self.params`` so that results and
  reports show it);
* in ``__init__``, four user objects -- ``self.module``, ``self.bpf``,
  ``self.ftrace``, ``self.kprobe`` -- each with one method per trace op
  (see :mod:`execbench.users`), calling only the design's own API, which in
  turn calls only :class:`~execbench.kernel.Kernel` primitives.

A design never reads metrics, and metrics never read a design: they see the
kernel's page tables, frames and counters only.  Adding a design is one new
package under ``models/`` and one line in :mod:`execbench.registry`.
"""
from __future__ import annotations

import math
import re
from typing import Any, ClassVar

from .errors import DesignError, UsageError, printable
from .kernel import Kernel


class Design:
    name: ClassVar[str] = ""
    title: ClassVar[str] = ""
    source: ClassVar[str] = ""
    kernel_version: ClassVar[tuple[int, int]] = (6, 1)
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, kernel: Kernel, **params: Any):
        unknown = set(params) - set(self.defaults)
        if unknown:
            raise DesignError(f"design {self.name!r} has no parameter(s) {sorted(unknown)}; "
                              f"known: {sorted(self.defaults)}")
        why = self.arch_support(kernel.arch.name)
        if why:
            raise DesignError(f"{self.name} does not exist on {kernel.arch.name}: {why}")
        self.kernel = kernel
        self.params: dict[str, Any] = {**self.defaults, **params}

    @classmethod
    def loader_note(cls, params: dict[str, Any] | None = None) -> str:
        """What the run's loader strategy is relative to the design as
        posted or shipped: '' (as posted/shipped), or a short label such as
        "what-if" or "extrapolation" that reports print beside it."""
        return ""

    @classmethod
    def arch_support(cls, arch: str) -> str | None:
        """None when the design exists on ``arch``; otherwise one line saying
        why it does not (``execbench list`` and ``compare --arch`` show it;
        building the design there raises :class:`DesignError` with it)."""
        return None

    @classmethod
    def arch_note(cls, arch: str, params: dict[str, Any] | None = None) -> str:
        """What the design is on ``arch`` relative to code that exists: ''
        (as merged or posted for that architecture), or a short label such as
        "our reading" or "extrapolation" that reports print beside it."""
        return ""

    @classmethod
    def kernel_for(cls, params: dict[str, Any] | None = None) -> tuple[int, int]:
        """The kernel release a run with ``params`` models (for results meta
        and reports).  Default: :attr:`kernel_version`; a design whose
        parameters select a release (``execmem_rox --param version=7.2``)
        overrides this so each reference row names the release it is."""
        return cls.kernel_version

    @classmethod
    def parse_params(cls, items: list[str] | None) -> dict[str, Any]:
        """``name=value`` strings -> typed values, typed like the defaults.
        A value that does not parse names the parameter and the type it
        needs (:class:`~execbench.errors.UsageError`)."""
        out: dict[str, Any] = {}
        for item in items or []:
            key, sep, raw = item.partition("=")
            key, raw = key.strip(), raw.strip()
            if not sep or key not in cls.defaults:
                raise UsageError(f"--param {printable(item, 40)!r}: design {cls.name!r} takes "
                                 f"{', '.join(f'{k}={v!r}' for k, v in cls.defaults.items()) or 'no parameters'}")
            d = cls.defaults[key]
            bad = UsageError(f"--param {key}: {printable(raw, 30)!r} is not {_KIND[type(d)]} "
                             f"(design {cls.name!r}, default {d!r})")
            if isinstance(d, bool):
                if raw.lower() not in ("1", "0", "true", "false", "yes", "no"):
                    raise bad
                out[key] = raw.lower() in ("1", "true", "yes")
            elif isinstance(d, int):
                if not re.fullmatch(r"-?[0-9]{1,18}", raw):
                    raise bad
                out[key] = int(raw)
            elif isinstance(d, float):
                try:
                    out[key] = float(raw)
                except ValueError:
                    raise bad from None
                if not math.isfinite(out[key]):
                    raise bad
            elif isinstance(d, tuple):
                if not re.fullmatch(r"[0-9]{1,4}(\.[0-9]{1,4})*", raw):
                    raise bad
                out[key] = tuple(int(p) for p in raw.split("."))
            else:
                out[key] = raw
        return out


_KIND = {bool: "a boolean (true/false)", int: "an integer", float: "a finite number",
         tuple: "a version like 6.15", str: "a string"}
