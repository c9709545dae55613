"""The web server in-process: the JSON API, /metrics, the websocket stream, logins and actions."""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import ssl
import time
from pathlib import Path

import h11
import pytest
import trio
import trio_websocket
from prometheus_client.parser import text_string_to_metric_families

import nuttrio
from nuttrio.client import open_nut_client
from nuttrio.web import WebSettings
from nuttrio.web.metrics import DEVICE_LABELS_ALL, STATUS_FLAGS

from .helpers import until
from .webclient import request

DEV = (
    "ups.status: OL\nbattery.charge: 90\nbattery.runtime: 1800\nups.load: 23\n"
    "input.voltage: 230.1\noutput.voltage: 229.8\ndevice.serial: SN-42\ndevice.location: rack 3\n"
    "ups.beeper.status: enabled\n"
)


def write_confdir(d: Path) -> Path:
    d.mkdir(exist_ok=True)
    (d / "upsd.conf").write_text("LISTEN 127.0.0.1 3493\n")
    (d / "upsd.users").write_text(
        "[admin]\n password = pw\n actions = set\n instcmds = all\n"
        "[viewer]\n password = look\n"
        "[mon]\n password = m\n upsmon secondary\n"
    )
    (d / "ups.conf").write_text('[a]\n driver = dummy-ups\n port = a.dev\n desc = "Rack A"\n')
    (d / "a.dev").write_text(DEV)
    for name in ("upsd.conf", "upsd.users"):
        (d / name).chmod(0o600)
    return d


@pytest.fixture
async def daemon(tmp_path):
    options = nuttrio.DaemonOptions(
        confdir=write_confdir(tmp_path / "conf"),
        listen=(("127.0.0.1", 0),),
        web=(("127.0.0.1", 0),),
    )
    async with nuttrio.open_daemon(options) as running:
        yield running


def web_port(daemon) -> int:
    return daemon.web_addresses[0][1]


async def set_var(daemon, var: str, value: str) -> None:
    host, port = daemon.addresses[0]
    async with open_nut_client(host, port) as client:
        await client.username("admin")
        await client.password("pw")
        await client.set_var("a", var, value)


async def test_api_serves_the_client_tools_shapes(daemon):
    port = web_port(daemon)
    listing = await request(port, "/api/v1/ups")
    assert listing.status == 200
    assert listing.headers["content-type"].startswith("application/json")
    assert listing.json() == {"a": "Rack A"}
    variables = (await request(port, "/api/v1/ups/a")).json()
    snap = daemon.store.get("a").snapshot()
    assert variables == {v.name: v.value for v in snap.variables.values()}
    assert variables["battery.charge"] == "90"
    state = (await request(port, "/api/v1/ups/A/state")).json()
    assert state["status"] == "OL"
    assert state["status_words"] == [{"flag": "OL", "text": "on line power"}]
    assert state["commands"] == list(snap.commands)
    commands = (await request(port, "/api/v1/ups/a/commands")).json()
    assert commands == dict.fromkeys(snap.commands)
    unknown = await request(port, "/api/v1/ups/nosuch")
    assert (unknown.status, unknown.json()["error"]) == (404, "UNKNOWN-UPS")
    wrong = await request(port, "/api/v1/ups", method="POST", body={})
    assert wrong.status == 405
    assert (await request(port, "/nope")).status == 404
    page = await request(port, "/")
    assert page.status == 200
    assert b"/static/app.js" in page.body
    assert "default-src 'none'" in page.headers["content-security-policy"]
    head = await request(port, "/static/app.js", method="HEAD")
    assert head.status == 200
    assert head.body == b""
    assert int(head.headers["content-length"]) > 0


def families(text: str) -> dict[str, list]:
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


