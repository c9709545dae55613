"""The ``nuttrio`` command: the only place that calls :func:`trio.run` and handles signals."""

from __future__ import annotations

import argparse
import logging
import logging.handlers
import os
import signal
import socket
import sys
from collections.abc import Sequence
from pathlib import Path

import trio

from .. import __version__
from ..daemon import (
    DEFAULT_PORT,
    DEFAULT_WEB_PORT,
    Daemon,
    DaemonOptions,
    Role,
    WebSettings,
    run_daemon,
)
from ..nutconf import ConfigError
from ..nutconf.common import host_port, split_host_port
from ..protocol import DEFAULT_MAX_LINE
from ..server import ConnectionLimits, ListenError
from ..systemd import SystemdNotifier
from . import clients, tools
from ._args import positive_int
from .cert import add_cert_command, run_cert_command
from .hid import add_hid_commands, run_hid_command

__all__ = ["exit_with_main", "main", "parse_listen"]

log = logging.getLogger("nuttrio")


def parse_web(text: str) -> tuple[str, int]:
    """Parse ``HOST[:PORT]`` for ``--web``; the port defaults to 8493.

    Raises:
        argparse.ArgumentTypeError: If the text is not of that form.
    """
    try:
        return split_host_port(text, default_port=DEFAULT_WEB_PORT, port_zero=True, bare_ipv6=True)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"bad address {text!r}: {exc}") from None


def parse_listen(text: str) -> tuple[str, int]:
    """Parse ``HOST[:PORT]`` (``[v6addr]:PORT`` for IPv6); the port defaults to 3493.

    Raises:
        argparse.ArgumentTypeError: If the text is not of that form.
    """
    try:
        return split_host_port(text, port_zero=True, bare_ipv6=True)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"bad address {text!r}: {exc}") from None


#: What ``--nut-config DIR`` makes nuttrio read, for the help.
_FILES_READ = (
    "read NUT's files from DIR: ups.conf (and the .dev/.seq files its dummy-ups sections "
    "name; NUT's driver binaries read it too), upsd.conf, upsd.users, the cmdvartab "
    "descriptions from upsd.conf's DATAPATH; "
    "upsmon.conf for --primary, --secondary, --killpower-check, why and notify-test; "
    "upssched.conf when upsmon.conf's NOTIFYCMD names upssched "
    "(default: $NUT_CONFPATH if set, else the built-in simulated UPS)"
)

#: The one-shot subcommands: name, one-line help, description.
_SUBCOMMANDS = (
    (
        "why",
        "for each MONITOR: would the manager shut down now, and the rule that decides",
        "Read upsmon.conf, query each MONITOR's server once and say, "
        "for each UPS, whether the manager would count it as critical now and why, then "
        "whether the shutdown would start.",
    ),
    (
        "notify-test",
        "send a test notification through every configured sink",
        "Read upsmon.conf (and upssched.conf when NOTIFYCMD names upssched) and send a "
        "NOTIFYTEST notification through syslog, NOTIFYCMD and upssched's CMDSCRIPT; "
        "exit 0 only if every configured sink worked.",
    ),
)


def _add_config_options(parser: argparse.ArgumentParser, *, subcommand: bool) -> None:
    """The options the daemon and the subcommands share.

    In a subcommand they default to SUPPRESS, so that ``nuttrio --nut-config DIR why``
    keeps the value given before the subcommand.
    """
    unset: object = argparse.SUPPRESS if subcommand else None
    parser.add_argument(
        "--upssched",
        metavar="FILE",
        type=Path,
        help="run this upssched.conf in-process for the notifications (default: "
        "DIR/upssched.conf when upsmon.conf's NOTIFYCMD names upssched)",
        default=unset,
    )
    parser.add_argument("--nut-config", metavar="DIR", type=Path, help=_FILES_READ, default=unset)
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        help="log more",
        default=argparse.SUPPRESS if subcommand else 0,
    )
    parser.add_argument(
        "--syslog",
        metavar="SOCKET",
        nargs="?",
        const="/dev/log",
        help="log to syslog (the local socket, /dev/log unless given) instead of stderr, "
        "as 'nuttrio[PID]: ...' with the daemon facility",
        default=argparse.SUPPRESS if subcommand else None,
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nuttrio",
        description=(
            "A UPS management system compatible with Network UPS Tools. With no configuration, "
            "serves a simulated UPS named 'sim' on 127.0.0.1:3493."
        ),
    )
    _add_commands(parser)
    _add_roles(parser)
    _add_config_options(parser, subcommand=False)
    _add_daemon_options(parser)
    parser.add_argument("--version", action="version", version=f"nuttrio {__version__}")
    return parser


