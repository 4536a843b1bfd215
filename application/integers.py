"""The range every integer from outside lies in before it reaches a store.

A signed 64-bit integer is what every store here holds (Postgres `bigint`, SQLite `INTEGER`,
Elasticsearch `long`, ClickHouse `Int64`); a larger one makes a driver raise instead of
answering. So a number from a path, query, header, cursor or body is checked against this
range, or a tighter one where the domain says, where it enters.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

Position = Annotated[int, Field(ge=0, le=INT64_MAX)]
"""A global position of the event log (a consistency token)."""


def is_int64(value: Any) -> bool:
    """`value` is an int (not a bool) that a 64-bit signed integer holds."""
    return type(value) is int and INT64_MIN <= value <= INT64_MAX
