"""README.md's node table is generated from the topology; the committed table must be current."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from reviewlab_common.topology import TopologyError, parse
from reviewlab_lab import kinds, nodetable


def row_of(table: str, names: str) -> list[str]:
    """The cells of the row whose first cell is NAMES."""
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip("|").split(" | ")]
        if cells[0] == names:
            return cells
    raise AssertionError(f"no row {names!r} in:\n{table}")


def test_the_committed_node_table_matches_the_topology() -> None:
    assert nodetable.stale_reason() is None, (
        "README.md's node table is stale: run `reviewlab docs generate`"
    )


def test_every_node_is_in_one_row(document: dict[str, Any]) -> None:
    topology = parse(document)
    rows = nodetable.rows(topology)
    listed = [n.name for row in rows for n in row]
    assert sorted(listed) == sorted(topology.nodes)
    table = nodetable.table(topology)
    assert len(table.splitlines()) == 2 + len(rows)


def test_a_numbered_series_is_one_row_that_grows_with_the_topology(
    document: dict[str, Any],
) -> None:
    grown = copy.deepcopy(document)
    grown["nodes"]["web-4"] = {"kind": "web", "address": "127.0.0.14"}
    table = nodetable.table(parse(grown))
    assert row_of(table, "web-1..4")[2] == "127.0.0.11-14:8000"
    assert row_of(table, "etcd-1..3")[2] == "127.0.0.40-42:2379, peers :2380"


def test_siblings_and_scattered_addresses_are_each_named(document: dict[str, Any]) -> None:
    table = nodetable.table(parse(document))
    shard = row_of(table, "reviews-0a/0b")
    assert "scope `reviews-0`" in shard[1] and shard[2] == "127.0.0.31-32:5432, REST :8008"
    exporters = row_of(
        table, "lb-1-exporter, lb-2-exporter, edge-1-exporter, edge-2-exporter, shield-exporter"
    )
    assert exporters[1].endswith("watches lb-1, lb-2, edge-1, edge-2, shield")
    assert exporters[2] == "127.0.0.111, .118, .112, .116, .117:9113"


def test_the_native_addresses_are_shown_whatever_the_runtime(document: dict[str, Any]) -> None:
    assert nodetable.table(parse(document, runtime="compose")) == nodetable.table(parse(document))


@pytest.mark.parametrize("spec", kinds.KINDS.values(), ids=lambda s: s.name)
def test_every_kind_says_in_one_line_what_it_is(spec: kinds.KindSpec) -> None:
    assert spec.what and "\n" not in spec.what and "|" not in spec.what


def test_only_the_text_between_the_markers_is_rewritten(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    before, after = "# Lab\n\nIntro.\n\n", "\nMore.\n"
    old = f"{nodetable.BEGIN}\n| node | what | address |\n| old | row | here |\n{nodetable.END}\n"
    readme.write_text(before + old + after)
    assert nodetable.generate(readme)
    text = readme.read_text()
    assert text.startswith(before + nodetable.BEGIN + "\n" + nodetable.HEADER)
    assert text.endswith(nodetable.END + "\n" + after) and "| old |" not in text
    assert nodetable.stale_reason(readme) is None
    assert not nodetable.generate(readme)


def test_a_stale_table_says_how_to_fix_it(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"{nodetable.BEGIN}\n| node | what | address |\n{nodetable.END}\n")
    assert nodetable.stale_reason(readme) == (
        "README.md's node table is stale: run `reviewlab docs generate`"
    )


def test_a_readme_without_the_markers_is_a_clear_error(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# Lab\n")
    with pytest.raises(TopologyError, match="no node table to replace: put the lines"):
        nodetable.generate(readme)
    assert readme.read_text() == "# Lab\n"