def _add_commands(parser: argparse.ArgumentParser) -> None:
    """The subcommands: cert, why and the other tools, scan, hid-*, NUT's client tools."""
    commands = parser.add_subparsers(
        dest="command", title="commands (instead of a role)", metavar="COMMAND"
    )
    add_cert_command(commands)
    for name, summary, description in _SUBCOMMANDS:
        sub = commands.add_parser(name, help=summary, description=description)
        _add_config_options(sub, subcommand=True)
    scan = commands.add_parser(
        "scan",
        help="list the serial and USB UPSes that answer, with their ups.conf sections",
        description="Probe serial ports (the given ones, else /dev/ttyS*, /dev/ttyUSB*, "
        "/dev/ttyACM*, /dev/serial/by-id/*) with read-only requests only (APC Smart: Y, "
        "^A, n; Megatec: Q1, I) and, when no port is given, the USB bus (descriptors only: "
        "the UPSes a usbhid-ups subdriver claims), and print, for each UPS found, the "
        "ups.conf section to paste. Exit 0 if a UPS was found, 1 if none.",
    )
    scan.add_argument("ports", nargs="*", metavar="PORT", help="serial port to probe")
    add_hid_commands(commands)
    for name, summary in clients.TOOLS.items():
        # Never parsed here: main() hands the arguments to the tool, which takes NUT's.
        commands.add_parser(
            name, help=f"{summary}; 'nuttrio {name} -h' for its options", add_help=False
        )


def _add_roles(parser: argparse.ArgumentParser) -> None:
    """--attach, --primary, --secondary and the one-shot --killpower-check, --shutdown-ups."""
    roles = parser.add_argument_group("role (one of)")
    role = roles.add_mutually_exclusive_group()
    role.add_argument(
        "--attach",
        dest="role",
        action="store_const",
        const=Role.ATTACH,
        help="run the attachment daemon: drivers and the NUT protocol server (the default)",
    )
    role.add_argument(
        "--primary",
        dest="role",
        action="store_const",
        const=Role.PRIMARY,
        help="the attachment daemon plus the manager that owns the shutdown (upsmon primary)",
    )
    role.add_argument(
        "--secondary",
        dest="role",
        action="store_const",
        const=Role.SECONDARY,
        help="the manager only, for a host fed by a UPS attached elsewhere (upsmon secondary)",
    )
    role.add_argument(
        "--killpower-check",
        action="store_true",
        help="exit 0 only if upsmon.conf's POWERDOWNFLAG holds the power-down flag (upsmon -K)",
    )
    role.add_argument(
        "--shutdown-ups",
        metavar="NAME",
        help="send UPS NAME its driver's shutdown sequence (upsdrvctl shutdown, the "
        "driver's -k: apcsmart's sdtype/advorder, a NUT binary's -k), else the first "
        "of shutdown.return, load.off.delay, shutdown.stayoff, load.off it offers; "
        "nuttrio must not be serving it",
    )


def _add_daemon_options(parser: argparse.ArgumentParser) -> None:
    """Where to listen, which drivers, the web server, mDNS and the protocol's limits."""
    parser.add_argument(
        "--listen",
        metavar="HOST:PORT",
        type=parse_listen,
        action="append",
        default=[],
        help="listen here instead of upsd.conf's LISTEN lines (repeatable; port 0 picks one)",
    )
    parser.add_argument(
        "--nut-driver",
        metavar="UPS",
        action="append",
        default=[],
        help="serve UPS with NUT's own driver binary (started as upsdrvctl would, or the one "
        "already running) even where nuttrio has a driver of its own (repeatable; 'all' for "
        "every UPS). A driver nuttrio does not have always uses NUT's binary",
    )
    parser.add_argument(
        "--external-drivers",
        action="store_true",
        help="start no driver: serve each UPS from the NUT driver the system starts "
        "(upsdrvctl, nut-driver@ units), found by its socket in STATEPATH and followed "
        "across restarts; DRIVER-NOT-CONNECTED while it is not running, as upsd",
    )
    parser.add_argument(
        "--web",
        metavar="HOST[:PORT]",
        type=parse_web,
        action="append",
        default=[],
        help=f"serve the web dashboard, the JSON API (/api/v1) and Prometheus /metrics here "
        f"(repeatable; default port {DEFAULT_WEB_PORT}; port 0 picks one). Off unless given, "
        f"except that 'nuttrio' with no configuration and no --listen serves it on "
        f"127.0.0.1:{DEFAULT_WEB_PORT}",
    )
    parser.add_argument(
        "--web-tls",
        action="store_true",
        help="serve --web over TLS only (https, wss), with upsd.conf's CERTFILE: the NUT "
        "port's certificate",
    )
    parser.add_argument(
        "--advertise",
        action="store_true",
        help="announce the NUT port over mDNS as _nut._tcp (Home Assistant finds it); needs "
        "the zeroconf package (pip install 'nuttrio[mdns]')",
    )
    parser.add_argument(
        "--web-history",
        metavar="HOURS",
        type=float,
        default=WebSettings().history_hours,
        help="hours of chart the dashboard keeps in memory (default %(default)s; one point "
        f"every {WebSettings().sample_interval:g} s)",
    )
    parser.add_argument(
        "--max-line",
        metavar="BYTES",
        type=positive_int,
        default=DEFAULT_MAX_LINE,
        help=f"longest request line accepted (default {DEFAULT_MAX_LINE})",
    )


