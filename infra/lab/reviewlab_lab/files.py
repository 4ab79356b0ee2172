"""The lab's config templates (infra/ and loadbalancer/), and writing what they render."""

from __future__ import annotations

from pathlib import Path

import jinja2

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
