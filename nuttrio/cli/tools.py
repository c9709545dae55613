"""One-shot commands: ``--killpower-check``, ``--shutdown-ups``, ``why``, ``notify-test``, scan."""

from __future__ import annotations

import trio

from ..daemon import DaemonOptions, driver_context, load_manager_config, run_as_user
from ..hw import DriverFailed, create_driver
from ..hw import scan as hw_scan
from ..mgmt.notify import Notifier
from ..mgmt.runner import check_powerdown_flag, read_once
from ..nutconf import ConfigError, load_nut_config
from ..state import CommandKind, CommandStatus, DriverCommand, StateStore, UpsEntry

__all__ = ["ToolError", "killpower_check", "notify_test", "scan", "shutdown_ups", "why"]

#: Instant commands that cut the load and restore it when power returns, best first.
SHUTDOWN_COMMANDS = ("shutdown.return", "load.off.delay", "shutdown.stayoff", "load.off")
#: Seconds a driver may take to answer the shutdown command.
SHUTDOWN_TIMEOUT = 30.0
#: What each shutdown command does; ``{delay}`` is the UPS's ups.delay.shutdown.
SHUTDOWN_TEXT = {
    "shutdown.return": "cut the load after {delay} and restore it when the power returns",
    "load.off.delay": "cut the load after {delay}",
    "shutdown.stayoff": "cut the load after {delay} and keep it off",
    "load.off": "cut the load now",
}
#: NUT's drivers' words (``upsdrv_shutdown``) when they have no way to shut the UPS down.
NOT_SUPPORTED = "shutdown not supported"
#: Drivers whose shutdown (``upsdrvctl shutdown``, the driver's ``-k``) does nothing, with
#: NUT's message: dummy-ups only simulates a UPS.
NO_SHUTDOWN = {"dummy-ups": NOT_SUPPORTED}
#: What a driver's answer to the shutdown command means.
_ANSWERS = {
    CommandStatus.UNKNOWN: "the driver does not handle it",
    CommandStatus.INVALID_ARGUMENT: "the driver refused its argument",
    CommandStatus.FAILED: "the UPS did not carry it out",
}


class ToolError(Exception):
    """A one-shot command failed; the message says why."""


def killpower_check(options: DaemonOptions) -> int:
    """``upsmon -K``: 0 if POWERDOWNFLAG is configured, present and holds the flag, else 1."""
    upsmon, _ = load_manager_config(options)
    return 0 if check_powerdown_flag(upsmon) else 1


async def shutdown_ups(options: DaemonOptions, name: str) -> int:
    """``upsdrvctl shutdown NAME``: start the UPS's driver and send it the shutdown command.

    A driver with a ``shutdown()`` (NUT's ``upsdrv_shutdown``, the driver's ``-k``) runs
    it without starting the driver first (a NUT binary: ``DRIVER -a UPS -k``). Otherwise
    the driver is started and the first of :data:`SHUTDOWN_COMMANDS` it offers is sent,
    after printing what it does. nuttrio's dummy-ups, and a driver that offers none of
    them, are refused with NUT's message (``shutdown not supported``).

    Returns:
        0 if the driver reported success.

    Raises:
        ConfigError: For a bad configuration or an unknown UPS.
        ToolError: If the driver has no shutdown, refused or failed it, or did not answer.
    """
    if options.confdir is None:
        raise ConfigError("--shutdown-ups needs --nut-config DIR (or NUT_CONFPATH)")
    config = load_nut_config(options.confdir)
    section = next((s for s in config.ups if s.name.lower() == name.lower()), None)
    if section is None:
        raise ConfigError(f"no UPS named {name!r} in ups.conf", config.confdir / "ups.conf")
    driver = create_driver(section, driver_context(config, options))
    own = getattr(driver, "shutdown", None)
    if own is not None:
        print(f"nuttrio: UPS {section.name}: the {section.driver} shutdown sequence", flush=True)
        try:
            await own()
        except DriverFailed as exc:
            raise ToolError(f"UPS {section.name}: {exc}") from exc
        return 0
    refused = NO_SHUTDOWN.get(section.driver)
    if refused is not None:
        raise ToolError(f"UPS {section.name}: {refused} (driver {section.driver})")
    entry = StateStore().add(section.name, section.desc)
    async with trio.open_nursery() as nursery:
        with entry.connect() as link:
            await nursery.start(driver.run, link)
            outcome = await _send_shutdown(entry)
            nursery.cancel_scope.cancel()
    if outcome is not None:
        raise ToolError(f"UPS {section.name}: {outcome}")
    return 0


async def _send_shutdown(entry: UpsEntry) -> str | None:
    """Send the best shutdown command the driver offers; ``None`` on success, else why not.

    Cancellation leaves the command queued at the driver (the caller stops the driver).
    """
    snapshot = entry.snapshot()
    command = next((c for c in SHUTDOWN_COMMANDS if snapshot.has_command(c)), None)
    if command is None:
        return f"{NOT_SUPPORTED} (the driver offers none of {', '.join(SHUTDOWN_COMMANDS)})"
    delay = snapshot.value("ups.delay.shutdown")
    when = f"{delay} s (ups.delay.shutdown)" if delay else "the UPS's own delay"
    what = SHUTDOWN_TEXT[command].format(delay=when)
    print(f"nuttrio: UPS {entry.name}: {command}: {what}", flush=True)
    request = DriverCommand(CommandKind.INSTCMD, command)
    if not entry.submit(request):
        return "the driver did not take the command"
    status: CommandStatus | None = None
    with trio.move_on_after(SHUTDOWN_TIMEOUT):
        status = await request.result.wait()
    if status is None:
        return f"no answer from the driver in {SHUTDOWN_TIMEOUT:g} s"
    if status is not CommandStatus.SUCCESS:
        return f"{command} failed: {_ANSWERS[status]}"
    return None


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
    notifier = Notifier(upsmon, upssched=sched, run_as=run_as_user(upsmon))
    async with trio.open_nursery() as nursery:
        await nursery.start(notifier.run)
        lines = await notifier.test()
        nursery.cancel_scope.cancel()
    for line in lines:
        print(line)
    return 0 if all(": ok" in line or "not configured" in line for line in lines) else 1


async def scan(ports: list[str]) -> int:
    """``nuttrio scan``: print each UPS that answers, with its ups.conf section.

    Only read-only requests are sent (see :mod:`nuttrio.hw.scan` and
    :mod:`nuttrio.hw.hid.scan`). With no ``ports``, the machine's serial ports and its
    USB bus are probed; with ports, only those.

    Returns:
        0 if a UPS was found, 1 if none.
    """
    results: list[tuple[str, hw_scan.Found | None]] = []
    targets = ports or hw_scan.candidate_ports()
    if targets:
        results.extend(zip(targets, await hw_scan.scan(targets), strict=True))
    else:
        print("# no serial ports found")
    if not ports:
        from ..hw.hid.scan import usb_upses  # pyusb, only when USB is looked at

        usb = await trio.to_thread.run_sync(usb_upses)
        results.extend(usb or [("USB", None)])
    text, count = hw_scan.report(results)
    print(text, end="")
    return 0 if count else 1
