"""The Redis document sink: hot views, one JSON string per document.

Key layout (every key of a target carries the target's name, so its handler version):

    {prefix}{projection}:{target}:doc:{doc_id}   the document: `Document.to_json()` as JSON
    {prefix}{projection}:{target}:checkpoints    hash: partition -> position, `~base`,
                                                 `~complete` ('1'/'0'), `~dropping` while dropped
    {prefix}{projection}:routing                 hash: `live`, `building` (target names)
    {prefix}{projection}:targets                 set: every target that exists

The checkpoints hash is also the target's existence mark: `create_target` makes it, and a write
to a target without it fails. `apply` merges the writes and raises the checkpoints in one Lua
script (`redis_scripts.APPLY`), so a crash or a concurrent reader sees all of a batch or none.
Batches longer than `batch_size` writes go as several scripts with the checkpoints on the last:
a crash between them leaves data ahead of its checkpoints, which redelivery merges again to the
same result (the writes are convergent).

Numbers: positions, amounts and counters are held as Lua doubles in the script, exact up to 2^53
(a position is a transaction id shifted by 20 bits: 2^53 is 2^33 transactions away). Field values
are stored exactly as Python encoded them, whatever their size.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, Self

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError, ResponseError, TimeoutError

from application.ports.read_model_sink import (
    Checkpoints,
    Contribute,
    Entry,
    EntryKey,
    Routing,
    SetFields,
    Write,
)
from application.read_models.documents import Document, document_entries
from infrastructure.read_models import redis_scripts
from infrastructure.read_models.outages import unavailable_on

_EXACT = 2**53
"""Integers a Lua number (a double) holds exactly: positions and amounts must stay within."""

_SCAN_BATCH = 500
DEFAULT_TIMEOUT = 2.0
_ERRORS: dict[str, tuple[type[Exception], str]] = {
    "MERCATO_NO_TARGET": (LookupError, "no target {target} for {projection}"),
    "MERCATO_LIVE": (ValueError, "{target} is live: promote another target first"),
    "MERCATO_DROPPING": (ValueError, "{target} is being dropped: drop it again to finish"),
    "MERCATO_BAD_WRITE": (ValueError, "{detail}"),
}
"""The error codes the scripts raise (`{err = 'CODE detail'}`): the caller's exception and
message."""


@unavailable_on("Redis", ConnectionError, TimeoutError)
class RedisDocumentSink:
    """`ReadModelSink` for `SetFields` and `Contribute` writes on Redis; owns its client (which
    may or may not decode responses). A refused, reset or silent connection is the port's
    `ReadStoreUnavailableError`."""

    def __init__(self, client: Redis, *, key_prefix: str, batch_size: int = 256) -> None:
        self._client = client
        self._prefix = key_prefix
        self._batch_size = batch_size
        self._create_target = client.register_script(redis_scripts.CREATE_TARGET)
        self._promote = client.register_script(redis_scripts.PROMOTE)
        self._set_base = client.register_script(redis_scripts.SET_BASE)
        self._begin_drop = client.register_script(redis_scripts.BEGIN_DROP)
        self._apply = client.register_script(redis_scripts.APPLY)

    @classmethod
    async def connect(
        cls, url: str, *, key_prefix: str = "mercato:", call_timeout: float = DEFAULT_TIMEOUT
    ) -> Self:
        """A sink whose every round trip answers or fails within 2 x `call_timeout` seconds: one
        attempt, and one retry at once on a fresh connection (a pooled one may have died with a
        Redis restart). redis-py's default retries with backoff would hold a caller for tens
        of seconds in a partition."""
        client = Redis.from_url(
            url,
            decode_responses=True,
            socket_timeout=call_timeout,
            socket_connect_timeout=call_timeout,
            retry=Retry(NoBackoff(), retries=1),
        )
        try:
            await client.ping()
        except BaseException:
            await client.aclose()
            raise
        return cls(client, key_prefix=key_prefix)

    async def close(self) -> None:
        await self._client.aclose()

    # -- routing and targets ----------------------------------------------------------------

    async def routing(self, projection: str) -> Routing:
        live, building = await self._client.hmget(self._routing_key(projection), "live", "building")
        return Routing(live=_optional_text(live), building=_optional_text(building))

    async def create_target(self, projection: str, target: str) -> None:
        keys = [
            self._checkpoints_key(projection, target),
            self._routing_key(projection),
            self._targets_key(projection),
        ]
        await _run(self._create_target, keys, [target], projection, target)

    async def promote(self, projection: str, target: str) -> None:
        keys = [self._checkpoints_key(projection, target), self._routing_key(projection)]
        await _run(self._promote, keys, [target], projection, target)

    async def drop_target(self, projection: str, target: str) -> None:
        checkpoints = self._checkpoints_key(projection, target)
        keys = [checkpoints, self._routing_key(projection)]
        await _run(self._begin_drop, keys, [target], projection, target)
        async for batch in self._scan(self._doc_key(projection, target, "")):
            await self._client.unlink(*batch)
        pipeline: Pipeline = self._client.pipeline(transaction=True)
        pipeline.delete(checkpoints)
        pipeline.srem(self._targets_key(projection), target)
        await pipeline.execute()

    async def targets(self, projection: str) -> list[str]:
        return sorted(map(_text, await self._client.smembers(self._targets_key(projection))))

    # -- writes -----------------------------------------------------------------------------

    async def apply(
        self,
        projection: str,
        target: str,
        writes: Sequence[Write],
        checkpoints: Mapping[str, int],
    ) -> None:
        checkpoints_key = self._checkpoints_key(projection, target)
        # Everything is encoded (and so checked) before the first script runs.
        calls = [
            self._script_call(projection, target, writes[start : start + self._batch_size])
            for start in range(0, len(writes), self._batch_size)
        ] or [([], "[]")]
        checkpoint_args = _checkpoint_args(checkpoints)
        for number, (doc_keys, encoded) in enumerate(calls, start=1):
            args = [encoded, *(checkpoint_args if number == len(calls) else [])]
            await _run(self._apply, [checkpoints_key, *doc_keys], args, projection, target)

    async def set_base(self, projection: str, target: str, base: int, *, complete: bool) -> None:
        key = self._checkpoints_key(projection, target)
        args = [str(base), "1" if complete else "0"]
        await _run(self._set_base, [key], args, projection, target)

    # -- reads ------------------------------------------------------------------------------

    async def checkpoints(self, projection: str, target: str) -> Checkpoints:
        hash_ = await self._client.hgetall(self._checkpoints_key(projection, target))
        stored = {_text(name): _text(value) for name, value in hash_.items()}
        if "~complete" not in stored or "~dropping" in stored:
            raise LookupError(f"no target {target} for {projection}")
        return Checkpoints(
            base=int(stored["~base"]),
            partitions={p: int(v) for p, v in stored.items() if not p.startswith("~")},
            complete=stored["~complete"] == "1",
        )

    async def entries(self, projection: str, target: str) -> dict[EntryKey, Entry]:
        await self.checkpoints(projection, target)  # a missing target is an error, not empty
        prefix = self._doc_key(projection, target, "")
        entries: dict[EntryKey, Entry] = {}
        async for keys in self._scan(prefix):
            for key, text in zip(keys, await self._client.mget(keys), strict=True):
                if text is not None:
                    entries.update(document_entries(key[len(prefix) :], _document(text)))
        return entries

    async def document(self, projection: str, target: str, doc_id: str) -> Document | None:
        text = await self._client.get(self._doc_key(projection, target, doc_id))
        return None if text is None else _document(text)

    async def documents(
        self, projection: str, target: str, doc_ids: Sequence[str]
    ) -> list[Document | None]:
        """The documents in the order asked, None for each that does not exist (one MGET)."""
        if not doc_ids:
            return []
        texts = await self._client.mget([self._doc_key(projection, target, d) for d in doc_ids])
        return [None if text is None else _document(text) for text in texts]

    async def live_document(self, projection: str, doc_id: str) -> Document | None:
        """The document in the projection's live target; None without one."""
        live = _optional_text(await self._client.hget(self._routing_key(projection), "live"))
        return None if live is None else await self.document(projection, live, doc_id)

    # -- keys -------------------------------------------------------------------------------

    def _routing_key(self, projection: str) -> str:
        return f"{self._prefix}{_name(projection)}:routing"

    def _targets_key(self, projection: str) -> str:
        return f"{self._prefix}{_name(projection)}:targets"

    def _checkpoints_key(self, projection: str, target: str) -> str:
        return f"{self._prefix}{_name(projection)}:{_name(target)}:checkpoints"

    def _doc_key(self, projection: str, target: str, doc_id: str) -> str:
        return f"{self._prefix}{_name(projection)}:{_name(target)}:doc:{doc_id}"

    def _script_call(
        self, projection: str, target: str, writes: Sequence[Write]
    ) -> tuple[list[str], str]:
        """The document keys (KEYS[2:] of APPLY) and the writes as the script reads them."""
        indexes: dict[str, int] = {}
        encoded = []
        for write in writes:
            operation = write.operation
            if not isinstance(operation, SetFields | Contribute):
                raise TypeError(f"the Redis document sink stores no {operation!r}")
            # KEYS[1] is the checkpoints hash: documents start at 2 (Lua counts from 1).
            index = indexes.setdefault(operation.doc, len(indexes) + 2)
            encoded.append(_encode_write(write, index))
        doc_keys = [self._doc_key(projection, target, doc) for doc in indexes]
        return doc_keys, json.dumps(encoded, separators=(",", ":"))

    async def _scan(self, prefix: str) -> AsyncIterator[list[str]]:
        """Every key starting with `prefix`, in batches."""
        batch: list[str] = []
        async for key in self._client.scan_iter(match=f"{_glob_escape(prefix)}*", count=1000):
            batch.append(_text(key))
            if len(batch) == _SCAN_BATCH:
                yield batch
                batch = []
        if batch:
            yield batch


