"""Mercato as the benchmarks run it: real processes (`mercato serve`, `mercato worker …`) started
with a settings environment, waited for, measured (peak RSS) and stopped with SIGTERM.

Each scenario builds a `BenchEnvironment` (one profile, one fresh namespace: Postgres database,
Kafka topic prefix, Redis key prefix, Elasticsearch index prefix, chdb folder, data folder),
then starts the processes it needs with `MercatoProcess.start(...)`. Peak RSS comes from the
kernel (`VmHWM` in /proc/<pid>/status), read just before a process is stopped, so nothing has
to sample while the benchmark runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
import time
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from infrastructure.settings import PRODUCTION_RATE_LIMITS, RATE_LIMIT_OFF
from mercato_bench import report

READY_WITHIN = 90.0
"""Seconds a process may take to start (imports, migrations, connections)."""
STOP_WITHIN = 30.0
"""Seconds a process may take to stop after SIGTERM before it is killed."""


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@dataclass(frozen=True)
class BenchEnvironment:
    """The `MERCATO_*` settings every process of one scenario shares: one profile and one
    namespace of its own on each service, so runs never see each other's data."""

    profile: str
    """"services" (Postgres, Kafka, Redis, Elasticsearch, chdb) or "embedded" (SQLite, chdb)."""
    run_dir: Path
    """Logs, the embedded data folder and the chdb folder live here."""
    postgres_dsn: str = ""
    """The scenario's own database (services profile)."""
    variables: Mapping[str, str] = field(default_factory=dict)
    """Extra `MERCATO_*` settings (names without the prefix, e.g. {"LOG_LEVEL": "INFO"})."""
    namespace: str = field(default_factory=lambda: uuid.uuid4().hex[:10])

    @property
    def chdb_folder(self) -> Path:
        return self.run_dir / "clickhouse"

    @property
    def kafka_topic_prefix(self) -> str:
        return f"mercato-bench-{self.namespace}."

    @property
    def redis_key_prefix(self) -> str:
        return f"mercato-bench:{self.namespace}:"

    @property
    def elasticsearch_index_prefix(self) -> str:
        return f"mercato-bench-{self.namespace}-"

    def environ(self, **variables: str) -> dict[str, str]:
        """This process's environment without any `MERCATO_*` setting of its own, plus the
        scenario's settings, plus `variables` (names without the prefix)."""
        environment = {
            name: value for name, value in os.environ.items() if not name.startswith("MERCATO_")
        }
        settings = {
            "PROFILE": self.profile,
            "DATA_DIR": str(self.run_dir / "data"),
            "CLICKHOUSE_URL": f"chdb://{self.chdb_folder}",
            "LOG_LEVEL": "WARNING",
            # Signing up benchmark users is set-up, not the measurement: cheap hashing.
            "PASSWORD_HASH_TIME_COST": "1",
            "PASSWORD_HASH_MEMORY_KIB": "8",
            "PASSWORD_HASH_PARALLELISM": "1",
            # A closed loop of a few clients on one address is the measurement, not a flood.
            "RATE_LIMITS": json.dumps(dict.fromkeys(PRODUCTION_RATE_LIMITS, RATE_LIMIT_OFF)),
        }
        if self.profile == "services":
            settings |= {
                "POSTGRES_DSN": self.postgres_dsn,
                "KAFKA_TOPIC_PREFIX": self.kafka_topic_prefix,
                "REDIS_KEY_PREFIX": self.redis_key_prefix,
                "ELASTICSEARCH_INDEX_PREFIX": self.elasticsearch_index_prefix,
            }
        settings |= dict(self.variables) | variables
        environment |= {f"MERCATO_{name.upper()}": value for name, value in settings.items()}
        environment["PYTHONPATH"] = str(REPOSITORY)
        environment.setdefault("OTEL_SDK_DISABLED", "true")
        return environment


REPOSITORY = Path(__file__).resolve().parents[2]


