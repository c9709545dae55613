"""``GET /metrics``: the store in Prometheus text format, named as nut_exporter names it.

nut_exporter (DRuggeri/nut_exporter) exports each numeric variable as a gauge
``network_ups_tools_<name>`` (dots and dashes become underscores), ``ups.status`` as
``network_ups_tools_ups_status{flag="OL"}`` (1 for each flag set, 0 for each of its
default ``--nut.statuses`` not set), string values matching its on/off regular
expressions as 1/0, and ``network_ups_tools_device_info`` with the ``device.*`` values as
labels. nut_exporter scrapes one UPS per request; here every UPS is in one scrape, each
series with a ``ups`` label. nuttrio's own series are ``nuttrio_*``. prometheus_client
renders the text; the values are read from the store at scrape time (never cached).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from typing import Protocol

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ..state import StateStore, UpsSnapshot
from .feed import number

__all__ = [
    "NAMESPACE",
    "STATUS_FLAGS",
    "ServerCounters",
    "metrics_registry",
    "render",
    "render_ups",
]

#: nut_exporter's default --metrics.namespace.
NAMESPACE = "network_ups_tools"
#: nut_exporter's default --nut.statuses: always exported, 0 when not set.
STATUS_FLAGS = (
    "OL",
    "OB",
    "LB",
    "HB",
    "RB",
    "CHRG",
    "DISCHRG",
    "BYPASS",
    "CAL",
    "OFF",
    "OVER",
    "TRIM",
    "BOOST",
    "FSD",
    "SD",
)
#: nut_exporter's device_info labels (device.<label>).
DEVICE_LABELS = ("model", "mfr", "serial", "type", "description", "contact", "location", "part")
DEVICE_LABELS_ALL = (*DEVICE_LABELS, "macaddr")
#: nut_exporter's default --nut.on_regex and --nut.off_regex (case-insensitive).
_ON = re.compile(r"^(enable|enabled|on|true|active|activated)$", re.IGNORECASE)
_OFF = re.compile(r"^(disable|disabled|off|false|inactive|deactivated)$", re.IGNORECASE)
_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


class ServerCounters(Protocol):
    """What the metrics read from the protocol server's statistics (ServerStats)."""

    @property
    def connections_open(self) -> int:
        """Client connections being served now."""
        ...

    @property
    def connections_accepted(self) -> int:
        """Client connections accepted since the start."""
        ...

    @property
    def requests(self) -> Mapping[str, int]:
        """Requests answered, by command word."""
        ...

    @property
    def errors(self) -> Mapping[str, int]:
        """ERR replies sent, by token."""
        ...


def metric_name(variable: str) -> str:
    """nut_exporter's name for a NUT variable (``battery.charge`` -> ``..._battery_charge``)."""
    return f"{NAMESPACE}_{variable.replace('.', '_').replace('-', '_')}"


def _value(text: str) -> float | None:
    found = number(text)
    if found is not None:
        return found
    if _ON.match(text):
        return 1.0
    if _OFF.match(text):
        return 0.0
    return None


class _Gauges:
    """Gauge families by name, created on first use, each labelled by ``ups``."""

    def __init__(self) -> None:
        self.families: dict[str, GaugeMetricFamily] = {}

    def add(self, name: str, doc: str, labels: dict[str, str], value: float) -> None:
        family = self.families.get(name)
        if family is None:
            family = GaugeMetricFamily(name, doc, labels=list(labels))
            self.families[name] = family
        family.add_metric(list(labels.values()), value)


def _ups_series(snap: UpsSnapshot, gauges: _Gauges, describe: Callable[[str], str | None]) -> None:
    """Every series nut_exporter gives for one UPS (its HELP: ``description (name)``)."""
    ups = {"ups": snap.name}
    device = dict.fromkeys(DEVICE_LABELS_ALL, "")
    for var in snap.variables.values():
        low = var.name.lower()
        if low.startswith("device.") and low[7:] in device:
            device[low[7:]] = var.value
        if low == "ups.status":
            continue
        value = _value(var.value)
        name = metric_name(var.name)
        if value is not None and _METRIC_NAME.fullmatch(name):
            doc = f"{describe(var.name) or 'Description unavailable'} ({var.name})"
            gauges.add(name, doc, ups, value)
    flags = snap.status.split()
    status_name = metric_name("ups.status")
    for flag in dict.fromkeys([*flags, *STATUS_FLAGS]):
        doc = "UPS status flag (ups.status)"
        gauges.add(status_name, doc, {**ups, "flag": flag}, 1.0 if flag in flags else 0.0)
    gauges.add(f"{NAMESPACE}_device_info", "UPS Device information", {**ups, **device}, 1.0)


