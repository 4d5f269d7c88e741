"""The ``execbench`` command (bcc-style: examples in --help, --json output)."""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from . import __version__
from .errors import ExecbenchError, UsageError, printable

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


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``execbench: error: run: argument
    --seed: ...`` and exit status 2, instead of the usage block."""

    def error(self, message: str):
        cmd = self.prog.removeprefix("execbench").strip()
        raise UsageError(f"{cmd + ': ' if cmd else ''}{message} (see {self.prog} --help)")


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="execbench",
        description="Compare Linux executable-memory allocator designs on recorded workloads.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"execbench {__version__}")
    sub = p.add_subparsers(dest="command", metavar="command")
    for mod in COMMANDS:
        importlib.import_module(mod).register(sub)
    return p


#: exit status for an exception that is not an ExecbenchError: a bug in
#: execbench (sysexits.h EX_SOFTWARE), distinct from every user error
EXIT_BUG = 70
#: exit status after Ctrl-C (128 + SIGINT), as a shell reports it
EXIT_INTERRUPTED = 130


def _error_line(e: BaseException) -> str:
    text = str(e) or type(e).__name__
    return printable(text, 400)


def main(argv: list[str] | None = None) -> int:
    """Run one command.  Only :class:`~execbench.errors.ExecbenchError` is
    a user's error (one line, its exit status); Ctrl-C prints one line and
    exits 130; anything else is a bug in execbench, reported in one line
    with exit status 70 (``EXECBENCH_DEBUG=1`` shows the traceback)."""
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help()
            return 2
        return int(args.func(args) or 0)
    except BrokenPipeError:
        return _closed_pipe()
    except ExecbenchError as e:          # UsageError: exit 2, the others 1
        print(f"execbench: error: {_error_line(e)}", file=sys.stderr)
        return e.exit_code
    except SystemExit as e:         # --help, --version
        if isinstance(e.code, int) or e.code is None:
            return e.code or 0
        print(f"execbench: error: {_error_line(e.code)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("execbench: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as e:        # noqa: BLE001 - the last resort: one line, not a traceback
        if os.environ.get("EXECBENCH_DEBUG"):
            raise
        print(f"execbench: internal error (a bug in execbench, please report it with the command "
              f"line): {type(e).__name__}: {_error_line(e)}", file=sys.stderr)
        return EXIT_BUG


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
