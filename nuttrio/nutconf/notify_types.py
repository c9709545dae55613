"""upsmon's notify types, defined once: names, stock messages, default flags, status symbols.

Both the manager's state machine (:mod:`nuttrio.mgmt.machine`, which decides when each is
sent) and the upsmon.conf and upssched.conf readers (which check NOTIFYMSG, NOTIFYFLAG and
AT lines against them) import these tables.

This module performs no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

__all__ = [
    "DEFAULT_NOTIFY_FLAGS",
    "NOTIFY_FLAGS",
    "NOTIFY_TYPES",
    "NOTIFY_TYPES_WITH_EXTRA",
    "NUTTRIO_NOTIFY_TYPES",
    "STATUS_NOTIFY_TYPES",
]

#: The four NOTIFYFLAG words (upsmon compares them case-sensitively).
NOTIFY_FLAGS: tuple[str, ...] = ("SYSLOG", "WALL", "EXEC", "IGNORE")

#: upsmon's default flags for every notify type on Unix (``NOTIFY_DEFAULT``).
DEFAULT_NOTIFY_FLAGS: frozenset[str] = frozenset({"SYSLOG", "WALL"})

_STOCK: tuple[tuple[str, str], ...] = (
    # upsmon's stock messages, exactly as upsmon 2.8.5 has them (clients/upsmon.h):
    # logs and notify scripts match on these texts.
    ("ONLINE", "UPS %s on line power"),
    ("ONBATT", "UPS %s on battery"),
    ("LOWBATT", "UPS %s battery is low"),
    ("FSD", "UPS %s: forced shutdown in progress"),
    ("COMMOK", "Communications with UPS %s established"),
    ("COMMBAD", "Communications with UPS %s lost"),
    ("SHUTDOWN", "Auto logout and shutdown proceeding"),
    ("REPLBATT", "UPS %s battery needs to be replaced"),
    ("NOCOMM", "UPS %s is unavailable"),
    ("NOPARENT", "upsmon parent process died - shutdown impossible"),
    ("CAL", "UPS %s: calibration in progress"),
    ("NOTCAL", "UPS %s: calibration finished"),
    ("OFF", "UPS %s: administratively OFF or asleep"),
    ("NOTOFF", "UPS %s: no longer administratively OFF or asleep"),
    ("BYPASS", "UPS %s: on bypass (powered, not protecting)"),
    ("NOTBYPASS", "UPS %s: no longer on bypass"),
    ("ECO", "UPS %s: in ECO mode (as defined by vendor)"),
    ("NOTECO", "UPS %s: no longer in ECO mode"),
    ("ALARM", "UPS %s: one or more active alarms: [%s]"),
    ("NOTALARM", "UPS %s is no longer in an alarm state (no active alarms)"),
    ("OVER", "UPS %s: overloaded"),
    ("NOTOVER", "UPS %s: no longer overloaded"),
    ("TRIM", "UPS %s: trimming incoming voltage"),
    ("NOTTRIM", "UPS %s: no longer trimming incoming voltage"),
    ("BOOST", "UPS %s: boosting incoming voltage"),
    ("NOTBOOST", "UPS %s: no longer boosting incoming voltage"),
    ("OTHER", "UPS %s: has at least one unclassified status token: [%s]"),
    ("NOTOTHER", "UPS %s has no unclassified status tokens anymore"),
    (
        "SHUTDOWN_HOSTSYNC",
        "Shutdown initiated; primary system is waiting for secondaries to log out or time out",
    ),
    ("SUSPEND_STARTING", "OS is entering sleep/suspend/hibernate mode"),
    (
        "SUSPEND_FINISHED",
        "OS just finished sleep/suspend/hibernate mode, de-activating obsolete UPS readings "
        "to avoid an unfortunate shutdown",
    ),
    # nuttrio's own: the clearing events upsmon does not send.
    ("NOTLOWBATT", "UPS %s battery is no longer low"),
    ("NOTFSD", "UPS %s: no longer in forced shutdown"),
    ("NOTREPLBATT", "UPS %s battery no longer needs to be replaced"),
)

# nuttrio's events for the other status symbols of RFC 9271 Table 5 (charging, tests,
# heartbeats). They change often, so by default they go nowhere: NOTIFYFLAG (or an
# upssched AT line, with EXEC) makes use of them.
_QUIET: tuple[tuple[str, str, frozenset[str]], ...] = (
    ("CHRG", "UPS %s: battery charging", frozenset()),
    ("NOTCHRG", "UPS %s: battery no longer charging", frozenset()),
    ("DISCHRG", "UPS %s: battery discharging", frozenset()),
    ("NOTDISCHRG", "UPS %s: battery no longer discharging", frozenset()),
    ("HB", "UPS %s: battery voltage high", frozenset()),
    ("NOTHB", "UPS %s: battery voltage no longer high", frozenset()),
    ("TICK", "UPS %s: heartbeat TICK", frozenset()),
    ("NOTTICK", "UPS %s: heartbeat TICK gone", frozenset()),
    ("TOCK", "UPS %s: heartbeat TOCK", frozenset()),
    ("NOTTOCK", "UPS %s: heartbeat TOCK gone", frozenset()),
    ("TEST", "UPS %s: test in progress", frozenset({"SYSLOG"})),
    ("NOTTEST", "UPS %s: test finished", frozenset({"SYSLOG"})),
)

#: Every notify type nuttrio knows, in upsmon's order (nuttrio's own last), mapped to its
#: stock message and default flags. The messages of upsmon's types are upsmon's, byte for
#: byte; ``%s`` stands for the UPS (the MONITOR ``system`` string), a second ``%s`` in ALARM
#: and OTHER for ``ups.alarm`` or the unknown status tokens. upsmon's types default to
#: SYSLOG+WALL, as in upsmon 2.8.1 and later (2.8.0 gave CAL only SYSLOG; write
#: ``NOTIFYFLAG CAL SYSLOG`` for that).
NOTIFY_TYPES: Mapping[str, tuple[str, frozenset[str]]] = MappingProxyType(
    {
        **{name: (message, DEFAULT_NOTIFY_FLAGS) for name, message in _STOCK},
        **{name: (message, flags) for name, message, flags in _QUIET},
    }
)

#: The notify types that only nuttrio sends (real upsmon warns about them, and ignores the
#: NOTIFYMSG / NOTIFYFLAG lines that name them).
NUTTRIO_NOTIFY_TYPES: frozenset[str] = frozenset(
    {"NOTLOWBATT", "NOTFSD", "NOTREPLBATT", *(name for name, _, _ in _QUIET)}
)

#: The notify types whose message may hold a second ``%s`` (upsmon 2.8.3 and later).
NOTIFY_TYPES_WITH_EXTRA: frozenset[str] = frozenset({"ALARM", "OTHER"})

#: Status symbol -> (notify type when it appears, notify type when it goes). OL and OB
#: (ONLINE, ONBATT), COMMOK/COMMBAD/NOCOMM and OTHER/NOTOTHER are decided apart.
STATUS_NOTIFY_TYPES: Mapping[str, tuple[str, str]] = MappingProxyType(
    {
        "LB": ("LOWBATT", "NOTLOWBATT"),
        "FSD": ("FSD", "NOTFSD"),
        "RB": ("REPLBATT", "NOTREPLBATT"),
        **{
            symbol: (symbol, f"NOT{symbol}")
            for symbol in (
                *("CAL", "OFF", "BYPASS", "OVER", "TRIM", "BOOST", "ECO", "ALARM"),
                *("CHRG", "DISCHRG", "TEST", "TICK", "TOCK", "HB"),
            )
        },
    }
)