def _bracketed(host: str) -> str:
    """An IPv6 address in brackets, as upsc and ``--listen`` take it."""
    return f"[{host}]" if ":" in host else host


def _hint(daemon: Daemon) -> str:
    scheme = "https" if daemon.options.web_tls else "http"
    web = "".join(f"; dashboard: {scheme}://{host_port(h, p)}/" for h, p in daemon.web_addresses)
    if daemon.options.role is Role.SECONDARY:
        assert daemon.manager is not None
        watched = ", ".join(m.system for m in daemon.manager.config.monitors)
        return f"nuttrio: managing (secondary) {watched}{web}"
    names = daemon.store.names()
    addresses = daemon.addresses
    listening = ", ".join(host_port(h, p) for h, p in addresses)
    if not names:
        return f"nuttrio: listening on {listening}{web} (no UPS configured)"
    host, port = next(((h, p) for h, p in addresses if ":" not in h), addresses[0])
    where = _bracketed(host) if port == DEFAULT_PORT else host_port(host, port)
    target = f"{names[0]}@{where}"
    served = names[0] if len(names) == 1 else f"{len(names)} UPS ({', '.join(names)})"
    return f"nuttrio: serving {served} on {listening}{web}; query it with: upsc {target}"


async def _run(options: DaemonOptions) -> None:
    """Run the daemon and act on signals, until a stopping signal or the daemon's end.

    The handled signals are ignored once the receiver is closed (it restores the handlers
    it found), so a second SIGTERM while stopping (``timeout`` and systemd signal the
    whole group) is absorbed and the process still exits 0. Under systemd it says
    READY=1 once serving, RELOADING=1/READY=1 around a SIGHUP reload, STOPPING=1 when
    stopping, and pings the watchdog (:mod:`nuttrio.systemd`).
    """
    handled = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1)
    for handled_signal in handled:
        signal.signal(handled_signal, signal.SIG_IGN)
    systemd = SystemdNotifier.from_environment()
    with trio.open_signal_receiver(*handled) as signals:
        async with trio.open_nursery() as nursery:
            daemon: Daemon = await nursery.start(
                _daemon_then_stop, options, nursery.cancel_scope, systemd
            )
            hint = _hint(daemon)
            print(hint, flush=True)
            await systemd.ready(hint.removeprefix("nuttrio: "))
            await nursery.start(systemd.run_watchdog)
            async for signum in signals:
                if not await _on_signal(signum, daemon, systemd):
                    nursery.cancel_scope.cancel()
                    break


async def _on_signal(signum: int, daemon: Daemon, systemd: SystemdNotifier) -> bool:
    """Act on one signal; ``False`` when it asks to stop."""
    if signum == signal.SIGHUP:
        log.info("SIGHUP: reloading the configuration")
        await systemd.reloading()
        await daemon.reload()
        await systemd.ready()
    elif signum == signal.SIGUSR1:
        if daemon.manager is not None:
            log.warning("SIGUSR1: shutdown requested by the administrator")
            daemon.manager.request_fsd()
        else:
            log.warning(
                "SIGUSR1 ignored: no manager runs in this process "
                "(start with --primary or --secondary to own the shutdown)"
            )
    else:
        log.info("%s: stopping", signal.Signals(signum).name)
        await systemd.stopping()
        return False
    return True


