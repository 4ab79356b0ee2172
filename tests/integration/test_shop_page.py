"""The shop page in a real browser: images from the edge, a review posted through the form
shows at once and gets its cutout, a file that is not a photo shows the API's error."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from reviewlab_common.topology import Topology

from tests.integration.browser import Browser, Response
from tests.integration.shop import KIM, assert_error, marker, post_review, rows_with_body
from tests.integration.shop import unique_photo as make_photo

REPORTS = Path(__file__).resolve().parents[2] / "reports"
# X-Cache-Status: the CDN tier that answered, then that tier's own cache status (nginx's
# $upstream_cache_status): an edge or the shield from its cache, or the origin (MinIO).
CACHE_STATUSES = (
    *(
        f"{tier} {status}"
        for tier in ("edge", "shield")
        for status in ("HIT", "STALE", "UPDATING", "REVALIDATED")
    ),
    "origin MISS",
    "origin EXPIRED",
)
IMAGES_DESCRIBED = (
    "document.images.length > 0 && "
    "document.querySelectorAll('#images tr.described').length === "
    "document.querySelectorAll('img[data-cdn]').length"
)


@pytest.fixture()
def browser(topology: Topology, tmp_path: Path) -> Iterator[Browser]:
    """Chromium that resolves www and cdn to where the machine reaches them, and nothing else."""
    resolve = {
        topology.fqdn(service): topology.nodes[target].host_address
        for service, target in topology.services.items()
    }
    opened = Browser(tmp_path / "profile", resolve)
    yield opened
    opened.close()


def shop_url(topology: Topology) -> str:
    return f"http://{topology.fqdn('www')}:{topology.nodes[topology.services['www']].port}/"


def page_images(browser: Browser) -> list[dict[str, Any]]:
    return list(
        browser.evaluate(
            "[...document.querySelectorAll('img[data-cdn]')].map(i => "
            "({src: i.src, shown: i.complete && i.naturalWidth > 0}))"
        )
    )


def assert_from_the_edge(topology: Topology, browser: Browser, srcs: list[str]) -> None:
    """Each image's response was a 200 from the CDN edge's address, served by the edge."""
    edge = topology.nodes[topology.services["cdn"]]
    media = f"http://{topology.fqdn('cdn')}:{edge.port}/media/"
    by_url: dict[str, Response] = {r.url: r for r in browser.responses() if r.kind == "Image"}
    for src in srcs:
        assert src.startswith(media), src
        reply = by_url.get(src)
        assert reply is not None, f"the browser never fetched {src}"
        assert reply.status == 200, (src, reply.status)
        assert reply.remote_address == edge.host_address, (src, reply.remote_address)
        assert reply.headers["x-served-by"] == edge.name, (src, reply.headers)


def fill_form(browser: Browser, *, product_id: int, body: str, photo: Path) -> None:
    browser.evaluate(
        "(() => { const f = document.querySelector('#review-form');"
        f" f.product_id.value = {json.dumps(str(product_id))};"
        " f.rating.value = '5';"
        f" f.body.value = {json.dumps(body)}; }})()"
    )
    browser.set_files("#review-form input[type=file]", [photo])
    browser.evaluate("document.querySelector('#review-form').requestSubmit()")


def test_the_shop_page_in_a_browser(
    topology: Topology,
    browser: Browser,
    authored: Any,
    token_for: Callable[[int], str],
    vip: str,
    tmp_path: Path,
) -> None:
    browser.navigate(shop_url(topology))
    browser.wait_for(IMAGES_DESCRIBED, within=15, what="every image described in the panel")

    # Every image loaded, with a 200 from the edge; the panel names the page's sources.
    images = page_images(browser)
    assert all(image["shown"] for image in images), [i for i in images if not i["shown"]]
    assert_from_the_edge(topology, browser, [image["src"] for image in images])
    webs = {node.name for node in topology.of_kind("web")}
    assert browser.evaluate("document.querySelector('#served-by').textContent") in webs
    read_from = browser.evaluate("document.querySelector('#read-from').textContent")
    assert "catalog/" in read_from and "reviews-" in read_from, read_from
    rows = browser.evaluate(
        "[...document.querySelectorAll('#images tr.described')].map(r => "
        "[...r.cells].map(c => c.textContent))"
    )
    assert rows and all(row[1] == "200" and row[2] in CACHE_STATUSES for row in rows), rows

    # A review with a photo, posted through the form: shown at once, then its cutout.
    product_id = 2
    body = marker("posted from the shop page")
    photo = tmp_path / "kim.jpg"
    photo.write_bytes(make_photo())
    fill_form(browser, product_id=product_id, body=body, photo=photo)
    review_id = browser.wait_for(
        "document.readyState === 'complete' && new URLSearchParams(location.search).get('posted')",
        within=15,
        what="the page read again after the post",
    )
    authored.made.append((int(review_id), KIM))
    shown = browser.evaluate(
        f"document.querySelector('#review-{review_id} .body')?.textContent ?? null"
    )
    assert shown == body, "read-your-writes: the page read after the post must show the review"
    token = browser.evaluate("document.querySelector('#consistency').textContent")
    assert "reviews-" in token, token
    browser.wait_for(
        f"(() => {{ const c = document.querySelector('#review-{review_id} img.cutout');"
        " return c !== null && c.complete && c.naturalWidth > 0 "
        " && c.closest('.checkerboard') !== null; })()",
        within=45,
        what=f"the cutout of review {review_id} shown over the checkerboard",
    )
    browser.wait_for(IMAGES_DESCRIBED, within=10, what="the cutout described in the panel")
    assert_from_the_edge(topology, browser, [image["src"] for image in page_images(browser)])
    # A new cutout: the worker pushed it to the edges before it marked it ready, so its
    # first load was already an edge HIT, and the panel says so, and which edge.
    cutout = browser.evaluate(f"document.querySelector('#review-{review_id} img.cutout').src")
    loaded = next(r for r in browser.responses() if r.url == cutout)
    assert loaded.headers["x-cache-status"] == "edge HIT", loaded.headers
    row = f"document.querySelector('#images tr[data-src={json.dumps(cutout)}]')"
    panel = browser.evaluate(f"[...{row}.cells].map(c => c.textContent)")
    assert panel[2:] == ["edge HIT", topology.services["cdn"]], panel
    # The cutout is the photo under its mask: the CSS mask names the mask, which the browser
    # loaded from the edge.
    mask, drawn = browser.evaluate(
        f"(() => {{ const c = document.querySelector('#review-{review_id} img.cutout');"
        " const s = getComputedStyle(c); return [c.dataset.mask, s.maskImage || s.webkitMaskImage];"
        " })()"
    )
    assert mask == cutout.removesuffix(".jpg") + ".mask.png" and mask in drawn, (mask, drawn)
    browser.wait_for(
        f"performance.getEntriesByName({json.dumps(mask)}).length > 0",
        within=10,
        what="the cutout's mask loaded by the page",
    )
    # A CSS mask is fetched in CORS mode: it fails unless the edge sends one Allow-Origin.
    assert_from_the_edge(topology, browser, [mask])

    # A file that is not a photo: the API's message in the page, nothing saved.
    refused = marker("not a photo")
    notes = tmp_path / "notes.txt"
    notes.write_text("these are my notes, not a photo\n")
    fill_form(browser, product_id=product_id, body=refused, photo=notes)
    shown_error = browser.wait_for(
        "(() => { const e = document.querySelector('#post-error');"
        " return e.hidden ? null : e.textContent; })()",
        within=15,
        what="the API's error shown in the page",
    )
    with httpx.Client(base_url=vip, timeout=15) as client:
        direct = post_review(
            client,
            token_for(KIM),
            product_id=product_id,
            body=refused,
            photo=notes.read_bytes(),
            filename="notes.txt",
            content_type="text/plain",
        )
    error = assert_error(direct, (415, 422))
    assert error["message"] in shown_error, (error, shown_error)
    assert browser.evaluate("new URLSearchParams(location.search).get('posted')") == review_id
    assert sum(rows_with_body(topology, refused).values()) == 0

    browser.evaluate("window.scrollTo(0, 0)")
    browser.screenshot(REPORTS / "shop-page.png")
