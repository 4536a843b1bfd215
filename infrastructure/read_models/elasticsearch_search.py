"""The search sink on Elasticsearch: one index per target, the live one behind an alias.

Names (the prefix is `MERCATO_ELASTICSEARCH_INDEX_PREFIX`):

    {prefix}{projection}.{target}      a target's index (mapping and settings: `MAPPING_VERSION`)
    {prefix}{projection}               alias of the live target's index
    {prefix}{projection}-building      alias of the index a rebuild is filling

Promote is one `_aliases` call (the live alias moves, the building alias goes), so readers of the
alias switch atomically; drop deletes the index, with its aliases. The projection name is part of
the index name because two projections may name targets alike.

Each target index holds, beside the documents, its own state document (`~target`: base,
complete, and each partition's checkpoint), so a target's data and checkpoints live and die
together. A document is stored as `Document.to_json()` in `document`, an object Elasticsearch
keeps in `_source` without indexing it (`enabled: false`); beside it, the fields search filters
and sorts on, derived from the document when it is listed (see `application.read_models.search`).
The root mapping is not dynamic: nothing else is ever indexed.

This Elasticsearch runs no scripts (no painless), so a batch is applied read-merge-write: one
`mget` of the batch's documents, `documents.merge`, one `bulk` that writes each document only if
it has not changed since it was read (`if_seq_no`/`if_primary_term`, or `create` for a new one);
documents that another writer changed meanwhile are read, merged and written again. Then the
index is refreshed, and only then the checkpoints rise: a query that waited for a checkpoint
sees every write it covers. A bulk is not atomic: a crash may leave some documents of a batch
written and its checkpoints not raised; redelivery merges them again to the same result.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Self

from elastic_transport import ConnectionError, ConnectionTimeout
from elasticsearch import AsyncElasticsearch, BadRequestError, ConflictError, NotFoundError

from application.ports.read_model_sink import Checkpoints, Entry, EntryKey, Routing, Write
from application.read_models.documents import (
    Document,
    document_entries,
    group_by_document,
    merge,
)
from application.read_models.search import (
    DESCRIPTION_WEIGHT,
    FACET_SIZE,
    TITLE_WEIGHT,
    Facets,
    InvalidCursor,
    SearchPage,
    SearchQuery,
    Sort,
    decode_cursor,
    encode_cursor,
    facet_counts,
    hit_of,
)
from infrastructure.read_models.outages import unavailable_on

MAPPING_VERSION = 1
"""Bump with any change to `MAPPING` or `SETTINGS`, and the projection's version with it, so a
rebuild creates indexes with the new mapping (an index keeps the mapping it was created with)."""

SETTINGS: dict[str, Any] = {
    # One shard: exact facet counts and one scoring (IDF) over the whole index; the catalog of
    # one deployment fits one shard comfortably.
    "number_of_shards": 1,
    "number_of_replicas": 0,
}

MAPPING: dict[str, Any] = {
    "dynamic": False,
    "_meta": {"mapping_version": MAPPING_VERSION},
    "properties": {
        "doc_id": {"type": "keyword"},
        "tenant": {"type": "keyword"},
        "listed": {"type": "boolean"},
        "title": {"type": "text", "analyzer": "standard"},
        "description": {"type": "text", "analyzer": "standard"},
        "tags": {"type": "keyword"},
        "kind": {"type": "keyword"},
        "seller_id": {"type": "keyword"},
        "currency": {"type": "keyword"},
        "price_amount": {"type": "long"},
        "created_at": {"type": "date_nanos"},
        "sales_count": {"type": "long"},
        "document": {"type": "object", "enabled": False},
        "state": {"type": "object", "enabled": False},
    },
}

STATE_ID = "~target"
"""The id of each target's state document (base, complete, checkpoints)."""

_SORTS: dict[Sort, tuple[str, str, tuple[type, ...]]] = {
    # sort: (field, order, the types of its sort value in a cursor)
    Sort.RELEVANCE: ("_score", "desc", (float, int)),
    Sort.PRICE_ASC: ("price_amount", "asc", (int,)),
    Sort.PRICE_DESC: ("price_amount", "desc", (int,)),
    Sort.NEWEST: ("created_at", "desc", (int,)),  # date_nanos sort values: nanoseconds
    Sort.BEST_SELLING: ("sales_count", "desc", (int,)),
}
_FACETS = {"kinds": "kind", "tags": "tags"}
_LONG = range(-(2**63), 2**63)
_NANOS = range(0, 2**63)
"""What a date_nanos holds: 1970 to 2262."""
_PROJECTION_NAME = re.compile(r"[a-z0-9_]+")
"""No `.` or `-`: they separate the projection from its target and from `-building`."""
_TARGET_NAME = re.compile(r"[a-z0-9_][a-z0-9_.-]*")
_MERGE_ATTEMPTS = 20
_SCAN_PAGE = 1_000
DEFAULT_TIMEOUT = 2.0
SLOW_CALL_TIMEOUT = 35.0


