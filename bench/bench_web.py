"""How fast a change at the driver reaches websocket clients of WS /api/v1/stream.

One nuttrio daemon in-process (the built-in dummy-ups ``sim``, web on 127.0.0.1), K
websocket clients; each round sets ``battery.charge`` through the NUT protocol (SET VAR as a
upsd.users account, which the dummy-ups driver applies) and times, for every client, from
just before the SET until the ``ups`` message with the new value arrives. That covers the
protocol request, the driver command, the store's publication and the websocket push; the
stream's own share is smaller. NUT has no push API, so there is no NUT column here.

    python bench/bench_web.py [--rounds N] [--clients K ...]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import trio
import trio_websocket

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import nuttrio
from nuttrio.client import open_nut_client


def write_confdir(d: Path) -> Path:
    (d / "upsd.conf").write_text("LISTEN 127.0.0.1 3493\n")
    (d / "upsd.users").write_text("[admin]\n password = pw\n actions = set\n")
    (d / "ups.conf").write_text("[a]\n driver = dummy-ups\n port = a.dev\n")
    (d / "a.dev").write_text("ups.status: OL\nbattery.charge: 90\n")
    for name in ("upsd.conf", "upsd.users"):
        (d / name).chmod(0o600)
    return d


async def wait_for(ws: trio_websocket.WebSocketConnection, charge: str) -> float:
    while True:
        message = json.loads(await ws.get_message())
        if message["type"] == "ups" and message["ups"]["variables"]["battery.charge"] == charge:
            return time.perf_counter()


async def run(rounds: int, clients: int) -> list[float]:
    with tempfile.TemporaryDirectory() as tmp:
        options = nuttrio.DaemonOptions(
            confdir=write_confdir(Path(tmp)),
            listen=(("127.0.0.1", 0),),
            web=(("127.0.0.1", 0),),
        )
        async with nuttrio.open_daemon(options) as daemon, trio.open_nursery() as clients_nursery:
            host, port = daemon.web_addresses[0]
            nut_host, nut_port = daemon.addresses[0]
            sockets = []
            for _ in range(clients):
                ws = await trio_websocket.connect_websocket(
                    clients_nursery, host, port, "/api/v1/stream", use_ssl=False
                )
                await ws.get_message()  # hello
                sockets.append(ws)
            latencies: list[float] = []
            async with open_nut_client(nut_host, nut_port) as nut:
                await nut.username("admin")
                await nut.password("pw")
                for i in range(rounds):
                    charge = str(10 + i % 80)
                    arrived: list[float] = []

                    async def one(
                        ws: trio_websocket.WebSocketConnection,
                        c: str = charge,
                        out: list[float] = arrived,
                    ) -> None:
                        out.append(await wait_for(ws, c))

                    began = time.perf_counter()
                    async with trio.open_nursery() as nursery:
                        for ws in sockets:
                            nursery.start_soon(one, ws)
                        await nut.set_var("a", "battery.charge", charge)
                    latencies.extend(t - began for t in arrived)
            for ws in sockets:
                await ws.aclose()
            clients_nursery.cancel_scope.cancel()
    return latencies


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 10, 50])
    args = parser.parse_args()
    print("| websocket clients | changes | p50 ms | p95 ms | max ms |")
    print("|---:|---:|---:|---:|---:|")
    for k in args.clients:
        lat = sorted(x * 1000 for x in trio.run(run, args.rounds, k))
        p95 = lat[int(len(lat) * 0.95) - 1]
        print(f"| {k} | {args.rounds} | {statistics.median(lat):.2f} | {p95:.2f} | {lat[-1]:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
