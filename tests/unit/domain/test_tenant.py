from __future__ import annotations

import re

import pytest

from domain.errors import InvariantViolation
from domain.ids import tenant_id_for
from domain.tenant import TENANT_ID_PATTERN, Tenant
from interfaces.http.dependencies import TENANT_PATTERN
from tests.unit.domain.support import assert_replays_identically, recorded

pytestmark = pytest.mark.unit


def test_a_tenant_is_provisioned_in_a_stream_named_after_it() -> None:
    tenant = Tenant.provision(tenant_id="acme")

    assert tenant.id == tenant_id_for("acme") != tenant_id_for("Acme")
    assert tenant.tenant_id == "acme"
    events = list(tenant.pending_events)
    assert recorded(tenant) == ["Provisioned"]
    assert_replays_identically(tenant, events)


@pytest.mark.parametrize("name", ["", " acme", "../etc", "-acme", "a" * 101, "acme:1", "é"])
def test_a_tenant_id_outside_the_header_pattern_is_refused(name: str) -> None:
    with pytest.raises(InvariantViolation) as refused:
        Tenant.provision(tenant_id=name)
    assert refused.value.field == "tenant_id"
    assert re.fullmatch(TENANT_PATTERN, name) is None


def test_the_domain_and_the_x_tenant_id_header_agree_on_what_a_tenant_id_is() -> None:
    assert TENANT_ID_PATTERN == TENANT_PATTERN
