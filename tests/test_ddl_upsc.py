"""For every real UPS dump of the NUT DDL, upsc prints the same against nuttrio as against
upsd + dummy-ups loading the same file (driver.* lines aside, as the issue allows)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .nuttrio_proc import NuttrioProcess
from .realnut import (
    ddl_ups_name,
    ddl_ups_sections,
    free_port,
    require_ddl,
    upsc_dump_many,
    write_nut_config,
)

pytestmark = pytest.mark.realnut


def without_driver_lines(lines: list[str]) -> list[str]:
    return [line for line in lines if not line.startswith("driver.")]


def test_upsc_output_matches_for_every_ddl_dump(
    ddl_real_upsc: dict[Path, list[str]], tmp_path: Path
) -> None:
    files = require_ddl()
    port = free_port()
    confdir = write_nut_config(tmp_path / "conf", port=port, ups=ddl_ups_sections(files))
    with NuttrioProcess(["--nut-config", str(confdir), "--listen", f"127.0.0.1:{port}"]):
        ours = upsc_dump_many([f"{ddl_ups_name(i)}@127.0.0.1:{port}" for i in range(len(files))])
    mismatches = []
    for i, path in enumerate(files):
        theirs = without_driver_lines(ddl_real_upsc[path])
        mine = without_driver_lines(ours[f"{ddl_ups_name(i)}@127.0.0.1:{port}"])
        assert theirs, f"upsd printed nothing for {path.name}"
        if mine != theirs:
            diff = sorted(set(mine) ^ set(theirs))[:6]
            mismatches.append(f"{path.relative_to(path.parents[1])}: {diff}")
    assert not mismatches, f"{len(mismatches)} of {len(files)} differ:\n" + "\n".join(
        mismatches[:20]
    )
    print(f"upsc output identical for {len(files)} DDL dumps")
