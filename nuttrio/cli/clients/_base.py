"""What the four client tools share: NUT's option parser, ``ups@host:port``, errors, I/O.

The tools print what NUT 2.8.0's tools print, byte for byte; this module holds the pieces
of libupsclient and NUT's common code that decide those bytes: glibc ``getopt`` with its
messages, ``upscli_splitname``/``upscli_splitaddr`` with theirs, the text of each upsd
error (``upscli_strerror``), the connection loop (each address in turn, the last error
kept) and ``getpass``.

Failures end a tool through :class:`Exit`, raised by :meth:`Stdio.fatal` after the message
is written (NUT's ``fatalx``); :func:`run` turns it into the exit status.
"""

from __future__ import annotations

import contextlib
import contextvars
import errno
import os
import pwd
import re
import socket
import ssl
import termios
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterator, Mapping
from contextlib import asynccontextmanager
from typing import BinaryIO, NoReturn, TypeVar

import attrs
import trio

from ...client import NutClient, NutError, tls_from_flags, wrap_nut_stream
from ...nutconf.common import DEFAULT_PORT, strtol
from ...protocol import LocalProtocolError, RemoteProtocolError

__all__ = [
    "DEFAULT_PORT",
    "NETWORK_TIMEOUT",
    "NUT_VERSION",
    "TLS_LONG",
    "TLS_USAGE",
    "Exit",
    "GetOpt",
    "Stdio",
    "TlsOptions",
    "UpscliError",
    "connect",
    "disconnect",
    "getpass",
    "nut_call",
    "read_password_file",
    "session",
    "splitaddr",
    "splitname",
    "username_prompt",
]

_T = TypeVar("_T")

#: The NUT release whose tools these mirror (their ``-V`` and usage texts say it).
NUT_VERSION = "2.8.0"
#: Seconds libupsclient waits for each reply line (``DEFAULT_NETWORK_TIMEOUT``).
NETWORK_TIMEOUT = 5.0
#: What libupsclient prints when it first tries STARTTLS (Debian builds it with NSS).
SSL_BANNER = "Init SSL without certificate database"

#: upsd's error tokens and libupsclient's text for each, in libupsclient's order: a reply's
#: token is matched by prefix against this table, first match wins.
UPSD_ERRORS = (
    ("VAR-NOT-SUPPORTED", "Variable not supported by UPS"),
    ("UNKNOWN-UPS", "Unknown UPS"),
    ("ACCESS-DENIED", "Access denied"),
    ("PASSWORD-REQUIRED", "Password required"),
    ("PASSWORD-INCORRECT", "Password incorrect"),
    ("MISSING-ARGUMENT", "Missing argument"),
    ("DATA-STALE", "Data stale"),
    ("VAR-UNKNOWN", "Variable unknown"),
    ("ALREADY-LOGGED-IN", "Already logged in"),
    ("ALREADY-SET-PASSWORD", "Already set password"),
    ("UNKNOWN-TYPE", "Unknown variable type"),
    ("UNKNOWN-VAR", "Unknown variable"),
    ("READONLY", "Read-only variable"),
    ("TOO-LONG", "New value is too long"),
    ("INVALID-VALUE", "Invalid value for variable"),
    ("SET-FAILED", "Set command failed"),
    ("UNKNOWN-INSTCMD", "Unknown instant command"),
    ("INSTCMD-FAILED", "Instant command failed"),
    ("CMD-NOT-SUPPORTED", "Instant command not supported"),
    ("INVALID-USERNAME", "Invalid username"),
    ("ALREADY-SET-USERNAME", "Already set username"),
    ("UNKNOWN-COMMAND", "Unknown command"),
    ("INVALID-PASSWORD", "Invalid password"),
    ("USERNAME-REQUIRED", "Username required"),
    ("DRIVER-NOT-CONNECTED", "Driver not connected"),
)
UNKNOWN_ERROR = "Unknown error"
SERVER_DISCONNECTED = "Server disconnected"


