"""The errors of the NUT network protocol, in one place.

:class:`ErrCode` names the tokens of ``ERR <token>`` replies. The exceptions say whose fault
a problem is, as h11's do: :class:`LocalProtocolError` (this program misused the API or its
I/O failed) and :class:`RemoteProtocolError` (the peer broke the protocol), both
:class:`ProtocolError`.
"""

from __future__ import annotations

import enum

__all__ = ["ErrCode", "LocalProtocolError", "ProtocolError", "RemoteProtocolError"]


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


class ProtocolError(Exception):
    """Base of the protocol's exceptions. Do not raise it directly; catch it for both kinds."""


class LocalProtocolError(ProtocolError):
    """This side is at fault: the caller misused the sans-IO API.

    For example: replied when no request was pending, or used a connection after its
    ``send_failed()``.
    """


class RemoteProtocolError(ProtocolError):
    """The peer is at fault: it sent something that is not valid at this point.

    A connection that raised it is in its error state and cannot be used any more.
    """
