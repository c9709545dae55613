"""Serve a Python object of the program as a UPS, beside those of ups.conf (no ups.conf line).

The object is a driver (``async def run(link, *, task_status)``): it publishes variables
through the link and answers the commands that come down it. ``daemon.add_ups`` serves it
like any other UPS: over the NUT protocol (``upsc``, upsmon, Home Assistant), the web and
the metrics, supervised (restarted if it raises), left alone by a reload of ups.conf.
Here it is a battery bank whose charge the program computes; the example reads it over the
protocol, runs its one instant command through the store (as the protocol's INSTCMD or
the web's button would, without their logins), and removes it again.

python examples/python_object_as_ups.py
"""

from __future__ import annotations

import sys

import trio

import nuttrio
from nuttrio.client import open_nut_client
from nuttrio.state import CommandKind, CommandStatus, DriverCommand, DriverLink


class BatteryBank:
    """A UPS made of the program's own numbers; ``beeper.mute`` is its one command."""

    def __init__(self, charge: int) -> None:
        self.charge = charge
        self.muted = False

    def publish(self, link: DriverLink) -> None:
        with link.update() as update:
            update.set("ups.status", "OL" if self.charge > 20 else "OB LB")
            update.set("battery.charge", str(self.charge))
            update.set("ups.beeper.status", "muted" if self.muted else "enabled")
            update.add_command("beeper.mute")
            update.dumped = True

    async def run(
        self, link: DriverLink, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        self.publish(link)
        task_status.started()
        async for command in link.commands:
            if command.kind is CommandKind.INSTCMD and command.name.lower() == "beeper.mute":
                self.muted = True
                self.publish(link)
                command.result.resolve(CommandStatus.SUCCESS)
            else:
                command.result.resolve(CommandStatus.UNKNOWN)


async def main() -> int:
    options = nuttrio.DaemonOptions(listen=(("127.0.0.1", 0),))
    async with nuttrio.open_daemon(options) as daemon:
        entry = await daemon.add_ups("bank", BatteryBank(charge=87), desc="the battery bank")
        host, port = daemon.addresses[0]
        async with open_nut_client(host, port) as nut:
            print("LIST UPS:", sorted(await nut.list_ups()))
            print("battery.charge:", await nut.get_var("bank", "battery.charge"))
            command = DriverCommand(CommandKind.INSTCMD, "beeper.mute")
            assert entry.submit(command)
            print("beeper.mute:", (await command.result.wait()).name)
            print("ups.beeper.status:", await nut.get_var("bank", "ups.beeper.status"))
        await daemon.remove_ups("bank")
        print("after remove_ups:", sorted(daemon.store.names()))
    return 0


if __name__ == "__main__":
    sys.exit(trio.run(main))
