"""Every projection Mercato runs, by name."""

from __future__ import annotations

from projections.definition import Projection
from projections.order_views import ORDER_VIEWS


def core_projections() -> list[Projection]:
    return [ORDER_VIEWS]
