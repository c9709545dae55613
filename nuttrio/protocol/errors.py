"""The error tokens of the NUT network protocol (``ERR <token>``), in one place."""

from __future__ import annotations

import enum

__all__ = ["ErrCode", "LocalProtocolError"]


class ErrCode(enum.Enum):
    """Error tokens, as upsd 2.8.0 and RFC 9271 (Table 3) name them.

    The value is the token sent on the wire.
    """

    ACCESS_DENIED = "ACCESS-DENIED"
    ALREADY_LOGGED_IN = "ALREADY-LOGGED-IN"
    #: RFC 9271's name for ALREADY-LOGGED-IN, sent in reply to ATTACH.
    ALREADY_ATTACHED = "ALREADY-ATTACHED"
    ALREADY_SET_PASSWORD = "ALREADY-SET-PASSWORD"
    ALREADY_SET_USERNAME = "ALREADY-SET-USERNAME"
    ALREADY_SSL_MODE = "ALREADY-SSL-MODE"
    #: RFC 9271's name for ALREADY-SSL-MODE.
    TLS_ALREADY_ENABLED = "TLS-ALREADY-ENABLED"
    TLS_NOT_ENABLED = "TLS-NOT-ENABLED"
    CMD_NOT_SUPPORTED = "CMD-NOT-SUPPORTED"
    DATA_STALE = "DATA-STALE"
    DRIVER_NOT_CONNECTED = "DRIVER-NOT-CONNECTED"
    #: Only as a GET TRACKING result: the driver failed the tracked request.
    FAILED = "FAILED"
    FEATURE_NOT_CONFIGURED = "FEATURE-NOT-CONFIGURED"
    FEATURE_NOT_SUPPORTED = "FEATURE-NOT-SUPPORTED"
    INSTCMD_FAILED = "INSTCMD-FAILED"
    INVALID_ARGUMENT = "INVALID-ARGUMENT"
    INVALID_PASSWORD = "INVALID-PASSWORD"
    INVALID_USERNAME = "INVALID-USERNAME"
    INVALID_VALUE = "INVALID-VALUE"
    PASSWORD_REQUIRED = "PASSWORD-REQUIRED"
    READONLY = "READONLY"
    SET_FAILED = "SET-FAILED"
    TOO_LONG = "TOO-LONG"
    UNKNOWN = "UNKNOWN"
    UNKNOWN_COMMAND = "UNKNOWN-COMMAND"
    UNKNOWN_UPS = "UNKNOWN-UPS"
    USERNAME_REQUIRED = "USERNAME-REQUIRED"
    VAR_NOT_SUPPORTED = "VAR-NOT-SUPPORTED"


class LocalProtocolError(Exception):
    """The caller misused the sans-IO API (for example, replied when no request was pending)."""