@unavailable_on("Elasticsearch", ConnectionError, ConnectionTimeout)
class ElasticsearchSearchSink:
    """`ReadModelSink` and `SearchIndex` on Elasticsearch; owns its client. A refused or silent
    connection is the port's `ReadStoreUnavailableError`."""

    def __init__(
        self, client: AsyncElasticsearch, *, index_prefix: str, bulk_size: int = 500
    ) -> None:
        self._client = client
        # Index creation, bulks and refreshes may take long on a busy cluster without it being
        # away: they get a timeout of their own, reads (what a query waits for) the short one.
        self._slow = client.options(request_timeout=SLOW_CALL_TIMEOUT)
        self._prefix = index_prefix
        self._bulk_size = bulk_size

    @classmethod
    async def connect(
        cls, url: str, *, index_prefix: str = "mercato-", call_timeout: float = DEFAULT_TIMEOUT
    ) -> Self:
        """A sink whose reads answer or fail within 2 x `call_timeout` seconds (one retry at
        once, as a pooled connection may have died with a restart)."""
        client = AsyncElasticsearch(url, request_timeout=call_timeout, max_retries=1)
        try:
            # Not ping(): `GET /` is missing from a reduced Elasticsearch; health is always there.
            await client.options(request_timeout=SLOW_CALL_TIMEOUT).cluster.health(
                wait_for_status="yellow", timeout="30s"
            )
        except BaseException:
            await client.close()
            raise
        return cls(client, index_prefix=index_prefix)

    async def close(self) -> None:
        await self._client.close()

    # -- routing and targets ----------------------------------------------------------------

    async def routing(self, projection: str) -> Routing:
        aliases = await self._aliases(projection)
        live = _holder(aliases, self._live_alias(projection))
        building = _holder(aliases, self._building_alias(projection))
        targets = {index: self._target_of(projection, index) for index in aliases}
        return Routing(
            live=targets.get(live or ""),
            building=targets.get(building or "") if building != live else None,
        )

    async def create_target(self, projection: str, target: str) -> None:
        index = self._index(projection, target)
        try:
            await self._slow.indices.create(index=index, mappings=MAPPING, settings=SETTINGS)
        except BadRequestError as error:
            if error.error != "resource_already_exists_exception":
                raise
        with suppress(ConflictError):  # created before: keep what it holds
            empty = Checkpoints(0, {}, complete=False)
            await self._client.create(index=index, id=STATE_ID, document=_state_json(empty))
        building = self._building_alias(projection)
        actions = _alias_removals(await self._aliases(projection), building, keep=index)
        await self._update_aliases([*actions, {"add": {"index": index, "alias": building}}])

    async def promote(self, projection: str, target: str) -> None:
        index = self._index(projection, target)
        await self._read_state(projection, target)  # LookupError when there is no such target
        aliases = await self._aliases(projection)
        live, building = self._live_alias(projection), self._building_alias(projection)
        actions = [
            *_alias_removals(aliases, live, keep=index),
            *_alias_removals(aliases, building),
            {"add": {"index": index, "alias": live}},
        ]
        await self._update_aliases(actions)

    async def drop_target(self, projection: str, target: str) -> None:
        index = self._index(projection, target)
        if (await self.routing(projection)).live == target:
            raise ValueError(f"{target} is live: promote another target first")
        await self._slow.indices.delete(index=index, ignore_unavailable=True)

    async def targets(self, projection: str) -> list[str]:
        return sorted(self._target_of(projection, i) for i in await self._aliases(projection))

    # -- writes -----------------------------------------------------------------------------

    async def apply(
        self,
        projection: str,
        target: str,
        writes: Sequence[Write],
        checkpoints: Mapping[str, int],
    ) -> None:
        grouped = group_by_document(writes)  # refuses an InsertRow before anything is written
        if STATE_ID in grouped:
            raise ValueError(f"{STATE_ID!r} is the target's own state document")
        index = self._index(projection, target)
        await self._read_state(projection, target)
        pending, attempts, wrote = grouped, 0, False
        while pending:
            if attempts == _MERGE_ATTEMPTS:
                raise RuntimeError(f"documents of {index} kept changing while merged: {[*pending]}")
            attempts += 1
            written, conflicted = await self._merge_and_write(index, pending)
            wrote = wrote or written > 0
            pending = {doc_id: grouped[doc_id] for doc_id in conflicted}
        if wrote:
            await self._slow.indices.refresh(index=index)
        if checkpoints:

            def raised(state: Checkpoints) -> Checkpoints:
                partitions = dict(state.partitions)
                for partition, position in checkpoints.items():
                    partitions[partition] = max(partitions.get(partition, 0), position)
                return Checkpoints(state.base, partitions, state.complete)

            await self._change_state(projection, target, raised)

    async def set_base(self, projection: str, target: str, base: int, *, complete: bool) -> None:
        def based(state: Checkpoints) -> Checkpoints:
            return Checkpoints(base, state.partitions, complete)

        await self._change_state(projection, target, based)

    # -- reads ------------------------------------------------------------------------------

    async def checkpoints(self, projection: str, target: str) -> Checkpoints:
        state, _ = await self._read_state(projection, target)
        return state

    async def entries(self, projection: str, target: str) -> dict[EntryKey, Entry]:
        await self._read_state(projection, target)
        index = self._index(projection, target)
        await self._slow.indices.refresh(index=index)
        entries: dict[EntryKey, Entry] = {}
        async for hit in self._scan(index):
            entries.update(
                document_entries(hit["_id"], Document.from_json(hit["_source"]["document"]))
            )
        return entries

    async def document(self, projection: str, target: str, doc_id: str) -> Document | None:
        return (await self.documents(projection, target, [doc_id]))[0]

    async def documents(
        self, projection: str, target: str, doc_ids: Sequence[str]
    ) -> list[Document | None]:
        """The documents in the order asked, None for each that does not exist (one mget)."""
        stored = await self._mget(self._index(projection, target), doc_ids)
        return [None if doc_id not in stored else stored[doc_id][0] for doc_id in doc_ids]

    async def live_document(self, projection: str, doc_id: str) -> Document | None:
        """The document in the projection's live target; None without one."""
        live = (await self.routing(projection)).live
        return None if live is None else await self.document(projection, live, doc_id)

    async def search(self, projection: str, target: str, query: SearchQuery) -> SearchPage:
        sort = query.effective_sort
        field, order, value_types = _SORTS[sort]
        after = None
        if query.cursor is not None:
            after = list(decode_cursor(query.cursor, sort, value_types))
            if sort is Sort.NEWEST and after[0] not in _NANOS:
                raise InvalidCursor("a time a date_nanos field does not hold")
        response = await self._client.search(
            index=self._index(projection, target),
            query=_query(query),
            sort=[{field: order}, {"doc_id": "asc"}],
            size=query.limit + 1,
            search_after=after,
            track_total_hits=True,
            aggs={
                name: {
                    "terms": {
                        "field": facet_field,
                        "size": FACET_SIZE,
                        "order": [{"_count": "desc"}, {"_key": "asc"}],
                    }
                }
                for name, facet_field in _FACETS.items()
            },
            source_includes=["document"],
        )
        found = response["hits"]["hits"]
        page = found[: query.limit]
        buckets = response["aggregations"]
        facets = {
            name: facet_counts((b["key"], b["doc_count"]) for b in buckets[name]["buckets"])
            for name in _FACETS
        }
        last = page[-1]["sort"] if page else None
        return SearchPage(
            hits=tuple(hit_of(Document.from_json(hit["_source"]["document"])) for hit in page),
            total=int(response["hits"]["total"]["value"]),
            facets=Facets(kinds=facets["kinds"], tags=facets["tags"]),
            next_cursor=(
                encode_cursor(sort, (last[0], last[1]))
                if last is not None and len(found) > query.limit
                else None
            ),
        )

    # -- names ------------------------------------------------------------------------------

    def _live_alias(self, projection: str) -> str:
        return f"{self._prefix}{_projection(projection)}"

    def _building_alias(self, projection: str) -> str:
        return f"{self._prefix}{_projection(projection)}-building"

    def _index(self, projection: str, target: str) -> str:
        index = f"{self._prefix}{_projection(projection)}.{_target(target)}"
        if len(index.encode()) > 255:
            raise ValueError(f"index name over 255 bytes: {index!r}")
        return index

    def _target_of(self, projection: str, index: str) -> str:
        return index[len(self._prefix) + len(projection) + 1 :]

    # -- helpers ----------------------------------------------------------------------------

    async def _aliases(self, projection: str) -> dict[str, set[str]]:
        """Each index of the projection, and its aliases."""
        response = await self._client.indices.get_alias(
            index=f"{self._prefix}{_projection(projection)}.*"
        )
        return {index: set(body.get("aliases", {})) for index, body in response.body.items()}

    async def _update_aliases(self, actions: list[dict[str, Any]]) -> None:
        response = await self._slow.indices.update_aliases(actions=actions)
        if response.body.get("errors"):
            raise RuntimeError(f"alias update partly failed: {response.body}")

    async def _read_state(self, projection: str, target: str) -> tuple[Checkpoints, _Version]:
        """The target's checkpoints, and the version of the state document."""
        try:
            found = await self._client.get(index=self._index(projection, target), id=STATE_ID)
        except NotFoundError:
            raise LookupError(f"no target {target} for {projection}") from None
        state = found["_source"]["state"]
        checkpoints = Checkpoints(
            base=int(state["base"]),
            partitions={p: int(position) for p, position in state["partitions"].items()},
            complete=bool(state["complete"]),
        )
        return checkpoints, _Version(found["_seq_no"], found["_primary_term"])

    async def _change_state(
        self, projection: str, target: str, change: Callable[[Checkpoints], Checkpoints]
    ) -> None:
        """Read, change and write the state document, again if another writer came between."""
        index = self._index(projection, target)
        while True:
            state, version = await self._read_state(projection, target)
            try:
                await self._client.index(
                    index=index,
                    id=STATE_ID,
                    document=_state_json(change(state)),
                    if_seq_no=version.seq_no,
                    if_primary_term=version.primary_term,
                )
                return
            except ConflictError:
                continue

    async def _mget(
        self, index: str, doc_ids: Sequence[str]
    ) -> dict[str, tuple[Document, _Version]]:
        """The stored documents among `doc_ids`, each with its version."""
        if not doc_ids:
            return {}
        response = await self._client.mget(index=index, ids=list(doc_ids))
        stored = {}
        for doc in response["docs"]:
            if doc.get("found") and doc["_id"] != STATE_ID:
                version = _Version(doc["_seq_no"], doc["_primary_term"])
                stored[doc["_id"]] = (Document.from_json(doc["_source"]["document"]), version)
        return stored

    async def _merge_and_write(
        self, index: str, pending: dict[str, list[Write]]
    ) -> tuple[int, list[str]]:
        """Merge `pending` into the stored documents and write those that changed; returns how
        many were written, and the ids whose write lost a race with another writer (to merge
        again)."""
        stored = await self._mget(index, list(pending))
        operations: list[tuple[dict[str, Any], dict[str, Any]]] = []  # (action, source)
        # Every document is merged before the first is written: a batch that cannot be merged
        # writes nothing.
        for doc_id, writes in pending.items():
            if doc_id in stored:
                document, version = stored[doc_id]
                # JSON text, not ==: 3 == 3.0, yet a change from one to the other is a change.
                before = json.dumps(document.to_json())
                merge(document, writes)
                if before == json.dumps(document.to_json()):
                    continue  # a redelivered batch: nothing to write
                action = {"index": {"_id": doc_id, **version.conditions}}
            else:
                document = Document()
                merge(document, writes)
                action = {"create": {"_id": doc_id}}
            operations.append((action, _indexed(doc_id, document)))
        conflicted: list[str] = []
        for start in range(0, len(operations), self._bulk_size):
            chunk = operations[start : start + self._bulk_size]
            body: list[dict[str, Any]] = []
            for action, source in chunk:
                body += [action, source]
            response = await self._slow.bulk(index=index, operations=body)
            if not response["errors"]:
                continue
            for item in response["items"]:
                result = next(iter(item.values()))
                if result["status"] == 409:
                    conflicted.append(result["_id"])
                elif result["status"] >= 300:
                    raise RuntimeError(f"bulk write to {index} failed: {result}")
        return len(operations) - len(conflicted), conflicted

    async def _scan(self, index: str) -> AsyncIterator[dict[str, Any]]:
        """Every document of the index (not its state), in id order."""
        after: list[Any] | None = None
        while True:
            response = await self._client.search(
                index=index,
                query={"exists": {"field": "doc_id"}},
                sort=[{"doc_id": "asc"}],
                size=_SCAN_PAGE,
                search_after=after,
            )
            hits = response["hits"]["hits"]
            for hit in hits:
                yield hit
            if len(hits) < _SCAN_PAGE:
                return
            after = hits[-1]["sort"]


