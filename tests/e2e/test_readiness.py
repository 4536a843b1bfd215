"""`mercato serve` on the services profile as a real process: `/readyz` follows Elasticsearch
going away and coming back (through a TCP relay of the test's own, so the shared server is
never stopped), and SIGTERM stops the server gracefully, its logs JSON lines to the end."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import RUN_TOPIC_PREFIX

pytestmark = pytest.mark.e2e

REPOSITORY = Path(__file__).resolve().parents[2]
ELASTICSEARCH = ("127.0.0.1", 9200)
PATIENCE = 60.0
"""Seconds for the server to start (imports, migrations, connections)."""
STOP_WITHIN = 15.0


def output_of(log: Path) -> str:
    return log.read_text()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


class TcpRelay:
    """Forwards connections on a local port to a target: `close()` makes the target look down
    (refused connections, the open ones cut), `open()` brings it back on the same port."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()

    async def open(self) -> None:
        self._server = await asyncio.start_server(
            self._forward, "127.0.0.1", self.port, reuse_address=True
        )

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for pipe in list(self._pipes):
            pipe.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        pipes = [
            asyncio.create_task(_pipe(reader, upstream_writer)),
            asyncio.create_task(_pipe(upstream_reader, writer)),
        ]
        self._pipes.update(pipes)
        try:
            await asyncio.gather(*pipes, return_exceptions=True)
        finally:
            self._pipes.difference_update(pipes)
            for stream in (writer, upstream_writer):
                stream.close()


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    while data := await source.read(65536):
        sink.write(data)
        await sink.drain()
    sink.close()


@pytest.fixture
async def elasticsearch_relay() -> AsyncIterator[TcpRelay]:
    relay = TcpRelay(ELASTICSEARCH)
    await relay.open()
    try:
        yield relay
    finally:
        await relay.close()


def serve_environment(postgres_dsn: str, data_dir: Path, **variables: str) -> dict[str, str]:
    """The services profile, with the analytics engine (chdb) in a folder of its own: the
    folder this test process holds is locked to it."""
    environment = {
        name: value for name, value in os.environ.items() if not name.startswith("MERCATO_")
    }
    environment |= {
        "MERCATO_PROFILE": "services",
        "MERCATO_POSTGRES_DSN": postgres_dsn,
        "MERCATO_DATA_DIR": str(data_dir),
        "MERCATO_CLICKHOUSE_URL": f"chdb://{data_dir / 'clickhouse'}",
        "MERCATO_KAFKA_TOPIC_PREFIX": f"{RUN_TOPIC_PREFIX}readiness-{os.urandom(5).hex()}.",
        "MERCATO_LOG_LEVEL": "INFO",
        "PYTHONPATH": str(REPOSITORY),
    }
    return environment | {f"MERCATO_{name.upper()}": value for name, value in variables.items()}


@contextlib.asynccontextmanager
async def serving(
    environment: dict[str, str], port: int, log: Path
) -> AsyncIterator[tuple[asyncio.subprocess.Process, httpx.AsyncClient]]:
    with log.open("wb") as stderr:  # the child keeps its own copy of the descriptor
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            *("-m", "interfaces.cli.main", "serve", "--port", str(port)),
            env=environment,
            cwd=log.parent,  # a folder without a .env file
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            async with asyncio.timeout(PATIENCE):
                while True:
                    assert process.returncode is None, output_of(log)
                    with contextlib.suppress(httpx.TransportError):
                        if (await http.get("/healthz")).status_code == 200:
                            break
                    await asyncio.sleep(0.1)
            yield process, http
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_readyz_names_elasticsearch_while_it_is_away_and_is_ready_once_it_is_back(
    fresh_postgres_dsn: str, tmp_path: Path, elasticsearch_relay: TcpRelay
) -> None:
    environment = serve_environment(
        fresh_postgres_dsn,
        tmp_path,
        elasticsearch_url=f"http://127.0.0.1:{elasticsearch_relay.port}",
    )
    async with serving(environment, free_port(), tmp_path / "serve.log") as (_, http):
        await until_ready(http)

        await elasticsearch_relay.close()
        away = await http.get("/readyz")
        assert away.status_code == 503
        assert away.json()["status"] == "unavailable"
        assert away.json()["failing"] == ["elasticsearch"]
        (elasticsearch,) = [d for d in away.json()["dependencies"] if not d["ok"]]
        assert elasticsearch["name"] == "elasticsearch" and elasticsearch["detail"]

        await elasticsearch_relay.open()
        back = await until_ready(http)
        assert back["failing"] == []


async def until_ready(http: httpx.AsyncClient, *, within: float = 30.0) -> dict[str, object]:
    """Poll `/readyz` until it answers 200: a probe has 2 s, which a busy shared service may
    miss now and then, so one 503 alone proves nothing here."""
    answer: dict[str, object] = {}
    try:
        async with asyncio.timeout(within):
            while True:
                response = await http.get("/readyz")
                answer = response.json()
                if response.status_code == 200:
                    return answer
                await asyncio.sleep(0.5)
    except TimeoutError:
        raise AssertionError(f"not ready within {within:g} s: {answer}") from None


async def test_sigterm_stops_the_server_gracefully_with_json_logs_to_the_end(
    fresh_postgres_dsn: str, tmp_path: Path
) -> None:
    log = tmp_path / "serve.log"
    environment = serve_environment(fresh_postgres_dsn, tmp_path)
    async with serving(environment, free_port(), log) as (process, http):
        assert (await http.get("/healthz")).status_code == 200
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(STOP_WITHIN):
            status = await process.wait()

    lines = output_of(log).splitlines()
    assert status == 0, "\n".join(lines)
    # The banner (wrapped to 80 columns) is for a person; every other line is a JSON log line,
    # uvicorn's included.
    banner = [line for line in lines if not line.startswith("{")]
    assert " ".join(banner).startswith("Mercato on http://"), banner
    assert len(banner) <= 2, banner
    records = [json.loads(line) for line in lines if line.startswith("{")]
    messages = [(record["logger"], record["message"]) for record in records]
    assert ("uvicorn.error", "Application startup complete.") in messages
    assert ("uvicorn.error", "Application shutdown complete.") in messages
    access = [r for r in records if r["logger"] == "uvicorn.access"]
    assert any("GET /healthz" in record["message"] for record in access), messages
    assert all({"timestamp", "level", "message"} <= set(record) for record in records)
