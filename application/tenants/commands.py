"""The tenants' commands: operators' commands, sent from the CLI, never over HTTP."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from domain.tenant import TENANT_ID_PATTERN


class CreateTenant(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    tenant_id: str = Field(pattern=TENANT_ID_PATTERN)
