"""``nuttrio upscmd``: NUT 2.8.0's upscmd, plus ``--json`` for ``-l`` and ``--password-file``."""

from __future__ import annotations

import trio

from ... import jsonshapes as js
from ...client import NutClient
from ._admin import Credentials, Tracking, login, parse_timeout, send_action
from ._base import (
    NUT_VERSION,
    TLS_LONG,
    TLS_USAGE,
    Exit,
    GetOpt,
    Stdio,
    TlsOptions,
    UpscliError,
    nut_call,
    session,
    splitname,
)

__all__ = ["main"]

PROG = "upscmd"

USAGE = f"""\
Network UPS Tools upscmd {NUT_VERSION}

usage: {PROG} [-h]
       {PROG} [-l <ups>]
       {PROG} [-u <username>] [-p <password>] [-w] [-t <timeout>] <ups> <command> [<value>]

Administration program to initiate instant commands on UPS hardware.

  -h\t\tdisplay this help text
  -l <ups>\tshow available commands on UPS <ups>
  -u <username>\tset username for command authentication
  -p <password>\tset password for command authentication
  -w            wait for the completion of command by the driver
                and return its actual result from the device
  -t <timeout>\tset a timeout when using -w (in seconds, default: 10)

  <ups>\t\tUPS identifier - <upsname>[@<hostname>[:<port>]]
  <command>\tValid instant command - test.panel.start, etc.
  [<value>]\tAdditional data for command - number of seconds, etc.

nuttrio additions:
  --password-file <file>  read the password from the first line of <file>
  --json                  with -l: the commands as a JSON object name -> description
{TLS_USAGE}"""


def _usage(io: Stdio) -> None:
    io.write(USAGE)
    raise Exit(0)


async def _listcmds(io: Stdio, client: NutClient, ups: str, *, json: bool) -> None:
    """``-l``: the commands, then each one's description (the name alone if none)."""
    try:
        names = await nut_call(client.list_cmd(ups))
    except UpscliError as exc:
        if exc.unknown_command:
            io.fatal("Error: upsd is too old to support this query")
        io.fatal(f"Error: {exc.message}")
    described: dict[str, str | None] = {}
    for name in names:
        try:
            described[name] = await nut_call(client.get_cmddesc(ups, name))
        except UpscliError:
            described[name] = None
    if json:
        io.write(js.dumps(js.CommandList(described)))
        return
    io.write(f"Instant commands supported on UPS [{ups}]:\n\n")
    for name, desc in described.items():
        io.write(f"{name}\n" if desc is None else f"{name} - {desc}\n")


def main(io: Stdio, argv: list[str]) -> int:
    """Run upscmd with the arguments after its name; returns the exit status."""
    cmdlist = json = False
    credentials = Credentials()
    tracking = Tracking("command")
    tls = TlsOptions()
    long = {"json": False, "password-file": True, **TLS_LONG}
    opts = GetOpt(io, PROG, argv, "+lhu:p:t:wV", long)
    for letter, value in opts:
        if credentials.take(io, letter, value) or tls.take(letter, value):
            continue
        if letter == "l":
            cmdlist = True
        elif letter == "t":
            tracking.timeout = parse_timeout(io, value or "")
        elif letter == "w":
            tracking.enabled = True
        elif letter == "json":
            json = True
        elif letter == "V":
            io.fatal(f"Network UPS Tools upscmd {NUT_VERSION}", 0)
        else:
            _usage(io)
    rest = opts.rest
    if not rest:
        _usage(io)
    name = splitname(io, rest[0])
    if name is None:
        io.fatal("Error: invalid UPS definition.  Required format: upsname[@hostname[:port]]")
    tls.require(io)
    trio.run(_session, io, name, rest[1:], cmdlist, json, credentials, tracking)
    return 0


async def _session(
    io: Stdio,
    name: tuple[str, str, int],
    args: list[str],
    cmdlist: bool,
    json: bool,
    credentials: Credentials,
    tracking: Tracking,
) -> None:
    ups, host, port = name
    async with session(io, host, port, tryssl=False) as client:
        if cmdlist:
            await _listcmds(io, client, ups, json=json)
            return
        if not args:
            _usage(io)
        command = args[0]
        if "." not in command:
            io.fatal("Error: old command names are not supported")
        username = credentials.ask_username(io, eof_fatal=True)
        password = credentials.ask_password(io)
        await login(io, client, username, password)
        param = args[1] if len(args) > 1 else None
        await send_action(
            io,
            client,
            lambda: client.instcmd(ups, command, param),
            tracking,
            "Instant command failed",
        )
