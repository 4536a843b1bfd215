"""An HTTP load generator for the benchmarks, run as a process of its own so it never shares a
core's event loop with what it measures:

    python -m mercato_bench.loadgen job.json result.json     (or a job on stdin, a result
                                                                  on stdout: `-` for either)

Two modes:

- ``open`` — open loop at a fixed arrival rate: request *i* is due at ``t0 + i / rate``,
  whether or not earlier requests have completed, over a keep-alive pool of many connections.
  Latency is measured from the request's *scheduled* time, not from when it could actually be
  sent: when the server (or the pool, or this process) falls behind, the waiting counts, so
  coordinated omission does not hide a stall. How late the generator itself sent each request
  is recorded too (``send_lag``), so an overloaded generator shows.
- ``saturation`` — closed loop: `concurrency` clients each send their next request as soon as
  the previous one is answered, as fast as the server allows; latency is from the actual send.
  The achieved rate is the server's maximum at that concurrency.

Requests of both modes cycle through the job's bodies and bearer tokens and may carry a fresh
`Idempotency-Key` each. Every answer's JSON `position` (the command's consistency token) is
kept. A ``follow`` section makes the generator send, after every `every`-th successful
command, a read with the command's position as `Mercato-Min-Position`, and time it from the
command's answer: how long until a read model reflected the command, as a client sees it.

The first `warmup` seconds run at the same load and are left out of every figure. Times are
`time.monotonic()` (CLOCK_MONOTONIC, the same clock in every process of the machine), so
another process can line them up with its own observations: request *i* was answered at
``t0 + offsets[i] + latencies[i]``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MODES = ("open", "saturation")
CLIENT_ERROR = 0
"""The status recorded when no HTTP answer came (connection error, timeout)."""


@dataclass(frozen=True)
class FollowUp:
    """A read sent after every `every`-th successful command, waiting for its position."""

    path: str
    token: str
    every: int = 1
    header: str = "Mercato-Min-Position"

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FollowUp:
        return cls(
            path=str(data["path"]),
            token=str(data["token"]),
            every=max(1, int(data.get("every", 1))),
            header=str(data.get("header", "Mercato-Min-Position")),
        )


@dataclass(frozen=True)
class Job:
    """What one load generator run does."""

    base_url: str
    path: str
    method: str = "POST"
    mode: str = "open"
    rate: float = 100.0
    """Open loop: requests per second."""
    duration: float = 10.0
    """Seconds measured, after the warm-up."""
    warmup: float = 0.0
    """Seconds at the same load before the measurement, left out of the figures."""
    concurrency: int = 32
    """Saturation: concurrent clients. Open loop: ignored (see `connections`)."""
    connections: int = 256
    """The most connections the keep-alive pool opens."""
    timeout: float = 30.0
    bodies: Sequence[Any] = ()
    """JSON bodies, request i sends bodies[i % len]; none: no body."""
    tokens: Sequence[str] = ()
    """Bearer tokens, request i sends tokens[i % len]; none: no Authorization."""
    headers: dict[str, str] = field(default_factory=dict)
    idempotency_prefix: str | None = None
    """When set, request i carries `Idempotency-Key: <prefix>-<i>`."""
    follow: FollowUp | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Job:
        job = cls(
            base_url=str(data["base_url"]).rstrip("/"),
            path=str(data["path"]),
            method=str(data.get("method", "POST")).upper(),
            mode=str(data.get("mode", "open")),
            rate=float(data.get("rate", 100.0)),
            duration=float(data.get("duration", 10.0)),
            warmup=float(data.get("warmup", 0.0)),
            concurrency=int(data.get("concurrency", 32)),
            connections=int(data.get("connections", 256)),
            timeout=float(data.get("timeout", 30.0)),
            bodies=list(data.get("bodies", [])),
            tokens=[str(token) for token in data.get("tokens", [])],
            headers={str(k): str(v) for k, v in dict(data.get("headers", {})).items()},
            idempotency_prefix=data.get("idempotency_prefix"),
            follow=FollowUp.from_json(data["follow"]) if data.get("follow") else None,
        )
        job.check()
        return job

    def check(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {self.mode!r}")
        if self.duration <= 0 or self.warmup < 0:
            raise ValueError("duration must be positive and warmup not negative")
        if self.mode == "open" and self.rate <= 0:
            raise ValueError("an open-loop rate must be positive")
        if self.concurrency < 1 or self.connections < 1:
            raise ValueError("concurrency and connections must be positive")

    @property
    def total_seconds(self) -> float:
        return self.warmup + self.duration


def schedule(rate: float, seconds: float) -> list[float]:
    """The open loop's send offsets: request i at i / rate, for every i below rate x seconds."""
    if rate <= 0 or seconds <= 0:
        return []
    count = math.floor(rate * seconds + 1e-9)
    return [index / rate for index in range(count)]


