"""upssched.conf, as upssched reads it (``conf_arg`` and ``parse_at`` in upssched.c).

This module performs no I/O beyond reading the file.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

import attrs

from .common import (
    ConfigError,
    ConfigWarning,
    Directive,
    Handler,
    dispatch,
    parse_int,
    repeated_directive,
    shell_syntax,
    upper,
)
from .notify_types import NOTIFY_TYPES
from .upsmon_conf import UpsmonConfig

__all__ = [
    "UPSSCHED_CONF",
    "SchedAction",
    "SchedRule",
    "UpsschedConfig",
    "check_upssched_against_upsmon",
    "load_upssched_conf",
]

UPSSCHED_CONF = "upssched.conf"


class SchedAction(enum.StrEnum):
    """What an ``AT`` line does (upssched compares these case-sensitively)."""

    START_TIMER = "START-TIMER"
    CANCEL_TIMER = "CANCEL-TIMER"
    EXECUTE = "EXECUTE"
    START_TIMER_SHARED = "START-TIMER-SHARED"
    CANCEL_TIMER_MATCHED = "CANCEL-TIMER-MATCHED"


# action -> (least, most) arguments, usage
_ACTION_ARGS: Mapping[SchedAction, tuple[int, int, str]] = MappingProxyType(
    {
        SchedAction.START_TIMER: (2, 2, "<timer> <seconds>"),
        SchedAction.START_TIMER_SHARED: (2, 2, "<timer> <seconds>"),
        SchedAction.CANCEL_TIMER: (1, 2, "<timer> [<command>]"),
        SchedAction.CANCEL_TIMER_MATCHED: (1, 2, "<timer> [<command>]"),
        SchedAction.EXECUTE: (1, 1, "<command>"),
    }
)


@attrs.frozen
class SchedRule:
    """One ``AT <notifytype> <ups> <action> <args...>`` line of upssched.conf.

    Attributes:
        notify_type: The notify type, upper-cased (upssched compares it without regard to
            case).
        ups: The UPS, compared exactly with upsmon's ``UPSNAME`` (the whole MONITOR
            ``system`` string, e.g. ``myups@localhost``), or ``*`` for any.
        action: What to do.
        args: The action's words: timer name and seconds for the START actions; timer
            name and optional command for the CANCEL actions; the command for EXECUTE.
        lineno: The line of the AT directive.
    """

    notify_type: str
    ups: str
    action: SchedAction
    args: tuple[str, ...]
    lineno: int = 0

    def matches(self, notify_type: str, ups: str) -> bool:
        """Whether this rule applies to a notification, as upssched decides.

        Args:
            notify_type: The notification's type (``NOTIFYTYPE``), in any case.
            ups: The notification's UPS (``UPSNAME``).

        Returns:
            True if the types are equal without regard to case and the UPS is equal or
            the rule says ``*``.
        """
        return upper(notify_type) == self.notify_type and self.ups in ("*", ups)

    @property
    def timer(self) -> str | None:
        """The timer name, or ``None`` for EXECUTE."""
        return None if self.action is SchedAction.EXECUTE else self.args[0]

    @property
    def seconds(self) -> int | None:
        """The timer's length for the START actions, else ``None``."""
        if self.action in (SchedAction.START_TIMER, SchedAction.START_TIMER_SHARED):
            return int(self.args[1])
        return None

    @property
    def command(self) -> str | None:
        """The word handed to CMDSCRIPT: EXECUTE's command, or a CANCEL's command if any."""
        if self.action is SchedAction.EXECUTE:
            return self.args[0]
        if self.action in (SchedAction.CANCEL_TIMER, SchedAction.CANCEL_TIMER_MATCHED):
            return self.args[1] if len(self.args) > 1 else None
        return None


@attrs.frozen
class UpsschedConfig:
    """upssched.conf.

    Attributes:
        cmdscript: ``CMDSCRIPT``: the command run (no shell), with a timer name or an
            EXECUTE/CANCEL command appended; ``None`` only when there is no AT line.
        pipefn: ``PIPEFN``: upssched's socket to its timer daemon, or ``None``.
        lockfn: ``LOCKFN``: upssched's lock file while it starts the daemon, or ``None``.
        rules: The AT lines, in file order (upssched acts on every match, top to bottom).
        warnings: Problems upssched would only log.
        debug_min: ``DEBUG_MIN`` (upssched 2.8.5), or ``None``.
        path: The file this was read from.
    """

    cmdscript: str | None = None
    pipefn: Path | None = None
    lockfn: Path | None = None
    rules: tuple[SchedRule, ...] = ()
    warnings: tuple[ConfigWarning, ...] = ()
    debug_min: int | None = None
    path: Path = Path("upssched.conf")

    def matching(self, notify_type: str, ups: str) -> tuple[SchedRule, ...]:
        """The rules that apply to one notification, in file order.

        Args:
            notify_type: ``NOTIFYTYPE``.
            ups: ``UPSNAME``.

        Returns:
            The matching rules.
        """
        return tuple(r for r in self.rules if r.matches(notify_type, ups))