def value_of(samples, **labels) -> float:
    found = [s.value for s in samples if all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(found) == 1, (labels, samples)
    return found[0]


#: Facts read off nut_exporter v3.2.5 (DRuggeri/nut_exporter), the reference for the names:
#: the metric names its Grafana dashboard (dashboard/dashboard.json) queries,
NUT_EXPORTER_DASHBOARD = (
    "network_ups_tools_battery_charge",
    "network_ups_tools_battery_runtime",
    "network_ups_tools_battery_voltage_high",
    "network_ups_tools_battery_voltage_low",
    "network_ups_tools_battery_voltage",
    "network_ups_tools_device_info",
    "network_ups_tools_input_voltage",
    "network_ups_tools_ups_load",
    "network_ups_tools_ups_status",
)
#: its device_info labels (collectors/nut_collector.go deviceLabels),
NUT_EXPORTER_DEVICE_LABELS = (
    "model", "mfr", "serial", "type", "description", "contact", "location", "part", "macaddr"
)  # fmt: skip
#: and its default --nut.statuses (nut_exporter.go).
NUT_EXPORTER_STATUSES = "OL,OB,LB,HB,RB,CHRG,DISCHRG,BYPASS,CAL,OFF,OVER,TRIM,BOOST,FSD,SD"


async def test_metrics_serve_what_nut_exporter_s_grafana_dashboard_queries(tmp_path):
    confdir = write_confdir(tmp_path / "conf")
    (confdir / "a.dev").write_text(
        DEV + "battery.voltage: 13.5\nbattery.voltage.high: 14.2\nbattery.voltage.low: 10.4\n"
        "outlet.1.current-max: 2.5\n"
    )
    options = nuttrio.DaemonOptions(
        confdir=confdir, listen=(("127.0.0.1", 0),), web=(("127.0.0.1", 0),)
    )
    async with nuttrio.open_daemon(options) as running:
        got = families((await request(web_port(running), "/metrics")).body.decode())
    assert [name for name in NUT_EXPORTER_DASHBOARD if name not in got] == []
    assert value_of(got["network_ups_tools_battery_voltage_low"], ups="a") == 10.4
    # nut_exporter turns "." and "-" into "_"
    assert value_of(got["network_ups_tools_outlet_1_current_max"], ups="a") == 2.5
    assert set(got["network_ups_tools_device_info"][0].labels) == {
        "ups",
        *NUT_EXPORTER_DEVICE_LABELS,
    }
    flags = [s.labels["flag"] for s in got["network_ups_tools_ups_status"]]
    assert sorted(flags) == sorted(NUT_EXPORTER_STATUSES.split(","))


async def test_metrics_have_nut_exporter_names_and_nuttrio_counters(daemon):
    port = web_port(daemon)
    host, nut_port = daemon.addresses[0]
    async with open_nut_client(host, nut_port) as client:
        await client.get_var("a", "battery.charge")
        with pytest.raises(nuttrio.client.NutError):
            await client.get_var("nosuch", "battery.charge")
    reply = await request(port, "/metrics")
    assert reply.status == 200
    assert reply.headers["content-type"].startswith("text/plain; version=0.0.4")
    got = families(reply.body.decode())
    assert value_of(got["network_ups_tools_battery_charge"], ups="a") == 90
    helps = {f.name: f.documentation for f in text_string_to_metric_families(reply.body.decode())}
    assert helps["network_ups_tools_battery_charge"] == (
        "Battery charge (percent of full) (battery.charge)"
    )
    assert value_of(got["network_ups_tools_input_voltage"], ups="a") == pytest.approx(230.1)
    # nut_exporter's on/off regular expressions make "enabled" a 1.
    assert value_of(got["network_ups_tools_ups_beeper_status"], ups="a") == 1
    status = got["network_ups_tools_ups_status"]
    assert value_of(status, ups="a", flag="OL") == 1
    assert value_of(status, ups="a", flag="OB") == 0
    assert {s.labels["flag"] for s in status} == set(STATUS_FLAGS)
    info = got["network_ups_tools_device_info"]
    assert set(info[0].labels) == {"ups", *DEVICE_LABELS_ALL}
    assert (info[0].labels["serial"], info[0].labels["location"]) == ("SN-42", "rack 3")
    assert "network_ups_tools_device_serial" not in got  # strings are labels, not gauges
    assert value_of(got["nuttrio_requests"], command="GET") >= 2
    assert value_of(got["nuttrio_errors"], token="UNKNOWN-UPS") == 1
    assert value_of(got["nuttrio_connections_accepted"]) >= 1
    assert value_of(got["nuttrio_driver_restarts"], ups="a") == 0
    assert value_of(got["nuttrio_ups_connected"], ups="a") == 1

    await set_var(daemon, "ups.status", "OB LB")
    await trio.sleep(0.05)
    status = families((await request(port, "/metrics")).body.decode())[
        "network_ups_tools_ups_status"
    ]
    assert value_of(status, ups="a", flag="OB") == 1
    assert value_of(status, ups="a", flag="LB") == 1
    assert value_of(status, ups="a", flag="OL") == 0


async def test_ups_metrics_is_nut_exporter_s_path_with_its_ups_parameter(daemon):
    """``/ups_metrics?ups=NAME`` (nut_exporter's scrape path): the UPS's own series only,
    the same values as /metrics; no ``ups``: every UPS; an unknown one: 404."""
    port = web_port(daemon)
    whole = families((await request(port, "/metrics")).body.decode())
    for path in ("/ups_metrics?ups=a", "/ups_metrics?ups=A", "/ups_metrics"):
        reply = await request(port, path)
        assert reply.status == 200
        assert reply.headers["content-type"].startswith("text/plain; version=0.0.4")
        got = families(reply.body.decode())
        assert got  # the UPS's series are there...
        assert all(name.startswith("network_ups_tools_") for name in got)  # ...and only they
        assert got == {k: v for k, v in whole.items() if k.startswith("network_ups_tools_")}
    missing = await request(port, "/ups_metrics?ups=nosuch")
    assert (missing.status, missing.json()["error"]) == (404, "UNKNOWN-UPS")


async def next_event(ws, kind: str, limit: float) -> dict:
    """The next event of ``kind`` the stream pushes (other messages skipped)."""
    with trio.fail_after(limit):
        while True:
            message = await receive_json(ws)
            if message["type"] == "event" and message["event"]["kind"] == kind:
                return message["event"]


def open_stream(port: int, path: str = "/api/v1/stream"):
    return trio_websocket.open_websocket("127.0.0.1", port, path, use_ssl=False)


async def receive_json(ws) -> dict:
    return json.loads(await ws.get_message())


async def test_stream_pushes_every_change_in_order(daemon):
    port = web_port(daemon)
    async with trio_websocket.open_websocket(
        "127.0.0.1", port, "/api/v1/stream", use_ssl=False
    ) as ws:
        hello = await receive_json(ws)
        assert hello["type"] == "hello"
        assert [u["name"] for u in hello["ups"]] == ["a"]
        assert hello["verdict"] is None
        assert hello["chart_span"] == 3 * 3600  # the default --web-history
        version = hello["store_version"]
        updates = hello["ups"][0]["updates"]
        host, nut_port = daemon.addresses[0]
        latencies = []
        charges = []
        async with open_nut_client(host, nut_port) as client:
            await client.username("admin")
            await client.password("pw")
            for charge in range(50, 60):
                began = time.perf_counter()
                await client.set_var("a", "battery.charge", str(charge))
                while True:
                    message = await receive_json(ws)
                    if message["type"] != "ups":
                        continue
                    assert message["store_version"] > version
                    assert message["ups"]["updates"] >= updates
                    version, updates = message["store_version"], message["ups"]["updates"]
                    charges.append(int(message["ups"]["variables"]["battery.charge"]))
                    if charges[-1] == charge:
                        latencies.append(time.perf_counter() - began)
                        break
        # In order, none after the last, each change seen (the reader keeps up here).
        assert charges == sorted(charges)
        assert charges[-1] == 59
        assert set(range(50, 60)) <= set(charges)
        print(f"driver change to websocket: max {max(latencies) * 1000:.1f} ms")
        assert max(latencies) < 1.0


async def test_stream_sends_events_and_the_event_log_api_has_them(daemon):
    port = web_port(daemon)
    async with trio_websocket.open_websocket(
        "127.0.0.1", port, "/api/v1/stream", use_ssl=False
    ) as ws:
        await receive_json(ws)
        await set_var(daemon, "ups.status", "OB DISCHRG")
        event = await next_event(ws, "status", 5)
    assert event["ups"] == "a"
    assert event["message"] == "status: on battery, discharging (OB DISCHRG)"
    listed = (await request(port, "/api/v1/events")).json()
    assert event in listed
    later = (await request(port, f"/api/v1/events?after={event['seq']}")).json()
    assert all(e["seq"] > event["seq"] for e in later)


async def test_the_chart_span_follows_web_history(tmp_path):
    from nuttrio.cli.main import _parser

    assert _parser().parse_args([]).web_history == WebSettings().history_hours
    hours = _parser().parse_args(["--web-history", "0.5"]).web_history
    options = nuttrio.DaemonOptions(
        confdir=write_confdir(tmp_path / "conf"),
        listen=(("127.0.0.1", 0),),
        web=(("127.0.0.1", 0),),
        web_settings=WebSettings(history_hours=hours),
    )
    async with nuttrio.open_daemon(options) as daemon, open_stream(web_port(daemon)) as ws:
        assert (await receive_json(ws))["chart_span"] == 1800


async def wait_for_event(port: int, message: str) -> dict:
    """The event-log line of UPS a saying ``message`` (waits up to 5 s for it)."""
    with trio.fail_after(5):
        while True:
            for event in (await request(port, "/api/v1/events")).json():
                if (event["ups"], event["message"]) == ("a", message):
                    return event
            await trio.sleep(0.01)


async def test_driver_state_is_shown_and_its_changes_are_events(daemon):
    port = web_port(daemon)
    entry = daemon.store.get("a")
    entry.set_driver_state("restarting")
    restarting = await wait_for_event(port, "driver restarting")
    state = (await request(port, "/api/v1/ups/a/state")).json()
    assert state["variables"]["driver.state"] == "restarting"
    entry.set_driver_state("restart-storm")
    storm = await wait_for_event(
        port, "driver restart storm: it keeps failing, still restarting it"
    )
    assert storm["kind"] == "driver"
    assert storm["seq"] > restarting["seq"]
    async with open_stream(port) as ws:
        hello = await receive_json(ws)
        assert hello["ups"][0]["variables"]["driver.state"] == "restart-storm"
    entry.set_driver_state(None)
    over = await wait_for_event(port, "driver state restart-storm over (cleared)")
    assert over["seq"] > storm["seq"]
    assert "driver.state" not in (await request(port, "/api/v1/ups/a/state")).json()["variables"]
    # A NUT driver's per-poll states are no news.
    entry.set_driver_state("updateinfo")
    await set_var(daemon, "ups.status", "OB")
    await wait_for_event(port, "status: on battery (OB)")
    messages = [e["message"] for e in (await request(port, "/api/v1/events")).json()]
    assert not [m for m in messages if "updateinfo" in m]


async def test_websocket_elsewhere_is_refused(daemon):
    port = web_port(daemon)
    with pytest.raises(trio_websocket.ConnectionRejected) as info:
        async with open_stream(port, "/api/v1/other"):
            pass
    assert info.value.status_code == 404


async def login(port: int, user: str, password: str):
    reply = await request(
        port, "/api/v1/login", method="POST", body={"username": user, "password": password}
    )
    cookie = reply.headers.get("set-cookie", "").split(";")[0]
    return reply, cookie


async def test_login_and_actions_use_upsd_users_rights_and_csrf(daemon, caplog):
    caplog.set_level(logging.INFO, logger="nuttrio.audit")
    port = web_port(daemon)
    url = "/api/v1/ups/a/instcmd"
    refused, _ = await login(port, "admin", "wrong")
    assert (refused.status, refused.json()["error"]) == (403, "ACCESS-DENIED")
    anonymous = await request(port, url, method="POST", body={"command": "load.off"})
    assert anonymous.status == 401

    viewer, viewer_cookie = await login(port, "viewer", "look")
    assert viewer.status == 200
    headers = {"cookie": viewer_cookie, "x-csrf-token": viewer.json()["csrf"]}
    denied = await request(port, url, method="POST", body={"command": "load.off"}, headers=headers)
    assert (denied.status, denied.json()["error"]) == (403, "ACCESS-DENIED")

    admin, cookie = await login(port, "admin", "pw")
    csrf = admin.json()["csrf"]
    assert "HttpOnly" in admin.headers["set-cookie"]
    assert "SameSite=Strict" in admin.headers["set-cookie"]
    no_token = await request(
        port, url, method="POST", body={"command": "load.off"}, headers={"cookie": cookie}
    )
    assert (no_token.status, no_token.json()["error"]) == (403, "BAD-CSRF-TOKEN")
    other_token = {"cookie": cookie, "x-csrf-token": viewer.json()["csrf"]}
    assert (
        await request(port, url, method="POST", body={"command": "load.off"}, headers=other_token)
    ).status == 403
    good = {"cookie": cookie, "x-csrf-token": csrf}
    cross = await request(
        port,
        url,
        method="POST",
        body={"command": "load.off"},
        headers={**good, "origin": "http://evil.example"},
    )
    assert (cross.status, cross.json()["error"]) == (403, "BAD-ORIGIN")
    unknown = await request(port, url, method="POST", body={"command": "no.such"}, headers=good)
    assert unknown.json()["error"] == "CMD-NOT-SUPPORTED"
    ran = await request(port, url, method="POST", body={"command": "load.off"}, headers=good)
    # dummy-ups runs no command: the driver's answer is UNKNOWN, as upscmd -w shows.
    assert (ran.status, ran.json()) == (200, {"ups": "a", "result": "UNKNOWN"})

    set_url = "/api/v1/ups/a/set"
    changed = await request(
        port,
        set_url,
        method="POST",
        body={"variable": "battery.charge", "value": "42"},
        headers=good,
    )
    assert (changed.status, changed.json()["result"]) == (200, "SUCCESS")
    assert daemon.store.get("a").snapshot().value("battery.charge") == "42"
    missing = await request(
        port, set_url, method="POST", body={"variable": "no.such", "value": "1"}, headers=good
    )
    assert missing.json()["error"] == "VAR-NOT-SUPPORTED"
    viewer_set = await request(
        port,
        set_url,
        method="POST",
        body={"variable": "battery.charge", "value": "1"},
        headers=headers,
    )
    assert viewer_set.json()["error"] == "ACCESS-DENIED"
    audit = [r.getMessage() for r in caplog.records if r.name == "nuttrio.audit"]
    line = "user={} peer=127.0.0.1 ups={} request='{}' result={} tracking=- via=web"
    assert audit == [
        line.format("admin", "-", "LOGIN", "ACCESS-DENIED"),
        line.format("viewer", "a", "INSTCMD a load.off", "ACCESS-DENIED"),
        line.format("admin", "a", "INSTCMD a no.such", "CMD-NOT-SUPPORTED"),
        line.format("admin", "a", "INSTCMD a load.off", "UNKNOWN"),
        line.format("admin", "a", "SET VAR a battery.charge 42", "SUCCESS"),
        line.format("admin", "a", "SET VAR a no.such 1", "VAR-NOT-SUPPORTED"),
        line.format("viewer", "a", "SET VAR a battery.charge 1", "ACCESS-DENIED"),
    ]
    events = (await request(port, "/api/v1/events")).json()
    assert [e["message"] for e in events if e["kind"] == "action"] == [
        "admin@127.0.0.1 ran load.off",
        "admin@127.0.0.1 set battery.charge",
    ]
    session = (await request(port, "/api/v1/session", headers={"cookie": cookie})).json()
    assert session == {"username": "admin", "csrf": csrf}
    out = await request(port, "/api/v1/logout", method="POST", body={}, headers=good)
    assert out.status == 200
    assert (
        await request(port, url, method="POST", body={"command": "load.off"}, headers=good)
    ).status == 401


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_primary_confdir(d: Path) -> tuple[Path, int]:
    """:func:`write_confdir` plus an upsmon.conf whose primary MONITORs ``a`` on a free port."""
    confdir = write_confdir(d)
    users = (confdir / "upsd.users").read_text()
    (confdir / "upsd.users").write_text(
        users.replace("actions = set", "actions = set\n upsmon primary")
    )
    nut_port = free_port()
    (confdir / "upsmon.conf").write_text(
        f"MONITOR a@127.0.0.1:{nut_port} 1 admin pw primary\nSHUTDOWNCMD true\n"
    )
    (confdir / "upsmon.conf").chmod(0o600)
    return confdir, nut_port


async def test_primary_role_serves_the_verdict_and_the_notifications(tmp_path):
    confdir, nut_port = write_primary_confdir(tmp_path / "conf")
    options = nuttrio.DaemonOptions(
        confdir=confdir,
        listen=(("127.0.0.1", nut_port),),
        web=(("127.0.0.1", 0),),
        role=nuttrio.Role.PRIMARY,
    )
    async with nuttrio.open_daemon(options) as daemon:
        port = web_port(daemon)
        verdict = (await request(port, "/api/v1/verdict")).json()
        assert verdict["ups"] == [
            {
                "system": f"a@127.0.0.1:{nut_port}",
                "critical": False,
                "reason": verdict["ups"][0]["reason"],
            }
        ]
        assert (verdict["fed"], verdict["minsupplies"], verdict["shutdown_now"]) == (1, 1, False)
        async with open_stream(port) as ws:
            hello = await receive_json(ws)
            assert hello["verdict"] == verdict
            await set_var(daemon, "ups.status", "OB")
            event = await next_event(ws, "notify", 10)
        assert event["ups"] == f"a@127.0.0.1:{nut_port}"
        assert event["message"].startswith("ONBATT")
        got = families((await request(port, "/metrics")).body.decode())
        latency = got["nuttrio_event_to_notify_seconds"]
        assert value_of(latency, le="+Inf") == 1
        count = [s for s in latency if s.name.endswith("_count")]
        total = [s for s in latency if s.name.endswith("_sum")]
        assert count[0].value == 1
        assert 0 < total[0].value < 5
        print(f"status change to ONBATT: {total[0].value * 1000:.1f} ms")


async def test_secondary_role_logs_its_notifications_and_serves_its_verdict(daemon, tmp_path):
    """A secondary (no UPS of its own) with a web server: its manager's ONBATT is a notify
    event in its event log and stream, and its verdict names the remote MONITOR."""
    host, nut_port = daemon.addresses[0]
    secondary_dir = tmp_path / "secondary"
    secondary_dir.mkdir()
    system = f"a@{host}:{nut_port}"
    (secondary_dir / "upsmon.conf").write_text(
        f"MONITOR {system} 1 mon m secondary\nSHUTDOWNCMD true\nRUN_AS_USER root\n"
        "POLLFREQ 1\nPOLLFREQALERT 1\n"
    )
    (secondary_dir / "upsmon.conf").chmod(0o600)
    options = nuttrio.DaemonOptions(
        confdir=secondary_dir, web=(("127.0.0.1", 0),), role=nuttrio.Role.SECONDARY
    )
    async with nuttrio.open_daemon(options) as secondary:
        port = web_port(secondary)
        verdict = (await request(port, "/api/v1/verdict")).json()
        assert [v["system"] for v in verdict["ups"]] == [system]
        async with open_stream(port) as ws:
            await receive_json(ws)  # hello
            await set_var(daemon, "ups.status", "OB")
            event = await next_event(ws, "notify", 10)
        assert event["ups"] == system
        assert event["message"].startswith("ONBATT")
        events = (await request(port, "/api/v1/events")).json()
        assert any(e["kind"] == "notify" and e["ups"] == system for e in events)


async def test_web_tls_uses_the_nut_certificate(tmp_path):
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    confdir = write_confdir(tmp_path / "conf")
    pem = confdir / "upsd.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(pem))
    (confdir / "upsd.conf").write_text(f"LISTEN 127.0.0.1 3493\nCERTFILE {pem}\n")
    options = nuttrio.DaemonOptions(
        confdir=confdir, listen=(("127.0.0.1", 0),), web=(("127.0.0.1", 0),), web_tls=True
    )
    client = ssl.create_default_context()
    ca.configure_trust(client)
    async with nuttrio.open_daemon(options) as daemon:
        port = web_port(daemon)
        reply = await request(port, "/api/v1/ups", ssl_context=client)
        assert reply.json() == {"a": "Rack A"}
        async with trio_websocket.open_websocket(
            "127.0.0.1", port, "/api/v1/stream", use_ssl=client
        ) as ws:
            assert (await receive_json(ws))["type"] == "hello"
        # Plain HTTP on the TLS port gets nothing, and the server goes on serving.
        with pytest.raises(h11.RemoteProtocolError):
            await request(port, "/api/v1/ups")
        assert (await request(port, "/api/v1/ups", ssl_context=client)).status == 200


async def test_plain_http_logins_and_actions_follow_the_nut_port_s_tls_rule(tmp_path):
    trustme = pytest.importorskip("trustme")
    confdir = write_confdir(tmp_path / "conf")
    pem = confdir / "upsd.pem"
    trustme.CA().issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(pem))
    upsd_conf = "LISTEN 127.0.0.1 3493\nCERTFILE {}\nNUTTRIO_PLAINTEXT_FROM {}\n"
    (confdir / "upsd.conf").write_text(upsd_conf.format(pem, "127.0.0.2/32"))
    options = nuttrio.DaemonOptions(
        confdir=confdir, listen=(("127.0.0.1", 0),), web=(("127.0.0.1", 0),)
    )
    async with nuttrio.open_daemon(options) as daemon:
        port = web_port(daemon)
        assert (await request(port, "/api/v1/ups")).json() == {"a": "Rack A"}  # read-only
        refused, _ = await login(port, "admin", "pw")
        assert (refused.status, refused.json()["error"]) == (403, "TLS-REQUIRED")
        (confdir / "upsd.conf").write_text(upsd_conf.format(pem, "127.0.0.0/8"))
        await daemon.reload()
        admin, cookie = await login(port, "admin", "pw")
        assert admin.status == 200
        good = {"cookie": cookie, "x-csrf-token": admin.json()["csrf"]}
        (confdir / "upsd.conf").write_text(upsd_conf.format(pem, "127.0.0.2/32"))
        await daemon.reload()
        url = "/api/v1/ups/a/instcmd"
        late = await request(port, url, method="POST", body={"command": "load.off"}, headers=good)
        assert (late.status, late.json()["error"]) == (403, "TLS-REQUIRED")


