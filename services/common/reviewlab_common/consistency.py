"""Read-your-writes tokens travel under these names: the web service sets them, the vIP's
micro-cache steps aside for a reader carrying either, and every client sends the header."""

from __future__ import annotations

HEADER = "X-Consistency-Token"
COOKIE = "reviewlab-lsn"