@dataclass
class MercatoProcess:
    """One running `python -m interfaces.cli.main …` process."""

    name: str
    """What the results call it: "api", "relay", "projector views", …"""
    process: asyncio.subprocess.Process
    log: Path
    port: int | None = None
    """The HTTP port of `serve`, the metrics port of a worker (None without one)."""
    peak_rss_mib: float | None = None
    """Filled in by `stop()`: the largest peak RSS among the process and its children (uvicorn
    workers), in MiB."""
    peak_rss_by_pid: dict[int, float] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def base_url(self) -> str:
        assert self.port is not None, f"{self.name} listens on no port"
        return f"http://127.0.0.1:{self.port}"

    @classmethod
    async def start(
        cls,
        name: str,
        arguments: Sequence[str],
        environment: BenchEnvironment,
        *,
        port: int | None = None,
        variables: Mapping[str, str] | None = None,
    ) -> MercatoProcess:
        """Start `mercato <arguments>`; its output goes to `<run_dir>/<name>.log`."""
        environment.run_dir.mkdir(parents=True, exist_ok=True)
        log = environment.run_dir / f"{name.replace(' ', '-')}.log"
        with log.open("ab") as output:  # the child keeps its own copy of the descriptor
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                *("-m", "interfaces.cli.main", *arguments),
                env=environment.environ(**(variables or {})),
                cwd=environment.run_dir,  # a folder without a .env file
                stdin=asyncio.subprocess.DEVNULL,
                stdout=output,
                stderr=output,
                start_new_session=True,  # a Ctrl-C of the benchmark reaches it through stop()
            )
        return cls(name=name, process=process, log=log, port=port)

    async def wait_http(self, path: str = "/readyz", *, within: float = READY_WITHIN) -> None:
        """Wait until `GET path` answers 200 on this process's port."""
        deadline = time.monotonic() + within
        async with httpx.AsyncClient(base_url=self.base_url, timeout=2.0) as client:
            while True:
                if self.process.returncode is not None:
                    raise ProcessFailedError(self, "exited while starting")
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(path)).status_code == 200:
                        return
                if time.monotonic() > deadline:
                    raise ProcessFailedError(self, f"{path} did not answer 200 in {within:.0f} s")
                await asyncio.sleep(0.2)

    def measure_peak_rss(self) -> float | None:
        """Peak RSS (MiB) of the process and each of its children, as the kernel recorded it."""
        pids = [self.pid, *_children_of(self.pid)]
        for pid in pids:
            peak = _peak_rss_mib(pid)
            if peak is not None:
                self.peak_rss_by_pid[pid] = max(peak, self.peak_rss_by_pid.get(pid, 0.0))
        if self.peak_rss_by_pid:
            self.peak_rss_mib = max(self.peak_rss_by_pid.values())
        return self.peak_rss_mib

    async def stop(self, *, within: float = STOP_WITHIN) -> int | None:
        """Record the peak RSS, then SIGTERM and wait (SIGKILL after `within` seconds)."""
        if self.process.returncode is not None:
            return self.process.returncode
        self.measure_peak_rss()
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(self.process.wait(), within)
        except TimeoutError:
            report.progress(f"{self.name} (pid {self.pid}) ignored SIGTERM for {within:.0f} s")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
            return await self.process.wait()

    def memory_row(self) -> dict[str, Any]:
        return {
            "process": self.name,
            "peak_rss_mib": None if self.peak_rss_mib is None else round(self.peak_rss_mib, 1),
            "processes": len(self.peak_rss_by_pid),
        }

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class ProcessFailedError(RuntimeError):
    def __init__(self, process: MercatoProcess, what: str) -> None:
        super().__init__(
            f"{process.name} (pid {process.pid}) {what}; the end of {process.log}:\n"
            f"{process.log_tail()}"
        )


@contextlib.asynccontextmanager
async def stopped_at_exit(*processes: MercatoProcess) -> AsyncIterator[list[MercatoProcess]]:
    """Stop the given processes (and any appended to the yielded list) on the way out, in
    reverse order, even when the scenario fails."""
    running = list(processes)
    try:
        yield running
    finally:
        for process in reversed(running):
            await process.stop()


def _children_of(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(part) for part in text.split()]


def _peak_rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return None