def due_until(offsets: Sequence[float], start: int, now: float) -> int:
    """The index after the last offset at or before `now`, scanning from `start`: the requests
    due by `now` are offsets[start:result]. Late requests are all due at once: the open loop
    never skips one."""
    index = start
    while index < len(offsets) and offsets[index] <= now:
        index += 1
    return index


@dataclass
class Records:
    """Per request, in the order they were issued: columns, so the result stays compact."""

    offsets: list[float] = field(default_factory=list)
    """Seconds from t0 to the scheduled send (open) or the actual send (saturation)."""
    latencies: list[float] = field(default_factory=list)
    """Seconds from `offsets` to the complete answer (or the error)."""
    send_lags: list[float] = field(default_factory=list)
    """Seconds the generator sent later than scheduled (0 in saturation mode)."""
    statuses: list[int] = field(default_factory=list)
    positions: list[int | None] = field(default_factory=list)
    follow: list[list[float]] = field(default_factory=list)
    """[request index, seconds from the command's answer to the follow-up's, status]."""
    client_errors: Counter[str] = field(default_factory=Counter)

    def add(
        self, offset: float, latency: float, send_lag: float, status: int, position: int | None
    ) -> int:
        self.offsets.append(offset)
        self.latencies.append(latency)
        self.send_lags.append(send_lag)
        self.statuses.append(status)
        self.positions.append(position)
        return len(self.offsets) - 1

    def as_json(self) -> dict[str, Any]:
        return {
            "offsets": [round(value, 6) for value in self.offsets],
            "latencies": [round(value, 6) for value in self.latencies],
            "send_lags": [round(value, 6) for value in self.send_lags],
            "statuses": self.statuses,
            "positions": self.positions,
            "follow": self.follow,
            "client_errors": dict(self.client_errors),
        }


def summarize(
    offsets: Sequence[float],
    latencies: Sequence[float],
    statuses: Sequence[int],
    *,
    warmup: float,
    duration: float,
    send_lags: Sequence[float] = (),
) -> dict[str, Any]:
    """The figures of one run: requests measured (issued after the warm-up), answered ones per
    second, errors by status (0: no answer), and latency percentiles in ms of the successful
    (2xx) ones and of all."""
    measured = [index for index, offset in enumerate(offsets) if offset >= warmup]
    ok = [index for index in measured if 200 <= statuses[index] < 300]
    errors = Counter(str(statuses[i]) for i in measured if not 200 <= statuses[i] < 300)
    lags = [send_lags[index] for index in measured] if send_lags else []
    return {
        "requests": len(measured),
        "ok": len(ok),
        "errors": dict(sorted(errors.items())),
        "error_count": sum(errors.values()),
        "achieved_rate": round(len(ok) / duration, 1) if duration > 0 else None,
        "offered_rate": round(len(measured) / duration, 1) if duration > 0 else None,
        "latency_ms": _percentiles([latencies[index] for index in ok]),
        "latency_all_ms": _percentiles([latencies[index] for index in measured]),
        "send_lag_ms": _percentiles(lags),
    }


