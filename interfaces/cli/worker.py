"""`mercato worker …`: the background processes of the services profile."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

import typer

from application.sagas.cancellation import cancel_and_wait
from infrastructure.settings import Profile, Settings
from infrastructure.telemetry.logging import configure_logging
from infrastructure.telemetry.metrics import PrometheusOutageReport, serve_metrics
from infrastructure.telemetry.tracing import process_tracing
from interfaces.bootstrap import Container, bootstrap
from interfaces.cli.errors import refuse
from interfaces.cli.settings import settings_or_exit
from interfaces.projection_metrics import report_while_running
from interfaces.saga_metrics import report_sagas_while_running
from projections.outages import Backoff, GaveUp, until_done
from projections.worker import ProjectionWorker

logger = logging.getLogger("mercato.worker")

app = typer.Typer(
    help=(
        "Background workers for the services profile. Each runs until SIGTERM or SIGINT, "
        "then stops gracefully and exits 0."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


MetricsPort = Annotated[
    int | None,
    typer.Option(help="Serve Prometheus metrics at http://0.0.0.0:PORT/metrics.", min=1, max=65535),
]
Grace = Annotated[
    float,
    typer.Option(
        help="Seconds to let the work in hand finish after SIGTERM/SIGINT before it is cut "
        "short (keep it below the orchestrator's own grace period).",
        min=0.1,
        max=300,
    ),
]

SAGAS_SHORT_HELP = "Run the checkout and escrow sagas (services profile only)."
SAGAS_HELP = (
    "Run the checkout and escrow sagas: follow the global log from the group's durable "
    "checkpoint, fire due deadlines (payment timeout, dispute window), and issue the sagas' "
    "commands. Payments this worker requests are settled by its payment simulator."
    "\n\n"
    "Services profile only (MERCATO_PROFILE=services, MERCATO_POSTGRES_DSN). On the embedded "
    "profile `mercato serve` runs the sagas in its own process, so this command refuses "
    "(exit 2)."
    "\n\n"
    "Run as many workers as you like, on one machine or several: they elect a leader that "
    "follows the log (another takes over within the leadership lease if it dies), every worker "
    "fires due deadlines, and no step is ever taken twice."
    "\n\n"
    "On SIGTERM or SIGINT the worker stops its runner (waiting at most --grace seconds), "
    "closes its connections and exits 0. A step cut short is safe: it is taken again, with "
    "the same idempotency keys, by the next runner. Logs go to stderr at MERCATO_LOG_LEVEL."
    "\n\n"
    "With --metrics-port, the saga instances by saga and status and the deadlines pending are "
    "served at /metrics (refreshed every 5 s; the first count reads every saga event in the log)."
)


@app.command("sagas", help=SAGAS_HELP, short_help=SAGAS_SHORT_HELP)
def sagas(
    grace: Annotated[
        float,
        typer.Option(
            help="Seconds to wait for the runner to stop after SIGTERM/SIGINT.", min=0.1, max=60
        ),
    ] = 5.0,
    metrics_port: MetricsPort = None,
) -> None:
    settings = settings_or_exit()
    _services_only(settings, "sagas", runs="the sagas")
    _configure_logging(settings)
    with process_tracing("mercato-sagas"):
        succeeded = asyncio.run(run_sagas(settings, grace=grace, metrics_port=metrics_port))
    if not succeeded:
        raise typer.Exit(code=1)


async def run_sagas(settings: Settings, *, grace: float, metrics_port: int | None = None) -> bool:
    """Run the saga runner until SIGTERM/SIGINT; False if it failed on its own."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGINT)
    for number in signals:
        loop.add_signal_handler(number, stop.set)
    container = bootstrap(settings)
    reporting: list[asyncio.Task[None]] = []
    if metrics_port is not None:
        reporting.append(asyncio.create_task(serve_metrics(metrics_port, stop)))
    try:
        # No background work: this worker runs the runner itself, and the analytics
        # projections a chdb engine needs belong to the API process, not here.
        starting = asyncio.create_task(container.start(background=False))
        if not await _until_stopped(starting, stop, grace):
            logger.info("saga worker stopped before it started")
            return True
        runner = container.marketplace.saga_runner()
        if metrics_port is not None:
            reporting.append(asyncio.create_task(report_sagas_while_running(container, stop)))
        logger.info(
            "saga worker started: profile %s, runner group %s, owner %s",
            settings.profile.value,
            runner.group,
            runner.owner,
        )
        running = asyncio.create_task(runner.run(), name=f"saga-runner-{runner.owner}")
        failed = await _until_stopped(running, stop, grace)
        if failed:
            logger.error("saga worker %s: the runner stopped on its own", runner.owner)
        logger.info(
            "saga worker stopped: profile %s, runner group %s, owner %s",
            settings.profile.value,
            runner.group,
            runner.owner,
        )
        return not failed
    except Exception:
        logger.exception("saga worker failed")
        return False
    finally:
        for task in reporting:  # a census still reading the log must not hold the exit
            await cancel_and_wait(task)
        await container.close()
        for number in signals:
            loop.remove_signal_handler(number)