class _StoreCollector(Collector):
    def __init__(
        self,
        store: StateStore,
        stats: Callable[[], ServerCounters | None],
        extra: Callable[[], Mapping[str, float]],
        describe: Callable[[str], str | None],
    ) -> None:
        self._store = store
        self._stats = stats
        self._extra = extra
        self._describe = describe

    def collect(self) -> Iterator[Metric]:
        gauges = _Gauges()
        restarts = CounterMetricFamily(
            "nuttrio_driver_restarts", "Driver restarts by UPS", labels=["ups"]
        )
        updates = CounterMetricFamily(
            "nuttrio_driver_updates", "Driver updates published by UPS", labels=["ups"]
        )
        for snap in self._store.view().ups:
            entry = self._store.get(snap.name)
            if entry is not None:
                counts = entry.statistics()
                restarts.add_metric([snap.name], counts.restarts)
                updates.add_metric([snap.name], counts.updates)
            gauges.add(
                "nuttrio_ups_connected",
                "A driver runs for the UPS",
                {"ups": snap.name},
                float(snap.connected),
            )
            gauges.add(
                "nuttrio_ups_stale",
                "Clients get DATA-STALE",
                {"ups": snap.name},
                float(snap.data_stale),
            )
            if snap.dumped and snap.connected:
                _ups_series(snap, gauges, self._describe)
        yield from gauges.families.values()
        yield restarts
        yield updates
        yield from _server_series(self._stats())
        for name, value in self._extra().items():
            yield GaugeMetricFamily(name, name.replace("_", " "), value=value)


def _server_series(stats: ServerCounters | None) -> Iterator[Metric]:
    if stats is None:
        return
    yield GaugeMetricFamily(
        "nuttrio_connections_open", "NUT client connections open", value=stats.connections_open
    )
    yield CounterMetricFamily(
        "nuttrio_connections_accepted",
        "NUT client connections accepted",
        value=stats.connections_accepted,
    )
    requests = CounterMetricFamily(
        "nuttrio_requests", "NUT requests answered, by command", labels=["command"]
    )
    for command, count in sorted(stats.requests.items()):
        requests.add_metric([command], count)
    yield requests
    errors = CounterMetricFamily("nuttrio_errors", "NUT ERR replies, by token", labels=["token"])
    for token, count in sorted(stats.errors.items()):
        errors.add_metric([token], count)
    yield errors


def metrics_registry(
    store: StateStore,
    stats: Callable[[], ServerCounters | None],
    extra: Callable[[], Mapping[str, float]] = dict,
    describe: Callable[[str], str | None] = lambda name: None,
) -> CollectorRegistry:
    """A registry of its own (not the process-wide default) that reads ``store`` at scrape.

    Args:
        store: The UPS data.
        stats: The protocol server's counters now (``None``: no server runs).
        extra: More gauges (name -> value), e.g. the web's own websocket count.
        describe: A variable's description (cmdvartab), for the HELP lines.
    """
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_StoreCollector(store, stats, extra, describe))
    return registry


def render(registry: CollectorRegistry) -> bytes:
    """The text exposition format (version 0.0.4) of ``registry``."""
    return generate_latest(registry)


class _Families(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        yield from self._families


def render_ups(
    store: StateStore, describe: Callable[[str], str | None], name: str | None = None
) -> bytes:
    """nut_exporter's ``/ups_metrics``: the ``network_ups_tools_*`` series alone.

    Of the UPS ``name`` (any case), as ``?ups=NAME`` asks nut_exporter, or of every UPS
    (nut_exporter fails such a scrape when NUT has more than one; nuttrio serves them all,
    each labelled ``ups``). A UPS without fresh data has none, as in ``/metrics``.
    """
    gauges = _Gauges()
    for snap in store.view().ups:
        if name is not None and snap.name.lower() != name.lower():
            continue
        if snap.dumped and snap.connected:
            _ups_series(snap, gauges, describe)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(list(gauges.families.values())))
    return generate_latest(registry)
