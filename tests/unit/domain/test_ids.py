from __future__ import annotations

from uuid import uuid4

import pytest

from domain.ids import escrow_id_for, payment_id_for, platform_wallet_id_for, wallet_id_for

pytestmark = pytest.mark.unit


def test_derived_ids_are_the_same_every_time_and_differ_by_purpose() -> None:
    order_id, account_id = uuid4(), uuid4()

    assert escrow_id_for(order_id) == escrow_id_for(order_id)
    assert payment_id_for(order_id) == payment_id_for(order_id)
    assert escrow_id_for(order_id) != payment_id_for(order_id)
    assert wallet_id_for(account_id, "EUR") != wallet_id_for(account_id, "USD")
    assert platform_wallet_id_for("acme", "EUR") != platform_wallet_id_for("globex", "EUR")
