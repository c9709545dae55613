"""The version of nuttrio."""

__version__ = "0.1.0"