async def test_web_tls_without_certfile_is_a_config_error(tmp_path):
    options = nuttrio.DaemonOptions(
        confdir=write_confdir(tmp_path / "conf"),
        listen=(("127.0.0.1", 0),),
        web=(("127.0.0.1", 0),),
        web_tls=True,
    )
    with pytest.raises(nuttrio.ConfigError, match="--web-tls needs CERTFILE"):
        async with nuttrio.open_daemon(options):
            pass


async def test_rights_follow_a_reload_of_upsd_users(daemon):
    port = web_port(daemon)
    admin, cookie = await login(port, "admin", "pw")
    good = {"cookie": cookie, "x-csrf-token": admin.json()["csrf"]}
    url = "/api/v1/ups/a/instcmd"
    ran = await request(port, url, method="POST", body={"command": "load.off"}, headers=good)
    assert ran.status == 200
    users = daemon.config.confdir / "upsd.users"
    users.write_text("[admin]\n password = pw\n actions = set\n")
    await daemon.reload()
    denied = await request(port, url, method="POST", body={"command": "load.off"}, headers=good)
    assert (denied.status, denied.json()["error"]) == (403, "ACCESS-DENIED")
    users.write_text("[admin]\n password = changed\n actions = set\n instcmds = all\n")
    await daemon.reload()
    # The password given at login is checked against the file in force, as upsd does.
    stale = await request(port, url, method="POST", body={"command": "load.off"}, headers=good)
    assert (stale.status, stale.json()["error"]) == (403, "ACCESS-DENIED")


