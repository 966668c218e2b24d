from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

import pyarrow as pa
import pytest

from scraper.items import BookItem
from scraper.parquet.schema import SchemaError, arrow, arrow_schema, columns_to_table


def test_book_schema_is_exactly_typed() -> None:
    schema = arrow_schema(BookItem)
    types = {f.name: f.type for f in schema}
    assert types["price_excl_tax"] == pa.decimal128(12, 2)
    assert types["tax"] == pa.decimal128(12, 2)
    assert types["availability"] == pa.int64() and types["rating"] == pa.int64()
    assert types["in_stock"] == pa.bool_()
    assert types["scraped_at"] == pa.timestamp("us", tz="UTC")
    assert types["title"] == pa.string()
    derived = {"title_normalized", "series", "series_number", "content_hash", "description_simhash",
               "word_count"}
    assert [f.name for f in schema if f.nullable] == [n for n in schema.names if n in derived]
    assert types["description_simhash"] == pa.uint64()
    assert schema.names[0] == "url"


@dataclass
class Mixed:
    tags: list[str]
    score: float | None
    small: int = field(metadata=arrow(pa.int16()))


def test_optional_list_and_declared_types() -> None:
    schema = arrow_schema(Mixed)
    assert schema.field("tags").type == pa.list_(pa.string())
    assert schema.field("score").nullable and schema.field("score").type == pa.float64()
    assert schema.field("small").type == pa.int16()


def test_undeclared_decimal_is_refused_naming_the_field() -> None:
    @dataclass
    class Bad:
        price: Decimal

    with pytest.raises(SchemaError, match=r"Bad\.price: Decimal fields must declare precision"):
        arrow_schema(Bad)


def test_value_that_does_not_fit_names_field_and_row() -> None:
    schema = arrow_schema(Mixed)
    columns = {"tags": [["a"], ["b"]], "score": [1.0, None], "small": [1, 99999]}
    with pytest.raises(SchemaError, match=r"Mixed\.small: value 99999 \(row 1\)"):
        columns_to_table(columns, schema)


def test_missing_required_value_is_refused() -> None:
    schema = arrow_schema(Mixed)
    with pytest.raises(SchemaError, match=r"Mixed\.tags: missing value \(row 0\)"):
        columns_to_table({"tags": [None], "score": [None], "small": [1]}, schema)


def test_decimal_with_too_many_places_is_refused_not_rounded() -> None:
    schema = arrow_schema(BookItem)
    row = dict(url="u", upc="x", title="t", category="c", product_type="Books",
               price_excl_tax=Decimal("1.005"), price_incl_tax=Decimal("1.00"), tax=Decimal("0.00"),
               currency="GBP", availability=1, in_stock=True, rating=1, num_reviews=0,
               description="", image_url="i", scraped_at=datetime.now(UTC))
    with pytest.raises(SchemaError, match="BookItem.price_excl_tax"):
        columns_to_table({k: [v] for k, v in row.items()}, schema)
