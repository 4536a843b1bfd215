"""Hot views of wallets (the `views` sink: Redis, or its embedded twin).

Documents:
- `<tenant>:wallet:<wallet id>` — owner, kind, currency; the counters `balance`, `credited` and
  `paid_out`, each the sum of one contribution per movement reference (a credit adds to the
  balance, a debit takes from it), so a redelivered movement never counts twice; and one field
  per movement, `movement.<position>` (zero-padded, so the names sort in log order), of which
  the query shows the newest.
- `<tenant>:account-wallets:<owner id>` — the owner's wallets, one field per currency holding
  the wallet's id, from `Opened`: how `GET /wallets/me` finds them. The platform's wallets have
  no owner and no list.

A wallet's movements all come from its own stream, in order; a movement reference is unique
within a wallet (the aggregate records each reference once), so it names the contribution.
"""

from __future__ import annotations

from typing import Any

from application.ports.read_model_sink import Contribute, JsonValue, Operation, SetFields
from domain.wallet import MovementKind, Wallet
from projections.definition import ProjectedEvent, Projection, event_type

MOVEMENT_PREFIX = "movement."
RECENT_MOVEMENTS = 20
"""How many movements a wallet's view shows, newest first."""


def wallet_doc(tenant_id: str, wallet_id: str) -> str:
    return f"{tenant_id}:wallet:{wallet_id}"


def account_wallets_doc(tenant_id: str, owner_id: str) -> str:
    return f"{tenant_id}:account-wallets:{owner_id}"


def recent_movements(
    fields: dict[str, JsonValue], limit: int = RECENT_MOVEMENTS
) -> list[dict[str, Any]]:
    """The newest `limit` movements of a wallet document, newest first."""
    names = sorted((name for name in fields if name.startswith(MOVEMENT_PREFIX)), reverse=True)
    return [fields[name] for name in names[:limit]]


def on_opened(event: ProjectedEvent) -> list[Operation]:
    opened: Any = event.event
    owner_id = None if opened.owner_id is None else str(opened.owner_id)
    operations: list[Operation] = [
        SetFields(
            wallet_doc(event.tenant_id, event.stream_id),
            {
                "id": event.stream_id,
                "kind": str(opened.kind.value),
                "owner_id": owner_id,
                "currency": opened.currency,
                "opened_at": opened.timestamp.isoformat(),
                "version": event.record.stream_version,
            },
        )
    ]
    if owner_id is not None:
        operations.append(
            SetFields(
                account_wallets_doc(event.tenant_id, owner_id), {opened.currency: event.stream_id}
            )
        )
    return operations


def _moved(kind: MovementKind) -> Any:
    """A handler for a credit or a debit: the counters it moves and its line in the list."""
    sign, total = (1, "credited") if kind is MovementKind.CREDIT else (-1, "paid_out")

    def handler(event: ProjectedEvent) -> list[Operation]:
        moved: Any = event.event
        doc = wallet_doc(event.tenant_id, event.stream_id)
        reference: str = moved.reference
        amount: int = moved.amount.amount
        reason = getattr(moved, "reason", None)
        movement = {
            "kind": kind.value,
            "amount": {"amount": amount, "currency": moved.amount.currency},
            "reason": None if reason is None else str(reason.value),
            "reference": reference,
            "at": moved.timestamp.isoformat(),
            "position": event.position,
        }
        return [
            Contribute(doc, "balance", reference, sign * amount),
            Contribute(doc, total, reference, amount),
            SetFields(
                doc,
                {
                    f"{MOVEMENT_PREFIX}{event.position:020d}": movement,
                    "version": event.record.stream_version,
                },
            ),
        ]

    return handler


WALLET_VIEWS = Projection(
    name="wallet_views",
    version=1,
    sink="views",
    description="Wallet balances and recent movements (GET /wallets/me, GET /wallets/{currency}).",
    handlers={
        event_type(Wallet, "Opened"): on_opened,
        event_type(Wallet, "Credited"): _moved(MovementKind.CREDIT),
        event_type(Wallet, "Debited"): _moved(MovementKind.DEBIT),
    },
)