def _query(query: SearchQuery) -> dict[str, Any]:
    filters: list[dict[str, Any]] = [
        {"term": {"tenant": query.tenant_id}},
        {"term": {"listed": True}},
    ]
    if query.kinds:
        filters.append({"terms": {"kind": list(query.kinds)}})
    filters += [{"term": {"tags": tag}} for tag in query.tags]
    if query.min_price is not None or query.max_price is not None:
        bounds = {"gte": query.min_price, "lte": query.max_price}
        filters.append(
            {"range": {"price_amount": {k: v for k, v in bounds.items() if v is not None}}}
        )
    if query.currency is not None:
        filters.append({"term": {"currency": query.currency}})
    if query.seller_id is not None:
        filters.append({"term": {"seller_id": query.seller_id}})
    boolean: dict[str, Any] = {"filter": filters}
    if query.terms:
        # cross_fields + and: every word in the title or the description, as FTS5's AND.
        boolean["must"] = {
            "multi_match": {
                "query": " ".join(query.terms),
                "type": "cross_fields",
                "operator": "and",
                "fields": [f"title^{TITLE_WEIGHT:g}", f"description^{DESCRIPTION_WEIGHT:g}"],
            }
        }
    return {"bool": boolean}


def _indexed(doc_id: str, document: Document) -> dict[str, Any]:
    """The indexed form of a document: the document itself, unindexed, and the fields search
    uses when it is listed (the SQLite twin derives the same in its `search_listed` view)."""
    body: dict[str, Any] = {
        "doc_id": doc_id,
        "tenant": document.tenant,
        "listed": False,
        "document": document.to_json(),
    }
    fields = document.fields
    created_at = _timestamp(fields.get("created_at"))
    if fields.get("published") is not True or created_at is None:
        return body
    price = fields.get("price")
    price = price if isinstance(price, dict) else {}
    tags = fields.get("tags")
    tags = tags if isinstance(tags, list) else []
    return body | {
        "listed": True,
        "title": _text(fields.get("title")),
        "description": _text(fields.get("description")),
        "tags": [tag for tag in tags if isinstance(tag, str)],
        "kind": _text(fields.get("kind")),
        "seller_id": _text(fields.get("seller_id")),
        "currency": _text(price.get("currency")),
        "price_amount": _long(price.get("amount")),
        "created_at": created_at,
        "sales_count": _long(fields.get("sales_count")),
    }


