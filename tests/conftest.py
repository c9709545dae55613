"""Fixtures shared by several test files, registered once here.

* ``real_nut``: Debian's upsd and dummy-ups in a temporary directory
  (:func:`tests.realnut.real_nut_fixture`);
* ``ddl_real_upsc``: the real upsc's view of every DDL dump, once per session
  (:func:`tests.realnut.ddl_real_upsc_fixture`).
"""

from __future__ import annotations

from .realnut import ddl_real_upsc_fixture, real_nut_fixture

__all__ = ["ddl_real_upsc_fixture", "real_nut_fixture"]
