"""What upscmd and upsrw share: logging in, sending the action, ``-w`` tracking, ``-t``."""

from __future__ import annotations

import errno
from collections.abc import Awaitable, Callable

import attrs
import trio

from ...client import NutClient, TrackedResult
from ._base import (
    Stdio,
    UpscliError,
    getpass,
    nut_call,
    read_password_file,
    str_to_uint,
    username_prompt,
)

__all__ = ["Credentials", "Tracking", "login", "parse_timeout", "send_action"]

#: ``-t`` by default: seconds ``-w`` waits for the driver's result.
DEFAULT_TRACKING_TIMEOUT = 10
#: Characters of a tracking id (a UUID); upscmd/upsrw wait only for ids of this length.
TRACKING_ID_LENGTH = 36
#: Seconds between ``GET TRACKING`` polls while the result is pending (as NUT).
TRACKING_POLL = 1.0


def parse_timeout(io: Stdio, text: str) -> int:
    """``-t``: an unsigned whole number of seconds, or NUT's fatal message."""
    value = str_to_uint(text)
    if value is None:
        code = errno.ERANGE if text.strip().lstrip("+").isdigit() else errno.EINVAL
        io.fatal_errno(
            "Could not convert the provided value for timeout ('-t' option) to unsigned int",
            code,
        )
    return value


@attrs.define
class Credentials:
    """``-u``, ``-p`` and ``--password-file`` as given (``None``: not given)."""

    username: str | None = None
    password: str | None = None

    def take(self, io: Stdio, letter: str, value: str | None) -> bool:
        """Record one option if it is a credential one; returns whether it was."""
        if letter == "u":
            self.username = value
        elif letter == "p":
            self.password = value
        elif letter == "password-file":
            self.password = read_password_file(io, value or "")
        else:
            return False
        return True

    def ask_username(self, io: Stdio, *, eof_fatal: bool) -> str:
        """``-u``, else ``Username (me): `` read from standard input.

        An empty answer means the login name. At end of input upscmd fails with
        ``Error reading from stdin!`` (``eof_fatal``); upsrw takes the login name.
        """
        if self.username is not None:
            return self.username
        me, line = username_prompt(io)
        if line is None and eof_fatal:
            io.fatal("Error reading from stdin!")
        if line is not None and len(line) > 1:
            return line[:-1]
        if me is None:
            io.fatal("No username available - even tried getpwuid")
        return me

    def ask_password(self, io: Stdio) -> str:
        """The password given, else ``Password: `` read without echo (getpass)."""
        return self.password if self.password is not None else getpass(io, "Password: ")


@attrs.define
class Tracking:
    """``-w`` and ``-t``, and the words of the tool's messages about them.

    Attributes:
        what: ``command`` (upscmd) or ``set variable`` (upsrw), as in NUT's messages.
    """

    what: str
    enabled: bool = False
    timeout: int = DEFAULT_TRACKING_TIMEOUT


async def login(io: Stdio, client: NutClient, username: str, password: str) -> None:
    """USERNAME and PASSWORD as upscmd/upsrw send them: refusals are not checked.

    (upsd says what was wrong at the action itself: ``ERR ACCESS-DENIED``.) An empty
    password is not sent: NUT sends ``PASSWORD`` without argument, which upsd refuses,
    leaving the session with no password either way.
    """
    try:
        await nut_call(client.username(username))
    except UpscliError as exc:
        if exc.code is None:
            io.fatal(f"Set username failed: {exc.message}")
    if not password:
        return
    try:
        await nut_call(client.password(password))
    except UpscliError as exc:
        if exc.code is None:
            io.fatal(f"Set password failed: {exc.message}")


async def _enable_tracking(io: Stdio, client: NutClient, tracking: Tracking) -> None:
    what = f"{tracking.what} status tracking"
    try:
        await nut_call(client.set_tracking(True))
    except UpscliError as exc:
        if exc.code is None:
            io.fatal(f"Enabling {what} failed: {exc.message}")
        io.fatal(f"Enabling {what} failed. upsd answered: {exc.line}")


async def send_action(
    io: Stdio,
    client: NutClient,
    action: Callable[[], Awaitable[TrackedResult]],
    tracking: Tracking,
    failed: str,
) -> None:
    """Send INSTCMD or SET VAR, print upsd's answer or, with ``-w``, the driver's result.

    The answer goes to standard error, as NUT prints it (``OK``, ``SUCCESS``,
    ``ERR UNKNOWN``). A refusal exits 1 with ``Unexpected response from upsd: ERR ...``;
    the tracking wait ends with ``Can't receive status tracking information: timeout``
    after ``-t`` seconds.

    Args:
        io: The tool's streams.
        client: The logged-in connection.
        action: Sends the request (``client.instcmd(...)``), for the tracked result.
        tracking: ``-w`` and ``-t``.
        failed: The message prefix for an I/O failure (``Instant command failed``).
    """
    if tracking.enabled:
        await _enable_tracking(io, client, tracking)
    try:
        result = await nut_call(action())
    except UpscliError as exc:
        if exc.code is None:
            io.fatal(f"{failed}: {exc.message}")
        io.fatal(f"Unexpected response from upsd: {exc.line}")
    if result.id is None or not tracking.enabled or len(result.id) != TRACKING_ID_LENGTH:
        io.ewrite("OK\n" if result.id is None else f"OK TRACKING {result.id}\n")
        return
    io.ewrite(await _wait_result(io, client, result.id, tracking.timeout) + "\n")


async def _wait_result(io: Stdio, client: NutClient, tracking_id: str, limit: int) -> str:
    """Poll ``GET TRACKING`` once a second until the result is not ``PENDING``."""
    start = trio.current_time()
    while True:
        if trio.current_time() - start >= limit:
            io.fatal("Can't receive status tracking information: timeout")
        try:
            status = await nut_call(client.get_tracking(tracking_id), max(limit, 1))
        except UpscliError as exc:
            if exc.code is None:
                io.fatal(f"Can't receive status tracking information: {exc.message}")
            status = exc.line
        if not status.startswith("PENDING"):
            return status
        await trio.sleep(TRACKING_POLL)
