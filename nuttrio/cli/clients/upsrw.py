"""``nuttrio upsrw``: NUT 2.8.0's upsrw, plus ``--json`` for the list and ``--password-file``."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypeVar

import trio

from ... import jsonshapes as js
from ...client import NutClient
from ...nutconf.common import atoi, strtol
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

PROG = "upsrw"

_Rows = TypeVar("_Rows", list[str], list[tuple[str, str]])

USAGE = f"""\
Network UPS Tools {PROG} {NUT_VERSION}

usage: {PROG} [-h]
       {PROG} [-s <variable>] [-u <username>] [-p <password>] [-w] [-t <timeout>] <ups>

Demo program to set variables within UPS hardware.

  -h            display this help text
  -s <variable>\tspecify variable to be changed
\t\tuse -s VAR=VALUE to avoid prompting for value
  -l            show all possible read/write variables.
  -u <username> set username for command authentication
  -p <password> set password for command authentication
  -w            wait for the completion of setting by the driver
                and return its actual result from the device
  -t <timeout>\tset a timeout when using -w (in seconds, default: 10)

  <ups>         UPS identifier - <upsname>[@<hostname>[:<port>]]

Call without -s to show all possible read/write variables (same as -l).

nuttrio additions:
  --password-file <file>  read the password from the first line of <file>
  --json                  list the variables as a JSON object (see docs/json.md)
{TLS_USAGE}"""


class _Lister:
    """The list of writable variables: each one's description, type and value."""

    def __init__(self, io: Stdio, client: NutClient, ups: str) -> None:
        self.io = io
        self.client = client
        self.ups = ups

    @staticmethod
    async def _get(call: Awaitable[str]) -> str | None:
        """GET VAR or GET DESC; ``None`` on any failure (as upsrw's get_data)."""
        try:
            return await nut_call(call)
        except UpscliError:
            return None

    async def _value(self, kind: str, var: str) -> str:
        value = await self._get(self.client.get_var(self.ups, var))
        if value is None:
            self.io.fatal(f"do_{kind}: can't get current value of {var}")
        return value

    async def description(self, var: str) -> str | None:
        """GET DESC; ``None`` if the server has none."""
        return await self._get(self.client.get_desc(self.ups, var))

    async def describe(self, var: str, desc: str | None) -> js.RwVariable:
        """One variable as upsrw reads it (GET TYPE, then by type), with its description."""
        try:
            words = await nut_call(self.client.get_type(self.ups, var))
        except UpscliError:
            return js.RwVariable(desc, None)
        is_enum = False
        unrecognized: list[str] = []
        for word in words:
            upper = word.upper()
            if upper == "ENUM":
                is_enum = True
            elif upper == "RANGE":
                return await self._range(desc, var, unrecognized)
            elif upper.startswith("STRING:"):
                length = strtol(word[7:])
                if is_enum:
                    return await self._enum(desc, var, "STRING", length, unrecognized)
                value = await self._value("string", var)
                return js.RwVariable(
                    desc, "STRING", value, maximum_length=length, unrecognized=tuple(unrecognized)
                )
            elif upper == "NUMBER":
                if is_enum:
                    return await self._enum(desc, var, "NUMBER", None, unrecognized)
                value = await self._value("number", var)
                return js.RwVariable(desc, "NUMBER", value, unrecognized=tuple(unrecognized))
            elif upper != "RW":
                unrecognized.append(word)
        if is_enum:
            return await self._enum(desc, var, None, None, unrecognized)
        return js.RwVariable(desc, js.UNKNOWN_TYPE, unrecognized=tuple(unrecognized))

    async def _listing(self, call: Awaitable[_Rows]) -> _Rows:
        """LIST ENUM or LIST RANGE; a failure ends upsrw with ``Error: ...``."""
        try:
            return await nut_call(call)
        except UpscliError as exc:
            self.io.fatal(f"Error: {exc.message}")

    async def _enum(
        self,
        desc: str | None,
        var: str,
        value_type: str | None,
        length: int | None,
        unrecognized: list[str],
    ) -> js.RwVariable:
        value = await self._value("enum", var)
        options = tuple(await self._listing(self.client.list_enum(self.ups, var)))
        return js.RwVariable(
            desc,
            "ENUM",
            value,
            maximum_length=length if value_type == "STRING" else None,
            value_type=value_type,
            options=options,
            unrecognized=tuple(unrecognized),
        )

    async def _range(self, desc: str | None, var: str, unrecognized: list[str]) -> js.RwVariable:
        value = await self._value("range", var)
        ranges = tuple(
            (atoi(low), atoi(high))
            for low, high in await self._listing(self.client.list_range(self.ups, var))
        )
        return js.RwVariable(
            desc,
            "RANGE",
            value,
            value_type="NUMBER",
            ranges=ranges,
            unrecognized=tuple(unrecognized),
        )