@attrs.define
class _Draft:
    warnings: list[ConfigWarning]
    seen: dict[str, int] = attrs.field(factory=dict)
    values: dict[str, object] = attrs.field(factory=dict)
    rules: list[SchedRule] = attrs.field(factory=list)
    order_warned: bool = False


def _parse_at(d: Directive, warn: list[ConfigWarning]) -> SchedRule:
    if len(d.words) < 5:
        raise d.error(
            "AT needs <notifytype> <ups|*> <action> <argument...> (upssched ignores this line)"
        )
    type_word, ups, action_word = d.words[1:4]
    args = d.words[4:]
    try:
        action = SchedAction(action_word)
    except ValueError:
        hint = ""
        if upper(action_word) in {a.value for a in SchedAction}:
            hint = f" (actions are case-sensitive: {upper(action_word)})"
        known = " ".join(a.value for a in SchedAction)
        raise d.error(
            f"AT: unknown action {action_word!r}{hint}; known: {known} (upssched logs "
            "'Invalid command' and does nothing)"
        ) from None
    least, most, usage = _ACTION_ARGS[action]
    if len(args) < least:
        raise d.error(f"AT ... {action} needs {usage}")
    if len(args) > most:
        raise d.error(
            f"too many words for AT ... {action} {usage}: {' '.join(args)!r} (upssched "
            "ignores the extra words; quote a command that contains spaces)"
        )
    if not args[0]:
        raise d.error(f"AT ... {action}: empty {usage.split()[0]}")
    if action in (SchedAction.START_TIMER, SchedAction.START_TIMER_SHARED) and not (
        args[1].isascii() and args[1].isdigit()
    ):
        raise d.error(
            f"AT ... {action} {args[0]}: the time must be a whole number of seconds, not "
            f"{args[1]!r} (upssched ignores a negative time and reads other text as 0)"
        )
    ntype = upper(type_word)
    if ntype not in NOTIFY_TYPES:
        warn.append(
            d.warning(
                f"AT: unknown notify type {type_word!r}: this rule never applies "
                f"(known: {' '.join(NOTIFY_TYPES)})"
            )
        )
    return SchedRule(ntype, ups, action, tuple(args), d.lineno)


def _at(draft: _Draft, d: Directive) -> None:
    draft.rules.append(_parse_at(d, draft.warnings))
    missing = [name for name in ("CMDSCRIPT", "PIPEFN", "LOCKFN") if name not in draft.seen]
    if missing and not draft.order_warned:
        draft.order_warned = True
        draft.warnings.append(
            d.warning(
                f"AT before {', '.join(missing)}: upssched 2.8.x requires CMDSCRIPT, PIPEFN "
                "and LOCKFN before the first AT and stops here (nuttrio reads the whole file)"
            )
        )


def _setting(convert: Handler[_Draft]) -> Handler[_Draft]:
    """A one-value directive: count and repetition checked, then ``convert`` stores it."""

    def handle(draft: _Draft, d: Directive) -> None:
        d.value("upssched")
        if d.name in draft.seen:
            draft.warnings.append(repeated_directive(d.path, d.lineno, d.name, draft.seen[d.name]))
        draft.seen[d.name] = d.lineno
        convert(draft, d)

    return handle


def _cmdscript(draft: _Draft, d: Directive) -> None:
    command = d.args[0]
    draft.values["cmdscript"] = command
    ops = shell_syntax(command)
    if ops:
        draft.warnings.append(
            d.warning(
                f"CMDSCRIPT {command!r} contains shell syntax ({' '.join(ops)}): nuttrio runs "
                "it without a shell (upssched runs it through one), so the program gets these "
                "as plain words; put the shell command in a script and name the script here"
            )
        )


def _debug_min(draft: _Draft, d: Directive) -> None:
    draft.values["debug_min"] = parse_int(d.args[0], d, minimum=0)


def _path(draft: _Draft, d: Directive) -> None:
    draft.values[d.name.lower()] = Path(d.args[0])


_TABLE: Mapping[str, Handler[_Draft]] = MappingProxyType(
    {
        "CMDSCRIPT": _setting(_cmdscript),
        "PIPEFN": _setting(_path),
        "LOCKFN": _setting(_path),
        "DEBUG_MIN": _setting(_debug_min),
        "AT": _at,
    }
)


