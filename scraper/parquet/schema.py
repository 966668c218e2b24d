"""Arrow schemas derived from item declarations, and strict conversion of rows to Arrow.

An item class is a dataclass; its type hints give the Arrow type (``str`` → string, ``int`` → int64,
``bool``, ``float``, ``datetime`` → timestamp[us, UTC], ``list[str]``), ``X | None`` makes a column
nullable, and ``field(metadata=arrow(...))`` overrides the type (needed for ``Decimal``, whose
precision and scale must be declared: money is never a float). Declaring the item is all a spider
needs to get a typed Parquet dataset.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import types
import typing
from collections.abc import Callable, Sequence
from decimal import Decimal
from functools import cache
from typing import Any

import pyarrow as pa

ARROW_TYPE = "arrow_type"

_SIMPLE: dict[Any, pa.DataType] = {
    str: pa.string(),
    int: pa.int64(),
    bool: pa.bool_(),
    float: pa.float64(),
    bytes: pa.binary(),
    dt.datetime: pa.timestamp("us", tz="UTC"),
    dt.date: pa.date32(),
}


class SchemaError(TypeError):
    """An item (class or value) does not fit its declared Arrow schema. Names the field."""

    def __init__(self, item_type: str, field: str, message: str) -> None:
        super().__init__(f"{item_type}.{field}: {message}")
        self.item_type = item_type
        self.field = field


def arrow(data_type: pa.DataType) -> dict[str, pa.DataType]:
    """Field metadata declaring an explicit Arrow type: ``field(metadata=arrow(pa.int32()))``."""
    return {ARROW_TYPE: data_type}


def money(precision: int = 12, scale: int = 2) -> dict[str, pa.DataType]:
    """Field metadata of an exact-decimal money field (``Decimal``, stored as decimal128):
    ``price: Decimal = field(metadata=money())``."""
    return arrow(pa.decimal128(precision, scale))


@cache
def arrow_schema(item_cls: type) -> pa.Schema:
    """The Arrow schema declared by the dataclass ``item_cls`` (fields in declaration order)."""
    if not dataclasses.is_dataclass(item_cls):
        raise SchemaError(getattr(item_cls, "__name__", str(item_cls)), "*",
                          "items written to Parquet must be dataclasses")
    hints = typing.get_type_hints(item_cls)
    columns = []
    for f in dataclasses.fields(item_cls):
        hint, nullable = _unwrap_optional(hints[f.name])
        declared = f.metadata.get(ARROW_TYPE)
        data_type = declared if declared is not None else _arrow_type(item_cls.__name__, f.name, hint)
        columns.append(pa.field(f.name, data_type, nullable=nullable))
    return pa.schema(columns, metadata={"item_type": item_cls.__name__})


def _unwrap_optional(hint: Any) -> tuple[Any, bool]:
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return hint, False


def _arrow_type(item_type: str, name: str, hint: Any) -> pa.DataType:
    if hint in _SIMPLE:
        return _SIMPLE[hint]
    if typing.get_origin(hint) is list:
        (inner,) = typing.get_args(hint)
        return pa.list_(_arrow_type(item_type, name, inner))
    if hint is Decimal:
        raise SchemaError(item_type, name, "Decimal fields must declare precision and scale, "
                          "e.g. field(metadata=arrow(pa.decimal128(12, 2)))")
    raise SchemaError(item_type, name, f"no Arrow type for {hint!r}; declare one with arrow(...)")


def columns_to_table(columns: dict[str, list[Any]], schema: pa.Schema) -> pa.Table:
    """Build a table column by column, so a value that does not fit names its field and row."""
    arrays = []
    item_type = (schema.metadata or {}).get(b"item_type", b"item").decode()
    for field in schema:
        values = columns[field.name]
        try:
            array = pa.array(values, type=field.type)
        except (pa.ArrowException, TypeError, ValueError, OverflowError) as exc:
            row, value = _first_bad(values, field.type)
            raise SchemaError(item_type, field.name,
                              f"value {value!r} (row {row}) does not fit {field.type}: {exc}") from exc
        if not field.nullable and array.null_count:
            row = values.index(None)
            raise SchemaError(item_type, field.name, f"missing value (row {row}) in a required field")
        arrays.append(array)
    return pa.Table.from_arrays(arrays, schema=schema)


def _first_bad(values: list[Any], data_type: pa.DataType) -> tuple[int, Any]:
    for row, value in enumerate(values):
        try:
            pa.array([value], type=data_type)
        except (pa.ArrowException, TypeError, ValueError, OverflowError):
            return row, value
    return -1, None


def row_validator(schema: pa.Schema) -> Callable[[Sequence[Any]], None]:
    """A fast per-row check (pure Python, no Arrow calls) that raises :class:`SchemaError` naming
    the first field whose value does not fit, so a bad item is refused when it arrives rather than
    failing its whole row group later."""
    item_type = (schema.metadata or {}).get(b"item_type", b"item").decode()
    checks = [(f.name, f.nullable, _checker(f.type)) for f in schema]

    def validate(values: Sequence[Any]) -> None:
        for (name, nullable, check), value in zip(checks, values, strict=True):
            if value is None:
                if not nullable:
                    raise SchemaError(item_type, name, "missing value in a required field")
                continue
            problem = check(value)
            if problem:
                raise SchemaError(item_type, name, f"value {value!r} does not fit: {problem}")

    return validate


def _checker(data_type: pa.DataType) -> Callable[[Any], str | None]:
    if pa.types.is_string(data_type) or pa.types.is_large_string(data_type):
        return lambda v: None if isinstance(v, str) else "expected str"
    if pa.types.is_boolean(data_type):
        return lambda v: None if isinstance(v, bool) else "expected bool"
    if pa.types.is_integer(data_type):
        info = _int_bounds(data_type)
        return lambda v: (None if isinstance(v, int) and not isinstance(v, bool) and info[0] <= v <= info[1]
                          else f"expected an integer within {data_type}")
    if pa.types.is_floating(data_type):
        return lambda v: None if isinstance(v, (int, float)) and not isinstance(v, bool) else "expected float"
    if pa.types.is_decimal(data_type):
        precision, scale = data_type.precision, data_type.scale

        def check_decimal(v: Any) -> str | None:
            if not isinstance(v, Decimal) or not v.is_finite():
                return "expected a finite Decimal (never a float)"
            exponent = v.as_tuple().exponent
            if isinstance(exponent, int) and -exponent > scale and v != v.quantize(Decimal(1).scaleb(-scale)):
                return f"more than {scale} decimal places"
            if v.adjusted() >= precision - scale:
                return f"too large for {data_type}"
            return None

        return check_decimal
    if pa.types.is_timestamp(data_type):
        aware = data_type.tz is not None
        return lambda v: (None if isinstance(v, dt.datetime) and (v.tzinfo is not None) == aware
                          else f"expected a {'timezone-aware' if aware else 'naive'} datetime")
    if pa.types.is_list(data_type):
        inner = _checker(data_type.value_type)

        def check_list(v: Any) -> str | None:
            if not isinstance(v, list):
                return "expected a list"
            return next((p for p in map(inner, (x for x in v if x is not None)) if p), None)

        return check_list
    return lambda v: None  # other types: Arrow's conversion is the check


def _int_bounds(data_type: pa.DataType) -> tuple[int, int]:
    bits = data_type.bit_width
    if pa.types.is_unsigned_integer(data_type):
        return 0, 2**bits - 1
    return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
