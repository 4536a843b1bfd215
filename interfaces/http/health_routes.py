"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status
from pydantic import BaseModel

from infrastructure.health import run_probes
from interfaces.bootstrap import Container

router = APIRouter(tags=["health"])


class Liveness(BaseModel):
    status: str


class DependencyStatus(BaseModel):
    name: str
    ok: bool
    detail: str


class Readiness(BaseModel):
    status: str
    profile: str
    dependencies: list[DependencyStatus]
    failing: list[str]


@router.get("/healthz", response_model=Liveness)
async def healthz() -> Liveness:
    """The process is alive and serving HTTP."""
    return Liveness(status="ok")


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "A dependency is not answering."}},
)
async def readyz(request: Request, response: Response) -> Readiness:
    """Every dependency of the running profile answers; 503 names the ones that do not."""
    container: Container = request.app.state.container
    results = await run_probes(container.probes)
    failing = [result.name for result in results if not result.ok]
    if failing:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return Readiness(
        status="unavailable" if failing else "ready",
        profile=container.settings.profile.value,
        dependencies=[DependencyStatus(name=r.name, ok=r.ok, detail=r.detail) for r in results],
        failing=failing,
    )