def _encode_write(write: Write, doc_index: int) -> dict[str, Any]:
    operation = write.operation
    common = {"d": doc_index, "p": _exact(write.position), "t": write.tenant_id}
    if isinstance(operation, SetFields):
        # Values travel as JSON text the script never decodes (see redis_scripts).
        fields = {name: _json(value) for name, value in operation.fields.items()}
        return common | {"f": fields}
    assert isinstance(operation, Contribute)
    return common | {
        "c": operation.counter,
        "s": operation.source,
        "a": _exact(operation.amount),
    }


def _checkpoint_args(checkpoints: Mapping[str, int]) -> list[str]:
    args: list[str] = []
    for partition, position in checkpoints.items():
        if partition.startswith("~"):
            raise ValueError(f"a partition name cannot start with '~': {partition!r}")
        args += [partition, str(_exact(position))]
    return args


async def _run(
    script: AsyncScript, keys: list[str], args: list[str], projection: str, target: str
) -> None:
    """Run a script, turning its error codes into the port's exceptions."""
    try:
        await script(keys=keys, args=args)
    except ResponseError as error:
        code, _, detail = str(error).partition(" ")
        if code not in _ERRORS:
            raise
        kind, message = _ERRORS[code]
        # Redis appends " script: <sha>, on @user_script:<line>." to a script's error.
        detail = detail.split(" script: ")[0]
        raise kind(message.format(projection=projection, target=target, detail=detail)) from error


def _document(text: str | bytes) -> Document:
    return Document.from_json(json.loads(text))


def _text(value: str | bytes) -> str:
    return value if isinstance(value, str) else value.decode()


def _optional_text(value: str | bytes | None) -> str | None:
    return None if value is None else _text(value)


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _exact(number: int) -> int:
    if not -_EXACT <= number <= _EXACT:
        raise ValueError(f"{number} is beyond 2^53, which Redis scripts cannot hold exactly")
    return number


def _name(name: str) -> str:
    # A colon would let one target's keys match another's SCAN pattern.
    if ":" in name:
        raise ValueError(f"projection and target names cannot contain ':': {name!r}")
    return name


def _glob_escape(text: str) -> str:
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)