def _percentiles(seconds: Sequence[float]) -> dict[str, float]:
    ordered = sorted(seconds)
    if not ordered:
        return {}

    def at(fraction: float) -> float:
        rank = fraction * (len(ordered) - 1)
        low = math.floor(rank)
        high = min(low + 1, len(ordered) - 1)
        return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)

    return {
        "p50": round(at(0.50) * 1000, 3),
        "p99": round(at(0.99) * 1000, 3),
        "p99.9": round(at(0.999) * 1000, 3),
        "mean": round(sum(ordered) / len(ordered) * 1000, 3),
        "max": round(ordered[-1] * 1000, 3),
    }


def position_of(body: bytes) -> int | None:
    """The `position` of a JSON answer, if it has one."""
    try:
        value = json.loads(body).get("position")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, int) else None


# -- the generator -----------------------------------------------------------------------------


class _Generator:
    def __init__(self, job: Job) -> None:
        self.job = job
        self.records = Records()
        self.bodies = [json.dumps(body).encode() for body in job.bodies]
        self.follow_tasks: set[asyncio.Task[None]] = set()
        self.t0 = 0.0

    def _request(self, index: int) -> tuple[bytes | None, dict[str, str]]:
        job = self.job
        headers = dict(job.headers)
        if job.tokens:
            headers["Authorization"] = f"Bearer {job.tokens[index % len(job.tokens)]}"
        if job.idempotency_prefix is not None:
            headers["Idempotency-Key"] = f"{job.idempotency_prefix}-{index}"
        body = self.bodies[index % len(self.bodies)] if self.bodies else None
        if body is not None:
            headers["Content-Type"] = "application/json"
        return body, headers

    async def _send(self, session: Any, index: int) -> tuple[int, int | None]:
        import aiohttp

        body, headers = self._request(index)
        try:
            async with session.request(
                self.job.method, self.job.base_url + self.job.path, data=body, headers=headers
            ) as response:
                payload = await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError, OSError) as error:
            self.records.client_errors[type(error).__name__] += 1
            return CLIENT_ERROR, None
        return status, position_of(payload) if 200 <= status < 300 else None

    async def _timed(self, session: Any, index: int, offset: float) -> None:
        sent_at = time.monotonic()
        status, position = await self._send(session, index)
        answered = time.monotonic()
        latency = answered - (self.t0 + offset)
        row = self.records.add(offset, latency, sent_at - (self.t0 + offset), status, position)
        follow = self.job.follow
        if follow is not None and position is not None and index % follow.every == 0:
            task = asyncio.create_task(self._follow(session, row, position, answered))
            self.follow_tasks.add(task)
            task.add_done_callback(self.follow_tasks.discard)

    async def _follow(self, session: Any, row: int, position: int, answered: float) -> None:
        import aiohttp

        follow = self.job.follow
        assert follow is not None
        headers = {"Authorization": f"Bearer {follow.token}", follow.header: str(position)}
        try:
            async with session.get(self.job.base_url + follow.path, headers=headers) as response:
                await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError, OSError) as error:
            self.records.client_errors[f"follow {type(error).__name__}"] += 1
            status = CLIENT_ERROR
        self.records.follow.append([row, round(time.monotonic() - answered, 6), status])

    async def run(self) -> dict[str, Any]:
        import aiohttp

        job = self.job
        connector = aiohttp.TCPConnector(limit=job.connections, keepalive_timeout=60)
        timeout = aiohttp.ClientTimeout(total=job.timeout)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            started = time.time()
            if job.mode == "open":
                await self._open_loop(session)
            else:
                await self._closed_loop(session)
            if self.follow_tasks:
                await asyncio.wait(set(self.follow_tasks), timeout=job.timeout)
        summary = summarize(
            self.records.offsets,
            self.records.latencies,
            self.records.statuses,
            warmup=job.warmup,
            duration=job.duration,
            send_lags=self.records.send_lags if job.mode == "open" else (),
        )
        return {
            "mode": job.mode,
            "rate": job.rate if job.mode == "open" else None,
            "concurrency": job.concurrency if job.mode == "saturation" else None,
            "connections": job.connections,
            "duration": job.duration,
            "warmup": job.warmup,
            "t0_monotonic": self.t0,
            "started_at_unix": started,
            "event_loop": type(asyncio.get_running_loop()).__module__,
            "summary": summary,
            "records": self.records.as_json(),
        }

    async def _open_loop(self, session: Any) -> None:
        offsets = schedule(self.job.rate, self.job.total_seconds)
        pending: set[asyncio.Task[None]] = set()
        self.t0 = time.monotonic() + 0.05
        next_index = 0
        while next_index < len(offsets):
            now = time.monotonic() - self.t0
            due = due_until(offsets, next_index, now)
            for index in range(next_index, due):
                task = asyncio.create_task(self._timed(session, index, offsets[index]))
                pending.add(task)
                task.add_done_callback(pending.discard)
            next_index = due
            if next_index < len(offsets):
                await asyncio.sleep(max(0.0, offsets[next_index] - (time.monotonic() - self.t0)))
        if pending:
            await asyncio.wait(set(pending), timeout=self.job.timeout + 1)

    async def _closed_loop(self, session: Any) -> None:
        counter = iter(range(sys.maxsize))
        self.t0 = time.monotonic()
        end = self.t0 + self.job.total_seconds

        async def client() -> None:
            while (sent_at := time.monotonic()) < end:
                index = next(counter)
                status, position = await self._send(session, index)
                self.records.add(
                    sent_at - self.t0, time.monotonic() - sent_at, 0.0, status, position
                )

        await asyncio.gather(*(client() for _ in range(self.job.concurrency)))


