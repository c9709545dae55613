"""NUT 2.8.0's usbhid-ups tables as data: usage names, lookups and hid2nut rows.

One JSON file per subdriver (``apc``, ``cps``, ``mge``, ``tripplite``), plus the shared
lookups (``common``) and the Power Device / Battery System usage names (``usages``). They
hold facts read from NUT's ``drivers/*-hid.c``, ``libhid.c`` and ``usbhid-ups.c`` at tag
v2.8.0 (usage codes and names, the claimed USB ids with their hook names, each row's NUT
variable, flags, length, usage path, format or default and lookup name, each lookup's
values), in nuttrio's own layout; NUT's code and comments are not in them. What cannot be
data (converters, hooks, fixes) is in :mod:`nuttrio.hw.hid.subdrivers`.
"""
