"""One-shot commands: ``--killpower-check``, ``--shutdown-ups``, ``why``, ``notify-test``."""

from __future__ import annotations

import trio

from ..config import ConfigError, load_nut_config
from ..daemon import DaemonOptions, load_manager_config
from ..hw import create_driver
from ..mgmt.notify import Notifier
from ..mgmt.runner import check_powerdown_flag, read_once
from ..state import CommandKind, CommandStatus, DriverCommand, StateStore

__all__ = ["ToolError", "killpower_check", "notify_test", "shutdown_ups", "why"]

#: Instant commands that cut the load and restore it when power returns, best first.
SHUTDOWN_COMMANDS = ("shutdown.return", "load.off.delay", "shutdown.stayoff", "load.off")
#: Seconds a driver may take to answer the shutdown command.
SHUTDOWN_TIMEOUT = 30.0


class ToolError(Exception):
    """A one-shot command failed; the message says why."""


def killpower_check(options: DaemonOptions) -> int:
    """``upsmon -K``: 0 if POWERDOWNFLAG is configured, present and holds the flag, else 1."""
    upsmon, _ = load_manager_config(options)
    return 0 if check_powerdown_flag(upsmon) else 1


async def shutdown_ups(options: DaemonOptions, name: str) -> int:
    """``upsdrvctl shutdown NAME``: start the UPS's driver and send it the shutdown command.

    Returns:
        0 if the driver reported success, 1 otherwise (the reason is printed).

    Raises:
        ConfigError: For a bad configuration or an unknown UPS.
    """
    if options.confdir is None:
        raise ConfigError("--shutdown-ups needs --nut-config DIR (or NUT_CONFPATH)")
    config = load_nut_config(options.confdir)
    section = next((s for s in config.ups if s.name.lower() == name.lower()), None)
    if section is None:
        raise ConfigError(f"no UPS named {name!r} in ups.conf", config.confdir / "ups.conf")
    driver = create_driver(section, config.confdir)
    entry = StateStore().add(section.name, section.desc)
    async with trio.open_nursery() as nursery:
        with entry.connect() as link:
            await nursery.start(driver.run, link)
            snapshot = entry.snapshot()
            command = next((c for c in SHUTDOWN_COMMANDS if snapshot.has_command(c)), None)
            if command is None:
                nursery.cancel_scope.cancel()
                offered = ", ".join(SHUTDOWN_COMMANDS)
                raise ToolError(f"UPS {section.name}: the driver offers none of {offered}")
            delay = snapshot.value("ups.delay.shutdown")
            print(
                f"nuttrio: UPS {section.name}: {command}" + (f" after {delay} s" if delay else "")
            )
            request = DriverCommand(CommandKind.INSTCMD, command)
            if not entry.submit(request):
                raise ToolError(f"UPS {section.name}: the driver did not take the command")
            with trio.move_on_after(SHUTDOWN_TIMEOUT):
                status = await request.result.wait()
                nursery.cancel_scope.cancel()
                if status is CommandStatus.SUCCESS:
                    return 0
                raise ToolError(
                    f"UPS {section.name}: the driver answered {status.name} to {command}"
                )
            nursery.cancel_scope.cancel()
    raise ToolError(f"UPS {section.name}: no answer from the driver in {SHUTDOWN_TIMEOUT:g} s")


async def why(options: DaemonOptions) -> int:
    """Print, for each MONITOR, whether the manager would shut down now and why.

    Reads without logging in (NUMLOGINS stays as it is). Returns 1 if a MONITOR's server
    could not be reached (it is named as unreachable), else 0.
    """
    upsmon, _ = load_manager_config(options)
    reading = await read_once(upsmon)
    machine = reading.machine
    now = trio.current_time()
    for verdict in machine.verdicts(now):
        if verdict.system in reading.unreachable:
            reason = reading.unreachable[verdict.system]
            print(f"{verdict.system}: UNREACHABLE: {reason}")
            continue
        state = "CRITICAL" if verdict.critical else "ok"
        print(f"{verdict.system}: {state}: {verdict.reason}")
    fed, needed = machine.fed(now), machine.policy.minsupplies
    decision = "yes" if fed < needed else "no"
    print(f"power supplies fed: {fed}, MINSUPPLIES: {needed}; shut down now: {decision}")
    return 1 if reading.unreachable else 0


async def notify_test(options: DaemonOptions) -> int:
    """Send a test notification through every configured sink; 0 if all of them worked."""
    upsmon, sched = load_manager_config(options)
    notifier = Notifier(upsmon, upssched=sched)
    async with trio.open_nursery() as nursery:
        await nursery.start(notifier.run)
        lines = await notifier.test()
        nursery.cancel_scope.cancel()
    for line in lines:
        print(line)
    return 0 if all(": ok" in line or "not configured" in line for line in lines) else 1
