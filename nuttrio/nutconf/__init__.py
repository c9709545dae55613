"""NUT's configuration files, read as NUT's programs read them.

One module per file NUT has, over one set of shared helpers (:mod:`.common`: NUT's
tokenizer rules, ASCII case folding, C's ``atoi``/``strtol``, booleans, ``host:port``,
:class:`ConfigError` and :class:`ConfigWarning`):

========================  ===============================================================
:mod:`.upsd_conf`         upsd.conf (``LISTEN``, ``MAXAGE``, ``STATEPATH``, ...)
:mod:`.ups_conf`          ups.conf (UPS sections and the global driver settings)
:mod:`.upsd_users`        upsd.users
:mod:`.upsmon_conf`       upsmon.conf
:mod:`.upssched_conf`     upssched.conf
:mod:`.nut_conf`          nut.conf (``MODE``: read and exposed, not obeyed)
:mod:`.confdir`           the directory as upsd reads it (:func:`load_nut_config`)
:mod:`.notify_types`      upsmon's notify types, for the readers and the manager
========================  ===============================================================

Everything public is re-exported here. Nothing here starts a server or touches the
network; the only I/O is reading the files (and a ``/etc/services`` look-up for a
``LISTEN`` port given by service name).
"""

from __future__ import annotations

from .common import DEFAULT_PORT as DEFAULT_PORT
from .common import ConfigError as ConfigError
from .common import ConfigWarning as ConfigWarning
from .common import read_config_lines as read_config_lines
from .common import split_host_port as split_host_port
from .confdir import DEFAULT_CONFDIR as DEFAULT_CONFDIR
from .confdir import DEFAULT_STATEPATH as DEFAULT_STATEPATH
from .confdir import NutConfig as NutConfig
from .confdir import default_confdir as default_confdir
from .confdir import load_nut_config as load_nut_config
from .confdir import reload_nut_config as reload_nut_config
from .notify_types import DEFAULT_NOTIFY_FLAGS as DEFAULT_NOTIFY_FLAGS
from .notify_types import NOTIFY_FLAGS as NOTIFY_FLAGS
from .notify_types import NOTIFY_TYPES as NOTIFY_TYPES
from .notify_types import NOTIFY_TYPES_WITH_EXTRA as NOTIFY_TYPES_WITH_EXTRA
from .notify_types import NUTTRIO_NOTIFY_TYPES as NUTTRIO_NOTIFY_TYPES
from .notify_types import STATUS_NOTIFY_TYPES as STATUS_NOTIFY_TYPES
from .nut_conf import NUT_MODES as NUT_MODES
from .nut_conf import NutConf as NutConf
from .nut_conf import load_nut_conf as load_nut_conf
from .ups_conf import UpsSection as UpsSection
from .ups_conf import load_ups_conf as load_ups_conf
from .upsd_conf import DEFAULT_LISTEN as DEFAULT_LISTEN
from .upsd_conf import Listen as Listen
from .upsd_conf import UpsdConfig as UpsdConfig
from .upsd_conf import load_upsd_conf as load_upsd_conf
from .upsd_users import UPSD_USERS as UPSD_USERS
from .upsd_users import User as User
from .upsd_users import load_upsd_users as load_upsd_users
from .upsmon_conf import CertHost as CertHost
from .upsmon_conf import CertIdent as CertIdent
from .upsmon_conf import Monitor as Monitor
from .upsmon_conf import ShutdownTriggers as ShutdownTriggers
from .upsmon_conf import UpsmonConfig as UpsmonConfig
from .upsmon_conf import load_upsmon_conf as load_upsmon_conf
from .upsmon_conf import notifycmd_is_upssched as notifycmd_is_upssched
from .upsmon_conf import split_system as split_system
from .upssched_conf import SchedAction as SchedAction
from .upssched_conf import SchedRule as SchedRule
from .upssched_conf import UpsschedConfig as UpsschedConfig
from .upssched_conf import check_upssched_against_upsmon as check_upssched_against_upsmon
from .upssched_conf import load_upssched_conf as load_upssched_conf
