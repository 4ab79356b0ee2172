"""Read the lab's Python packages' pyproject.toml files for the image build.

`requirements.py FILE...` prints the third-party requirements, one per line: the pins live
in each package's pyproject.toml and nowhere else, so the native venv and the Docker images
install the same versions. The lab's own packages (reviewlab-*) are left out.
`requirements.py --packages FILE...` prints each import package's directory, so the image
can install the lab's packages (editable) before their source is copied in.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path
from typing import Any

LOCAL_PREFIX = "reviewlab-"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*")


def _load(path: Path) -> dict[str, Any]:
    return tomllib.loads(path.read_text())


def requirements(pyprojects: list[Path]) -> list[str]:
    """Every runtime dependency of the given packages except the lab's own, in file order."""
    found: list[str] = []
    for path in pyprojects:
        for requirement in _load(path)["project"].get("dependencies", []):
            match = NAME.match(requirement)
            name = match.group(0).lower() if match else ""
            if not name.startswith(LOCAL_PREFIX) and requirement not in found:
                found.append(requirement)
    return found


def _top_packages(setuptools: dict[str, Any]) -> list[str]:
    """The top-level import packages of a `packages = [...]` list or a `packages.find` table."""
    packages = setuptools.get("packages", [])
    if isinstance(packages, dict):  # [tool.setuptools.packages.find]: include = ["name*"]
        include = packages.get("find", {}).get("include", [])
        names = [pattern.rstrip("*").rstrip(".") for pattern in include]
    else:
        names = list(packages)
    return sorted({name.split(".")[0] for name in names if name})


def package_dirs(pyprojects: list[Path]) -> list[Path]:
    """The directory of every top-level import package the given pyproject files declare."""
    return [
        path.parent / package
        for path in pyprojects
        for package in _top_packages(_load(path).get("tool", {}).get("setuptools", {}))
    ]


def main(args: list[str]) -> None:
    if args[:1] == ["--packages"]:
        print("\n".join(str(folder) for folder in package_dirs([Path(a) for a in args[1:]])))
    else:
        print("\n".join(requirements([Path(a) for a in args])))


if __name__ == "__main__":
    main(sys.argv[1:])
