"""Object storage (MinIO through the S3 API): the private media bucket."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from reviewlab_common import secrets as lab_secrets
from reviewlab_common.topology import Topology

MEDIA_BUCKET = "media"


class StorageUnavailable(RuntimeError):
    """MinIO did not answer or refused the request."""


def client(
    topology: Topology,
    *,
    timeout: float = 3.0,
    connect_timeout: float | None = None,
    read_timeout: float | None = None,
    retries: int = 1,
    secrets: lab_secrets.LabSecrets | None = None,
) -> Any:
    """An S3 client for the lab's MinIO, with the lab's credentials (SECRETS, or read).

    TIMEOUT bounds a connect and a third of a reply, unless CONNECT_TIMEOUT or READ_TIMEOUT
    says otherwise; RETRIES is how many times a failed request is sent again.
    """
    node = topology.one("minio")
    creds = secrets or lab_secrets.load(topology)
    return boto3.client(
        "s3",
        endpoint_url=node.url,
        aws_access_key_id=creds.minio_user,
        aws_secret_access_key=creds.minio_password,
        region_name="us-east-1",
        config=Config(
            connect_timeout=timeout if connect_timeout is None else connect_timeout,
            read_timeout=timeout * 3 if read_timeout is None else read_timeout,
            retries={"max_attempts": retries, "mode": "standard"},
            s3={"addressing_style": "path"},
            signature_version="s3v4",
        ),
    )


def put_object(
    s3: Any, key: str, data: bytes, *, content_type: str, immutable: bool = True
) -> None:
    """Store bytes under KEY; content-versioned keys are marked immutable for caches."""
    cache = "public, max-age=31536000, immutable" if immutable else "public, max-age=60"
    try:
        s3.put_object(
            Bucket=MEDIA_BUCKET, Key=key, Body=data, ContentType=content_type, CacheControl=cache
        )
    except (BotoCoreError, ClientError) as exc:
        raise StorageUnavailable(f"object storage refused {key}: {exc}") from exc


def get_object(s3: Any, key: str) -> bytes:
    try:
        body: bytes = s3.get_object(Bucket=MEDIA_BUCKET, Key=key)["Body"].read()
    except (BotoCoreError, ClientError) as exc:
        raise StorageUnavailable(f"object storage could not read {key}: {exc}") from exc
    return body


def exists(s3: Any, key: str) -> bool:
    try:
        s3.head_object(Bucket=MEDIA_BUCKET, Key=key)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return False
        raise StorageUnavailable(f"object storage could not check {key}: {exc}") from exc
    except BotoCoreError as exc:
        raise StorageUnavailable(f"object storage could not check {key}: {exc}") from exc
    return True
