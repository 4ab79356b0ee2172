"""The web server's settings."""

from __future__ import annotations

from reviewlab_common.settings import NodeSettings


class WebSettings(NodeSettings):
    # How long a POST waits for MinIO or a shard before answering 503.
    dependency_timeout_s: float = 3.0
    # A reader's consistency token is a cookie; it names a shard and a commit LSN.
    consistency_cookie: str = "reviewlab-lsn"
