"""`make demo`: Kim posts a review with a photo, end to end, and every step is timed.

1. Ask the private DNS for the shop, from a public source address (as an outside client).
2. POST the review with her photo to the load balancer's vIP.
3. Wait until a worker has cut her out of the photo.
4. Fetch the cutout from the CDN twice: the first is a MISS (pulled from MinIO), then a HIT.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar
from urllib.parse import urlsplit

import httpx
from reviewlab_common import dns as lab_dns
from reviewlab_common import secrets as lab_secrets
from reviewlab_common import tokens
from reviewlab_common.consistency import HEADER
from reviewlab_common.photos import PhotoStatus
from reviewlab_common.topology import Topology

from reviewlab_lab import errors, hosts, photos, runtimes
from reviewlab_lab.users import user_id

# Any address outside the internal network: it sees the public DNS view.
PUBLIC_SOURCE = "127.0.1.5"
# The story's linen shirt: "Linen shirt" in the catalog's seed (catalog migration 0001).
LINEN_SHIRT = 30
DEMO_BODY = "Fits perfectly, lovely linen."
T = TypeVar("T")


class DemoFailed(RuntimeError):
    pass


@contextmanager
def step(number: int, title: str) -> Iterator[None]:
    print(f"\n[{number}] {title}", flush=True)
    started = time.perf_counter()
    yield
    print(f"    took {(time.perf_counter() - started) * 1000:.0f} ms", flush=True)


def kims_photo() -> bytes:
    """The bundled portrait, tagged with this run's time: a new photo, a new content key."""
    return photos.portrait(f"review lab demo {time.time()}")


def poll(check: Callable[[], T | None], seconds: float, what: str) -> T:
    limit = time.monotonic() + seconds
    while time.monotonic() < limit:
        found = check()
        if found is not None:
            return found
        time.sleep(0.05)
    raise DemoFailed(f"{what} did not happen within {seconds:.0f} s: see `reviewlab status`")


def resolve(topology: Topology, name: str) -> str:
    found = lab_dns.lookup(topology, name, source=PUBLIC_SOURCE, published=True)
    if not found:
        raise DemoFailed(f"{name}.{topology.lab.domain} did not resolve from {PUBLIC_SOURCE}")
    return found[0]


def product_name(client: httpx.Client, product_id: int) -> str:
    reply = client.get(f"/api/products/{product_id}")
    if reply.status_code != 200:
        raise DemoFailed(f"GET /api/products/{product_id} answered {reply.status_code}")
    return str(reply.json()["name"])


def remove_previous(client: httpx.Client, token: str, kim: int) -> list[str]:
    """Delete the review an earlier `make demo` posted, so the shop shows one, not one a run."""
    auth = {"Authorization": f"Bearer {token}"}  # a bearer token also bypasses the micro-cache
    removed: list[str] = []
    cursor: str | None = None
    while True:
        params = {"limit": "100", **({"cursor": cursor} if cursor else {})}
        page = client.get(f"/api/products/{LINEN_SHIRT}/reviews", params=params, headers=auth)
        if page.status_code != 200:
            raise DemoFailed(f"listing the linen shirt's reviews answered {page.status_code}")
        for review in page.json()["items"]:
            if int(review["user_id"]) == kim and review["body"] == DEMO_BODY:
                gone = client.delete(f"/api/reviews/{review['id']}", headers=auth)
                if gone.status_code not in (204, 404):
                    raise DemoFailed(f"deleting review {review['id']} answered {gone.status_code}")
                removed.append(str(review["id"]))
        cursor = page.json()["next_cursor"]
        if not cursor:
            return removed


