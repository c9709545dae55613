"""``nuttrio scan``: the ports where a UPS answers, found with read-only requests only."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from nuttrio.hw.scan import Found, probe, report, ups_conf_section
from nuttrio.hw.sim_apcsmart import ApcModel
from nuttrio.hw.sim_megatec import MegatecModel, MegatecState
from nuttrio.hw.sim_pty import PtySimulator
from nuttrio.nutconf.ups_conf import load_ups_conf

REPO = Path(__file__).resolve().parents[1]


def test_scan_lists_the_upses_with_sections_to_paste(tmp_path: Path) -> None:
    megatec, apc, silent = MegatecModel(), ApcModel(), MegatecModel()
    with (
        PtySimulator(megatec.session, [tmp_path / "ttyQ"]) as q_sim,
        PtySimulator(apc.session, [tmp_path / "ttyA"]) as a_sim,
        PtySimulator(silent.session, [tmp_path / "ttyN"]) as n_sim,
    ):
        n_sim.faults.silent = True
        ports = [str(tmp_path / name) for name in ("ttyQ", "ttyA", "ttyN", "ttyGone")]
        done = subprocess.run(
            [sys.executable, "-m", "nuttrio", "scan", *ports],
            capture_output=True,
            text=True,
            timeout=30,
            cwd=REPO,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        out = done.stdout
        assert f"# {ports[0]}: Megatec/Q1 UPS (SimQ1 1000)" in out
        assert f"# {ports[1]}: APC Smart UPS (Smart-UPS 1000)" in out
        assert f"# {ports[2]}: no UPS answered" in out
        assert f"# {ports[3]}: cannot open {ports[3]}" in out
        conf = tmp_path / "ups.conf"
        conf.write_text(out)
        sections, _ = load_ups_conf(conf)
        assert [(s.name, s.driver, s.port) for s in sections] == [
            ("ups", "nutdrv_qx", ports[0]),
            ("ups2", "apcsmart", ports[1]),
        ]
        # Only queries reached the UPSes; their state is untouched.
        assert set(q_sim.session().received) <= {"Y", "Q1", "I"}
        assert megatec.state == MegatecState()
        assert set(a_sim.session().received) <= {"Y", "\x01", "n", "Q", "1"}
        assert apc.shutdowns == []


def test_no_ups_exit_status(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "nuttrio", "scan", str(tmp_path / "none")],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=REPO,
        check=False,
    )
    assert done.returncode == 1
    assert "cannot open" in done.stdout


async def test_probe_and_sections_in_process(tmp_path: Path) -> None:
    model = ApcModel()
    with PtySimulator(model.session, [tmp_path / "ttyA"]):
        found = await probe(str(tmp_path / "ttyA"))
    assert found == Found(
        str(tmp_path / "ttyA"), "apcsmart", "APC Smart", "Smart-UPS 1000", "NS0123456789"
    )
    assert ups_conf_section("apc", found).splitlines() == [
        "[apc]",
        "\tdriver = apcsmart",
        f'\tport = "{tmp_path / "ttyA"}"',
        '\tdesc = "Smart-UPS 1000 NS0123456789"',
    ]
    text, count = report([("/dev/ttyS9", None)])
    assert (text, count) == ("# /dev/ttyS9: no UPS answered\n", 0)
