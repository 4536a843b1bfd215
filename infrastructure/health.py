"""Readiness probes: each answers whether one dependency of the running profile is usable."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

ProbeCheck = Callable[[], Awaitable[None]]

PROBE_TIMEOUT_SECONDS = 2.0


@dataclass(frozen=True)
class Probe:
    name: str
    check: ProbeCheck


@dataclass(frozen=True)
class ProbeResult:
    name: str
    ok: bool
    detail: str


async def run_probes(probes: list[Probe]) -> list[ProbeResult]:
    """Run every probe concurrently, each bounded by a timeout; never raises."""
    return list(await asyncio.gather(*(_run(probe) for probe in probes)))


async def _run(probe: Probe) -> ProbeResult:
    try:
        await asyncio.wait_for(probe.check(), PROBE_TIMEOUT_SECONDS)
    except TimeoutError:
        return ProbeResult(probe.name, False, f"no answer within {PROBE_TIMEOUT_SECONDS:g}s")
    except Exception as error:  # a probe reports any failure instead of raising it
        return ProbeResult(probe.name, False, f"{type(error).__name__}: {error}")
    return ProbeResult(probe.name, True, "ok")


def data_dir_probe(data_dir: Path) -> Probe:
    async def check() -> None:
        marker = data_dir / ".ready-probe"
        await asyncio.to_thread(marker.write_text, "ok")

    return Probe("data_dir", check)


def postgres_probe(dsn: str) -> Probe:
    async def check() -> None:
        import asyncpg

        connection = await asyncpg.connect(dsn, timeout=PROBE_TIMEOUT_SECONDS)
        try:
            await connection.fetchval("SELECT 1")
        finally:
            await connection.close()

    return Probe("postgres", check)


def redis_probe(url: str) -> Probe:
    async def check() -> None:
        from redis.asyncio import Redis

        client = Redis.from_url(url, socket_connect_timeout=PROBE_TIMEOUT_SECONDS)
        try:
            await client.ping()
        finally:
            await client.aclose()

    return Probe("redis", check)


def elasticsearch_probe(url: str) -> Probe:
    async def check() -> None:
        import httpx

        # The reduced test distribution may lack GET /, so ask for cluster health instead.
        async with httpx.AsyncClient(timeout=PROBE_TIMEOUT_SECONDS) as client:
            response = await client.get(f"{url}/_cluster/health")
            response.raise_for_status()
            status = response.json().get("status")
            if status not in {"green", "yellow"}:
                raise RuntimeError(f"cluster status is {status}")

    return Probe("elasticsearch", check)


def kafka_probe(bootstrap: str) -> Probe:
    async def check() -> None:
        from aiokafka.admin import AIOKafkaAdminClient

        admin = AIOKafkaAdminClient(
            bootstrap_servers=bootstrap, request_timeout_ms=int(PROBE_TIMEOUT_SECONDS * 1000)
        )
        await admin.start()
        try:
            await admin.describe_cluster()
        finally:
            await admin.close()

    return Probe("kafka", check)


def clickhouse_probe(target: str) -> Probe:
    async def check() -> None:
        if target.startswith("chdb://"):
            # chdb lives inside this process; the analytics adapter checks it on open.
            return
        import httpx

        async with httpx.AsyncClient(timeout=PROBE_TIMEOUT_SECONDS) as client:
            response = await client.get(f"{target.rstrip('/')}/ping")
            response.raise_for_status()

    return Probe("clickhouse", check)
