"""`reviewlab cdn`: purge from every CDN tier, push (pre-warm) the edges, list cached keys.

ngx_cache_purge 2.3 purges one key per request and has no wildcard. A prefix purge is
therefore two steps: list the keys each tier holds under the prefix, from its cache files
(each file names its key on a `KEY:` line after nginx's binary header), then purge those
keys one by one, the shield first. The files are the truth of what a tier holds, including
keys no log line mentions any more; a tier lists its own (under Compose, inside its container).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx
from reviewlab_common import cdn
from reviewlab_common import secrets as lab_secrets
from reviewlab_common.photos import MEDIA_PATH
from reviewlab_common.topology import Node, Topology

from reviewlab_lab import runtimes
from reviewlab_lab.errors import LabFailed
from reviewlab_lab.paths import LabPaths

# nginx writes the key within its cache file's first few hundred bytes.
HEAD_BYTES = 4096
KEY_LINE = b"\nKEY: "


def add_parser(sub: Any) -> None:
    p = sub.add_parser("cdn", help="the CDN: purge, push, cached keys")
    cdn_sub = p.add_subparsers(dest="cdn_command", required=True)
    p = cdn_sub.add_parser("purge", help="evict a URL (or every key under --prefix) everywhere")
    p.add_argument("url", nargs="?", help="a media URL or path, e.g. /media/cutouts/ab.jpg")
    p.add_argument("--prefix", help="every cached key under this path, e.g. /media/products/")
    p = cdn_sub.add_parser("push", help="pre-warm both edges (and the shield) with URLs")
    p.add_argument("urls", nargs="+")
    p = cdn_sub.add_parser("keys", help="the keys a CDN node holds (optionally under --prefix)")
    p.add_argument("node")
    p.add_argument("--prefix", default=MEDIA_PATH)


def key_of(head: bytes) -> str | None:
    """The cache key in the first bytes of an nginx cache file; None if it names none."""
    start = head.find(KEY_LINE)
    if start < 0:
        return None
    start += len(KEY_LINE)
    end = head.find(b"\n", start)
    if end < 0:
        return None
    return head[start:end].decode("utf-8", "replace")


def under(keys: Iterable[str], prefix: str) -> list[str]:
    """The keys under PREFIX (a /media/ path or a bucket prefix such as `products/`)."""
    wanted = cdn.media_path(prefix)
    return sorted({k for k in keys if k.startswith(wanted)})


def cache_files(cache_dir: Path) -> Iterator[Path]:
    return (p for p in cache_dir.rglob("*") if p.is_file())


def local_keys(paths: LabPaths, node: Node) -> list[str]:
    """The keys node NODE's cache holds, read from its files where this command runs."""
    found = []
    for path in cache_files(paths.data(node.name) / "cache"):
        try:
            with path.open("rb") as handle:
                key = key_of(handle.read(HEAD_BYTES))
        except OSError:
            continue  # evicted while listed
        if key is not None:
            found.append(key)
    return found


def cdn_node(topology: Topology, name: str) -> Node:
    node = topology.nodes.get(name)
    if node is None or node.kind not in ("edge", "shield"):
        tiers = ", ".join(n.name for n in cdn.tiers_to_purge(topology))
        raise LabFailed(f"{name!r} is not a CDN node; the CDN nodes are {tiers}")
    return node


def keys_of(topology: Topology, node: Node, prefix: str) -> list[str]:
    """NODE's keys under PREFIX: its own files, or under Compose from inside its container."""
    if runtimes.on_host(topology):
        out = runtimes.of(topology).run_in_node(
            node.name, ["reviewlab", "cdn", "keys", node.name, "--prefix", prefix]
        )
        return [line for line in out.splitlines() if line]
    return under(local_keys(LabPaths.of(topology), node), prefix)


def _purge_key(topology: Topology) -> str:
    return cdn.purge_key(lab_secrets.load(topology).token_secret)


def _path(url: str) -> str:
    return httpx.URL(url).raw_path.decode() if "://" in url else url


def run(topology: Topology, args: argparse.Namespace) -> None:
    if args.cdn_command == "keys":
        for key in keys_of(topology, cdn_node(topology, args.node), args.prefix):
            print(key)
    elif args.cdn_command == "push":
        print(json.dumps(cdn.push(topology, [_path(u) for u in args.urls]), indent=2))
    else:
        purge(topology, args.url, args.prefix)


def purge(topology: Topology, url: str | None, prefix: str | None) -> None:
    if (url is None) == (prefix is None):
        raise LabFailed("name one URL, or --prefix PATH (e.g. --prefix /media/products/)")
    if url is not None:
        paths = [_path(url)]
    else:
        assert prefix is not None
        paths = sorted(
            {k for n in cdn.tiers_to_purge(topology) for k in keys_of(topology, n, prefix)}
        )
    done = cdn.purge(topology, paths, _purge_key(topology)) if paths else []
    for entry in done:
        print(f"{entry.node:8} {entry.outcome:12} {entry.path}")
    failed = [e for e in done if not e.ok]
    purged = sum(e.outcome == "purged" for e in done)
    print(f"{len(paths)} key(s); {purged} cached copies purged from the shield and the edges")
    if failed:
        first = failed[0]
        raise LabFailed(f"{len(failed)} purge(s) failed; first: {first.node} {first.outcome}")
