"""Reading NUT's own configuration files (ups.conf, upsd.conf, upsd.users) as upsd does.

Bad configuration raises :class:`ConfigError`, which names the file and line.

Every file is split with NUT's own tokenizer (:func:`nuttrio.protocol.tokenizer.split_text`),
so comments, quoting, backslash escapes and the ``=`` word work exactly as for upsd 2.8.0.
Where upsd only logs a problem and carries on, nuttrio does one of two things:

* a line that upsd logs about but that changes nothing a user could rely on (an unknown
  upsd.conf directive, an obsolete ``ACL``, ``allowfrom`` in upsd.users, ...) becomes a
  *warning* string ``"<file>:<line>: <text>"``, collected in :attr:`NutConfig.warnings`;
* a line whose meaning upsd gets wrong or drops (a parse error, ``MAXAGE abc``, a UPS
  section without ``driver``, a second ``[user]`` section of the same name, ...) raises
  :class:`ConfigError`: nuttrio refuses to start with it, or keeps the old configuration on
  reload. The docstrings of the loaders list each case.

Nothing here starts a server or touches the network; the only I/O is reading the three
files (and a ``/etc/services`` look-up for a ``LISTEN`` port given by service name).
"""

from __future__ import annotations

import logging
import os
import socket
import stat
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from types import MappingProxyType

import attrs

from nuttrio.protocol.tokenizer import LineError, split_text

__all__ = [
    "DEFAULT_CONFDIR",
    "DEFAULT_LISTEN",
    "DEFAULT_PORT",
    "DEFAULT_STATEPATH",
    "ConfigError",
    "Listen",
    "NutConfig",
    "UpsSection",
    "UpsdConfig",
    "User",
    "default_confdir",
    "load_nut_config",
    "load_ups_conf",
    "load_upsd_conf",
    "load_upsd_users",
    "read_config_lines",
    "reload_nut_config",
]

_log = logging.getLogger(__name__)

#: The NUT port (IANA ``nut``, 3493/tcp), used when ``LISTEN`` gives no port.
DEFAULT_PORT = 3493
#: Debian's compiled-in CONFPATH, used when ``NUT_CONFPATH`` is not set.
DEFAULT_CONFDIR = Path("/etc/nut")
#: Debian's compiled-in STATEPATH (driver sockets), used when neither upsd.conf's
#: ``STATEPATH`` nor the environment variable ``NUT_STATEPATH`` gives one.
DEFAULT_STATEPATH = Path("/run/nut")
UPSD_CONF = "upsd.conf"
UPS_CONF = "ups.conf"
UPSD_USERS = "upsd.users"

# C strcasecmp in the C locale folds ASCII letters only.
_ASCII_FOLD = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")

# parse_boolean() in server/conf.c, compared case-insensitively.
_TRUE_WORDS = frozenset({"true", "on", "yes", "1"})
_FALSE_WORDS = frozenset({"false", "off", "no", "0"})

# upsd.users actions that upsd 2.8.0 ever checks for (server/net*.c).
_KNOWN_ACTIONS = frozenset({"login", "master", "primary", "fsd", "set"})
_PRIMARY_ACTIONS = frozenset({"master", "primary"})

# ups.conf keys upsd itself reads; like upsd, nuttrio matches them case-sensitively.
_UPSD_UPS_KEYS = ("driver", "port", "desc")


def _fold(text: str) -> str:
    """Return ``text`` with ASCII letters lowered, as C ``strcasecmp`` compares."""
    return text.translate(_ASCII_FOLD)


def _frozen_map(table: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(table))


def _frozen_users(table: Mapping[str, User]) -> Mapping[str, User]:
    return MappingProxyType(dict(table))


def _fold_all(words: Iterable[str]) -> frozenset[str]:
    return frozenset(_fold(w) for w in words)


