"""NUT's client tools, as nuttrio commands: ``upsc``, ``upscmd``, ``upsrw``, ``upslog``.

Each takes the arguments of the NUT 2.8.0 tool of that name and prints the same bytes on
standard output and standard error, with the same exit status, against any NUT server
(nuttrio or upsd). nuttrio adds JSON output (docs/json.md), ``--password-file`` and
upslog's ``-m`` (NUT 2.8.1). Run them as ``nuttrio upsc ...`` or ``nuttrio-upsc ...``.

Failures end a tool as NUT's end: its message on standard error and exit status 1 (0 for
``-h``, ``-V`` and the usage). Each tool is one :func:`trio.run`; SIGINT ends upsc, upscmd
and upsrw at once as it ends the C tools (the console scripts restore its default action),
and upslog handles its signals as upslog does.
"""

from __future__ import annotations

import importlib
import signal
import sys
from collections.abc import Callable, Sequence

from ._base import Stdio, run

__all__ = ["TOOLS", "console", "run_tool", "upsc_main", "upscmd_main", "upslog_main", "upsrw_main"]

#: Tool name (also its module's) -> a one-line summary for ``nuttrio --help``. A tool's
#: module is imported when it runs, so the daemon never loads the four of them.
TOOLS: dict[str, str] = {
    "upsc": "NUT's upsc: list UPSes, variables or clients (-j for JSON)",
    "upscmd": "NUT's upscmd: list or send instant commands",
    "upsrw": "NUT's upsrw: list or set writable variables",
    "upslog": "NUT's upslog: log UPS variables to files (-m, --json)",
}


def _main_of(name: str) -> Callable[[Stdio, list[str]], int]:
    if name not in TOOLS:
        raise KeyError(name)
    main: Callable[[Stdio, list[str]], int] = importlib.import_module(f".{name}", __name__).main
    return main


def run_tool(name: str, argv: Sequence[str], stdio: Stdio | None = None) -> int:
    """Run the tool ``name`` with the arguments after its name; returns the exit status.

    Args:
        name: ``upsc``, ``upscmd``, ``upsrw`` or ``upslog``.
        argv: Its arguments.
        stdio: Its streams (default: the process's standard streams).
    """
    if stdio is None:
        stdio = Stdio(sys.stdout.buffer, sys.stderr.buffer, sys.stdin.buffer)
    return run(_main_of(name), list(argv), stdio)


def console(name: str, argv: Sequence[str]) -> int:
    """Run a tool as a command: C's default SIGINT/SIGPIPE actions, then the tool.

    (``upsc ... | head -1`` then ends as the C tool ends, without a traceback.)
    """
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    if name != "upslog":
        signal.signal(signal.SIGINT, signal.SIG_DFL)
    return run_tool(name, argv)


def _console(name: str) -> int:
    return console(name, sys.argv[1:])


def upsc_main() -> int:
    """``nuttrio-upsc``."""
    return _console("upsc")


def upscmd_main() -> int:
    """``nuttrio-upscmd``."""
    return _console("upscmd")


def upsrw_main() -> int:
    """``nuttrio-upsrw``."""
    return _console("upsrw")


def upslog_main() -> int:
    """``nuttrio-upslog``."""
    return _console("upslog")