def _header(var: str, desc: str | None) -> str:
    """The first lines of a variable in upsrw's text layout (printed before its type)."""
    return f"[{var}]\n{desc or 'Description unavailable'}\n"


def _plain(item: js.RwVariable) -> str:
    """The rest of a variable in upsrw's text layout: its type and value."""
    lines = [f"Type: {word} (unrecognized)" for word in item.unrecognized]
    if item.type is None:
        lines.append("Unknown type")
    elif item.type == "STRING":
        lines += ["Type: STRING", f"Maximum length: {item.maximum_length}", f"Value: {item.value}"]
    elif item.type == "NUMBER":
        lines += ["Type: NUMBER", f"Value: {item.value}"]
    elif item.type == "ENUM":
        lines.append(f"Type: ENUM {item.value_type}" if item.value_type else "Type: ENUM")
        if item.value_type == "STRING":
            lines.append(f"Maximum length: {item.maximum_length}")
        lines += [
            f'Option: "{o}"' + (" SELECTED" if o == item.value else "") for o in item.options or ()
        ]
    elif item.type == "RANGE":
        current = atoi(item.value or "")
        lines.append("Type: RANGE NUMBER")
        lines += [
            f'Option: "{low}-{high}"' + (" SELECTED" if low <= current <= high else "")
            for low, high in item.ranges or ()
        ]
    return "".join(f"{line}\n" for line in lines) + "\n"


async def _print_rwlist(io: Stdio, client: NutClient, ups: str, *, json: bool) -> None:
    try:
        names = list(await nut_call(client.list_rw(ups)))
    except UpscliError as exc:
        if exc.unknown_command:
            io.fatal("Error: upsd is too old to support this query")
        io.fatal(f"Error: {exc.message}")
    lister = _Lister(io, client, ups)
    described: dict[str, js.RwVariable] = {}
    for name in names:
        desc = await lister.description(name)
        if not json:
            io.write(_header(name, desc))
        described[name] = item = await lister.describe(name, desc)
        if not json:
            io.write(_plain(item))
    if json:
        io.write(js.dumps(js.RwList(described)))


async def _setvar(
    io: Stdio,
    client: NutClient,
    ups: str,
    setvar: str,
    credentials: Credentials,
    tracking: Tracking,
) -> None:
    username = credentials.ask_username(io, eof_fatal=False)
    password = credentials.ask_password(io)
    var, eq, value = setvar.partition("=")
    if not eq:
        io.write(f"Enter new value for {var}: ")
        line = io.readline() or ""
        value = line[:-1]
    await login(io, client, username, password)
    if "." not in var:
        io.fatal("Error: old variable names are not supported")
    await send_action(
        io, client, lambda: client.set_var(ups, var, value), tracking, "Set variable failed"
    )


def main(io: Stdio, argv: list[str]) -> int:
    """Run upsrw with the arguments after its name; returns the exit status."""
    setvar: str | None = None
    json = False
    credentials = Credentials()
    tracking = Tracking("set variable")
    tls = TlsOptions()
    long = {"json": False, "password-file": True, **TLS_LONG}
    opts = GetOpt(io, PROG, argv, "+hls:p:t:u:wV", long)
    for letter, value in opts:
        if credentials.take(io, letter, value) or tls.take(letter, value):
            continue
        if letter == "s":
            setvar = value
        elif letter == "l":
            if setvar is not None:
                io.ewrite("Listing mode requested, overriding setvar specified earlier!\n")
                setvar = None
        elif letter == "t":
            tracking.timeout = parse_timeout(io, value or "")
        elif letter == "w":
            tracking.enabled = True
        elif letter == "json":
            json = True
        elif letter == "V":
            io.write(f"Network UPS Tools {PROG} {NUT_VERSION}\n")
            raise Exit(0)
        else:
            io.write(USAGE)
            raise Exit(0)
    if not opts.rest:
        io.write(USAGE)
        raise Exit(0)
    name = splitname(io, opts.rest[0])
    if name is None:
        io.fatal("Error: invalid UPS definition.  Required format: upsname[@hostname[:port]]")
    tls.require(io)
    trio.run(_session, io, name, setvar, json, credentials, tracking)
    return 0


async def _session(
    io: Stdio,
    name: tuple[str, str, int],
    setvar: str | None,
    json: bool,
    credentials: Credentials,
    tracking: Tracking,
) -> None:
    ups, host, port = name
    async with session(io, host, port, tryssl=False) as client:
        if setvar is not None:
            await _setvar(io, client, ups, setvar, credentials, tracking)
        else:
            await _print_rwlist(io, client, ups, json=json)
