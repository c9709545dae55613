"""Descriptions of variables and instant commands, for ``GET DESC`` and ``GET CMDDESC``.

upsd 2.8.0 reads these from ``<DATAPATH>/cmdvartab`` once, at startup (``server/desc.c``,
``desc_load``; a reload does not re-read it). ``DATAPATH`` is the compiled-in ``DATADIR``
(``/usr/share/nut`` on Debian) unless ``upsd.conf`` has a ``DATAPATH <dir>`` directive;
there is no environment variable for it. The file is split with NUT's config tokenizer, so
comments, quoting and backslash escapes apply, and then, line by line:

* a line with a parse error is logged and skipped;
* a line with fewer than three words is skipped silently; words after the third are ignored;
* the keyword must be exactly ``VARDESC`` or ``CMDDESC`` (case-sensitive); any other first
  word is skipped silently;
* names are compared case-insensitively (ASCII ``strcasecmp``); a repeated name replaces the
  earlier text (the last line wins);
* lookups are by exact name: no templating of indexed names such as ``outlet.N.*``.

A missing or unreadable file just disables descriptions in upsd (every lookup misses, so
clients read ``"Description unavailable"``). :meth:`Descriptions.load` differs on purpose: it
falls back to the system file and then to nuttrio's own table in ``nuttrio/data/vartab.txt``.
"""

from __future__ import annotations

import functools
import importlib.resources
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

import attrs

from nuttrio.nutconf.common import fold as _fold
from nuttrio.protocol.tokenizer import LineError, split_text

__all__ = ["DEFAULT_DATAPATH", "Descriptions"]

_log = logging.getLogger(__name__)

#: upsd 2.8.0's compiled-in DATADIR on Debian (``strings /lib/nut/upsd``).
DEFAULT_DATAPATH = Path("/usr/share/nut")

#: File name upsd looks for inside its DATAPATH.
CMDVARTAB = "cmdvartab"

_VARDESC = "VARDESC"
_CMDDESC = "CMDDESC"


def _short_repr(table: Mapping[str, str]) -> str:
    return f"<{len(table)} entries>"


def _freeze(table: Mapping[str, str]) -> Mapping[str, str]:
    """Return a read-only copy of ``table`` keyed by folded name (later keys win)."""
    return MappingProxyType({_fold(name): text for name, text in table.items()})


@attrs.frozen(unsafe_hash=False)
class Descriptions:
    """Read-only tables of variable and instant command descriptions.

    Instances are immutable (and, because the tables are mappings, not hashable). Build one
    with :meth:`load`, :meth:`from_cmdvartab`, :meth:`parse` or :meth:`builtin`, or pass
    mappings directly; keys are folded to lower case on the way in.

    Attributes:
        variables: Variable descriptions, keyed by lower-cased name.
        commands: Instant command descriptions, keyed by lower-cased name.
    """

    variables: Mapping[str, str] = attrs.field(factory=dict, converter=_freeze, repr=_short_repr)
    commands: Mapping[str, str] = attrs.field(factory=dict, converter=_freeze, repr=_short_repr)

    def var(self, name: str) -> str | None:
        """Return the description of variable ``name``, or ``None`` if it has none.

        Args:
            name: The variable name, in any letter case; it must match a whole entry.

        Returns:
            The description text, exactly as stored (upsd sends it unescaped).
        """
        return self.variables.get(_fold(name))

    def cmd(self, name: str) -> str | None:
        """Return the description of instant command ``name``, or ``None`` if it has none.

        Args:
            name: The command name, in any letter case; it must match a whole entry.

        Returns:
            The description text, exactly as stored (upsd sends it unescaped).
        """
        return self.commands.get(_fold(name))

    @classmethod
    def parse(cls, text: bytes | str, *, source: str = "<cmdvartab>") -> Descriptions:
        """Parse the contents of a cmdvartab file the way upsd 2.8.0 does.

        Args:
            text: The file's contents. A ``str`` is encoded as UTF-8 first; like upsd, the
                tokenizer then drops every byte outside 0x20-0x7F, so non-ASCII is lost.
            source: A name for the input, used in log messages.

        Returns:
            The descriptions found. Lines upsd would skip are skipped; parse errors are
            logged at ERROR level, as upsd does, and the line is ignored.
        """
        data = text.encode("utf-8") if isinstance(text, str) else text
        variables: dict[str, str] = {}
        commands: dict[str, str] = {}
        for line in split_text(data):
            if isinstance(line, LineError):
                # Only an unescaped '#' inside quotes gets here. upsd's file reader resumes
                # right after that '#' and parses the rest of the physical line as a new
                # line; the shared tokenizer skips to the next LF. They differ only when that
                # rest is itself a valid entry or opens a quote that runs into later lines.
                _log.error("Parse error: %s:%d: %s", source, line.lineno, line.message)
                continue
            words = line.words
            if len(words) < 3:
                continue
            if words[0] == _CMDDESC:
                commands[_fold(words[1])] = words[2]
            elif words[0] == _VARDESC:
                variables[_fold(words[1])] = words[2]
        return cls(variables, commands)

    @classmethod
    def from_cmdvartab(cls, path: str | os.PathLike[str]) -> Descriptions:
        """Read and parse a cmdvartab file.

        Args:
            path: The file to read.

        Returns:
            The descriptions it defines.

        Raises:
            OSError: If the file cannot be read.
        """
        path = Path(path)
        return cls.parse(path.read_bytes(), source=str(path))

    @classmethod
    def builtin(cls) -> Descriptions:
        """Return nuttrio's own table (``nuttrio/data/vartab.txt``), loaded once and cached.

        Returns:
            The built-in descriptions.
        """
        return _builtin()

    @classmethod
    def load(
        cls,
        datapath: str | os.PathLike[str] | None = None,
        *,
        default_datapath: str | os.PathLike[str] | None = DEFAULT_DATAPATH,
    ) -> Descriptions:
        """Find and load the description table, as configured.

        Tries, in order: ``<datapath>/cmdvartab`` (upsd.conf's ``DATAPATH``, when given),
        ``<default_datapath>/cmdvartab`` (upsd's compiled-in DATADIR, ``/usr/share/nut``),
        then nuttrio's built-in table. A file that is missing or unreadable is skipped (an
        unreadable one with a warning). A relative ``datapath`` is taken relative to the
        current directory; note that upsd resolves it relative to its STATEPATH, because it
        has already changed into that directory when it loads the table.

        Args:
            datapath: The configured data directory, or ``None`` if not configured.
            default_datapath: The system data directory to try next; ``None`` skips it.

        Returns:
            The first table found.
        """
        for directory in (datapath, default_datapath):
            if directory is None:
                continue
            path = Path(directory, CMDVARTAB)
            try:
                return cls.from_cmdvartab(path)
            except FileNotFoundError:
                _log.debug("%s not found", path)
            except OSError as exc:
                _log.warning("cannot read %s: %s", path, exc)
        return cls.builtin()


@functools.cache
def _builtin() -> Descriptions:
    resource = importlib.resources.files("nuttrio") / "data" / "vartab.txt"
    return Descriptions.parse(resource.read_bytes(), source="nuttrio/data/vartab.txt")