async def _daemon_then_stop(
    options: DaemonOptions,
    stop: trio.CancelScope,
    systemd: SystemdNotifier,
    *,
    task_status: trio.TaskStatus[Daemon] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run the daemon; when it ends by itself (a secondary after its shutdown), stop."""
    await run_daemon(options, task_status=task_status)
    await systemd.stopping()
    stop.cancel()


def _check_syslog(path: str) -> None:
    """Raise the OSError of connecting to the syslog socket at ``path``, if it fails."""
    error: OSError | None = None
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        with socket.socket(socket.AF_UNIX, kind) as sock:
            try:
                sock.connect(path)
            except OSError as exc:
                error = exc
            else:
                return
    assert error is not None
    raise error


def _configure_logging(verbose: int, syslog: str | None) -> None:
    """WARNING and up (INFO with -v, DEBUG with -vv), one line per record, to stderr or syslog.

    Raises:
        OSError: If the syslog socket cannot be reached.
    """
    level = logging.WARNING - 10 * min(verbose, 2)
    if syslog is None:
        logging.basicConfig(level=level, format="%(asctime)s %(name)s %(levelname)s: %(message)s")
        return
    handler = logging.handlers.SysLogHandler(
        address=syslog, facility=logging.handlers.SysLogHandler.LOG_DAEMON
    )
    _check_syslog(syslog)  # the handler would wait for a missing socket, silently
    handler.setFormatter(
        logging.Formatter(f"nuttrio[{os.getpid()}]: %(name)s %(levelname)s: %(message)s")
    )
    logging.basicConfig(level=level, handlers=[handler])


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``nuttrio`` command line; returns the exit status.

    ``nuttrio upsc|upscmd|upsrw|upslog ...`` runs that client tool with NUT's arguments.
    """
    words = list(sys.argv[1:] if argv is None else argv)
    if words and words[0] in clients.TOOLS:
        return clients.console(words[0], words[1:])
    args = _parser().parse_args(words)
    if args.command in ("hid-record", "hid-explore"):
        return run_hid_command(args)
    try:
        _configure_logging(args.verbose, getattr(args, "syslog", None))
    except OSError as problem:
        print(f"nuttrio: --syslog {args.syslog}: {problem.strerror or problem}", file=sys.stderr)
        return 2
    confdir: Path | None = args.nut_config
    if confdir is None and os.environ.get("NUT_CONFPATH"):
        confdir = Path(os.environ["NUT_CONFPATH"])
    role = args.role or Role.ATTACH
    # The no-config demo (``nuttrio`` or ``nuttrio --attach`` alone) shows its dashboard.
    demo = confdir is None and role is Role.ATTACH and not args.listen and not args.web
    web: list[tuple[str, int]] = [("127.0.0.1", DEFAULT_WEB_PORT)] if demo else args.web
    options = DaemonOptions(
        confdir=confdir,
        listen=tuple(args.listen),
        limits=ConnectionLimits(max_line=args.max_line),
        role=role,
        upssched=args.upssched,
        nut_drivers=frozenset(args.nut_driver),
        external_drivers=args.external_drivers,
        web=tuple(web),
        web_optional=demo,
        web_settings=WebSettings(history_hours=args.web_history),
        web_tls=args.web_tls,
        advertise=args.advertise,
    )
    status = 0
    try:
        if args.command == "cert":
            return run_cert_command(args)
        _check_upsmon_conf_given(args, options)
        if args.killpower_check:
            return tools.killpower_check(options)
        if args.shutdown_ups:
            return trio.run(tools.shutdown_ups, options, args.shutdown_ups)
        if args.command == "why":
            return trio.run(tools.why, options)
        if args.command == "notify-test":
            return trio.run(tools.notify_test, options)
        if args.command == "scan":
            return trio.run(tools.scan, list(args.ports))
        trio.run(_run, options)
    except* ConfigError as group:
        for exc in _leaves(group):
            print(f"nuttrio: configuration error: {exc}", file=sys.stderr)
        status = 2
    except* ListenError as group:
        for exc in _leaves(group):
            print(f"nuttrio: {exc}", file=sys.stderr)
        status = 2
    except* tools.ToolError as group:
        for exc in _leaves(group):
            print(f"nuttrio: {exc}", file=sys.stderr)
        status = 1
    except* OSError as group:
        for exc in _leaves(group):
            print(f"nuttrio: {exc}", file=sys.stderr)
        status = status or 1
    return status


def exit_with_main() -> None:
    """Run :func:`main` and exit with its status (the zipapp's entry point)."""
    sys.exit(main())


def _check_upsmon_conf_given(args: argparse.Namespace, options: DaemonOptions) -> None:
    """Refuse a one-shot command that reads upsmon.conf when there is no directory to read.

    Raises:
        ConfigError: Naming the command that was run.
    """
    reads_upsmon_conf = args.command in {name for name, _, _ in _SUBCOMMANDS}
    command = f"nuttrio {args.command}" if reads_upsmon_conf else None
    if args.killpower_check:
        command = "nuttrio --killpower-check"
    if command is not None and options.confdir is None:
        raise ConfigError(
            f"{command} needs a NUT configuration directory with upsmon.conf "
            "(--nut-config DIR or NUT_CONFPATH)"
        )


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    out: list[BaseException] = []
    for exc in group.exceptions:
        out.extend(_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return out


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
