"""The web server's settings."""

from __future__ import annotations

from reviewlab_common.settings import NodeSettings


class WebSettings(NodeSettings):
    """The node this server runs as and the lab's topology; nothing of its own yet.

    Timeouts toward the catalog, the shards and MinIO are set where their clients are made
    (reviewlab_common.db and .storage); the consistency cookie is named in consistency.py.
    """