def _failures_reach(daemon, peer: str, count: int):
    async def reached() -> bool:
        return daemon.web.throttle.failures(peer) >= count

    return reached


async def test_refused_logins_wait_longer_per_peer_and_slow_no_other_peer(daemon):
    """Each refused login from an address waits 1 s, 2 s, 4 s...; refusals from one address
    are queued (more connections do not guess faster); another address, and right
    passwords, do not wait."""
    port = web_port(daemon)
    began = trio.current_time()
    done: dict[str, float] = {}

    async def attempt(key: str, password: str, source: str) -> None:
        reply = await request(
            port,
            "/api/v1/login",
            method="POST",
            body={"username": "admin", "password": password},
            local_address=source,
        )
        done[key] = trio.current_time() - began
        assert reply.status == (200 if password == "pw" else 403)

    async with trio.open_nursery() as nursery:
        for i in range(2):
            nursery.start_soon(attempt, f"guess{i}", "guess", "127.0.0.1")
        # Both guesses are counted before the other peer's first try.
        await until(_failures_reach(daemon, "127.0.0.1", 2), limit=5)
        nursery.start_soon(attempt, "other", "typo", "127.0.0.2")
        nursery.start_soon(attempt, "right", "pw", "127.0.0.1")
    first, second = sorted(done[f"guess{i}"] for i in range(2))
    assert first >= 0.9
    assert second >= 2.9
    # Its own first refusal, 1 s from 0.2 s: not queued behind the guesser's (3 s).
    assert done["other"] < 2.5
    assert done["right"] < 0.9
    assert daemon.web.throttle.failures("127.0.0.1") == 2
    assert daemon.web.throttle.failures("127.0.0.2") == 1