class Exit(Exception):
    """End the tool with this status (after its message was written)."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class UpscliError(Exception):
    """A libupsclient call failed; ``message`` is what ``upscli_strerror`` would say.

    Attributes:
        message: The text NUT prints after ``Error: `` and the like.
        code: The upsd error token, if the server refused (``None`` for I/O failures).
        line: The reply line as upsd sent it (``ERR ACCESS-DENIED``), when there was one.
    """

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code

    @property
    def line(self) -> str:
        """The ``ERR`` line of the refusal, or the message for I/O failures."""
        return f"ERR {self.code}" if self.code is not None else self.message

    @property
    def unknown_command(self) -> bool:
        """Whether upsd did not know the command (an "old upsd" for the tools)."""
        return self.code is not None and self.code.startswith("UNKNOWN-COMMAND")


def upsd_message(code: str) -> str:
    """The text libupsclient gives an upsd error token (prefix match, as libupsclient does)."""
    return next((text for token, text in UPSD_ERRORS if code.startswith(token)), UNKNOWN_ERROR)


def _encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


@attrs.define
class Stdio:
    """The tool's standard streams, as bytes (tests pass :class:`io.BytesIO`).

    Attributes:
        tty: The terminal password prompts use when it can be opened (``None``: none, the
            prompt goes to standard error and the answer comes from standard input).
    """

    out: BinaryIO
    err: BinaryIO
    inp: BinaryIO
    tty: str | None = "/dev/tty"

    def write(self, text: str) -> None:
        """Write to standard output (flushed at exit or by :meth:`flush`)."""
        self.out.write(_encode(text))

    def ewrite(self, text: str) -> None:
        """Write to standard error at once (it is unbuffered in C)."""
        self.err.write(_encode(text))
        self.err.flush()

    def flush(self) -> None:
        """Flush standard output."""
        self.out.flush()

    def readline(self) -> str | None:
        """One line of standard input with its newline; ``None`` at end of input."""
        self.flush()
        line = self.inp.readline()
        return line.decode("utf-8", "surrogateescape") if line else None

    def fatal(self, message: str, status: int = 1) -> NoReturn:
        """NUT's ``fatalx``: the message and a newline on standard error, then exit."""
        self.ewrite(message + "\n")
        raise Exit(status)

    def fatal_errno(self, message: str, code: int, status: int = 1) -> NoReturn:
        """NUT's ``fatal_with_errno``: the message, ``: `` and ``strerror``."""
        self.fatal(f"{message}: {os.strerror(code)}", status)


def run(tool: Callable[[Stdio, list[str]], int], argv: list[str], stdio: Stdio) -> int:
    """Run a tool; returns its exit status (standard output flushed).

    The tool runs in a context of its own, so what one run sets (the TLS it requires)
    never reaches the next run in the same process.
    """
    status = 0
    _SSL.initialised = False
    try:
        status = contextvars.copy_context().run(tool, stdio, argv)
    except* Exit as group:
        status = _first_exit(group)
    with contextlib.suppress(BrokenPipeError):
        stdio.flush()
    return status


def _first_exit(group: BaseExceptionGroup[Exit]) -> int:
    leaf: BaseException = group
    while isinstance(leaf, BaseExceptionGroup):
        leaf = leaf.exceptions[0]
    assert isinstance(leaf, Exit)
    return leaf.status


# -- options -------------------------------------------------------------------------------


class GetOpt:
    """glibc ``getopt`` with a ``+`` option string: options until the first operand.

    Iterating yields ``(letter, argument)`` pairs as it goes, ``("?", None)`` after writing
    glibc's message for an unknown option or a missing argument. Long options (nuttrio's
    additions, such as ``--json``) are recognised only by the names in ``long``; any other
    ``--word`` is read as glibc reads it: short options ``-``, ``w``... After iterating,
    :attr:`rest` holds the operands.

    Args:
        io: Where messages go.
        prog: The program name for messages.
        args: The arguments after the program name.
        optstring: The letters, each followed by ``:`` if it takes an argument.
        long: Long option name -> whether it takes an argument.
    """

    def __init__(
        self,
        io: Stdio,
        prog: str,
        args: list[str],
        optstring: str,
        long: Mapping[str, bool] | None = None,
    ) -> None:
        self._io = io
        self._prog = prog
        self._args = args
        self._optstring = optstring.lstrip("+")
        self._long = dict(long or {})
        self.rest: list[str] = list(args)

    def _takes(self, letter: str) -> bool | None:
        """Whether the letter takes an argument; ``None`` if it is not an option."""
        pos = self._optstring.find(letter)
        if letter == ":" or pos < 0:
            return None
        return self._optstring[pos + 1 : pos + 2] == ":"

    def __iter__(self) -> Iterator[tuple[str, str | None]]:
        args, index = self._args, 0
        while index < len(args):
            arg = args[index]
            if arg == "--":
                index += 1
                break
            if not arg.startswith("-") or arg == "-":
                break
            index += 1
            name, eq, value = arg[2:].partition("=")
            if arg.startswith("--") and name in self._long:
                if self._long[name] and not eq:
                    if index == len(args):
                        self._io.ewrite(f"{self._prog}: option '--{name}' requires an argument\n")
                        yield "?", None
                        continue
                    value, index = args[index], index + 1
                yield name, (value if self._long[name] else None)
                continue
            index = yield from self._short(arg, index)
        self.rest = args[index:]

    def _short(self, arg: str, index: int) -> Generator[tuple[str, str | None], None, int]:
        """The letters of one argument; returns the index of the next argument."""
        pos = 1
        while pos < len(arg):
            letter = arg[pos]
            pos += 1
            takes = self._takes(letter)
            if takes is None:
                self._io.ewrite(f"{self._prog}: invalid option -- '{letter}'\n")
                yield "?", None
            elif not takes:
                yield letter, None
            elif pos < len(arg):
                yield letter, arg[pos:]
                break
            elif index < len(self._args):
                yield letter, self._args[index]
                index += 1
                break
            else:
                self._io.ewrite(f"{self._prog}: option requires an argument -- '{letter}'\n")
                yield "?", None
        return index


