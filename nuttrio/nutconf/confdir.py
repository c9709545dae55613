"""The configuration directory as upsd reads it: upsd.conf, ups.conf, upsd.users, nut.conf.

This module performs no I/O beyond reading those files.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import attrs

from .common import ConfigError, ConfigWarning, frozen_map, log
from .nut_conf import NUT_CONF, NutConf, load_nut_conf
from .ups_conf import UPS_CONF, UpsSection, load_ups_conf
from .upsd_conf import UPSD_CONF, UpsdConfig, load_upsd_conf
from .upsd_users import UPSD_USERS, User, load_upsd_users

__all__ = [
    "DEFAULT_CONFDIR",
    "DEFAULT_STATEPATH",
    "NutConfig",
    "default_confdir",
    "load_nut_config",
    "reload_nut_config",
]

#: Debian's compiled-in CONFPATH, used when ``NUT_CONFPATH`` is not set.
DEFAULT_CONFDIR = Path("/etc/nut")
#: Debian's compiled-in STATEPATH (driver sockets), used when neither upsd.conf's
#: ``STATEPATH`` nor the environment variable ``NUT_STATEPATH`` gives one.
DEFAULT_STATEPATH = Path("/run/nut")


@attrs.frozen
class NutConfig:
    """Everything upsd reads from its configuration directory.

    Attributes:
        confdir: The directory holding the files.
        upsd: upsd.conf.
        ups: The UPS sections of ups.conf, in file order.
        ups_globals: ups.conf's global settings (lower-cased keys; flags have "").
        users: upsd.users, keyed by user name.
        warnings: Every warning of the files (upsd.conf's first); the caller logs them.
        nut: nut.conf (read, exposed, not obeyed: see :mod:`nuttrio.nutconf.nut_conf`).
    """

    confdir: Path
    upsd: UpsdConfig
    ups: tuple[UpsSection, ...]
    ups_globals: Mapping[str, str] = attrs.field(factory=dict, converter=frozen_map)
    users: Mapping[str, User] = attrs.field(factory=dict, converter=frozen_map)
    warnings: tuple[ConfigWarning, ...] = ()
    nut: NutConf = attrs.field(factory=NutConf)

    @property
    def statepath(self) -> Path:
        """Where the drivers' sockets live.

        upsd.conf's ``STATEPATH`` (or the environment's ``NUT_STATEPATH``), else
        :data:`DEFAULT_STATEPATH`.
        """
        return self.upsd.statepath if self.upsd.statepath is not None else DEFAULT_STATEPATH


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
        warnings.append(
            ConfigWarning(ups_path, None, "no UPS is defined; serving none until a reload")
        )
    users = load_upsd_users(confdir / UPSD_USERS, warnings=warnings)
    nut = load_nut_conf(confdir / NUT_CONF)
    warnings.extend(nut.warnings)
    return NutConfig(
        confdir=confdir,
        upsd=upsd,
        ups=ups,
        ups_globals=ups_globals,
        users=users,
        warnings=tuple(warnings),
        nut=nut,
    )


def load_nut_config(
    confdir: Path | None = None, *, env: Mapping[str, str] | None = None
) -> NutConfig:
    """Read upsd.conf, ups.conf and upsd.users (and nut.conf) for startup, as upsd 2.8.0 does.

    Fatal, as for upsd: a missing or unreadable upsd.conf, ups.conf or upsd.users; no UPS
    in ups.conf unless ``ALLOW_NO_DEVICE`` (upsd.conf or environment); ``MAXCONN 0``. On
    top of that, every :class:`ConfigError` case of
    :func:`~nuttrio.nutconf.upsd_conf.load_upsd_conf`,
    :func:`~nuttrio.nutconf.ups_conf.load_ups_conf` and
    :func:`~nuttrio.nutconf.upsd_users.load_upsd_users`. nut.conf is optional; with
    ``MODE=none`` one info line is logged (nuttrio runs as its command line says).

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
    config = _load(confdir, env, reloading=False)
    if config.nut.mode == "none":
        log.info(
            "%s: MODE=none (NUT's start-up scripts would start nothing); nuttrio runs as "
            "its command line says",
            config.nut.path,
        )
    return config


def reload_nut_config(old: NutConfig, *, env: Mapping[str, str] | None = None) -> NutConfig:
    """Re-read the configuration for SIGHUP (``upsd -c reload``).

    As upsd: all files are read again from ``old.confdir`` and every upsd.conf setting
    takes the new value except ``LISTEN``, which stays as it was (a warning says so if the
    file now differs); an empty ups.conf is only a warning.

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
            ConfigWarning(
                old.confdir / UPSD_CONF,
                None,
                "LISTEN changed; the new addresses take effect only after a restart",
            )
        )
    return attrs.evolve(
        new,
        upsd=attrs.evolve(new.upsd, listen=old.upsd.listen),
        warnings=tuple(warnings),
    )
