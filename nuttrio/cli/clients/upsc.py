"""``nuttrio upsc``: NUT 2.8.0's upsc, plus 2.8.5's ``-j`` JSON output."""

from __future__ import annotations

import json as _json

import trio

from ... import jsonshapes as js
from ...client import NutClient
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
    splitaddr,
    splitname,
)

__all__ = ["main"]

PROG = "upsc"

USAGE = f"""\
Network UPS Tools upsc {NUT_VERSION}

usage: {PROG} -l | -L [<hostname>[:port]]
       {PROG} <ups> [<variable>]
       {PROG} -c <ups>

Demo program to display UPS variables.

First form (lists UPSes):
  -l         - lists each UPS on <hostname>, one per line.
  -L         - lists each UPS followed by its description (from ups.conf).
               Default hostname: localhost

Second form (lists variables and values):
  <ups>      - upsd server, <upsname>[@<hostname>[:<port>]] form
  <variable> - optional, display this variable only.
               Default: list all variables for <host>

Third form (lists clients connected to a device):
  -c         - lists each client connected on <ups>, one per line.
  <ups>      - upsd server, <upsname>[@<hostname>[:<port>]] form

nuttrio additions:
  -j, --json - display output in JSON format (the shapes of NUT 2.8.5's upsc -j)
{TLS_USAGE}"""

OLD_UPSD = "upsd is too old to support this query"


class _Upsc:
    """One run: the options read, the connection, the output mode."""

    def __init__(self, io: Stdio, *, json: bool) -> None:
        self.io = io
        self.json = json

    def fail(self, message: str, *, embedded: bool = False) -> None:
        """Fail as upsc does; with ``-j`` the JSON error object comes first on stdout.

        ``embedded``: the error closes an object already opened (``-j UPS``).
        """
        if self.json:
            text = _json.dumps(message, ensure_ascii=False)
            self.io.write(f'  "error": {text}\n}}\n' if embedded else f'{{"error": {text}}}\n')
        self.io.fatal(f"Error: {message}")

    def list_error(self, exc: UpscliError, *, embedded: bool = False) -> None:
        self.fail(OLD_UPSD if exc.unknown_command else exc.message, embedded=embedded)

    async def printvar(self, client: NutClient, ups: str, var: str) -> None:
        if "." not in var:
            self.fail("old-style variable names are not supported")
        try:
            value = await nut_call(client.get_var(ups, var))
        except UpscliError as exc:
            self.fail(
                "variable unknown (old upsd detected)" if exc.unknown_command else exc.message
            )
            return
        self.io.write(js.dumps(js.VarValue(value)) if self.json else f"{value}\n")

    async def list_vars(self, client: NutClient, ups: str) -> None:
        try:
            values = await nut_call(client.list_var(ups))
        except UpscliError as exc:
            if self.json:
                self.io.write("{\n")
            self.list_error(exc, embedded=True)
            return
        if self.json:
            self.io.write(js.dumps(js.Variables(values)))
            return
        self.io.write("".join(f"{name}: {value}\n" for name, value in values.items()))

    async def list_upses(self, client: NutClient, *, verbose: bool) -> None:
        try:
            upses = await nut_call(client.list_ups())
        except UpscliError as exc:
            self.list_error(exc)
            return
        if self.json:
            shape = js.UpsDescriptions(upses) if verbose else js.UpsList(tuple(upses))
            self.io.write(js.dumps(shape))
        elif verbose:
            self.io.write("".join(f"{name}: {desc}\n" for name, desc in upses.items()))
        else:
            self.io.write("".join(f"{name}\n" for name in upses))

    async def list_clients(self, client: NutClient, ups: str) -> None:
        try:
            addresses = await nut_call(client.list_client(ups))
        except UpscliError as exc:
            self.list_error(exc)
            return
        if self.json:
            self.io.write(js.dumps(js.ClientList(tuple(addresses))))
        else:
            self.io.write("".join(f"{address}\n" for address in addresses))


def main(io: Stdio, argv: list[str]) -> int:
    """Run upsc with the arguments after its name; returns the exit status."""
    varlist = clientlist = verbose = json = False
    tls = TlsOptions()
    opts = GetOpt(io, PROG, argv, "+hlLcVj", {"json": False, **TLS_LONG})
    for letter, value in opts:
        if tls.take(letter, value):
            continue
        if letter in ("l", "L"):
            varlist = True
            verbose = verbose or letter == "L"
        elif letter == "c":
            clientlist = True
        elif letter in ("j", "json"):
            json = True
        elif letter == "V":
            io.fatal(f"Network UPS Tools upscmd {NUT_VERSION}", 0)
        else:
            io.write(USAGE)
            raise Exit(0)
    rest = opts.rest
    first = rest[0] if rest else None
    if varlist:
        address = splitaddr(io, first if first is not None else "localhost")
        if address is None:
            io.fatal("Error: invalid hostname.\nRequired format: [hostname[:port]]")
        ups, (host, port) = "", address
    else:
        name = splitname(io, first)
        if name is None:
            io.fatal("Error: invalid UPS definition.\nRequired format: upsname[@hostname[:port]]")
        ups, host, port = name
    run = _Upsc(io, json=json)
    tls.require(io)
    trio.run(
        _session,
        run,
        host,
        port,
        ups,
        rest[1] if len(rest) > 1 else None,
        varlist,
        clientlist,
        verbose,
    )
    return 0


async def _session(
    run: _Upsc,
    host: str,
    port: int,
    ups: str,
    var: str | None,
    varlist: bool,
    clientlist: bool,
    verbose: bool,
) -> None:
    """Connect and do the one query; the connection is closed (LOGOUT) in every case."""
    async with session(run.io, host, port, tryssl=True) as client:
        if varlist:
            await run.list_upses(client, verbose=verbose)
        elif clientlist:
            await run.list_clients(client, ups)
        elif var is not None:
            await run.printvar(client, ups, var)
        else:
            await run.list_vars(client, ups)
