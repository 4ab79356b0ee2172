"""The API's OpenAPI document: what Swagger UI and generated clients read from it."""

from __future__ import annotations

from typing import Any

import pytest
from reviewlab_web.app import create_app
from reviewlab_web.reviews import service

WRITES = [
    ("post", "/api/reviews"),
    ("delete", "/api/reviews/{review_id}"),
    ("post", "/api/reviews/{review_id}/helpful"),
]


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return create_app().openapi()


def test_bearer_security_is_declared(document: dict[str, Any]) -> None:
    scheme = document["components"]["securitySchemes"]["bearer"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")


@pytest.mark.parametrize(("method", "path"), WRITES)
def test_every_write_asks_for_the_bearer_token(
    document: dict[str, Any], method: str, path: str
) -> None:
    operation = document["paths"][path][method]
    assert operation["security"] == [{"bearer": []}]
    headers = [p["name"].lower() for p in operation.get("parameters", []) if p["in"] == "header"]
    # A plain header parameter named Authorization is one Swagger UI never sends.
    assert "authorization" not in headers


def test_reads_need_no_token(document: dict[str, Any]) -> None:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if (method, path) not in WRITES:
                assert "security" not in operation, (method, path)


def test_the_product_id_bound_is_an_exact_integer(document: dict[str, Any]) -> None:
    form = document["components"]["schemas"]["Body_post_review_api_reviews_post"]
    path_param = next(
        p
        for p in document["paths"]["/api/products/{product_id}"]["get"]["parameters"]
        if p["name"] == "product_id"
    )
    for schema in (form["properties"]["product_id"], path_param["schema"]):
        maximum = schema["maximum"]
        # A number a double holds exactly (the form's bound is written as a float): JavaScript
        # shows it as it is, not rounded.
        assert maximum == service.MAX_PRODUCT_ID
        assert int(float(maximum)) == service.MAX_PRODUCT_ID


def test_review_ids_are_strings_of_digits_in_the_schema(document: dict[str, Any]) -> None:
    review_id = document["components"]["schemas"]["Review"]["properties"]["id"]
    assert review_id["type"] == "string" and review_id["pattern"] == "^[1-9][0-9]{0,18}$"
    assert document["info"]["version"] == "0.3.0"


def test_a_review_id_above_2_53_is_a_string_in_the_json() -> None:
    from datetime import UTC, datetime

    from reviewlab_web.reviews.schemas import Review

    big = 121384641495047564  # above 2^53: a double would round it
    review = Review(
        id=big,
        product_id=30,
        user_id=1,
        rating=5,
        body="Fits",
        created_at=datetime(2026, 12, 2, tzinfo=UTC),
        shard="reviews-0",
    )
    assert review.model_dump_json().startswith('{"id":"121384641495047564",')
    # Both forms are accepted on input.
    assert Review.model_validate_json(review.model_dump_json()).id == big
    assert Review.model_validate({**review.model_dump(), "id": big}).id == big
