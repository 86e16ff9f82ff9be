"""``column IN (ids)`` as one bound parameter, however many ids.

An expanding IN binds one parameter per id: SQLite refuses more than 32,766 and
PostgreSQL more than 65,535, and compiling tens of thousands of placeholders is slow
anyway. A cleanup plan or a delete impact over 100,000 tags needs sets that large:
SQLite gets them as one JSON array read by ``json_each``, PostgreSQL as one array
compared with ``= ANY``.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, Connection, any_, func, literal, select
from sqlalchemy.dialects.postgresql import ARRAY


def in_ids(conn: Connection, column: ColumnElement[Any], ids: Collection[int]) -> Any:
    values = sorted({int(i) for i in ids})
    if conn.dialect.name == "sqlite":
        each = func.json_each(json.dumps(values)).table_valued("value")
        return column.in_(select(each.c.value))
    return column == any_(literal(values, ARRAY(BigInteger)))


def not_in_ids(conn: Connection, column: ColumnElement[Any], ids: Collection[int]) -> Any:
    return ~in_ids(conn, column, ids)
