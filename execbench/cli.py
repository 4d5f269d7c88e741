"""The ``execbench`` command (bcc-style: examples in --help, --json output)."""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from . import __version__
from .errors import ExecbenchError, UsageError

#: subcommand modules, in --help order; each has register(subparsers)
COMMANDS = [
    "execbench.commands.list_cmd",
    "execbench.commands.run_cmd",
    "execbench.commands.compare_cmd",
    "execbench.commands.interface_cmd",
    "execbench.commands.report_cmd",
    "execbench.commands.plot_cmd",
    "execbench.commands.all_cmd",
    "execbench.commands.record",
]

EXAMPLES = """examples:
  execbench list                          # designs and shipped workloads
  execbench compare                       # every design on the default workload
  execbench run --design legacy --workload boot-cloud --seed 1
  execbench all                           # regenerate results/ (reports, charts)
  execbench report -w boot-cloud          # a plain-text LKML report
  execbench record modules pkg.deb        # a module table from a kernel package
  execbench <command> --help              # more examples per command
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="execbench",
        description="Compare Linux executable-memory allocator designs on recorded workloads.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"execbench {__version__}")
    sub = p.add_subparsers(dest="command", metavar="command")
    for mod in COMMANDS:
        importlib.import_module(mod).register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:
        return _closed_pipe()
    except UsageError as e:
        print(f"execbench: error: {e}", file=sys.stderr)
        return 2
    except ExecbenchError as e:
        print(f"execbench: error: {e}", file=sys.stderr)
        return 1
    except (KeyError, ValueError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"execbench: error: {msg}", file=sys.stderr)
        return 2


def _closed_pipe() -> int:
    """The reader went away (``execbench list --json | head``): stop quietly,
    as ``cat`` does.  stdout is pointed at /dev/null so that the interpreter's
    final flush of the buffered rest raises nothing either."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 141          # 128 + SIGPIPE, what a shell reports for a killed writer


if __name__ == "__main__":
    sys.exit(main())