RELAY_HELP = (
    "Publish the event store's global log to Kafka: one topic per event category "
    "(MERCATO_KAFKA_TOPIC_PREFIX + category, MERCATO_KAFKA_PARTITIONS partitions, created when "
    "missing), key = stream id, CloudEvents headers, plus a watermark tick to every partition "
    "so projections know how far they have read."
    "\n\n"
    "One relay is active at a time (a Postgres advisory lock); start a second one as a standby: "
    "it takes over within a second of the first one's death. The relay resumes from its durable "
    "checkpoint in Postgres; after a crash a few events may be published twice, which the "
    "projections absorb. Services profile only."
)

PROJECTOR_HELP = (
    "Run a projection's live worker (given a store's name, `views`, `search` or `analytics`, "
    "one worker per projection written to it): consume its topics in the projection's "
    "consumer group, apply batches to its read model (checkpoints stored with the data), then "
    "commit offsets."
    "\n\n"
    "Start several for one projection to share its partitions (up to MERCATO_KAFKA_PARTITIONS); "
    "a killed worker's partitions move to the others and nothing is lost or applied twice. A "
    "poison event parks its stream (see `mercato dlq`). A store that refuses or does not "
    "answer within MERCATO_READ_STORE_TIMEOUT does not end the worker: it logs that it is "
    "waiting, backs off and tries the batch again until the store is back "
    "(mercato_projection_stalled, mercato_projection_store_errors_total in /metrics). "
    "`mercato projections status` lists the projections. On SIGTERM the batch in hand is "
    "finished and committed, then the worker exits "
    "0 (a batch still unfinished after --grace seconds is cut short, uncommitted: it comes "
    "again). Services profile only: `mercato serve` runs the projections of the embedded "
    "profile, and the API process runs the analytics projections when ClickHouse is chdb."
)


def _services_only(settings: Settings, command: str, *, runs: str) -> None:
    """Refuse (exit 2) outside the services profile, where `mercato serve` does the work."""
    if settings.profile is not Profile.SERVICES:
        refuse(
            f"`mercato worker {command}` is for the services profile; on the "
            f"{settings.profile.value} profile `mercato serve` runs {runs} in its own process "
            f"(set MERCATO_PROFILE=services to run them in workers)"
        )


def _configure_logging(settings: Settings) -> None:
    """JSON lines (readable ones on a terminal), with trace and span ids."""
    configure_logging(settings.log_level)


@app.command("relay", help=RELAY_HELP, short_help="Publish the event log to Kafka.")
def relay(metrics_port: MetricsPort = None, grace: Grace = 10.0) -> None:
    settings = settings_or_exit()
    _services_only(settings, "relay", runs="the projections and their feed")
    _configure_logging(settings)
    with process_tracing("mercato-relay"):
        succeeded = asyncio.run(
            _run_until_signal(settings, _relay, grace=grace, metrics_port=metrics_port)
        )
    if not succeeded:
        raise typer.Exit(code=1)


