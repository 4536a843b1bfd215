"""Response and request models shared by several routers."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class RequestBody(BaseModel):
    """A request body: unknown fields are refused (there is no `tenant` field to slip in)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class CommandAccepted(BaseModel):
    """What every command answers with."""

    version: int = Field(
        description="The changed stream's version after the command (the ETag of a resource)."
    )
    position: int = Field(
        description=(
            "The global log position reached (a consistency token): a read model that has "
            "caught up with it reflects this command."
        )
    )


class ErrorBody(BaseModel):
    """The body of every error but the 422s (which have FastAPI's validation-error shape)."""

    detail: str
    code: str = Field(description="The error's kind in snake_case, e.g. `illegal_transition`.")


_MEANINGS = {
    400: "A webhook whose signature does not check out (bad, missing or stale), or malformed.",
    401: "Missing, malformed, forged, expired or revoked credentials.",
    403: "The caller may not do this.",
    404: "No such resource in the caller's tenant.",
    409: "The resource's current state or version refuses the command.",
    413: "The request body is over the size limit.",
    429: "Over a rate limit; retry after `Retry-After` seconds (see `RateLimit-Policy`).",
    502: "The payment provider failed.",
    503: (
        "The read model has not reached `min_position` in time (with `Retry-After` and the "
        "lag), or is not built yet; retry."
    ),
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI descriptions of the error statuses a route can answer with."""
    return {status: {"model": ErrorBody, "description": _MEANINGS[status]} for status in statuses}
