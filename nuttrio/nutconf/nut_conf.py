"""nut.conf: which NUT daemons the system's start-up scripts run (``MODE``).

nut.conf is a shell fragment of ``KEY=value`` lines, sourced by NUT's init scripts and
systemd helpers, not by the daemons. nuttrio reads it, exposes it, and does not obey it:
nuttrio runs as its command line says whatever ``MODE`` is (with ``MODE=none`` it logs one
line saying so; see the README, "What nuttrio reads").

This module performs no I/O beyond reading the file.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import attrs

from .common import ConfigWarning, frozen_map, read_config_lines

__all__ = ["NUT_CONF", "NUT_MODES", "NutConf", "load_nut_conf"]

NUT_CONF = "nut.conf"

#: The MODE values NUT documents: none (start nothing), standalone (driver, upsd and
#: upsmon on one host), netserver (the same, serving others too), netclient (upsmon only).
NUT_MODES = ("none", "standalone", "netserver", "netclient")


@attrs.frozen
class NutConf:
    """nut.conf.

    Attributes:
        path: The file, or ``None`` when there is none.
        mode: ``MODE`` as written (lower-cased), or ``None`` if not set.
        settings: Every ``KEY=value`` line (``MODE`` included), keys as written.
        warnings: Lines that are not ``KEY=value``, and an unknown MODE.
    """

    path: Path | None = None
    mode: str | None = None
    settings: Mapping[str, str] = attrs.field(factory=dict, converter=frozen_map)
    warnings: tuple[ConfigWarning, ...] = ()


def load_nut_conf(path: Path) -> NutConf:
    """Read nut.conf, if it exists.

    Args:
        path: The nut.conf file.

    Returns:
        The settings; a missing file gives ``NutConf()`` (no MODE).

    Raises:
        ConfigError: If the file exists but cannot be read, or a line does not tokenize.
    """
    if not path.exists():
        return NutConf()
    warnings: list[ConfigWarning] = []
    settings: dict[str, str] = {}
    for lineno, words in read_config_lines(path, NUT_CONF):
        if len(words) < 2 or words[1] != "=":
            warnings.append(
                ConfigWarning(path, lineno, f"not a KEY=value line: {' '.join(words)!r}; ignored")
            )
            continue
        settings[words[0]] = " ".join(words[2:])
    mode = settings.get("MODE")
    if mode is not None:
        mode = mode.lower()
        if mode not in NUT_MODES:
            warnings.append(
                ConfigWarning(
                    path, None, f"unknown MODE {mode!r} (NUT knows {', '.join(NUT_MODES)})"
                )
            )
    return NutConf(path, mode, settings, tuple(warnings))