def str_to_uint(text: str) -> int | None:
    """NUT's ``str_to_uint``: the whole text as an unsigned decimal, else ``None``."""
    stripped = text.lstrip(" \t\n\r\f\v")
    if not stripped or not stripped.lstrip("+").isdigit() or stripped.count("+") > 1:
        return None
    value = int(stripped)
    return value if value < 2**32 else None


# -- ups@host:port ---------------------------------------------------------------------------


def _strtok(text: str, delims: str) -> tuple[str | None, str]:
    """C's first ``strtok_r``: the first token and the text after its delimiter."""
    start = len(text) - len(text.lstrip(delims))
    if start == len(text):
        return None, ""
    end = start
    while end < len(text) and text[end] not in delims:
        end += 1
    return text[start:end], text[end + 1 :]


def splitaddr(io: Stdio, text: str) -> tuple[str, int] | None:
    """``upscli_splitaddr``: ``host[:port]`` or ``[v6addr][:port]``; ``None`` if invalid.

    Writes libupsclient's message for the failures it names.
    """
    if not text:
        io.ewrite("upscli_splitaddr: can't parse empty string\n")
        return None
    if text.startswith("["):
        if "]" not in text:
            io.ewrite("upscli_splitaddr: missing closing bracket in [domain literal]\n")
            return None
        host, after = _strtok(text[1:], "]")
        if not after.startswith(":"):
            return (host, DEFAULT_PORT) if host is not None else None
        port_text = after[1:]
    else:
        colon = text.find(":")
        host, _ = _strtok(text, ":")
        if colon < 0:
            return (host, DEFAULT_PORT) if host is not None else None
        port_text = text[colon + 1 :]
    port = strtol(port_text)
    if not port_text or not 1 <= port <= 65535:
        io.ewrite("upscli_splitaddr: no port specified after ':' separator\n")
        return None
    return (host, port) if host is not None else None


def splitname(io: Stdio, text: str | None) -> tuple[str, str, int] | None:
    """``upscli_splitname``: ``ups[@host[:port]]`` (host ``localhost`` by default)."""
    if text is None:
        return None
    if not text:
        io.ewrite("upscli_splitname: can't parse empty string\n")
        return None
    at = text.find("@")
    ups, _ = _strtok(text, "@")
    if ups is None:
        return None
    if at < 0:
        return ups, "localhost", DEFAULT_PORT
    address = splitaddr(io, text[at + 1 :])
    return None if address is None else (ups, *address)


# -- the connection --------------------------------------------------------------------------


def _failure(exc: BaseException) -> UpscliError:
    """What libupsclient makes of a failed call."""
    if isinstance(exc, UpscliError):
        return exc
    if isinstance(exc, NutError):
        return UpscliError(upsd_message(exc.code), exc.code)
    if isinstance(exc, trio.TooSlowError | trio.BrokenResourceError | trio.ClosedResourceError):
        return UpscliError(SERVER_DISCONNECTED)
    if isinstance(exc, RemoteProtocolError):
        closed = "CLOSED" in str(exc) or "closed" in str(exc)
        return UpscliError(SERVER_DISCONNECTED if closed else "Protocol error")
    if isinstance(exc, LocalProtocolError):
        return UpscliError("Invalid argument")
    if isinstance(exc, OSError):
        return UpscliError(f"Read error: {os.strerror(exc.errno or errno.EIO)}")
    raise exc


