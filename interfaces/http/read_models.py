"""How a query reaches a read model: the live target of a projection, once it has reached the
caller's consistency token.

Every command answers with `position`, a consistency token. A query that passes it back, as
`?min_position=` or the `Mercato-Min-Position` header, reads a model that reflects the command:
the request waits (at most `MERCATO_READ_YOUR_WRITES_WAIT` seconds) for the projection's
watermark to reach the position, else answers 503 with `Retry-After` and the lag — never stale
data without saying so. A position beyond the end of the log, which no command answered, is
refused at once (422). Without a token the query reads whatever the model holds now.

    @router.get("/things/{id}")
    async def get_thing(id: UUID, read_models: ReadModelsDep) -> ThingView:
        views = await read_models.live("thing_views")
        document = await views.sink.live_document(...)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Header, Query
from fastapi.exceptions import RequestValidationError

from application.errors import ReadModelBehindError, ReadModelUnavailableError
from application.integers import INT64_MAX, Position
from interfaces.bootstrap import Container
from interfaces.http.dependencies import ContainerDep
from projections.status import wait_for_position

MIN_POSITION_HEADER = "Mercato-Min-Position"


@dataclass(frozen=True)
class LiveReadModel:
    """A projection's store and the target readers use now."""

    sink: Any
    """The store behind the projection's sink name: a document store (`views`), a search
    index (`search`) or an analytics engine (`analytics`); each offers its own readers."""
    projection: str
    target: str


class ReadModels:
    """The read models one request may read, held to its consistency token."""

    def __init__(self, container: Container, min_position: int | None) -> None:
        self._container = container
        self.min_position = min_position

    async def live(self, projection_name: str) -> LiveReadModel:
        """The live target of `projection_name`, once it reflects the request's `min_position`.

        Raises `ReadModelBehindError` when the wait runs out first, and
        `ReadModelUnavailableError` when the projection has never run.
        """
        container = self._container
        projection = container.projection(projection_name)
        sink = await container.sink(projection.sink)
        if self.min_position:
            await self._refuse_a_position_beyond_the_log(self.min_position)
            partitions = container.partitioning.partitions_of(projection)
            reached = await wait_for_position(
                sink,
                projection,
                partitions,
                self.min_position,
                within=container.settings.read_your_writes_wait,
            )
            if reached < self.min_position:
                store = container.event_store
                head = await store.head_position()
                lag = await store.count_between(reached, head) if head > reached else 0
                raise ReadModelBehindError(projection.name, self.min_position, reached, lag)
        routing = await sink.routing(projection.name)
        if routing.live is None:
            raise ReadModelUnavailableError(projection.name)
        return LiveReadModel(sink, projection.name, routing.live)

    async def _refuse_a_position_beyond_the_log(self, position: int) -> None:
        """No command answered a position beyond the log's end: waiting for it is pointless.

        Compared with the log as it is now (it may have grown since the command). The head
        counts final events only, and a command's own position may lie above it while an
        earlier transaction is still in flight: then the event at or above the position, which
        is committed, proves the token (few events lie above the head, so counting is cheap).
        """
        store = self._container.event_store
        if position <= await store.head_position():
            return
        if await store.count_between(position - 1, INT64_MAX) > 0:
            return
        raise RequestValidationError(
            [
                {
                    "type": "value_error",
                    "loc": ("query", "min_position"),
                    "msg": f"min_position {position} is beyond the end of the event log: pass "
                    "the position a command answered (also as the Mercato-Min-Position header)",
                    "input": position,
                }
            ]
        )


def min_position(
    query: Annotated[
        Position | None,
        Query(
            alias="min_position",
            description="A command's `position`: answer only from a read model that reflects "
            "it (503 with Retry-After if it has not within a few seconds; 422 at once if it "
            "is beyond the end of the log).",
        ),
    ] = None,
    header: Annotated[
        Position | None,
        Header(
            alias=MIN_POSITION_HEADER,
            description="The same as the `min_position` query parameter.",
        ),
    ] = None,
) -> int | None:
    given = [value for value in (query, header) if value is not None]
    return max(given) if given else None


def read_models(
    container: ContainerDep, position: Annotated[int | None, Depends(min_position)]
) -> ReadModels:
    return ReadModels(container, position)


ReadModelsDep = Annotated[ReadModels, Depends(read_models)]
