"""Photos for the demo, the tests, the benchmarks and the load test: the bundled portrait.

A public-domain NASA portrait (scikit-image's astronaut) ships in tests/fixtures. Each call
gives the same picture with new bytes, so the lab stores it as a new content-addressed
original and the worker cuts it out again.
"""

from __future__ import annotations

import struct
import uuid

from reviewlab_lab.paths import REPO

PORTRAIT = REPO / "tests" / "fixtures" / "portrait.jpg"


def portrait(tag: str | None = None) -> bytes:
    """The portrait with a JPEG comment (TAG, else a random one) after its start marker."""
    data = PORTRAIT.read_bytes()
    text = (tag or uuid.uuid4().hex).encode()
    comment = b"\xff\xfe" + struct.pack(">H", len(text) + 2) + text
    return data[:2] + comment + data[2:]