async def nut_call(call: Awaitable[_T], seconds: float = NETWORK_TIMEOUT) -> _T:
    """Await one client call as libupsclient would: at most ``seconds`` per reply.

    Raises:
        UpscliError: If the server refused, closed, broke the protocol or was too slow;
            the client is then closed (as libupsclient disconnects) except after a refusal.
    """
    try:
        with trio.fail_after(seconds):
            return await call
    except (
        NutError,
        trio.TooSlowError,
        trio.BrokenResourceError,
        trio.ClosedResourceError,
        RemoteProtocolError,
        LocalProtocolError,
        OSError,
    ) as exc:
        raise _failure(exc) from None


def _no_verify_context() -> ssl.SSLContext:
    """TLS as libupsclient does it without CERTVERIFY: no certificate check."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


#: What libupsclient (NSS, no certificate database) says once upsd accepted STARTTLS...
_CONNECTING = "Connecting in SSL to '{host}' (no certificate name specified)\n"
#: ... and after the handshake.
_CONNECTED = (
    _CONNECTING
    + "Do not intend to authenticate server {host}\n"
    + "SSL handshake done successfully with server {host}\n"
    + "Connected to NUT server {host} in SSL\n"
    + "Certificate verification is disabled\n"
)


@attrs.define
class _SslState:
    """libupsclient initialises SSL once per process: the banner is printed once."""

    initialised: bool = False


_SSL = _SslState()


async def _open_socket(host: str, port: int) -> trio.socket.SocketType:
    """Connect to each address of ``host`` in turn (libupsclient's loop).

    Raises:
        UpscliError: ``No such host``, or the last address's ``Connection failure``.
    """
    try:
        infos = await trio.socket.getaddrinfo(
            host, port, socket.AF_UNSPEC, socket.SOCK_STREAM, socket.IPPROTO_TCP
        )
    except socket.gaierror as exc:
        known = {socket.EAI_NONAME: "No such host", socket.EAI_MEMORY: "Memory allocation failure"}
        raise UpscliError(known.get(exc.errno or 0, UNKNOWN_ERROR)) from None
    failure = UpscliError(UNKNOWN_ERROR)
    for family, kind, proto, _, address in infos:
        try:
            sock = trio.socket.socket(family, kind, proto)
        except OSError as exc:
            if exc.errno not in (errno.EAFNOSUPPORT, errno.EINVAL):
                failure = UpscliError(f"socket failure: {os.strerror(exc.errno or 0)}")
            continue
        try:
            await sock.connect(address)
        except OSError as exc:
            sock.close()
            if exc.errno != errno.EAFNOSUPPORT:
                failure = UpscliError(f"Connection failure: {os.strerror(exc.errno or 0)}")
            continue
        except BaseException:
            sock.close()
            raise
        return sock
    raise failure


_ISSPACE = frozenset(b" \t\n\v\f\r")
#: A byte NUT's parser may drop (LF ends the line, so it is not one).
_DROPPED = re.compile(rb"[\x00-\x09\x0b-\x1f\x80-\xff]")


def addchar_warnings(line: bytes) -> list[str]:
    """What NUT's parser (parseconf) says on stderr for the bytes of one reply line it drops.

    Bytes below 0x20 or above 0x7F inside a word are dropped with
    ``addchar: discarding invalid character (0x..)!``, the byte as a sign-extended C char.
    """
    warnings: list[str] = []
    quoted = literal = False
    for byte in line:
        if literal:
            literal = False
        elif byte == 0x5C:  # backslash: the next byte is taken as it is
            literal = True
            continue
        elif byte == 0x22:  # double quote
            quoted = not quoted
            continue
        elif not quoted and byte in _ISSPACE:
            continue
        elif not quoted and byte == 0x23:  # '#' starts a comment
            break
        if byte < 0x20 or byte > 0x7F:
            shown = byte | 0xFFFFFF00 if byte > 0x7F else byte
            warnings.append(f"addchar: discarding invalid character (0x{shown:02x})!\n")
    return warnings


@attrs.define(eq=False)
class _Watched(trio.abc.Stream):
    """The TCP stream, telling what NUT's parser would say about each line received.

    Only in clear text: once TLS starts, the bytes read here are TLS records.
    """

    stream: trio.SocketStream
    io: Stdio
    active: bool = True
    partial: bytearray = attrs.Factory(bytearray)

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self.stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.stream.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        data = await self.stream.receive_some(max_bytes)
        if not self.active:
            return data
        self.partial += data
        if b"\n" in data:
            *lines, rest = bytes(self.partial).split(b"\n")
            self.partial = bytearray(rest)
            for line in lines:
                if _DROPPED.search(line):
                    for warning in addchar_warnings(line):
                        self.io.ewrite(warning)
        return data

    async def aclose(self) -> None:
        await self.stream.aclose()


#: nuttrio's TLS options, the same on every tool (name -> whether it takes an argument).
TLS_LONG: Mapping[str, bool] = {"tls": False, "tls-verify": False, "ca": True, "pin": True}

#: The usage lines of :data:`TLS_LONG`.
TLS_USAGE = """\
  --tls                   require STARTTLS (encrypted; the certificate is not checked)
  --tls-verify            require STARTTLS and check the certificate (system CAs)
  --ca <file|dir>         require STARTTLS and check the certificate against these CAs
  --pin <sha256>          require STARTTLS and this SHA-256 certificate fingerprint
"""

#: The TLS a tool run requires (context and pin), set by :meth:`TlsOptions.require`.
_REQUIRED_TLS: contextvars.ContextVar[tuple[ssl.SSLContext, bytes | None] | None] = (
    contextvars.ContextVar("nuttrio_tool_tls", default=None)
)


@attrs.define
class TlsOptions:
    """``--tls``, ``--tls-verify``, ``--ca`` and ``--pin`` as given.

    Any of them makes STARTTLS required (NUT's tools only try it, and go on in clear text
    when it is refused).
    """

    tls: bool = False
    verify: bool = False
    ca: str | None = None
    pin: str | None = None

    def take(self, letter: str, value: str | None) -> bool:
        """Record one option if it is a TLS one; returns whether it was."""
        match letter:
            case "tls":
                self.tls = True
            case "tls-verify":
                self.verify = True
            case "ca":
                self.ca = value
            case "pin":
                self.pin = value
            case _:
                return False
        return True

    def require(self, io: Stdio) -> None:
        """Make every :func:`connect` of this run (this context) require that TLS.

        A bad pin or an unreadable CA ends the tool: ``Error: ...``, exit 1.
        """
        try:
            context, pin = tls_from_flags(
                tls=self.tls, verify=self.verify, ca=self.ca, pin=self.pin
            )
        except ValueError as exc:
            io.fatal(f"Error: --pin {self.pin}: {exc}")
        except OSError as exc:
            io.fatal(f"Error: --ca {self.ca}: {exc.strerror or exc}")
        if context is not None:
            _REQUIRED_TLS.set((context, pin))


async def _required_starttls(
    client: NutClient, watched: _Watched, host: str, required: tuple[ssl.SSLContext, bytes | None]
) -> NutClient:
    """STARTTLS that must succeed: a refusal or a failed check closes the connection.

    Raises:
        UpscliError: ``TLS required, but STARTTLS failed: <why>`` (the server's error
            token, the certificate check that failed, or the broken connection).
    """
    context, pin = required
    watched.active = False  # what follows the reply to STARTTLS is TLS, not text
    try:
        with trio.fail_after(NETWORK_TIMEOUT):
            await client.starttls(context, pin=pin, server_hostname=host)
    except NutError as exc:
        why = upsd_message(exc.code)
    except ssl.SSLError as exc:  # CertificatePinError included
        why = str(exc)
    except (trio.TooSlowError, trio.BrokenResourceError, RemoteProtocolError, OSError) as exc:
        why = str(exc) or type(exc).__name__
    except trio.Cancelled:
        await client.aclose()
        raise
    else:
        watched.active = True
        return client
    await client.aclose()
    raise UpscliError(f"TLS required, but STARTTLS failed: {why}")


async def connect(io: Stdio, host: str, port: int, *, tryssl: bool) -> NutClient:
    """``upscli_connect``: a connected client, after STARTTLS if ``tryssl`` and offered.

    When the run requires TLS (:meth:`TlsOptions.require`), STARTTLS is sent whatever
    ``tryssl`` says, with that context and pin, and any refusal or failed check fails the
    connection (nothing is sent in clear text after it).

    With ``tryssl`` (upsc, upslog) the SSL banner is printed once per process, as
    libupsclient does, then ``STARTTLS`` is sent; a refusal continues in clear text. A
    cancelled or failed call leaves nothing open.

    Raises:
        UpscliError: If the host is unknown, the connection or the STARTTLS exchange failed.
    """
    sock = await _open_socket(host, port)
    watched = _Watched(trio.SocketStream(sock), io)
    client = wrap_nut_stream(watched, host=host)
    required = _REQUIRED_TLS.get()
    if required is not None:
        return await _required_starttls(client, watched, host, required)
    if not tryssl:
        return client
    if not _SSL.initialised:
        _SSL.initialised = True
        io.ewrite(SSL_BANNER + "\n")
    watched.active = False  # the reply to STARTTLS is plain ASCII; what follows, TLS
    try:
        await nut_call(client.starttls(_no_verify_context()))
    except trio.Cancelled:
        await client.aclose()
        raise
    except UpscliError as exc:
        watched.active = True
        if exc.code is None:
            io.ewrite(f"Error while connecting to NUT server {host}, disconnect\n")
            await client.aclose()
            raise
        return client
    except (ssl.SSLError, trio.BrokenResourceError) as exc:
        io.ewrite(_CONNECTING.format(host=host))
        await client.aclose()
        raise UpscliError(f"SSL error: {exc}") from None
    io.ewrite(_CONNECTED.format(host=host))
    return client


#: Seconds :func:`disconnect` waits for the answer to LOGOUT (libupsclient does not wait).
LOGOUT_WAIT = 1.0


@asynccontextmanager
async def session(io: Stdio, host: str, port: int, *, tryssl: bool) -> AsyncIterator[NutClient]:
    """A connection for one tool run, closed with LOGOUT on leaving whatever happened.

    If it cannot be opened, the tool fails with ``Error: <why>`` (exit 1).
    """
    try:
        client = await connect(io, host, port, tryssl=tryssl)
    except UpscliError as exc:
        io.fatal(f"Error: {exc.message}")
    try:
        yield client
    finally:
        await disconnect(client)


async def disconnect(client: NutClient | None) -> None:
    """``upscli_disconnect``: LOGOUT, then close; never fails, waits at most LOGOUT_WAIT.

    Cancellation closes the connection at once.
    """
    if client is None or client.closed:
        return
    with trio.move_on_after(LOGOUT_WAIT):
        with contextlib.suppress(
            NutError,
            trio.BrokenResourceError,
            trio.ClosedResourceError,
            OSError,
            RemoteProtocolError,
        ):
            await client.logout()
    await client.aclose()


# -- credentials -----------------------------------------------------------------------------


def username_prompt(io: Stdio) -> tuple[str | None, str | None]:
    """The ``Username (me): `` prompt on standard output and the line read.

    Returns:
        The login name of the real user (``None`` if it has none) and the line read
        (``None`` at end of input).
    """
    try:
        me: str | None = pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        me = None
    io.write(f"Username ({me}): " if me is not None else "Username: ")
    return me, io.readline()


def getpass(io: Stdio, prompt: str) -> str:
    """Like glibc's ``getpass``: prompt and read on /dev/tty without echo, else stderr/stdin.

    Returns:
        The line without its newline ("" at end of input).
    """
    try:
        if io.tty is None:
            raise FileNotFoundError(errno.ENOENT, "no terminal")
        fd = os.open(io.tty, os.O_RDWR | os.O_NOCTTY)
    except OSError:
        io.ewrite(prompt)
        line = io.readline() or ""
        return line[:-1] if line.endswith("\n") else line
    with open(fd, "r+b", buffering=0) as tty:
        try:
            old = termios.tcgetattr(fd)
        except termios.error:
            old = None
        if old is not None:
            new = list(old)
            new[3] &= ~termios.ECHO
            termios.tcsetattr(fd, termios.TCSAFLUSH, new)
        try:
            tty.write(_encode(prompt))
            line = tty.readline().decode("utf-8", "surrogateescape")
        finally:
            if old is not None:
                termios.tcsetattr(fd, termios.TCSAFLUSH, old)
                tty.write(b"\n")
    return line[:-1] if line.endswith("\n") else line


def read_password_file(io: Stdio, path: str) -> str:
    """``--password-file FILE``: its first line, without the line end.

    Fails (exit 1) with ``could not read password file FILE: <strerror>``.
    """
    try:
        with open(path, "rb") as handle:
            first = handle.readline()
    except OSError as exc:
        io.fatal_errno(f"could not read password file {path}", exc.errno or errno.EIO)
    return first.decode("utf-8", "surrogateescape").rstrip("\r\n")
