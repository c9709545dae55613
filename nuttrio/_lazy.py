"""Lazy package exports: a package names what it offers without importing it.

``__getattr__ = lazy_exports(__name__, {"Name": "module", ...})`` in a package's
``__init__`` imports ``package.module`` the first time ``package.Name`` is read (PEP 562),
so importing the package stays light (``nuttrio.protocol`` without Trio, the daemon
without the web stack).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(package: str, table: Mapping[str, str]) -> Callable[[str], Any]:
    """The module ``__getattr__`` of ``package`` for names -> submodules in ``table``.

    Reading a name not in the table raises AttributeError, as for any module.
    """

    def __getattr__(name: str) -> Any:  # noqa: ANN401 - module attributes of any type
        module = table.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f".{module}", package), name)

    return __getattr__
