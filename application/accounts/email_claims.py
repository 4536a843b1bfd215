"""Email uniqueness per tenant, enforced by the event store rather than by a read model.

An aggregate sees only its own stream, so "no two accounts of a tenant share an email" cannot
be an `Account` rule. Instead each (tenant, email) pair has a claim stream whose id is derived
from the pair; registering appends to it with `NO_STREAM`, so of two concurrent registrations
exactly one claim is stored and the other gets a `ConcurrencyError`.

The claim names the account it was made for, and is written *before* the account. A crash
between the two leaves a claim without an account; the next registration with that email finds
the claim, sees no account, and creates the account under the claimed id (still with
`NO_STREAM`, so a race there has one winner too). An email is therefore never stuck.
The claim also serves as the login index: email → account id.
"""

from __future__ import annotations

import json
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event

from domain.ids import MERCATO_NAMESPACE


def email_claim_id(tenant_id: str, normalised_email: str) -> UUID:
    # JSON keeps the pair unambiguous: "a:b" + "c@d.org" and "a" + "b:c@d.org" differ.
    return uuid5(MERCATO_NAMESPACE, "email-claim:" + json.dumps([tenant_id, normalised_email]))


class EmailClaim(Aggregate):
    """The one account of a tenant that may use an email address."""

    @event("Claimed")
    def __init__(self, id: UUID, account_id: UUID) -> None:
        self.account_id = account_id