def run(topology: Topology) -> None:
    domain = topology.lab.domain
    www_port = topology.nodes[topology.services["www"]].port
    with step(1, f"Kim's phone asks the private DNS for www.{domain} (from {PUBLIC_SOURCE})"):
        www = resolve(topology, "www")
        hidden = lab_dns.lookup(topology, "primary.catalog", source=PUBLIC_SOURCE, published=True)
        print(f"    www.{domain} -> {www} (the load balancer's vIP)")
        print(f"    primary.catalog.{domain} -> {hidden or 'NXDOMAIN: internal names stay hidden'}")
    kim = user_id(topology, "kim")
    token = tokens.issue(lab_secrets.load(topology).token_secret, kim)
    photo = kims_photo()
    base = f"http://{www}:{www_port}"
    with httpx.Client(base_url=base, headers={"Host": f"www.{domain}"}, timeout=30) as client:
        shirt = product_name(client, LINEN_SHIRT)
        removed = remove_previous(client, token, kim)
        if removed:
            print(f"    (replaced the review an earlier demo posted: {', '.join(removed)})")
        with step(
            2,
            f"Kim posts a 5-star review of the {shirt.lower()} (product {LINEN_SHIRT}) "
            f"with her photo ({len(photo) // 1024} KB)",
        ):
            reply = client.post(
                "/api/reviews",
                headers={"Authorization": f"Bearer {token}"},
                data={"product_id": str(LINEN_SHIRT), "rating": "5", "body": DEMO_BODY},
                files={"photo": ("kim.jpg", photo, "image/jpeg")},
            )
            if reply.status_code != 201:
                raise DemoFailed(f"POST /api/reviews answered {reply.status_code}: {reply.text}")
            review = reply.json()
            consistency = reply.headers[HEADER]
            print(f"    201 Created {reply.headers['Location']}")
            print(f"    served by {reply.headers.get('X-Served-By')} via the vIP")
            print(f"    review {review['id']} landed on shard {review['shard']}")
            print(f"    consistency token: {consistency}")
        with step(3, "a segmentation worker cuts Kim out of the photo"):

            def cutout_ready() -> dict[str, object] | None:
                got = client.get(
                    f"/api/reviews/{review['id']}", headers={HEADER: consistency}
                ).json()
                status = got["photo"]["status"]
                if status == PhotoStatus.FAILED:
                    raise DemoFailed(f"the photo failed: {got['photo']['error']}")
                return got if status == PhotoStatus.READY else None

            ready = poll(cutout_ready, 60, "the cutout")
            photo_info = ready["photo"]
            assert isinstance(photo_info, dict)
            print(f"    photo ready: {photo_info['cutout_url']}")
    cutout_url = str(photo_info["cutout_url"])
    parts = urlsplit(cutout_url)
    edge = resolve(topology, "cdn")
    with httpx.Client(timeout=30) as cdn:
        for attempt in (1, 2):
            with step(3 + attempt, f"fetch the cutout from the CDN edge ({attempt} of 2)"):
                got = cdn.get(
                    f"http://{edge}:{parts.port}{parts.path}", headers={"Host": parts.netloc}
                )
                print(
                    f"    {got.status_code} {got.headers.get('Content-Type')} "
                    f"{len(got.content) // 1024} KB"
                    f"  X-Cache-Status: {got.headers.get('X-Cache-Status')}"
                )
    print(
        "\nDone. Try:\n"
        f"  curl -s http://{www}:{www_port}/api/reviews/{review['id']} | python3 -m json.tool\n"
        f"  curl -sI --resolve cdn.{domain}:{parts.port}:{edge} {cutout_url}\n"
        f"  reviewlab status"
    )
    print(shop_page_line(topology))
    print(
        "next: `make load` (shoppers under load), `make lb-demo` (the balancing algorithms), "
        "`make chaos` (a replica lost under load); a second `make demo` replaces this review"
    )


def shop_page_line(topology: Topology) -> str:
    """Where to open the shop page, and whether this machine resolves its names yet."""
    www = topology.nodes[topology.services["www"]]
    url = f"http://{topology.fqdn('www')}:{www.port}/"
    if hosts.state(topology).current:
        return f"\nOpen the shop page in a browser: {url}"
    return (
        f"\nThe shop page: {url} (first `reviewlab hosts install` as root, so this machine "
        "resolves the lab's names)"
    )


def main() -> None:
    with errors.one_line():
        try:
            run(runtimes.activate())
        except (DemoFailed, httpx.HTTPError, lab_dns.DnsError) as exc:
            print(f"\ndemo failed: {exc}", file=sys.stderr)
            sys.exit(1)


if __name__ == "__main__":
    main()