@app.command("projector", help=PROJECTOR_HELP, short_help="Run projections' live workers.")
def projector(
    name: Annotated[
        str,
        typer.Argument(
            help="A projection (see `mercato projections status`), or a store: `views`, "
            "`search` or `analytics` runs every projection written to it."
        ),
    ],
    metrics_port: MetricsPort = None,
    grace: Grace = 10.0,
) -> None:
    settings = settings_or_exit()
    _services_only(settings, "projector", runs="the projections")
    _configure_logging(settings)
    try:
        projections = bootstrap(settings).projections_named(name)
    except LookupError as error:
        refuse(str(error))
    analytics = [p.name for p in projections if p.sink == "analytics"]
    if analytics and settings.clickhouse_target.startswith("chdb://"):
        # chdb locks its folder to one process: the API's, which runs these projections itself.
        refuse(
            f"projection {', '.join(analytics)} writes to the analytics store, whose ClickHouse "
            "engine here is chdb, inside the API process: `mercato serve` runs the analytics "
            "projections itself (set MERCATO_CLICKHOUSE_URL to a ClickHouse server to run them "
            "in workers)"
        )

    async def run(container: Container, stop: asyncio.Event) -> None:
        await asyncio.gather(*(_projector(container, p.name, stop) for p in projections))

    with process_tracing("mercato-projector"):
        succeeded = asyncio.run(
            _run_until_signal(settings, run, grace=grace, metrics_port=metrics_port)
        )
    if not succeeded:
        raise typer.Exit(code=1)


async def _relay(container: Container, stop: asyncio.Event) -> None:
    from infrastructure.kafka.relay import Relay

    settings = container.settings
    categories = set().union(*(p.categories for p in container.projections))
    relay = Relay(
        container.event_store,
        settings.postgres_dsn,
        settings.kafka_bootstrap,
        topic_prefix=settings.kafka_topic_prefix,
        partitions=settings.kafka_partitions,
        categories=categories,
    )
    logger.info(
        "relay started: topics %s*, %d partitions",
        settings.kafka_topic_prefix,
        settings.kafka_partitions,
    )
    await relay.run(stop)
    logger.info("relay stopped at position %d", relay.published_position)


async def _projector(container: Container, name: str, stop: asyncio.Event) -> None:
    projection = container.projection(name)
    try:
        # A store away at start is waited out like one that goes away later.
        applier = await until_done(
            lambda: container.applier(projection),
            projection=name,
            what="opening its stores",
            backoff=Backoff(),
            report=PrometheusOutageReport(),
            stop=stop,
        )
    except GaveUp:
        logger.info("projector %s stopped before its stores were reachable", name)
        return
    worker = ProjectionWorker(applier, await container.projector_feed(projection))
    logger.info("projector %s started (version %d)", name, projection.version)
    reporting = asyncio.create_task(report_while_running(container, projection, worker, stop))
    await worker.run(stop)
    stop.set()  # one projection's worker ending (failed or stopped) ends the process's others
    await reporting
    logger.info(
        "projector %s stopped: %d batches, %d events, %d parked or held back",
        name,
        worker.counters.batches,
        worker.counters.events,
        worker.counters.held_back,
    )


async def _run_until_signal(
    settings: Settings,
    work: Callable[[Container, asyncio.Event], Coroutine[Any, Any, None]],
    *,
    grace: float = 10.0,
    metrics_port: int | None = None,
) -> bool:
    """Start a container and run `work` until it returns. SIGTERM/SIGINT set its stop event, so
    it finishes what it has in hand; after `grace` seconds it is cancelled. False when it
    failed."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGINT)
    for number in signals:
        loop.add_signal_handler(number, stop.set)
    container = bootstrap(settings)
    exporter = None
    if metrics_port is not None:
        exporter = asyncio.create_task(serve_metrics(metrics_port, stop))
    try:
        await container.start(background=False)
        task = asyncio.create_task(work(container, stop))
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if not task.done():
            done, _ = await asyncio.wait({task}, timeout=grace)
            if not done:
                logger.warning("the worker did not stop within %.1f s; cancelling it", grace)
                await cancel_and_wait(task)
        with contextlib.suppress(asyncio.CancelledError):
            task.result()
        return True
    except Exception:
        logger.exception("worker failed")
        return False
    finally:
        stop.set()
        if exporter is not None:
            await exporter
        await container.close()
        for number in signals:
            loop.remove_signal_handler(number)


async def _until_stopped(task: asyncio.Task[None], stop: asyncio.Event, grace: float) -> bool:
    """Wait for `task` or `stop`; True if `task` finished first (its exception is raised),
    False if `stop` came first (then `task` is cancelled, waiting at most `grace` seconds)."""
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
    if task.done():
        task.result()
        return True
    try:
        async with asyncio.timeout(grace):
            await cancel_and_wait(task)
    except TimeoutError:
        logger.warning("the saga runner did not stop within %.1f s; closing anyway", grace)
    with contextlib.suppress(asyncio.CancelledError):
        if task.done():
            task.result()
    return False
