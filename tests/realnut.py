"""Run the real NUT ``upsd`` and ``dummy-ups`` (Debian's NUT 2.8.0) on 127.0.0.1 for tests.

The helpers here write a NUT configuration directory in standard NUT syntax (the
same directory can later be given to nuttrio), start one ``dummy-ups`` process per
UPS section plus ``upsd`` in the foreground, wait until every UPS is fully served,
and tear everything down again.

Facts this module relies on (NUT 2.8.0 as packaged by Debian bookworm):

* The real daemon is ``/lib/nut/upsd``. ``/usr/sbin/upsd`` is a Debian shell
  wrapper that prints "upsd disabled" and exits 0 while ``MODE=none`` in
  ``/etc/nut/nut.conf``, so it must not be used.
* ``-F`` keeps both ``upsd`` and drivers in the foreground without debug output
  and without PID files (a backgrounded driver would instead SIGTERM any
  earlier instance named in its PID file and sleep 5 s). A driver killed by
  SIGTERM leaves its socket file behind; it is removed before the next start.
* As root both programs switch to the user ``nut`` unless ``-u <user>`` is given.
  pytest's ``tmp_path`` lives below a 0700 directory, so the default here is
  ``-u <current user>``, which is a no-op for non-root users.
* ``NUT_CONFPATH`` selects the directory with ``ups.conf``, ``upsd.conf`` and
  ``upsd.users``; ``NUT_STATEPATH`` is the drivers' socket directory;
  ``NUT_ALTPIDPATH`` (or else ``NUT_STATEPATH``) is where ``upsd`` looks for a PID
  file of an already running instance, so both are always set to our own state
  directory (otherwise a system-wide upsd would make ours refuse to start).
* Drivers create ``<NUT_STATEPATH>/<driver>-<ups>`` as an absolute path and die if
  it does not fit in ``sun_path`` (107 bytes on Linux).
* ``dummy-ups`` sleeps one second inside its first update before it creates its
  socket; ``upsd`` retries unconnected drivers on every pass of its 2 s poll loop.
* Right after connecting, ``upsd`` reports ``ups.status`` as ``WAIT`` (without an
  error) until the driver's dump arrives; the dump ends with the commands, so a
  non-empty ``LIST CMD`` (``dummy-ups`` always has ``load.off``) means the
  variables are complete.
* Many drivers on one upsd: upsd reads 512 bytes per driver per poll pass, so a
  driver with a big dump can hit EAGAIN on its non-blocking socket; 2.8.0 then
  drops the connection (and can crash). ``synchronous = yes`` in ``ups.conf``
  avoids it (see :func:`ddl_ups_sections`). upsd also needs one fd per driver.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import resource
import shutil
import signal
import socket
import stat
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Protocol

import pytest

#: Loopback address every daemon started here listens on.
HOST = "127.0.0.1"

#: Directories where distributions install NUT drivers and the real upsd.
LIBEXEC_DIRS: tuple[Path, ...] = (
    Path("/lib/nut"),
    Path("/usr/lib/nut"),
    Path("/usr/libexec/nut"),
)

#: Credentials of the default ``upsd.users`` written by :func:`write_nut_config`.
ADMIN_USER = "admin"
ADMIN_PASSWORD = "adminpass"
MONITOR_USER = "monuser"
MONITOR_PASSWORD = "monpass"

DEFAULT_USERS = f"""\
[{ADMIN_USER}]
\tpassword = "{ADMIN_PASSWORD}"
\tactions = SET FSD
\tinstcmds = ALL
\tupsmon primary

