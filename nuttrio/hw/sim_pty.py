"""Serve a simulated serial UPS on pseudo-terminals, for tests and for trying drivers.

General theory of operation
---------------------------
A simulator is a *model* (the UPS's state, shared by every port that serves it) and one
*session* per port (the bytes received and not yet understood). A session is sans-IO: it
is given what the driver wrote and returns what the UPS answers; the model's state can be
changed at any time from another thread (every model guards itself with a lock).

:class:`PtySimulator` runs the sessions in one background thread: each port is a pty pair
created with :func:`os.openpty`, the driver opens the *link* (a symlink with a stable name
that points at the pty's slave, as ``socat``'s ``link=`` does), and the thread answers on
the master side. Because of the symlink a port can *vanish* (the master is closed, so a
driver reading the slave gets an error or a hang-up, and the link is removed) and *come
back* later on a new pty under the same link name.

Faults, applied to the replies of every port of the simulator (:class:`Faults`):
``silent`` (no reply at all), ``short`` (only the first half of each reply), ``garbage``
(junk bytes instead of each reply). Asynchronous bytes from the UPS (APC Smart alerts) are
taken from the session's :meth:`Session.unsolicited` after each pass.
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
import tty
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Protocol

import attrs

__all__ = ["Faults", "PtySimulator", "Session"]

_GARBAGE = b"\x8f#@~\x00zz?\xff"
_READ_MAX = 4096


class Session(Protocol):
    """One port's conversation with the simulated UPS (sans-IO)."""

    #: The requests this port received, in order (one per command or query).
    received: list[str]

    def receive(self, data: bytes) -> bytes:
        """Take bytes the driver wrote; return the UPS's reply bytes (may be empty)."""
        ...

    def unsolicited(self) -> bytes:
        """Bytes the UPS sends on its own (alerts) since the last call; usually empty."""
        ...


@attrs.define
class Faults:
    """What goes wrong on the line now (change the attributes at any time).

    Attributes:
        silent: The UPS answers nothing.
        short: Each reply is cut to its first half.
        garbage: Each reply is replaced by junk bytes ending like a reply.
    """

    silent: bool = False
    short: bool = False
    garbage: bool = False

    def apply(self, reply: bytes) -> bytes:
        """The bytes that actually reach the driver for ``reply``."""
        if not reply or self.silent:
            return b""
        if self.garbage:
            return _GARBAGE + reply[-1:]
        if self.short:
            return reply[: len(reply) // 2]
        return reply


@attrs.define
class _Port:
    link: Path
    session: Session
    master: int | None = None
    slave: int | None = None

    def open(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)  # no echo, no line editing until the driver sets its own mode
        self.master, self.slave = master, slave
        with contextlib.suppress(FileNotFoundError):
            self.link.unlink()
        self.link.symlink_to(os.ttyname(slave))

    def close(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.link.unlink()
        for fd in (self.master, self.slave):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.master = self.slave = None


class PtySimulator:
    """A simulated serial UPS on one or more ptys, answered by a background thread.

    Example::

        model = MegatecModel()
        with PtySimulator(model.session, [tmp / "ttyQ1"]) as sim:
            ...  # a driver opens tmp / "ttyQ1"; change model's state; sim.faults.silent = True

    Args:
        new_session: Makes the session of one port (called again when a port comes back).
        links: The stable names (symlinks) of the ports, created here.

    The thread is stopped and the ptys closed on exit; an exception in a session ends
    the thread and is raised again on exit.
    """

    def __init__(self, new_session: Callable[[], Session], links: list[Path]) -> None:
        self.new_session = new_session
        self.faults = Faults()
        self._ports = [_Port(Path(link), new_session()) for link in links]
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._wake_r, self._wake_w = os.pipe()

    def session(self, index: int = 0) -> Session:
        """The current session of port ``index`` (a new one after :meth:`come_back`)."""
        return self._ports[index].session

    @property
    def links(self) -> list[Path]:
        """The ports' stable names, in the order given."""
        return [port.link for port in self._ports]

    def __enter__(self) -> PtySimulator:
        for port in self._ports:
            port.open()
        self._thread = threading.Thread(target=self._serve, name="pty-sim", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        os.write(self._wake_w, b"x")
        if self._thread is not None:
            self._thread.join(5)
        with self._lock:
            for port in self._ports:
                port.close()
        os.close(self._wake_r)
        os.close(self._wake_w)
        if self._error is not None and exc is None:
            raise self._error

    def vanish(self, index: int = 0) -> None:
        """Unplug port ``index``: its pty is closed and its link removed."""
        with self._lock:
            self._ports[index].close()
        os.write(self._wake_w, b"x")

    def come_back(self, index: int = 0) -> None:
        """Plug port ``index`` in again: a new pty under the same link, a fresh session."""
        with self._lock:
            port = self._ports[index]
            port.session = self.new_session()
            port.open()
        os.write(self._wake_w, b"x")

    # -- the thread --------------------------------------------------------------------

    def _masters(self) -> Iterator[tuple[int, _Port]]:
        for port in self._ports:
            if port.master is not None:
                yield port.master, port

    def _serve(self) -> None:
        try:
            while not self._stop.is_set():
                with self._lock:
                    fds = dict(self._masters())
                ready, _, _ = select.select([self._wake_r, *fds], [], [], 0.05)
                if self._wake_r in ready:
                    os.read(self._wake_r, 64)
                with self._lock:
                    for fd, port in self._masters():
                        self._pass(fd, port, fd in ready)
        except BaseException as exc:  # re-raised on exit
            self._error = exc

    def _pass(self, fd: int, port: _Port, readable: bool) -> None:
        out = b""
        if readable:
            try:
                data = os.read(fd, _READ_MAX)
            except OSError:  # the driver closed the slave: nothing to answer
                data = b""
            if data:
                out = self.faults.apply(port.session.receive(data))
        extra = port.session.unsolicited()
        if extra and not self.faults.silent:
            out += extra
        if out:
            with contextlib.suppress(OSError):
                os.write(fd, out)
