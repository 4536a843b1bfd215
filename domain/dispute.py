"""How an admin resolves a dispute: shared by the order and its escrow."""

from __future__ import annotations

from enum import StrEnum


class Resolution(StrEnum):
    RELEASE = "release"
    """The seller is paid, as if the buyer had confirmed receipt."""
    REFUND = "refund"
    """The buyer gets the money back through the payment provider."""