def load_upssched_conf(path: Path) -> UpsschedConfig:
    """Read upssched.conf as upssched does (``conf_arg`` and ``parse_at`` in upssched.c).

    Directives (names case-sensitive): ``CMDSCRIPT <command>``, ``PIPEFN <file>``,
    ``LOCKFN <file>``, ``DEBUG_MIN <n>`` (upssched 2.8.5) and

    * ``AT <type> <ups|*> START-TIMER <timer> <seconds>``
    * ``AT <type> <ups|*> CANCEL-TIMER <timer> [<command>]``
    * ``AT <type> <ups|*> EXECUTE <command>``
    * ``AT <type> <ups|*> START-TIMER-SHARED <timer> <seconds>`` (2.8.5)
    * ``AT <type> <ups|*> CANCEL-TIMER-MATCHED <timer> [<command>]`` (documented since
      2.8.5; upssched 2.8.5 itself still answers it with "Invalid command", nuttrio
      implements it as documented)

    upssched only logs a bad AT line and carries on; nuttrio refuses the file instead
    (:class:`~nuttrio.nutconf.ConfigError` with file and line), because such a line
    silently loses a timer or command: an AT with fewer than 5 words; an unknown action
    (actions are case-sensitive); too few or too many words for the action (upssched
    ignores the extra words, so ``EXECUTE echo hi`` runs ``echo``); an empty command or
    timer name; a time that is not a whole number of seconds 0 or more. Also: a tokenizer
    error (a missing closing quote too), an unreadable file, a known directive with a
    missing or extra value, a bad ``DEBUG_MIN``, and AT lines without any CMDSCRIPT
    (upssched exits on every call).

    Order: upssched 2.8.x requires CMDSCRIPT, PIPEFN and LOCKFN *before* the first AT and
    exits with "CMDSCRIPT must be set before any ATs" on every call otherwise. nuttrio reads
    the whole file first, so the order does not matter to it; a file that breaks the rule
    (or lacks PIPEFN/LOCKFN, which nuttrio does not need) gets a warning, since the real
    upssched would refuse it.

    Warnings: an unknown directive; an AT for an unknown notify type (it never applies);
    a directive given twice (the last one wins); the order rule above; a CMDSCRIPT with
    shell syntax (``>``, ``|``, ``;``, ``&``, ``$``...), which nuttrio runs without a shell.

    Args:
        path: The upssched.conf file.

    Returns:
        The settings, with :attr:`UpsschedConfig.warnings`.

    Raises:
        ConfigError: With file and line, as listed above.
    """
    draft = _Draft(warnings=[])
    dispatch(path, UPSSCHED_CONF, _TABLE, draft, draft.warnings)
    if draft.rules and "cmdscript" not in draft.values:
        raise ConfigError(
            "AT lines but no CMDSCRIPT: timers and EXECUTE have nothing to run (upssched "
            "exits on every call)",
            path,
            draft.rules[0].lineno,
        )
    return UpsschedConfig(
        rules=tuple(draft.rules),
        warnings=tuple(draft.warnings),
        path=path,
        **draft.values,  # type: ignore[arg-type]
    )


def check_upssched_against_upsmon(
    sched: UpsschedConfig, upsmon: UpsmonConfig
) -> list[ConfigWarning]:
    """Cross-check upssched.conf with upsmon.conf; return warnings for silent mistakes.

    upsmon hands a notification to upssched only when NOTIFYCMD is upssched and the type's
    NOTIFYFLAG includes EXEC, and upssched compares the AT line's UPS with the whole MONITOR
    ``system`` string: ``AT ONBATT myups ...`` never applies to ``MONITOR myups@localhost``.

    Args:
        sched: upssched.conf.
        upsmon: upsmon.conf.

    Returns:
        Warnings, one per rule that can never apply.
    """
    if sched.rules and not upsmon.uses_upssched:
        return [
            ConfigWarning(
                upsmon.path,
                None,
                f"NOTIFYCMD is not upssched, so the AT rules of {sched.path} are never used",
            )
        ]
    out: list[ConfigWarning] = []
    systems = {m.system for m in upsmon.monitors}
    for rule in sched.rules:
        flags = upsmon.notifyflag.get(rule.notify_type)
        if flags is not None and ("EXEC" not in flags or "IGNORE" in flags):
            why = "includes IGNORE" if "IGNORE" in flags else "lacks EXEC"
            out.append(
                ConfigWarning(
                    sched.path,
                    rule.lineno,
                    f"AT {rule.notify_type} never applies: NOTIFYFLAG {rule.notify_type} in "
                    f"{upsmon.path} {why}",
                )
            )
        if rule.ups != "*" and rule.ups not in systems:
            out.append(
                ConfigWarning(
                    sched.path,
                    rule.lineno,
                    f"AT {rule.notify_type} {rule.ups} never applies: no MONITOR is written "
                    f"exactly {rule.ups!r} (upsmon.conf has {', '.join(sorted(systems))})",
                )
            )
    return out
