"""Build ``nuttrio.pyz``: one file to copy to an appliance, ``./nuttrio.pyz --primary`` runs.

A zipapp (the standard library's :mod:`zipapp`) of this checkout's ``nuttrio`` package and
its runtime dependencies as installed in the running Python (pyproject's
``dependencies``, followed recursively through their metadata, environment markers
honoured). Nothing is downloaded. Every dependency must be pure Python (a compiled module
cannot be imported from a zip file); the build refuses one that is not, except those in
``LEFT_OUT``: compiled packages nuttrio imports only for an optional feature, which the
zipapp then does without (it says so when the feature is asked for).

    python tools/build_pyz.py [-o nuttrio.pyz] [--python "/usr/bin/env python3"]

Exit status 0 = built (the path and size are printed), 1 = a dependency is missing or
compiled.
"""

from __future__ import annotations

import argparse
import compileall
import importlib.metadata as metadata
import shutil
import sys
import tempfile
import tomllib
import zipapp
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
_COMPILED = (".so", ".pyd", ".dylib")
#: Compiled dependencies left out, with what the zipapp lacks without them.
LEFT_OUT = {
    "cryptography": "`nuttrio cert` and the certificate-expiry warning",
}


class BuildError(Exception):
    """A dependency cannot go into the zip file."""


def _requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(text) for text in project["dependencies"]]


def _closure(roots: list[Requirement]) -> dict[str, metadata.Distribution]:
    """Every installed distribution the requirements need, by normalised name."""
    found: dict[str, metadata.Distribution] = {}
    todo = list(roots)
    while todo:
        req = todo.pop()
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        key = req.name.lower().replace("_", "-")
        if key in found or key in LEFT_OUT:
            continue
        try:
            dist = metadata.distribution(req.name)
        except metadata.PackageNotFoundError:
            raise BuildError(f"{req.name} is not installed (pip install {req})") from None
        found[key] = dist
        todo.extend(Requirement(text) for text in dist.requires or ())
    return found


def _copy_distribution(dist: metadata.Distribution, into: Path) -> None:
    for file in dist.files or ():
        parts = Path(str(file)).parts
        if ".." in parts or "__pycache__" in parts or str(file).endswith(".pyc"):
            continue
        if str(file).endswith(_COMPILED):
            raise BuildError(f"{dist.metadata['Name']} has a compiled module: {file}")
        source = Path(str(dist.locate_file(file)))
        if source.is_file():
            target = into / file
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def build(output: Path, interpreter: str) -> Path:
    """Write the zipapp to ``output``; returns it.

    Raises:
        BuildError: If a dependency is missing or compiled.
    """
    with tempfile.TemporaryDirectory() as tmp:
        staging = Path(tmp)
        for dist in _closure(_requirements()).values():
            _copy_distribution(dist, staging)
        shutil.copytree(
            ROOT / "nuttrio", staging / "nuttrio", ignore=shutil.ignore_patterns("__pycache__")
        )
        # .pyc files beside the sources (zipimport reads those, never __pycache__): without
        # them every start compiles every module again.
        compileall.compile_dir(staging, quiet=1, legacy=True)
        for name, feature in LEFT_OUT.items():
            print(f"build_pyz: {name} left out (compiled): no {feature}", file=sys.stderr)
        zipapp.create_archive(
            staging,
            output,
            interpreter=interpreter,
            main="nuttrio.cli.main:exit_with_main",
            compressed=True,
        )
    return output


def main() -> int:
    """Build it from the command line; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-o", "--output", type=Path, default=ROOT / "nuttrio.pyz")
    parser.add_argument("--python", default="/usr/bin/env python3", help="the #! interpreter")
    args = parser.parse_args()
    try:
        path = build(args.output, args.python)
    except BuildError as exc:
        print(f"build_pyz: {exc}", file=sys.stderr)
        return 1
    print(f"{path}: {path.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