class ConfigError(Exception):
    """A configuration problem, with the file and line where it was found.

    Args:
        message: What is wrong.
        path: The file, if known.
        lineno: The 1-based line, if known.
    """

    def __init__(self, message: str, path: Path | None = None, lineno: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.path = path
        self.lineno = lineno

    def __str__(self) -> str:
        where = ""
        if self.path is not None:
            where = f"{self.path}:{self.lineno}: " if self.lineno else f"{self.path}: "
        return f"{where}{self.message}"


@attrs.frozen
class UpsSection:
    """One ``[name]`` section of ups.conf.

    Attributes:
        name: The UPS name.
        driver: The ``driver`` value.
        port: The ``port`` value.
        desc: The ``desc`` value, if any.
        options: Every key of the section (lower-cased) with its value; a bare flag has "".
        path: The ups.conf file.
        lineno: The line of the ``[name]`` header.
    """

    name: str
    driver: str
    port: str
    desc: str | None = None
    options: Mapping[str, str] = attrs.field(factory=dict)
    path: Path = Path("ups.conf")
    lineno: int = 0


# ---------------------------------------------------------------------------------------
# Shared helpers


def _where(path: Path, lineno: int) -> str:
    return f"{path}:{lineno}"


def read_config_lines(path: Path, what: str) -> Iterator[tuple[int, tuple[str, ...]]]:
    """Yield ``(lineno, words)`` for every non-empty line of a NUT config file.

    Used for every NUT file nuttrio reads (ups.conf, upsd.conf, upsd.users, upsmon.conf,
    upssched.conf), so they all follow NUT's tokenizer.

    Args:
        path: The file.
        what: Its name for messages (``"upsd.conf"``).

    Raises:
        ConfigError: If the file cannot be read, or for the first line the tokenizer
            rejects (NUT's daemons log "Parse error" and drop that line; nuttrio refuses).
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ConfigError(f"cannot read {what}: {reason}", path) from exc
    for item in split_text(data):
        if isinstance(item, LineError):
            raise ConfigError(f"parse error: {item.message}", path, item.lineno)
        yield item.lineno, item.words


def _world_readable_warning(path: Path) -> str | None:
    """Return upsd's warning for a file others can read (``check_perms`` in upsd.c)."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return None
    if mode & (stat.S_IROTH | stat.S_IXOTH):
        return f"{path}: file is world readable"
    return None


def _emit(warnings: list[str] | None) -> Callable[[str], None]:
    if warnings is not None:
        return warnings.append
    return _log.warning


def _parse_section_header(words: tuple[str, ...], path: Path, lineno: int, kind: str) -> str | None:
    """Return the name of a ``[name]`` header line, or ``None`` if this is not one.

    upsd treats any first word that starts with ``[`` and ends with ``]`` as a header and
    ignores whatever follows on the line; nuttrio refuses those extra words, an empty name
    and a first word that starts with ``[`` but is not a header.
    """
    first = words[0]
    if not first.startswith("["):
        return None
    if len(first) < 2 or not first.endswith("]"):
        raise ConfigError(
            f"malformed section header {first!r} (a {kind} name with spaces must be quoted: "
            f'"[my name]")',
            path,
            lineno,
        )
    name = first[1:-1]
    if not name:
        raise ConfigError(f"empty {kind} name in section header '[]'", path, lineno)
    if len(words) > 1:
        raise ConfigError(
            f"unexpected text after section header [{name}]: {' '.join(words[1:])!r} "
            "(upsd ignores it; put each setting on its own line)",
            path,
            lineno,
        )
    return name


# ---------------------------------------------------------------------------------------
# upsd.conf


@attrs.frozen
class Listen:
    """One address upsd listens on (a ``LISTEN`` line).

    Attributes:
        host: The address or host name, as written (upsd resolves it with
            ``getaddrinfo``, passive, any family).
        port: The TCP port.
        lineno: The upsd.conf line, or 0 for the default (not part of equality).
    """

    host: str
    port: int
    lineno: int = attrs.field(default=0, eq=False)


#: Where upsd listens when upsd.conf has no ``LISTEN`` line: IPv4 and IPv6 loopback.
#: (upsd binds 127.0.0.1 first; only a failure on that one is fatal.)
DEFAULT_LISTEN: tuple[Listen, ...] = (
    Listen("127.0.0.1", DEFAULT_PORT),
    Listen("::1", DEFAULT_PORT),
)


@attrs.frozen
class UpsdConfig:
    """upsd.conf, as upsd 2.8.0 reads it (``load_upsdconf`` in ``server/conf.c``).

    Attributes:
        listen: The ``LISTEN`` addresses in file order, duplicates removed, or
            :data:`DEFAULT_LISTEN` when there is none. (upsd binds them in reverse file
            order and stops only if the last line's address cannot be bound.)
        maxage: ``MAXAGE``: seconds without driver news before a UPS is stale.
        maxconn: ``MAXCONN``: most file descriptors served at once; ``None`` means upsd's
            default, the process limit (``sysconf(_SC_OPEN_MAX)``).
        trackingdelay: ``TRACKINGDELAY``: seconds a TRACKING result is kept.
        allow_no_device: ``ALLOW_NO_DEVICE``, after the environment variable of the same
            name (which wins when it reads as a boolean).
        statepath: ``STATEPATH``, else the environment variable ``NUT_STATEPATH`` if set
            and not empty, else ``None`` (meaning :data:`DEFAULT_STATEPATH`).
        datapath: ``DATAPATH``, or ``None`` for the compiled-in data directory (upsd has no
            environment variable for it).
        certfile: ``CERTFILE``: PEM file with certificate chain and key (OpenSSL builds of
            upsd; Debian's NSS build rejects the directive), or ``None``.
        disable_weak_ssl: ``DISABLE_WEAK_SSL``: TLS 1.2 or later only.
        debug_min: ``DEBUG_MIN``: lowest debug level, or ``None``.
        warnings: Problems upsd would only log, as ``"<file>:<line>: <text>"``.
    """

    listen: tuple[Listen, ...] = DEFAULT_LISTEN
    maxage: int = 15
    maxconn: int | None = None
    trackingdelay: int = 3600
    allow_no_device: bool = False
    statepath: Path | None = None
    datapath: Path | None = None
    certfile: Path | None = None
    disable_weak_ssl: bool = False
    debug_min: int | None = None
    warnings: tuple[str, ...] = ()


def _parse_count(word: str, directive: str, path: Path, lineno: int) -> int:
    """Parse a whole number of the kind upsd reads with ``isdigit`` + ``atoi``.

    upsd only checks that the first character is a digit (``MAXAGE 15s`` is 15 to it);
    nuttrio wants the whole word to be digits.
    """
    if word.isascii() and word.isdigit():
        return int(word)
    raise ConfigError(f"{directive} needs a whole number, not {word!r}", path, lineno)


def _parse_bool(word: str) -> bool | None:
    folded = _fold(word)
    if folded in _TRUE_WORDS:
        return True
    if folded in _FALSE_WORDS:
        return False
    return None


def _parse_port(word: str, path: Path, lineno: int) -> int:
    """Parse a ``LISTEN`` port: a number 1-65535 or a TCP service name.

    upsd hands the word to ``getaddrinfo``: service names work, ``0`` binds a random port
    and numbers above 65535 are silently truncated to 16 bits (70000 listens on 4464).
    nuttrio accepts service names and refuses the other two.
    """
    if word.isascii() and word.isdigit():
        port = int(word)
        if 1 <= port <= 65535:
            return port
        raise ConfigError(f"LISTEN port must be 1-65535, not {word}", path, lineno)
    try:
        return socket.getservbyname(word, "tcp")
    except OSError:
        raise ConfigError(
            f"LISTEN port {word!r} is not a number or a known TCP service", path, lineno
        ) from None


def _env_allow_no_device(env: Mapping[str, str]) -> bool | None:
    """Read the ``ALLOW_NO_DEVICE`` environment variable as upsd's ``main`` does.

    upsd compares prefixes case-insensitively: a value starting with ``true``, ``yes``,
    ``on`` or ``1`` means yes, one starting with ``false``, ``no``, ``off`` or ``0`` means
    no, anything else (or no variable) leaves upsd.conf's value alone.
    """
    value = env.get("ALLOW_NO_DEVICE")
    if value is None:
        return None
    folded = _fold(value)
    if folded.startswith(("true", "yes", "on", "1")):
        return True
    if folded.startswith(("false", "no", "off", "0")):
        return False
    return None


_UPSD_DIRECTIVES = (
    "LISTEN",
    "MAXAGE",
    "MAXCONN",
    "TRACKINGDELAY",
    "ALLOW_NO_DEVICE",
    "STATEPATH",
    "DATAPATH",
    "CERTFILE",
    "CERTPATH",
    "CERTIDENT",
    "CERTREQUEST",
    "DISABLE_WEAK_SSL",
    "ACL",
    "ACCEPT",
    "REJECT",
)


def load_upsd_conf(path: Path, *, env: Mapping[str, str] | None = None) -> UpsdConfig:
    """Read upsd.conf as upsd 2.8.0 does.

    Directive names are case-sensitive (``maxage 10`` is an unknown directive to upsd),
    except ``DEBUG_MIN``. Settings:

    * ``LISTEN addr [port]`` (port: number or service name, default 3493);
    * ``MAXAGE n``, ``TRACKINGDELAY n``, ``MAXCONN n`` (n >= 1: upsd refuses to start
      with 0), ``DEBUG_MIN n``: whole numbers;
    * ``ALLOW_NO_DEVICE`` a number (non-zero is yes) or ``true/on/yes/1`` /
      ``false/off/no/0`` in any case; ``DISABLE_WEAK_SSL`` one of those words;
    * ``STATEPATH dir``, ``DATAPATH dir``, ``CERTFILE file``.

    Warnings (upsd only logs these): an unknown directive; ``ACL``/``ACCEPT``/``REJECT``
    (obsolete); ``CERTPATH``/``CERTIDENT``/``CERTREQUEST`` (NSS build of upsd only:
    nuttrio cannot read an NSS database, so STARTTLS is not configured by them); a repeated
    ``LISTEN`` (the duplicate is dropped); a world-readable file.

    Environment: ``ALLOW_NO_DEVICE`` overrides the file (see
    :attr:`UpsdConfig.allow_no_device`); ``NUT_STATEPATH`` is the default ``STATEPATH``.

    Args:
        path: The upsd.conf file.
        env: Environment to read, default :data:`os.environ`.

    Returns:
        The settings, with :attr:`UpsdConfig.warnings`.

    Raises:
        ConfigError: With file and line, if the file cannot be read, a line does not
            tokenize, a known directive lacks its value, has extra words, or has a bad
            value (upsd logs these and ignores the line).
    """
    env = os.environ if env is None else env
    warnings: list[str] = []
    perm = _world_readable_warning(path)
    if perm:
        warnings.append(perm)

    listen: list[Listen] = []
    maxage = 15
    maxconn: int | None = None
    trackingdelay = 3600
    allow_no_device = False
    env_statepath = env.get("NUT_STATEPATH")
    statepath = Path(env_statepath) if env_statepath else None
    datapath: Path | None = None
    certfile: Path | None = None
    disable_weak_ssl = False
    debug_min: int | None = None

    for lineno, words in read_config_lines(path, UPSD_CONF):
        name, args = words[0], words[1:]
        here = _where(path, lineno)

        if name in ("ACL", "ACCEPT", "REJECT"):
            warnings.append(f"{here}: {name} is no longer supported (use LISTEN); ignored")
            continue
        if name in ("CERTPATH", "CERTIDENT", "CERTREQUEST"):
            warnings.append(
                f"{here}: {name} configures an NSS (or client-certificate) build of upsd; "
                "nuttrio uses CERTFILE (PEM certificate chain and key) instead; ignored"
            )
            continue
        is_debug_min = _fold(name) == "debug_min"
        if name not in _UPSD_DIRECTIVES and not is_debug_min:
            hint = ""
            if name.upper() in _UPSD_DIRECTIVES:
                hint = f" (directive names are case-sensitive: {name.upper()})"
            warnings.append(f"{here}: invalid directive {' '.join(words)!r}{hint}; ignored")
            continue

        most = 2 if name == "LISTEN" else 1
        if not args:
            raise ConfigError(f"{name} needs a value", path, lineno)
        if len(args) > most:
            wanted = "an address and an optional port" if most == 2 else "one value"
            raise ConfigError(
                f"{name} takes {wanted}, got {' '.join(args)!r} "
                "(quote a value that contains spaces)",
                path,
                lineno,
            )
        arg = args[0]

        if name == "LISTEN":
            port = _parse_port(args[1], path, lineno) if len(args) > 1 else DEFAULT_PORT
            entry = Listen(arg, port, lineno)
            if entry in listen:
                warnings.append(f"{here}: LISTEN {arg} {port} repeated; ignored")
            else:
                listen.append(entry)
        elif is_debug_min:
            debug_min = _parse_count(arg, "DEBUG_MIN", path, lineno)
        elif name == "MAXAGE":
            maxage = _parse_count(arg, name, path, lineno)
        elif name == "TRACKINGDELAY":
            trackingdelay = _parse_count(arg, name, path, lineno)
        elif name == "MAXCONN":
            maxconn = _parse_count(arg, name, path, lineno)
            if maxconn < 1:
                raise ConfigError(
                    "MAXCONN must be at least 1 (upsd will not start with 0)", path, lineno
                )
        elif name == "ALLOW_NO_DEVICE":
            flag = int(arg) != 0 if arg.isascii() and arg.isdigit() else _parse_bool(arg)
            if flag is None:
                raise ConfigError(
                    "ALLOW_NO_DEVICE needs a number or a boolean (true/false, yes/no, "
                    f"on/off), not {arg!r}",
                    path,
                    lineno,
                )
            allow_no_device = flag
        elif name == "DISABLE_WEAK_SSL":
            flag = _parse_bool(arg)
            if flag is None:
                raise ConfigError(
                    "DISABLE_WEAK_SSL needs a boolean (true/false, yes/no, on/off, 1/0), "
                    f"not {arg!r}",
                    path,
                    lineno,
                )
            disable_weak_ssl = flag
        elif name == "STATEPATH":
            statepath = Path(arg)
        elif name == "DATAPATH":
            datapath = Path(arg)
        else:
            certfile = Path(arg)

    env_allow = _env_allow_no_device(env)
    if env_allow is not None:
        allow_no_device = env_allow

    return UpsdConfig(
        listen=tuple(listen) if listen else DEFAULT_LISTEN,
        maxage=maxage,
        maxconn=maxconn,
        trackingdelay=trackingdelay,
        allow_no_device=allow_no_device,
        statepath=statepath,
        datapath=datapath,
        certfile=certfile,
        disable_weak_ssl=disable_weak_ssl,
        debug_min=debug_min,
        warnings=tuple(warnings),
    )


# ---------------------------------------------------------------------------------------
# upsd.users


@attrs.frozen
class User:
    """One ``[name]`` section of upsd.users.

    Attributes:
        name: The user name (case-sensitive, as the client sends it with ``USERNAME``).
        password: The password, or ``None`` if the section has none (then upsd allows
            this user nothing).
        actions: Allowed actions, lower-cased (``login``, ``master``, ``fsd``, ``set``,
            ...); ``upsmon primary`` has already been expanded.
        instcmds: Allowed instant commands, lower-cased; ``all`` allows every one.
    """

    name: str
    password: str | None = None
    actions: frozenset[str] = attrs.field(default=frozenset(), converter=_fold_all)
    instcmds: frozenset[str] = attrs.field(default=frozenset(), converter=_fold_all)

    def _password_ok(self, password: str | None) -> bool:
        return self.password is not None and password is not None and password == self.password

    def allows(self, action: str, password: str | None) -> bool:
        """Whether this user, having sent ``password``, may perform ``action``.

        upsd asks for ``LOGIN`` (LOGIN), ``PRIMARY`` or ``MASTER`` (the PRIMARY and MASTER
        commands accept either, so here each name also grants the other), ``FSD`` (FSD) and
        ``SET`` (SET VAR). The password is compared exactly; the action name in any case.

        Args:
            action: The action name.
            password: What the client sent with ``PASSWORD``, or ``None`` if nothing.

        Returns:
            True if the password matches and the action is allowed.
        """
        if not self._password_ok(password):
            return False
        wanted = _fold(action)
        if wanted in _PRIMARY_ACTIONS:
            return not self.actions.isdisjoint(_PRIMARY_ACTIONS)
        return wanted in self.actions

    def allows_instcmd(self, cmd: str, password: str | None) -> bool:
        """Whether this user, having sent ``password``, may run instant command ``cmd``.

        Args:
            cmd: The command name, in any case.
            password: What the client sent with ``PASSWORD``, or ``None`` if nothing.

        Returns:
            True if the password matches and ``cmd`` (or ``all``) is in ``instcmds``.
        """
        if not self._password_ok(password):
            return False
        return _fold(cmd) in self.instcmds or "all" in self.instcmds


@attrs.define
class _UserDraft:
    name: str
    lineno: int
    password: str | None = None
    password_line: int = 0
    actions: set[str] = attrs.field(factory=set)
    instcmds: set[str] = attrs.field(factory=set)

    def build(self) -> User:
        return User(self.name, self.password, frozenset(self.actions), frozenset(self.instcmds))


def _upsmon_actions(kind: str, path: Path, lineno: int) -> tuple[str, ...]:
    folded = _fold(kind)
    if folded in ("primary", "master"):
        return ("login", "master", "fsd")
    if folded in ("secondary", "slave"):
        return ("login",)
    raise ConfigError(
        f"unknown upsmon type {kind!r} (use primary or secondary; master and slave are "
        "the old names)",
        path,
        lineno,
    )


def load_upsd_users(path: Path, *, warnings: list[str] | None = None) -> dict[str, User]:
    """Read upsd.users as upsd 2.8.0 does (``server/user.c``).

    Lines, in upsd's terms:

    * ``[name]`` starts a user; names are case-sensitive (quote a name with spaces:
      ``"[my name]"``);
    * ``key = v1 v2 ...`` (``key=v`` is the same line to the tokenizer), keys in any case:
      ``password``, ``actions``, ``instcmds``, ``upsmon``; ``actions`` and ``instcmds``
      accumulate over values and lines;
    * ``upsmon primary|master`` grants ``login``, ``master``, ``fsd``;
      ``upsmon secondary|slave`` grants ``login``; ``upsmon = primary`` works too;
    * a quoted first word with ``=`` inside (``"password=x" ...``) is split at the ``=``.

    Warnings (upsd logs them and goes on): ``allowfrom`` (no longer used); an unknown key;
    an unknown action name; a setting before the first ``[user]``; an old-format line
    starting with ``user``; a world-readable file.

    Raises :class:`ConfigError` (with file and line) where upsd's result differs from what
    the file says:

    * a second ``[name]`` section of the same user: upsd ignores the header but, because it
      keeps filling the *previous* section, hands that section's settings to whichever user
      came just before;
    * a second password for one user, or a password of several words: upsd keeps the first
      word of the first one;
    * an unknown ``upsmon`` type;
    * a line upsd silently ignores: ``password secret`` (no ``=``), a key without value,
      text after a ``[name]`` header, a malformed header, ``[]``;
    * a tokenizer error, or an unreadable file (upsd 2.8.0 refuses to start without
      upsd.users).

    Args:
        path: The upsd.users file.
        warnings: List to append warnings to; if ``None`` they are logged instead.

    Returns:
        The users, in file order, keyed by name.
    """
    warn = _emit(warnings)
    perm = _world_readable_warning(path)
    if perm:
        warn(perm)
    users: dict[str, _UserDraft] = {}
    current: _UserDraft | None = None

    def apply(current: _UserDraft | None, key: str, vals: tuple[str, ...], lineno: int) -> None:
        here = _where(path, lineno)
        if current is None:
            warn(f"{here}: {key} outside any [user] section; ignored")
            return
        folded = _fold(key)
        if folded == "password":
            if len(vals) != 1:
                raise ConfigError(
                    f"password of user {current.name} has {len(vals)} words; quote a password "
                    "that contains spaces (upsd would use only the first word)",
                    path,
                    lineno,
                )
            if current.password is not None:
                raise ConfigError(
                    f"second password for user {current.name} (the first is on line "
                    f"{current.password_line}; upsd would keep that one)",
                    path,
                    lineno,
                )
            current.password = vals[0]
            current.password_line = lineno
        elif folded == "actions":
            for action in vals:
                if _fold(action) not in _KNOWN_ACTIONS:
                    warn(
                        f"{here}: unknown action {action!r} for user {current.name} "
                        f"(known: {', '.join(sorted(_KNOWN_ACTIONS))})"
                    )
                current.actions.add(_fold(action))
        elif folded == "instcmds":
            current.instcmds.update(_fold(cmd) for cmd in vals)
        elif folded == "upsmon":
            for kind in vals:
                current.actions.update(_upsmon_actions(kind, path, lineno))
        elif folded == "allowfrom":
            warn(f"{here}: allowfrom in upsd.users is no longer used; ignored")
        else:
            warn(f"{here}: unknown user setting {key!r}; ignored")

    for lineno, words in read_config_lines(path, UPSD_USERS):
        first = words[0]
        if _fold(first) == "user":
            warn(f"{_where(path, lineno)}: old-format 'user' line; ignored")
            continue
        if "=" in first and first != "=":
            key, _, value = first.partition("=")
            apply(current, key, (value, *words[1:]), lineno)
            continue
        name = _parse_section_header(words, path, lineno, "user")
        if name is not None:
            if name in users:
                raise ConfigError(
                    f"user [{name}] is already defined on line {users[name].lineno} "
                    "(upsd would give this section's settings to the user before it)",
                    path,
                    lineno,
                )
            current = users[name] = _UserDraft(name, lineno)
            continue
        if len(words) == 2 and _fold(first) == "upsmon" and words[1] != "=":
            apply(current, first, words[1:], lineno)
            continue
        if len(words) >= 3 and words[1] == "=":
            apply(current, first, words[2:], lineno)
            continue
        raise ConfigError(
            f"cannot understand {' '.join(words)!r}: expected [user], 'key = value' or "
            "'upsmon primary|secondary' (upsd ignores this line)",
            path,
            lineno,
        )

    return {name: draft.build() for name, draft in users.items()}


# ---------------------------------------------------------------------------------------
# ups.conf


@attrs.define
class _SectionDraft:
    name: str
    lineno: int
    options: dict[str, str] = attrs.field(factory=dict)
    exact: dict[str, str] = attrs.field(factory=dict)  # driver/port/desc as upsd sees them


def load_ups_conf(
    path: Path, *, warnings: list[str] | None = None
) -> tuple[tuple[UpsSection, ...], dict[str, str]]:
    """Read ups.conf: the UPS sections and the global settings before the first section.

    Lines are ``[name]``, ``key = value`` (also ``key=value``) or a bare ``flag``. Keys are
    lower-cased into :attr:`UpsSection.options` and the globals; a flag's value is ``""``.
    upsd itself reads only ``driver``, ``port`` and ``desc``, case-sensitively, and ignores
    the globals (they are for upsdrvctl and the drivers: ``maxstartdelay``, ``pollinterval``,
    ``user``, ...).

    Warnings: a value of several unquoted words (NUT keeps only the first, so does nuttrio);
    a key repeated in one section (the last one wins, as in NUT).

    Raises :class:`ConfigError` (with file and line) where NUT's result differs from what
    the file says; each is a decision of nuttrio's:

    * a section without ``driver`` or ``port`` (the header line is named): upsd logs
      "ignoring incomplete configuration" and serves the other UPSes, upsdrvctl and the
      drivers fail on it, so such a file does not describe a working setup;
    * a repeated section name: upsd merges sections of exactly the same name and, for
      names that differ only in case (which clients cannot tell apart), keeps the *later*
      one and drops the earlier with "UPS name [...] is already in use";
    * ``Driver``/``PORT``/... in another case than lower (upsd would not see it);
    * ``driver``, ``port`` or ``desc`` as a bare flag (upsd 2.8.0 crashes on it);
    * a line NUT silently ignores: two words, or three and more without ``=`` second;
      text after a header, a malformed header, ``[]``;
    * a tokenizer error or an unreadable file (upsd refuses to start without ups.conf).

    Args:
        path: The ups.conf file.
        warnings: List to append warnings to; if ``None`` they are logged instead.

    Returns:
        The sections in file order, and the global settings.
    """
    warn = _emit(warnings)
    sections: dict[str, _SectionDraft] = {}  # keyed by folded name
    globals_: dict[str, str] = {}
    current: _SectionDraft | None = None

    for lineno, words in read_config_lines(path, UPS_CONF):
        here = _where(path, lineno)
        name = _parse_section_header(words, path, lineno, "UPS")
        if name is not None:
            earlier = sections.get(_fold(name))
            if earlier is not None:
                raise ConfigError(
                    f"UPS [{name}] is already defined as [{earlier.name}] on line "
                    f"{earlier.lineno} (UPS names are compared without regard to case)",
                    path,
                    lineno,
                )
            current = sections[_fold(name)] = _SectionDraft(name, lineno)
            continue

        key = words[0]
        if len(words) == 1:
            value = ""
        elif len(words) >= 3 and words[1] == "=":
            value = words[2]
            if len(words) > 3:
                warn(
                    f"{here}: {key} has several words, only {value!r} is used; "
                    "quote a value that contains spaces"
                )
        else:
            raise ConfigError(
                f"cannot understand {' '.join(words)!r}: expected [name], 'key = value' or "
                "a flag (NUT ignores this line)",
                path,
                lineno,
            )

        lowered = key.lower()
        if current is None:
            globals_[lowered] = value
            continue
        if lowered in _UPSD_UPS_KEYS:
            if key != lowered:
                raise ConfigError(
                    f"write {lowered!r}, not {key!r}: NUT reads ups.conf keys case-sensitively",
                    path,
                    lineno,
                )
            if len(words) == 1:
                raise ConfigError(f"{key} needs a value ('{key} = ...')", path, lineno)
            current.exact[key] = value
        if lowered in current.options:
            warn(f"{here}: {key} repeated in [{current.name}]; the last value is used")
        current.options[lowered] = value

    result: list[UpsSection] = []
    for draft in sections.values():
        missing = [k for k in ("driver", "port") if k not in draft.exact]
        if missing:
            raise ConfigError(
                f"UPS [{draft.name}] has no {' and no '.join(missing)} "
                "(upsd would ignore this incomplete section)",
                path,
                draft.lineno,
            )
        result.append(
            UpsSection(
                name=draft.name,
                driver=draft.exact["driver"],
                port=draft.exact["port"],
                desc=draft.exact.get("desc"),
                options=MappingProxyType(dict(draft.options)),
                path=path,
                lineno=draft.lineno,
            )
        )
    return tuple(result), globals_


# ---------------------------------------------------------------------------------------
# The whole directory


@attrs.frozen
class NutConfig:
    """Everything upsd reads from its configuration directory.

    Attributes:
        confdir: The directory holding the three files.
        upsd: upsd.conf.
        ups: The UPS sections of ups.conf, in file order.
        ups_globals: ups.conf's global settings (lower-cased keys; flags have "").
        users: upsd.users, keyed by user name.
        warnings: Every warning of the three files (upsd.conf's first); the caller logs
            them.
    """

    confdir: Path
    upsd: UpsdConfig
    ups: tuple[UpsSection, ...]
    ups_globals: Mapping[str, str] = attrs.field(factory=dict, converter=_frozen_map)
    users: Mapping[str, User] = attrs.field(factory=dict, converter=_frozen_users)
    warnings: tuple[str, ...] = ()


def default_confdir(env: Mapping[str, str] | None = None) -> Path:
    """Return the configuration directory: ``$NUT_CONFPATH``, else :data:`DEFAULT_CONFDIR`.

    An empty ``NUT_CONFPATH`` counts as unset (upsd would then read ``/upsd.conf``).

    Args:
        env: Environment to read, default :data:`os.environ`.
    """
    env = os.environ if env is None else env
    value = env.get("NUT_CONFPATH")
    return Path(value) if value else DEFAULT_CONFDIR


def _load(confdir: Path, env: Mapping[str, str], *, reloading: bool) -> NutConfig:
    upsd = load_upsd_conf(confdir / UPSD_CONF, env=env)
    warnings = list(upsd.warnings)
    ups_path = confdir / UPS_CONF
    ups, ups_globals = load_ups_conf(ups_path, warnings=warnings)
    if not ups:
        if not (upsd.allow_no_device or reloading):
            raise ConfigError(
                "no UPS is defined; at least one [name] section is needed, unless "
                "ALLOW_NO_DEVICE is set in upsd.conf or in the environment",
                ups_path,
            )
        warnings.append(f"{ups_path}: no UPS is defined; serving none until a reload")
    users = load_upsd_users(confdir / UPSD_USERS, warnings=warnings)
    return NutConfig(
        confdir=confdir,
        upsd=upsd,
        ups=ups,
        ups_globals=ups_globals,
        users=users,
        warnings=tuple(warnings),
    )


def load_nut_config(
    confdir: Path | None = None, *, env: Mapping[str, str] | None = None
) -> NutConfig:
    """Read upsd.conf, ups.conf and upsd.users for startup, as upsd 2.8.0 does.

    Fatal, as for upsd: a missing or unreadable upsd.conf, ups.conf or upsd.users; no UPS
    in ups.conf unless ``ALLOW_NO_DEVICE`` (upsd.conf or environment); ``MAXCONN 0``. On
    top of that, every :class:`ConfigError` case of :func:`load_upsd_conf`,
    :func:`load_ups_conf` and :func:`load_upsd_users`.

    Args:
        confdir: The directory; ``None`` means :func:`default_confdir`.
        env: Environment to read, default :data:`os.environ`.

    Returns:
        The configuration, with all warnings in :attr:`NutConfig.warnings`.

    Raises:
        ConfigError: Naming the file (and line, where there is one).
    """
    env = os.environ if env is None else env
    if confdir is None:
        confdir = default_confdir(env)
    return _load(confdir, env, reloading=False)


def reload_nut_config(old: NutConfig, *, env: Mapping[str, str] | None = None) -> NutConfig:
    """Re-read the configuration for SIGHUP (``upsd -c reload``).

    As upsd: all three files are read again from ``old.confdir`` and every upsd.conf
    setting takes the new value except ``LISTEN``, which stays as it was (a warning says
    so if the file now differs); an empty ups.conf is only a warning.

    Unlike upsd, a reload is all or nothing: any error raises and the caller keeps ``old``.
    (upsd aborts a reload if upsd.conf cannot be opened, *exits* if ups.conf cannot, and
    applies the rest but keeps the old users if upsd.users cannot.)

    Args:
        old: The configuration in use.
        env: Environment to read, default :data:`os.environ`.

    Returns:
        The new configuration.

    Raises:
        ConfigError: As :func:`load_nut_config`, except for "no UPS".
    """
    env = os.environ if env is None else env
    new = _load(old.confdir, env, reloading=True)
    warnings = list(new.warnings)
    if new.upsd.listen != old.upsd.listen:
        warnings.append(
            f"{old.confdir / UPSD_CONF}: LISTEN changed; the new addresses take effect only "
            "after a restart"
        )
    return attrs.evolve(
        new,
        upsd=attrs.evolve(new.upsd, listen=old.upsd.listen),
        warnings=tuple(warnings),
    )
