"""Every projection Mercato runs, by name."""

from __future__ import annotations

from projections.analytics_facts import ANALYTICS_FACTS
from projections.catalog_search import CATALOG_SEARCH
from projections.definition import Projection
from projections.order_views import ORDER_VIEWS
from projections.product_pages import PRODUCT_PAGES
from projections.seller_dashboard import SELLER_DASHBOARD
from projections.wallet_views import WALLET_VIEWS


def core_projections() -> list[Projection]:
    return [
        ORDER_VIEWS,
        WALLET_VIEWS,
        SELLER_DASHBOARD,
        PRODUCT_PAGES,
        ANALYTICS_FACTS,
        CATALOG_SEARCH,
    ]
