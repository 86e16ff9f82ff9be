"""Lists: ``?sort=``, ``?limit=``, and opaque keyset cursors.

A cursor holds the sort key and the values of the last row served; the next page
starts strictly after that row in the requested order, so rows inserted meanwhile
neither repeat nor shift the pages. Every order ends in a unique column (an id or a
unique name) so "strictly after" is well defined.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query, Response
from pydantic import BaseModel
from sqlalchemy import ColumnElement, Connection, Row, Select, tuple_

from app.registry.accounts import InvalidArgument

T = TypeVar("T")

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="page size")]
Cursor = Annotated[
    str | None,
    Query(max_length=2000, description="next_cursor of the previous page (empty: the first)"),
]


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None
    total: int


@dataclass(frozen=True, slots=True)
class Sort:
    field: str
    descending: bool

    @property
    def text(self) -> str:
        return ("-" if self.descending else "") + self.field


def parse_sort(text: str | None, allowed: Sequence[str], default: str) -> Sort:
    text = text or default
    field = text.removeprefix("-")
    if field not in allowed:
        raise InvalidArgument(
            f"cannot sort by {field!r}; one of: {', '.join(allowed)}",
            detail={"sort": text, "allowed": list(allowed)},
        )
    return Sort(field, text.startswith("-"))


def encode_cursor(sort: Sort, values: Sequence[Any]) -> str:
    raw = json.dumps([sort.text, *values], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, sort: Sort, types: Sequence[type]) -> list[Any]:
    """The values a cursor carries, checked against the order it was made for."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        data = None
    if (
        not isinstance(data, list)
        or len(data) != len(types) + 1
        or data[0] != sort.text
        or not all(
            isinstance(v, t) and not isinstance(v, bool)
            for v, t in zip(data[1:], types, strict=True)
        )
    ):
        raise InvalidArgument(
            "invalid cursor (cursors belong to one list and one sort order)",
            detail={"cursor": cursor},
        )
    return data[1:]


def after(columns: Sequence[ColumnElement[Any]], sort: Sort, values: Sequence[Any]) -> Any:
    """The keyset condition: rows strictly after ``values`` in the order."""
    key = tuple_(*columns)
    bound = tuple_(*values)
    return key < bound if sort.descending else key > bound


def order(columns: Sequence[ColumnElement[Any]], sort: Sort) -> list[Any]:
    return [c.desc() if sort.descending else c.asc() for c in columns]


def page_of(
    items: Sequence[T],
    key: Callable[[T], str],
    limit: int,
    cursor: str | None,
    sort: Sort = Sort("name", False),
) -> Page[T]:
    """A page of a short list held in memory, in order of a unique string key."""
    ordered = sorted(items, key=key, reverse=sort.descending)
    if cursor:
        (last,) = decode_cursor(cursor, sort, (str,))
        ordered = [x for x in ordered if (key(x) < last if sort.descending else key(x) > last)]
    page = ordered[:limit]
    more = len(ordered) > limit
    return Page[T](
        items=list(page),
        next_cursor=encode_cursor(sort, [key(page[-1])]) if more and page else None,
        total=len(items),
    )


def keyset_page(
    conn: Connection,
    query: Select[Any],
    key: Sequence[ColumnElement[Any]],
    sort: Sort,
    types: Sequence[type],
    limit: int,
    cursor: str | None,
    cursor_values: Callable[[Row[Any]], Sequence[Any]],
) -> tuple[list[Row[Any]], str | None]:
    """One page of ``query`` in the order of ``key`` (which ends in a unique column),
    and the cursor of the next page (from ``cursor_values`` of the last row)."""
    if cursor:
        query = query.where(after(key, sort, decode_cursor(cursor, sort, types)))
    rows = conn.execute(query.order_by(*order(key, sort)).limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return list(rows), encode_cursor(sort, cursor_values(rows[-1])) if more and rows else None


def json_response(body: BaseModel) -> Response:
    """A body already built and checked as its model: serialized once, not validated
    again by FastAPI (which doubles the cost of a page of 1,000 rows). The route still
    declares ``response_model`` for the OpenAPI document."""
    return Response(body.model_dump_json(), media_type="application/json")