async def test_connections_beyond_the_limit_are_closed(tmp_path, monkeypatch):
    from nuttrio.web import http

    monkeypatch.setattr(http, "MAX_CONNECTIONS", 2)
    options = nuttrio.DaemonOptions(
        confdir=write_confdir(tmp_path / "conf"),
        listen=(("127.0.0.1", 0),),
        web=(("127.0.0.1", 0),),
    )
    async with nuttrio.open_daemon(options) as daemon:
        port = web_port(daemon)
        first = await trio.open_tcp_stream("127.0.0.1", port)
        second = await trio.open_tcp_stream("127.0.0.1", port)
        await trio.sleep(0.1)
        third = await trio.open_tcp_stream("127.0.0.1", port)
        with trio.fail_after(5):
            assert await third.receive_some(100) == b""
        await first.aclose()
        await trio.sleep(0.1)
        assert (await request(port, "/api/v1/ups")).status == 200
        await second.aclose()
        await third.aclose()


async def client_events(daemon, wanted: int) -> list[str]:
    """The web's ``client`` event messages, once there are ``wanted`` of them."""
    log = daemon.web.events
    with trio.fail_after(5):
        while True:
            found = [e.message for e in log if e.kind == "client"]
            if len(found) >= wanted:
                return found
            await log.wait_after(log.last)


