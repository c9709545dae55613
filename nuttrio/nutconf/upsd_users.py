"""upsd.users, as upsd 2.8.0 reads it (``server/user.c``).

This module performs no I/O beyond reading the file.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import MappingProxyType

import attrs

from .common import (
    ConfigWarning,
    Directive,
    fold,
    parse_section_header,
    read_config_lines,
    warning_sink,
    world_readable,
)

__all__ = ["UPSD_USERS", "User", "load_upsd_users"]

UPSD_USERS = "upsd.users"

# upsd.users actions that upsd 2.8.0 ever checks for (server/net*.c).
_KNOWN_ACTIONS = frozenset({"login", "master", "primary", "fsd", "set"})
_PRIMARY_ACTIONS = frozenset({"master", "primary"})


def _fold_all(words: Iterable[str]) -> frozenset[str]:
    return frozenset(fold(w) for w in words)


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

    def password_ok(self, password: str | None) -> bool:
        """Whether ``password`` is this user's password, compared in constant time.

        A user without a password accepts none (upsd allows such a user nothing).
        """
        if self.password is None or password is None:
            return False
        return hmac.compare_digest(password.encode(), self.password.encode())

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
        if not self.password_ok(password):
            return False
        wanted = fold(action)
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
        if not self.password_ok(password):
            return False
        return fold(cmd) in self.instcmds or "all" in self.instcmds


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


_Warn = Callable[[ConfigWarning], None]
_KeyHandler = Callable[[_UserDraft, tuple[str, ...], Directive, _Warn], None]


def _password(user: _UserDraft, vals: tuple[str, ...], d: Directive, warn: _Warn) -> None:
    if len(vals) != 1:
        raise d.error(
            f"password of user {user.name} has {len(vals)} words; quote a password that "
            "contains spaces (upsd would use only the first word)"
        )
    if user.password is not None:
        raise d.error(
            f"second password for user {user.name} (the first is on line "
            f"{user.password_line}; upsd would keep that one)"
        )
    user.password = vals[0]
    user.password_line = d.lineno


def _actions(user: _UserDraft, vals: tuple[str, ...], d: Directive, warn: _Warn) -> None:
    for action in vals:
        if fold(action) not in _KNOWN_ACTIONS:
            warn(
                d.warning(
                    f"unknown action {action!r} for user {user.name} "
                    f"(known: {', '.join(sorted(_KNOWN_ACTIONS))})"
                )
            )
        user.actions.add(fold(action))


def _instcmds(user: _UserDraft, vals: tuple[str, ...], d: Directive, warn: _Warn) -> None:
    user.instcmds.update(fold(cmd) for cmd in vals)


def _upsmon(user: _UserDraft, vals: tuple[str, ...], d: Directive, warn: _Warn) -> None:
    for kind in vals:
        folded = fold(kind)
        if folded in ("primary", "master"):
            user.actions.update(("login", "master", "fsd"))
        elif folded in ("secondary", "slave"):
            user.actions.add("login")
        else:
            raise d.error(
                f"unknown upsmon type {kind!r} (use primary or secondary; master and slave "
                "are the old names)"
            )


def _allowfrom(user: _UserDraft, vals: tuple[str, ...], d: Directive, warn: _Warn) -> None:
    warn(d.warning("allowfrom in upsd.users is no longer used; ignored"))


#: The keys of a ``[user]`` section (compared in any case), with their handlers.
_KEYS: Mapping[str, _KeyHandler] = MappingProxyType(
    {
        "password": _password,
        "actions": _actions,
        "instcmds": _instcmds,
        "upsmon": _upsmon,
        "allowfrom": _allowfrom,
    }
)


def _split_setting(d: Directive) -> tuple[str, tuple[str, ...]] | None:
    """The key and values of a setting line (``key = v...`` or ``upsmon x``), or ``None``."""
    first, words = d.name, d.words
    if len(words) == 2 and fold(first) == "upsmon" and words[1] != "=":
        return first, words[1:]
    if len(words) >= 3 and words[1] == "=":
        return first, words[2:]
    return None


def _apply(
    current: _UserDraft | None, key: str, vals: tuple[str, ...], d: Directive, warn: _Warn
) -> None:
    if current is None:
        warn(d.warning(f"{key} outside any [user] section; ignored"))
        return
    handler = _KEYS.get(fold(key))
    if handler is None:
        warn(d.warning(f"unknown user setting {key!r}; ignored"))
        return
    handler(current, vals, d, warn)


def load_upsd_users(path: Path, *, warnings: list[ConfigWarning] | None = None) -> dict[str, User]:
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

    Raises :class:`~nuttrio.nutconf.ConfigError` (with file and line) where upsd's result
    differs from what the file says:

    * a second ``[name]`` section of the same user: upsd ignores the header but, because it
      keeps filling the *previous* section, hands that section's settings to whichever user
      came just before;
    * a second password for one user, or a password of several words: upsd keeps the first
      word of the first one;
    * an unknown ``upsmon`` type;
    * a line upsd silently ignores: ``password secret`` (no ``=``), a key without value,
      text after a ``[name]`` header, a malformed header, ``[]``;
    * a password (or any word) whose closing quote is missing: upsd reads on into the
      next lines, so the users after it silently lose their settings;
    * a tokenizer error, or an unreadable file (upsd 2.8.0 refuses to start without
      upsd.users).

    Args:
        path: The upsd.users file.
        warnings: List to append warnings to; if ``None`` they are logged instead.

    Returns:
        The users, in file order, keyed by name.
    """
    warn: _Warn = warning_sink(warnings)
    perm = world_readable(path)
    if perm is not None:
        warn(perm)
    users: dict[str, _UserDraft] = {}
    current: _UserDraft | None = None
    for lineno, words in read_config_lines(path, UPSD_USERS):
        d = Directive(path, lineno, words)
        if fold(d.name) == "user":
            warn(d.warning("old-format 'user' line; ignored"))
            continue
        if "=" in d.name and d.name != "=":  # "key=value" quoted as one word
            key, _, value = d.name.partition("=")
            _apply(current, key, (value, *d.args), d, warn)
            continue
        name = parse_section_header(d, "user")
        if name is not None:
            if name in users:
                raise d.error(
                    f"user [{name}] is already defined on line {users[name].lineno} "
                    "(upsd would give this section's settings to the user before it)"
                )
            current = users[name] = _UserDraft(name, lineno)
            continue
        setting = _split_setting(d)
        if setting is None:
            raise d.error(
                f"cannot understand {' '.join(words)!r}: expected [user], 'key = value' or "
                "'upsmon primary|secondary' (upsd ignores this line)"
            )
        _apply(current, *setting, d, warn)
    return {name: draft.build() for name, draft in users.items()}