def _state_json(checkpoints: Checkpoints) -> dict[str, Any]:
    return {
        "state": {
            "base": checkpoints.base,
            "complete": checkpoints.complete,
            "partitions": dict(checkpoints.partitions),
        }
    }


@dataclass(frozen=True)
class _Version:
    """Where a document stood when read: a write conditioned on it fails (409) if another
    writer changed the document since."""

    seq_no: int
    primary_term: int

    @property
    def conditions(self) -> dict[str, int]:
        return {"if_seq_no": self.seq_no, "if_primary_term": self.primary_term}


def _holder(aliases: dict[str, set[str]], alias: str) -> str | None:
    holders = sorted(index for index, names in aliases.items() if alias in names)
    return holders[0] if holders else None


def _alias_removals(
    aliases: dict[str, set[str]], alias: str, *, keep: str | None = None
) -> list[dict[str, Any]]:
    return [
        {"remove": {"index": index, "alias": alias}}
        for index, names in aliases.items()
        if alias in names and index != keep
    ]


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _long(value: Any) -> int:
    return value if type(value) is int and value in _LONG else 0


def _timestamp(value: Any) -> str | None:
    """`value` if it is a time a date_nanos field holds, else None."""
    if not isinstance(value, str):
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        return None
    if at.tzinfo is None or int(at.timestamp() * 1e9) not in _NANOS:
        return None
    return value


def _projection(name: str) -> str:
    if not _PROJECTION_NAME.fullmatch(name):
        raise ValueError(f"projection names here are lower case letters, digits and _: {name!r}")
    return name


def _target(name: str) -> str:
    if not _TARGET_NAME.fullmatch(name):
        raise ValueError(f"target names here are lower case letters, digits, _ . -: {name!r}")
    return name