async def test_every_login_and_its_end_is_an_event(daemon):
    port = web_port(daemon)
    host, nut_port = daemon.addresses[0]
    async with open_nut_client(host, nut_port) as one, open_nut_client(host, nut_port) as two:
        for client in (one, two):
            await client.username("mon")
            await client.password("m")
            await client.login("a")
        attached = await client_events(daemon, 2)
        assert attached == ["client 127.0.0.1 attached (mon)"] * 2
        state = (await request(port, "/api/v1/ups/a/state")).json()
        assert state["clients"] == [{"address": "127.0.0.1", "username": "mon"}] * 2
    found = await client_events(daemon, 4)
    assert found[2:] == ["client 127.0.0.1 detached"] * 2


@pytest.mark.parametrize(
    "sent",
    [
        b"GET /api/v1/ups HTTP/1.1\r\nHost: x\r\n",  # a request that never ends
        b"GET /api/v1/stream HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\n\r\n",  # a websocket handshake without its key
    ],
)
async def test_a_stuck_or_broken_request_is_closed(daemon, monkeypatch, sent):
    from nuttrio.web import http

    monkeypatch.setattr(http, "IDLE_TIMEOUT", 0.3)
    stream = await trio.open_tcp_stream("127.0.0.1", web_port(daemon))
    async with stream:
        await stream.send_all(sent)
        with trio.fail_after(5):
            while await stream.receive_some(1000):
                pass
    assert (await request(web_port(daemon), "/api/v1/ups")).status == 200


async def test_the_chart_history_grows_when_a_ups_is_added(autojump_clock):
    from nuttrio.state import StateStore
    from nuttrio.web.feed import RingLog

    store = StateStore()
    links = contextlib.ExitStack()

    def publish(name: str, charge: str) -> None:
        link = links.enter_context(store.add(name, None).connect())
        with link.update() as u:
            u.set("battery.charge", charge)
            u.dumped = True

    publish("a", "90")
    samples = RingLog(3)  # three points of one UPS
    with links:
        await _sample_for_ten_seconds(store, samples, publish)


async def _sample_for_ten_seconds(store, samples, publish) -> None:
    from nuttrio.web.feed import sample_store

    async with trio.open_nursery() as nursery:
        await nursery.start(lambda task_status: sample_store(
            store, samples, 1.0, per_ups=3, task_status=task_status
        ))  # fmt: skip
        await trio.sleep(5.5)
        assert [s.ups for s in samples] == ["a"] * 3
        publish("b", "50")  # as a SIGHUP adding a section does
        await trio.sleep(5)
        kept = [s.ups for s in samples]
        assert (kept.count("a"), kept.count("b")) == (3, 3)  # a keeps its three hours' worth
        nursery.cancel_scope.cancel()
