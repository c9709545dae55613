"""ups.conf: the UPS sections (for upsd and the drivers) and the global settings.

This module performs no I/O beyond reading the file.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType

import attrs

from .common import (
    ConfigError,
    ConfigWarning,
    Directive,
    close_matches,
    fold,
    parse_section_header,
    read_config_lines,
    warning_sink,
)

__all__ = ["UPS_CONF", "UpsSection", "load_ups_conf"]

UPS_CONF = "ups.conf"

# ups.conf keys upsd itself reads; like upsd, nuttrio matches them case-sensitively.
_UPSD_UPS_KEYS = ("driver", "port", "desc")
_REQUIRED = ("driver", "port")


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


@attrs.define
class _SectionDraft:
    name: str
    lineno: int
    options: dict[str, str] = attrs.field(factory=dict)
    lines: dict[str, int] = attrs.field(factory=dict)  # key as written -> its line
    exact: dict[str, str] = attrs.field(factory=dict)  # driver/port/desc as upsd sees them

    def build(self, path: Path) -> UpsSection:
        missing = [k for k in _REQUIRED if k not in self.exact]
        if missing:
            raise self._incomplete(missing, path)
        return UpsSection(
            name=self.name,
            driver=self.exact["driver"],
            port=self.exact["port"],
            desc=self.exact.get("desc"),
            options=MappingProxyType(dict(self.options)),
            path=path,
            lineno=self.lineno,
        )

    def _incomplete(self, missing: list[str], path: Path) -> ConfigError:
        """The error for a section without driver or port, naming likely misspellings."""
        what = f"UPS [{self.name}] has no {' and no '.join(missing)}"
        others = [k for k in self.lines if fold(k) not in _UPSD_UPS_KEYS]
        guesses = [
            (key, want) for want in missing for key in others if close_matches(fold(key), [want])
        ]
        if not guesses:
            return ConfigError(
                f"{what} (upsd would ignore this incomplete section)", path, self.lineno
            )
        named = "; ".join(
            f"{key!r} on line {self.lines[key]} looks like a misspelling of {want!r}"
            for key, want in guesses
        )
        first = min(self.lines[key] for key, _ in guesses)
        return ConfigError(
            f"{what} (section on line {self.lineno}): {named} (ups.conf keys are driver "
            "options, so NUT accepts an unknown key and then ignores the section)",
            path,
            first,
        )


def _key_value(d: Directive, warn: Callable[[ConfigWarning], None]) -> tuple[str, str]:
    """Split ``key = value`` or a bare ``flag`` (value ``""``)."""
    words = d.words
    if len(words) == 1:
        return words[0], ""
    if len(words) >= 3 and words[1] == "=":
        if len(words) > 3:
            warn(
                d.warning(
                    f"{words[0]} has several words, only {words[2]!r} is used; quote a "
                    "value that contains spaces"
                )
            )
        return words[0], words[2]
    raise d.error(
        f"cannot understand {' '.join(words)!r}: expected [name], 'key = value' or a flag "
        "(NUT ignores this line)"
    )


def _set(
    current: _SectionDraft,
    d: Directive,
    key: str,
    value: str,
    warn: Callable[[ConfigWarning], None],
) -> None:
    lowered = key.lower()
    if lowered in _UPSD_UPS_KEYS:
        if key != lowered:
            raise d.error(
                f"write {lowered!r}, not {key!r}: NUT reads ups.conf keys case-sensitively"
            )
        if len(d.words) == 1:
            raise d.error(f"{key} needs a value ('{key} = ...')")
        current.exact[key] = value
    if lowered in current.options:
        warn(d.warning(f"{key} repeated in [{current.name}]; the last value is used"))
    current.options[lowered] = value
    current.lines[key] = d.lineno


def load_ups_conf(
    path: Path, *, warnings: list[ConfigWarning] | None = None
) -> tuple[tuple[UpsSection, ...], dict[str, str]]:
    """Read ups.conf: the UPS sections and the global settings before the first section.

    Lines are ``[name]``, ``key = value`` (also ``key=value``) or a bare ``flag``. Keys are
    lower-cased into :attr:`UpsSection.options` and the globals; a flag's value is ``""``.
    upsd itself reads only ``driver``, ``port`` and ``desc``, case-sensitively, and ignores
    the globals (they are for upsdrvctl and the drivers: ``maxstartdelay``, ``pollinterval``,
    ``user``, ...).

    Warnings: a value of several unquoted words (NUT keeps only the first, so does nuttrio);
    a key repeated in one section (the last one wins, as in NUT).

    Raises :class:`~nuttrio.nutconf.ConfigError` (with file and line) where NUT's result
    differs from what the file says; each is a decision of nuttrio's:

    * a section without ``driver`` or ``port``: upsd logs "ignoring incomplete
      configuration" and serves the other UPSes, upsdrvctl and the drivers fail on it, so
      such a file does not describe a working setup. The header line is named, or, when a
      key of the section looks like a misspelling of the missing one (``drvier``), that
      key and its line;
    * a repeated section name: upsd merges sections of exactly the same name and, for
      names that differ only in case (which clients cannot tell apart), keeps the *later*
      one and drops the earlier with "UPS name [...] is already in use";
    * ``Driver``/``PORT``/... in another case than lower (upsd would not see it);
    * ``driver``, ``port`` or ``desc`` as a bare flag (upsd 2.8.0 crashes on it);
    * a line NUT silently ignores: two words, or three and more without ``=`` second;
      text after a header, a malformed header, ``[]``;
    * a tokenizer error (a missing closing quote too) or an unreadable file (upsd refuses
      to start without ups.conf).

    Args:
        path: The ups.conf file.
        warnings: List to append warnings to; if ``None`` they are logged instead.

    Returns:
        The sections in file order, and the global settings.
    """
    warn = warning_sink(warnings)
    sections: dict[str, _SectionDraft] = {}  # keyed by folded name
    globals_: dict[str, str] = {}
    current: _SectionDraft | None = None
    for lineno, words in read_config_lines(path, UPS_CONF):
        d = Directive(path, lineno, words)
        name = parse_section_header(d, "UPS")
        if name is not None:
            earlier = sections.get(fold(name))
            if earlier is not None:
                raise d.error(
                    f"UPS [{name}] is already defined as [{earlier.name}] on line "
                    f"{earlier.lineno} (UPS names are compared without regard to case)"
                )
            current = sections[fold(name)] = _SectionDraft(name, lineno)
            continue
        key, value = _key_value(d, warn)
        if current is None:
            globals_[key.lower()] = value
        else:
            _set(current, d, key, value, warn)
    return tuple(draft.build(path) for draft in sections.values()), globals_
