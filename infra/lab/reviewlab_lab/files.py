"""The lab's config templates (infra/ and loadbalancer/), and writing what they render."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
import yaml

from reviewlab_lab.paths import REPO


def templates() -> jinja2.Environment:
    """Every config template of the lab, by path under infra/ or loadbalancer/."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader([REPO / "infra", REPO / "loadbalancer"]),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )


def write_if_changed(path: Path, text: str, mode: int = 0o644) -> bool:
    """Write a rendered file; report whether its content changed."""
    if path.exists() and path.read_text() == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    return True


def generated_yaml(header: str, documents: list[dict[str, Any]]) -> str:
    """A file generated from the topology: its header, then its YAML documents in order."""
    body = yaml.safe_dump_all(documents, sort_keys=False, default_flow_style=False, width=100)
    return header + str(body)


def stale_reason(path: Path, expected: str, command: str) -> str | None:
    """Why the committed file at PATH is not what COMMAND writes now (EXPECTED), or None."""
    committed = path.read_text() if path.exists() else ""
    if committed == expected:
        return None
    return f"{path.relative_to(REPO)} does not match infra/topology.toml: run `{command}`"
