"""Statements are compiled once for psycopg; a value baked into one is refused at import."""

from __future__ import annotations

import pytest
from reviewlab_common.tables import compiled, reviews
from sqlalchemy import bindparam, literal_column, select, update


def test_named_parameters_compile_to_psycopg_placeholders() -> None:
    text = compiled(select(reviews.c.body).where(reviews.c.id == bindparam("id")))
    assert "%(id)s" in text
    assert text.startswith("SELECT reviews.body")


def test_a_value_in_the_statement_is_refused_with_what_to_use_instead() -> None:
    with pytest.raises(ValueError, match=r"bindparam\(NAME\).*literal_column"):
        compiled(update(reviews).values(helpful_votes=reviews.c.helpful_votes + 1))
    counted = compiled(
        update(reviews).values(helpful_votes=reviews.c.helpful_votes + literal_column("1"))
    )
    assert "helpful_votes + 1" in counted