[{MONITOR_USER}]
\tpassword = "{MONITOR_PASSWORD}"
\tupsmon secondary
"""

#: ``<repo>/../shared``: data shared between engineers, read at test time only.
SHARED_DIR = Path(__file__).resolve().parents[1].parent / "shared"
#: The NUT Device Dump Library (``.dev`` files) inside :data:`SHARED_DIR`.
DDL_DIR = SHARED_DIR / "data" / "nut-ddl"

_SUN_PATH_MAX = 107  # usable bytes of sockaddr_un.sun_path on Linux
_BAD_NAME_CHARS = frozenset(" \t\r\n[]@:#\"'\\=")
_LOG_TAIL_BYTES = 3000


class RealNutError(RuntimeError):
    """Raised when the real NUT daemons cannot be started or queried."""


# --------------------------------------------------------------------------
# Locating binaries and skipping


def _libexec_binary(name: str) -> Path | None:
    for directory in LIBEXEC_DIRS:
        candidate = directory / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def _is_script(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            return handle.read(2) == b"#!"
    except OSError:
        return True


def driver_binary(driver: str = "dummy-ups") -> Path | None:
    """Find a NUT driver executable.

    Args:
        driver: Driver name as written in ``ups.conf``.

    Returns:
        The executable's path, or ``None`` if it is not installed.
    """
    return _libexec_binary(driver)


def upsd_binary() -> Path | None:
    """Find the real ``upsd`` executable (never Debian's ``/usr/sbin`` wrapper).

    Returns:
        The executable's path, or ``None`` if no usable ``upsd`` is installed.
    """
    found = _libexec_binary("upsd")
    if found is not None:
        return found
    which = shutil.which("upsd")
    if which is not None and not _is_script(Path(which)):
        return Path(which)
    return None


def upsmon_binary() -> Path | None:
    """Return the real upsmon binary (not Debian's /sbin wrapper script), if installed."""
    return _libexec_binary("upsmon")


@contextlib.contextmanager
def run_real_upsmon(confdir: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Debian's upsmon in the foreground as one process (``-F -p``) on ``confdir/upsmon.conf``.

    upsmon writes its PID file in its compiled-in /run/nut whatever the environment, so as
    root with ``unshare`` it gets a private tmpfs there; ``-P 1`` skips its "already
    running" check. Output goes to ``confdir/upsmon.log``. On exit: SIGTERM, then SIGKILL.

    Raises:
        RealNutError: If upsmon is not installed.
    """
    binary = upsmon_binary()
    if binary is None:
        raise RealNutError("the real upsmon is not installed (CI installs nut-client)")
    cmd = [str(binary), "-F", "-p", "-P", "1", "-f", str(confdir / "upsmon.conf")]
    if os.geteuid() == 0 and shutil.which("unshare") and Path("/run/nut").is_dir():
        mount = 'mount -t tmpfs tmpfs /run/nut && exec "$@"'
        cmd = ["unshare", "--mount", "sh", "-c", mount, "sh", *cmd]
    with (confdir / "upsmon.log").open("wb") as log:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def upsc_binary() -> Path | None:
    """Find the ``upsc`` client.

    Returns:
        The executable's path, or ``None`` if it is not installed.
    """
    which = shutil.which("upsc")
    return Path(which) if which is not None else None


def missing_nut_binaries() -> list[str]:
    """List the real-NUT programs the harness needs but cannot find.

    Returns:
        Human-readable names of missing programs (empty when all are present).
    """
    missing: list[str] = []
    if driver_binary("dummy-ups") is None:
        missing.append("/lib/nut/dummy-ups")
    if upsd_binary() is None:
        missing.append("upsd (/lib/nut/upsd)")
    if upsc_binary() is None:
        missing.append("upsc")
    return missing


def require_real_nut() -> None:
    """Skip the calling test unless the real NUT programs are installed.

    Raises:
        pytest.skip.Exception: When ``dummy-ups``, ``upsd`` or ``upsc`` is missing.
    """
    missing = missing_nut_binaries()
    if missing:
        pytest.skip(
            "real NUT not available: missing "
            + ", ".join(missing)
            + " (CI installs the Debian/Ubuntu packages nut-server and nut-client)"
        )


def ddl_dev_files() -> list[Path]:
    """List the NUT Device Dump Library ``.dev`` files, sorted by path.

    Returns:
        All ``*.dev`` files below :data:`DDL_DIR` (empty if it is absent).
    """
    if not DDL_DIR.is_dir():
        return []
    return sorted(DDL_DIR.rglob("*.dev"))


def require_ddl() -> list[Path]:
    """Return the DDL ``.dev`` files or skip the calling test if they are absent.

    Returns:
        The sorted list of ``.dev`` files.

    Raises:
        pytest.skip.Exception: When the shared data directory is missing.
    """
    files = ddl_dev_files()
    if not files:
        pytest.skip(f"NUT DDL data not found at {DDL_DIR} (expected ../shared next to the repo)")
    return files


def free_port() -> int:
    """Pick a currently free TCP port on 127.0.0.1.

    Returns:
        A port number that was free when checked (another process may still take
        it before upsd binds it; the fixture retries once in that case).
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


# --------------------------------------------------------------------------
# Configuration files


def _quote(value: str) -> str:
    """Quote a value for NUT's config parser (``\\``, ``"`` and ``#`` escaped)."""
    if any(ord(ch) < 0x20 or ord(ch) >= 0x7F for ch in value):
        raise ValueError(f"value not representable in a NUT config file: {value!r}")
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("#", "\\#")
    return f'"{escaped}"'


def _check_name(kind: str, name: str) -> None:
    if not name or any(ch in _BAD_NAME_CHARS or not ch.isprintable() for ch in name):
        raise ValueError(f"invalid {kind} name for NUT config: {name!r}")


def _nut_gid() -> int | None:
    if os.geteuid() != 0:
        return None
    try:
        return grp.getgrnam("nut").gr_gid
    except KeyError:
        return None


def write_nut_config(
    confdir: Path,
    *,
    port: int,
    ups: Mapping[str, Mapping[str, str | int]],
    users: str | None = None,
    upsd_extra: str = "",
) -> Path:
    """Write ``upsd.conf``, ``ups.conf`` and ``upsd.users`` into ``confdir``.

    Only standard NUT syntax is used so nuttrio can read the same directory.
    A ``state`` subdirectory is created for driver sockets. When running as root
    and a ``nut`` group exists, the directory, files and state directory are
    group-owned by ``nut`` (dirs 0770/0750, files 0640) so daemons that drop
    privileges to ``nut`` can still use them (parent directories must be
    traversable by ``nut`` too, which pytest's ``tmp_path`` is not).

    Args:
        confdir: Directory to write into (created if needed).
        port: TCP port for ``LISTEN 127.0.0.1 <port>``.
        ups: UPS sections in order: name -> ``ups.conf`` keys. ``driver``
            defaults to ``dummy-ups``; ``port`` (the ``.dev`` path for
            ``dummy-ups``) is required. Values are quoted and escaped.
        users: Full ``upsd.users`` text, or ``None`` for :data:`DEFAULT_USERS`.
        upsd_extra: Extra lines appended verbatim to ``upsd.conf``.

    Returns:
        ``confdir`` as an absolute path.

    Raises:
        ValueError: On an unusable UPS name, key or value.
    """
    confdir = Path(confdir).resolve()
    confdir.mkdir(parents=True, exist_ok=True)
    state = confdir / "state"
    state.mkdir(exist_ok=True)

    upsd_lines = [
        "# written by tests/realnut.py",
        f"LISTEN {HOST} {int(port)}",
        f"STATEPATH {_quote(str(state))}",
    ]
    if upsd_extra:
        upsd_lines.append(upsd_extra.rstrip("\n"))
    (confdir / "upsd.conf").write_text("\n".join(upsd_lines) + "\n", encoding="ascii")

    ups_lines = ["# written by tests/realnut.py"]
    for name, keys in ups.items():
        _check_name("UPS", name)
        if "port" not in keys:
            raise ValueError(f"UPS [{name}] needs a 'port' key")
        merged: dict[str, str | int] = {"driver": "dummy-ups", **keys}
        ups_lines.append(f"[{name}]")
        for key, value in merged.items():
            _check_name("ups.conf key", key)
            ups_lines.append(f"\t{key} = {_quote(str(value))}")
        ups_lines.append("")
    (confdir / "ups.conf").write_text("\n".join(ups_lines), encoding="ascii")

    (confdir / "upsd.users").write_text(DEFAULT_USERS if users is None else users, encoding="ascii")

    gid = _nut_gid()
    for path in (confdir / "upsd.conf", confdir / "ups.conf", confdir / "upsd.users"):
        path.chmod(0o640)
        if gid is not None:
            os.chown(path, 0, gid)
    state.chmod(0o770)
    if gid is not None:
        os.chown(state, 0, gid)
        os.chown(confdir, 0, gid)
        confdir.chmod(stat.S_IMODE(confdir.stat().st_mode) | stat.S_IRGRP | stat.S_IXGRP)
    return confdir


def write_dev_file(path: Path, values: Mapping[str, str]) -> Path:
    """Write a ``dummy-ups`` ``.dev`` file with one ``name: value`` line per entry.

    Values containing spaces, quotes or ``#`` are quoted so dummy-ups keeps them
    verbatim (it re-joins unquoted words with single spaces).

    Args:
        path: File to write.
        values: Variable name -> value, in file order.

    Returns:
        ``path``.
    """
    lines: list[str] = []
    for name, value in values.items():
        plain = value and all(ch.isalnum() or ch in "._-/+:%" for ch in value)
        lines.append(f"{name}: {value if plain else _quote(value)}")
    path.write_text("\n".join(lines) + "\n", encoding="ascii")
    return path


def _parse_generated(confdir: Path) -> tuple[int, list[tuple[str, str]]]:
    """Read back port and ``(ups, driver)`` pairs from files we wrote."""
    port: int | None = None
    for line in (confdir / "upsd.conf").read_text(encoding="ascii").splitlines():
        words = line.split()
        if len(words) == 3 and words[0] == "LISTEN" and words[1] == HOST:
            port = int(words[2])
    if port is None:
        raise RealNutError(f"no 'LISTEN {HOST} <port>' line in {confdir / 'upsd.conf'}")
    sections: list[tuple[str, str]] = []
    for raw in (confdir / "ups.conf").read_text(encoding="ascii").splitlines():
        line = raw.strip()
        if line.startswith("[") and line.endswith("]"):
            sections.append((line[1:-1], "dummy-ups"))
        elif sections and line.startswith("driver"):
            key, _, value = line.partition("=")
            if key.strip() == "driver":
                sections[-1] = (sections[-1][0], value.strip().strip('"'))
    return port, sections


# --------------------------------------------------------------------------
# Raw protocol access


class NutConnection:
    """Minimal blocking line-protocol client used for readiness checks and raw tests."""

    def __init__(self, port: int, *, host: str = HOST, timeout: float = 5.0) -> None:
        """Connect to upsd.

        Args:
            port: TCP port.
            host: Address to connect to.
            timeout: Socket timeout in seconds for every operation.
        """
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self._buf = b""

    def __enter__(self) -> NutConnection:
        """Return self."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the socket."""
        self.close()

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()

    def send(self, data: bytes) -> None:
        """Send raw bytes.

        Args:
            data: Bytes to send unchanged.
        """
        self.sock.sendall(data)

    def readline(self) -> bytes:
        """Read one reply line.

        Returns:
            The line including its trailing LF.

        Raises:
            RealNutError: If the server closes the connection mid-line.
        """
        while b"\n" not in self._buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise RealNutError(f"connection closed by upsd; partial data {self._buf!r}")
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        return line + b"\n"

    def read_reply(self) -> bytes:
        """Read one complete reply: a single line or a whole ``BEGIN LIST`` block.

        Returns:
            The exact reply bytes.
        """
        first = self.readline()
        if not first.startswith(b"BEGIN LIST "):
            return first
        end = b"END" + first[len(b"BEGIN") : -1] + b"\n"
        parts = [first]
        while True:
            line = self.readline()
            parts.append(line)
            if line == end:
                return b"".join(parts)

    def request(self, line: str) -> bytes:
        """Send one request line and return its complete reply.

        Args:
            line: Request without the trailing LF.

        Returns:
            The exact reply bytes.
        """
        self.send(line.encode("ascii") + b"\n")
        return self.read_reply()


def nut_request(port: int, request: bytes, *, host: str = HOST, timeout: float = 5.0) -> bytes:
    """Send raw request bytes on a fresh connection and return the first reply.

    Args:
        port: upsd TCP port.
        request: Raw bytes, normally one line ending in LF.
        host: Address to connect to.
        timeout: Socket timeout in seconds.

    Returns:
        The exact bytes of the first reply (line or ``LIST`` block).
    """
    with NutConnection(port, host=host, timeout=timeout) as conn:
        conn.send(request)
        return conn.read_reply()


def upsc_dump(target: str, *, timeout: float = 30.0) -> list[str]:
    """Run ``upsc <target>`` and return its output lines.

    Args:
        target: ``ups@host:port`` (or any upsc argument list joined by spaces).
        timeout: Seconds before the upsc process is abandoned.

    Returns:
        stdout split into lines (``var: value``), without line terminators.

    Raises:
        RealNutError: If upsc is missing, times out or exits non-zero.
    """
    upsc = upsc_binary()
    if upsc is None:
        raise RealNutError("upsc is not installed (package nut-client)")
    try:
        done = subprocess.run(
            [str(upsc), *target.split()],
            capture_output=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        raise RealNutError(f"upsc {target} timed out after {timeout} s") from exc
    if done.returncode != 0:
        stderr = done.stderr.decode(errors="replace").strip()
        raise RealNutError(f"upsc {target} exited {done.returncode}: {stderr}")
    return done.stdout.decode("latin-1").splitlines()


def upsc_dump_many(
    targets: Sequence[str], *, workers: int = 16, timeout: float = 30.0
) -> dict[str, list[str]]:
    """Run :func:`upsc_dump` for many targets concurrently.

    Each ``upsc`` of a whole UPS costs ~45 ms mostly waiting (upsd sends every
    list line in its own segment and the client's delayed ACK holds it back),
    so threads give a near-linear speed-up.

    Args:
        targets: ``ups@host:port`` strings.
        workers: Number of concurrent upsc processes.
        timeout: Per-call timeout in seconds.

    Returns:
        target -> output lines, in the order of ``targets``.
    """
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(lambda t: upsc_dump(t, timeout=timeout), targets))
    return dict(zip(targets, results, strict=True))


# --------------------------------------------------------------------------
# Daemon management


def _tail(path: Path, limit: int = _LOG_TAIL_BYTES) -> str:
    try:
        data = path.read_bytes()
    except OSError:
        return "<no log>"
    text = data[-limit:].decode("utf-8", errors="replace").strip()
    return text or "<empty>"


def _current_user() -> str | None:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return None


def _ensure_fd_limit(needed: int) -> None:
    """Raise this process's soft fd limit (inherited by upsd) to ``needed`` if possible.

    upsd keeps one descriptor per driver socket plus clients; with too few it logs
    "Too many open files" and stops answering.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            raise RealNutError(
                f"fd limit {hard} too low for {needed} descriptors; start fewer UPS per upsd"
            )
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


class RealNut:
    """The real upsd plus one driver per UPS section, as a context manager.

    Example:
        ``confdir = write_nut_config(tmp, port=free_port(), ups={"u": {"port": dev}})``
        then ``with RealNut(confdir) as nut: lines = upsc_dump(nut.target("u"))``.
    """

    def __init__(
        self,
        confdir: Path,
        *,
        run_as: str | None = None,
        startup_timeout: float | None = None,
        stop_timeout: float = 5.0,
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        """Prepare (but do not start) the daemons for a directory from :func:`write_nut_config`.

        Args:
            confdir: Directory holding the generated config files.
            run_as: User for ``-u``; ``None`` means the current user (``-u root``
                when root, so no privilege drop; no ``-u`` if the current uid has
                no passwd entry). ``"nut"`` needs a directory ``nut`` can reach.
            startup_timeout: Seconds to wait for everything to be ready;
                ``None`` means ``15 + 0.05 * number_of_ups``.
            stop_timeout: Seconds to wait after SIGTERM before SIGKILL.
            extra_env: Additional environment variables for all daemons.
        """
        self.confdir = Path(confdir).resolve()
        self.state = self.confdir / "state"
        self.logdir = self.confdir / "log"
        self.port, sections = _parse_generated(self.confdir)
        self.drivers: dict[str, str] = dict(sections)
        self.run_as = run_as if run_as is not None else _current_user()
        if startup_timeout is None:
            startup_timeout = 15.0 + 0.05 * len(sections)
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.env = {
            **os.environ,
            "NUT_CONFPATH": str(self.confdir),
            "NUT_STATEPATH": str(self.state),
            "NUT_ALTPIDPATH": str(self.state),
            **(extra_env or {}),
        }
        self.upsd: subprocess.Popen[bytes] | None = None
        self.driver_procs: dict[str, subprocess.Popen[bytes]] = {}
        #: Seconds spent in each start phase (drivers, upsd, ready).
        self.timings: dict[str, float] = {}

    # -- public helpers -----------------------------------------------------

    @property
    def ups_names(self) -> list[str]:
        """UPS names in ``ups.conf`` order."""
        return list(self.drivers)

    def target(self, ups: str) -> str:
        """Return the ``upsc`` target string for a UPS.

        Args:
            ups: UPS name.

        Returns:
            ``"<ups>@127.0.0.1:<port>"``.
        """
        return f"{ups}@{HOST}:{self.port}"

    def log_path(self, name: str) -> Path:
        """Path of a daemon's combined stdout/stderr log.

        Args:
            name: ``"upsd"`` or ``"<driver>-<ups>"``.

        Returns:
            The log file path.
        """
        return self.logdir / f"{name}.log"

    def connect(self, timeout: float = 5.0) -> NutConnection:
        """Open a raw protocol connection to this upsd.

        Args:
            timeout: Socket timeout in seconds.

        Returns:
            A connected :class:`NutConnection`.
        """
        return NutConnection(self.port, timeout=timeout)

    # -- lifecycle ----------------------------------------------------------

    def __enter__(self) -> RealNut:
        """Start everything and wait until ready."""
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop and reap all daemons."""
        self.stop()

    def start(self) -> None:
        """Start the drivers, then upsd, and wait until every UPS is served.

        Raises:
            RealNutError: When a program is missing, a daemon exits, or the wait
                times out; the message contains the daemons' output.
        """
        if self.upsd is not None or self.driver_procs:
            raise RealNutError("already started")
        upsd = upsd_binary()
        if upsd is None:
            raise RealNutError(
                "real upsd not found (install nut-server; /usr/sbin/upsd is only a wrapper)"
            )
        binaries: dict[str, Path] = {}
        for name, driver in self.drivers.items():
            binary = driver_binary(driver)
            if binary is None:
                raise RealNutError(
                    f"driver {driver!r} for UPS [{name}] not found in {LIBEXEC_DIRS}"
                )
            sock = self.state / f"{driver}-{name}"
            if len(os.fsencode(sock)) > _SUN_PATH_MAX:
                raise RealNutError(
                    f"driver socket path {sock} is longer than {_SUN_PATH_MAX} bytes; "
                    "the driver would refuse to start: use a shorter directory"
                )
            binaries[name] = binary
        self.logdir.mkdir(exist_ok=True)
        _ensure_fd_limit(len(binaries) + 64)
        deadline = time.monotonic() + self.startup_timeout
        t0 = time.monotonic()
        try:
            for name, binary in binaries.items():
                sock = self.state / f"{self.drivers[name]}-{name}"
                with contextlib.suppress(FileNotFoundError):
                    sock.unlink()  # stale socket of a SIGTERMed earlier run
                self.driver_procs[name] = self._spawn(
                    [str(binary), "-a", name, "-F", *self._user_args()],
                    self.log_path(f"{self.drivers[name]}-{name}"),
                )
            self._wait_driver_sockets(deadline)
            t1 = time.monotonic()
            self.upsd = self._spawn([str(upsd), "-F", *self._user_args()], self.log_path("upsd"))
            self._wait_upsd_ready(deadline)
            t2 = time.monotonic()
        except BaseException:
            self.stop()
            raise
        self.timings = {"drivers": t1 - t0, "upsd": t2 - t1, "total": t2 - t0}

    def stop(self) -> None:
        """Terminate upsd and all drivers (SIGTERM, then SIGKILL) and reap them."""
        procs: list[subprocess.Popen[bytes]] = []
        if self.upsd is not None:
            procs.append(self.upsd)
        procs.extend(self.driver_procs.values())
        for proc in procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout
        for proc in procs:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.upsd = None
        self.driver_procs = {}

    # -- internals ----------------------------------------------------------

    def _user_args(self) -> list[str]:
        return ["-u", self.run_as] if self.run_as is not None else []

    def _spawn(self, argv: list[str], log: Path) -> subprocess.Popen[bytes]:
        # The child keeps its own descriptor; closing ours at once keeps the test
        # process far from its fd limit even with hundreds of drivers.
        with log.open("ab") as handle:
            return subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=handle,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.confdir,
            )

    def describe_failure(self, reason: str) -> str:
        """Build an error message with the logs of upsd and failed drivers.

        Args:
            reason: First line of the message.

        Returns:
            The message including exit codes and log tails.
        """
        parts = [reason]
        shown = 0
        for name, proc in self.driver_procs.items():
            code = proc.poll()
            if code is not None and shown < 5:
                shown += 1
                log = self.log_path(f"{self.drivers[name]}-{name}")
                parts.append(f"--- driver for [{name}] exited with {code}; {log}:\n{_tail(log)}")
        if self.upsd is not None:
            code = self.upsd.poll()
            state = "running" if code is None else f"exited with {code}"
            log = self.log_path("upsd")
            parts.append(f"--- upsd ({state}); {log}:\n{_tail(log)}")
        return "\n".join(parts)

    def _check_alive(self) -> None:
        for name, proc in self.driver_procs.items():
            if proc.poll() is not None:
                reason = f"driver for UPS [{name}] exited during startup"
                raise RealNutError(self.describe_failure(reason))
        if self.upsd is not None and self.upsd.poll() is not None:
            raise RealNutError(self.describe_failure("upsd exited during startup"))

    def _wait_driver_sockets(self, deadline: float) -> None:
        pending = dict(self.drivers)
        while pending:
            for name, driver in list(pending.items()):
                # Only look at the file: a probe connection would be one more
                # driver client, and 2.8.0 drivers misbehave when a write to
                # any client fails (see the module docstring).
                try:
                    is_socket = stat.S_ISSOCK((self.state / f"{driver}-{name}").stat().st_mode)
                except FileNotFoundError:
                    is_socket = False
                if is_socket:
                    del pending[name]
            if not pending:
                return
            self._check_alive()
            if time.monotonic() > deadline:
                raise RealNutError(
                    self.describe_failure(
                        f"timed out after {self.startup_timeout} s waiting for driver sockets of "
                        f"{sorted(pending)[:10]} ({len(pending)} pending)"
                    )
                )
            time.sleep(0.05)

    def _wait_upsd_ready(self, deadline: float) -> None:
        pending = list(self.drivers)
        last_error = "no connection yet"
        while True:
            self._check_alive()
            try:
                with self.connect(timeout=5.0) as conn:
                    ver = conn.request("VER")
                    if not ver.startswith(b"Network UPS Tools upsd"):
                        raise RealNutError(f"unexpected VER reply {ver!r}")
                    pending, last_error = self._poll_ready(conn, pending)
            except OSError as exc:
                last_error = f"{type(exc).__name__}: {exc}"
            if not pending:
                return
            if time.monotonic() > deadline:
                raise RealNutError(
                    self.describe_failure(
                        f"timed out after {self.startup_timeout} s waiting for upsd: "
                        f"{len(pending)} UPS not ready, e.g. {pending[:5]}; last: {last_error}"
                    )
                )
            time.sleep(0.05)

    def _poll_ready(self, conn: NutConnection, pending: list[str]) -> tuple[list[str], str]:
        still: list[str] = []
        last_error = ""
        batch = 50
        for start in range(0, len(pending), batch):
            chunk = pending[start : start + batch]
            request = b""
            for name in chunk:
                request += f"GET VAR {name} ups.status\n".encode("ascii")
                if self.drivers[name] == "dummy-ups":
                    request += f"LIST CMD {name}\n".encode("ascii")
            conn.send(request)
            for name in chunk:
                status = conn.read_reply()
                ok = status.startswith(b"VAR ") and not status.endswith(b' "WAIT"\n')
                if self.drivers[name] == "dummy-ups":
                    cmds = conn.read_reply()
                    ok = ok and b"\nCMD " in cmds
                if not ok:
                    still.append(name)
                    last_error = f"[{name}]: {status!r}"
        return still, last_error


# --------------------------------------------------------------------------
# The Device Dump Library in bulk


def ddl_ups_name(index: int) -> str:
    """Return the UPS name used for the ``index``-th DDL file (``ddl000`` ...).

    Args:
        index: Position in :func:`ddl_dev_files`.

    Returns:
        The UPS section name.
    """
    return f"ddl{index:03d}"


def ddl_ups_sections(
    files: Sequence[Path], *, synchronous: bool = True
) -> dict[str, dict[str, str | int]]:
    """Build ``ups.conf`` sections that serve each ``.dev`` file with ``dummy-ups``.

    Args:
        files: ``.dev`` files (normally :func:`ddl_dev_files`).
        synchronous: Add ``synchronous = yes``. Needed when many drivers share one
            upsd: in the default ``auto`` mode a 2.8.0 driver whose non-blocking
            write to a busy upsd fails with EAGAIN drops the connection, flips
            ``driver.parameter.synchronous`` to ``yes`` and may even crash
            (seen with the 478/581-variable Eaton ePDU dumps). The only visible
            effect is ``driver.parameter.synchronous: yes`` instead of ``auto``.

    Returns:
        UPS name -> section keys (``port``, ``desc`` = path relative to the DDL,
        optionally ``synchronous``), in file order.
    """
    sections: dict[str, dict[str, str | int]] = {}
    for index, path in enumerate(files):
        try:
            desc = path.relative_to(DDL_DIR).as_posix()
        except ValueError:
            desc = path.name
        keys: dict[str, str | int] = {"port": str(path), "desc": desc}
        if synchronous:
            keys["synchronous"] = "yes"
        sections[ddl_ups_name(index)] = keys
    return sections


def collect_ddl_upsc(
    workdir: Path,
    files: Sequence[Path],
    *,
    synchronous: bool = True,
    workers: int = 16,
) -> dict[Path, list[str]]:
    """Serve all ``files`` from ONE real upsd and return ``upsc`` output for each.

    This is the fast path for the whole DDL: 718 drivers start in parallel
    (each needs ~2 s because dummy-ups sleeps 1 s before creating its socket
    and again before answering upsd's first DUMPALL), and the ``upsc`` calls run
    concurrently. Measured on 2 CPUs: ~4 s start, ~3 s for 718 ``upsc``.

    Args:
        workdir: Empty directory for the generated config (must be short enough
            for the socket paths, see :class:`RealNut`).
        files: ``.dev`` files.
        synchronous: See :func:`ddl_ups_sections`.
        workers: Concurrent ``upsc`` processes.

    Returns:
        ``.dev`` path -> ``upsc`` output lines.
    """
    sections = ddl_ups_sections(files, synchronous=synchronous)
    confdir = write_nut_config(workdir, port=free_port(), ups=sections)
    with RealNut(confdir) as nut:
        out = upsc_dump_many([nut.target(name) for name in sections], workers=workers)
    return {
        path: out[f"{name}@{HOST}:{nut.port}"] for path, name in zip(files, sections, strict=True)
    }


@pytest.fixture(scope="session", name="ddl_real_upsc")
def ddl_real_upsc_fixture(tmp_path_factory: pytest.TempPathFactory) -> dict[Path, list[str]]:
    """Session-wide ``upsc`` output of the real NUT for every DDL ``.dev`` file.

    Skips when NUT or the shared data is missing. ``tests/conftest.py`` registers it
    for every test.

    Args:
        tmp_path_factory: pytest's session temp-dir factory.

    Returns:
        ``.dev`` path -> ``upsc`` output lines (computed once per session).
    """
    require_real_nut()
    files = require_ddl()
    return collect_ddl_upsc(tmp_path_factory.mktemp("ddlnut"), files)


# --------------------------------------------------------------------------
# pytest fixture factory


class RealNutFactory(Protocol):
    """Callable returned by the ``real_nut`` fixture."""

    def __call__(
        self,
        ups: Mapping[str, Mapping[str, str | int]],
        *,
        users: str | None = None,
        upsd_extra: str = "",
        startup_timeout: float | None = None,
    ) -> RealNut:
        """Write a config for ``ups`` in a fresh directory and start it.

        Args:
            ups: UPS sections as for :func:`write_nut_config`.
            users: ``upsd.users`` text or ``None`` for the default users.
            upsd_extra: Extra ``upsd.conf`` lines.
            startup_timeout: See :class:`RealNut`.

        Returns:
            The started :class:`RealNut` (stopped automatically at teardown).
        """
        ...


@pytest.fixture(name="real_nut")
def real_nut_fixture(tmp_path: Path) -> Iterator[RealNutFactory]:
    """Provide a factory that starts real upsd + drivers; all are stopped at teardown.

    Skips the test when the NUT programs are not installed. ``tests/conftest.py``
    registers it for every test.

    Args:
        tmp_path: pytest's per-test temporary directory.

    Yields:
        A :class:`RealNutFactory`.
    """
    require_real_nut()
    started: list[RealNut] = []

    def factory(
        ups: Mapping[str, Mapping[str, str | int]],
        *,
        users: str | None = None,
        upsd_extra: str = "",
        startup_timeout: float | None = None,
    ) -> RealNut:
        for attempt in range(3):
            confdir = tmp_path / f"nut{len(started)}-{attempt}"
            write_nut_config(confdir, port=free_port(), ups=ups, users=users, upsd_extra=upsd_extra)
            nut = RealNut(confdir, startup_timeout=startup_timeout)
            try:
                nut.start()
            except RealNutError:
                # Only a port stolen between free_port() and upsd's bind is retried.
                stolen = "no listening interface available" in _tail(nut.log_path("upsd"))
                if stolen and attempt < 2:
                    continue
                raise
            started.append(nut)
            return nut
        raise AssertionError("unreachable")

    try:
        yield factory
    finally:
        for nut in reversed(started):
            nut.stop()