async def run_job(job: Job) -> dict[str, Any]:
    """Run one job in this process (the benchmarks run `main` in a process of its own)."""
    return await _Generator(job).run()


def _new_event_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


def main(arguments: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if arguments is None else arguments)
    source = arguments[0] if arguments else "-"
    target = arguments[1] if len(arguments) > 1 else "-"
    text = sys.stdin.read() if source == "-" else Path(source).read_text()
    job = Job.from_json(json.loads(text))
    with asyncio.Runner(loop_factory=_new_event_loop) as runner:
        result = runner.run(run_job(job))
    output = json.dumps(result, separators=(",", ":"))
    if target == "-":
        sys.stdout.write(output)
    else:
        Path(target).write_text(output)
    return 0


# -- the caller's side -------------------------------------------------------------------------


async def run_in_process(job: dict[str, Any], work_dir: Path, *, name: str) -> dict[str, Any]:
    """Run the load generator as a process of its own on `job` (the JSON of a `Job`) and
    return its result; the job and the result go through files in `work_dir`."""
    from mercato_bench.processes import REPOSITORY

    Job.from_json(job)  # refuse a bad job here, not in the child
    job_file = work_dir / f"{name}.job.json"
    result_file = work_dir / f"{name}.result.json"
    log_file = work_dir / f"{name}.log"

    def prepare() -> None:  # small files: blocking is fine, but not on the loop's time
        work_dir.mkdir(parents=True, exist_ok=True)
        job_file.write_text(json.dumps(job))
        result_file.unlink(missing_ok=True)

    await asyncio.to_thread(prepare)
    limit = float(job.get("warmup", 0)) + float(job["duration"]) + float(job.get("timeout", 30))
    with log_file.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            *("-m", "mercato_bench.loadgen", str(job_file), str(result_file)),
            cwd=REPOSITORY,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
        try:
            code = await asyncio.wait_for(process.wait(), limit + 30)
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
            raise
    if code != 0 or not result_file.exists():
        tail = log_file.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"the load generator exited with {code}: {tail}")
    result: dict[str, Any] = json.loads(result_file.read_text())
    return result


if __name__ == "__main__":
    raise SystemExit(main())
