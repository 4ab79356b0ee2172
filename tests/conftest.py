"""Shared test settings: one factor scales every deadline on slow machines."""

from __future__ import annotations

import os

import reviewlab_lab  # noqa: F401  # names the lab's topology file for the shared library

SLOW = float(os.environ.get("REVIEWLAB_SLOW", "1"))


def deadline(seconds: float) -> float:
    """A deadline for an "eventually" assertion, scaled for slow machines."""
    return seconds * SLOW
