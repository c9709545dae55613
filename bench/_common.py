"""What the benchmarks share: a watchdog that unwinds a run (cleanup included) on signals."""

from __future__ import annotations

import contextlib
import math
import signal
from collections.abc import Iterator
from types import FrameType


class Stop(BaseException):
    """Raised from a signal handler to unwind (and clean up) the whole run."""


#: Names of the signals received; set before unwinding so that a server killed by the same
#: Ctrl-C (the terminal signals the whole process group) is reported as an interruption.
SIGNALS_SEEN: list[str] = []


def _raise_stop(signum: int, _frame: FrameType | None) -> None:
    name = signal.Signals(signum).name
    SIGNALS_SEEN.append(name)
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise Stop(f"stopped by {name}")


@contextlib.contextmanager
def watchdog(budget: float) -> Iterator[None]:
    """SIGALRM after ``budget`` seconds and SIGTERM both unwind the run (cleanup included)."""
    handled = (signal.SIGALRM, signal.SIGTERM, signal.SIGINT)
    old = {signum: signal.signal(signum, _raise_stop) for signum in handled}
    signal.alarm(max(1, math.ceil(budget)))
    try:
        yield
    finally:
        signal.alarm(0)
        for signum, handler in old.items():
            signal.signal(signum, handler)
