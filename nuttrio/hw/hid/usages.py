"""Usage names and NUT's usage-path strings (``UPS.PowerSummary.RemainingCapacity``).

A :class:`UsageTable` maps names to 32-bit usage codes (``page << 16 | id``) both ways.
Subdrivers put their vendor names in front of the standard Power Device (0x84) and
Battery System (0x85) names, as NUT does, so the first table holding a name or code wins.
Path strings follow NUT's spelling: names joined by dots, ``[n]`` for the index node of a
vendor collection, and eight lower-case hex digits for a usage no table names
(``UPS.PowerSummary.ff860060``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from functools import cache
from importlib import resources

__all__ = ["STANDARD", "UsageTable", "load_table_file", "standard_usages"]

_INDEX = 0x00FF0000


class UsageTable:
    """Usage names <-> codes; the first of several names for one code is the one shown.

    Args:
        entries: ``(name, code)`` pairs in priority order (vendor names first).
    """

    def __init__(self, entries: Iterable[tuple[str, int]]) -> None:
        self._by_name: dict[str, int] = {}
        self._by_code: dict[int, str] = {}
        for name, code in entries:
            self._by_name.setdefault(name.lower(), code)
            self._by_code.setdefault(code, name)

    def then(self, other: UsageTable) -> UsageTable:
        """A table that looks here first, then in ``other``."""
        merged = UsageTable(())
        merged._by_name = {**other._by_name, **self._by_name}
        merged._by_code = {**other._by_code, **self._by_code}
        return merged

    def name_of(self, code: int) -> str | None:
        """The name of ``code``, or ``None``."""
        return self._by_code.get(code)

    def code_of(self, name: str) -> int | None:
        """The code of ``name`` (any case, as NUT compares), or ``None``."""
        return self._by_name.get(name.lower())

    def node_string(self, node: int) -> str:
        """One path node as NUT prints it."""
        name = self._by_code.get(node)
        if name is not None:
            return name
        if node & 0xFFFF0000 == _INDEX:
            return f"[{node & 0xFFFF}]"
        return f"{node:08x}"

    def path_string(self, path: Sequence[int]) -> str:
        """A numeric path as NUT prints it."""
        return ".".join(self.node_string(node) for node in path)

    def parse_path(self, text: str) -> tuple[int, ...] | None:
        """A path string to numeric nodes, or ``None`` if a part is not understood.

        A part is a name, eight hex digits or ``[n]``; NUT skips any other part and its
        lookup then fails, so ``None`` is returned.
        """
        nodes = []
        for part in text.split("."):
            code = self.code_of(part)
            if code is None:
                code = _raw_node(part)
            if code is None:
                return None
            nodes.append(code)
        return tuple(nodes)


def _raw_node(part: str) -> int | None:
    if part and all(c in "0123456789abcdefABCDEF" for c in part):
        value = int(part, 16)
        return value if value <= 0xFFFFFFFF else None
    if len(part) > 2 and part[0] == "[" and part[-1] == "]" and part[1:-1].isdigit():
        return _INDEX + int(part[1:-1])
    return None


def load_table_file(name: str) -> dict[str, object]:
    """One JSON file of :mod:`nuttrio.hw.hid.tables` (``apc``, ``usages``...)."""
    text = resources.files("nuttrio.hw.hid.tables").joinpath(f"{name}.json").read_text()
    data: dict[str, object] = json.loads(text)
    return data


def entries_of(rows: object) -> list[tuple[str, int]]:
    """``[[name, "hex code"], ...]`` from a table file to ``(name, code)`` pairs."""
    assert isinstance(rows, list)
    return [(str(name), int(str(code), 16)) for name, code in rows]


@cache
def standard_usages() -> UsageTable:
    """The Power Device and Battery System pages, with NUT's names."""
    return UsageTable(entries_of(load_table_file("usages")["usages"]))


STANDARD = standard_usages()
