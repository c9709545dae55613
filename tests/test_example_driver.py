"""examples/json_file_driver.py: a driver of your own, registered and served over NUT's protocol."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from nuttrio.client import NutClient, NutError, open_nut_client
from nuttrio.daemon import DaemonOptions, open_daemon
from nuttrio.hw.base import DRIVERS

from .helpers import until

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "json_file_driver.py"


@pytest.fixture
def json_driver(monkeypatch):
    """Import the example (it registers ``json-file``); unregister it afterwards."""
    monkeypatch.delitem(sys.modules, "json_file_driver", raising=False)
    spec = importlib.util.spec_from_file_location("json_file_driver", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert "json-file" in DRIVERS
    yield module
    del DRIVERS["json-file"]


async def _status(nut: NutClient) -> str:
    try:
        return await nut.get_var("myups", "ups.status")
    except NutError as exc:
        return f"ERR {exc.code}"


async def _until(nut: NutClient, wanted: str) -> None:
    async def reached() -> bool:
        return await _status(nut) == wanted

    await until(reached, 10, 0.1)  # real time: the file is polled


def test_the_example_is_under_40_lines():
    assert len(EXAMPLE.read_text().splitlines()) < 40


async def test_a_json_file_ups_is_served_and_goes_stale_without_its_file(tmp_path, json_driver):
    state = tmp_path / "myups.json"
    state.write_text(json.dumps({"ups.status": "OL", "battery.charge": 97}))
    (tmp_path / "ups.conf").write_text("[myups]\n\tdriver = json-file\n\tport = myups.json\n")
    (tmp_path / "upsd.conf").write_text("")
    (tmp_path / "upsd.users").write_text("")
    for path in tmp_path.iterdir():
        path.chmod(0o600)
    options = DaemonOptions(confdir=tmp_path, listen=[("127.0.0.1", 0)])
    async with open_daemon(options) as daemon:
        assert isinstance(daemon.driver("myups"), json_driver.JsonFileUps)
        async with open_nut_client(*daemon.addresses[0]) as nut:
            assert await nut.list_var("myups") == {"battery.charge": "97", "ups.status": "OL"}
            state.write_text(json.dumps({"ups.status": "OB LB", "battery.charge": 9}))
            await _until(nut, "OB LB")
            assert await nut.get_var("myups", "battery.charge") == "9"
            state.unlink()
            await _until(nut, "ERR DATA-STALE")
            state.write_text(json.dumps({"ups.status": "OL"}))
            await _until(nut, "OL")
            with pytest.raises(NutError, match="VAR-NOT-SUPPORTED"):
                await nut.get_var("myups", "battery.charge")  # gone from the file: gone
