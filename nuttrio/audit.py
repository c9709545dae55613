"""The audit log: one line on the ``nuttrio.audit`` logger per privileged act.

Every FSD, SET, INSTCMD, PRIMARY/MASTER and failed authentication, from the protocol server
or the web, is written by :func:`audit` in one format (docs/security.md)::

    user=admin peer=192.0.2.5 ups=ups request='FSD ups' result=OK tracking=-

Plain logging: nothing here blocks or raises.
"""

from __future__ import annotations

import logging

__all__ = ["audit", "audit_log"]

audit_log = logging.getLogger("nuttrio.audit")


def audit(
    level: int,
    user: str,
    peer: str,
    ups: str,
    request: str,
    result: str,
    tracking: str = "-",
    *,
    field: str = "result",
    via: str | None = None,
) -> None:
    """Write one audit line.

    Args:
        level: INFO for what succeeded, WARNING for a refusal (and any FSD).
        user: The user name (``-`` if none was given).
        peer: The client's address.
        ups: The UPS (``-`` for none).
        request: What was asked, as the protocol spells it (never a password).
        result: The reply token, or the driver's answer.
        tracking: The TRACKING id, ``-`` if none.
        field: ``result`` for the reply, ``driver`` for the driver's later answer.
        via: ``web`` for the web server's lines; ``None`` for the NUT port's.
    """
    audit_log.log(
        level,
        "user=%s peer=%s ups=%s request=%r %s=%s tracking=%s%s",
        user or "-",
        peer,
        ups,
        request,
        field,
        result,
        tracking,
        f" via={via}" if via else "",
    )
