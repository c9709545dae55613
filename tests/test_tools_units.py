"""The pieces of nuttrio's client tools that need no server: options, addresses, JSON, CLI.

What NUT prints for these is pinned in tests/test_tools_diff.py against Debian's tools;
here are the rules themselves (glibc getopt, libupsclient's address splitting, NUT 2.8.5's
JSON layout), the console scripts and the ``nuttrio`` command's help.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import trio

import nuttrio
from nuttrio import jsonshapes as js
from nuttrio.cli import clients
from nuttrio.cli.clients._base import GetOpt, Stdio, disconnect, splitaddr, splitname
from nuttrio.cli.clients.upslog import DEFAULT_LOGFORMAT, Monitored, Options, _Loop, compile_format

ROOT = Path(__file__).resolve().parents[1]


def _stdio() -> Stdio:
    return Stdio(io.BytesIO(), io.BytesIO(), io.BytesIO(), tty=None)


def _getopt(args: list[str], optstring: str = "+ab:c", long: dict[str, bool] | None = None):
    stdio = _stdio()
    opts = GetOpt(stdio, "prog", args, optstring, long)
    seen = list(opts)
    assert isinstance(stdio.err, io.BytesIO)
    return seen, opts.rest, stdio.err.getvalue().decode()


@pytest.mark.parametrize(
    ("args", "seen", "rest", "err"),
    [
        (["-a", "-b", "x", "op", "-c"], [("a", None), ("b", "x")], ["op", "-c"], ""),
        (["-acbx"], [("a", None), ("c", None), ("b", "x")], [], ""),
        (["-z", "-a"], [("?", None), ("a", None)], [], "prog: invalid option -- 'z'\n"),
        (["-b"], [("?", None)], [], "prog: option requires an argument -- 'b'\n"),
        (["--", "-a"], [], ["-a"], ""),
        (["-", "-a"], [], ["-", "-a"], ""),
        (
            ["--ab"],
            [("?", None), ("a", None), ("?", None)],
            [],
            "prog: invalid option -- '-'\nprog: option requires an argument -- 'b'\n",
        ),
    ],
)
def test_getopt_is_glibc_with_plus(args, seen, rest, err) -> None:
    assert _getopt(args) == (seen, rest, err)


def test_getopt_long_options_are_only_the_named_ones() -> None:
    long = {"json": False, "password-file": True}
    assert _getopt(["--json", "--password-file", "f", "--password-file=g", "x"], long=long)[:2] == (
        [("json", None), ("password-file", "f"), ("password-file", "g")],
        ["x"],
    )
    assert _getopt(["--password-file"], long=long)[2] == (
        "prog: option '--password-file' requires an argument\n"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ups", ("ups", "localhost", 3493)),
        ("ups@host", ("ups", "host", 3493)),
        ("ups@host:1234", ("ups", "host", 1234)),
        ("ups@host:12ab", ("ups", "host", 12)),
        ("ups@[::1]:3494", ("ups", "::1", 3494)),
        ("ups@[::1]", ("ups", "::1", 3493)),
        ("ups@[::1]x", ("ups", "::1", 3493)),
        ("@host", ("host", "host", 3493)),  # strtok skips the leading '@'
        ("ups@host:0", None),
        ("ups@host:65536", None),
        ("ups@[::1", None),
        ("", None),
        (None, None),
    ],
)
def test_splitname_as_libupsclient(text, expected) -> None:
    assert splitname(_stdio(), text) == expected


def test_splitaddr_messages() -> None:
    stdio = _stdio()
    assert splitaddr(stdio, "host:") is None
    assert isinstance(stdio.err, io.BytesIO)
    assert stdio.err.getvalue() == b"upscli_splitaddr: no port specified after ':' separator\n"


def test_upslog_format_compiles_as_nut() -> None:
    parts = compile_format("a%%b%VAR x.y%%TIME @H%%nope%%HOSTNAME% %")
    literal = [(None, "a"), (None, "%"), (None, "b")]
    assert parts[:3] == literal
    names = [p[0].__name__ if p[0] else p[1] for p in parts[3:]]
    assert names == ["_var", "_time", "INVALID", "escape", " ", "INVALID"]
    assert [p[1] for p in parts[3:5]] == ["x.y", "@H"]
    assert len([p for p in compile_format(DEFAULT_LOGFORMAT) if p[0] is not None]) == 7


# -- JSON ------------------------------------------------------------------------------


def test_json_layout_is_upsc_285s() -> None:
    assert js.dumps(js.UpsList(("a", "b"))) == '[\n  "a",\n  "b"\n]\n'
    assert js.dumps(js.UpsList(())) == "[\n\n]\n"
    assert js.dumps(js.Variables({})) == "{\n\n}\n"
    assert js.dumps(js.Variables({"k": 'q"\\\t\x01é'})) == '{\n  "k": "q\\"\\\\\\t\\u0001é"\n}\n'
    assert js.dumps(js.VarValue("OL")) == '"OL"\n'


def test_json_shapes_round_trip() -> None:
    item = js.RwVariable("Desc", "ENUM", "x", 8, "STRING", options=("x", "y"))
    assert json.loads(js.dumps(js.RwList({"a.b": item}))) == {
        "a.b": {
            "description": "Desc",
            "type": "ENUM",
            "value": "x",
            "maximum_length": 8,
            "value_type": "STRING",
            "options": ["x", "y"],
        }
    }
    ranged = js.RwVariable(None, "RANGE", "5", value_type="NUMBER", ranges=((1, 9),))
    assert js.unstructure(ranged) == {
        "description": None,
        "type": "RANGE",
        "value": "5",
        "value_type": "NUMBER",
        "ranges": [[1, 9]],
    }
    record = js.LogRecord("2026-01-01T00:00:00+00:00", 1, "u@h", {"a.b": None})
    line = js.dumps(record, lines=True)
    assert line.endswith("}\n")
    assert "\n" not in line[:-1]
    assert json.loads(line) == {
        "time": record.time,
        "etime": 1,
        "ups": "u@h",
        "values": {"a.b": None},
    }
    assert js.unstructure(js.CommandList({"a": None})) == {"a": None}
    with pytest.raises(TypeError):
        js.unstructure(object())


# -- the command line ------------------------------------------------------------------


def test_console_scripts_are_declared() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    for name in clients.TOOLS:
        target = scripts[f"nuttrio-{name}"]
        module, func = target.split(":")
        assert module == "nuttrio.cli.clients"
        assert callable(getattr(clients, func))


@pytest.mark.parametrize("name", clients.TOOLS)
def test_installed_console_scripts_run_the_tools(name: str) -> None:
    """The installed ``nuttrio-upsc``... executables print what ``nuttrio upsc -h`` does."""
    import shutil

    script = shutil.which(f"nuttrio-{name}")
    if script is None:
        pytest.skip(f"nuttrio-{name} is not installed (pip install -e . makes it)")
    installed = subprocess.run([script, "-h"], capture_output=True, text=True)
    module = subprocess.run(
        [sys.executable, "-m", "nuttrio", name, "-h"], capture_output=True, text=True, cwd=ROOT
    )
    assert installed.stdout.startswith(f"Network UPS Tools {name} 2.8.0")
    assert (installed.returncode, installed.stdout, installed.stderr) == (
        module.returncode,
        module.stdout,
        module.stderr,
    )


def test_nuttrio_help_lists_the_tools_and_dispatches() -> None:
    env_python = [sys.executable, "-m", "nuttrio"]
    helped = subprocess.run(
        [*env_python, "--help"], capture_output=True, text=True, check=True, cwd=ROOT
    )
    for name in clients.TOOLS:
        assert f"    {name}" in helped.stdout
    version = subprocess.run(
        [*env_python, "upsrw", "-V"], capture_output=True, check=False, cwd=ROOT
    )
    assert (version.returncode, version.stdout) == (0, b"Network UPS Tools upsrw 2.8.0\n")
    script = "import sys; from nuttrio.cli.clients import upsc_main; sys.exit(upsc_main())"
    bad = subprocess.run(
        [sys.executable, "-c", script, "-l", "127.0.0.1:"],
        capture_output=True,
        check=False,
        cwd=ROOT,
    )
    assert bad.returncode == 1
    assert bad.stderr.endswith(b"Error: invalid hostname.\nRequired format: [hostname[:port]]\n")


async def _count_connections(target_port: int, accepted: list[int], task_status) -> None:
    """A TCP relay to the server on ``target_port`` that counts the connections it takes."""

    async def relay(client: trio.SocketStream) -> None:
        accepted.append(1)
        server = await trio.open_tcp_stream("127.0.0.1", target_port)
        async with client, server, trio.open_nursery() as nursery:

            async def pipe(src: trio.SocketStream, dst: trio.SocketStream) -> None:
                async for chunk in src:
                    await dst.send_all(chunk)
                nursery.cancel_scope.cancel()

            nursery.start_soon(pipe, client, server)
            nursery.start_soon(pipe, server, client)

    await trio.serve_tcp(relay, 0, host="127.0.0.1", task_status=task_status)


@pytest.mark.parametrize(("interval", "connections"), [(30, 1), (31, 3)])
async def test_upslog_keeps_its_connection_only_up_to_30_seconds(interval, connections) -> None:
    # upslog.c: above 30 s between lines it disconnects after each line, and connects again.
    options = nuttrio.DaemonOptions(listen=(("127.0.0.1", 0),))
    async with nuttrio.open_daemon(options) as daemon, trio.open_nursery() as nursery:
        accepted: list[int] = []
        listeners = await nursery.start(_count_connections, daemon.addresses[0][1], accepted)
        port = listeners[0].socket.getsockname()[1]
        target = Monitored(f"sim@127.0.0.1:{port}", "-", "sim", "127.0.0.1", port)
        target.logfile = io.BytesIO()
        loop = _Loop(
            _stdio(),
            Options([target], interval=interval),
            print,
            compile_format("%VAR ups.status%"),
        )
        for _ in range(3):
            await loop.one_pass()
        assert target.logfile.getvalue() == b"OL\nOL\nOL\n"
        assert len(accepted) == connections
        await disconnect(target.client)
        nursery.cancel_scope.cancel()


def test_docs_json_md_describes_every_shape() -> None:
    """docs/json.md is the schema: every class jsonshapes converts has its section there."""
    doc = (Path(__file__).parent.parent / "docs" / "json.md").read_text()
    missing = [cls.__name__ for cls in js._CONVERTERS if f"`{cls.__name__}`" not in doc]
    assert missing == []
